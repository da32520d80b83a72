// What bench/floor.cpp and bench/floor_libs.cpp share: the bytes they answer with (shoal's for
// /hello) and their listening socket.
#pragma once

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>

namespace floor_common {

constexpr std::string_view kResponse =
    "HTTP/1.1 200 OK\r\nServer: shoal\r\nDate: Sat, 21 Nov 2026 12:00:00 GMT\r\n"
    "Content-Type: text/plain\r\nContent-Length: 3\r\nConnection: keep-alive\r\n\r\nok\n";

inline const char* program = "floor";  // for die()'s messages

[[noreturn]] inline void die(const char* what) {
  fprintf(stderr, "%s: %s: %s\n", program, what, strerror(errno));
  exit(1);
}

// A non-blocking listening socket on 127.0.0.1:port, close-on-exec.
inline int listen_loopback(const char* port) {
  int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (listener < 0) die("socket");
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(atoi(port)));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) die("bind");
  if (listen(listener, 4096) != 0) die("listen");
  return listener;
}

}  // namespace floor_common
