// bench helper: the floor. The least any HTTP server can do for a keep-alive request on this
// kernel: it makes the same system calls as shoal and nginx (one epoll_wait per batch of ready
// connections, edge-triggered as theirs; one recv and one send per request) and nothing else: no
// parser, no router, no Date, no timers. It answers every request (a header section ended by an
// empty line; no bodies) with the bytes shoal sends for /hello, so the client sees the same traffic.
//
//   floor PORT         listens on 127.0.0.1:PORT until killed
//   floor PORT close   one connection per request: accept4, recv, send, close and nothing else
//                      (the send with MSG_MORE, so that the close sends it with the FIN, as shoal
//                      does for a client that asked to close)
//                      (the first read right after the accept, as shoal does; epoll only for a
//                      connection whose request has not arrived yet)
//
// bench/compare.sh runs it beside shoal and nginx: its CPU time per request is the kernel's share
// of every server's, and floor/nginx is the best ratio that user-space work alone can reach.
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "floor_common.hpp"

namespace {

using floor_common::die;
using floor_common::kResponse;

constexpr std::string_view kCloseResponse =
    "HTTP/1.1 200 OK\r\nServer: shoal\r\nDate: Sat, 21 Nov 2026 12:00:00 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: close\r\n\r\nok\n";

struct Conn {
  bool open = false;
  int matched = 0;  // how much of "\r\n\r\n" the input ended with
  std::string out;  // what a short send left
};

// Counts the header sections that end in data, carrying a partial "\r\n\r\n" over reads.
int count_requests(Conn& c, const char* data, size_t length) {
  static constexpr char kEnd[] = "\r\n\r\n";
  int requests = 0;
  for (size_t i = 0; i < length; ++i) {
    if (data[i] == kEnd[c.matched]) {
      if (++c.matched == 4) ++requests, c.matched = 0;
    } else {
      c.matched = data[i] == '\r' ? 1 : 0;
    }
  }
  return requests;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 && !(argc == 3 && std::string_view(argv[2]) == "close")) {
    fprintf(stderr, "usage: floor PORT [close]\n");
    return 2;
  }
  const bool close_mode = argc == 3;
  const int listener = floor_common::listen_loopback(argv[1]);
  const int one = 1;

  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1");
  auto watch = [ep](int op, int fd, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.fd = fd;
    if (epoll_ctl(ep, op, fd, &ev) != 0) die("epoll_ctl");
  };
  watch(EPOLL_CTL_ADD, listener, EPOLLIN);

  std::vector<Conn> conns;
  std::string out;  // responses to one read, reused
  char in[16384];
  epoll_event events[512];
  auto close_conn = [&](int fd) {
    conns[fd] = Conn{};
    close(fd);
  };
  // Sends what is queued for fd; waits for EPOLLOUT (and stops reading) while some remains.
  auto flush = [&](int fd, std::string_view data, bool was_blocked) {
    Conn& c = conns[fd];
    ssize_t sent = send(fd, data.data(), data.size(), MSG_NOSIGNAL);
    if (sent < 0 && errno != EAGAIN) return close_conn(fd);
    size_t done = sent < 0 ? 0 : static_cast<size_t>(sent);
    c.out.assign(data.substr(done));
    bool blocked = !c.out.empty();
    if (blocked != was_blocked) watch(EPOLL_CTL_MOD, fd, (blocked ? EPOLLOUT : EPOLLIN) | EPOLLET);
  };

  for (;;) {
    int ready = epoll_wait(ep, events, 512, -1);
    if (ready < 0 && errno != EINTR) die("epoll_wait");
    for (int i = 0; i < ready; ++i) {
      int fd = events[i].data.fd;
      if (fd == listener) {
        for (int c; (c = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          if (static_cast<size_t>(c) >= conns.size()) conns.resize(c + 1024);
          conns[c].open = true;
          if (close_mode) {
            // The request is usually there already: answered and closed without entering epoll.
            ssize_t got = recv(c, in, sizeof in, 0);
            if (got > 0 && count_requests(conns[c], in, static_cast<size_t>(got)) > 0) {
              send(c, kCloseResponse.data(), kCloseResponse.size(), MSG_NOSIGNAL | MSG_MORE);  // out with the FIN
              close_conn(c);
              continue;
            }
            if (got == 0 || (got < 0 && errno != EAGAIN)) {
              close_conn(c);
              continue;
            }
          } else {
            setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
          }
          // Edge-triggered, as shoal's and nginx's connections: epoll does not poll a socket again
          // at each wait because it was ready at the last one.
          watch(EPOLL_CTL_ADD, c, EPOLLIN | EPOLLET);
        }
        continue;
      }
      Conn& c = conns[fd];
      if (!c.open) continue;
      if (!c.out.empty()) {
        std::string rest = std::move(c.out);
        flush(fd, rest, true);
        continue;
      }
      // A read that filled the buffer may have left bytes that no edge will report: again.
      for (ssize_t got = sizeof in; got == sizeof in && c.open && c.out.empty();) {
        got = recv(fd, in, sizeof in, 0);
        if (got == 0 || (got < 0 && errno != EAGAIN)) {
          close_conn(fd);
          break;
        }
        if (got < 0) break;
        if (close_mode) {
          if (count_requests(c, in, static_cast<size_t>(got)) > 0) {
            send(fd, kCloseResponse.data(), kCloseResponse.size(), MSG_NOSIGNAL | MSG_MORE);
            close_conn(fd);
          }
          continue;
        }
        out.clear();
        for (int n = count_requests(c, in, static_cast<size_t>(got)); n > 0; --n) out.append(kResponse);
        if (!out.empty()) flush(fd, out, false);
      }
    }
  }
}
