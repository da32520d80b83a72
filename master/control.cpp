#include "master/control.hpp"

#include <errno.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/config.hpp"
#include "common/net.hpp"
#include "common/sys.hpp"

namespace shoal {

struct ControlReply::Client {
  int fd = -1;
  event_base* base = nullptr;
  event* ev = nullptr;
  std::string line;  // the command, as it arrives
  std::string out;   // the answer, and how much of it is written
  size_t written = 0;
  bool answered = false;
  ControlServer::Handler* handler = nullptr;

  bool write_some();  // true when done: all written, or the client left

  ~Client() { finish(); }
  void finish() {
    if (ev) event_free(ev), ev = nullptr;
    if (fd >= 0) ::close(fd), fd = -1;
  }
};

void ControlReply::send(const std::string& json_line) const {
  if (!client_ || client_->answered || client_->fd < 0) return;
  client_->answered = true;
  client_->out = json_line + "\n";
  // Never blocks the master's loop: what the client's socket does not take now (a status of
  // many workers to a client that does not read) goes out as it drains, for at most 5 s.
  if (client_->write_some()) return client_->finish();
  auto* holder = new std::shared_ptr<Client>(client_);
  if (client_->ev) event_free(client_->ev);
  client_->ev = event_new(client_->base, client_->fd, EV_WRITE | EV_PERSIST, [](evutil_socket_t, short what, void* arg) {
    auto* held = static_cast<std::shared_ptr<Client>*>(arg);
    if ((what & EV_TIMEOUT) || (*held)->write_some()) {
      (*held)->finish();
      delete held;
    }
  }, holder);
  timeval tv{5, 0};
  event_add(client_->ev, &tv);
}

bool ControlReply::Client::write_some() {
  while (written < out.size()) {
    ssize_t n = ::send(fd, out.data() + written, out.size() - written, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return false;
    if (n <= 0) return true;  // the client left: nothing more to do
    written += static_cast<size_t>(n);
  }
  return true;
}

bool ControlReply::pending() const { return client_ && !client_->answered && client_->fd >= 0; }

int ControlReply::fd() const { return pending() ? client_->fd : -1; }

ControlReply ControlServer::adopt_client(int fd) {
  set_cloexec(fd);
  auto client = std::make_shared<ControlReply::Client>();
  client->fd = fd;
  client->base = base_;
  client->handler = &handler_;
  return ControlReply(client);
}

ControlServer::~ControlServer() { close(false); }

bool ControlServer::bind(const std::string& path, std::string& err) {
  std::string why;
  auto address = parse_listen("unix:" + path, "/", why);
  if (!address) {
    err = "[server] control_socket: " + why;
    return false;
  }
  // Only the owner may command the server.
  mode_t old = umask(0177);
  fd_ = bind_listener(*address, 16, err);
  umask(old);
  if (fd_ < 0) {
    err = "[server] control_socket: " + err;
    return false;
  }
  path_ = path;
  return true;
}

void ControlServer::adopt(int fd, const std::string& path) {
  fd_ = fd;
  path_ = path;
  set_cloexec(fd);
}

void ControlServer::start() {
  if (fd_ < 0 || accept_ev_) return;
  accept_ev_ = event_new(base_, fd_, EV_READ | EV_PERSIST, on_accept, this);
  event_add(accept_ev_, nullptr);
}

void ControlServer::pause() {
  if (accept_ev_) event_free(accept_ev_), accept_ev_ = nullptr;
}

void ControlServer::close(bool unlink_file) {
  pause();
  if (fd_ < 0) return;
  ::close(fd_);
  fd_ = -1;
  if (unlink_file) ::unlink(path_.c_str());
}

void ControlServer::on_accept(evutil_socket_t fd, short, void* self) {
  auto* server = static_cast<ControlServer*>(self);
  for (;;) {
    int client_fd = accept4(fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (client_fd < 0) return;
    auto client = std::make_shared<ControlReply::Client>();
    client->fd = client_fd;
    client->base = server->base_;
    client->handler = &server->handler_;
    // The event holds a pointer to the shared state; the state lives until answered or dropped.
    auto* holder = new std::shared_ptr<ControlReply::Client>(client);
    client->ev = event_new(server->base_, client_fd, EV_READ | EV_PERSIST, on_client, holder);
    timeval tv{5, 0};  // a command line arrives at once or never
    event_add(client->ev, &tv);
  }
}

void ControlServer::on_client(evutil_socket_t fd, short what, void* arg) {
  auto* holder = static_cast<std::shared_ptr<ControlReply::Client>*>(arg);
  std::shared_ptr<ControlReply::Client> client = *holder;
  auto drop = [&] {
    if (client->ev) event_del(client->ev);
    delete holder;  // the last reference may now be a ControlReply kept by the handler
  };
  if (what & EV_TIMEOUT) {
    client->finish();
    return drop();
  }
  char buf[256];
  ssize_t n = recv(fd, buf, sizeof buf, 0);
  if (n <= 0) {
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    client->finish();
    return drop();
  }
  client->line.append(buf, static_cast<size_t>(n));
  auto newline = client->line.find('\n');
  if (newline == std::string::npos) {
    if (client->line.size() > 200) client->finish(), drop();
    return;
  }
  std::string command = client->line.substr(0, newline);
  drop();  // no more reading; the reply owns the connection now
  (*client->handler)(command, ControlReply(client));
}

}  // namespace shoal
