// The access log's line formats: nginx's and Apache's "combined", or one JSON object per line.
// Both append to a reused buffer (no allocation once it has grown) and escape every value that
// came from the client, so that no header can break a line or forge a field.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace shoal {

struct AccessRecord {
  std::string_view address;  // "127.0.0.1", "::1", "unix:", or what trusted forwarding headers named
  int port = -1;             // the peer's port, -1 for none (a unix socket, a forwarded address)
  std::string_view method, target;
  int http_major = 1, http_minor = 1;
  int status = 0;
  uint64_t body_bytes = 0;
  int64_t duration_us = 0;
  std::string_view referer, user_agent;  // empty when the request had none
  std::string_view request_id;           // the client's valid X-Request-Id, or shoal's own
};

// Who wrote the line, for the JSON format.
struct AccessIdentity {
  int worker = 0;
  long pid = 0;
  uint64_t generation = 0;
};

// remote - - [time_local] "METHOD target HTTP/x.y" status bytes "referer" "user-agent"
// time_local as nginx's $time_local: "01/Dec/2026:15:04:05 +0100". Bytes that are a quote, a
// backslash, a control character or not ASCII are written \xHH, as nginx does.
void append_combined(std::string& out, const AccessRecord& r, std::string_view time_local);

// {"time":"2026-12-01T15:04:05.123+01:00","remote_addr":...,"worker":0,"pid":4242,"generation":3}
// time_rfc3339: the time with milliseconds and offset. Strings are JSON-escaped; bytes that are
// not valid UTF-8 become U+FFFD, so every line is valid JSON whatever the client sent.
void append_json(std::string& out, const AccessRecord& r, std::string_view time_rfc3339, const AccessIdentity& who);

// A client's X-Request-Id shoal logs as it is: 1 to 128 of A-Z a-z 0-9 and - _ . : + / = ~
// (UUIDs, ULIDs, base64 and the like). Anything else is replaced by an id of shoal's own.
bool is_valid_request_id(std::string_view id);

}  // namespace shoal
