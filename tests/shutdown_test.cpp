// Graceful shutdown, against the real binary: in-flight requests finish, readiness turns 503
// during drain_delay, idle keep-alive connections close cleanly after the idle grace, pipelined
// requests are answered, cleanup hooks run in reverse order and all settle, stragglers are
// killed at the deadline, a second signal changes nothing, and workers outlive a killed master
// only long enough to drain.
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>

#include <fstream>
#include <thread>

#include "common/sys.hpp"
#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using Clock = std::chrono::steady_clock;
using Shutdown = ServerTest;

template <typename D>
long long ms(D d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

TEST_F(Shutdown, InFlightRequestsCompleteWithConnectionCloseAndExitZero) {
  start("workers = 2", "[shutdown]\ndrain_delay = \"0s\"\n" + slow_route("/slow", "2s"));
  size_t idle_fds = worker_fds();
  std::vector<std::unique_ptr<Client>> clients;
  auto sent = Clock::now();
  for (int i = 0; i < 8; ++i) {
    clients.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(clients.back()->send(request("GET", "/slow")));
  }
  // All eight accepted by the workers, then the signal (0.5 s after sending, as an operator would).
  ASSERT_TRUE(wait_until([&] { return worker_fds() == idle_fds + 8; }, 5s));
  ASSERT_TRUE(wait_until([&] { return Clock::now() - sent >= 500ms; }, 1s));
  shoal_->signal(SIGTERM);
  for (auto& client : clients) {
    auto r = client->read(1, 10s);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].status, 200);
    EXPECT_EQ(r[0].body, "slow done\n");
    EXPECT_EQ(r[0].header("connection"), "close");
    EXPECT_EQ(client->wait_close(), Eof::Clean);
  }
  auto status = shoal_->wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 0);
  auto total = Clock::now() - sent;
  EXPECT_GE(ms(total), 1900);
  EXPECT_LE(ms(total), 3500);
  EXPECT_THAT(shoal_->log(), ::testing::ContainsRegex("request\\(s\\) in flight"));
  EXPECT_EQ(occurrences(shoal_->log(), "shutdown clean in"), 1u);  // one summary, whatever the signals did
  expect_clean_log();
}

// Stopping idle workers says what an operator needs and no more: per worker, that it drained;
// for the master, the shutdown, each exit and the outcome. No access-log flush without an access log.
TEST_F(Shutdown, StoppingIdleWorkersIsQuiet) {
  start("workers = 2");
  size_t before = occurrences(shoal_->log(), "\n");
  shoal_->signal(SIGTERM);
  auto exit = shoal_->wait_exit(10s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 0);
  std::string log = shoal_->log();
  size_t lines = occurrences(log, "\n") - before;
  EXPECT_LE(lines, 8u) << log;
  EXPECT_EQ(occurrences(log, "gen=1] draining: listeners closed"), 2u);
  EXPECT_THAT(log, HasSubstr("shutdown clean in"));
  EXPECT_THAT(log, Not(HasSubstr("flush access log")));
  EXPECT_THAT(log, Not(HasSubstr("cleanup hooks finished")));
}

// A worker's hook runs whenever a worker drains; a server hook once, when the server stops: after
// a reload, a SIGTTOU and a stop of 2 workers, the first ran 4 times and the second once. A failing server hook is named and makes the exit code 1.
TEST_F(Shutdown, ServerHooksRunOnceAtTheStopWorkerHooksAtEveryDrain) {
  start("workers = 2",
        "[shutdown]\ntimeout = \"10s\"\n"
        "[[shutdown.hook]]\nname = \"close-pool\"\ncommand = [\"sh\", \"-c\", \"echo $SHOAL_WORKER_PID >> worker-hooks.out\"]\n"
        "[[shutdown.server_hook]]\nname = \"deregister\"\ncommand = [\"sh\", \"-c\", \"echo $SHOAL_WORKER_INDEX >> server-hooks.out\"]\n"
        "[[shutdown.server_hook]]\nname = \"flush-queue\"\ncommand = [\"sh\", \"-c\", \"exit 3\"]\ntimeout = \"2s\"\n");
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(shoal_->wait_for_log("generation 1 drained", 10s));
  shoal_->signal(SIGTTOU);
  ASSERT_TRUE(shoal_->wait_for_log("worker 1 pid=\\d+ of generation 2 exited", 10s));
  EXPECT_EQ(read_file(dir_.path() + "/server-hooks.out"), "");  // the server still serves
  shoal_->signal(SIGTERM);
  auto exit = shoal_->wait_exit(15s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 1);
  EXPECT_EQ(read_file(dir_.path() + "/server-hooks.out"), "-1\n");
  EXPECT_EQ(occurrences(read_file(dir_.path() + "/worker-hooks.out"), "\n"), 4u);  // 2 at the reload, 1 at SIGTTOU, 1 at the stop
  std::string log = shoal_->log();
  EXPECT_THAT(log, HasSubstr("every worker is gone: running 2 server hook(s)"));
  EXPECT_THAT(log, ::testing::ContainsRegex("cleanup hook 'flush-queue' failed after [0-9]+ ms: exited with code 3"));
  EXPECT_THAT(log, HasSubstr("1 server hook(s) failed"));
  // After the last worker's exit, not before.
  EXPECT_LT(log.rfind("of generation 2 exited"), log.find("running 2 server hook(s)"));
}

TEST_F(Shutdown, ReadinessIs503DuringDrainDelayThenNewConnectionsAreRefused) {
  start("workers = 2", "[shutdown]\ndrain_delay = \"1s\"\n");
  ASSERT_EQ(get(port_, "/readyz").status, 200);
  auto signalled = Clock::now();
  shoal_->signal(SIGTERM);
  // Both workers report 503 (each new connection may land on either) while still serving.
  int seen_503 = 0;
  ASSERT_TRUE(wait_until([&] {
    auto r = get(port_, "/readyz", 1s);
    seen_503 = r.status == 503 ? seen_503 + 1 : 0;
    return seen_503 >= 6;
  }, 900ms));
  EXPECT_EQ(get(port_, "/readyz").body, "draining\n");
  EXPECT_EQ(get(port_, "/hello").status, 200);
  // After the delay the listeners are closed everywhere: refused, not queued to nobody.
  ASSERT_TRUE(wait_until([&] { return !Client(port_).connected(); }, 3s));
  EXPECT_GE(ms(Clock::now() - signalled), 950);
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
}

TEST_F(Shutdown, SigintSkipsTheDrainDelay) {
  start("workers = 1", "[shutdown]\ndrain_delay = \"5s\"\n");
  auto signalled = Clock::now();
  shoal_->signal(SIGINT);
  auto status = shoal_->wait_exit(3s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
  EXPECT_LT(ms(Clock::now() - signalled), 1000);
}

// Polls every client at once; records when each saw the server close, and how.
struct CloseWatch {
  std::vector<Clock::time_point> closed_at;
  std::vector<Eof> how;
};

CloseWatch watch_closes(std::vector<std::unique_ptr<Client>>& clients, std::chrono::milliseconds timeout) {
  CloseWatch out{std::vector<Clock::time_point>(clients.size()), std::vector<Eof>(clients.size(), Eof::None)};
  auto deadline = Clock::now() + timeout;
  size_t open = clients.size();
  while (open > 0 && Clock::now() < deadline) {
    std::vector<pollfd> fds;
    for (auto& c : clients) fds.push_back({c->fd(), POLLIN, 0});
    if (poll(fds.data(), fds.size(), 10) <= 0) continue;
    for (size_t i = 0; i < clients.size(); ++i) {
      if (out.how[i] != Eof::None || !(fds[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
      char buf[512];
      ssize_t n = recv(fds[i].fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) continue;  // unexpected data; keep reading
      out.how[i] = n == 0 ? Eof::Clean : (errno == ECONNRESET ? Eof::Reset : Eof::Clean);
      out.closed_at[i] = Clock::now();
      --open;
    }
  }
  return out;
}

TEST_F(Shutdown, IdleKeepAliveConnectionsCloseCleanlyRightAfterTheGrace) {
  start("workers = 2", "[shutdown]\nidle_grace = \"100ms\"\n");
  std::vector<std::unique_ptr<Client>> clients;
  for (int i = 0; i < 50; ++i) {
    clients.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(clients.back()->send(request("GET", "/hello")));
    ASSERT_EQ(clients.back()->read(1).size(), 1u);
  }
  // Idle for longer than the grace: nothing can be on its way from these clients.
  auto last_response = Clock::now();
  ASSERT_TRUE(wait_until([&] { return Clock::now() - last_response > 150ms; }, 1s));
  auto signalled = Clock::now();
  shoal_->signal(SIGTERM);
  CloseWatch closes = watch_closes(clients, 3s);
  for (size_t i = 0; i < clients.size(); ++i) {
    EXPECT_EQ(closes.how[i], Eof::Clean) << "client " << i;
    EXPECT_LE(ms(closes.closed_at[i] - signalled), 100) << "client " << i;
  }
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
}

TEST_F(Shutdown, RequestSentWithinTheGraceIsAnsweredWithConnectionClose) {
  start("workers = 1", "[shutdown]\nidle_grace = \"2s\"\n");
  Client client(port_);
  ASSERT_TRUE(client.send(request("GET", "/hello")));
  ASSERT_EQ(client.read(1).size(), 1u);
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_for_log("draining: listeners closed", 2s));
  // The client had a request on its way as the drain began: it is answered, not dropped.
  expect_answered_and_closed(client);
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
}

TEST_F(Shutdown, RequestsPipelinedBeforeTheSignalAreAllAnswered) {
  start("workers = 1", slow_route("/slow", "500ms"));
  size_t idle_fds = worker_fds();
  Client client(port_);
  std::string batch = request("GET", "/slow");
  for (int i = 0; i < 5; ++i) batch += request("POST", "/echo", "", "after " + std::to_string(i));
  ASSERT_TRUE(client.send(batch));
  ASSERT_TRUE(wait_until([&] { return worker_fds() == idle_fds + 1; }, 5s));
  shoal_->signal(SIGTERM);
  auto r = client.read(6, 5s);
  ASSERT_EQ(r.size(), 6u);
  EXPECT_EQ(r[0].body, "slow done\n");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r[static_cast<size_t>(i) + 1].body, "after " + std::to_string(i));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(r[static_cast<size_t>(i)].header("connection"), "keep-alive") << i;
  EXPECT_EQ(r[5].header("connection"), "close");
  EXPECT_EQ(client.wait_close(), Eof::Clean);
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
}

TEST_F(Shutdown, HooksRunInReverseOrderAndAllSettleEvenWhenOneFailsAndOneTimesOut) {
  std::string order = dir_.path() + "/order.txt";
  auto hook = [&](const std::string& name, const std::string& script, const std::string& timeout) {
    return "[[shutdown.hook]]\nname = \"" + name + "\"\ncommand = [\"sh\", \"-c\", \"echo " + name + " >> " + order +
           "; " + script + "\"]\ntimeout = \"" + timeout + "\"\n";
  };
  start("workers = 1", "[shutdown]\ntimeout = \"10s\"\n" + hook("close-db", "exit 0", "2s") +
                           hook("flush-queue", "exit 3", "2s") + hook("stuck", "echo $$ > stuck.pid; exec sleep 30", "300ms") +
                           "[log]\naccess_log = \"access.log\"\n");
  ASSERT_EQ(get(port_, "/hello").status, 200);
  shoal_->signal(SIGTERM);
  auto status = shoal_->wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 1);
  EXPECT_EQ(read_file(order), "stuck\nflush-queue\nclose-db\n");
  std::string log = shoal_->log();
  EXPECT_THAT(log, ::testing::ContainsRegex("cleanup hook 'stuck' failed after [0-9]+ ms: timed out after 300ms"));
  EXPECT_THAT(log, ::testing::ContainsRegex("cleanup hook 'flush-queue' failed after [0-9]+ ms: exited with code 3"));
  EXPECT_THAT(log, HasSubstr("cleanup hook 'close-db' succeeded"));
  EXPECT_THAT(log, HasSubstr("cleanup hook 'flush access log' succeeded"));
  EXPECT_THAT(log, HasSubstr("2 hook(s) failed"));
  EXPECT_THAT(read_file(dir_.path() + "/access.log"), HasSubstr("\"GET /hello HTTP/1.1\" 200"));
  // The timed-out hook was killed, not left behind: its process (the shell that became sleep) is
  // gone or a zombie waiting to be reaped.
  pid_t stuck = std::stoi(read_file(dir_.path() + "/stuck.pid"));
  auto dead = [stuck] {
    std::ifstream stat("/proc/" + std::to_string(stuck) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    auto paren = line.rfind(')');
    return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] == 'Z';
  };
  EXPECT_TRUE(wait_until(dead, 3s)) << "the stuck hook, pid " << stuck << ", is still running";
}

TEST_F(Shutdown, StragglerIsKilledAtTheDeadlineAndNamed) {
  start("workers = 1", "[shutdown]\ntimeout = \"1s\"\n" + slow_route("/stuck", "20s"));
  size_t idle_fds = worker_fds();
  Client client(port_);
  ASSERT_TRUE(client.send(request("GET", "/stuck")));
  ASSERT_TRUE(wait_until([&] { return worker_fds() == idle_fds + 1; }, 5s));
  auto signalled = Clock::now();
  shoal_->signal(SIGTERM);
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  auto took = ms(Clock::now() - signalled);
  EXPECT_GE(took, 500);
  EXPECT_LE(took, 1500);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 1);
  EXPECT_THAT(shoal_->log(), ::testing::ContainsRegex(
                                 "worker 0 pid=[0-9]+ of generation 1 still running at the 1s deadline \\(1 request\\(s\\) in flight, "
                                 "oldest GET /stuck for [0-9]+ ms\\); sending SIGKILL"));
  EXPECT_THAT(shoal_->log(), HasSubstr("shutdown NOT clean"));
}

TEST_F(Shutdown, SecondSignalsDoNotRestartTheShutdown) {
  start("workers = 2", "[shutdown]\ndrain_delay = \"1s\"\n");
  auto signalled = Clock::now();
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_for_log("SIGTERM: graceful shutdown", 2s));
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_for_log("SIGTERM received while shutting down; already in progress", 2s));
  shoal_->signal(SIGINT);
  ASSERT_TRUE(shoal_->wait_for_log("SIGINT received while shutting down; already in progress", 2s));
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
  auto took = ms(Clock::now() - signalled);
  EXPECT_GE(took, 950);  // the delay was neither restarted nor cut short
  EXPECT_LE(took, 2000);
  std::string log = shoal_->log();
  EXPECT_EQ(std::count(log.begin(), log.end(), '\n') > 0, true);
  std::regex once("graceful shutdown of");
  EXPECT_EQ(std::distance(std::sregex_iterator(log.begin(), log.end(), once), std::sregex_iterator()), 1);
}

// Ctrl+C twice: the second stops at once, as most servers do (the first drains).
TEST_F(Shutdown, ASecondCtrlCStopsAtOnce) {
  start("workers = 1", slow_route("/slow", "20s") + "[shutdown]\ntimeout = \"30s\"\n");
  Client client(port_);
  ASSERT_TRUE(client.send(request("GET", "/slow")));
  shoal_->signal(SIGINT);
  ASSERT_TRUE(shoal_->wait_for_log("SIGINT: graceful shutdown", 2s));
  ASSERT_TRUE(shoal_->wait_for_log("draining: listeners closed; 1 request\\(s\\) in flight", 2s));
  auto second = Clock::now();
  shoal_->signal(SIGINT);
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 1);  // not clean: a request was cut
  EXPECT_LT(ms(Clock::now() - second), 2000);  // not the 20 s request, nor the 30 s timeout
  EXPECT_THAT(shoal_->log(), HasSubstr("a second SIGINT: stopping now"));
}

TEST_F(Shutdown, SigquitDuringADrainStopsAtOnce) {
  start("workers = 1", slow_route("/slow", "20s"));
  size_t idle_fds = worker_fds();
  Client client(port_);
  ASSERT_TRUE(client.send(request("GET", "/slow")));
  ASSERT_TRUE(wait_until([&] { return worker_fds() == idle_fds + 1; }, 5s));
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_for_log("draining: listeners closed", 2s));
  auto quit = Clock::now();
  shoal_->signal(SIGQUIT);
  auto status = shoal_->wait_exit(3s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 1);
  EXPECT_LT(ms(Clock::now() - quit), 1500);
}

TEST_F(Shutdown, WorkersOfAKilledMasterDrainRunTheirHooksAndFreeThePort) {
  std::string marks = dir_.path() + "/hook-ran-";
  start("workers = 2", "[shutdown]\ntimeout = \"3s\"\n[[shutdown.hook]]\nname = \"mark\"\n"
                       "command = [\"sh\", \"-c\", \"touch " + marks + "$SHOAL_WORKER_INDEX\"]\ntimeout = \"1s\"\n" +
                           slow_route("/slow", "300ms"));
  auto workers_before = children_of(shoal_->pid());
  ASSERT_EQ(workers_before.size(), 2u);
  size_t idle_fds = worker_fds();
  Client client(port_);
  ASSERT_TRUE(client.send(request("GET", "/slow")));
  ASSERT_TRUE(wait_until([&] { return worker_fds() == idle_fds + 1; }, 5s));
  auto killed = Clock::now();
  shoal_->signal(SIGKILL);
  ASSERT_TRUE(shoal_->wait_exit(2s));
  // The in-flight request still gets its answer from the orphaned worker.
  auto r = client.read(1, 3s);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].body, "slow done\n");
  for (pid_t pid : workers_before) EXPECT_TRUE(wait_until([&] { return !process_exists(pid); }, 3s)) << pid;
  EXPECT_LT(ms(Clock::now() - killed), 3000);
  EXPECT_TRUE(std::filesystem::exists(marks + "0"));
  EXPECT_TRUE(std::filesystem::exists(marks + "1"));
  EXPECT_FALSE(Client(port_).connected());
}

TEST_F(Shutdown, IdleServerStopsWithinAHundredMilliseconds) {
  start("workers = 2", "[shutdown]\ndrain_delay = \"0s\"\n");
  auto signalled = Clock::now();
  shoal_->signal(SIGTERM);
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
  EXPECT_LE(ms(Clock::now() - signalled), 100);
}

}  // namespace
}  // namespace shoal::test
