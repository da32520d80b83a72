// bench helper: opens N keep-alive connections to 127.0.0.1:PORT, sends one request on each,
// reads its response, then holds them all idle until it gets SIGTERM (or stdin closes). Prints
// "open N" once every connection has been answered. Used to measure a worker's memory per idle
// keep-alive connection. Beyond one source address's ephemeral ports, the connections come from
// 127.0.0.2, 127.0.0.3, … (20,000 each): 100,000 need five. With SOURCE (an IPv4 address) they
// all come from it: several holders, each within its fd limit, then use one address each.
//
//   idle_conns PORT COUNT [SOURCE]
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

int main(int argc, char** argv) {
  if (argc != 3 && argc != 4) {
    fprintf(stderr, "usage: idle_conns PORT COUNT [SOURCE]\n");
    return 2;
  }
  in_addr only_source{};
  if (argc == 4 && inet_pton(AF_INET, argv[3], &only_source) != 1) {
    fprintf(stderr, "idle_conns: %s is not an IPv4 address\n", argv[3]);
    return 2;
  }
  int port = atoi(argv[1]);
  int count = atoi(argv[2]);
  rlimit lim{static_cast<rlim_t>(count + 64), static_cast<rlim_t>(count + 64)};
  if (setrlimit(RLIMIT_NOFILE, &lim) != 0) {
    perror("setrlimit(RLIMIT_NOFILE)");
    return 1;
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  const char request[] = "GET /hello HTTP/1.1\r\nHost: bench\r\n\r\n";
  std::vector<int> fds;
  constexpr int kPerSource = 20000;
  for (int i = 0; i < count; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in source{};
    source.sin_family = AF_INET;
    source.sin_addr.s_addr = argc == 4 ? only_source.s_addr : htonl(INADDR_LOOPBACK + 1 + static_cast<uint32_t>(i / kPerSource));
    int one = 1;
    // The port is chosen at connect, per destination, not at bind (which would reserve it for all).
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
    if (fd < 0 || ((argc == 4 || i >= kPerSource) && bind(fd, reinterpret_cast<sockaddr*>(&source), sizeof source) != 0) || connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 ||
        send(fd, request, sizeof request - 1, 0) != static_cast<ssize_t>(sizeof request - 1)) {
      fprintf(stderr, "connection %d: %s\n", i, strerror(errno));
      return 1;
    }
    char buf[1024];
    pollfd pfd{fd, POLLIN, 0};
    if (poll(&pfd, 1, 5000) != 1 || recv(fd, buf, sizeof buf, 0) <= 0) {
      fprintf(stderr, "connection %d: no response\n", i);
      return 1;
    }
    fds.push_back(fd);
  }
  printf("open %d\n", count);
  fflush(stdout);
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigprocmask(SIG_BLOCK, &set, nullptr);
  int sig;
  sigwait(&set, &sig);
  return 0;
}
