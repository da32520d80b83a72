// Deploying and controlling shoal, against the real binary: binary upgrade under load and to a
// broken binary, systemd's notification and socket activation, and the CLI with every exit code.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <fstream>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/sys.hpp"
#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;
using Deploy = ServerTest;

pid_t read_pid_file(const std::string& path) {
  std::ifstream in(path);
  pid_t pid = -1;
  in >> pid;
  return pid;
}

// Puts `source` at `path` as a deploy does: a new file renamed over the old one, whose inode the
// running master keeps executing.
void deploy_binary(const std::string& source, const std::string& path) {
  std::filesystem::copy_file(source, path + ".new", std::filesystem::copy_options::overwrite_existing);
  std::filesystem::permissions(path + ".new", std::filesystem::perms::owner_all);
  std::filesystem::rename(path + ".new", path);
}

struct CliResult {
  int code;
  std::string output;
};

CliResult cli(const std::vector<std::string>& args, std::chrono::milliseconds timeout = 30s) {
  std::vector<std::string> argv = {SHOAL_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  CliResult out;
  out.code = run_command(argv, out.output, timeout);
  return out;
}

TEST_F(Deploy, UpgradeUnderLoadDropsNothingAndHandsEverythingOver) {
  std::string binary = dir_.path() + "/shoal";
  deploy_binary(SHOAL_BINARY, binary);
  start("workers = 2\npid_file = \"shoal.pid\"", kInfoRoute, "\"127.0.0.1:0\"", binary);
  pid_t old_master = shoal_->pid();
  auto old_workers = children_of(old_master);
  LoadTally tally;
  auto until = Clock::now() + 4s;
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i) clients.emplace_back(client_loop, port_, true, until, std::ref(tally));
  for (int i = 0; i < 2; ++i) clients.emplace_back(client_loop, port_, false, until, std::ref(tally));
  ASSERT_TRUE(wait_until([&] { return tally.ok > 1000; }, 5s));
  deploy_binary(SHOAL_BINARY, binary);  // the new version on disk
  shoal_->signal(SIGUSR2);
  auto status = shoal_->wait_exit(10s);  // the old master hands over, drains, exits 0
  for (auto& t : clients) t.join();
  expect_every_request_answered(tally, "upgrade under load", 1000);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 0);
  pid_t new_master = read_pid_file(dir_.path() + "/shoal.pid");
  EXPECT_NE(new_master, old_master);
  EXPECT_TRUE(process_exists(new_master));
  for (pid_t pid : old_workers) EXPECT_TRUE(wait_until([&] { return !process_exists(pid); }, 5s));
  EXPECT_THAT(shoal_->log(), ::testing::ContainsRegex("upgrade ok: master " + std::to_string(old_master) + " -> " +
                                                      std::to_string(new_master)));
  auto info = get(port_, "/info");
  EXPECT_THAT(info.body, HasSubstr(" generation=2 "));  // numbering goes on in the new master
  auto new_workers = children_of(new_master);
  ASSERT_EQ(new_workers.size(), 2u);
  EXPECT_EQ(std::count(new_workers.begin(), new_workers.end(), std::stoi(info.body.substr(4))), 1);
  // The new master answers the CLI on the same control socket.
  auto result = cli({"status", "--json", "-c", dir_.path() + "/shoal.toml"});
  ASSERT_EQ(result.code, 0) << result.output;
  EXPECT_EQ(nlohmann::json::parse(result.output)["master"]["pid"].get<int>(), new_master);
  EXPECT_EQ(cli({"stop", "-c", dir_.path() + "/shoal.toml"}).code, 0);
  EXPECT_TRUE(wait_until([&] { return !process_exists(new_master); }, 10s));
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/shoal.pid"));
}

TEST_F(Deploy, UpgradeToABrokenBinaryLeavesTheOldMasterServing) {
  std::string binary = dir_.path() + "/shoal";
  deploy_binary(SHOAL_BINARY, binary);
  start("workers = 2\npid_file = \"shoal.pid\"", kInfoRoute, "\"127.0.0.1:0\"", binary);
  auto workers_before = children_of(shoal_->pid());
  dir_.write("broken", "#!/bin/sh\nexit 1\n");
  deploy_binary(dir_.path() + "/broken", binary);
  auto result = cli({"upgrade", "-c", dir_.path() + "/shoal.toml"});
  EXPECT_EQ(result.code, 2) << result.output;
  EXPECT_THAT(result.output, ::testing::ContainsRegex("upgrade failed: the new master [0-9]+ exited with code 1 before it "
                                                      "was ready; master " + std::to_string(shoal_->pid()) +
                                                      " keeps serving"));
  EXPECT_EQ(read_pid_file(dir_.path() + "/shoal.pid"), shoal_->pid());
  EXPECT_EQ(children_of(shoal_->pid()), workers_before);
  EXPECT_EQ(get(port_, "/hello").status, 200);
  EXPECT_EQ(cli({"status", "-c", dir_.path() + "/shoal.toml"}).code, 0);
}

TEST_F(Deploy, UpgradeWithAnInvalidConfigIsReportedAsSuch) {
  std::string binary = dir_.path() + "/shoal";
  deploy_binary(SHOAL_BINARY, binary);
  start("workers = 1", "", "\"127.0.0.1:0\"", binary);
  std::string good = read_file(dir_.path() + "/shoal.toml");
  dir_.write("shoal.toml", good + "[http]\nmax_body = 3\n");
  auto result = cli({"upgrade", "-c", dir_.path() + "/shoal.toml"});
  EXPECT_EQ(result.code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("upgrade failed: the new master's config is invalid: "));
  EXPECT_THAT(result.output, HasSubstr("unknown key 'max_body' in [http]"));
  EXPECT_EQ(get(port_, "/hello").status, 200);
}

// ---- upgrade in place: the master re-executes itself; a supervisor that watches the pid it
// started (runit, s6, supervisord, this test) sees nothing but the same process, serving.

std::string exe_of(pid_t pid) {
  std::error_code ec;
  return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/exe", ec).string();
}

TEST_F(Deploy, UpgradeInPlaceUnderLoadKeepsThePidAndDropsNothing) {
  std::string binary = dir_.path() + "/shoal";
  deploy_binary(SHOAL_BINARY, binary);
  start("workers = 2\npid_file = \"shoal.pid\"\nupgrade = \"in-place\"", kInfoRoute, "\"127.0.0.1:0\"", binary);
  const pid_t master = shoal_->pid();
  const size_t fds_before = fd_count(master);
  LoadTally tally;
  auto until = Clock::now() + 3s;
  std::vector<std::thread> clients;
  for (int i = 0; i < 3; ++i) clients.emplace_back(client_loop, port_, true, until, std::ref(tally));
  for (int i = 0; i < 2; ++i) clients.emplace_back(client_loop, port_, false, until, std::ref(tally));
  ASSERT_TRUE(wait_until([&] { return tally.ok > 1000; }, 5s));
  for (int g = 2; g <= 3; ++g) {
    auto old_workers = children_of(master);
    deploy_binary(SHOAL_BINARY, binary);  // a new inode: the running image's file is deleted
    ASSERT_THAT(exe_of(master), HasSubstr("(deleted)"));
    auto result = cli({"upgrade", "-c", dir_.path() + "/shoal.toml"});
    ASSERT_EQ(result.code, 0) << result.output;
    EXPECT_THAT(result.output, HasSubstr("upgrade ok: master " + std::to_string(master) + " in place, shoal "));
    EXPECT_THAT(result.output, HasSubstr("generation " + std::to_string(g) + " ready (2 workers"));
    EXPECT_EQ(exe_of(master), binary);  // the new file, not the deleted one: the exec happened
    // The old generation was adopted and drained by the new image, which reaped it.
    for (pid_t pid : old_workers) EXPECT_TRUE(wait_until([&] { return !process_exists(pid); }, 5s)) << pid;
    ASSERT_TRUE(shoal_->wait_for_log("generation " + std::to_string(g - 1) + " drained", 5s));
  }
  for (auto& t : clients) t.join();
  expect_every_request_answered(tally, "2 upgrades in place under load", 1000);
  EXPECT_TRUE(process_exists(master));  // the process this test started, still
  EXPECT_EQ(read_pid_file(dir_.path() + "/shoal.pid"), master);
  EXPECT_EQ(fd_count(master), fds_before);  // nothing leaked across two execs
  auto info = get(port_, "/info");
  EXPECT_THAT(info.body, HasSubstr(" generation=3 "));
  EXPECT_EQ(children_of(master).size(), 2u);
  auto status = cli({"status", "--json", "-c", dir_.path() + "/shoal.toml"});
  ASSERT_EQ(status.code, 0) << status.output;
  EXPECT_EQ(nlohmann::json::parse(status.output)["master"]["pid"].get<int>(), master);
  EXPECT_GE(nlohmann::json::parse(status.output)["master"]["uptime_s"].get<int>(), 2);  // the master's, across the execs
  shoal_->signal(SIGTERM);
  auto exit = shoal_->wait_exit(10s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir_.path() + "/shoal.pid"));
  expect_clean_log();
}

// The new program is asked first (-t on the running config, and whether it speaks the workers'
// channel protocol): one that cannot say yes is never executed.
TEST_F(Deploy, UpgradeInPlaceToAProgramThatRefusesChangesNothing) {
  std::string binary = dir_.path() + "/shoal";
  deploy_binary(SHOAL_BINARY, binary);
  start("workers = 2\npid_file = \"shoal.pid\"\nupgrade = \"in-place\"", "", "\"127.0.0.1:0\"", binary);
  const pid_t master = shoal_->pid();
  auto workers = children_of(master);
  // An older shoal, which knows no --can-adopt.
  dir_.write("older", "#!/bin/sh\necho \"shoal: unknown argument '--can-adopt' (shoal -h for help)\" >&2\nexit 64\n");
  deploy_binary(dir_.path() + "/older", binary);
  auto result = cli({"upgrade", "-c", dir_.path() + "/shoal.toml"});
  EXPECT_EQ(result.code, 2) << result.output;
  EXPECT_THAT(result.output, HasSubstr("the new program's check (-t) exited 64: shoal: unknown argument '--can-adopt'"));
  EXPECT_THAT(result.output, HasSubstr("master " + std::to_string(master) + " keeps serving"));
  // A config that the new program refuses.
  deploy_binary(SHOAL_BINARY, binary);
  std::string good = read_file(dir_.path() + "/shoal.toml");
  dir_.write("shoal.toml", good + "[http]\nmax_body = 3\n");
  result = cli({"upgrade", "-c", dir_.path() + "/shoal.toml"});
  EXPECT_EQ(result.code, 1) << result.output;
  EXPECT_THAT(result.output, HasSubstr("unknown key 'max_body' in [http]"));
  dir_.write("shoal.toml", good);
  EXPECT_EQ(children_of(master), workers);
  EXPECT_EQ(get(port_, "/hello").status, 200);
  EXPECT_EQ(read_pid_file(dir_.path() + "/shoal.pid"), master);
  EXPECT_THAT(exe_of(master), HasSubstr("(deleted)"));  // never executed: still the first image
  EXPECT_EQ(cli({"upgrade", "-c", dir_.path() + "/shoal.toml"}).code, 0);  // and the next one goes through
}

// A new program whose check hangs is given up at the 2 s deadline; it is gone (killed and
// reaped) when the next upgrade starts its own check.
TEST_F(Deploy, UpgradeInPlaceWhoseCheckHangsFailsAtItsDeadlineAndLeavesNoChild) {
  std::string binary = dir_.path() + "/shoal";
  deploy_binary(SHOAL_BINARY, binary);
  start("workers = 1\nupgrade = \"in-place\"", "", "\"127.0.0.1:0\"", binary);
  const pid_t master = shoal_->pid();
  auto workers = children_of(master);
  dir_.write("hangs", "#!/bin/sh\nexec sleep 30\n");
  deploy_binary(dir_.path() + "/hangs", binary);
  auto result = cli({"upgrade", "-c", dir_.path() + "/shoal.toml"});
  EXPECT_EQ(result.code, 3) << result.output;
  EXPECT_THAT(result.output, HasSubstr("the new program's check (-t) did not end within 2s"));
  auto now = children_of(master);
  ASSERT_EQ(now.size(), 2u);  // the worker, and the check the master gave up on
  deploy_binary(SHOAL_BINARY, binary);
  result = cli({"upgrade", "-c", dir_.path() + "/shoal.toml"});
  EXPECT_EQ(result.code, 0) << result.output;
  for (pid_t pid : now) EXPECT_TRUE(wait_until([&] { return !process_exists(pid); }, 5s)) << pid;
  EXPECT_EQ(children_of(master).size(), 1u);
  EXPECT_EQ(get(port_, "/hello").status, 200);
}

// The new image may still fail: here its generation cannot bind an address the config gained.
// It supervises the adopted generation, which serves on, and says so.
TEST_F(Deploy, UpgradeInPlaceWhoseGenerationFailsKeepsTheAdoptedOneServing) {
  std::string binary = dir_.path() + "/shoal";
  deploy_binary(SHOAL_BINARY, binary);
  start("workers = 2\nupgrade = \"in-place\"", kInfoRoute, "\"127.0.0.1:0\"", binary);
  const pid_t master = shoal_->pid();
  auto workers = children_of(master);
  // An address that -t accepts and the bind refuses: a port this test holds.
  int held = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(bind(held, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ASSERT_EQ(listen(held, 1), 0);
  socklen_t len = sizeof addr;
  getsockname(held, reinterpret_cast<sockaddr*>(&addr), &len);
  std::string config = read_file(dir_.path() + "/shoal.toml");
  std::string listen_line = "listen = [\"127.0.0.1:" + std::to_string(port_) + "\"";
  size_t at = config.find("listen = [");
  ASSERT_NE(at, std::string::npos);
  size_t end = config.find('\n', at);
  dir_.write("shoal.toml", config.substr(0, at) + listen_line + ", \"127.0.0.1:" + std::to_string(ntohs(addr.sin_port)) +
                               "\"]" + config.substr(end));
  auto result = cli({"upgrade", "-c", dir_.path() + "/shoal.toml"});
  ::close(held);
  EXPECT_EQ(result.code, 2) << result.output;
  EXPECT_THAT(result.output, HasSubstr("Address already in use"));
  EXPECT_THAT(result.output, HasSubstr("generation 1 serves on, supervised by master " + std::to_string(master)));
  EXPECT_EQ(children_of(master), workers);
  EXPECT_THAT(get(port_, "/info").body, HasSubstr(" generation=1 "));
  // The adopted workers are this image's now: a crashed one is replaced, and SIGTERM drains them.
  ::kill(workers[0], SIGKILL);
  ASSERT_TRUE(wait_until([&] { return children_of(master).size() == 2 && children_of(master) != workers; }, 5s));
  dir_.write("shoal.toml", config);
  EXPECT_EQ(cli({"reload", "-c", dir_.path() + "/shoal.toml"}).code, 0);
  shoal_->signal(SIGTERM);
  auto exit = shoal_->wait_exit(10s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 0);
}

class NotifySocket {
 public:
  explicit NotifySocket(const std::string& path) : path_(path) {
    fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) throw std::runtime_error("bind notify socket");
    timeval tv{0, 20'000};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~NotifySocket() { close(fd_); }
  // Every message received so far, in order of arrival.
  const std::vector<std::string>& messages() {
    char buf[4096];
    ssize_t n;
    while ((n = recv(fd_, buf, sizeof buf, 0)) > 0) messages_.emplace_back(buf, static_cast<size_t>(n));
    return messages_;
  }
  bool wait_for(const std::string& fragment, size_t occurrences = 1) {
    return wait_until([&] {
      size_t seen = 0;
      for (const auto& m : messages()) seen += m.find(fragment) != std::string::npos;
      return seen >= occurrences;
    }, 10s);
  }

 private:
  int fd_;
  std::string path_;
  std::vector<std::string> messages_;
};

TEST_F(Deploy, SystemdNotificationsArriveInOrder) {
  std::string binary = dir_.path() + "/shoal";
  deploy_binary(SHOAL_BINARY, binary);
  NotifySocket notify(dir_.path() + "/notify.sock");
  std::string config = write_config("workers = 1\npid_file = \"shoal.pid\"");
  shoal_ = std::make_unique<ShoalProcess>(config, dir_.path() + "/shoal.log", binary,
                                          StartOptions{{"NOTIFY_SOCKET=" + dir_.path() + "/notify.sock",
                                                        "WATCHDOG_USEC=200000"},
                                                       -1});
  ASSERT_TRUE(notify.wait_for("READY=1"));
  // WatchdogSec=0.2s: the master's loop pings every 100 ms.
  auto watching = Clock::now();
  ASSERT_TRUE(notify.wait_for("WATCHDOG=1", 3));
  EXPECT_GE(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - watching).count(), 150);
  shoal_->signal(SIGHUP);
  ASSERT_TRUE(notify.wait_for("READY=1", 2));
  deploy_binary(SHOAL_BINARY, binary);
  shoal_->signal(SIGUSR2);
  ASSERT_TRUE(notify.wait_for("MAINPID="));
  ASSERT_TRUE(shoal_->wait_exit(10s));
  pid_t new_master = read_pid_file(dir_.path() + "/shoal.pid");
  kill(new_master, SIGTERM);
  ASSERT_TRUE(notify.wait_for("STOPPING=1"));
  // The order systemd needs: ready, reloading (with its timestamp), ready again, the new main
  // pid, then stopping.
  std::vector<std::string> kinds;
  for (const auto& m : notify.messages()) {
    if (m.find("RELOADING=1") != std::string::npos) {
      EXPECT_THAT(m, ::testing::ContainsRegex("MONOTONIC_USEC=[0-9]+"));
      kinds.push_back("RELOADING");
    } else if (m.find("MAINPID=" + std::to_string(new_master)) != std::string::npos) {
      kinds.push_back("MAINPID");
    } else if (m.find("READY=1") != std::string::npos) {
      kinds.push_back("READY");
    } else if (m.find("STOPPING=1") != std::string::npos) {
      kinds.push_back("STOPPING");
    }
  }
  kinds.erase(std::unique(kinds.begin(), kinds.end()), kinds.end());
  EXPECT_EQ(kinds, (std::vector<std::string>{"READY", "RELOADING", "READY", "MAINPID", "STOPPING"}));
  EXPECT_TRUE(wait_until([&] { return !process_exists(new_master); }, 10s));
}

TEST_F(Deploy, SocketActivationServesOnThePassedSocketWithoutBinding) {
  OccupiedPort passed;  // bound and listening here: shoal could not bind it itself
  std::string config = write_config("workers = 2", "", "\"" + passed.address() + "\"");
  shoal_ = std::make_unique<ShoalProcess>(config, dir_.path() + "/shoal.log", SHOAL_BINARY,
                                          StartOptions{{}, passed.fd()});
  ASSERT_TRUE(shoal_->wait_ready());
  EXPECT_THAT(shoal_->log(), HasSubstr("listening on http://" + passed.address() + " (fd 3, inherited)"));
  int port = std::stoi(passed.address().substr(passed.address().rfind(':') + 1));
  for (int i = 0; i < 10; ++i) EXPECT_EQ(get(port, "/hello").status, 200);
  expect_clean_log();
}

// -t checks what a start checks, short of binding: who the workers run as, where the control
// socket, pid file and log go, and that an [app] command exists. And the start agrees with it.
TEST_F(Deploy, TestModeRefusesWhatAStartWouldRefuse) {
  // A directory of its own that anybody may read, for an unprivileged run of -t.
  std::string pub = dir_.path() + "/pub";
  std::filesystem::create_directories(pub);
  std::filesystem::permissions(dir_.path(), std::filesystem::perms::owner_all | std::filesystem::perms::others_exec |
                                                std::filesystem::perms::group_exec);
  std::filesystem::permissions(pub, std::filesystem::perms::all & ~std::filesystem::perms::others_write &
                                        ~std::filesystem::perms::group_write);
  auto write = [&](const std::string& text) {
    std::string path = pub + "/t.toml";
    std::ofstream(path) << text;
    std::filesystem::permissions(path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
                                           std::filesystem::perms::others_read | std::filesystem::perms::group_read);
    return path;
  };
  // As a user who cannot write to / (nobody, when the tests run as root).
  auto as_unprivileged = [&](std::vector<std::string> argv) {
    if (geteuid() == 0) argv.insert(argv.begin(), {"/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"});
    return argv;
  };
  std::string out;
  std::string unwritable = write("[server]\nlisten = [\"127.0.0.1:0\"]\ncontrol_socket = \"/shoal-t.ctl\"\npid_file = "
                                 "\"/shoal-t.pid\"\n[log]\nfile = \"/shoal-t.log\"\n");
  EXPECT_EQ(run_command(as_unprivileged({SHOAL_BINARY, "-t", "-c", unwritable}), out, 10s), 1) << out;
  EXPECT_THAT(out, HasSubstr("[server] control_socket: cannot create /shoal-t.ctl: its directory is not writable"));
  EXPECT_THAT(out, HasSubstr("[server] pid_file: cannot create /shoal-t.pid"));
  EXPECT_THAT(out, HasSubstr("[log] file: cannot create /shoal-t.log"));
  EXPECT_THAT(out, HasSubstr("3 error(s); test failed"));
  // The start refuses the same, with the same words, and binds nothing.
  EXPECT_EQ(run_command(as_unprivileged({SHOAL_BINARY, "-c", unwritable}), out, 10s), 1) << out;
  EXPECT_THAT(out, HasSubstr("[server] control_socket: cannot create /shoal-t.ctl"));
  EXPECT_THAT(out, HasSubstr("3 error(s); not started"));

  std::string app = write("[server]\n" + run_as_line() + "listen = [\"127.0.0.1:0\"]\ncontrol_socket = \"\"\n[app]\n"
                          "command = [\"no-such-program-anywhere\"]\n");
  EXPECT_EQ(run_command({SHOAL_BINARY, "-t", "-c", app}, out, 10s), 1) << out;
  EXPECT_THAT(out, HasSubstr("[app] command: 'no-such-program-anywhere' is not an executable file in PATH"));

  if (geteuid() == 0) {
    std::string root = write("[server]\nlisten = [\"127.0.0.1:0\"]\ncontrol_socket = \"\"\n");
    EXPECT_EQ(run_command({SHOAL_BINARY, "-t", "-c", root}, out, 10s), 1) << out;
    EXPECT_THAT(out, HasSubstr("[server] user is not set, and shoal runs as root"));
  }
  std::string good = write("[server]\n" + run_as_line() + "listen = [\"127.0.0.1:0\"]\ncontrol_socket = \"\"\n");
  EXPECT_EQ(run_command({SHOAL_BINARY, "-t", "-c", good}, out, 10s), 0) << out;
}

TEST_F(Deploy, CliReportsEachOutcomeWithItsOwnExitCode) {
  start("workers = 2", std::string(kInfoRoute) + "[reload]\nready_timeout = \"1s\"\n", "\"127.0.0.1:0\"",
        EXAMPLE_APP_BINARY);
  std::string config = dir_.path() + "/shoal.toml";
  std::string good = read_file(config);

  auto ok = cli({"reload", "-c", config});
  EXPECT_EQ(ok.code, 0) << ok.output;
  EXPECT_THAT(ok.output, ::testing::ContainsRegex(
                             "^reload ok: generation 2 ready \\(2 workers, [0-9]+ ms\\); generation 1 drained in [0-9.]+ s\n$"));

  dir_.write("shoal.toml", good + "[http]\nwrokers = 2\n");
  auto invalid = cli({"reload", "-c", config});
  EXPECT_EQ(invalid.code, 1) << invalid.output;
  EXPECT_THAT(invalid.output, ::testing::ContainsRegex("^reload failed: " + config +
                                                       ":[0-9]+:1: unknown key 'wrokers' in \\[http\\].*; generation 2 "
                                                       "still serving\n$"));

  OccupiedPort occupied;
  dir_.write("shoal.toml", good);
  write_config("workers = 2", std::string(kInfoRoute) + "[reload]\nready_timeout = \"1s\"\n",
               "\"127.0.0.1:0\", \"" + occupied.address() + "\"");
  auto cannot_start = cli({"reload", "-c", config});
  EXPECT_EQ(cannot_start.code, 2) << cannot_start.output;
  EXPECT_THAT(cannot_start.output, HasSubstr("bind(" + occupied.address() + ") failed: Address already in use"));

  dir_.write("shoal.toml", good);
  dir_.write("slow-start", "");  // the new workers take 3 s to start; ready_timeout is 1 s
  auto not_ready = cli({"reload", "-c", config});
  EXPECT_EQ(not_ready.code, 3) << not_ready.output;
  EXPECT_THAT(not_ready.output, HasSubstr("was not ready within ready_timeout 1s"));

  // A second reload while the first is still starting is refused and says which and since when.
  auto first = std::async(std::launch::async, [&] { return cli({"reload", "-c", config}); });
  // Failed reloads that started no worker used no generation number: this is generation 4.
  ASSERT_TRUE(shoal_->wait_for_log("starting generation 4", 5s));
  auto busy = cli({"reload", "-c", config});
  EXPECT_EQ(busy.code, 4) << busy.output;
  EXPECT_THAT(busy.output, ::testing::ContainsRegex("reload refused: a reload to generation 4 is in progress \\(since "
                                                    "[0-9.]+ s\\); nothing changed"));
  EXPECT_EQ(first.get().code, 3);
  std::filesystem::remove(dir_.path() + "/slow-start");

  auto status = cli({"status", "-c", config});
  EXPECT_EQ(status.code, 0) << status.output;
  EXPECT_THAT(status.output, ::testing::ContainsRegex("^master " + std::to_string(shoal_->pid()) + ", shoal "));
  EXPECT_THAT(status.output, HasSubstr("generation 2: serving, 2 worker(s)"));
  EXPECT_THAT(status.output, HasSubstr("last reload: "));

  ASSERT_EQ(get(port_, "/hello").status, 200);
  // The failed generations' workers are stopped (or killed a second later); then one remains.
  ASSERT_TRUE(wait_until([&] { return children_of(shoal_->pid()).size() == 2; }, 5s));
  auto json = cli({"status", "--json", "-c", config});
  ASSERT_EQ(json.code, 0);
  auto parsed = nlohmann::json::parse(json.output);
  EXPECT_EQ(parsed["master"]["pid"].get<int>(), shoal_->pid());
  EXPECT_EQ(parsed["master"]["state"], "running");
  ASSERT_EQ(parsed["generations"].size(), 1u);
  EXPECT_EQ(parsed["generations"][0]["number"], 2);
  auto workers = parsed["generations"][0]["workers"];
  ASSERT_EQ(workers.size(), 2u);
  uint64_t served = 0;
  for (const auto& w : workers) {
    EXPECT_TRUE(process_exists(w["pid"].get<int>()));
    EXPECT_EQ(cpus_allowed_list(w["pid"].get<int>()), std::to_string(w["cpu"].get<int>()));
    served += w["requests_served"].get<uint64_t>();
  }
  EXPECT_GE(served, 1u);
  EXPECT_EQ(parsed["last_reload"]["code"], 3);

  auto stop = cli({"stop", "-c", config});
  EXPECT_EQ(stop.code, 0) << stop.output;
  EXPECT_THAT(stop.output, HasSubstr("stop: shutdown clean in"));
  ASSERT_TRUE(shoal_->wait_exit(5s));
  auto none = cli({"status", "-c", config});
  EXPECT_EQ(none.code, 5);
  EXPECT_THAT(none.output, HasSubstr("no running master found: nothing accepts on " + dir_.path() + "/shoal.ctl"));
}

// A master that takes the command but never answers (stopped by a debugger, or wedged), and one
// whose backlog is full: the CLI gives up at its timeout with exit code 7 and says so.
TEST_F(Deploy, CliGivesUpAtItsTimeoutWhenNoAnswerComes) {
  std::string config = write_config("workers = 1");
  std::string path = dir_.path() + "/shoal.ctl";
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  strncpy(sun.sun_path, path.c_str(), sizeof sun.sun_path - 1);
  ASSERT_EQ(bind(listener, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
  ASSERT_EQ(listen(listener, 0), 0);  // room for one connection in the queue, never accepted

  for (const char* command : {"status", "reload"}) {
    auto began = Clock::now();
    auto silent = cli({command, "--timeout", "300ms", "-c", config}, 10s);
    auto took = Clock::now() - began;
    EXPECT_EQ(silent.code, 7) << silent.output;
    EXPECT_THAT(silent.output, HasSubstr(std::string(command) + ": no answer from the master within 300ms"));
    EXPECT_GE(took, 300ms);
    EXPECT_LT(took, 5s);
  }
  // The queue is full now (the two connections above are still in it, their clients gone or not):
  // fill it for certain, then the CLI's connect itself waits, and is bounded too.
  int filler = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  connect(filler, reinterpret_cast<sockaddr*>(&sun), sizeof sun);
  auto began = Clock::now();
  auto full = cli({"stop", "--timeout", "300ms", "-c", config}, 10s);
  EXPECT_EQ(full.code, 7) << full.output;
  EXPECT_THAT(full.output, HasSubstr("stop: no answer from the master within 300ms"));
  EXPECT_LT(Clock::now() - began, 5s);
  close(filler);
  close(listener);

  auto bad = cli({"status", "--timeout", "soon", "-c", config});
  EXPECT_EQ(bad.code, 64);
  EXPECT_EQ(bad.output, "shoal: --timeout needs a duration such as 30s or 2m, not 'soon' (shoal -h for help)\n");
}

// Bad usage has its own exit code and one line, not the whole help (which -h prints).
TEST(CommandLine, BadUsageIsOneLineAndExitCode64) {
  std::string output;
  EXPECT_EQ(run_command({SHOAL_BINARY, "--frobnicate"}, output, 10s), 64);
  EXPECT_EQ(output, "shoal: unknown argument '--frobnicate' (shoal -h for help)\n");
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c"}, output, 10s), 64);
  EXPECT_EQ(output, "shoal: -c needs a file name (shoal -h for help)\n");
  EXPECT_EQ(run_command({SHOAL_BINARY, "-h"}, output, 10s), 0);
  EXPECT_THAT(output, HasSubstr("64 bad usage"));
}

// A user who may not open the control socket is told so (exit 8), not that no master runs (5).
TEST_F(Deploy, ACommandWithoutPermissionSaysSoAndIsNotNoMaster) {
  start("workers = 1");
  std::string config = dir_.path() + "/shoal.toml";
  std::string socket_path = dir_.path() + "/shoal.ctl";
  std::vector<std::string> argv;
  if (geteuid() == 0) {
    // Root may open anything: ask as nobody, who may read the config but not open the socket.
    chmod(dir_.path().c_str(), 0755);
    chmod(config.c_str(), 0644);
    argv = {"/usr/bin/setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", SHOAL_BINARY};
  } else {
    chmod(socket_path.c_str(), 0);  // the same refusal for a user who is not root
    argv = {SHOAL_BINARY};
  }
  for (const char* arg : {"status", "-c", config.c_str()}) argv.push_back(arg);
  std::string output;
  EXPECT_EQ(run_command(argv, output, 10s), 8) << output;
  EXPECT_THAT(output, ::testing::ContainsRegex("status: permission denied on " + socket_path +
                                               " \\(owned by [a-z0-9_-]+, mode 0600\\): run this as"));
  EXPECT_EQ(cli({"status", "-c", config}).code, geteuid() == 0 ? 0 : 8);
}

TEST_F(Deploy, ControlSocketIsOwnerOnly) {
  start("workers = 1");
  struct stat st;
  ASSERT_EQ(stat((dir_.path() + "/shoal.ctl").c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

}  // namespace
}  // namespace shoal::test
