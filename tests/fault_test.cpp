// Faults, against the real binary (tests/fault_app.cpp brings the faulty handlers): a worker stuck
// in a handler or stopped, a worker at max_requests or above max_worker_rss, a worker killed with
// SIGKILL under load.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <thread>

#include "support/http_client.hpp"
#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;

using Faults = ServerTest;

uint64_t rss_bytes(pid_t pid) {
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

TEST_F(Faults, HandlerStuckInALoopIsKilledAtTheHeartbeatNamedAndReplaced) {
  start("workers = 2\nheartbeat_timeout = \"1s\"", "", "\"127.0.0.1:0\"", FAULT_APP_BINARY);
  auto before = workers();
  Client stuck(port_);
  ASSERT_TRUE(stuck.send(request("GET", "/spin?forever")));
  auto sent = std::chrono::steady_clock::now();
  auto line = shoal_->wait_for_log(
      R"((worker (\d) pid=(\d+) of generation 1 sent no heartbeat for \d+ ms \(heartbeat_timeout 1s\); stuck in GET /spin\?forever for \d+ ms, process state R \(running\); sending SIGKILL))",
      5s);
  ASSERT_TRUE(line);
  auto took = std::chrono::steady_clock::now() - sent;
  std::cerr << "stuck handler killed " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
            << " ms after its request (heartbeat_timeout 1s)\n";
  EXPECT_GE(took, 900ms);
  EXPECT_LT(took, 3s);
  std::smatch m;
  ASSERT_TRUE(std::regex_search(*line, m, std::regex(R"(worker (\d) pid=(\d+))")));
  int index = std::stoi(m[1]);
  pid_t killed = std::stoi(m[2]);
  // Replaced on its CPU; the other worker untouched; the stuck request's connection ends.
  ASSERT_TRUE(wait_until([&] { return workers()[index].first != killed && workers()[index].first > 0; }, 5s));
  EXPECT_EQ(workers()[index].second, before[index].second);
  EXPECT_EQ(workers()[1 - index].first, before[1 - index].first);
  EXPECT_NE(stuck.wait_close(5s), Eof::None);
  ASSERT_TRUE(shoal_->wait_for_log("worker " + std::to_string(index) + R"( pid=\d+ of generation 1 ready)", 5s, 2));
  for (int i = 0; i < 20; ++i) ASSERT_EQ(get(port_, "/hello").status, 200);
}

TEST_F(Faults, WorkerStuckAtStartIsKilledAtReadyTimeoutAndRetriedUntilItStarts) {
  // The example application's start hook takes 3 s while "slow-start" exists; ready_timeout is 1 s.
  write_config("workers = 1", "[reload]\nready_timeout = \"1s\"\n");
  dir_.write("slow-start", "");
  ShoalProcess shoal(dir_.path() + "/shoal.toml", dir_.path() + "/stuck-start.log", EXAMPLE_APP_BINARY);
  ASSERT_TRUE(shoal.wait_for_log(
      R"(worker 0 pid=\d+ of generation 1 is not ready \d+ ms after its start \(ready_timeout 1s\); sending SIGKILL)", 5s));
  std::filesystem::remove(dir_.path() + "/slow-start");
  ASSERT_TRUE(shoal.wait_ready(10s));
  EXPECT_TRUE(std::regex_search(shoal.log(), std::regex(R"(worker 0 failed at start-up \d+ time\(s\) in a row; next start in)")));
  int port = shoal.wait_for_port(1s);
  EXPECT_EQ(get(port, "/hello").status, 200);
}

TEST_F(Faults, StoppedWorkerIsKilledAtTheHeartbeatAndReplaced) {
  start("workers = 2\nheartbeat_timeout = \"1s\"");
  auto before = workers();
  pid_t victim = before[0].first;
  ASSERT_EQ(kill(victim, SIGSTOP), 0);
  ASSERT_TRUE(shoal_->wait_for_log("worker 0 pid=" + std::to_string(victim) +
                                       R"( of generation 1 sent no heartbeat for \d+ ms \(heartbeat_timeout 1s\); not inside a handler, process state T \(stopped\); sending SIGKILL)",
                                   5s));
  ASSERT_TRUE(wait_until([&] { return !process_exists(victim); }, 5s));
  ASSERT_TRUE(wait_until([&] { return workers()[0].first != victim; }, 5s));
  EXPECT_EQ(workers()[1].first, before[1].first);
  for (int i = 0; i < 20; ++i) ASSERT_EQ(get(port_, "/hello").status, 200);
}

TEST_F(Faults, MaxRequestsReplacesTheWorkerFirstAndFailsNoRequest) {
  start("workers = 1\nmax_requests = 200\nmax_requests_jitter = 50");
  LoadTally tally;
  auto until = std::chrono::steady_clock::now() + 3s;
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i) clients.emplace_back([&, i] { client_loop(port_, i < 2, until, tally); });
  for (auto& t : clients) t.join();
  std::string log = shoal_->log();
  size_t replaced = occurrences(log, "(served ");
  std::cerr << "max_requests 200+50 under load: " << tally.ok << " requests ok, " << tally.non_200 << " non-200, "
            << tally.refused << " refused, " << tally.reset_or_lost << " lost, " << tally.retries << " retried; "
            << replaced << " workers replaced\n";
  EXPECT_GE(replaced, 3u) << tally.ok << " requests";
  EXPECT_GT(tally.ok, 1000);
  EXPECT_EQ(tally.non_200, 0);
  EXPECT_EQ(tally.refused, 0);
  EXPECT_EQ(tally.reset_or_lost, 0);
  EXPECT_EQ(tally.retries, 0);
  // Each worker asked after its own limit: 200 plus its jitter.
  std::regex asked(R"(served (\d+) requests \(max_requests\); asking the master for a replacement)");
  size_t checked = 0;
  for (auto it = std::sregex_iterator(log.begin(), log.end(), asked); it != std::sregex_iterator(); ++it, ++checked) {
    int served = std::stoi((*it)[1]);
    EXPECT_GE(served, 200);
    EXPECT_LE(served, 250);
  }
  EXPECT_GE(checked, 3u);
  EXPECT_TRUE(std::regex_search(log, std::regex(R"(worker 0 pid=\d+ replaced by pid=\d+ \(served \d+ requests \(max_requests\)\); pid=\d+ drains)")));
  // One worker at the end, once the last replaced one has drained.
  EXPECT_TRUE(wait_until([&] { return children_of(shoal_->pid()).size() == 1; }, 5s));
}

TEST_F(Faults, WorkerAboveMaxWorkerRssIsReplacedGracefully) {
  start("workers = 1\nmax_worker_rss = 67108864", "", "\"127.0.0.1:0\"", FAULT_APP_BINARY);  // 64 MiB
  pid_t leaky = children_of(shoal_->pid()).at(0);
  EXPECT_LT(rss_bytes(leaky), 64u << 20);
  auto r = get(port_, "/grow?mb=96");
  ASSERT_EQ(r.status, 200);
  ASSERT_TRUE(shoal_->wait_for_log("worker 0 pid=" + std::to_string(leaky) +
                                       R"( uses \d+ MiB of memory, above max_worker_rss \(64 MiB\); starting its replacement before it drains)",
                                   5s));
  ASSERT_TRUE(shoal_->wait_for_log("worker 0 pid=" + std::to_string(leaky) + R"( replaced by pid=\d+)", 5s));
  ASSERT_TRUE(wait_until([&] { return !process_exists(leaky); }, 5s));
  auto now = children_of(shoal_->pid());
  ASSERT_EQ(now.size(), 1u);
  EXPECT_LT(rss_bytes(now[0]), 64u << 20);
  for (int i = 0; i < 10; ++i) ASSERT_EQ(get(port_, "/hello").status, 200);
}

// Keep-alive clients that each know which worker serves their connection (from /info).
TEST_F(Faults, KillNineUnderLoadFailsOnlyThatWorkersConnections) {
  // max_connections 4: a worker holding four stops accepting, so the next connections go to the
  // other one. (Which worker accepts is the kernel's choice, and a worker that is quicker back in
  // epoll_wait can take hundreds in a row.)
  start("workers = 2", std::string("[http]\nmax_connections = 4\n") + kInfoRoute);
  auto before = workers();
  pid_t victim = before[0].first, survivor = before[1].first;
  // Four connections on each worker: connect until each has four.
  struct Conn {
    std::unique_ptr<Client> client;
    pid_t worker = 0;
    long ok = 0, failed = 0;
  };
  std::vector<Conn> conns;
  std::map<pid_t, int> per_worker;
  for (int attempt = 0; attempt < 400 && (per_worker[victim] < 4 || per_worker[survivor] < 4); ++attempt) {
    auto client = std::make_unique<Client>(port_);
    auto r = client->send(request("GET", "/info")) ? client->read(1, 5s) : std::vector<HttpResponse>{};
    ASSERT_EQ(r.size(), 1u);
    pid_t pid = std::stoi(r[0].body.substr(4));
    if (per_worker[pid]++ < 4) conns.push_back({std::move(client), pid});
  }
  ASSERT_EQ(conns.size(), 8u) << "could not get four connections on each worker";

  std::atomic<int> busy{0};
  auto until = std::chrono::steady_clock::now() + 2500ms;
  std::vector<std::thread> threads;
  for (Conn& c : conns)
    threads.emplace_back([&, conn = &c] {
      for (int n = 0; n < 1'000'000 && std::chrono::steady_clock::now() < until; ++n) {
        if (!conn->client) conn->client = std::make_unique<Client>(port_);
        auto r = conn->client->send(request("GET", "/info")) ? conn->client->read(1, 5s) : std::vector<HttpResponse>{};
        if (r.empty() || r[0].status != 200) {
          ++conn->failed;
          conn->client.reset();
          continue;
        }
        if (++conn->ok == 100) ++busy;
        if (!r[0].keep_alive) conn->client.reset();
      }
    });
  wait_until([&] { return busy == static_cast<int>(conns.size()); }, 3s);  // load on every connection
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  for (auto& t : threads) t.join();

  for (const Conn& c : conns) {
    std::cerr << "client on " << (c.worker == victim ? "the killed" : "the other") << " worker: " << c.ok << " ok, "
              << c.failed << " failed\n";
    if (c.worker == victim)
      EXPECT_LE(c.failed, 1) << "a client of the killed worker loses at most the request it had in flight";
    else
      EXPECT_EQ(c.failed, 0) << "a client of the surviving worker was disturbed";
    EXPECT_GT(c.ok, 100);
  }
  ASSERT_TRUE(wait_until([&] { return workers()[0].first != victim; }, 5s));
  EXPECT_EQ(workers()[1].first, survivor);
  EXPECT_TRUE(std::regex_search(shoal_->log(), std::regex("worker 0 pid=" + std::to_string(victim) +
                                                          R"( cpu=\S+ was killed by SIGKILL while ready; replacing it)")));
}

}  // namespace
}  // namespace shoal::test
