#include "common/net.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <charconv>
#include <cstring>

#include "common/sys.hpp"

namespace shoal {
namespace {

std::optional<uint16_t> parse_port(std::string_view text) {
  unsigned value = 0;
  if (text.empty() || text.size() > 5) return std::nullopt;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (ec != std::errc() || end != text.data() + text.size() || value > 65535) return std::nullopt;
  return static_cast<uint16_t>(value);
}

std::string parent_dir(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == 0 ? "/" : path.substr(0, slash);
}

}  // namespace

std::optional<ListenAddress> parse_listen(std::string_view text, const std::string& base_dir,
                                          std::string& err) {
  ListenAddress out;
  out.text = std::string(text);
  if (text.starts_with("unix:")) {
    std::string path(text.substr(5));
    if (path.empty()) return err = "unix socket path is empty", std::nullopt;
    if (path[0] != '/') path = base_dir + "/" + path;
    sockaddr_un sun{};
    if (path.size() >= sizeof sun.sun_path)
      return err = "unix socket path is longer than " + std::to_string(sizeof sun.sun_path - 1) +
                   " bytes",
             std::nullopt;
    struct stat st;
    std::string dir = parent_dir(path);
    if (stat(dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
      return err = "directory " + dir + " does not exist", std::nullopt;
    sun.sun_family = AF_UNIX;
    memcpy(sun.sun_path, path.c_str(), path.size() + 1);
    out.kind = ListenAddress::Kind::Unix;
    out.unix_path = path;
    memcpy(&out.addr, &sun, sizeof sun);
    out.addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size() + 1);
    return out;
  }

  std::string_view host, port_text;
  if (text.starts_with("[")) {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return err = "expected \"[IPv6]:port\"", std::nullopt;
    host = text.substr(1, close - 1);
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos)
      return err = "expected \"host:port\", \"[IPv6]:port\" or \"unix:/path\"", std::nullopt;
    host = text.substr(0, colon);
    port_text = text.substr(colon + 1);
    if (host.find(':') != std::string_view::npos)
      return err = "an IPv6 address must be written in brackets, as \"[::1]:8080\"", std::nullopt;
  }
  auto port = parse_port(port_text);
  if (!port) return err = "port '" + std::string(port_text) + "' is not a number from 0 to 65535", std::nullopt;

  std::string host_str(host);
  if (host_str == "*" || host_str.empty()) host_str = "0.0.0.0";
  if (host_str == "localhost") host_str = "127.0.0.1";
  sockaddr_in sin{};
  sockaddr_in6 sin6{};
  if (inet_pton(AF_INET, host_str.c_str(), &sin.sin_addr) == 1) {
    sin.sin_family = AF_INET;
    sin.sin_port = htons(*port);
    out.kind = ListenAddress::Kind::Tcp4;
    memcpy(&out.addr, &sin, sizeof sin);
    out.addr_len = sizeof sin;
  } else if (inet_pton(AF_INET6, host_str.c_str(), &sin6.sin6_addr) == 1) {
    sin6.sin6_family = AF_INET6;
    sin6.sin6_port = htons(*port);
    out.kind = ListenAddress::Kind::Tcp6;
    memcpy(&out.addr, &sin6, sizeof sin6);
    out.addr_len = sizeof sin6;
  } else {
    return err = "host '" + host_str + "' is not an IP address (names other than localhost are not resolved)",
           std::nullopt;
  }
  return out;
}

std::string format_sockaddr(const sockaddr* sa, socklen_t len) {
  char buf[INET6_ADDRSTRLEN] = "?";
  switch (sa->sa_family) {
    case AF_INET: {
      auto* sin = reinterpret_cast<const sockaddr_in*>(sa);
      inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof buf);
      return std::string(buf) + ":" + std::to_string(ntohs(sin->sin_port));
    }
    case AF_INET6: {
      auto* sin6 = reinterpret_cast<const sockaddr_in6*>(sa);
      inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof buf);
      std::string out = "[";  // appended piecewise: GCC 12 warns falsely on "[" + std::string&&
      out.append(buf).append("]:").append(std::to_string(ntohs(sin6->sin6_port)));
      return out;
    }
    case AF_UNIX: {
      auto* sun = reinterpret_cast<const sockaddr_un*>(sa);
      if (len <= offsetof(sockaddr_un, sun_path) || sun->sun_path[0] == '\0') return "unix:";
      return "unix:" + std::string(sun->sun_path);
    }
  }
  return "unknown";
}

std::string bound_address(int fd) {
  sockaddr_storage ss{};
  socklen_t len = sizeof ss;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) != 0) return "?";
  return format_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);
}

int bind_listener(const ListenAddress& address, int backlog, std::string& err) {
  const auto* sa = reinterpret_cast<const sockaddr*>(&address.addr);
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = "socket(" + address.text + ") failed: " + errno_text(errno);
    return -1;
  }
  auto fail = [&](const char* call) {
    err = std::string(call) + "(" + address.text + ") failed: " + errno_text(errno);
    close(fd);
    return -1;
  };
  int one = 1;
  if (address.kind != ListenAddress::Kind::Unix &&
      setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0)
    return fail("setsockopt(SO_REUSEADDR)");
  // "[::]:8080" means IPv6 only; "0.0.0.0:8080" can then be listed beside it without a clash.
  if (address.kind == ListenAddress::Kind::Tcp6 &&
      setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one) != 0)
    return fail("setsockopt(IPV6_V6ONLY)");

  if (address.kind == ListenAddress::Kind::Unix) {
    struct stat st;
    if (lstat(address.unix_path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode)) {
        errno = EEXIST;
        err = "bind(" + address.text + ") failed: the path exists and is not a socket";
        close(fd);
        return -1;
      }
      // A socket file is stale when nobody accepts on it; a live one belongs to another server.
      int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      bool live = probe >= 0 && connect(probe, sa, address.addr_len) == 0;
      if (probe >= 0) close(probe);
      if (live) {
        err = "bind(" + address.text + ") failed: another process is accepting on this socket";
        close(fd);
        return -1;
      }
      if (unlink(address.unix_path.c_str()) != 0) return fail("unlink(stale socket)");
    }
  }
  if (bind(fd, sa, address.addr_len) != 0) return fail("bind");
  if (listen(fd, backlog) != 0) return fail("listen");
  return fd;
}

}  // namespace shoal

namespace shoal {

std::string Cidr::to_string() const {
  char text[INET6_ADDRSTRLEN] = {};
  inet_ntop(family, bytes, text, sizeof text);
  return std::string(text) + "/" + std::to_string(prefix);
}

std::optional<Cidr> Cidr::parse(std::string_view text) {
  Cidr out;
  size_t slash = text.find('/');
  std::string address(text.substr(0, slash));
  if (inet_pton(AF_INET, address.c_str(), out.bytes) == 1) {
    out.family = AF_INET, out.prefix = 32;
  } else if (inet_pton(AF_INET6, address.c_str(), out.bytes) == 1) {
    out.family = AF_INET6, out.prefix = 128;
  } else {
    return std::nullopt;
  }
  if (slash != std::string_view::npos) {
    std::string_view bits = text.substr(slash + 1);
    int prefix = -1;
    auto [end, ec] = std::from_chars(bits.data(), bits.data() + bits.size(), prefix);
    if (ec != std::errc() || end != bits.data() + bits.size() || prefix < 0 || prefix > out.prefix) return std::nullopt;
    out.prefix = prefix;
  }
  return out;
}

bool Cidr::contains(int address_family, const unsigned char* address) const {
  static const unsigned char kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (address_family == AF_INET6 && family == AF_INET && memcmp(address, kMapped, 12) == 0)
    return contains(AF_INET, address + 12);
  if (address_family != family) return false;
  int full = prefix / 8, rest = prefix % 8;
  if (memcmp(address, bytes, static_cast<size_t>(full)) != 0) return false;
  if (rest == 0) return true;
  unsigned char mask = static_cast<unsigned char>(0xff << (8 - rest));
  return (address[full] & mask) == (bytes[full] & mask);
}

}  // namespace shoal
