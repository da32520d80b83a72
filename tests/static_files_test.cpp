// Static files' validators, preconditions and ranges as pure functions (worker/static_files.hpp);
// tests/http_test.cpp drives them through real requests.
#include <gtest/gtest.h>

#include "worker/static_files.hpp"

namespace shoal {
namespace {

const FileValidators kFile(0x1234, 1000, 784111777, 5);  // Sun, 06 Nov 1994 08:49:37 GMT

TEST(StaticFiles, ValidatorsAreAStrongEtagAndAnImfFixdate) {
  EXPECT_EQ(kFile.etag_view(), "\"1234-3e8-ae1b981bc490a05\"");
  EXPECT_EQ(kFile.last_modified_view(), "Sun, 06 Nov 1994 08:49:37 GMT");
  FileValidators touched(0x1234, 1000, 784111777, 6);  // the same second, written again
  EXPECT_NE(touched.etag_view(), kFile.etag_view());
}

TEST(StaticFiles, AllThreeDateFormatsAreAccepted) {
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), 784111777);
  EXPECT_EQ(parse_http_date("Sun Nov  6 08:49:37 1994"), 784111777);
  EXPECT_EQ(parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"), std::nullopt);
  EXPECT_EQ(parse_http_date("yesterday"), std::nullopt);
  EXPECT_EQ(parse_http_date("Sun, 06 Foo 1994 08:49:37 GMT"), std::nullopt);
  char out[32];
  EXPECT_EQ(std::string_view(out, format_http_date(0, out)), "Thu, 01 Jan 1970 00:00:00 GMT");
}

TEST(StaticFiles, EtagListsCompareStronglyForIfMatchAndWeaklyForIfNoneMatch) {
  std::string_view tag = kFile.etag_view();
  EXPECT_TRUE(etag_list_matches("*", tag, false));
  EXPECT_TRUE(etag_list_matches("\"x\", " + std::string(tag), tag, false));
  EXPECT_FALSE(etag_list_matches("W/" + std::string(tag), tag, false));
  EXPECT_TRUE(etag_list_matches("W/" + std::string(tag), tag, true));
  EXPECT_FALSE(etag_list_matches("\"other\"", tag, true));
  EXPECT_FALSE(etag_list_matches("unquoted", tag, true));
}

TEST(StaticFiles, PreconditionsInTheRfcsOrder) {
  std::string tag(kFile.etag_view());
  using P = Precondition;
  EXPECT_EQ(evaluate_preconditions({}, kFile), P::Proceed);
  EXPECT_EQ(evaluate_preconditions({.if_none_match = tag}, kFile), P::NotModified);
  EXPECT_EQ(evaluate_preconditions({.if_none_match = "\"old\""}, kFile), P::Proceed);
  EXPECT_EQ(evaluate_preconditions({.if_modified_since = "Sun, 06 Nov 1994 08:49:37 GMT"}, kFile), P::NotModified);
  EXPECT_EQ(evaluate_preconditions({.if_modified_since = "Sun, 06 Nov 1994 08:49:36 GMT"}, kFile), P::Proceed);
  // If-None-Match wins over If-Modified-Since (RFC 9110 13.1.3: the date is then ignored).
  EXPECT_EQ(evaluate_preconditions({.if_none_match = "\"old\"", .if_modified_since = "Sun, 06 Nov 2094 08:49:37 GMT"},
                                   kFile), P::Proceed);
  EXPECT_EQ(evaluate_preconditions({.if_match = "\"old\""}, kFile), P::Failed);
  EXPECT_EQ(evaluate_preconditions({.if_match = tag}, kFile), P::Proceed);
  EXPECT_EQ(evaluate_preconditions({.if_unmodified_since = "Sat, 05 Nov 1994 08:49:37 GMT"}, kFile), P::Failed);
  EXPECT_EQ(evaluate_preconditions({.if_unmodified_since = "not a date"}, kFile), P::Proceed);  // ignored
}

TEST(StaticFiles, OneByteRangeIsServedAndTheRestIsTheWholeFile) {
  using K = ByteRange::Kind;
  auto r = select_range("bytes=0-99", "", 1000, kFile);
  EXPECT_EQ(r.kind, K::Partial);
  EXPECT_EQ(r.first, 0u);
  EXPECT_EQ(r.last, 99u);
  r = select_range("bytes=900-", "", 1000, kFile);
  EXPECT_EQ(r.first, 900u);
  EXPECT_EQ(r.last, 999u);
  r = select_range("bytes=-100", "", 1000, kFile);
  EXPECT_EQ(r.first, 900u);
  r = select_range("bytes=-5000", "", 1000, kFile);
  EXPECT_EQ(r.first, 0u);
  r = select_range("bytes=990-5000", "", 1000, kFile);
  EXPECT_EQ(r.last, 999u);
  EXPECT_EQ(select_range("bytes=1000-", "", 1000, kFile).kind, K::Unsatisfiable);
  EXPECT_EQ(select_range("bytes=-0", "", 1000, kFile).kind, K::Unsatisfiable);
  EXPECT_EQ(select_range("bytes=0-1,5-6", "", 1000, kFile).kind, K::Whole);
  EXPECT_EQ(select_range("lines=0-1", "", 1000, kFile).kind, K::Whole);
  EXPECT_EQ(select_range("bytes=5-1", "", 1000, kFile).kind, K::Whole);
  EXPECT_EQ(select_range("bytes=x-1", "", 1000, kFile).kind, K::Whole);
  // If-Range: the range counts only when it names the file as it is.
  EXPECT_EQ(select_range("bytes=0-1", kFile.etag_view(), 1000, kFile).kind, K::Partial);
  EXPECT_EQ(select_range("bytes=0-1", "\"old\"", 1000, kFile).kind, K::Whole);
  EXPECT_EQ(select_range("bytes=0-1", "Sun, 06 Nov 1994 08:49:37 GMT", 1000, kFile).kind, K::Partial);
  EXPECT_EQ(select_range("bytes=0-1", "Sun, 06 Nov 1994 08:49:38 GMT", 1000, kFile).kind, K::Whole);
}

}  // namespace
}  // namespace shoal
