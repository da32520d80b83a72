// Listen addresses: parsing the config's forms and binding them in the master.
#pragma once

#include <sys/socket.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace shoal {

// Whether a listener's connections start with a PROXY protocol header (worker/proxy_protocol.hpp).
enum class ProxyProtocol : uint8_t { Off, V1, V2, Any };

struct ListenAddress {
  enum class Kind { Tcp4, Tcp6, Unix } kind = Kind::Tcp4;
  ProxyProtocol proxy_protocol = ProxyProtocol::Off;
  std::string text;       // as written in the config: "127.0.0.1:8080", "[::1]:8080", "unix:/run/x.sock"
  sockaddr_storage addr{};
  socklen_t addr_len = 0;
  std::string unix_path;  // absolute, for Kind::Unix
  std::string name = "http";  // LISTEN_FDNAMES for an [app]: what the program calls this socket
  bool metrics = false;       // [metrics] listen: it answers only the metrics path
};

// Parses "host:port", "[v6]:port", "*:port" (all IPv4 addresses), "localhost:port", or "unix:PATH".
// A relative unix path is resolved against base_dir. Returns nullopt and fills err when unusable.
std::optional<ListenAddress> parse_listen(std::string_view text, const std::string& base_dir,
                                          std::string& err);

// "127.0.0.1:8080", "[::1]:8080", "unix:/path" for a bound or accepted socket address.
std::string format_sockaddr(const sockaddr* sa, socklen_t len);

// An IPv4 or IPv6 network, "10.0.0.0/8" or "2001:db8::/32" (a bare address is /32 or /128).
struct Cidr {
  int family = 0;  // AF_INET or AF_INET6
  unsigned char bytes[16] = {};
  int prefix = 0;
  static std::optional<Cidr> parse(std::string_view text);
  std::string to_string() const;  // "10.0.0.0/8", "::1/128"
  // An IPv4-mapped IPv6 address (::ffff:a.b.c.d) matches as the IPv4 address it carries.
  bool contains(int family, const unsigned char* address) const;
};

// Binds and listens, close-on-exec, non-blocking, SO_REUSEADDR (TCP). For a unix path, a stale
// socket file (nobody accepting on it) is removed first; a live one or a non-socket file is an error.
// Returns the fd, or -1 with err naming the system call and address.
int bind_listener(const ListenAddress& address, int backlog, std::string& err);

// The address a listening fd is actually bound to (resolves port 0 to the ephemeral port).
std::string bound_address(int fd);

}  // namespace shoal
