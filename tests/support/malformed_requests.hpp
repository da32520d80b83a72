// Requests that must be refused: smuggling shapes, malformed syntax, unsupported versions, and
// sizes over the limits of kMalformedLimits. Shared by the in-process HTTP tests and the
// integration test against the real binary.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <vector>

#include "support/http_client.hpp"

namespace shoal::test {

struct MalformedCase {
  const char* name;
  std::string request;
  int status;
  friend void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name << " -> " << c.status; }
};

// The [http] limits the size cases assume.
constexpr const char* kMalformedLimits = R"([http]
max_header_bytes = 2048
max_url_bytes = 512
max_body_bytes = 1000
)";

inline const std::vector<MalformedCase>& malformed_requests() {
  static const std::vector<MalformedCase> cases = {
      MalformedCase{"Garbage", "GARBAGE\r\n\r\n", 400},
      MalformedCase{"BareLf", "GET /hello HTTP/1.1\nHost: t\n\n", 400},
      MalformedCase{"SpaceBeforeColon", "GET /hello HTTP/1.1\r\nHost : t\r\n\r\n", 400},
      MalformedCase{"LengthAndChunked",
          "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
      MalformedCase{"DoubleLength", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400},
      MalformedCase{"SignedLength", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: +3\r\n\r\nabc", 400},
      MalformedCase{"NulInHeader", std::string("GET /hello HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n", 37), 400},
      MalformedCase{"LengthWithSpaceInside", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1 2\r\n\r\nabcdefghijkl", 400},
      MalformedCase{"LengthInHex", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0x3\r\n\r\nabc", 400},
      MalformedCase{"NegativeLength", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", 400},
      MalformedCase{"LengthOverflow",
          "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 99999999999999999999999\r\n\r\n", 400},
      MalformedCase{"CommaListOfLengths", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 3, 3\r\n\r\nabc", 400},
      MalformedCase{"ChunkedThenLength",
          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
      MalformedCase{"TransferEncodingNotChunked", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\nabc", 400},
      MalformedCase{"ChunkedNotLast",
          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
      MalformedCase{"ChunkedTwice",
          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n", 400},
      MalformedCase{"ObsFold", "GET /hello HTTP/1.1\r\nHost: t\r\nX-Folded: a\r\n b\r\n\r\n", 400},
      MalformedCase{"BareLfInsideHeaders", "GET /hello HTTP/1.1\r\nHost: t\nX: y\r\n\r\n", 400},
      MalformedCase{"BareCrInHeader", "GET /hello HTTP/1.1\r\nHost: t\r\nX: a\rb\r\n\r\n", 400},
      MalformedCase{"ControlCharInHeaderValue", "GET /hello HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n", 400},
      MalformedCase{"ControlCharInTarget", "GET /hel\x01lo HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      MalformedCase{"NulInTarget", std::string("GET /hel\0lo HTTP/1.1\r\nHost: t\r\n\r\n", 34), 400},
      MalformedCase{"TabBeforeColon", "GET /hello HTTP/1.1\r\nHost\t: t\r\n\r\n", 400},
      MalformedCase{"MissingHost", "GET /hello HTTP/1.1\r\nX: y\r\n\r\n", 400},
      MalformedCase{"TwoHosts", "GET /hello HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      MalformedCase{"Http09", "GET /hello\r\n\r\n", 505},
      MalformedCase{"Http09WithoutEmptyLine", "GET /hello\r\n", 505},
      MalformedCase{"LengthWithTrailingWhitespace", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 5 \t\r\n\r\nhello", 400},
      MalformedCase{"GzipThenChunked", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501},
      MalformedCase{"GzipAndChunkedInTwoFields", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n"
                                                 "Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501},
      MalformedCase{"WhitespaceBeforeFirstField", "GET /hello HTTP/1.1\r\n Host: t\r\n\r\n", 400},
      MalformedCase{"LowercaseVersion", "GET /hello http/1.1\r\nHost: t\r\n\r\n", 400},
      MalformedCase{"LowercaseMethod", "get /hello HTTP/1.1\r\nHost: t\r\n\r\n", 501},
      MalformedCase{"AsteriskWithGet", "GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      // RFC 9112 6.1: Transfer-Encoding in HTTP/1.0 is faulty framing; what follows the body must
      // not be served as a second request.
      MalformedCase{"Http10Chunked", "POST /echo HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n"
                                     "3\r\nabc\r\n0\r\n\r\n", 400},
      MalformedCase{"Http10ChunkedWithLength", "POST /echo HTTP/1.0\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                                               "3\r\nabc\r\n0\r\n\r\n", 400},
      MalformedCase{"EmptyFieldName", "GET /hello HTTP/1.1\r\nHost: t\r\n: value\r\n\r\n", 400},
      MalformedCase{"EmptyFirstFieldName", "GET /hello HTTP/1.1\r\n: value\r\nHost: t\r\n\r\n", 400},
      // A field name is a token (RFC 9112 5.1): a separator or a control byte in it is refused,
      // in any name, in one that begins as a name llhttp knows, and in a trailer.
      MalformedCase{"NonTokenInFieldName", "GET /hello HTTP/1.1\r\nHost: t\r\nX(y): v\r\n\r\n", 400},
      MalformedCase{"QuoteInFieldName", "GET /hello HTTP/1.1\r\nHost: t\r\nX\"y: v\r\n\r\n", 400},
      MalformedCase{"DelInFieldName", "GET /hello HTTP/1.1\r\nHost: t\r\nX\x7fy: v\r\n\r\n", 400},
      MalformedCase{"HighByteInFieldName", "GET /hello HTTP/1.1\r\nHost: t\r\nX\xc3\xa9: v\r\n\r\n", 400},
      MalformedCase{"SlashAfterAKnownName", "GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length/x: 1\r\n\r\n", 400},
      MalformedCase{"SeparatorInsideAKnownName", "GET /hello HTTP/1.1\r\nHost: t\r\nConnec[tion: close\r\n\r\n", 400},
      MalformedCase{"NonTokenInTrailerName", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                             "3\r\nabc\r\n0\r\nX{y}: v\r\n\r\n", 400},
      MalformedCase{"EmptyTrailerName", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
                                        "3\r\nabc\r\n0\r\n: v\r\n\r\n", 400},
      MalformedCase{"TwoSpacesBeforeTarget", "GET  /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      MalformedCase{"TwoSpacesBeforeVersion", "GET /hello  HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      MalformedCase{"TabInRequestLine", "GET\t/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      MalformedCase{"HostWithSpace", "GET /hello HTTP/1.1\r\nHost: a b\r\n\r\n", 400},
      MalformedCase{"HostWithUserinfo", "GET /hello HTTP/1.1\r\nHost: user@t\r\n\r\n", 400},
      MalformedCase{"HostWithBadPort", "GET /hello HTTP/1.1\r\nHost: t:80x\r\n\r\n", 400},
      MalformedCase{"AbsoluteFormWithBadAuthority", "GET http://a b/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      MalformedCase{"TargetNotAPath", "GET hello HTTP/1.1\r\nHost: t\r\n\r\n", 400},
      MalformedCase{"UnknownMethod", "BREW /pot HTTP/1.1\r\nHost: t\r\n\r\n", 501},
      MalformedCase{"Connect", "CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n", 501},
      MalformedCase{"TooManyFields", [] {
          std::string r = "GET /hello HTTP/1.1\r\nHost: t\r\n";
          for (int i = 0; i < 100; ++i) r += "X: v\r\n";  // 101 fields, 700 bytes: under max_header_bytes
          return r + "\r\n";
        }(), 431},
      MalformedCase{"ChunkExtensionsTooLong",
          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;" + std::string(5000, 'e') +
          "\r\nabc\r\n0\r\n\r\n", 400},
      MalformedCase{"ChunkExtensionsTooLongOverManyChunks", [] {
          std::string r = "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n";
          for (int i = 0; i < 50; ++i) r += "1;" + std::string(100, 'e') + "\r\nx\r\n";  // 5,100 bytes of them
          return r + "0\r\n\r\n";
        }(), 400},
      MalformedCase{"SpaceAfterChunkSize", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3 \r\nabc\r\n0\r\n\r\n", 400},
      MalformedCase{"Http3Version", "GET /hello HTTP/3.0\r\nHost: t\r\n\r\n", 505},
      MalformedCase{"TlsClientHello",
          std::string("\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\x5a\x21\x00\x01\x02\x03", 17), 400},
      MalformedCase{"RandomBytes", std::string("\x8f\x00\xffq\x13\x07\xfe\r\n\r\n", 11), 400},
      MalformedCase{"BadChunkSize", "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400},
      MalformedCase{"Http2Version", "GET /hello HTTP/2.0\r\nHost: t\r\n\r\n", 505},
      MalformedCase{"UrlTooLong", "GET /" + std::string(600, 'u') + " HTTP/1.1\r\nHost: t\r\n\r\n", 414},
      MalformedCase{"HeadersTooLarge", "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: " + std::string(2100, 'h') + "\r\n\r\n", 431},
      MalformedCase{"ManyHeadersTooLarge", [] {
          std::string r = "GET /hello HTTP/1.1\r\nHost: t\r\n";
          for (int i = 0; i < 200; ++i) r += "X-H" + std::to_string(i) + ": v\r\n";
          return r + "\r\n";
        }(), 431},
      MalformedCase{"BodyTooLargeByLength", "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413},
      MalformedCase{"BodyTooLargeChunked",
          "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\n" + std::string(1001, 'b') + "\r\n0\r\n\r\n", 413}
  };
  return cases;
}

// The end of a request trickled in byte by byte under a 300 ms header_timeout: one 408, at the
// deadline, before the whole request was sent.
inline void expect_trickle_cut_off(const std::vector<HttpResponse>& r, size_t sent, size_t total,
                                   std::chrono::steady_clock::time_point began) {
  using namespace std::chrono_literals;
  ASSERT_EQ(r.size(), 1u) << "sent " << sent << " of " << total << " bytes";
  EXPECT_EQ(r[0].status, 408);
  auto took = std::chrono::steady_clock::now() - began;
  EXPECT_GE(took, 290ms);
  EXPECT_LT(took, 2s);
  EXPECT_LT(sent, total);
}

}  // namespace shoal::test
