// Integration tests against the real shoal binary: an ephemeral loopback port, a temporary
// config, real signals, and assertions on responses, exit codes, /proc and the log.
#include <arpa/inet.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "common/sys.hpp"
#include "support/http_client.hpp"
#include <set>

#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;

using Lifecycle = ServerTest;

TEST_F(Lifecycle, WorkerCountMatchesConfigAndEachIsPinnedRoundRobin) {
  start("workers = 3\ncpu_affinity = \"auto\"");
  auto cpus = allowed_cpus();
  ASSERT_TRUE(wait_until([&] { return children_of(shoal_->pid()).size() == 3; }, 5s));
  auto by_index = workers();
  ASSERT_EQ(by_index.size(), 3u);
  std::vector<pid_t> pids;
  for (const auto& [index, worker] : by_index) {
    std::string want = std::to_string(cpus[static_cast<size_t>(index) % cpus.size()]);
    EXPECT_EQ(cpus_allowed_list(worker.first), want) << "worker " << index;
    EXPECT_EQ(worker.second, want);
    pids.push_back(worker.first);
  }
  std::sort(pids.begin(), pids.end());
  EXPECT_EQ(children_of(shoal_->pid()), pids);
  // Every line names its process: role, pid, worker index and generation.
  EXPECT_THAT(shoal_->log(), HasSubstr("[worker 2 pid=" + std::to_string(by_index[2].first) + " gen=1] pinned to CPU"));
  EXPECT_THAT(shoal_->log(), HasSubstr("[master pid=" + std::to_string(shoal_->pid()) + " gen=1] generation 1 ready"));
  expect_clean_log();
}

TEST_F(Lifecycle, CpuListAndNoneAreHonoured) {
  auto cpus = allowed_cpus();
  start("workers = 2\ncpu_affinity = [" + std::to_string(cpus.back()) + "]");
  for (const auto& [index, worker] : workers()) EXPECT_EQ(cpus_allowed_list(worker.first), std::to_string(cpus.back()));
  shoal_.reset();
  start("workers = 2\ncpu_affinity = \"none\"");
  for (const auto& [index, worker] : workers()) EXPECT_EQ(cpus_allowed_list(worker.first), format_cpu_list(cpus));
}

TEST_F(Lifecycle, WorkersKeepTheConfiguredBacklog) {
  start("workers = 2\nbacklog = 777");
  ASSERT_EQ(get(port_, "/hello").status, 200);
  // ss shows a listening socket's backlog as Send-Q; the workers' listeners must not reset it.
  std::string out;
  ASSERT_EQ(run_command({"/bin/sh", "-c", "ss -Hltn 'sport = :" + std::to_string(port_) + "' | awk '{print $3}'"}, out), 0);
  EXPECT_EQ(out, "777\n");
}

TEST_F(Lifecycle, ServesFixedRouteAndStaticFile) {
  start();
  auto hello = get(port_, "/hello");
  EXPECT_EQ(hello.status, 200);
  EXPECT_EQ(hello.body, "ok\n");
  auto file = get(port_, "/static/hello.txt");
  EXPECT_EQ(file.status, 200);
  EXPECT_EQ(file.body, "hello from a file\n");
  EXPECT_EQ(get(port_, "/missing").status, 404);
  EXPECT_EQ(get(port_, "/healthz").status, 200);
  EXPECT_EQ(get(port_, "/readyz").status, 200);
  expect_clean_log();
}

TEST_F(Lifecycle, ServesOnIpv6Loopback) {
  start("workers = 1", "", "\"[::1]:0\"");
  auto port = shoal_->wait_for_log(R"(listening on http://\[::1\]:(\d+))", 1s);
  ASSERT_TRUE(port);
  int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in6 sin6{};
  sin6.sin6_family = AF_INET6;
  sin6.sin6_addr = in6addr_loopback;
  sin6.sin6_port = htons(static_cast<uint16_t>(std::stoi(*port)));
  ASSERT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sin6), sizeof sin6), 0);
  std::string req = request("GET", "/hello", "Connection: close\r\n");
  ASSERT_EQ(::send(fd, req.data(), req.size(), 0), static_cast<ssize_t>(req.size()));
  ResponseParser parser;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) parser.feed({buf, static_cast<size_t>(n)});
  close(fd);
  ASSERT_EQ(parser.responses().size(), 1u);
  EXPECT_EQ(parser.responses()[0].body, "ok\n");
}

TEST_F(Lifecycle, ApplicationHandlersAnswerNowAndLaterFromTheLibrary) {
  start("workers = 2", "", "\"127.0.0.1:0\"", EXAMPLE_APP_BINARY);
  EXPECT_EQ(get(port_, "/time").body, "now\n");
  EXPECT_EQ(get(port_, "/api/v1/items").body, "{\"path\":\"/api/v1/items\"}");
  EXPECT_EQ(get(port_, "/hello").body, "ok\n");  // the config's routes are served too
  // Two answers given later, on one keep-alive connection, in order, while another client is served.
  Client client(port_);
  ASSERT_TRUE(client.send(request("GET", "/later") + request("GET", "/time")));
  auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(get(port_, "/hello").status, 200);
  auto r = client.read(2);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].body, "later\n");
  EXPECT_EQ(r[1].body, "now\n");
  EXPECT_GE(std::chrono::steady_clock::now() - began, 90ms);
  shoal_->signal(SIGTERM);
  auto status = shoal_->wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
  // The application's cleanup hooks ran in each worker, the last registered first.
  std::string log = shoal_->log();
  std::regex queue_then_pool("example: queue message finished\n(.*\n)*?.*example: pool closed");
  EXPECT_TRUE(std::regex_search(log, queue_then_pool)) << log;
  EXPECT_EQ(occurrences(log, "example: pool closed"), 2u);
  EXPECT_EQ(occurrences(log, "example: queue message finished"), 2u);
  expect_clean_log();
}

TEST_F(Lifecycle, HundredRequestsOnOneKeepAliveConnection) {
  start();
  Client client(port_);
  ASSERT_TRUE(client.connected());
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(client.send(request("GET", "/hello")));
    auto r = client.read(1);
    ASSERT_EQ(r.size(), 1u) << "request " << i;
    ASSERT_EQ(r[0].status, 200);
    ASSERT_TRUE(r[0].keep_alive);
  }
  EXPECT_EQ(client.eof(), Eof::None);
}

TEST_F(Lifecycle, TenPipelinedRequestsInOneWriteAreAnsweredInOrder) {
  start();
  Client client(port_);
  std::string batch;
  for (int i = 0; i < 10; ++i) batch += request("POST", "/echo", "", "request " + std::to_string(i));
  ASSERT_TRUE(client.send(batch));  // one write
  auto r = client.read(10);
  ASSERT_EQ(r.size(), 10u);
  for (int i = 0; i < 10; ++i) EXPECT_EQ(r[static_cast<size_t>(i)].body, "request " + std::to_string(i));
}

TEST_F(Lifecycle, MalformedRequestGets400AndCloseWhileOthersAreUnaffected) {
  start("workers = 1");
  Client good(port_);
  ASSERT_TRUE(good.send(request("GET", "/hello")));
  ASSERT_EQ(good.read(1).size(), 1u);

  Client bad(port_);
  ASSERT_TRUE(bad.send("GET /hello HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"));
  auto r = bad.read(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 400);
  EXPECT_EQ(bad.wait_close(), Eof::Clean);

  ASSERT_TRUE(good.send(request("GET", "/hello")));
  auto again = good.read(1);
  ASSERT_EQ(again.size(), 1u);
  EXPECT_EQ(again[0].status, 200);
  EXPECT_EQ(get(port_, "/hello").status, 200);
}

TEST_F(Lifecycle, KilledWorkerIsReplacedOnItsCpuAndTheServerAnswersThroughout) {
  start("workers = 2");
  auto before = workers();
  pid_t victim = before[0].first;
  std::string cpu = cpus_allowed_list(victim);
  ASSERT_EQ(kill(victim, SIGKILL), 0);
  // From the kill until the replacement is serving, every request succeeds: the other worker
  // and the master's accept queue carry on.
  int ok = 0, failed = 0;
  bool replaced = wait_until([&] {
    (get(port_, "/hello", 2s).status == 200 ? ok : failed)++;
    auto now = workers();
    return now[0].first != victim && shoal_->log().find("worker 0 pid=" + std::to_string(now[0].first) + " of generation 1 ready") != std::string::npos;
  }, 10s);
  ASSERT_TRUE(replaced);
  for (int i = 0; i < 50; ++i) (get(port_, "/hello", 2s).status == 200 ? ok : failed)++;
  EXPECT_EQ(failed, 0);
  EXPECT_GE(ok, 50);
  pid_t replacement = workers()[0].first;
  EXPECT_NE(replacement, victim);
  EXPECT_EQ(cpus_allowed_list(replacement), cpu);
  EXPECT_FALSE(process_exists(victim));  // reaped, not a zombie
  EXPECT_EQ(children_of(shoal_->pid()).size(), 2u);
  EXPECT_THAT(shoal_->log(), HasSubstr("worker 0 pid=" + std::to_string(victim) + " cpu=" + before[0].second +
                                       " was killed by SIGKILL while ready; replacing it"));
}

TEST_F(Lifecycle, WorkerDyingAtStartUpIsRestartedWithCappedExponentialBackoff) {
  start("workers = 1");
  // Kill worker 0 as soon as each replacement appears. Every replacement dies before it is
  // ready; the first (killed after ready) may count as healthy on a slow machine, so five kills
  // give at least four start-up failures in a row either way.
  for (int round = 1; round <= 5; ++round) {
    auto pid = shoal_->wait_for_log(R"(spawned worker 0 pid=(\d+))", 10s, static_cast<size_t>(round));
    ASSERT_TRUE(pid) << "round " << round;
    kill(std::stoi(*pid), SIGKILL);
  }
  for (const char* delay : {"next start in 100ms", "next start in 200ms", "next start in 400ms", "next start in 800ms"})
    EXPECT_TRUE(shoal_->wait_for_log(delay, 10s)) << delay;
  // It comes back and serves; nothing was left unreaped.
  ASSERT_TRUE(shoal_->wait_for_log(R"(spawned worker 0 pid=(\d+))", 10s, 6));
  EXPECT_TRUE(wait_until([&] { return get(port_, "/hello", 1s).status == 200; }, 10s));
  EXPECT_EQ(children_of(shoal_->pid()).size(), 1u);
}

TEST_F(Lifecycle, ConfigTestPrintsFileLineColumnAndExitCode) {
  std::string broken = dir_.write("broken.toml", "[server]\nlisten = [\"127.0.0.1:0\"]\nwrokers = 2\nbacklog = \"big\"\n");
  std::string output;
  EXPECT_EQ(run_command({SHOAL_BINARY, "-t", "-c", broken}, output), 1);
  EXPECT_THAT(output, HasSubstr(broken + ":3:1: unknown key 'wrokers' in [server]; did you mean 'workers'?"));
  EXPECT_THAT(output, HasSubstr(broken + ":4:11: [server] backlog: expected an integer, got a string"));
  EXPECT_THAT(output, HasSubstr("2 error(s); test failed"));

  std::string good = write_config("workers = 1");
  EXPECT_EQ(run_command({SHOAL_BINARY, "-t", "-c", good}, output), 0);
  EXPECT_EQ(output, good + ": ok\n");

  // Started on a broken config, nothing starts and the exit code says so.
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", broken}, output), 1);
  EXPECT_THAT(output, HasSubstr("not started"));
  EXPECT_EQ(run_command({SHOAL_BINARY, "--bogus"}, output), 64);  // bad usage (EX_USAGE)
  EXPECT_EQ(run_command({SHOAL_BINARY, "--version"}, output), 0);
  EXPECT_THAT(output, ::testing::StartsWith("shoal "));
}

// With [log] file set, what stops a start still reaches the terminal (as nginx's [emerg] does);
// once the server runs, its errors go to the file alone.
TEST_F(Lifecycle, AStartThatFailsSaysWhyOnStderrEvenWithALogFile) {
  OccupiedPort occupied;
  std::string config = write_config("workers = 1", "[log]\nfile = \"file.log\"\n", "\"" + occupied.address() + "\"");
  std::string output;
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", config}, output, 10s), 1);
  EXPECT_THAT(output, HasSubstr("bind(" + occupied.address() + ") failed: Address already in use"));
  EXPECT_THAT(read_file(dir_.path() + "/file.log"), HasSubstr("Address already in use"));

  // The same with a free port: ready is in the file (the fixture's wait reads stderr).
  config = write_config("workers = 1", "[log]\nfile = \"file.log\"\n");
  shoal_ = std::make_unique<ShoalProcess>(config, dir_.path() + "/stderr.log");
  ASSERT_TRUE(wait_until([&] { return read_file(dir_.path() + "/file.log").find("] generation 1 ready") != std::string::npos; },
                         10s));
  dir_.write("shoal.toml", read_file(dir_.path() + "/shoal.toml") + "[http]\nwrokers = 1\n");
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return read_file(dir_.path() + "/file.log").find("reload failed") != std::string::npos; },
                         5s));
  EXPECT_EQ(shoal_->log().find("reload failed"), std::string::npos) << shoal_->log();
}

TEST_F(Lifecycle, SigtermStopsCleanlyRemovesPidFileAndFreesThePort) {
  start("workers = 2\npid_file = \"shoal.pid\"");
  std::ifstream pid_file(dir_.path() + "/shoal.pid");
  pid_t written = 0;
  pid_file >> written;
  EXPECT_EQ(written, shoal_->pid());
  auto worker_pids = children_of(shoal_->pid());
  ASSERT_EQ(worker_pids.size(), 2u);

  shoal_->signal(SIGTERM);
  auto status = shoal_->wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 0);
  for (pid_t pid : worker_pids) EXPECT_TRUE(wait_until([&] { return !process_exists(pid); }, 5s));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/shoal.pid"));
  EXPECT_FALSE(Client(port_).connected());  // refused: nobody holds the socket any more
  expect_clean_log();
}

TEST_F(Lifecycle, SigquitStopsAtOnceWithNonZeroExit) {
  start("workers = 2");
  shoal_->signal(SIGQUIT);
  auto status = shoal_->wait_exit(5s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 1);
}

TEST_F(Lifecycle, SigkilledMasterTakesItsWorkersWithItAndFreesThePort) {
  start("workers = 2");
  auto worker_pids = children_of(shoal_->pid());
  ASSERT_EQ(worker_pids.size(), 2u);
  shoal_->signal(SIGKILL);
  ASSERT_TRUE(shoal_->wait_exit(5s));
  for (pid_t pid : worker_pids) EXPECT_TRUE(wait_until([&] { return !process_exists(pid); }, 5s)) << pid;
  EXPECT_TRUE(wait_until([&] { return !Client(port_).connected(); }, 5s));
}

TEST_F(Lifecycle, BindFailureIsAClearErrorAndExitCodeOne) {
  OccupiedPort taken;
  std::string output;
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", write_config("workers = 1", "", "\"" + taken.address() + "\"")}, output), 1);
  EXPECT_THAT(output, HasSubstr("bind(" + taken.address() + ") failed: Address already in use"));
}

TEST_F(Lifecycle, UnixSocketListenerReplacesAStaleSocketFile) {
  std::string path = dir_.path() + "/shoal.sock";
  {  // a socket file left behind by a crashed server: bound, never unlinked, nobody accepting
    int stale = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
    ASSERT_EQ(bind(stale, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
    close(stale);
  }
  start("workers = 1", "", "\"unix:shoal.sock\", \"127.0.0.1:0\"");
  Client client(path);
  ASSERT_TRUE(client.connected());
  ASSERT_TRUE(client.send(request("GET", "/hello")));
  auto r = client.read(1);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].body, "ok\n");

  // A second server on the same live socket is refused, not allowed to steal it.
  std::string output;
  std::string second = dir_.write("second.toml", "[server]\n" + run_as_line() + "listen = [\"unix:shoal.sock\"]\nworkers = 1\n");
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", second}, output), 1);
  EXPECT_THAT(output, HasSubstr("another process is accepting on this socket"));

  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_exit(10s));
  EXPECT_FALSE(std::filesystem::exists(path));
}

TEST_F(Lifecycle, AtMaxConnectionsTheWorkerStopsAcceptingUntilOneCloses) {
  start("workers = 1", "[http]\nmax_connections = 2\n");
  auto a = std::make_unique<Client>(port_);
  Client b(port_);
  for (Client* c : {a.get(), &b}) {
    ASSERT_TRUE(c->send(request("GET", "/hello")));
    ASSERT_EQ(c->read(1).size(), 1u);
  }
  // The third connection completes in the kernel's queue but is not accepted yet.
  Client third(port_);
  ASSERT_TRUE(third.connected());
  ASSERT_TRUE(third.send(request("GET", "/hello")));
  EXPECT_TRUE(third.read(1, 300ms).empty());
  a.reset();  // one closes: the worker accepts again and answers the waiting request
  auto r = third.read(1, 5s);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
  expect_clean_log({"max_connections \\(2\\) reached"});
}

TEST_F(Lifecycle, EveryFdOfMasterAndWorkersIsCloseOnExec) {
  start("workers = 2", "[log]\naccess_log = \"access.log\"\n");
  std::vector<pid_t> pids = children_of(shoal_->pid());
  pids.push_back(shoal_->pid());
  for (pid_t pid : pids) {
    int checked = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fdinfo")) {
      int fd = std::stoi(entry.path().filename().string());
      if (fd <= 2) continue;
      std::ifstream info(entry.path());
      std::string key, flags;
      while (info >> key >> flags && key != "flags:") {
      }
      ASSERT_EQ(key, "flags:");
      EXPECT_TRUE(std::stoul(flags, nullptr, 8) & 02000000) << "pid " << pid << " fd " << fd << " flags " << flags;
      ++checked;
    }
    EXPECT_GT(checked, 1) << pid;
  }
}

// ps and top tell the master from its workers, and a draining worker from a serving one.
TEST_F(Lifecycle, ProcessTitlesNameTheMasterEachWorkerAndItsDrain) {
  start("workers = 2", slow_route("/slow", "3s"));
  auto title = [](pid_t pid) {
    std::string cmdline = read_file("/proc/" + std::to_string(pid) + "/cmdline");
    return cmdline.substr(0, cmdline.find('\0'));
  };
  EXPECT_EQ(title(shoal_->pid()), "shoal: master -c " + dir_.path() + "/shoal.toml");
  EXPECT_EQ(read_file("/proc/" + std::to_string(shoal_->pid()) + "/comm"), "shoal: master -\n");
  std::set<std::string> workers;
  for (pid_t pid : children_of(shoal_->pid())) workers.insert(title(pid));
  EXPECT_EQ(workers, (std::set<std::string>{"shoal: worker 0 (generation 1)", "shoal: worker 1 (generation 1)"}));
  Client slow(port_);
  ASSERT_TRUE(slow.send(request("GET", "/slow")));
  ASSERT_TRUE(wait_until([&] {  // a worker of generation 1 holds it
    std::string out;
    run_command({SHOAL_BINARY, "status", "--json", "-c", dir_.path() + "/shoal.toml"}, out, 5s);
    return out.find("\"requests_in_flight\": 1") != std::string::npos;
  }, 5s));
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(shoal_->wait_for_log("reload succeeded: generation 2 ready", 10s));
  EXPECT_TRUE(wait_until([&] {
    for (pid_t pid : children_of(shoal_->pid()))
      if (title(pid).ends_with("(generation 1, draining)")) return true;
    return false;
  }, 2s)) << "no worker of generation 1 says it drains";
  auto r = slow.read(1, 10s);
  ASSERT_EQ(r.size(), 1u);
  EXPECT_EQ(r[0].status, 200);
}

TEST_F(Lifecycle, AccessLogHasEveryServedRequestAfterShutdown) {
  start("workers = 2", "[log]\naccess_log = \"access.log\"\n");
  for (int i = 0; i < 20; ++i) ASSERT_EQ(get(port_, "/hello?n=" + std::to_string(i)).status, 200);
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_exit(10s));
  std::ifstream in(dir_.path() + "/access.log");
  std::string line;
  int lines = 0;
  // nginx's and Apache's combined format, as log tools read it.
  std::regex format(R"(^127\.0\.0\.1 - - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] "GET /hello\?n=\d+ HTTP/1\.1" 200 3 "-" "-"$)");
  while (std::getline(in, line)) {
    EXPECT_TRUE(std::regex_match(line, format)) << line;
    ++lines;
  }
  EXPECT_EQ(lines, 20);
}

// access_log_format = "json": one object per line that a JSON parser other than ours (Python's)
// reads back whole, whatever the client put in its headers: quotes, backslashes, tabs, bytes that
// are not UTF-8, a header trying to forge a field. A valid X-Request-Id is kept, an invalid one
// replaced by shoal's own; worker, pid and generation say who answered, across a reload too.
TEST_F(Lifecycle, JsonAccessLogLinesParseBackWhateverTheClientSent) {
  start("workers = 1", "[log]\naccess_log = \"access.log\"\naccess_log_format = \"json\"\n");
  const std::string hostile = "GET /hello?q=%22x%22 HTTP/1.1\r\nHost: test\r\n"
                              "User-Agent: evil\", \"status\": 500, \"pid\": 1 \\ \t\xff\xfe caf\xc3\xa9\r\n"
                              "Referer: http://a/\"b\"\r\nX-Request-Id: req-42\r\n\r\n";
  const std::string invalid_id = "GET /hello HTTP/1.1\r\nHost: test\r\nX-Request-Id: has space\r\n\r\n";
  for (const std::string& request : {hostile, invalid_id}) {
    Client c(port_);
    ASSERT_TRUE(c.send(request));
    auto r = c.read(1);
    ASSERT_EQ(r.size(), 1u);
    EXPECT_EQ(r[0].status, 200);
  }
  const pid_t first = workers().at(0).first;
  std::string out;
  ASSERT_EQ(run_command({SHOAL_BINARY, "reload", "-c", dir_.path() + "/shoal.toml"}, out, 10s), 0) << out;
  ASSERT_EQ(get(port_, "/hello").status, 200);
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_exit(10s));
  // Each line through Python's json module: fields printed tab-separated, non-ASCII escaped.
  const std::string script = dir_.write("read.py", R"(
import json, sys
for line in open(sys.argv[1], encoding="utf-8"):
    o = json.loads(line)
    print("\t".join(ascii(o[k]) for k in ("status", "user_agent", "referer", "request_id", "generation", "pid", "worker", "remote_addr", "protocol", "time")))
)");
  ASSERT_EQ(run_command({"/usr/bin/python3", script, dir_.path() + "/access.log"}, out, 10s), 0) << out;
  std::vector<std::vector<std::string>> lines;
  std::istringstream in(out);
  for (std::string line; std::getline(in, line);) {
    std::vector<std::string> fields;
    std::istringstream f(line);
    for (std::string field; std::getline(f, field, '\t');) fields.push_back(field);
    lines.push_back(fields);
  }
  ASSERT_EQ(lines.size(), 3u) << out;
  EXPECT_EQ(lines[0][0], "200");  // not the 500 the user agent tried to forge
  EXPECT_EQ(lines[0][1], R"('evil", "status": 500, "pid": 1 \\ \t\ufffd\ufffd caf\xe9')");
  EXPECT_EQ(lines[0][2], R"('http://a/"b"')");
  EXPECT_EQ(lines[0][3], "'req-42'");
  EXPECT_EQ(lines[0][4], "1");
  EXPECT_EQ(lines[0][5], std::to_string(first));
  EXPECT_EQ(lines[0][6], "0");
  EXPECT_EQ(lines[0][7], "'127.0.0.1'");
  EXPECT_EQ(lines[0][8], "'HTTP/1.1'");
  EXPECT_TRUE(std::regex_match(lines[0][9], std::regex(R"('\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d')"))) << lines[0][9];
  EXPECT_NE(lines[1][3], "'has space'");  // replaced by shoal's own id
  EXPECT_TRUE(std::regex_match(lines[1][3], std::regex(R"('[0-9a-f]{16}-[0-9a-f]+')"))) << lines[1][3];
  EXPECT_EQ(lines[2][4], "2");  // answered by the generation the reload started
  EXPECT_NE(lines[2][5], std::to_string(first));
  EXPECT_NE(lines[2][3], lines[1][3]);
}

}  // namespace
}  // namespace shoal::test
