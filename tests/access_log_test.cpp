// The access log's two formats, on hostile values: every JSON line parses back with a real JSON
// parser to exactly what the client sent (invalid UTF-8 as U+FFFD), and no combined line can be
// broken or given a forged field.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "worker/access_log.hpp"

namespace shoal {
namespace {

AccessRecord hostile() {
  AccessRecord r;
  r.address = "203.0.113.9";
  r.port = 51234;
  r.method = "GET";
  r.target = "/a\"b\\c";
  r.status = 200;
  r.body_bytes = 3;
  r.duration_us = 1'234'567;
  r.user_agent = "agent\", \"status\": 500, \"x\": \"\n\r\t\x01\x7f \xff\xfe caf\xc3\xa9 \xe2\x82";
  r.referer = "https://example.com/\"quoted\"\\";
  r.request_id = "abc-123";
  return r;
}

TEST(AccessLog, JsonLinesParseBackToWhatTheClientSentAndForgeNothing) {
  std::string out;
  append_json(out, hostile(), "2026-12-01T15:04:05.123+01:00", {1, 4242, 3});
  ASSERT_EQ(out.back(), '\n');
  ASSERT_EQ(out.find('\n'), out.size() - 1) << "one line: " << out;
  auto j = nlohmann::json::parse(out);  // throws on anything that is not JSON
  EXPECT_EQ(j["time"], "2026-12-01T15:04:05.123+01:00");
  EXPECT_EQ(j["remote_addr"], "203.0.113.9");
  EXPECT_EQ(j["remote_port"], 51234);
  EXPECT_EQ(j["target"], "/a\"b\\c");
  EXPECT_EQ(j["protocol"], "HTTP/1.1");
  EXPECT_EQ(j["status"], 200);  // not the 500 the user agent tried to forge
  EXPECT_EQ(j["body_bytes"], 3);
  EXPECT_DOUBLE_EQ(j["request_time"].get<double>(), 1.234567);
  EXPECT_EQ(j["user_agent"], "agent\", \"status\": 500, \"x\": \"\n\r\t\x01\x7f \xef\xbf\xbd\xef\xbf\xbd caf\xc3\xa9 \xef\xbf\xbd\xef\xbf\xbd");
  EXPECT_EQ(j["referer"], "https://example.com/\"quoted\"\\");
  EXPECT_EQ(j["request_id"], "abc-123");
  EXPECT_EQ(j["worker"], 1);
  EXPECT_EQ(j["pid"], 4242);
  EXPECT_EQ(j["generation"], 3);
  EXPECT_EQ(j.size(), 15u);
}

TEST(AccessLog, JsonRejectsOverlongSurrogateAndOutOfRangeUtf8) {
  AccessRecord r = hostile();
  r.user_agent = "\xc0\xaf \xed\xa0\x80 \xf4\x90\x80\x80 \xf0\x9f\x98\x80";  // overlong '/', a surrogate, > U+10FFFF, then an emoji
  std::string out;
  append_json(out, r, "t", {});
  auto j = nlohmann::json::parse(out);
  std::string agent = j["user_agent"];
  EXPECT_EQ(agent.find("\xc0"), std::string::npos);
  EXPECT_EQ(agent.find("\xed\xa0"), std::string::npos);
  EXPECT_EQ(agent.find("\xf4\x90"), std::string::npos);
  EXPECT_NE(agent.find("\xf0\x9f\x98\x80"), std::string::npos);  // valid four bytes pass as they are
  r.port = -1;
  out.clear();
  append_json(out, r, "t", {});
  EXPECT_TRUE(nlohmann::json::parse(out)["remote_port"].is_null());
}

TEST(AccessLog, CombinedIsNginxsWithEveryClientValueEscaped) {
  std::string out;
  AccessRecord r = hostile();
  append_combined(out, r, "01/Dec/2026:15:04:05 +0100");
  EXPECT_EQ(out,
            "203.0.113.9 - - [01/Dec/2026:15:04:05 +0100] \"GET /a\\x22b\\x5Cc HTTP/1.1\" 200 3 "
            "\"https://example.com/\\x22quoted\\x22\\x5C\" "
            "\"agent\\x22, \\x22status\\x22: 500, \\x22x\\x22: \\x22\\x0A\\x0D\\x09\\x01\\x7F \\xFF\\xFE caf\\xC3\\xA9 \\xE2\\x82\"\n");
  out.clear();
  r.referer = r.user_agent = {};
  append_combined(out, r, "t");
  EXPECT_THAT(out, ::testing::EndsWith(" 200 3 \"-\" \"-\"\n"));
}

TEST(AccessLog, RequestIdsAreTakenOnlyWhenTheyCannotHurt) {
  EXPECT_TRUE(is_valid_request_id("f47ac10b-58cc-4372-a567-0e02b2c3d479"));
  EXPECT_TRUE(is_valid_request_id("01ARZ3NDEKTSV4RRFFQ69G5FAV"));
  EXPECT_TRUE(is_valid_request_id("YWJj+/=="));
  EXPECT_FALSE(is_valid_request_id(""));
  EXPECT_FALSE(is_valid_request_id(std::string(129, 'a')));
  EXPECT_FALSE(is_valid_request_id("a b"));
  EXPECT_FALSE(is_valid_request_id("a\"b"));
  EXPECT_FALSE(is_valid_request_id("a\nb"));
}

}  // namespace
}  // namespace shoal
