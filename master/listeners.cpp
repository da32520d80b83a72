#include "master/listeners.hpp"

#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

#include "common/net.hpp"
#include "common/sys.hpp"

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
    if (fd < 0) {
      for (const std::string& k : added) {
        close_entry(by_address_.at(k));
        by_address_.erase(k);
      }
      return false;
    }
    by_address_.emplace(key(address), Entry{address, fd});
    added.push_back(key(address));
    spdlog::info("listening on {}{} (fd {})", address.kind == ListenAddress::Kind::Unix ? "" : "http://",
                 bound_address(fd), fd);
  }
  return true;
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

void ListenerSet::close_entry(const Entry& entry) {
  ::close(entry.fd);
  if (entry.address.kind == ListenAddress::Kind::Unix) ::unlink(entry.address.unix_path.c_str());
}

}  // namespace shoal
