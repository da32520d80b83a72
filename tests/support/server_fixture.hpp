// The fixture of the integration tests: a temporary directory, a config written into it, and
// the real binary started on an ephemeral loopback port.
#pragma once

#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <regex>
#include <string>

#include "support/http_client.hpp"
#include "support/shoal_process.hpp"

namespace shoal::test {

constexpr const char* kRoutes = R"(
[[route]]
path = "/hello"
body = "ok\n"
[[route]]
path = "/echo"
handler = "echo"
[[route]]
path = "/static/"
root = "public"
)";

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_.write("public/hello.txt", "hello from a file\n"); }

  void TearDown() override {
    if ((HasFailure() || getenv("SHOAL_TEST_SHOW_LOG")) && shoal_) std::cerr << "---- shoal log ----\n" << shoal_->log() << "-------------------\n";
  }

  // server_keys go into [server] after listen; sections are further tables.
  std::string write_config(const std::string& server_keys, const std::string& sections = "",
                           const std::string& listen = "\"127.0.0.1:0\"") {
    std::string user = server_keys.find("user =") == std::string::npos ? run_as_line() : "";
    return dir_.write("shoal.toml", "[server]\n" + user + "listen = [" + listen + "]\n" + server_keys + "\n" + sections + kRoutes);
  }

  void start(const std::string& server_keys = "workers = 2", const std::string& sections = "",
             const std::string& listen = "\"127.0.0.1:0\"", const std::string& binary = SHOAL_BINARY,
             const StartOptions& options = {}) {
    std::string path = write_config(server_keys, sections, listen);
    // A fresh log per start: a restarted server must not be judged by its predecessor's lines.
    shoal_ = std::make_unique<ShoalProcess>(path, dir_.path() + "/shoal-" + std::to_string(++starts_) + ".log", binary,
                                            options);
    ASSERT_TRUE(shoal_->wait_ready()) << "not ready";
    if (listen.find("127.0.0.1") != std::string::npos) {
      port_ = shoal_->wait_for_port(1s);
      ASSERT_GT(port_, 0);
    }
  }

  // The current pid and CPU of each worker index, from the master's "spawned" lines.
  std::map<int, std::pair<pid_t, std::string>> workers() const {
    std::map<int, std::pair<pid_t, std::string>> out;
    std::regex re(R"(spawned worker (\d+) pid=(\d+) cpu=(\S+))");
    std::string log = shoal_->log();
    for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it)
      out[std::stoi((*it)[1])] = {std::stoi((*it)[2]), (*it)[3]};
    return out;
  }

  // Open fds of a process (to see a worker accept a connection).
  static size_t fd_count(pid_t pid);

  // The sum of the workers' open fds.
  size_t worker_fds() const {
    size_t total = 0;
    for (pid_t pid : children_of(shoal_->pid())) total += fd_count(pid);
    return total;
  }

  void expect_clean_log(const std::vector<std::string>& expected = {}) {
    auto lines = shoal_->unexpected_log_lines(expected);
    EXPECT_TRUE(lines.empty()) << "unexpected log lines:\n" << ::testing::PrintToString(lines);
  }

  TempDir dir_;
  std::unique_ptr<ShoalProcess> shoal_;
  int port_ = -1;
  int starts_ = 0;
};


// The built-in handler that tells which worker and generation answered.
constexpr const char* kInfoRoute = "[[route]]\npath = \"/info\"\nhandler = \"info\"\n";

// A [[route]] that answers "<path without its slash> done\n" after `delay`.
inline std::string slow_route(const std::string& path, const std::string& delay) {
  return "[[route]]\npath = \"" + path + "\"\nbody = \"" + path.substr(1) + " done\\n\"\ndelay = \"" + delay + "\"\n";
}

// On a connection to a draining worker: GET /hello is answered 200 with Connection: close, and
// then the connection closes cleanly.
inline void expect_answered_and_closed(Client& client) {
  ASSERT_TRUE(client.send(request("GET", "/hello")));
  auto r = client.read(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  EXPECT_EQ(r[0].header("connection"), "close");
  EXPECT_EQ(client.wait_close(), Eof::Clean);
}

// How many times `what` occurs in `text`.
inline size_t occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// A loopback port held by another listener, so that shoal's bind() of it fails.
class OccupiedPort {
 public:
  OccupiedPort() {
    fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in sin{};
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sin;
    if (fd_ < 0 || bind(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0 || listen(fd_, 1) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&sin), &len) != 0)
      throw std::runtime_error("cannot occupy a loopback port");
    address_ = "127.0.0.1:" + std::to_string(ntohs(sin.sin_port));
  }
  ~OccupiedPort() { close(fd_); }
  OccupiedPort(const OccupiedPort&) = delete;
  OccupiedPort& operator=(const OccupiedPort&) = delete;
  const std::string& address() const { return address_; }  // "127.0.0.1:PORT"
  int fd() const { return fd_; }

 private:
  int fd_ = -1;
  std::string address_;
};

struct LoadTally {
  std::atomic<long> ok{0}, non_200{0}, refused{0}, reset_or_lost{0}, retries{0};
};

// Prints what a load saw, under `what`, and expects more than `min_ok` answers and not one failure
// of any kind (a non-200, a refused connection, a reset or lost request, a retry).
inline void expect_every_request_answered(const LoadTally& tally, const std::string& what, long min_ok) {
  std::cerr << what << ": " << tally.ok << " ok, " << tally.non_200 << " non-200, " << tally.refused << " refused, "
            << tally.reset_or_lost << " reset or lost, " << tally.retries << " retried\n";
  EXPECT_GT(tally.ok, min_ok) << what;
  EXPECT_EQ(tally.non_200, 0) << what;
  EXPECT_EQ(tally.refused, 0) << what;
  EXPECT_EQ(tally.reset_or_lost, 0) << what;
  EXPECT_EQ(tally.retries, 0) << what;
}

// One client: keep-alive (reconnecting only when the server said Connection: close), or a new
// connection per request. A request written on a keep-alive connection that the server closed
// without answering is retried once on a new connection, as HTTP clients do, and counted.
inline void client_loop(int port, bool keep_alive, std::chrono::steady_clock::time_point until, LoadTally& tally) {
  std::unique_ptr<Client> conn;
  for (long i = 0; i < 1'000'000 && std::chrono::steady_clock::now() < until; ++i) {
    bool fresh = false;
    if (!conn || !keep_alive) {
      conn = std::make_unique<Client>(port);
      fresh = true;
      if (!conn->connected()) {
        ++tally.refused;
        conn.reset();
        continue;
      }
    }
    std::string req = request("GET", "/hello", keep_alive ? "" : "Connection: close\r\n");
    auto r = conn->send(req) ? conn->read(1, 5s) : std::vector<HttpResponse>{};
    if (r.empty() && !fresh) {
      ++tally.retries;
      conn = std::make_unique<Client>(port);
      r = conn->connected() && conn->send(req) ? conn->read(1, 5s) : std::vector<HttpResponse>{};
    }
    if (r.empty()) {
      ++tally.reset_or_lost;
      conn.reset();
      continue;
    }
    (r[0].status == 200 ? tally.ok : tally.non_200)++;
    if (!r[0].keep_alive) conn.reset();
  }
}

inline size_t ServerTest::fd_count(pid_t pid) {
  size_t n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

}  // namespace shoal::test
