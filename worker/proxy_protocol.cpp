#include "worker/proxy_protocol.hpp"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <string>

namespace shoal {
namespace {

constexpr unsigned char kV2Signature[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

ProxyHeader need_more() { return {}; }

ProxyHeader invalid(const char* why) {
  ProxyHeader h;
  h.status = ProxyHeader::Status::Invalid;
  h.why = why;
  return h;
}

// A prefix of `input` that could still become `whole`.
bool could_become(std::string_view input, std::string_view whole) {
  size_t n = std::min(input.size(), whole.size());
  return input.substr(0, n) == whole.substr(0, n);
}

bool parse_port(std::string_view text, uint16_t& port) {
  // 0 to 65535 in decimal, without leading zeros (the spec's "no leading zero" for ports).
  if (text.empty() || text.size() > 5 || (text.size() > 1 && text[0] == '0')) return false;
  unsigned value = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > 65535) return false;
  port = static_cast<uint16_t>(value);
  return true;
}

// "PROXY TCP4 192.0.2.1 198.51.100.1 56324 443\r\n"; "PROXY UNKNOWN ...\r\n".
ProxyHeader parse_v1(std::string_view input) {
  size_t crlf = input.find("\r\n");
  if (crlf == std::string_view::npos) {
    if (input.size() >= kMaxProxyV1Bytes) return invalid("v1 header longer than 107 bytes");
    if (input.find('\n') != std::string_view::npos) return invalid("v1 header ends with a bare LF");
    return need_more();
  }
  if (crlf + 2 > kMaxProxyV1Bytes) return invalid("v1 header longer than 107 bytes");
  std::string_view line = input.substr(6, crlf - 6);  // after "PROXY "
  ProxyHeader h;
  h.status = ProxyHeader::Status::Done;
  h.length = crlf + 2;
  if (line.starts_with("UNKNOWN")) return h;  // the rest of the line is ignored
  std::string_view parts[5];
  for (int i = 0; i < 5; ++i) {
    size_t space = line.find(' ');
    if ((i < 4) == (space == std::string_view::npos)) return invalid("v1 header: not 5 fields after PROXY");
    parts[i] = line.substr(0, space);
    if (parts[i].empty()) return invalid("v1 header: two spaces in a row");
    line = i < 4 ? line.substr(space + 1) : std::string_view();
  }
  bool v4 = parts[0] == "TCP4";
  if (!v4 && parts[0] != "TCP6") return invalid("v1 header: protocol is not TCP4, TCP6 or UNKNOWN");
  std::string source(parts[1]), destination(parts[2]);
  uint16_t source_port, destination_port;
  if (!parse_port(parts[3], source_port) || !parse_port(parts[4], destination_port))
    return invalid("v1 header: bad port");
  unsigned char scratch[16];
  if (v4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(&h.source);
    if (inet_pton(AF_INET, source.c_str(), &sin->sin_addr) != 1 || inet_pton(AF_INET, destination.c_str(), scratch) != 1)
      return invalid("v1 header: bad IPv4 address");
    sin->sin_family = AF_INET;
    sin->sin_port = htons(source_port);
    h.source_length = sizeof(sockaddr_in);
  } else {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&h.source);
    if (inet_pton(AF_INET6, source.c_str(), &sin6->sin6_addr) != 1 ||
        inet_pton(AF_INET6, destination.c_str(), scratch) != 1)
      return invalid("v1 header: bad IPv6 address");
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(source_port);
    h.source_length = sizeof(sockaddr_in6);
  }
  h.has_address = true;
  return h;
}

// 12-byte signature, version (high nibble 2) and command (0 LOCAL, 1 PROXY), family and
// protocol, a 16-bit length, the addresses, then TLVs (skipped: shoal needs none of them).
ProxyHeader parse_v2(std::string_view input) {
  if (input.size() < 16) {
    return need_more();
  }
  auto byte = [&](size_t i) { return static_cast<unsigned char>(input[i]); };
  if ((byte(12) >> 4) != 2) return invalid("v2 header: version is not 2");
  unsigned command = byte(12) & 0x0F;
  if (command > 1) return invalid("v2 header: command is neither LOCAL nor PROXY");
  size_t length = (static_cast<size_t>(byte(14)) << 8) | byte(15);
  if (16 + length > kMaxProxyV2Bytes) return invalid("v2 header longer than shoal accepts (1040 bytes)");
  if (input.size() < 16 + length) {
    return need_more();
  }
  ProxyHeader h;
  h.status = ProxyHeader::Status::Done;
  h.length = 16 + length;
  if (command == 0) return h;  // LOCAL: the balancer's own connection (a health check)
  unsigned family = byte(13) >> 4, transport = byte(13) & 0x0F;
  if (family == 0) return h;   // UNSPEC: unknown to the sender; keep the socket's address
  if (family > 3 || transport > 2) return invalid("v2 header: unknown address family or protocol");
  const unsigned char* block = reinterpret_cast<const unsigned char*>(input.data()) + 16;
  if (family == 1) {  // AF_INET: source, destination, source port, destination port
    if (length < 12) return invalid("v2 header: too short for IPv4 addresses");
    auto* sin = reinterpret_cast<sockaddr_in*>(&h.source);
    sin->sin_family = AF_INET;
    memcpy(&sin->sin_addr, block, 4);
    memcpy(&sin->sin_port, block + 8, 2);
    h.source_length = sizeof(sockaddr_in);
    h.has_address = true;
  } else if (family == 2) {
    if (length < 36) return invalid("v2 header: too short for IPv6 addresses");
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(&h.source);
    sin6->sin6_family = AF_INET6;
    memcpy(&sin6->sin6_addr, block, 16);
    memcpy(&sin6->sin6_port, block + 32, 2);
    h.source_length = sizeof(sockaddr_in6);
    h.has_address = true;
  } else if (length < 216) {  // AF_UNIX: two 108-byte paths; kept as the socket's address
    return invalid("v2 header: too short for unix addresses");
  }
  return h;
}

}  // namespace

ProxyHeader parse_proxy_header(std::string_view input, ProxyProtocol mode) {
  std::string_view signature(reinterpret_cast<const char*>(kV2Signature), sizeof kV2Signature);
  bool v1_allowed = mode == ProxyProtocol::V1 || mode == ProxyProtocol::Any;
  bool v2_allowed = mode == ProxyProtocol::V2 || mode == ProxyProtocol::Any;
  bool maybe_v1 = v1_allowed && could_become(input, "PROXY ");
  bool maybe_v2 = v2_allowed && could_become(input, signature);
  if (!maybe_v1 && !maybe_v2) return invalid(mode == ProxyProtocol::V2 ? "no PROXY v2 signature" : "no PROXY header");
  if (maybe_v1 && input.size() >= 6) return parse_v1(input);
  if (maybe_v2 && input.size() >= signature.size()) return parse_v2(input);
  return need_more();
}

}  // namespace shoal
