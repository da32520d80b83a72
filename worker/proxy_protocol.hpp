// The PROXY protocol header a balancer (HAProxy's send-proxy / send-proxy-v2) puts before the
// first request of a connection, carrying the client's address: version 1 (one text line) and
// version 2 (binary), per haproxy's proxy-protocol.txt (Debian: /usr/share/doc/haproxy/). Debian
// packages no C or C++ library for it; this parser is small, pure and fuzzed
// (tests/proxy_protocol_test.cpp has a test per rule of the spec).
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>

#include <cstddef>
#include <string_view>

#include "common/net.hpp"

namespace shoal {

// The longest header accepted: v1's is at most 107 bytes by the spec; v2's declares its length,
// and one longer than this (addresses and TLVs) is refused.
constexpr size_t kMaxProxyV1Bytes = 107;
constexpr size_t kMaxProxyV2Bytes = 16 + 1024;

struct ProxyHeader {
  enum class Status { NeedMore, Invalid, Done } status = Status::NeedMore;
  size_t length = 0;         // Done: the header's bytes, to skip before the first request
  bool has_address = false;  // Done: false for v1 UNKNOWN and v2 LOCAL / UNSPEC / unix: keep the socket's
  sockaddr_storage source{};
  socklen_t source_length = 0;
  const char* why = "";      // Invalid: what was wrong, for the log
};

// Parses the start of a connection's input for a listener in `mode` (not Off).
ProxyHeader parse_proxy_header(std::string_view input, ProxyProtocol mode);

}  // namespace shoal
