// Hardening, against the real binary: privilege drop, what a worker holds open, the pid file and
// the control socket against symlinks and stale or live owners, running out of fds, a log that
// cannot be written, a config that vanishes before a reload.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "support/http_client.hpp"
#include "support/conformance.hpp"
#include "support/malformed_requests.hpp"
#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

using Hardening = ServerTest;

// A line of /proc/PID/status without its key: "0\t0\t0\t0" for "Uid:".
std::string status_field(pid_t pid, const std::string& key) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line))
    if (line.starts_with(key + ":")) {
      std::string value = line.substr(key.size() + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      while (!value.empty() && (value.back() == ' ' || value.back() == '\t')) value.pop_back();
      return value;
    }
  return "";
}

// Where each fd of a process leads (readlink of /proc/PID/fd/N).
std::map<int, std::string> fd_targets(pid_t pid) {
  std::map<int, std::string> out;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec)) {
    std::error_code link_ec;
    auto target = std::filesystem::read_symlink(it->path(), link_ec);
    out[std::stoi(it->path().filename().string())] = link_ec ? "?" : target.string();
  }
  return out;
}

// utime + stime of a process, in clock ticks.
long cpu_ticks(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(in, line);
  std::istringstream rest(line.substr(line.rfind(')') + 2));
  std::string field;
  long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && rest >> field; ++i) {
    if (i == 14) utime = std::stol(field);
    if (i == 15) stime = std::stol(field);
  }
  return utime + stime;
}

TEST_F(Hardening, EveryMalformedOrSmugglingRequestIsRefusedByTheRealBinary) {
  start("workers = 2", test::kMalformedLimits);
  for (const MalformedCase& bad : malformed_requests()) {
    Client c(port_);
    ASSERT_TRUE(c.connected());
    // A valid request behind the bad one, in the same write: it must never be answered.
    ASSERT_TRUE(c.send(bad.request + request("GET", "/hello")));
    auto r = c.read(2, 3s);
    ASSERT_EQ(r.size(), 1u) << bad.name << ": " << c.raw();
    EXPECT_EQ(r[0].status, bad.status) << bad.name;
    EXPECT_EQ(r[0].header("connection"), "close") << bad.name;
    EXPECT_EQ(c.wait_close(3s), Eof::Clean) << bad.name;
  }
  EXPECT_EQ(get(port_, "/hello").status, 200);
  expect_clean_log();
}

// The conformance table (tests/support/conformance.hpp) against the real binary, over TCP.
TEST_F(Hardening, EveryConformanceRowHoldsForTheRealBinary) {
  dir_.write("www/hello.txt", "hello file\n");
  start("workers = 2", std::string(test::kMalformedLimits) + test::kConformanceRoutes);
  size_t rows = 0;
  for (const test::ConformanceRow& row : test::conformance_rows()) {
    if (row.in_process_only) continue;
    ++rows;
    SCOPED_TRACE(std::string(row.clause) + ": " + row.requirement);
    Client c(port_);
    ASSERT_TRUE(c.connected());
    if (row.request.starts_with("HEAD")) c.parser().expect_head();
    ASSERT_TRUE(c.send(row.request + request("GET", "/hello")));
    auto r = c.read(2, 3s);
    if (row.closes) c.wait_close(3s);
    test::expect_row(row, r, c.eof(), c.raw());
  }
  EXPECT_GE(rows, 60u);
  expect_clean_log();
}

TEST_F(Hardening, ATricklingClientIsCutOffAtTheHeaderDeadline) {
  start("workers = 1", "[http]\nheader_timeout = \"300ms\"\n");
  Client c(port_);
  std::string req = "GET /hello HTTP/1.1\r\nHost: t\r\nX-Slow: " + std::string(200, 's') + "\r\n\r\n";
  auto began = std::chrono::steady_clock::now();
  size_t sent = 0;
  std::vector<HttpResponse> r;
  // One byte every 20 ms: each read is quick, the whole section is not.
  while (sent < req.size() && c.send(std::string_view(&req[sent], 1))) {
    ++sent;
    r = c.read(1, 20ms);
    if (!r.empty() || c.eof() != Eof::None) break;
  }
  expect_trickle_cut_off(r, sent, req.size(), began);
}

// One clock for both logs: local time with its offset, in the log and in the access log alike
// (TZ set here to a zone with an odd offset, so that a UTC or offset-less time cannot pass).
TEST_F(Hardening, BothLogsWriteLocalTimeWithTheSameOffset) {
  StartOptions options;
  options.env = {"TZ=NPT-5:45"};  // POSIX form (no tzdata needed): UTC+05:45
  start("workers = 1", "[log]\naccess_log = \"access.log\"\n", "\"127.0.0.1:0\"", SHOAL_BINARY, options);
  ASSERT_EQ(get(port_, "/hello").status, 200);
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_exit(10s));
  std::smatch m;
  std::string log = shoal_->log();
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"((?:^|\n)\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}([+-]\d\d:\d\d) info \[master )")))
      << log.substr(0, 300);
  EXPECT_EQ(m[1].str(), "+05:45");
  std::string access = read_file(dir_.path() + "/access.log");
  ASSERT_TRUE(std::regex_search(access, m, std::regex(R"(- - \[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d ([+-]\d{4})\] "GET /hello HTTP/1.1" 200 )")))
      << access;
  EXPECT_EQ(m[1].str(), "+0545");
}

// `shoal reopen` is SIGUSR1 with an answer: it returns once every worker took the new files, so a
// logrotate postrotate script can compress the old file right after it. `shoal stop --now` is
// SIGQUIT with an answer, and its exit code 1.
TEST_F(Hardening, ReopenWaitsForEveryWorkerAndStopNowStopsWithoutDraining) {
  const std::string config = write_config("workers = 2", "[log]\nfile = \"shoal.log\"\naccess_log = \"access.log\"\n");
  const std::string log = dir_.path() + "/shoal.log";
  shoal_ = std::make_unique<ShoalProcess>(config, dir_.path() + "/stderr.log");
  ASSERT_TRUE(wait_until([&] { return read_file(log).find("generation 1 ready: 2 worker") != std::string::npos; }, 10s));
  std::smatch m;
  std::string text = read_file(log);
  ASSERT_TRUE(std::regex_search(text, m, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))")));
  int port = std::stoi(m[1]);
  ASSERT_EQ(get(port, "/hello?before").status, 200);
  std::filesystem::rename(dir_.path() + "/access.log", dir_.path() + "/access.log.1");
  std::filesystem::rename(log, log + ".1");
  std::string output;
  EXPECT_EQ(run_command({SHOAL_BINARY, "reopen", "-c", config}, output, 10s), 0) << output;
  EXPECT_THAT(output, HasSubstr("2 of 2 worker(s) confirmed they took them"));
  // Every worker holds the new files by now: nothing it writes from here goes to the old ones.
  for (int i = 0; i < 8; ++i) ASSERT_EQ(get(port, "/hello?after").status, 200);
  EXPECT_EQ(run_command({SHOAL_BINARY, "stop", "--now", "-c", config}, output, 10s), 1) << output;
  EXPECT_THAT(output, HasSubstr("shutdown NOT clean"));
  EXPECT_THAT(read_file(log), HasSubstr("stop --now: stopping now, without draining"));
  EXPECT_THAT(read_file(dir_.path() + "/access.log"), HasSubstr("GET /hello?after"));
  EXPECT_THAT(read_file(dir_.path() + "/access.log.1"), Not(HasSubstr("?after")));
  EXPECT_THAT(read_file(log + ".1"), Not(HasSubstr("stop --now")));
}

TEST_F(Hardening, WorkersRunAsTheConfiguredUserAndCannotRegainRoot) {
  if (geteuid() != 0) {
    // Not root: the user cannot be switched to; it is ignored with a warning, as nginx does.
    start("workers = 1\nuser = \"nobody\"");
    EXPECT_THAT(shoal_->log(), HasSubstr("[server] user = \"nobody\" is ignored: switching user needs root"));
    for (pid_t pid : children_of(shoal_->pid()))
      EXPECT_EQ(status_field(pid, "Uid"), std::to_string(geteuid()) + "\t" + std::to_string(geteuid()) + "\t" +
                                              std::to_string(geteuid()) + "\t" + std::to_string(geteuid()));
    return;
  }
  start("workers = 2\nuser = \"nobody\"\ngroup = \"nogroup\"", "[log]\naccess_log = \"access.log\"\n");
  auto pids = children_of(shoal_->pid());
  ASSERT_EQ(pids.size(), 2u);
  for (pid_t pid : pids) {
    EXPECT_EQ(status_field(pid, "Uid"), "65534\t65534\t65534\t65534") << pid;
    EXPECT_EQ(status_field(pid, "Gid"), "65534\t65534\t65534\t65534") << pid;
    EXPECT_EQ(status_field(pid, "Groups"), "65534") << pid;  // root's supplementary groups are gone too
    EXPECT_EQ(status_field(pid, "CapEff"), "0000000000000000") << pid;
  }
  EXPECT_EQ(status_field(shoal_->pid(), "Uid"), "0\t0\t0\t0");
  EXPECT_EQ(occurrences(shoal_->log(), "running as user nobody (uid 65534), group gid 65534"), 2u);

  // The workers serve, static files included (the root was opened before the drop).
  EXPECT_EQ(get(port_, "/hello").status, 200);
  EXPECT_EQ(get(port_, "/static/hello.txt").body, "hello from a file\n");

  // Log rotation: the worker could not reopen root's files in a 0700 directory itself; the
  // master's reopened files reach it over the channel.
  ASSERT_EQ((std::filesystem::status(dir_.path()).permissions() & std::filesystem::perms::others_all),
            std::filesystem::perms::none);
  std::filesystem::rename(dir_.path() + "/access.log", dir_.path() + "/access.log.1");
  shoal_->signal(SIGUSR1);
  ASSERT_TRUE(shoal_->wait_for_log("reopened the log files", 5s, 3));
  ASSERT_EQ(get(port_, "/hello?after-rotation").status, 200);
  shoal_->signal(SIGTERM);
  auto exit = shoal_->wait_exit(10s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 0);
  EXPECT_THAT(read_file(dir_.path() + "/access.log"), HasSubstr("GET /hello?after-rotation"));
  EXPECT_THAT(read_file(dir_.path() + "/access.log.1"), ::testing::Not(HasSubstr("after-rotation")));
  expect_clean_log();
}

TEST_F(Hardening, RootWithoutAUserInTheConfigIsRefused) {
  if (geteuid() != 0) GTEST_SKIP() << "only root can be refused for running workers as root";
  std::string path = dir_.write("root.toml", "[server]\nlisten = [\"127.0.0.1:0\"]\n");
  std::string output;
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", path}, output), 1);
  EXPECT_THAT(output, HasSubstr(path + ": [server] user is not set, and shoal runs as root: refusing to run workers as "
                                       "root. Set user = \"www-data\""));
  EXPECT_THAT(output, ::testing::Not(HasSubstr("spawned worker")));
}

TEST_F(Hardening, AWorkerHoldsOnlyItsListenersChannelLogsAndConnections) {
  start("workers = 1\npid_file = \"shoal.pid\"", "[log]\naccess_log = \"access.log\"\n");
  pid_t worker = children_of(shoal_->pid()).at(0);
  Client a(port_), b(port_);
  ASSERT_TRUE(a.send(request("GET", "/hello")) && b.send(request("GET", "/hello")));
  ASSERT_EQ(a.read(1).size(), 1u);
  ASSERT_EQ(b.read(1).size(), 1u);

  auto master = fd_targets(shoal_->pid());
  std::set<std::string> master_sockets;
  for (const auto& [fd, target] : master) master_sockets.insert(target);
  auto fds = fd_targets(worker);
  std::map<std::string, int> kinds;
  for (const auto& [fd, target] : fds) {
    std::string kind;
    if (fd <= 2) kind = "stdio";
    else if (target == dir_.path() + "/access.log") kind = "access log";
    else if (target == dir_.path() + "/public") kind = "static root";
    else if (target == "anon_inode:[eventpoll]") kind = "event loop";
    else if (target.starts_with("pipe:")) kind = "signal pipe";  // libevent's, both ends
    else if (target.starts_with("socket:")) kind = master_sockets.count(target) ? "shared with the master" : "own socket";
    else kind = "unexpected: " + target;
    ++kinds[kind];
  }
  // Shared with the master: the listening socket, nothing else. Own sockets: the channel's end and
  // the two client connections.
  EXPECT_EQ(kinds["stdio"], 3);  // the log is stderr here
  EXPECT_EQ(kinds["access log"], 1);
  EXPECT_EQ(kinds["static root"], 1);
  EXPECT_EQ(kinds["event loop"], 1);
  EXPECT_EQ(kinds["signal pipe"], 2);
  EXPECT_EQ(kinds["shared with the master"], 1);  // the listener
  EXPECT_EQ(kinds["own socket"], 1 + 2);
  EXPECT_EQ(kinds.size(), 7u) << ::testing::PrintToString(kinds);
  // Nothing of the master's own: pid file, config, control socket.
  for (const auto& [fd, target] : fds) {
    EXPECT_THAT(target, ::testing::Not(HasSubstr("shoal.pid")));
    EXPECT_THAT(target, ::testing::Not(HasSubstr(".toml")));
  }
}

TEST_F(Hardening, LivePidFileRefusesTheStartAndNamesThePid) {
  std::string pid_file = dir_.write("shoal.pid", std::to_string(getpid()) + "\n");  // this test runner: alive
  write_config("workers = 1\npid_file = \"shoal.pid\"");
  std::string output;
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", dir_.path() + "/shoal.toml"}, output), 1);
  EXPECT_THAT(output, HasSubstr("pid file " + pid_file + " names pid " + std::to_string(getpid())));
  EXPECT_THAT(output, HasSubstr("which is running: is shoal already running?"));
  EXPECT_EQ(read_file(pid_file), std::to_string(getpid()) + "\n");
}

TEST_F(Hardening, StalePidFileIsReplacedAndWrittenWithMode0644) {
  // A pid that is certainly free: a child that has exited and been reaped.
  pid_t gone = fork();
  if (gone == 0) _exit(0);
  waitpid(gone, nullptr, 0);
  std::string pid_file = dir_.write("shoal.pid", std::to_string(gone) + "\n");
  umask(0077);  // the master's umask does not decide the pid file's mode
  start("workers = 1\npid_file = \"shoal.pid\"");
  umask(0022);
  EXPECT_THAT(shoal_->log(), HasSubstr("pid file " + pid_file + " is stale (pid " + std::to_string(gone) + " is gone)"));
  EXPECT_EQ(read_file(pid_file), std::to_string(shoal_->pid()) + "\n");
  struct stat st;
  ASSERT_EQ(lstat(pid_file.c_str(), &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0644u);
}

TEST_F(Hardening, SymlinksAtThePidFileOrControlSocketAreNeverFollowed) {
  std::string victim = dir_.write("victim.txt", "precious\n");
  std::filesystem::create_symlink(victim, dir_.path() + "/shoal.pid");
  write_config("workers = 1\npid_file = \"shoal.pid\"");
  std::string output;
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", dir_.path() + "/shoal.toml"}, output), 1);
  EXPECT_THAT(output, HasSubstr("it is a symbolic link; shoal never follows one there"));
  std::filesystem::remove(dir_.path() + "/shoal.pid");

  std::filesystem::create_symlink(victim, dir_.path() + "/shoal.ctl");
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", dir_.path() + "/shoal.toml"}, output), 1);
  EXPECT_THAT(output, HasSubstr("[server] control_socket: bind(unix:" + dir_.path() +
                                "/shoal.ctl) failed: the path exists and is not a socket"));
  EXPECT_EQ(read_file(victim), "precious\n");
  EXPECT_TRUE(std::filesystem::is_symlink(dir_.path() + "/shoal.ctl"));
}

TEST_F(Hardening, RunningOutOfFdsPausesAcceptingWithoutSpinningOrDying) {
  StartOptions options;
  options.max_open_files = 24;
  start("workers = 1", "", "\"127.0.0.1:0\"", SHOAL_BINARY, options);
  pid_t worker = children_of(shoal_->pid()).at(0);
  ASSERT_EQ(status_field(worker, "Pid"), std::to_string(worker));
  std::vector<std::unique_ptr<Client>> idle;
  for (int i = 0; i < 40; ++i) {
    idle.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(idle.back()->connected());
  }
  ASSERT_TRUE(shoal_->wait_for_log("accept\\(\\) failed: Too many open files; pausing accepts for 100ms", 5s));
  // For 1.5 s at the limit: the worker neither spins (a ready listener it cannot accept from
  // would take a whole CPU) nor fills the log.
  long ticks_before = cpu_ticks(worker);
  size_t lines_before = occurrences(shoal_->log(), "Too many open files");
  auto began = std::chrono::steady_clock::now();
  wait_until([&] { return std::chrono::steady_clock::now() - began >= 1500ms; }, 2s);
  long ticks = cpu_ticks(worker) - ticks_before;
  EXPECT_LT(ticks, sysconf(_SC_CLK_TCK) * 3 / 10) << "CPU ticks in 1.5 s";
  EXPECT_LE(occurrences(shoal_->log(), "Too many open files") - lines_before, 2u);
  EXPECT_TRUE(process_exists(worker));

  idle.clear();  // the fds come back; the connections still queued are accepted, then new ones
  auto r = get(port_, "/hello", 10s);
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(children_of(shoal_->pid()), std::vector<pid_t>{worker});
}

TEST_F(Hardening, UnwritableLogKeepsServingAndSaysSoOnStderr) {
  // /dev/full: every write fails with ENOSPC, as on a full disk. The address is a unix socket,
  // because the log that would name an ephemeral port is lost.
  std::string config = dir_.write("shoal.toml", "[server]\n" + run_as_line() +
                                                    "listen = [\"unix:http.sock\"]\nworkers = 2\n"
                                                    "[log]\nfile = \"/dev/full\"\naccess_log = \"/dev/full\"\n" +
                                                    kRoutes);
  ShoalProcess shoal(config, dir_.path() + "/stderr.log");
  std::string socket = dir_.path() + "/http.sock";
  auto get_unix = [&](const std::string& path) {
    Client c(socket);
    if (!c.connected() || !c.send(request("GET", path, "Connection: close\r\n"))) return 0;
    auto r = c.read(1, 5s);
    return r.empty() ? 0 : r[0].status;
  };
  ASSERT_TRUE(wait_until([&] { return get_unix("/hello") == 200; }, 10s));
  int ok = 0;
  for (int i = 0; i < 50; ++i) ok += get_unix("/hello") == 200;
  EXPECT_EQ(ok, 50);
  ASSERT_TRUE(wait_until([&] { return read_file(dir_.path() + "/stderr.log").find("No space left on device") !=
                                      std::string::npos; }, 5s));
  std::string stderr_text = read_file(dir_.path() + "/stderr.log");
  EXPECT_TRUE(std::regex_search(stderr_text, std::regex(R"(shoal\[\d+\]: writing to the log failed: No space left on device; \d+ line\(s\) lost so far; still serving)")))
      << stderr_text;
  shoal.signal(SIGTERM);
  auto exit = shoal.wait_exit(10s);
  ASSERT_TRUE(exit);
  // The access log could not be flushed at exit: lines were lost, and the exit code says so.
  EXPECT_EQ(exit->code, 1);
}

TEST_F(Hardening, ConfigDeletedOrUnreadableAtReloadLeavesTheGenerationServing) {
  start("workers = 2");
  auto pids = children_of(shoal_->pid());
  std::string path = dir_.path() + "/shoal.toml";
  std::string good = read_file(path);

  std::filesystem::remove(path);
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(shoal_->wait_for_log("reload failed: .*" + path + ".*; generation 1 keeps serving", 5s));
  EXPECT_EQ(get(port_, "/hello").status, 200);

  std::filesystem::create_directory(path);  // not a file: reading it fails
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(shoal_->wait_for_log("reload failed: .*" + path + ".*; generation 1 keeps serving", 5s, 2));
  EXPECT_EQ(get(port_, "/hello").status, 200);
  EXPECT_EQ(children_of(shoal_->pid()), pids);
  std::cerr << "the operator is told: " << *shoal_->wait_for_log("(reload failed: .*)", 1s, 2) << "\n";

  std::filesystem::remove(path);
  dir_.write("shoal.toml", good);
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(shoal_->wait_for_log("reload succeeded: generation 2 ready", 5s));
  EXPECT_EQ(get(port_, "/hello").status, 200);
}

}  // namespace
}  // namespace shoal::test
