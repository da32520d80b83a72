// RFC 9110 and RFC 9112, clause by clause, as a server must or should act: the request sent,
// and what shoal does. Every row runs in-process (tests/http_test.cpp) and against the real
// binary (tests/hardening_test.cpp), with the routes of kConformanceRoutes beside /hello and /echo. A row sends its request with a canary GET /hello behind it
// in the same write: a row that keeps the connection must answer the canary too, in order, and
// a row that closes must not (that is what catches a framing error: a smuggled request).
// Rows that refuse a request name their case in malformed_requests.hpp, where the bytes are.
// `departs` says where shoal deliberately does other than a SHOULD or a MAY allows, and why.
#pragma once

#include <string>
#include <vector>

#include "support/malformed_requests.hpp"

namespace shoal::test {

struct ConformanceRow {
  const char* clause;       // "RFC 9112 6.1"
  const char* requirement;  // the MUST / SHOULD, in a few words
  std::string request;
  int status;               // of the first response
  bool closes;              // the connection closes after it, and the canary is not answered
  std::string header = {};  // a header the first response must carry ("name: value"; "name:" = any value)
  std::string body = {};    // the first response's body, when it matters
  const char* departs = nullptr;
  bool in_process_only = false;  // needs the in-process fixture's application route /host
  friend void PrintTo(const ConformanceRow& r, std::ostream* os) { *os << r.clause << ": " << r.requirement; }
};

// A refusal row: the bytes and status of the named malformed case; the connection closes.
inline ConformanceRow refused(const char* clause, const char* requirement, const char* malformed_name,
                              const char* departs = nullptr) {
  for (const MalformedCase& c : malformed_requests())
    if (std::string(c.name) == malformed_name) return {clause, requirement, c.request, c.status, true, {}, {}, departs};
  ADD_FAILURE() << "no malformed case " << malformed_name;
  return {clause, requirement, "", 0, true};
}

// Routes the rows use besides /hello (body "ok\n") and /echo: a static root holding hello.txt,
// and a 204.
constexpr const char* kConformanceRoutes = R"([[route]]
path = "/teapot"
status = 418
body = "short and stout\n"
content_type = "text/x-tea"
[[route]]
path = "/files/"
root = "www"
[[route]]
path = "/nothing"
status = 204
)";

inline const std::vector<ConformanceRow>& conformance_rows() {
  static const std::vector<ConformanceRow> rows = {
      // ---- RFC 9112 2: message format
      {"RFC 9112 2.2", "SHOULD ignore at least one empty line before the request-line",
       "\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200, false},
      refused("RFC 9112 2.2", "MAY accept a bare LF as a line end", "BareLf",
              "refused with 400: a proxy in front may end the line elsewhere (a smuggling vector)"),
      refused("RFC 9112 2.2", "a bare CR MUST be treated as invalid or replaced", "BareCrInHeader"),
      refused("RFC 9112 2.2", "MUST reject whitespace between the start-line and the first field",
              "WhitespaceBeforeFirstField"),
      refused("RFC 9112 2.3", "HTTP-version is case-sensitive", "LowercaseVersion"),
      {"RFC 9112 2.3 / RFC 9110 2.5", "a higher 1.x minor SHOULD be processed as the highest supported (1.1)",
       "GET /hello HTTP/1.9\r\nHost: t\r\n\r\n", 200, false, "connection: keep-alive"},
      refused("RFC 9110 2.5 / 15.6.6", "a major version not implemented: 505", "Http2Version"),
      refused("RFC 9112 2.3", "HTTP/0.9 (no version) is not HTTP/1.x: 505, close", "Http09WithoutEmptyLine"),
      // ---- RFC 9112 3: request line
      refused("RFC 9112 3", "method SP target SP version, single spaces (SHOULD 400 when invalid)",
              "TwoSpacesBeforeTarget"),
      refused("RFC 9112 3", "single SP before the version", "TwoSpacesBeforeVersion"),
      refused("RFC 9112 3", "SP, not HTAB, separates the parts", "TabInRequestLine"),
      refused("RFC 9112 3 / RFC 9110 9.1", "the method is case-sensitive: 'get' is unknown, 501", "LowercaseMethod"),
      refused("RFC 9110 9.1 / 15.6.2", "an unknown method SHOULD get 501", "UnknownMethod"),
      refused("RFC 9112 3.2", "a target longer than the server parses MUST get 414", "UrlTooLong"),
      refused("RFC 9112 3.2", "a target that is not one of the four forms: 400", "TargetNotAPath"),
      refused("RFC 9112 3.2", "HTTP/1.1 without Host MUST get 400", "MissingHost"),
      refused("RFC 9112 3.2", "more than one Host MUST get 400", "TwoHosts"),
      refused("RFC 9112 3.2 / RFC 9110 7.2", "an invalid Host value MUST get 400", "HostWithSpace"),
      refused("RFC 9110 4.2.4 / 7.2", "no userinfo in an http authority", "HostWithUserinfo"),
      refused("RFC 9110 7.2", "port is digits", "HostWithBadPort"),
      {"RFC 9112 3.2 / 3.2.1", "HTTP/1.0 may omit Host", "GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", 200,
       false},
      {"RFC 9112 3.2.2", "a server MUST accept the absolute-form; the target's path is routed",
       "GET http://example.com/hello HTTP/1.1\r\nHost: example.com\r\n\r\n", 200, false, {}, "ok\n"},
      {"RFC 9112 3.2.2", "the absolute-form's authority replaces Host (MUST ignore Host)",
       "GET HTTP://other.example:8080/host HTTP/1.1\r\nHost: example.com\r\n\r\n", 200, false, {},
       "other.example:8080", nullptr, true},
      {"RFC 9112 3.2.2 / RFC 9110 4.2.3", "an absolute-form without a path is the root '/'",
       "GET http://example.com HTTP/1.1\r\nHost: example.com\r\n\r\n", 404, false, {}, "not found\n"},
      refused("RFC 9112 3.2.2", "the absolute-form's authority is a valid host", "AbsoluteFormWithBadAuthority"),
      refused("RFC 9112 3.2.3 / RFC 9110 9.3.6", "CONNECT (authority-form): a tunnel this server does not make: 501",
              "Connect"),
      {"RFC 9112 3.2.4", "the asterisk-form is for OPTIONS: '*' is no resource here",
       "OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", 404, false, {}, {}, "404: no route is '*'; no server-wide OPTIONS"},
      refused("RFC 9112 3.2.4", "'*' with another method: 400", "AsteriskWithGet"),
      // ---- RFC 9112 5 / RFC 9110 5: fields
      refused("RFC 9112 5.1", "whitespace between field name and colon MUST get 400", "SpaceBeforeColon"),
      refused("RFC 9112 5.1", "tab between field name and colon MUST get 400", "TabBeforeColon"),
      refused("RFC 9112 5.1 / RFC 9110 5.1", "a field name is a token: an empty one is invalid", "EmptyFieldName"),
      refused("RFC 9112 5.2", "obs-fold MAY be rejected with 400", "ObsFold",
              "rejected: a proxy in front may unfold it differently"),
      refused("RFC 9110 5.5", "CR, LF or NUL in a value MUST be rejected or replaced", "NulInHeader"),
      refused("RFC 9110 5.5", "other controls in a value", "ControlCharInHeaderValue"),
      {"RFC 9110 5.6.3", "OWS is SP or HTAB: 'Content-Length:<HTAB>5' is valid",
       "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length:\t5\r\n\r\nhello", 200, false, {}, "hello"},
      {"RFC 9110 5.5", "leading and trailing OWS is not part of the value",
       "GET /host HTTP/1.1\r\nHost: \t example.com \t\r\n\r\n", 200, false, {}, "example.com", nullptr, true},
      refused("RFC 9110 5.5", "... nor of Content-Length's", "LengthWithTrailingWhitespace",
              "refused with 400 by llhttp 8.1, Debian 12's: the safe side (a request refused is not misframed)"),
      refused("RFC 9110 5.4 / RFC 6585 5", "a header section larger than the server handles: 431", "HeadersTooLarge"),
      refused("RFC 9110 5.4 / RFC 6585 5", "more fields than the server handles ([http] max_header_fields): 431",
              "TooManyFields"),
      // ---- RFC 9112 6: message body
      refused("RFC 9112 6.1", "Transfer-Encoding in HTTP/1.0 MUST be treated as faulty framing, then close",
              "Http10Chunked"),
      refused("RFC 9112 6.1", "... even with Content-Length", "Http10ChunkedWithLength"),
      refused("RFC 9112 6.1 / 6.3", "Transfer-Encoding with Content-Length MAY be rejected; MUST close after",
              "LengthAndChunked"),
      refused("RFC 9112 6.3", "a Transfer-Encoding whose final coding is not chunked MUST get 400, close",
              "TransferEncodingNotChunked"),
      refused("RFC 9112 6.3", "chunked applied twice", "ChunkedTwice"),
      refused("RFC 9112 6.1", "a transfer coding the server does not understand SHOULD get 501", "GzipThenChunked"),
      refused("RFC 9112 6.1 / RFC 9110 5.3", "... also when the codings come in two fields", "GzipAndChunkedInTwoFields"),
      {"RFC 9112 7", "transfer-coding names are case-insensitive",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: Chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n", 200, false, {}, "ok"},
      refused("RFC 9112 6.3 / RFC 9110 8.6", "differing Content-Length values: unrecoverable, 400", "DoubleLength"),
      refused("RFC 9110 8.6", "a list of identical Content-Length values MAY be accepted", "CommaListOfLengths",
              "refused with 400: no client sends it, and a proxy in front may pick another"),
      refused("RFC 9112 6.3", "an invalid Content-Length MUST get 400", "SignedLength"),
      refused("RFC 9112 6.3", "a Content-Length past 64 bits", "LengthOverflow"),
      {"RFC 9112 6.3", "no Content-Length and no Transfer-Encoding: a request body of length 0",
       "POST /echo HTTP/1.1\r\nHost: t\r\n\r\n", 200, false, "content-length: 0"},
      refused("RFC 9112 6.3 / RFC 9110 15.5.14", "a body larger than the server accepts: 413", "BodyTooLargeByLength"),
      // ---- RFC 9112 7: chunked
      {"RFC 9112 7.1", "a chunked body is decoded",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n", 200, false,
       {}, "abcde"},
      {"RFC 9112 7.1", "chunk-size is hex, any case, leading zeros allowed",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n00A\r\n0123456789\r\n0\r\n\r\n", 200, false,
       {}, "0123456789"},
      refused("RFC 9112 7.1", "an invalid chunk-size: 400", "BadChunkSize"),
      {"RFC 9112 7.1.1", "a recipient MUST ignore unrecognized chunk extensions",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3;a=1;b=\"x y\"\r\nabc\r\n0;z\r\n\r\n", 200,
       false, {}, "abc"},
      {"RFC 9112 7.1.1 / RFC 9110 5.6.3", "BWS around ';' and '=' MUST be parsed and removed",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3 ; a = 1\t;\tb\r\nabc\r\n0\r\n\r\n", 200,
       false, {}, "abc"},
      refused("RFC 9112 7.1", "whitespace after the size with no extension is not BWS", "SpaceAfterChunkSize"),
      refused("RFC 9112 7.1.1", "chunk extensions are limited ([http] max_chunk_ext_bytes): 400",
              "ChunkExtensionsTooLong"),
      refused("RFC 9112 7.1.1", "... summed over a request's chunks", "ChunkExtensionsTooLongOverManyChunks"),
      {"RFC 9112 7.1.2", "trailer fields after the last chunk are read (and not merged into the header)",
       "POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX-Sum: 1\r\n\r\n", 200,
       false, {}, "abc"},
      refused("RFC 9112 7.1 / RFC 9110 15.5.14", "a chunked body larger than the server accepts: 413",
              "BodyTooLargeChunked"),
      // ---- RFC 9112 9: connections
      {"RFC 9112 9.3", "HTTP/1.1 persists by default", "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200, false,
       "connection: keep-alive"},
      {"RFC 9112 9.3 / 9.6", "'close' MUST end the connection after the response",
       "GET /hello HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n", 200, true, "connection: close"},
      {"RFC 9112 9.3", "HTTP/1.0 closes unless keep-alive is asked", "GET /hello HTTP/1.0\r\n\r\n", 200, true,
       "connection: close"},
      {"RFC 9112 9.3.1", "pipelined requests are answered in order (the canary follows)",
       "GET /teapot HTTP/1.1\r\nHost: t\r\n\r\n", 418, false},
      // ---- RFC 9110 6, 9, 10, 15: semantics the server itself owns
      {"RFC 9110 6.6.1", "an origin server with a clock MUST send Date", "GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200,
       false, "date:"},
      {"RFC 9110 9.3.2", "HEAD: the headers of GET and no body (the canary's response is not eaten)",
       "HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n", 200, false, "content-length: 3"},
      {"RFC 9110 10.1.1", "100-continue is answered before the body is read",
       "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\nExpect: 100-continue\r\n\r\nhi", 200, false, {}, "hi"},
      {"RFC 9110 10.1.1", "an unknown expectation MAY get 417",
       "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nExpect: coffee\r\n\r\nx", 417, true},
      // ---- RFC 9110 8.8, 13, 14: static files (www/hello.txt is "hello file\n")
      {"RFC 9110 8.8.2 / 8.8.3", "validators: Last-Modified and a strong ETag",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", 200, false, "etag:", "hello file\n"},
      {"RFC 9110 13.1.2", "If-None-Match: * matches a file that exists: 304 for GET",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nIf-None-Match: *\r\n\r\n", 304, false, "etag:"},
      {"RFC 9110 13.1.3", "If-Modified-Since not before Last-Modified: 304",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: Fri, 01 Jan 2100 00:00:00 GMT\r\n\r\n", 304,
       false},
      {"RFC 9110 13.1.3", "an invalid date in If-Modified-Since MUST be ignored",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: tomorrow\r\n\r\n", 200, false, {},
       "hello file\n"},
      {"RFC 9110 13.1.1", "If-Match that names no current tag: 412",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nIf-Match: \"other\"\r\n\r\n", 412, false},
      {"RFC 9110 13.1.4", "If-Unmodified-Since before Last-Modified: 412",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nIf-Unmodified-Since: Thu, 01 Jan 1970 00:00:00 GMT\r\n\r\n",
       412, false},
      {"RFC 9110 14.2 / 15.3.7", "one byte range: 206 with Content-Range",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\n\r\n", 206, false,
       "content-range: bytes 0-4/11", "hello"},
      {"RFC 9110 14.1.2", "a suffix range: the last N bytes",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=-5\r\n\r\n", 206, false, {}, "file\n"},
      {"RFC 9110 14.2 / 15.5.17", "a range past the end: 416 with Content-Range: bytes */size",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=50-\r\n\r\n", 416, false, "content-range: bytes */11"},
      {"RFC 9110 14.2", "several ranges MAY be answered with the whole representation",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-1,3-4\r\n\r\n", 200, false, {}, "hello file\n",
       "200 with the whole file: no multipart/byteranges"},
      {"RFC 9110 13.1.5", "If-Range that does not name the current file: the whole file",
       "GET /files/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\nIf-Range: \"old\"\r\n\r\n", 200, false, {},
       "hello file\n"},
      {"RFC 9110 14.2", "Range is for GET: HEAD ignores it",
       "HEAD /files/hello.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=0-4\r\n\r\n", 200, false, "content-length: 11"},
      {"RFC 9110 8.6 / 15.3.5", "no Content-Length (and no content) in a 204",
       "GET /nothing HTTP/1.1\r\nHost: t\r\n\r\n", 204, false},
      {"RFC 9110 15.5.6", "405 MUST carry Allow", "POST /files/hello.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
       405, false, "allow: GET, HEAD"},
  };
  // Clauses whose test is not a request and its answer, and where it is:
  // - RFC 9112 4 / RFC 9110 6.2: the status line is HTTP/1.1 whatever the request's version
  //   (tests/vtc/framing.vtc, resp.proto after an HTTP/1.9 request).
  // - RFC 9112 8 and 9.5: an incomplete request is answered 408 at header_timeout / body_timeout
  //   (HttpTest.HeaderTimeout*, BodyTimeout*; Hardening.ATricklingClientIsCutOffAtTheHeaderDeadline).
  // - RFC 9112 9.6: a refused request's unread input is read away before the close, so that the
  //   client reads the 4xx instead of a reset: every refusal row here, whose canary is left
  //   unread behind the bad request, ends in a clean EOF, not a reset.
  // - RFC 9112 7.2 / 7.3 (TE), 9.7-9.8 (TLS), 10 (message/http); RFC 9110 7.4 (421): not
  //   applicable: shoal sends no chunked or compressed responses, speaks no TLS and has no
  //   virtual hosts.
  return rows;
}

// Checks one row's answer: the first response's status, header and body; then the canary's
// answer (a GET /hello behind it) when the connection stays, or the close when it does not.
inline void expect_row(const ConformanceRow& row, const std::vector<HttpResponse>& r, Eof eof, const std::string& raw) {
  ASSERT_GE(r.size(), 1u) << raw;
  EXPECT_EQ(r[0].status, row.status) << raw;
  if (!row.header.empty()) {
    auto colon = row.header.find(':');
    std::string name = row.header.substr(0, colon), value = row.header.substr(colon + 1);
    if (value.starts_with(' ')) value.erase(0, 1);
    EXPECT_FALSE(r[0].header(name).empty()) << name << " missing: " << raw;
    if (!value.empty()) EXPECT_EQ(r[0].header(name), value) << raw;
  }
  if (!row.body.empty()) EXPECT_EQ(r[0].body, row.body) << raw;
  if (row.status == 204 || row.status == 304) EXPECT_EQ(r[0].header("content-length"), "") << raw;
  if (row.closes) {
    EXPECT_EQ(r.size(), 1u) << "the canary was answered: " << raw;
    EXPECT_EQ(r[0].header("connection"), "close");
    EXPECT_EQ(eof, Eof::Clean) << raw;
  } else {
    ASSERT_EQ(r.size(), 2u) << "the canary was not answered: " << raw;
    EXPECT_EQ(r[1].status, 200) << raw;
    EXPECT_EQ(r[1].body, "ok\n") << raw;
  }
}

}  // namespace shoal::test
