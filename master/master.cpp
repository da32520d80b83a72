#include "master/master.hpp"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <random>

#include "common/channel.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/proctitle.hpp"
#include "common/sys.hpp"
#include "common/systemd.hpp"
#include "master/app_worker.hpp"
#include "master/faults.hpp"
#include "worker/worker.hpp"

extern char** environ;

namespace shoal {
namespace {

constexpr const char* kControlFdName = "shoal-control";
static_assert(kWorkerFatal == 2, "master/core/supervisor.cpp's kWorkerFatalExit");

// The program file this process runs, as a path: after a deploy replaced it, that path holds the
// new version, while /proc/self/exe itself would still lead to the old, deleted inode.
std::string executable_path() {
  char buf[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  constexpr std::string_view kDeleted = " (deleted)";
  if (path.ends_with(kDeleted)) path.resize(path.size() - kDeleted.size());
  return path;
}

// Reads a non-negative integer from the environment and removes the variable.
std::optional<long> take_env_number(const char* name) {
  const char* value = getenv(name);
  if (!value) return std::nullopt;
  char* end = nullptr;
  long n = strtol(value, &end, 10);
  unsetenv(name);
  if (end == value || *end != '\0' || n < 0) return std::nullopt;
  return n;
}

// Resident memory of a process from /proc/PID/statm (pages), in bytes; 0 if unreadable.
uint64_t resident_bytes(pid_t pid) {
  static const uint64_t page_bytes = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  std::ifstream statm("/proc/" + std::to_string(pid) + "/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * page_bytes;
}

// "T (stopped)" from /proc/PID/stat, for the log of a silent worker.
std::string process_state(pid_t pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return "";
  auto paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size()) return "";
  switch (line[paren + 2]) {
    case 'R': return "R (running)";
    case 'S': return "S (sleeping)";
    case 'D': return "D (waiting on I/O)";
    case 'T': return "T (stopped)";
    case 't': return "t (traced)";
    case 'Z': return "Z (zombie)";
    default: return std::string(1, line[paren + 2]);
  }
}

// execv's argv for `args`, which must outlive it.
std::vector<char*> argv_of(std::vector<std::string>& args) {
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  return argv;
}

// In a child the master forked (signals blocked, fork_child): the program, with every signal
// unblocked; 127 if it cannot be executed.
[[noreturn]] void exec_child(const std::string& exe, std::vector<std::string> args) {
  std::vector<char*> argv = argv_of(args);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execv(exe.c_str(), argv.data());
  _exit(127);
}

// Whatever a pipe holds now (the writer has exited), at most 64 KiB.
std::string read_available(int fd) {
  std::string out;
  char buf[4096];
  evutil_make_socket_nonblocking(fd);
  while (out.size() < 65536) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

// What `shoal -t` printed, for one log line: its errors, not its "FILE: ok".
std::string check_output(const std::string& printed) {
  std::string out;
  size_t start = 0;
  while (start < printed.size()) {
    size_t end = printed.find('\n', start);
    if (end == std::string::npos) end = printed.size();
    std::string line = printed.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line.ends_with(": ok") || line.ends_with("; test failed")) continue;
    out += (out.empty() ? "" : "; ") + line;
  }
  if (out.size() > 1000) out.resize(1000);
  return out;
}

constexpr int kHandledSignals[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD,
                                   SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU};

spdlog::level::level_enum level_of(core::Level level) {
  switch (level) {
    case core::Level::Debug: return spdlog::level::debug;
    case core::Level::Info: return spdlog::level::info;
    case core::Level::Warn: return spdlog::level::warn;
    case core::Level::Error: return spdlog::level::err;
    case core::Level::Critical: return spdlog::level::critical;
  }
  return spdlog::level::info;
}

template <class... F>
struct Overload : F... {
  using F::operator()...;
};
template <class... F>
Overload(F...) -> Overload<F...>;

}  // namespace

Master::WorkerChannel::~WorkerChannel() {
  if (ev) event_free(ev);
  if (fd >= 0) ::close(fd);
  for (Output& o : output) {
    if (o.ev) event_free(o.ev);
    if (o.fd >= 0) ::close(o.fd);
  }
  if (control_ev) event_free(control_ev);
  if (control_fd >= 0) ::close(control_fd);
  WorkerBoard::destroy(board);
}

Master::Master(std::string config_path, Config config, const Application& app, int log_fd,
               std::vector<std::string> argv, std::optional<Handover> handover)
    : config_path_(std::move(config_path)),
      initial_config_(std::make_shared<const Config>(std::move(config))),
      app_(app),
      log_fd_(log_fd),
      argv_(std::move(argv)),
      handover_(std::move(handover)) {}

Master::~Master() {
  server_hooks_.reset();  // its events, before the base goes
  workers_.clear();  // frees each channel's event before the base goes
  for (auto& [number, files] : generations_)
    if (files.access_log_fd >= 0) ::close(files.access_log_fd);
  control_.reset();
  for (event* ev : signal_events_) event_free(ev);
  for (event* ev : {timer_, watchdog_timer_, successor_ev_})
    if (ev) event_free(ev);
  if (successor_channel_ >= 0) ::close(successor_channel_);
  if (predecessor_fd_ >= 0) ::close(predecessor_fd_);
  if (check_fd_ >= 0) ::close(check_fd_);
  if (check_pid_ > 0) kill(check_pid_, SIGKILL), waitpid(check_pid_, nullptr, 0);  // every child is reaped
  if (handed_over_) listeners_.release_all();
  else listeners_.close_all();
  if (base_) event_base_free(base_);
}

core::Time Master::now() const {
  return std::chrono::duration_cast<core::Time>(std::chrono::steady_clock::now().time_since_epoch());
}

int Master::run() {
  proctitle::set("shoal: master -c " + config_path_);
  // Started by a previous master on upgrade, or by systemd's socket activation: the sockets are
  // passed in; the generation numbers go on from the predecessor's.
  core::Identity identity;
  identity.pid = getpid();
  identity.version = SHOAL_VERSION;
  identity.config_path = config_path_;
  if (auto fd = take_env_number("SHOAL_UPGRADE_FD")) predecessor_fd_ = static_cast<int>(*fd), set_cloexec(predecessor_fd_);
  if (auto next = take_env_number("SHOAL_GENERATION"); next && *next > 0) identity.first_generation = static_cast<uint64_t>(*next);
  identity.has_predecessor = predecessor_fd_ >= 0;
  std::vector<int> inherited;
  int inherited_control = -1;
  for (const auto& socket : systemd::inherited_sockets()) {
    if (socket.name == kControlFdName) inherited_control = socket.fd;
    else inherited.push_back(socket.fd);
  }
  std::string err;
  if (handover_) {
    // The new image of an upgrade in place: the same pid, the same sockets; the pid file already
    // names this process. The new config's addresses are bound when its generation is prepared.
    identity.takeover = handover_->takeover;
    const core::AdoptedGeneration* serving = nullptr;
    for (const auto& g : handover_->takeover.generations)
      if (g.serving) serving = &g;
    log::set_identity({"master", -1, serving ? serving->number : 0});
    listeners_.adopt(handover_->listeners, serving ? *serving->config : *initial_config_);
    inherited_control = handover_->control;
    pid_file_written_ = !initial_config_->server.pid_file.empty();
  } else {
    log::set_identity({"master", -1, identity.first_generation});
    if (predecessor_fd_ < 0 && !check_pid_file()) return 1;
    listeners_.adopt(inherited, *initial_config_);
    if (!listeners_.bind_missing(*initial_config_, err)) {
      spdlog::critical("{}", err);
      return 1;
    }
  }
  open_metrics();
  base_ = event_base_new();
  if (!base_) {
    spdlog::critical("event_base_new failed");
    return 1;
  }
  control_ = std::make_unique<ControlServer>(base_, [this](const std::string& command, ControlReply reply) {
    uint64_t id = next_reply_++;
    replies_.emplace(id, std::move(reply));
    feed(core::CommandReceived{id, command});
  });
  const std::string& control_path = initial_config_->server.control_socket;
  if (inherited_control >= 0 && !control_path.empty()) {
    control_->adopt(inherited_control, control_path);
  } else {
    if (inherited_control >= 0) ::close(inherited_control);
    if (!control_path.empty() && !control_->bind(control_path, err)) {
      spdlog::critical("{}", err);
      return 1;
    }
  }
  // On upgrade, the pid file still names the old master until this one is ready.
  if (predecessor_fd_ < 0 && !handover_ && !write_pid_file()) return 1;

  signal(SIGPIPE, SIG_IGN);
  for (int signo : kHandledSignals) {
    event* ev = evsignal_new(base_, signo, [](evutil_socket_t s, short, void* self) {
      auto* m = static_cast<Master*>(self);
      if (s == SIGCHLD) m->reap();
      else m->feed(core::SignalReceived{static_cast<int>(s)});
    }, this);
    event_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->feed(core::TimerFired{});
  }, this);
  if (auto every = systemd::watchdog_ping_interval()) {
    watchdog_timer_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {
      systemd::notify("WATCHDOG=1");
    }, nullptr);
    timeval tv = to_timeval(*every);
    event_add(watchdog_timer_, &tv);
  }

  core_ = std::make_unique<core::Supervisor>(identity, initial_config_, std::random_device{}());
  if (handover_) adopt_handover();
  feed(core::Boot{});
  // An upgrade in place blocked these across its exec, so that none was lost or took its default
  // action before the handlers above were in place; any that came meanwhile is delivered now.
  sigset_t handled;
  sigemptyset(&handled);
  for (int signo : kHandledSignals) sigaddset(&handled, signo);
  sigprocmask(SIG_UNBLOCK, &handled, nullptr);
  if (handover_) reap();  // adopted workers that exited during the exec
  handover_.reset();
  if (!core_ || core_->phase() != core::Phase::Exited) event_base_dispatch(base_);

  if (handed_over_) {
    listeners_.release_all();  // the successor holds the same sockets and their files
    control_->close(false);
  } else {
    listeners_.close_all();
    control_->close(true);
  }
  remove_pid_file();
  metrics_.exited();  // every worker is reaped: the successor, if any, folds this block in
  return exit_code_;
}

void Master::open_metrics() {
  std::string err;
  bool same_image = handover_ && handover_->metrics >= 0;
  int fd = same_image ? handover_->metrics : -1;
  if (auto inherited = take_env_number("SHOAL_METRICS_FD")) fd = static_cast<int>(*inherited);
  if (fd >= 0 && !metrics_.map(fd, err)) {
    spdlog::error("metrics: the region handed over cannot be used ({}); the counters start again from zero", err);
    same_image = false;
  }
  if (!metrics_.region() && !metrics_.create(err)) {
    spdlog::error("metrics: {}; [metrics] will show no figures", err);
    return;
  }
  if (!metrics_.claim(getpid(), same_image, err)) {
    spdlog::error("metrics: {}; [metrics] will show no figures", err);
    return;
  }
  metrics_ok_ = true;
}

// After every step: what the core counted, its generations and their workers, for the scrapes.
void Master::publish_metrics() {
  if (!metrics_ok_) return;
  timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  int64_t wall_ms = int64_t{wall.tv_sec} * 1000 + wall.tv_nsec / 1'000'000;
  const core::Supervisor::Counts& c = core_->counts();
  auto& life = metrics_life_;
  for (int i = 0; i < metrics::kOutcomes; ++i) life.reloads[i].set(c.reloads[i]), life.upgrades[i].set(c.upgrades[i]);
  for (int i = 0; i < metrics::kRestartReasons; ++i) life.restarts[i].set(c.restarts[i]);
  auto wall_of = [&](std::optional<core::Time> at) {
    return at ? static_cast<uint64_t>(wall_ms - (now() - *at).count()) : uint64_t{0};
  };
  // Set once per change: a later step's "now" would move a past moment.
  if (c.last_load_at && *c.last_load_at != last_load_seen_)
    life.last_load_at_ms.set(wall_of(c.last_load_at)), last_load_seen_ = *c.last_load_at;
  if (c.last_success_at && *c.last_success_at != last_success_seen_)
    life.last_success_at_ms.set(wall_of(c.last_success_at)), last_success_seen_ = *c.last_success_at;
  life.last_load_ok.set(c.last_load_ok ? 1 : 0);
  life.serving_generation.set(core_->serving().value_or(0));
  int row = 0;
  for (const auto& g : core_->generations()) {
    if (row == metrics::kGenerations) break;
    uint64_t starting = 0, ready = 0, draining = 0;
    for (const auto& w : g.workers) {
      std::string_view state = w.state;
      if (state == "ready") ++ready;
      else if (state == "draining") ++draining;
      else if (state != "exited") ++starting;
    }
    auto& out = life.generations[row++];
    out.number.set(g.number), out.starting.set(starting), out.ready.set(ready), out.draining.set(draining);
    out.drain_started_at_ms.set(wall_of(g.drain_started_at));
    out.shutdown_timeout_ms.set(static_cast<uint64_t>(g.shutdown_timeout.count()));
  }
  for (; row < metrics::kGenerations; ++row) life.generations[row].number.set(0);
  metrics_.publish(life);
}

// ---------------------------------------------------------------- the core's way in and out

void Master::feed(core::Event event) {
  inbox_.push_back(std::move(event));
  if (stepping_) return;  // an action's answer: stepped after the current one, in order
  stepping_ = true;
  while (!inbox_.empty()) {
    core::Event next = std::move(inbox_.front());
    inbox_.pop_front();
    for (const core::Action& action : core_->step(next, now())) carry_out(action);
  }
  stepping_ = false;
  publish_metrics();
  if (exec_due_) {
    exec_due_ = false;
    return exec_in_place();  // returns only if the exec failed, having fed ExecFailed
  }
  if (auto deadline = core_->next_deadline()) {
    timeval tv = to_timeval(std::max(Millis(0), *deadline - now()));
    evtimer_add(timer_, &tv);
  } else {
    evtimer_del(timer_);
  }
}

void Master::carry_out(const core::Action& action) {
  std::visit(Overload{
      [&](const core::LoadConfig&) {
        ConfigResult result = load_config_file(config_path_);
        std::vector<std::string> errors;
        for (const ConfigError& error : result.errors) errors.push_back(error.to_string());
        if (result.config)
          for (auto& problem : start_problems(*result.config)) errors.push_back(std::move(problem));
        if (errors.empty()) inbox_.push_back(core::ConfigLoaded{std::make_shared<const Config>(std::move(*result.config))});
        else inbox_.push_back(core::ConfigRejected{std::move(errors)});
      },
      [&](const core::PrepareGeneration& a) { prepare_generation(a); },
      [&](const core::ReleaseGeneration& a) {
        auto it = generations_.find(a.generation);
        if (it == generations_.end()) return;
        if (it->second.access_log_fd >= 0) ::close(it->second.access_log_fd);
        generations_.erase(it);
      },
      [&](const core::CloseUnusedListeners& a) {
        std::vector<const Config*> in_use;
        for (const auto& config : a.in_use) in_use.push_back(config.get());
        listeners_.close_unused(in_use);
      },
      [&](const core::CloseListeners&) { listeners_.close_all(); },
      [&](const core::ReleaseListeners&) { listeners_.release_all(); },
      [&](const core::ForkWorker& a) { fork_worker(a); },
      [&](const core::SendToWorker& a) { send_to_worker(a); },
      [&](const core::Kill& a) { signal_worker(a); },
      [&](const core::SampleRss& a) { inbox_.push_back(core::RssSampled{a.key, resident_bytes(a.pid)}); },
      [&](const core::ProbeWorker& a) { probe_worker(a); },
      [&](const core::StartSuccessor& a) { start_successor(a); },
      [&](const core::CheckProgram&) { check_program(); },
      [&](const core::ExecInPlace&) { exec_due_ = true; },  // once every answer is in: see feed()
      [&](const core::CloseSuccessorChannel&) { close_successor_channel(); },
      [&](const core::TellPredecessor&) { tell_predecessor(); },
      [&](const core::WritePidFile&) { inbox_.push_back(core::PidFileWritten{write_pid_file()}); },
      [&](const core::StartControl&) {
        control_->start();
        log::echo_errors_to_stderr(false);  // started: from now on the log file alone
      },
      [&](const core::PauseControl&) { control_->pause(); },
      [&](const core::Reply& a) {
        auto it = replies_.find(a.reply_id);
        if (it == replies_.end()) return;
        it->second.send(a.json);
        replies_.erase(it);
      },
      [&](const core::Notify& a) { systemd::notify(a.state); },
      [&](const core::Log& a) { spdlog::log(level_of(a.level), "{}", a.text); },
      [&](const core::SetLogIdentity& a) { log::set_identity({"master", -1, a.generation}); },
      [&](const core::SetLogLevel& a) {
        spdlog::level::level_enum level;
        if (log::parse_level(a.level, level)) spdlog::default_logger()->set_level(level);
      },
      [&](const core::ReopenLogs& a) { reopen_logs(a); },
      [&](const core::RunServerHooks& a) { run_server_hooks(a); },
      [&](const core::Exit& a) {
        exit_code_ = a.code;
        handed_over_ = a.handed_over;
        event_base_loopexit(base_, nullptr);
      },
  }, action);
}

// ---------------------------------------------------------------- generations and workers

void Master::prepare_generation(const core::PrepareGeneration& a) {
  std::string err;
  if (!listeners_.bind_missing(*a.config, err)) {
    inbox_.push_back(core::GenerationPrepareFailed{a.generation, err});
    return;
  }
  GenerationFiles files;
  files.config = a.config;
  files.listen_fds = listeners_.fds_for(*a.config);
  if (!a.config->log.access_log.empty()) {
    files.access_log_fd = log::open_append(a.config->log.access_log, err);
    if (files.access_log_fd < 0) {
      inbox_.push_back(core::GenerationPrepareFailed{a.generation, "[log] access_log: " + err});
      return;
    }
  }
  generations_[a.generation] = std::move(files);
  inbox_.push_back(core::GenerationPrepared{a.generation});
}

// fork() with every signal blocked across it: one arriving in the child before it has reset its
// handlers would otherwise run the master's libevent handler and be delivered to the master. The
// child forgets the master's signal events (restoring the default dispositions without touching
// the master's epoll set) and keeps signals blocked until it unblocks them itself; the parent
// gets its mask back at once. errno is that of fork().
pid_t Master::fork_child() {
  sigset_t all, previous;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &previous);
  pid_t pid = fault_injected(FaultPoint::Fork) ? -1 : fork();
  int fork_errno = errno;
  if (pid == 0) {
    for (event* ev : signal_events_) event_del(ev);
    log::echo_errors_to_stderr(false);  // the child keeps no fd 2 of the master's
  } else {
    sigprocmask(SIG_SETMASK, &previous, nullptr);
  }
  errno = fork_errno;
  return pid;
}

void Master::fork_worker(const core::ForkWorker& a) {
  auto found = generations_.find(a.key.generation);
  if (found == generations_.end()) {
    inbox_.push_back(core::WorkerForkFailed{a.key, "generation " + std::to_string(a.key.generation) + " is gone"});
    return;
  }
  const GenerationFiles& files = found->second;
  if (files.config->app) return fork_app_worker(a, files);
  int channel[2];
  std::string err;
  if (fault_injected(FaultPoint::Socketpair)) err = "socketpair(AF_UNIX, SOCK_SEQPACKET) failed: " + errno_text(errno);
  if (!err.empty() || !make_channel(channel, err)) {
    inbox_.push_back(core::WorkerForkFailed{a.key, err});
    return;
  }
  WorkerBoard* board = WorkerBoard::create();
  if (board) board->leave();
  const bool counted = metrics_ok_ && files.config->metrics_listen();
  const int slot = counted ? metrics_.take_slot(a.key.generation, a.key.slot) : -1;
  if (counted && slot < 0) spdlog::warn("metrics: no slot left for worker {}: its requests go uncounted", a.key.slot);
  pid_t pid = fork_child();
  if (pid == 0) {
    // The child keeps only the fds handed over explicitly.
    for (int signo : kHandledSignals) signal(signo, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    for (int signo : {SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU}) signal(signo, SIG_IGN);
    std::vector<int> keep = files.listen_fds;
    keep.push_back(channel[1]);
    keep.push_back(log_fd_);
    if (files.access_log_fd >= 0) keep.push_back(files.access_log_fd);
    close_fds_except(keep);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    log::set_identity({"worker", a.key.slot, a.key.generation});
    proctitle::set("shoal: worker " + std::to_string(a.key.slot) + " (generation " + std::to_string(a.key.generation) + ")");
    spdlog::level::level_enum level;
    if (log::parse_level(files.config->log.level, level)) spdlog::default_logger()->set_level(level);
    WorkerSpec spec;
    spec.config = files.config.get();
    spec.app = &app_;
    spec.index = a.key.slot;
    spec.generation = a.key.generation;
    spec.cpu = a.cpu;
    spec.listen_fds = files.listen_fds;
    spec.channel_fd = channel[1];
    spec.log_fd = log_fd_;
    spec.access_log_fd = files.access_log_fd;
    spec.max_requests = a.max_requests;
    spec.board = board;
    spec.counters = metrics_.counters(slot);
    spec.metrics = counted ? metrics_.region() : nullptr;
    _exit(run_worker(spec));
  }
  int fork_errno = errno;
  ::close(channel[1]);
  if (pid < 0) {
    ::close(channel[0]);
    WorkerBoard::destroy(board);
    metrics_.fold_slot(slot, 0);
    inbox_.push_back(core::WorkerForkFailed{a.key, "fork() failed: " + errno_text(fork_errno)});
    return;
  }
  auto worker = std::make_unique<WorkerChannel>();
  worker->master = this;
  worker->key = a.key;
  worker->pid = pid;
  worker->fd = channel[0];
  worker->board = board;
  worker->metrics_slot = slot;
  metrics_.slot_forked(slot, pid);
  watch_worker(*worker, false);
  by_pid_[pid] = a.key;
  workers_[a.key] = std::move(worker);
  inbox_.push_back(core::WorkerForked{a.key, pid});
}

// An [app] worker: everything it is handed is made here, before fork; the child only execs
// (master/app_worker.cpp). Its readiness and output come back on the fds kept here.
void Master::fork_app_worker(const core::ForkWorker& a, const GenerationFiles& files) {
  const AppConfig& app = *files.config->app;
  auto worker = std::make_unique<WorkerChannel>();
  worker->master = this;
  worker->key = a.key;
  worker->app = true;
  AppExec exec;
  exec.config = files.config.get();
  exec.listen_fds = files.listen_fds;
  exec.cpu = a.cpu;
  exec.generation = a.key.generation;
  exec.slot = a.key.slot;
  exec.master_pid = getpid();
  std::string err;
  int pipes[2][2] = {{-1, -1}, {-1, -1}};
  int control[2] = {-1, -1};
  auto fail = [&](std::string why) {
    for (int* p : {pipes[0], pipes[1], control})
      for (int i : {0, 1})
        if (p[i] >= 0) ::close(p[i]);
    inbox_.push_back(core::WorkerForkFailed{a.key, std::move(why)});
  };
  for (auto& p : pipes)
    if (pipe2(p, O_CLOEXEC) != 0) return fail("pipe() for the app's output failed: " + errno_text(errno));
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, control) != 0)
    return fail("socketpair() for SHOAL_CONTROL_FD failed: " + errno_text(errno));
  if (app.ready == AppConfig::Ready::Notify) {
    std::random_device random;
    std::string unique = std::to_string(getpid()) + "/" + std::to_string(a.key.generation) + "/" +
                         std::to_string(a.key.slot) + "/" + std::to_string(a.key.incarnation) + "/" +
                         std::to_string(random()) + std::to_string(random());
    worker->fd = open_notify_socket(unique, &exec.notify_socket, err);
    if (worker->fd < 0) return fail(err);
  }
  exec.control_fd = control[1];
  exec.stdout_fd = pipes[0][1];
  exec.stderr_fd = pipes[1][1];
  pid_t pid = fork_child();
  if (pid == 0) exec_app(exec);
  int fork_errno = errno;
  for (int fd : {pipes[0][1], pipes[1][1], control[1]}) ::close(fd);
  if (pid < 0) {
    ::close(pipes[0][0]);
    ::close(pipes[1][0]);
    ::close(control[0]);
    inbox_.push_back(core::WorkerForkFailed{a.key, "fork() failed: " + errno_text(fork_errno)});
    return;  // worker's destructor closes the notify socket
  }
  worker->pid = pid;
  worker->control_fd = control[0];
  for (int stream : {0, 1}) worker->output[stream].fd = pipes[stream][0];
  watch_worker(*worker, app.ready == AppConfig::Ready::Fd);  // the ready line comes on the control socket
  by_pid_[pid] = a.key;
  workers_[a.key] = std::move(worker);
  inbox_.push_back(core::WorkerForked{a.key, pid});
}

void Master::watch_worker(WorkerChannel& worker, bool read_ready_line) {
  WorkerChannel* w = &worker;
  if (!worker.app) {
    worker.ev = event_new(base_, worker.fd, EV_READ | EV_PERSIST, [](evutil_socket_t, short, void* p) {
      auto* w = static_cast<WorkerChannel*>(p);
      w->master->on_worker_channel(*w);
    }, w);
    event_add(worker.ev, nullptr);
    return;
  }
  if (worker.fd >= 0) {
    worker.ev = event_new(base_, worker.fd, EV_READ | EV_PERSIST, [](evutil_socket_t, short, void* p) {
      auto* w = static_cast<WorkerChannel*>(p);
      w->master->on_app_notify(*w);
    }, w);
    event_add(worker.ev, nullptr);
  }
  if (read_ready_line && worker.control_fd >= 0) {
    worker.control_ev = event_new(base_, worker.control_fd, EV_READ | EV_PERSIST, [](evutil_socket_t, short, void* p) {
      auto* w = static_cast<WorkerChannel*>(p);
      w->master->on_app_control(*w);
    }, w);
    event_add(worker.control_ev, nullptr);
  }
  for (auto& out : worker.output) {
    if (out.fd < 0) continue;
    evutil_make_socket_nonblocking(out.fd);
    out.ev = event_new(base_, out.fd, EV_READ | EV_PERSIST, [](evutil_socket_t fd, short, void* p) {
      auto* w = static_cast<WorkerChannel*>(p);
      w->master->on_app_output(*w, fd == w->output[0].fd ? 0 : 1, false);
    }, w);
    event_add(out.ev, nullptr);
  }
}

void Master::on_app_notify(WorkerChannel& worker) {
  char buf[4096];
  for (;;) {
    pid_t sender = 0;
    ssize_t n = recv_notification(worker.fd, buf, sizeof buf, &sender);
    if (n < 0) return;
    if (sender != worker.pid) {  // NotifyAccess=main: the worker's own process, nobody else
      spdlog::warn("worker {} pid={}: ignored a notification from pid {}: only the worker's own process may "
                   "notify", worker.key.slot, worker.pid, sender);
      continue;
    }
    Notification note = parse_notification(std::string_view(buf, static_cast<size_t>(n)));
    if (note.status) feed(core::AppStatusReported{worker.key, *note.status});
    if (note.watchdog) feed(core::WorkerMessage{worker.key, MsgType::Heartbeat, 0, 0, {}});
    if (note.ready) feed(core::WorkerMessage{worker.key, MsgType::Ready, 0, 0, {}});
    for (const auto& name : note.ignored)
      spdlog::debug("worker {} pid={}: notification {}= has no meaning under shoal; ignored", worker.key.slot,
                    worker.pid, name);
    if (workers_.find(worker.key) == workers_.end()) return;  // gone while stepping
  }
}

// ready = "fd": one line on the control socket says ready; EOF without one says nothing (the
// deadlines decide). Nothing else is read from it.
void Master::on_app_control(WorkerChannel& worker) {
  char buf[256];
  ssize_t n = ::read(worker.control_fd, buf, sizeof buf);
  if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
  bool line = n > 0 && memchr(buf, '\n', static_cast<size_t>(n)) != nullptr;
  if (n <= 0 || line) {
    event_del(worker.control_ev);
    if (line) feed(core::WorkerMessage{worker.key, MsgType::Ready, 0, 0, {}});
  }
}

// An [app] worker's drain signal comes after the line that says how long to keep serving.
void Master::signal_worker(const core::Kill& a) {
  if (a.app_drain_delay) {
    auto key = by_pid_.find(a.pid);
    auto w = key == by_pid_.end() ? workers_.end() : workers_.find(key->second);
    if (w != workers_.end() && w->second->control_fd >= 0) {
      std::string line = "drain_delay_ms=" + std::to_string(a.app_drain_delay->count()) + "\n";
      (void)!::send(w->second->control_fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    }
  }
  if (a.pid > 0 && ::kill(a.pid, a.signo) != 0 && errno != ESRCH)
    spdlog::error("kill({}, {}) failed: {}", a.pid, core::signal_name(a.signo), errno_text(errno));
}

// stream 0: stdout, 1: stderr. final: the worker was reaped; take what is left and stop.
void Master::on_app_output(WorkerChannel& worker, int stream, bool final) {
  auto& out = worker.output[stream];
  if (out.fd < 0) return;
  log::Identity who{"worker", worker.key.slot, worker.key.generation};
  char buf[16384];
  for (int reads = 0; reads < 64; ++reads) {  // bounded: a chatty app cannot starve the loop
    ssize_t n = ::read(out.fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n > 0) {
      for (const auto& line : split_output(out.partial, std::string_view(buf, static_cast<size_t>(n))))
        log::program_output(who, worker.pid, line);
      if (!final) return;
      continue;
    }
    if (n < 0 && errno == EAGAIN && !final) return;
    break;  // EOF, an error, or (final) nothing more
  }
  if (!out.partial.empty()) log::program_output(who, worker.pid, out.partial);
  out.partial.clear();
  event_free(out.ev);
  out.ev = nullptr;
  ::close(out.fd);
  out.fd = -1;
}

void Master::on_worker_channel(WorkerChannel& worker) {
  Message msg;
  std::string text;
  for (;;) {
    switch (recv_message(worker.fd, msg, &text)) {
      case RecvStatus::Again:
        return;
      case RecvStatus::Closed:
        // The worker is exiting; SIGCHLD brings its status. Stop polling the dead channel.
        event_del(worker.ev);
        feed(core::ChannelClosed{worker.key});
        return;
      case RecvStatus::Ok:
        feed(core::WorkerMessage{worker.key, msg.type, msg.value, msg.value2, std::move(text)});
        break;
    }
  }
}

void Master::send_to_worker(const core::SendToWorker& a) {
  auto it = workers_.find(a.key);
  if (it == workers_.end() || fault_injected(FaultPoint::Send) || !send_message(it->second->fd, {a.type, a.flags, 0, a.value, a.value2}))
    inbox_.push_back(core::SendFailed{a.key, a.type});
}

void Master::probe_worker(const core::ProbeWorker& a) {
  auto it = workers_.find(a.key);
  std::string doing = it != workers_.end() && it->second->board ? it->second->board->describe() : "";
  inbox_.push_back(core::WorkerProbed{a.key, doing, process_state(a.pid)});
}

void Master::run_server_hooks(const core::RunServerHooks& a) {
  std::vector<CleanupHook> hooks;
  for (const HookConfig& hook : a.config->shutdown.server_hooks)
    hooks.push_back(command_hook(hook.name, hook.command, hook.timeout, log_fd_, -1, 0));
  server_hooks_ = std::make_unique<HookRunner>(base_, std::move(hooks), [this](int failures) {
    feed(core::ServerHooksDone{static_cast<size_t>(failures)});
  });
  server_hooks_->start();
}

void Master::reap() {
  if (server_hooks_) return;  // only the hooks' own processes are left, and their runner reaps them
  for (;;) {
    int status = 0;
    rusage usage{};
    pid_t pid = wait4(-1, &status, WNOHANG, &usage);
    if (pid == 0) break;
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: nothing left
    }
    if (auto it = by_pid_.find(pid); it != by_pid_.end()) {
      if (auto w = workers_.find(it->second); w != workers_.end() && w->second->app)
        for (int stream : {0, 1}) on_app_output(*w->second, stream, true);
      else if (w != workers_.end())
        metrics_.fold_slot(w->second->metrics_slot, cpu_microseconds(usage));
      workers_.erase(it->second);
      by_pid_.erase(it);
    }
    if (pid == successor_pid_) successor_pid_ = -1;
    bool exited = WIFEXITED(status);
    if (pid == check_pid_) {
      check_pid_ = -1;
      std::string output = read_available(check_fd_);
      ::close(check_fd_);
      check_fd_ = -1;
      feed(core::ProgramChecked{exited ? WEXITSTATUS(status) : 128 + WTERMSIG(status), check_output(output)});
      continue;
    }
    feed(core::ChildExited{pid, exited, exited ? WEXITSTATUS(status) : WTERMSIG(status),
                           !exited && WCOREDUMP(status)});
  }
}

void Master::reopen_logs(const core::ReopenLogs& a) {
  std::vector<std::string> errors;
  std::string err;
  std::vector<core::WorkerKey> told;
  const std::string& log_file = initial_config_->log.file;  // cannot change on reload
  if (!log_file.empty() && !log::reopen_onto(log_file, log_fd_, err)) errors.push_back("reopening the log: " + err);
  for (auto& [number, files] : generations_)
    if (files.access_log_fd >= 0 && !log::reopen_onto(files.config->log.access_log, files.access_log_fd, err))
      errors.push_back("reopening the access log: " + err);
  for (const core::WorkerKey& key : a.workers) {
    auto worker = workers_.find(key);
    auto files = generations_.find(key.generation);
    if (worker == workers_.end() || files == generations_.end()) continue;
    // The reopened files travel with the message: a worker that gave up root may not be able to
    // open them itself.
    std::vector<int> fds;
    uint32_t which = 0;
    if (!log_file.empty()) fds.push_back(log_fd_), which |= kReopenLog;
    if (files->second.access_log_fd >= 0) fds.push_back(files->second.access_log_fd), which |= kReopenAccessLog;
    if (send_message_fds(worker->second->fd, {MsgType::Reopen, 0, 0, which}, fds)) told.push_back(key);
  }
  inbox_.push_back(core::LogsReopened{std::move(told), std::move(errors)});
}

// ---------------------------------------------------------------- upgrade

void Master::start_successor(const core::StartSuccessor& a) {
  std::string exe = executable_path();
  if (exe.empty() || access(exe.c_str(), X_OK) != 0) {
    inbox_.push_back(core::SuccessorStartFailed{"cannot execute " + (exe.empty() ? "/proc/self/exe" : exe) + ": " +
                                                errno_text(errno)});
    return;
  }
  int channel[2];
  std::string err;
  if (!make_channel(channel, err)) {
    inbox_.push_back(core::SuccessorStartFailed{err});
    return;
  }

  // Handed over by inheritance, systemd's way: every listening socket from fd 3 on (named), then
  // the control socket; the channel to this master comes after them and is named in its own variable.
  std::vector<int> pass = listeners_.all_fds();
  std::string names;
  for (size_t i = 0; i < pass.size(); ++i) names += (i ? ":" : "") + std::string("listen");
  if (control_->fd() >= 0) {
    pass.push_back(control_->fd());
    names += (names.empty() ? "" : ":") + std::string(kControlFdName);
  }
  const int passed = static_cast<int>(pass.size());
  pass.push_back(channel[1]);
  if (metrics_ok_) pass.push_back(metrics_.fd());
  std::vector<std::string> args = argv_;
  args[0] = exe;

  pid_t pid = fork_child();
  if (pid == 0) {
    for (int signo = 1; signo < NSIG; ++signo) signal(signo, SIG_DFL);
    // Out of the way first (copies above every target), then into place from fd 3 on; dup2
    // leaves the targets without O_CLOEXEC, so exactly these survive the exec.
    int above = 3 + static_cast<int>(pass.size());
    std::vector<int> high;
    for (int fd : pass) high.push_back(fcntl(fd, F_DUPFD_CLOEXEC, above));
    for (size_t i = 0; i < high.size(); ++i) dup2(high[i], 3 + static_cast<int>(i));
    setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
    setenv("LISTEN_FDS", std::to_string(passed).c_str(), 1);
    setenv("LISTEN_FDNAMES", names.c_str(), 1);
    setenv("SHOAL_UPGRADE_FD", std::to_string(3 + passed).c_str(), 1);
    setenv("SHOAL_GENERATION", std::to_string(a.first_generation).c_str(), 1);
    if (metrics_ok_) setenv("SHOAL_METRICS_FD", std::to_string(4 + passed).c_str(), 1);
    exec_child(exe, args);
  }
  int fork_errno = errno;
  ::close(channel[1]);
  if (pid < 0) {
    ::close(channel[0]);
    inbox_.push_back(core::SuccessorStartFailed{"fork() failed: " + errno_text(fork_errno)});
    return;
  }
  successor_pid_ = pid;
  successor_channel_ = channel[0];
  successor_ev_ = event_new(base_, successor_channel_, EV_READ | EV_PERSIST, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->on_successor_channel();
  }, this);
  event_add(successor_ev_, nullptr);
  inbox_.push_back(core::SuccessorStarted{pid, exe, passed});
}

// ---------------------------------------------------------------- upgrade in place

// The new program's own verdict, before this image gives itself up: its -t on this config, and
// whether it speaks the channel protocol of the workers it would adopt.
void Master::check_program() {
  // A check the core gave up on (it hung past its deadline, or a shutdown came) is still running:
  // it goes first, so that no child and no pipe outlive it unanswered.
  if (check_pid_ > 0) {
    kill(check_pid_, SIGKILL);
    waitpid(check_pid_, nullptr, 0);
    ::close(check_fd_);
    check_pid_ = check_fd_ = -1;
  }
  std::string exe = executable_path();
  if (exe.empty() || access(exe.c_str(), X_OK) != 0) {
    inbox_.push_back(core::ProgramChecked{127, "cannot execute " + (exe.empty() ? "/proc/self/exe" : exe) + ": " +
                                                   errno_text(errno)});
    return;
  }
  int out[2];
  if (pipe2(out, O_CLOEXEC) != 0) {
    inbox_.push_back(core::ProgramChecked{127, "pipe() failed: " + errno_text(errno)});
    return;
  }
  std::vector<std::string> args = {exe, "-t", "-c", config_path_, "--can-adopt", std::to_string(kChannelProtocol)};
  pid_t pid = fork_child();
  if (pid == 0) {
    for (int signo = 1; signo < NSIG; ++signo) signal(signo, SIG_DFL);
    dup2(out[1], STDOUT_FILENO);
    dup2(out[1], STDERR_FILENO);
    exec_child(exe, args);
  }
  int fork_errno = errno;
  ::close(out[1]);
  if (pid < 0) {
    ::close(out[0]);
    inbox_.push_back(core::ProgramChecked{127, "fork() failed: " + errno_text(fork_errno)});
    return;
  }
  check_pid_ = pid;
  check_fd_ = out[0];  // read once it has exited (reap): -t prints a few lines, well within a pipe
}

// Every fd the new image adopts loses FD_CLOEXEC, its numbers go into the hand-over, and this
// process becomes the program now at its executable's path. The handled signals stay blocked
// across the exec (the mask survives it) until the new image has its handlers.
void Master::exec_in_place() {
  std::optional<core::Takeover> takeover = core_->takeover();
  if (!takeover) return;
  Handover h;
  h.protocol = kChannelProtocol;
  h.takeover = *takeover;
  h.listeners = listeners_.all_fds();
  h.control = control_->fd();
  h.metrics = metrics_ok_ ? metrics_.fd() : -1;
  for (auto& [key, w] : workers_)
    h.workers.push_back({key, w->app, w->fd, w->control_fd, w->output[0].fd, w->output[1].fd});
  for (uint64_t id : takeover->connections())
    if (auto it = replies_.find(id); it != replies_.end() && it->second.fd() >= 0) h.replies.emplace_back(id, it->second.fd());
  std::string exe = executable_path();
  std::string text = encode_handover(h);
  int memfd = memfd_create("shoal-handover", MFD_CLOEXEC);
  std::string error;
  if (memfd < 0 || ::write(memfd, text.data(), text.size()) != static_cast<ssize_t>(text.size()))
    error = "writing the hand-over failed: " + errno_text(errno);
  std::vector<int> keep = h.all_fds();
  keep.push_back(memfd);
  sigset_t handled, previous;
  sigemptyset(&handled);
  for (int signo : kHandledSignals) sigaddset(&handled, signo);
  if (error.empty()) {
    for (int fd : keep) fcntl(fd, F_SETFD, 0);
    setenv("SHOAL_TAKEOVER_FD", std::to_string(memfd).c_str(), 1);
    std::vector<std::string> args = argv_;
    args[0] = exe;
    std::vector<char*> argv = argv_of(args);
    sigprocmask(SIG_BLOCK, &handled, &previous);
    spdlog::default_logger()->flush();
    execv(exe.c_str(), argv.data());
    error = "execv(" + exe + ") failed: " + errno_text(errno);
    sigprocmask(SIG_SETMASK, &previous, nullptr);
    unsetenv("SHOAL_TAKEOVER_FD");
    for (int fd : keep) set_cloexec(fd);
  }
  if (memfd >= 0) ::close(memfd);
  feed(core::ExecFailed{error});
}

// The new image: the hand-over's generations get their files (the serving one its sockets, for
// the workers it may still respawn), its workers their channels, and the waiting commands their
// connections, before the core boots from the same hand-over.
void Master::adopt_handover() {
  std::string err;
  for (const core::AdoptedGeneration& g : handover_->takeover.generations) {
    GenerationFiles files;
    files.config = g.config;
    if (g.serving) {
      bool bound = true;
      for (const auto& address : g.config->server.listen) bound = bound && listeners_.has(address);
      if (bound) files.listen_fds = listeners_.fds_for(*g.config);
      else spdlog::error("generation {}: a listening socket was not handed over; it cannot start workers", g.number);
    }
    if (!g.config->log.access_log.empty() && (files.access_log_fd = log::open_append(g.config->log.access_log, err)) < 0)
      spdlog::error("generation {}: [log] access_log: {}", g.number, err);
    generations_[g.number] = std::move(files);
  }
  for (const Handover::WorkerFds& fds : handover_->workers) {
    const core::AdoptedWorker* adopted = nullptr;
    for (const auto& w : handover_->takeover.workers)
      if (w.key == fds.key) adopted = &w;
    if (!adopted) continue;
    auto worker = std::make_unique<WorkerChannel>();
    worker->master = this;
    worker->key = fds.key;
    worker->pid = adopted->pid;
    worker->app = fds.app;
    worker->fd = fds.channel;
    worker->control_fd = fds.control;
    worker->output[0].fd = fds.out;
    worker->output[1].fd = fds.err;
    for (int fd : {fds.channel, fds.control, fds.out, fds.err})
      if (fd >= 0) set_cloexec(fd);
    const auto files = generations_.find(fds.key.generation);
    const Config* config = files != generations_.end() ? files->second.config.get() : nullptr;
    bool ready_line = fds.app && config && config->app && config->app->ready == AppConfig::Ready::Fd &&
                      adopted->state == core::AdoptedWorker::State::Starting;
    watch_worker(*worker, ready_line);
    worker->metrics_slot = metrics_.slot_of(adopted->pid);
    by_pid_[adopted->pid] = fds.key;
    workers_[fds.key] = std::move(worker);
  }
  for (const auto& [id, fd] : handover_->replies) {
    replies_.emplace(id, control_->adopt_client(fd));
    next_reply_ = std::max(next_reply_, id + 1);
  }
}

void Master::on_successor_channel() {
  Message msg;
  std::string text;
  switch (recv_message(successor_channel_, msg, &text)) {
    case RecvStatus::Again:
      return;
    case RecvStatus::Closed:
      event_del(successor_ev_);  // it exited or gave up: its exit status comes through SIGCHLD
      return feed(core::SuccessorChannelClosed{});
    case RecvStatus::Ok:
      if (msg.type == MsgType::Ready) feed(core::SuccessorReady{text});
      else if (msg.type == MsgType::ConfigRejected) feed(core::SuccessorConfigRejected{text});
  }
}

void Master::close_successor_channel() {
  if (successor_ev_) event_free(successor_ev_), successor_ev_ = nullptr;
  if (successor_channel_ >= 0) ::close(successor_channel_), successor_channel_ = -1;
}

void Master::tell_predecessor() {
  bool ok = send_message(predecessor_fd_, {MsgType::Ready, 0, 0, static_cast<uint32_t>(getpid())}, SHOAL_VERSION);
  std::string err = ok ? "" : errno_text(errno);
  ::close(predecessor_fd_);
  predecessor_fd_ = -1;
  inbox_.push_back(core::PredecessorTold{ok, err});
}

// ---------------------------------------------------------------- pid file

// Before anything is bound: a pid file naming a running process means another master may run
// on the same files; one whose process is gone is stale (a crash, a power cut) and is replaced.
bool Master::check_pid_file() {
  const std::string& path = initial_config_->server.pid_file;
  if (path.empty()) return true;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    if (errno == ENOENT) return true;
    spdlog::critical("pid file {}: cannot open it: {}{}", path, errno_text(errno),
                     errno == ELOOP ? " (it is a symbolic link; shoal never follows one there)" : "");
    return false;
  }
  char buf[32] = {};
  ssize_t n = ::read(fd, buf, sizeof buf - 1);
  ::close(fd);
  long pid = n > 0 ? strtol(buf, nullptr, 10) : 0;
  if (pid > 0 && pid != getpid() && (kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM)) {
    std::ifstream comm("/proc/" + std::to_string(pid) + "/comm");
    std::string name;
    std::getline(comm, name);
    spdlog::critical("pid file {} names pid {} ({}), which is running: is shoal already running? Stop it first, "
                     "or remove the file if that process is not a shoal master",
                     path, pid, name.empty() ? "?" : name);
    return false;
  }
  spdlog::info("pid file {} is stale (pid {} is gone); replacing it", path, pid > 0 ? std::to_string(pid) : "unreadable");
  return true;
}

bool Master::write_pid_file() {
  const std::string& path = initial_config_->server.pid_file;
  if (path.empty()) return true;
  // Written whole under a temporary name, then renamed: a reader never sees a partial pid. The
  // temporary file is created new (O_EXCL) and never through a symbolic link; rename replaces a
  // link at the final name instead of following it.
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  ::unlink(tmp.c_str());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
  if (fd >= 0) fchmod(fd, 0644);  // whatever the umask
  std::string text = std::to_string(getpid()) + "\n";
  bool ok = fd >= 0 && ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  int err = errno;
  if (fd >= 0) ::close(fd);
  if (ok && ::rename(tmp.c_str(), path.c_str()) != 0) ok = false, err = errno;
  if (!ok) {
    spdlog::critical("writing pid file {} failed: {}", path, errno_text(err));
    ::unlink(tmp.c_str());
    return false;
  }
  pid_file_written_ = true;
  return true;
}

void Master::remove_pid_file() {
  if (!pid_file_written_) return;
  // Only our own: a successor may have replaced it.
  std::ifstream in(initial_config_->server.pid_file);
  pid_t pid = 0;
  if (in >> pid && pid == getpid()) ::unlink(initial_config_->server.pid_file.c_str());
  pid_file_written_ = false;
}

}  // namespace shoal
