// The keep-alive request path for a fixed response makes no heap allocation per request.
// This binary replaces malloc and friends (so libevent's, llhttp's and libstdc++'s allocations all
// count) and counts only while the server's event loop runs, not the test's own client code.
#include <event2/event.h>
#include <gtest/gtest.h>
#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <memory>

#include "common/config.hpp"
#include "worker/server.hpp"

static std::atomic<long> g_allocations{0};
static std::atomic<bool> g_counting{false};

#if defined(__SANITIZE_ADDRESS__)
// Under AddressSanitizer (build-asan) malloc belongs to ASan: count through its hooks instead.
// (Declared here: gcc installs no sanitizer headers.)
extern "C" int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void*, size_t),
                                                         void (*free_hook)(const volatile void*));
static void count_malloc(const volatile void*, size_t) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
}
static void ignore_free(const volatile void*) {}
static const int g_hooks_installed = __sanitizer_install_malloc_and_free_hooks(count_malloc, ignore_free);
extern "C" size_t __sanitizer_get_current_allocated_bytes();
static size_t heap_in_use() { return __sanitizer_get_current_allocated_bytes(); }
#else
#include <malloc.h>
static size_t heap_in_use() { return mallinfo2().uordblks; }  // chunk overhead included
extern "C" {
void* __libc_malloc(size_t);
void* __libc_calloc(size_t, size_t);
void* __libc_realloc(void*, size_t);
void __libc_free(void*);

void* malloc(size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_malloc(n);
}
void* calloc(size_t n, size_t size) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_calloc(n, size);
}
void* realloc(void* p, size_t n) {
  if (g_counting.load(std::memory_order_relaxed)) g_allocations.fetch_add(1, std::memory_order_relaxed);
  return __libc_realloc(p, n);
}
void free(void* p) { __libc_free(p); }
}
#endif

namespace shoal {
namespace {

// 1,000 keep-alive requests of `path` (after 100 to warm up) to a server with `config_text` and
// `app`: how many heap allocations the server's loop made.
void expect_no_allocation_per_request(const std::string& config_text, const Application& app, const std::string& path,
                                      int access_log_fd = -1, metrics::WorkerCounters* counters = nullptr) {
  auto parsed = parse_config(config_text, "/tmp/alloc.toml");
  ASSERT_TRUE(parsed.config);
  Config config = std::move(*parsed.config);
  event_base* base = event_base_new();
  auto server = std::make_unique<HttpServer>(base, config, app, access_log_fd);
  server->set_metrics(counters, nullptr);
  int fds[2];
  ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  server->adopt(fds[0], reinterpret_cast<sockaddr*>(&sun), sizeof(sa_family_t));
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: t\r\nUser-Agent: alloc-test\r\nAccept: */*\r\n\r\n";

  // One request, one response (its length is fixed: the Date header has a fixed width).
  size_t response_bytes = 0;
  auto round_trip = [&](bool count) {
    ASSERT_EQ(send(fds[1], request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    size_t got = 0;
    char buf[1024];
    for (int spins = 0; spins < 10000 && (response_bytes == 0 ? got == 0 : got < response_bytes); ++spins) {
      g_counting = count;
      event_base_loop(base, EVLOOP_NONBLOCK);
      g_counting = false;
      ssize_t n = recv(fds[1], buf, sizeof buf, 0);
      if (n > 0) got += static_cast<size_t>(n);
      else if (n == 0) break;
      else {
        pollfd pfd{fds[1], POLLIN, 0};
        poll(&pfd, 1, 1);
      }
    }
    if (response_bytes == 0) response_bytes = got;
    ASSERT_EQ(got, response_bytes);
  };
  for (int i = 0; i < 100; ++i) round_trip(false);  // warm-up: buffers reach their working size
  ASSERT_GT(response_bytes, 100u);
  // The counter itself works: one allocation while counting is one count.
  g_allocations = 0;
  g_counting = true;
  char* volatile probe = new char[64];  // volatile: the pair cannot be optimised away
  delete[] probe;
  g_counting = false;
  ASSERT_EQ(g_allocations.exchange(0), 1) << "the allocation counter does not see allocations";
  g_allocations = 0;
  for (int i = 0; i < 1000; ++i) round_trip(true);
  EXPECT_EQ(g_allocations.load(), 0) << "heap allocations over 1,000 keep-alive requests of " << path;
  EXPECT_EQ(server->requests_served(), 1100u);
  close(fds[1]);
  server.reset();
  event_base_free(base);
}

TEST(Allocations, KeepAliveFixedResponsePathAllocatesNothingPerRequest) {
  expect_no_allocation_per_request("[server]\nlisten = [\"127.0.0.1:0\"]\n[[route]]\npath = \"/hello\"\nbody = \"ok\\n\"\n",
                                   Application(), "/hello");
}

// A handler's Response with fields of its own: checked and copied into the connection's buffer,
// nothing allocated.
TEST(Allocations, AHandlersResponseWithFieldsAllocatesNothingPerRequest) {
  Application app;
  app.handle("/api", [](const Request&, Responder reply) {
    reply.send(Response(200, "application/json", "{\"ok\":true}\n")
                   .header("Cache-Control", "no-store")
                   .header("ETag", "\"v1\"")
                   .header("Set-Cookie", "session=abc; HttpOnly")
                   .header("Vary", "Accept-Encoding"));
  });
  expect_no_allocation_per_request("[server]\nlisten = [\"127.0.0.1:0\"]\n", app, "/api");
}

// An access-log line per request, in either format, goes into the reused buffer: nothing allocated
// (the JSON line's escaping, its request id and its time included).
TEST(Allocations, AccessLogLinesAllocateNothingPerRequestInEitherFormat) {
  for (const char* format : {"combined", "json"}) {
    int sink = open("/dev/null", O_WRONLY | O_CLOEXEC);
    ASSERT_GE(sink, 0);
    expect_no_allocation_per_request(std::string("[server]\nlisten = [\"127.0.0.1:0\"]\n[log]\naccess_log_format = \"") +
                                         format + "\"\n[[route]]\npath = \"/hello\"\nbody = \"ok\\n\"\n",
                                     Application(), "/hello", sink);
    close(sink);
  }
}

// [metrics]: each response is counted in the worker's slot of the shared region, by code, with
// its duration and bytes: plain stores, nothing allocated (nor locked, nor a system call).
TEST(Allocations, CountingRequestsForTheMetricsAllocatesNothingPerRequest) {
  metrics::Shared shared;
  std::string err;
  ASSERT_TRUE(shared.create(err)) << err;
  ASSERT_TRUE(shared.claim(getpid(), false, err)) << err;
  metrics::WorkerCounters* counters = shared.counters(shared.take_slot(1, 0));
  expect_no_allocation_per_request("[server]\nlisten = [\"127.0.0.1:0\"]\n[[route]]\npath = \"/hello\"\nbody = \"ok\\n\"\n",
                                   Application(), "/hello", -1, counters);
  EXPECT_EQ(counters->requests[200 - metrics::kFirstCode].get(), 1100u);
  uint64_t timed = 0;
  for (const auto& bucket : counters->duration_buckets) timed += bucket.get();
  EXPECT_EQ(timed, 1100u);
  EXPECT_EQ(counters->response_bytes.get(), 1100u * 3);
}

// What an idle keep-alive connection costs the worker in heap: 400 connections, each answered once
// and then left idle. Between requests a connection holds no parser, no buffers and no timer of
// its own (see Connection::Work and KeepaliveList).
TEST(Memory, AnIdleKeepAliveConnectionHoldsUnder400BytesOfHeap) {
  auto parsed = parse_config("[server]\nlisten = [\"127.0.0.1:0\"]\n[http]\nkeepalive_timeout = \"65s\"\n"
                             "[[route]]\npath = \"/hello\"\nbody = \"ok\\n\"\n",
                             "/tmp/memory.toml");
  ASSERT_TRUE(parsed.config);
  Config config = std::move(*parsed.config);
  event_base* base = event_base_new();
  Application app;
  auto server = std::make_unique<HttpServer>(base, config, app);
  constexpr int kConnections = 400;
  std::vector<int> clients;
  clients.reserve(kConnections + 1);
  const std::string_view request = "GET /hello HTTP/1.1\r\nHost: t\r\nUser-Agent: memory-test\r\n\r\n";
  auto open_one = [&] {
    int fds[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    clients.push_back(fds[1]);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    ASSERT_EQ(send(fds[1], request.data(), request.size(), 0), static_cast<ssize_t>(request.size()));
    server->adopt(fds[0], reinterpret_cast<sockaddr*>(&sun), sizeof(sa_family_t));
    char buf[1024];
    ssize_t n = -1;
    for (int spins = 0; spins < 1000 && n <= 0; ++spins) {
      event_base_loop(base, EVLOOP_NONBLOCK);
      n = recv(fds[1], buf, sizeof buf, 0);
      if (n < 0) {
        pollfd pfd{fds[1], POLLIN, 0};
        poll(&pfd, 1, 1);
      }
    }
    ASSERT_GT(n, 0) << "no answer on connection " << clients.size();
    ASSERT_EQ(std::string_view(buf, 15), "HTTP/1.1 200 OK");
  };
  open_one();  // the first request's one-time costs (the spare Work, the date) are not per connection
  const size_t before = heap_in_use();
  for (int i = 0; i < kConnections; ++i) open_one();
  const size_t after = heap_in_use();
  ASSERT_EQ(server->connection_count(), static_cast<size_t>(kConnections) + 1);
  const double per_connection = static_cast<double>(after - before) / kConnections;
  std::printf("heap per idle keep-alive connection: %.0f bytes\n", per_connection);
  EXPECT_LT(per_connection, 400.0);
  for (int fd : clients) close(fd);
  server.reset();
  event_base_free(base);
}

}  // namespace
}  // namespace shoal
