// [app] workers against the real binary, with real programs: the Node example (Debian's nodejs,
// clients/node/shoal.js) and the Python one (Debian's uvicorn, --fd 3), plus small inline
// programs for the failure modes. Real signals, real sockets, loopback only; every wait has a
// deadline, and every process is killed when the test ends (its own process group; the apps die
// with the master through their parent-death signal, which one test checks).
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <set>
#include <thread>

#include "common/sys.hpp"
#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;
using Clock = std::chrono::steady_clock;

const std::string kSource = SHOAL_SOURCE_DIR;

struct AppKind {
  const char* name;
  std::string app;  // the [app] table's keys
  const char* binary;
  const char* install;
};

void PrintTo(const AppKind& kind, std::ostream* os) { *os << kind.name; }

AppKind node_app() {
  return {"node", "command = [\"node\", \"" + kSource + "/examples/node/server.js\"]\nready = \"fd\"\n", "/usr/bin/node",
          "nodejs"};
}
AppKind python_app() {
  return {"python",
          "command = [\"/usr/bin/python3\", \"" + kSource + "/clients/python/shoal_uvicorn.py\", \"app:app\"]\ncwd = \"" +
              kSource + "/examples/python\"\n",
          "/usr/lib/python3/dist-packages/uvicorn/__init__.py", "python3-uvicorn"};
}

// A Python script of the test's own, run by Debian's python3; `extra` adds [app] keys.
AppKind python_script(const char* name, const std::string& file, const std::string& extra = "") {
  return {name, "command = [\"/usr/bin/python3\", \"" + file + "\"]\n" + extra, "/usr/bin/python3", "python3"};
}

class AppTest : public ServerTest {
 protected:
  // Writes the config and starts shoal without waiting for it (the test decides what to wait for).
  void launch(const AppKind& kind, const std::string& server, const std::string& sections, const std::string& log_name) {
    write_app_config(kind, server, sections, "");
    shoal_ = std::make_unique<ShoalProcess>(config_, dir_.path() + "/" + log_name);
  }
  // Starts shoal with [app] `app` (plus `extra` app keys) and `sections`; waits for ready.
  void start_app(const AppKind& kind, const std::string& server = "workers = 2", const std::string& sections = "",
                 const std::string& extra = "") {
    ASSERT_EQ(access(kind.binary, R_OK), 0) << kind.binary << " is missing: ./build.sh test installs " << kind.install;
    write_app_config(kind, server, sections, extra);
    shoal_ = std::make_unique<ShoalProcess>(config_, dir_.path() + "/shoal-" + std::to_string(++starts_) + ".log");
    ASSERT_TRUE(shoal_->wait_ready(20s)) << "not ready";
    port_ = shoal_->wait_for_port(1s);
    ASSERT_GT(port_, 0);
  }
  void write_app_config(const AppKind& kind, const std::string& server, const std::string& sections,
                        const std::string& extra) {
    std::string user = server.find("user =") == std::string::npos ? run_as_line() : "";
    std::string cpus = server.find("cpu_affinity") == std::string::npos ? "cpu_affinity = \"none\"\n" : "";
    config_ = dir_.write("shoal.toml", "[server]\n" + user + "listen = [\"127.0.0.1:0\"]\n" + cpus + server +
                                           "\n[app]\n" + kind.app + extra + "\n" + sections);
  }
  // `shoal CMD -c config`: its exit code, its output in *out.
  int cli(const std::string& command, std::string* out = nullptr) {
    std::string output;
    int code = run_command({SHOAL_BINARY, command, "-c", config_}, output, 60s);
    if (out) *out = output;
    return code;
  }
  // The pids the master spawned for generation `g`.
  std::set<pid_t> pids_of(uint64_t g) const {
    std::set<pid_t> out;
    std::regex re("spawned worker \\d+ pid=(\\d+) cpu=\\S+ generation=" + std::to_string(g) + "\\b");
    std::string log = shoal_->log();
    for (auto it = std::sregex_iterator(log.begin(), log.end(), re); it != std::sregex_iterator(); ++it)
      out.insert(std::stoi((*it)[1]));
    return out;
  }
  // Load until `stop` (or `until`): keep_alive clients on one connection each, per_request ones
  // on a new connection per request; each thread adds its counts to `tally` as it ends.
  std::vector<std::thread> load(int keep_alive, int per_request, Clock::time_point until, std::atomic<bool>& stop,
                                LoadTally& tally) {
    std::vector<std::thread> clients;
    for (int i = 0; i < keep_alive + per_request; ++i)
      clients.emplace_back([&, until, keep = i < keep_alive] {
        LoadTally mine;
        while (!stop && Clock::now() < until) client_loop(port_, keep, std::min(until, Clock::now() + 200ms), mine);
        tally.ok += mine.ok, tally.non_200 += mine.non_200, tally.refused += mine.refused;
        tally.reset_or_lost += mine.reset_or_lost, tally.retries += mine.retries;
      });
    return clients;
  }
  // "pid=N generation=G path=P": the app's own answer.
  static std::pair<pid_t, uint64_t> who(const HttpResponse& r) {
    std::smatch m;
    static const std::regex re(R"(pid=(\d+) generation=(\d+))");
    if (!std::regex_search(r.body, m, re)) return {-1, 0};
    return {std::stoi(m[1]), std::stoull(m[2])};
  }
  std::string config_;
};

class AppKinds : public AppTest, public ::testing::WithParamInterface<AppKind> {};

// Under load (4 keep-alive and 2 connection-per-request clients), three SIGHUP reloads: every
// request answered 200, and each new generation said ready before the old one got its drain signal.
TEST_P(AppKinds, ReloadUnderLoadFailsNoRequestAndTheNewGenerationIsReadyFirst) {
  start_app(GetParam(), "workers = 2", "[shutdown]\ndrain_delay = \"300ms\"\n");
  LoadTally tally;
  std::atomic<bool> stop{false};
  auto until = Clock::now() + 60s;  // bound; `stop` ends it sooner
  std::vector<std::thread> clients = load(4, 2, until, stop, tally);
  // A load balancer's health check, on a fresh connection each time: a hand-over to a new
  // generation never makes the instance look unready (shoal tells the old one drain_delay_ms=0).
  std::atomic<long> checks{0}, unready{0};
  clients.emplace_back([&] {
    while (!stop && Clock::now() < until) {
      int status = get(port_, "/readyz").status;
      ++checks;
      if (status != 200) ++unready;
    }
  });
  for (uint64_t g = 2; g <= 4; ++g) {
    shoal_->signal(SIGHUP);
    ASSERT_TRUE(shoal_->wait_for_log("generation " + std::to_string(g - 1) + " drained", 30s)) << g;
    auto [pid, generation] = who(get(port_, "/after"));
    EXPECT_EQ(generation, g);
    EXPECT_TRUE(pids_of(g).count(pid)) << "pid " << pid << " is not of generation " << g;
  }
  stop = true;
  for (auto& t : clients) t.join();
  std::cerr << GetParam().name << " under 3 reloads: " << checks << " readiness checks, " << unready << " not 200\n";
  expect_every_request_answered(tally, std::string(GetParam().name) + " under 3 reloads", 200);
  EXPECT_GT(checks, 20);
  EXPECT_EQ(unready, 0) << "of " << checks << " readiness checks";
  // In the log: generation g's "reload succeeded" comes before any drain signal to generation g-1.
  std::string log = shoal_->log();
  for (uint64_t g = 2; g <= 4; ++g) {
    size_t ready = log.find("reload succeeded: generation " + std::to_string(g) + " ready");
    ASSERT_NE(ready, std::string::npos);
    for (pid_t old : pids_of(g - 1)) {
      size_t drain = log.find("pid=" + std::to_string(old) + ": sent SIGTERM (drain)");
      ASSERT_NE(drain, std::string::npos) << old;
      EXPECT_LT(ready, drain) << "generation " << g - 1 << "'s pid " << old << " was told to drain before " << g << " was ready";
    }
  }
  expect_clean_log();
}

// An upgrade in place under load: the master re-executes itself and adopts the running app
// processes with their notify sockets, control sockets and output pipes; its own generation is
// ready before they get their drain signal; nothing fails, and the master's pid stays.
TEST_P(AppKinds, AnUpgradeInPlaceUnderLoadAdoptsTheAppsAndFailsNoRequest) {
  start_app(GetParam(), "workers = 2\nupgrade = \"in-place\"", "[shutdown]\ndrain_delay = \"300ms\"\n");
  const pid_t master = shoal_->pid();
  LoadTally tally;
  std::atomic<bool> stop{false};
  auto until = Clock::now() + 60s;  // bound; `stop` ends it sooner
  std::vector<std::thread> clients = load(3, 1, until, stop, tally);
  for (uint64_t g = 2; g <= 3; ++g) {
    std::string out;
    ASSERT_EQ(cli("upgrade", &out), 0) << out;
    EXPECT_THAT(out, HasSubstr("upgrade ok: master " + std::to_string(master) + " in place"));
    ASSERT_TRUE(shoal_->wait_for_log("generation " + std::to_string(g - 1) + " drained", 30s)) << g;
    auto [pid, generation] = who(get(port_, "/after"));
    EXPECT_EQ(generation, g);
  }
  stop = true;
  for (auto& t : clients) t.join();
  expect_every_request_answered(tally, std::string(GetParam().name) + " under 2 upgrades in place", 100);
  EXPECT_TRUE(process_exists(master));
  // Each old app process was signalled and reaped by the new image, and what it wrote while it
  // drained still reached the log through its adopted pipe.
  std::string log = shoal_->log();
  size_t took_over = log.find("upgrade in place: took over");
  ASSERT_NE(took_over, std::string::npos);
  for (pid_t old : pids_of(1)) {
    size_t drain = log.find("pid=" + std::to_string(old) + ": sent SIGTERM (drain)");
    EXPECT_GT(drain, took_over) << old;
    EXPECT_NE(log.find("[worker", took_over), std::string::npos);
    EXPECT_NE(log.find("pid=" + std::to_string(old) + " gen=1] ", took_over), std::string::npos)
        << "no output of pid " << old << " after the exec";
    EXPECT_NE(log.find("pid=" + std::to_string(old) + " of generation 1 exited with code 0", took_over), std::string::npos);
  }
  expect_clean_log();
}

// SIGTERM under load, with slow requests in flight: readiness turns 503 at once, every request
// sent during the drain delay (as a load balancer that polls readiness would, before it stops
// sending) is answered 200, every in-flight request completes, and shoal exits 0 once every app
// process exited 0.
TEST_P(AppKinds, SigtermUnderLoadAnswersEveryAcceptedRequestAndExitsZero) {
  start_app(GetParam(), "workers = 2", "[shutdown]\ndrain_delay = \"800ms\"\ntimeout = \"20s\"\n");
  const std::string slow = std::string(GetParam().name) == "node" ? "/slow?ms=1200" : "/slow?s=1.2";
  std::vector<std::unique_ptr<Client>> in_flight;
  for (int i = 0; i < 4; ++i) {
    in_flight.push_back(std::make_unique<Client>(port_));
    ASSERT_TRUE(in_flight.back()->send(request("GET", slow)));
  }
  EXPECT_EQ(get(port_, "/readyz").status, 200);
  LoadTally tally;
  std::atomic<Clock::time_point> until{Clock::now() + 30s};  // moved to the middle of the drain delay below
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&, keep_alive = i < 2] {
      while (Clock::now() < until.load()) client_loop(port_, keep_alive, std::min(until.load(), Clock::now() + 50ms), tally);
    });
  ASSERT_TRUE(wait_until([&] { return tally.ok > 50; }, 10s));
  shoal_->signal(SIGTERM);
  until = Clock::now() + 400ms;
  EXPECT_TRUE(wait_until([&] { return get(port_, "/readyz").status == 503; }, 1s)) << "readiness did not turn 503";
  for (auto& t : clients) t.join();
  for (auto& c : in_flight) {
    auto r = c->read(1, 10s);
    ASSERT_EQ(r.size(), 1u) << "an in-flight request was not answered";
    EXPECT_EQ(r[0].status, 200);
    EXPECT_THAT(r[0].body, HasSubstr("path=/slow"));
  }
  auto status = shoal_->wait_exit(25s);
  ASSERT_TRUE(status);
  EXPECT_TRUE(status->exited);
  EXPECT_EQ(status->code, 0);
  std::cerr << GetParam().name << " SIGTERM under load: " << tally.ok << " ok, " << tally.non_200 << " non-200, "
            << tally.reset_or_lost << " reset or lost, " << tally.refused << " refused (after the listeners closed)\n";
  EXPECT_EQ(tally.non_200, 0);
  EXPECT_EQ(tally.reset_or_lost, 0);
  EXPECT_TRUE(shoal_->wait_for_log("shutdown clean in", 1s));
  expect_clean_log();
}

// The master is SIGKILLed: its apps get their drain signal from the kernel, drain (their output
// pipes and notify socket are gone by then) and exit.
TEST_P(AppKinds, WhenTheMasterIsKilledTheAppsDrainAndExit) {
  start_app(GetParam(), "workers = 2", "[shutdown]\ndrain_delay = \"200ms\"\n");
  std::set<pid_t> apps = pids_of(1);
  ASSERT_EQ(apps.size(), 2u);
  shoal_->signal(SIGKILL);
  ASSERT_TRUE(shoal_->wait_exit(5s));
  for (pid_t pid : apps) {
    EXPECT_TRUE(wait_until([&] { return !process_exists(pid); }, 10s)) << "app pid " << pid << " kept running";
    kill(pid, SIGKILL);  // whatever the outcome, nothing outlives the test
  }
}

INSTANTIATE_TEST_SUITE_P(RealApps, AppKinds, ::testing::Values(node_app(), python_app()),
                         [](const auto& info) { return std::string(info.param.name); });

TEST_F(AppTest, ANewGenerationThatNeverSaysReadyIsStoppedAndTheOldOneServesOn) {
  start_app(python_app(), "workers = 1", "[reload]\nready_timeout = \"3s\"\n");
  auto [old_pid, g1] = who(get(port_, "/"));
  ASSERT_EQ(g1, 1u);
  write_app_config(python_app(), "workers = 1", "[reload]\nready_timeout = \"3s\"\n", "env = { APP_NEVER_READY = \"1\" }\n");
  std::string out;
  EXPECT_EQ(cli("reload", &out), 3) << out;
  EXPECT_THAT(out, HasSubstr("was not ready within ready_timeout 3s"));
  auto [pid, generation] = who(get(port_, "/"));
  EXPECT_EQ(pid, old_pid);
  EXPECT_EQ(generation, 1u);
  for (pid_t stuck : pids_of(2)) EXPECT_TRUE(wait_until([&] { return !process_exists(stuck); }, 5s)) << stuck;
}

TEST_F(AppTest, AnAppThatCrashesAtStartIsRetriedWithBackoffAndAMissingProgramIsNamed) {
  dir_.write("crash.sh", "echo 'starting, about to fail' >&2\nexit 3\n");
  AppKind crash{"crash", "command = [\"/bin/sh\", \"crash.sh\"]\n", "/bin/sh", "dash"};
  launch(crash, "workers = 1", "", "crash.log");
  ASSERT_TRUE(shoal_->wait_for_log("failed at start-up 4 time\\(s\\) in a row; next start in 800ms", 10s));
  // 100 + 200 + 400 ms apart: 4 starts in about 0.7 s, not a fork loop.
  EXPECT_LE(occurrences(shoal_->log(), "spawned worker 0"), 5u);
  EXPECT_TRUE(shoal_->wait_for_log("\\[worker 0 pid=\\d+ gen=1\\] starting, about to fail", 1s));
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_exit(10s));

  // A program that is not there is refused before anything starts, as -t refuses it.
  AppKind missing{"missing", "command = [\"no-such-program-anywhere\"]\n", "/bin/sh", "dash"};
  write_app_config(missing, "workers = 1", "", "");
  std::string out;
  EXPECT_EQ(run_command({SHOAL_BINARY, "-c", config_}, out, 10s), 1) << out;
  EXPECT_THAT(out, HasSubstr("[app] command: 'no-such-program-anywhere' is not an executable file in PATH"));
  // One that is there but cannot run (its interpreter is missing) fails at exec, which is logged.
  dir_.write("broken.sh", "#!/nonexistent/interpreter\n");
  std::filesystem::permissions(dir_.path() + "/broken.sh", std::filesystem::perms::owner_all);
  AppKind broken{"broken", "command = [\"./broken.sh\"]\n", "/bin/sh", "dash"};
  launch(broken, "workers = 1", "", "broken.log");
  EXPECT_TRUE(shoal_->wait_for_log("\\[app\\] command: cannot execute './broken.sh': No such file or directory", 10s));
  shoal_->signal(SIGTERM);
  ASSERT_TRUE(shoal_->wait_exit(10s));
}

// A Python app that ignores SIGTERM: killed at [shutdown] timeout, logged, shoal exits 1.
TEST_F(AppTest, AnAppThatIgnoresItsDrainSignalIsKilledAtTheDeadlineAndShoalExitsOne) {
  dir_.write("stubborn.py",
             "import os, signal, socket, time\n"
             "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
             "listener = socket.socket(fileno=3)\n"
             "os.write(int(os.environ['SHOAL_READY_FD']), b'READY=1\\n')\n"
             "while True: time.sleep(1)\n");
  AppKind stubborn = python_script("stubborn", "stubborn.py", "ready = \"fd\"\n");
  start_app(stubborn, "workers = 1", "[shutdown]\ntimeout = \"1500ms\"\n");
  auto started = Clock::now();
  shoal_->signal(SIGTERM);
  auto status = shoal_->wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 1);
  EXPECT_GE(Clock::now() - started, 1400ms);
  EXPECT_TRUE(shoal_->wait_for_log("still running at the 1500ms deadline", 1s));
  EXPECT_TRUE(shoal_->wait_for_log("killed at the deadline", 1s));
}

// The Node helper's cleanup that fails: named in the log, the app exits 1, and so does shoal.
TEST_F(AppTest, AFailedCleanupInTheNodeHelperIsNamedAndMakesShoalExitOne) {
  start_app(node_app(), "workers = 1", "", "env = { APP_FAILING_CLEANUP = \"1\" }\n");
  shoal_->signal(SIGTERM);
  auto status = shoal_->wait_exit(10s);
  ASSERT_TRUE(status);
  EXPECT_EQ(status->code, 1);
  EXPECT_TRUE(shoal_->wait_for_log("shoal.js: cleanup 'broken-cleanup' failed: the database was already gone", 1s));
  EXPECT_TRUE(shoal_->wait_for_log("shoal.js: cleanup 'flush-metrics' ok", 1s));  // all run even when one fails
  EXPECT_TRUE(shoal_->wait_for_log("shutdown NOT clean", 1s));
}

// SIGTTIN starts one more app process, pinned to the next CPU; SIGTTOU drains the last one with
// its drain signal and does not replace it.
TEST_F(AppTest, SigttinAndSigttouChangeTheNumberOfAppProcessesEachPinnedToItsCpu) {
  if (allowed_cpus().size() < 2) GTEST_FAIL() << "this test needs 2 CPUs, as CI has";
  start_app(node_app(), "workers = 1\ncpu_affinity = \"auto\"");
  const int first = allowed_cpus()[0], second = allowed_cpus()[1];
  pid_t zero = *pids_of(1).begin();
  EXPECT_EQ(cpus_allowed_list(zero), std::to_string(first));
  shoal_->signal(SIGTTIN);
  ASSERT_TRUE(shoal_->wait_for_log("worker 1 pid=\\d+ of generation 1 ready", 10s));
  ASSERT_EQ(pids_of(1).size(), 2u);
  pid_t one = *pids_of(1).rbegin();
  EXPECT_EQ(cpus_allowed_list(one), std::to_string(second));
  shoal_->signal(SIGTTOU);
  ASSERT_TRUE(shoal_->wait_for_log("worker 1 pid=" + std::to_string(one) + ": sent SIGTERM \\(drain\\)", 5s));
  EXPECT_TRUE(wait_until([&] { return !process_exists(one); }, 10s));
  EXPECT_TRUE(process_exists(zero));
  EXPECT_EQ(who(get(port_, "/")).first, zero);
  expect_clean_log();
}

// As root, the program runs as [server] user; it is switched before exec, so the program never
// holds root. (Not as root, user is ignored with a warning, as for shoal's own workers.)
TEST_F(AppTest, TheProgramRunsAsTheConfiguredUser) {
  AppKind id{"id", "command = [\"/usr/bin/python3\", \"-c\", \"import os, time; print('ids', os.getuid(), os.geteuid(), "
                   "os.getgid(), flush=True); os.write(int(os.environ['SHOAL_READY_FD']), b'1\\\\n'); time.sleep(60)\"]\n"
                   "cwd = \"/\"\nready = \"fd\"\n", "/usr/bin/python3", "python3"};
  start_app(id, "workers = 1\nuser = \"nobody\"\ngroup = \"nogroup\"");
  if (geteuid() == 0) {
    EXPECT_TRUE(shoal_->wait_for_log("\\] ids 65534 65534 65534", 5s)) << shoal_->log();
  } else {
    EXPECT_TRUE(shoal_->wait_for_log("is ignored: switching user needs root", 1s));
    EXPECT_TRUE(shoal_->wait_for_log("\\] ids " + std::to_string(getuid()) + " ", 5s));
  }
}

// ready = "delay": the master takes the program for ready after ready_delay and says it guessed.
// watchdog: a program that said READY=1 and then sends no WATCHDOG=1 is killed and replaced.
TEST_F(AppTest, ReadyDelayIsALoggedGuessAndTheWatchdogReplacesASilentApp) {
  AppKind mute{"mute", "command = [\"/bin/sh\", \"-c\", \"exec sleep 60\"]\nready = \"delay\"\nready_delay = \"300ms\"\n",
               "/bin/sh", "dash"};
  launch(mute, "workers = 1", "", "mute.log");
  ASSERT_TRUE(shoal_->wait_for_log("worker 0 pid=\\d+ of generation 1 ready in \\d+ ms \\(assumed: ready = \"delay\" "
                                   "takes it for ready after 300ms; it did not say\\)", 5s));
  ASSERT_TRUE(shoal_->wait_ready(1s));
  shoal_.reset();

  dir_.write("quiet.py",
             "import os, socket, sys, time\n"
             "sys.path.insert(0, '" + kSource + "/clients/python')\n"
             "import shoal_notify\n"
             "print('watchdog', os.environ['WATCHDOG_USEC'], flush=True)\n"
             "shoal_notify.ready()\n"
             "time.sleep(60)  # and never WATCHDOG=1\n");
  AppKind quiet = python_script("quiet", "quiet.py", "watchdog = \"1s\"\n");
  start_app(quiet, "workers = 1");
  EXPECT_TRUE(shoal_->wait_for_log("\\] watchdog 1000000", 1s));
  pid_t first = *pids_of(1).begin();
  ASSERT_TRUE(shoal_->wait_for_log("pid=" + std::to_string(first) + " of generation 1 sent no WATCHDOG=1 for \\d+ ms "
                                   "\\(\\[app\\] watchdog 1s\\).*sending SIGKILL", 5s));
  EXPECT_TRUE(wait_until([&] { return pids_of(1).size() == 2; }, 5s)) << "not replaced";
}

// NOTIFY_SOCKET is the child's alone: a READY=1 from any other process is ignored, and logged.
TEST_F(AppTest, OnlyTheAppsOwnProcessCanSayItIsReady) {
  dir_.write("patient.py",
             "import os, sys, time\n"
             "sys.path.insert(0, '" + kSource + "/clients/python')\n"
             "import shoal_notify\n"
             "print('notify', os.environ['NOTIFY_SOCKET'], flush=True)\n"
             "for _ in range(1000):  # until the test says go (10 s at most)\n"
             "    if os.path.exists('go'): break\n"
             "    time.sleep(0.01)\n"
             "shoal_notify.ready()\n"
             "time.sleep(60)\n");
  launch(python_script("patient", "patient.py"), "workers = 1", "", "patient.log");
  auto name = shoal_->wait_for_log("\\] notify @(\\S+)", 10s);
  ASSERT_TRUE(name);
  // An impostor (this test's own process) sends READY=1 to the app's socket.
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  memcpy(addr.sun_path + 1, name->data(), name->size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name->size());
  ASSERT_EQ(sendto(fd, "READY=1", 7, 0, reinterpret_cast<sockaddr*>(&addr), len), 7) << strerror(errno);
  close(fd);
  EXPECT_TRUE(shoal_->wait_for_log("ignored a notification from pid " + std::to_string(getpid()) +
                                   ": only the worker's own process may notify", 5s));
  EXPECT_EQ(shoal_->log().find("ready in"), std::string::npos) << "an impostor's READY=1 counted";
  dir_.write("go", "");
  EXPECT_TRUE(shoal_->wait_ready(10s));
}

// What the program gets: fds 0-3 only (3 being the master's own listening socket), the
// protocol's variables, its output in shoal's log under its identity, its STATUS= in status,
// and its output still logged after a log rotation (SIGUSR1).
TEST_F(AppTest, TheProgramGetsTheSocketAtFdThreeAndNothingElseAndItsOutputIsLogged) {
  dir_.write("probe.py",
             "import os, select, socket, sys, signal\n"
             "sys.path.insert(0, '" + kSource + "/clients/python')\n"
             "import shoal_notify\n"
             "signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))\n"
             "print('env', os.environ['LISTEN_FDS'], os.environ['LISTEN_PID'] == str(os.getpid()),\n"
             "      os.environ['LISTEN_FDNAMES'], os.environ['SHOAL_GENERATION'], os.environ['SHOAL_WORKER_INDEX'],\n"
             "      'fds=' + ','.join(sorted(os.listdir('/proc/self/fd'), key=int)), flush=True)\n"
             "listener = socket.socket(fileno=3)\n"
             "shoal_notify.status('answering probes')\n"
             "shoal_notify.ready()\n"
             "while True:\n"
             "    select.select([listener], [], [])  # the socket is non-blocking, shared with the master\n"
             "    try:\n"
             "        conn, _ = listener.accept()\n"
             "    except BlockingIOError:\n"
             "        continue\n"
             "    conn.recv(4096)\n"
             "    print('answered a request', flush=True)\n"
             "    conn.sendall(b'HTTP/1.1 200 OK\\r\\ncontent-length: 3\\r\\nconnection: close\\r\\n\\r\\nok\\n')\n"
             "    conn.close()\n");
  launch(python_script("probe", "probe.py"), "workers = 1", "[log]\nfile = \"shoal.log\"\n", "stderr.log");
  const std::string log_path = dir_.path() + "/shoal.log";
  ASSERT_TRUE(wait_until([&] { return read_file(log_path).find("generation 1 ready: 1 worker") != std::string::npos; }, 20s));
  std::smatch m;
  std::string log = read_file(log_path);
  ASSERT_TRUE(std::regex_search(log, m, std::regex(R"(\[worker 0 pid=(\d+) gen=1\] env 1 True http 1 0 fds=(\S+))"))) << log;
  // 0-2, the socket at 3, SHOAL_CONTROL_FD at 4, and os.listdir's own fd of /proc/self/fd: no other.
  EXPECT_EQ(m[2].str(), "0,1,2,3,4,5");
  pid_t app = std::stoi(m[1]);
  std::error_code ec;
  auto inode = [&](pid_t pid, int fd) {
    return std::filesystem::read_symlink("/proc/" + std::to_string(pid) + "/fd/" + std::to_string(fd), ec).string();
  };
  EXPECT_THAT(inode(app, 3), HasSubstr("socket:["));
  EXPECT_THAT(inode(app, 4), HasSubstr("socket:["));
  bool same = false;  // fd 3 is one of the master's listening sockets, not a copy bound anew
  for (const auto& entry : std::filesystem::directory_iterator("/proc/" + std::to_string(shoal_->pid()) + "/fd", ec))
    same = same || std::filesystem::read_symlink(entry.path(), ec).string() == inode(app, 3);
  EXPECT_TRUE(same);
  std::smatch port;
  ASSERT_TRUE(std::regex_search(log, port, std::regex(R"(listening on http://127\.0\.0\.1:(\d+))")));
  EXPECT_EQ(get(std::stoi(port[1]), "/").status, 200);
  ASSERT_TRUE(wait_until([&] { return read_file(log_path).find("] answered a request") != std::string::npos; }, 5s));
  std::string status;
  EXPECT_EQ(cli("status", &status), 0);
  EXPECT_THAT(status, HasSubstr("answering probes"));
  EXPECT_THAT(status, HasSubstr("running [app] command"));
  // logrotate: move the file away, SIGUSR1, and the app's next line lands in the new file.
  ASSERT_EQ(rename(log_path.c_str(), (log_path + ".1").c_str()), 0);
  shoal_->signal(SIGUSR1);
  ASSERT_TRUE(wait_until([&] { return read_file(log_path).find("reopened") != std::string::npos; }, 5s));
  EXPECT_EQ(get(std::stoi(port[1]), "/").status, 200);
  EXPECT_TRUE(wait_until([&] { return read_file(log_path).find("] answered a request") != std::string::npos; }, 5s));
  shoal_->signal(SIGTERM);
  auto exit = shoal_->wait_exit(10s);
  ASSERT_TRUE(exit);
  EXPECT_EQ(exit->code, 0);
}

}  // namespace
}  // namespace shoal::test
