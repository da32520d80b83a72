// The master's control socket: a unix stream socket (mode 0600) on which the CLI sends one
// command line ("reload", "stop", "upgrade", "status") and gets one JSON line back once the
// outcome is known, then the connection closes.
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace shoal {

class ControlServer;

// The answer to one command; may be kept and sent later. Sending twice, or after the client
// left, does nothing.
class ControlReply {
 public:
  void send(const std::string& json_line) const;
  bool pending() const;
  // The connection, for an upgrade in place to keep across the exec (-1 once answered or gone).
  int fd() const;

 private:
  friend class ControlServer;
  struct Client;
  explicit ControlReply(std::shared_ptr<Client> client) : client_(std::move(client)) {}
  std::shared_ptr<Client> client_;
};

class ControlServer {
 public:
  using Handler = std::function<void(const std::string& command, ControlReply reply)>;
  ControlServer(event_base* base, Handler handler) : base_(base), handler_(std::move(handler)) {}
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

  // Binds path (a stale socket file is replaced, a live one is an error) with mode 0600.
  bool bind(const std::string& path, std::string& err);
  // Uses an inherited socket (a previous master's).
  void adopt(int fd, const std::string& path);
  // A connection whose command the previous image of this master read, kept across an upgrade in
  // place: its answer is still owed.
  ControlReply adopt_client(int fd);
  void start();   // accept commands
  void pause();   // stop accepting (the socket stays: its queue waits for whoever accepts next)
  int fd() const { return fd_; }
  // Closes the socket; unlink removes its file too (not when a successor master holds it).
  void close(bool unlink_file);

 private:
  static void on_accept(evutil_socket_t, short, void* self);
  static void on_client(evutil_socket_t, short, void* client);

  event_base* base_;
  Handler handler_;
  int fd_ = -1;
  std::string path_;
  event* accept_ev_ = nullptr;
};

}  // namespace shoal
