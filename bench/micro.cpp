// Google Benchmark: one keep-alive request through the worker's connection code (parse with
// llhttp, route, write the response), in-process over a socketpair, in ns per request. The
// figure includes the two send/recv pairs of the socketpair, as a real request has its own.
#include <benchmark/benchmark.h>
#include <event2/event.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <memory>

#include "common/config.hpp"
#include "worker/server.hpp"

namespace {

struct Fixture {
  Fixture(const char* extra_headers) {
    auto parsed = shoal::parse_config(
        "[server]\nlisten = [\"127.0.0.1:0\"]\n[[route]]\npath = \"/hello\"\nbody = \"ok\\n\"\n", "/tmp/micro.toml");
    config = std::make_unique<shoal::Config>(std::move(*parsed.config));
    base = event_base_new();
    server = std::make_unique<shoal::HttpServer>(base, *config, app);
    socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    server->adopt(fds[0], reinterpret_cast<sockaddr*>(&sun), sizeof(sa_family_t));
    request = std::string("GET /hello HTTP/1.1\r\nHost: bench\r\n") + extra_headers + "\r\n";
  }
  ~Fixture() {
    close(fds[1]);
    server.reset();
    event_base_free(base);
  }
  // One request in, one full response out.
  void round_trip() {
    send(fds[1], request.data(), request.size(), 0);
    size_t got = 0;
    while (response_bytes == 0 ? got == 0 : got < response_bytes) {
      event_base_loop(base, EVLOOP_NONBLOCK);
      ssize_t n = recv(fds[1], buf, sizeof buf, 0);
      if (n > 0) got += static_cast<size_t>(n);
    }
    if (response_bytes == 0) response_bytes = got;
  }
  std::unique_ptr<shoal::Config> config;
  shoal::Application app;
  event_base* base;
  std::unique_ptr<shoal::HttpServer> server;
  int fds[2];
  std::string request;
  size_t response_bytes = 0;
  char buf[4096];
};

void BM_KeepAliveRequest(benchmark::State& state) {
  Fixture f("");
  for (auto _ : state) f.round_trip();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KeepAliveRequest);

void BM_KeepAliveRequestBrowserHeaders(benchmark::State& state) {
  Fixture f(
      "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36\r\n"
      "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
      "Accept-Language: en-US,en;q=0.9\r\nAccept-Encoding: gzip, deflate, br\r\nConnection: keep-alive\r\n"
      "Cookie: session=0123456789abcdef0123456789abcdef; theme=dark\r\n");
  for (auto _ : state) f.round_trip();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KeepAliveRequestBrowserHeaders);

// The same request counted for [metrics] in a real slot of the shared region.
void BM_KeepAliveRequestCounted(benchmark::State& state) {
  Fixture f("");
  shoal::metrics::Shared shared;
  std::string err;
  if (!shared.create(err) || !shared.claim(getpid(), false, err)) return state.SkipWithError(err.c_str());
  f.server->set_metrics(shared.counters(shared.take_slot(1, 0)), shared.region());
  for (auto _ : state) f.round_trip();
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_KeepAliveRequestCounted);

}  // namespace

BENCHMARK_MAIN();
