#include "master/listeners.hpp"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "common/net.hpp"
#include "common/sys.hpp"
#include "master/faults.hpp"

namespace shoal {

std::string ListenerSet::key(const ListenAddress& address) {
  // The socket address itself: "localhost:8080" and "127.0.0.1:8080" are one socket.
  return std::string(reinterpret_cast<const char*>(&address.addr), address.addr_len);
}

bool ListenerSet::bind_missing(const Config& config, std::string& err) {
  std::vector<std::string> added;
  for (const ListenAddress& address : config.server.listen) {
    auto it = by_address_.find(key(address));
    if (it != by_address_.end()) {
      // Linux applies a new backlog to a listening socket on a second listen().
      if (listen(it->second.fd, config.server.backlog) != 0)
        spdlog::warn("listen({}, backlog {}) failed: {}; the old backlog stays", address.text, config.server.backlog,
                     errno_text(errno));
      continue;
    }
    int fd = bind_listener(address, config.server.backlog, err);
    if (fd >= 0 && fault_injected(FaultPoint::Bind)) {
      err = "bind(" + address.text + ") failed: " + errno_text(errno);
      ::close(fd), fd = -1;
    }
    if (fd < 0) {
      for (const std::string& k : added) {
        close_entry(by_address_.at(k));
        by_address_.erase(k);
      }
      return false;
    }
    by_address_.emplace(key(address), Entry{address, fd});
    added.push_back(key(address));
    if (address.metrics)
      spdlog::info("listening on {}{}{} (fd {}, [metrics])", address.kind == ListenAddress::Kind::Unix ? "" : "http://",
                   bound_address(fd), config.metrics.path, fd);
    else
      spdlog::info("listening on {}{} (fd {})", address.kind == ListenAddress::Kind::Unix ? "" : "http://",
                   bound_address(fd), fd);
  }
  return true;
}

namespace {

// The same socket address, or (for a config entry with port 0) the same family and IP.
bool same_address(const ListenAddress& wanted, const sockaddr_storage& bound, socklen_t bound_len) {
  if (wanted.addr_len == bound_len && memcmp(&wanted.addr, &bound, bound_len) == 0) return true;
  if (wanted.kind == ListenAddress::Kind::Tcp4 && bound.ss_family == AF_INET) {
    auto* w = reinterpret_cast<const sockaddr_in*>(&wanted.addr);
    auto* b = reinterpret_cast<const sockaddr_in*>(&bound);
    return w->sin_port == 0 && w->sin_addr.s_addr == b->sin_addr.s_addr;
  }
  if (wanted.kind == ListenAddress::Kind::Tcp6 && bound.ss_family == AF_INET6) {
    auto* w = reinterpret_cast<const sockaddr_in6*>(&wanted.addr);
    auto* b = reinterpret_cast<const sockaddr_in6*>(&bound);
    return w->sin6_port == 0 && memcmp(&w->sin6_addr, &b->sin6_addr, sizeof w->sin6_addr) == 0;
  }
  return false;
}

}  // namespace

void ListenerSet::adopt(const std::vector<int>& fds, const Config& config) {
  for (int fd : fds) {
    sockaddr_storage bound{};
    socklen_t len = sizeof bound;
    const ListenAddress* match = nullptr;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len) == 0)
      for (const ListenAddress& address : config.server.listen)
        if (!by_address_.count(key(address)) && same_address(address, bound, len)) match = &address;
    if (!match) {
      spdlog::warn("inherited socket fd {} ({}) matches no listen address in the config; closing it", fd,
                   bound_address(fd));
      ::close(fd);
      continue;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0) fcntl(fd, F_SETFL, flags | O_NONBLOCK);  // as the sockets the master binds itself
    by_address_.emplace(key(*match), Entry{*match, fd});
    spdlog::info("listening on {}{} (fd {}, inherited)", match->kind == ListenAddress::Kind::Unix ? "" : "http://",
                 bound_address(fd), fd);
  }
}

std::vector<int> ListenerSet::fds_for(const Config& config) const {
  std::vector<int> fds;
  for (const ListenAddress& address : config.server.listen) fds.push_back(by_address_.at(key(address)).fd);
  return fds;
}

void ListenerSet::close_unused(const std::vector<const Config*>& in_use) {
  for (auto it = by_address_.begin(); it != by_address_.end();) {
    bool used = std::any_of(in_use.begin(), in_use.end(), [&](const Config* config) {
      return std::any_of(config->server.listen.begin(), config->server.listen.end(),
                         [&](const ListenAddress& a) { return key(a) == it->first; });
    });
    if (used) {
      ++it;
      continue;
    }
    spdlog::info("closing the master's socket for {}: no longer in the config", it->second.address.text);
    close_entry(it->second);
    it = by_address_.erase(it);
  }
}

void ListenerSet::close_all() {
  for (auto& [k, entry] : by_address_) close_entry(entry);
  by_address_.clear();
}

std::vector<int> ListenerSet::all_fds() const {
  std::vector<int> fds;
  for (const auto& [k, entry] : by_address_) fds.push_back(entry.fd);
  return fds;
}

void ListenerSet::release_all() {
  for (auto& [k, entry] : by_address_) ::close(entry.fd);
  by_address_.clear();
}

void ListenerSet::close_entry(const Entry& entry) {
  ::close(entry.fd);
  if (entry.address.kind == ListenAddress::Kind::Unix) ::unlink(entry.address.unix_path.c_str());
}

}  // namespace shoal
