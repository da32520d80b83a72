// The master's listening sockets, one per address, shared by every generation that lists it.
// An address kept across a reload keeps its very socket (same fd, same accept queue), so no
// connection waiting in the queue is lost when workers change.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "common/config.hpp"

namespace shoal {

class ListenerSet {
 public:
  ListenerSet() = default;
  ~ListenerSet() { close_all(); }
  ListenerSet(const ListenerSet&) = delete;
  ListenerSet& operator=(const ListenerSet&) = delete;

  // Binds every address of `config` that is not bound yet, and applies its backlog to the ones
  // that are. On failure nothing newly bound is kept, and err names the call and the address.
  bool bind_missing(const Config& config, std::string& err);

  // Takes sockets passed by systemd or by a previous master as the ones for `config`'s addresses,
  // matched by address (an entry with port 0 takes a socket on its IP with any port). Sockets
  // that match no entry are closed and logged.
  void adopt(const std::vector<int>& fds, const Config& config);

  // The fds for config's addresses, in the config's order. Every address must be bound.
  std::vector<int> fds_for(const Config& config) const;

  // Closes the sockets that none of `in_use` lists (unlinking unix socket files).
  void close_unused(const std::vector<const Config*>& in_use);
  void close_all();
  // Every socket, for handing over to a new master.
  std::vector<int> all_fds() const;
  // Closes without unlinking unix socket files: a successor master holds the same sockets.
  void release_all();
  bool empty() const { return by_address_.empty(); }
  bool has(const ListenAddress& address) const { return by_address_.count(key(address)) > 0; }

 private:
  static std::string key(const ListenAddress& address);
  struct Entry {
    ListenAddress address;
    int fd;
  };
  void close_entry(const Entry& entry);
  std::map<std::string, Entry> by_address_;
};

}  // namespace shoal
