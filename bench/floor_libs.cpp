// bench helper: the floor with the project's libraries. bench/floor.cpp makes the system calls of
// a keep-alive request and nothing else; this one makes the same system calls through the two
// libraries every shoal worker must use (the project's decisions): libevent's loop, with one
// persistent read event per connection, and llhttp, which parses every request (one parser per
// connection, no callback but the one that counts complete requests). Still no router, no Date,
// no timers, no buffers but one: what is left between it and shoal is shoal's own code.
//
//   floor_libs PORT    listens on 127.0.0.1:PORT until killed
//
// bench/compare.sh runs it beside floor: floor_libs/floor is what the libraries cost above the
// system calls, shoal/floor_libs what shoal's code costs above the libraries.
#include <errno.h>
#include <event2/event.h>
#include <llhttp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "floor_common.hpp"

namespace {

using floor_common::die;
using floor_common::kResponse;

struct Conn {
  int fd = -1;
  event* read_ev = nullptr;
  event* write_ev = nullptr;  // added instead of read_ev while a short send's rest waits
  llhttp_t parser;
  int complete = 0;  // requests llhttp completed in the read being parsed
  std::string out;   // what a short send left
};

struct Floor {
  event_base* base = nullptr;
  llhttp_settings_t settings;
  std::vector<std::unique_ptr<Conn>> conns;  // by fd
  std::string out;                           // the responses to one read, reused
  char in[16384];
};

Floor floor_state;

int on_message_complete(llhttp_t* p) {
  ++static_cast<Conn*>(p->data)->complete;
  return 0;
}

void close_conn(Conn& c) {
  event_free(c.read_ev);
  event_free(c.write_ev);
  close(c.fd);
  floor_state.conns[c.fd].reset();
}

// Sends what is queued; while some remains, waits for the socket to be writable instead of
// readable.
void flush(Conn& c, std::string_view data, bool was_blocked) {
  ssize_t sent = send(c.fd, data.data(), data.size(), MSG_NOSIGNAL);
  if (sent < 0 && errno != EAGAIN) return close_conn(c);
  size_t done = sent < 0 ? 0 : static_cast<size_t>(sent);
  c.out.assign(data.substr(done));
  const bool blocked = !c.out.empty();
  if (blocked == was_blocked) return;
  event_del(blocked ? c.read_ev : c.write_ev);
  event_add(blocked ? c.write_ev : c.read_ev, nullptr);
}

void on_writable(evutil_socket_t, short, void* arg) {
  Conn& c = *static_cast<Conn*>(arg);
  std::string rest = std::move(c.out);
  flush(c, rest, true);
}

void on_readable(evutil_socket_t, short, void* arg) {
  Conn& c = *static_cast<Conn*>(arg);
  const int fd = c.fd;  // c is freed if flush closes it
  ssize_t got = recv(c.fd, floor_state.in, sizeof floor_state.in, 0);
  if (got == 0 || (got < 0 && errno != EAGAIN)) return close_conn(c);
  if (got < 0) return;
  c.complete = 0;
  if (llhttp_execute(&c.parser, floor_state.in, static_cast<size_t>(got)) != HPE_OK) return close_conn(c);
  floor_state.out.clear();
  for (int n = c.complete; n > 0; --n) floor_state.out.append(kResponse);
  if (!floor_state.out.empty()) flush(c, floor_state.out, false);
  // The socket may hold more than the buffer took: again from the loop, if still reading.
  if (got == sizeof floor_state.in && floor_state.conns[fd] && c.out.empty()) event_active(c.read_ev, EV_READ, 0);
}

void on_accept(evutil_socket_t listener, short, void*) {
  static const int one = 1;
  for (int fd; (fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
    if (static_cast<size_t>(fd) >= floor_state.conns.size()) floor_state.conns.resize(fd + 1024);
    auto c = std::make_unique<Conn>();
    c->fd = fd;
    llhttp_init(&c->parser, HTTP_REQUEST, &floor_state.settings);
    c->parser.data = c.get();
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Edge-triggered, as shoal's (on_readable reads again after a read that filled the buffer).
    c->read_ev = event_new(floor_state.base, fd, EV_READ | EV_PERSIST | EV_ET, on_readable, c.get());
    c->write_ev = event_new(floor_state.base, fd, EV_WRITE | EV_PERSIST | EV_ET, on_writable, c.get());
    if (!c->read_ev || !c->write_ev || event_add(c->read_ev, nullptr) != 0) die("event_add");
    floor_state.conns[fd] = std::move(c);
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: floor_libs PORT\n");
    return 2;
  }
  floor_common::program = "floor_libs";
  const int listener = floor_common::listen_loopback(argv[1]);

  llhttp_settings_init(&floor_state.settings);
  floor_state.settings.on_message_complete = on_message_complete;
  floor_state.base = event_base_new();
  if (!floor_state.base) die("event_base_new");
  event* accept_ev = event_new(floor_state.base, listener, EV_READ | EV_PERSIST, on_accept, nullptr);
  if (!accept_ev || event_add(accept_ev, nullptr) != 0) die("event_add");
  event_base_dispatch(floor_state.base);
  return 1;
}
