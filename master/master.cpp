#include "master/master.hpp"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/log.hpp"
#include "common/net.hpp"
#include "common/sys.hpp"
#include "common/systemd.hpp"
#include "worker/worker.hpp"

extern char** environ;

namespace shoal {
namespace {

constexpr auto kHealthyAfter = std::chrono::seconds(1);  // a worker that lived this long after ready was healthy
constexpr Millis kFirstBackoff{100};
constexpr Millis kMaxBackoff{10'000};
constexpr Millis kStopGrace{1000};      // SIGQUIT or a failed start: how long workers get to exit before SIGKILL
constexpr Millis kStatusWait{300};      // how long `status` waits for the workers' figures
constexpr Millis kUpgradeStartup{2000}; // a new master's own start-up, on top of its workers' ready_timeout
constexpr const char* kControlFdName = "shoal-control";

const char* signal_name(int signo) {
  const char* abbrev = sigabbrev_np(signo);
  static thread_local char buf[16];
  snprintf(buf, sizeof buf, "SIG%s", abbrev ? abbrev : "?");
  return buf;
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exited with code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status))
    return std::string("was killed by ") + signal_name(WTERMSIG(status)) + (WCOREDUMP(status) ? " (core dumped)" : "");
  return "changed state " + std::to_string(status);
}

template <typename Duration>
long long ms(Duration d) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
}

std::string seconds_text(long long milliseconds) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(milliseconds) / 1000.0);
  return buf;
}

std::string describe_affinity(const Config& config) {
  switch (config.server.cpu_affinity) {
    case CpuAffinity::None: return "none";
    case CpuAffinity::Auto: return "auto (" + format_cpu_list(allowed_cpus()) + ")";
    case CpuAffinity::List: return "[" + format_cpu_list(config.server.cpu_list) + "]";
  }
  return "?";
}

std::string answer(Outcome outcome, const std::string& message) {
  return nlohmann::json{{"code", static_cast<int>(outcome)}, {"message", message}}.dump();
}

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

constexpr int kHandledSignals[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD,
                                   SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU};

}  // namespace

Master::Master(std::string config_path, Config config, const Application& app, int log_fd,
               std::vector<std::string> argv)
    : config_path_(std::move(config_path)),
      initial_config_(std::make_shared<const Config>(std::move(config))),
      app_(app),
      log_fd_(log_fd),
      argv_(std::move(argv)) {}

Master::~Master() {
  generations_.clear();  // frees each worker's events before the base goes
  control_.reset();
  for (event* ev : signal_events_) event_free(ev);
  for (event* ev : {deadline_timer_, listener_close_timer_, ready_timer_, deferred_reload_, collect_event_,
                    watchdog_timer_, status_timer_, supervise_timer_, successor_ev_, successor_timer_})
    if (ev) event_free(ev);
  if (successor_channel_ >= 0) ::close(successor_channel_);
  if (predecessor_fd_ >= 0) ::close(predecessor_fd_);
  if (handed_over_) listeners_.release_all();
  else listeners_.close_all();
  if (base_) event_base_free(base_);
}

void Master::notify(const std::string& state) const { systemd::notify(state); }

int Master::run() {
  started_at_ = Clock::now();
  // Started by a previous master on upgrade, or by systemd's socket activation: the sockets are
  // passed in; the generation numbers go on from the predecessor's.
  if (auto fd = take_env_number("SHOAL_UPGRADE_FD")) predecessor_fd_ = static_cast<int>(*fd), set_cloexec(predecessor_fd_);
  if (auto next = take_env_number("SHOAL_GENERATION"); next && *next > 0) last_generation_ = static_cast<uint64_t>(*next - 1);
  log::set_identity({"master", -1, last_generation_ + 1});
  std::vector<int> inherited;
  int inherited_control = -1;
  for (const auto& socket : systemd::inherited_sockets()) {
    if (socket.name == kControlFdName) inherited_control = socket.fd;
    else inherited.push_back(socket.fd);
  }
  if (predecessor_fd_ < 0 && !check_pid_file()) return 1;
  listeners_.adopt(inherited, *initial_config_);
  std::string err;
  if (!listeners_.bind_missing(*initial_config_, err)) {
    spdlog::critical("{}", err);
    return 1;
  }
  base_ = event_base_new();
  if (!base_) {
    spdlog::critical("event_base_new failed");
    return 1;
  }
  control_ = std::make_unique<ControlServer>(base_, [this](const std::string& command, ControlReply reply) {
    on_command(command, std::move(reply));
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
  if (predecessor_fd_ < 0 && !write_pid_file()) return 1;

  signal(SIGPIPE, SIG_IGN);
  for (int signo : kHandledSignals) {
    event* ev = evsignal_new(base_, signo, [](evutil_socket_t s, short, void* self) {
      static_cast<Master*>(self)->on_signal(static_cast<int>(s));
    }, this);
    event_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  deadline_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    auto* m = static_cast<Master*>(self);
    for (auto& generation : m->generations_) m->kill_stragglers(*generation, format_duration(m->shutdown_timeout_));
    m->exit_code_ = 1;
  }, this);
  listener_close_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    auto* m = static_cast<Master*>(self);
    m->listeners_.close_all();
    spdlog::info("master closed its listening sockets");
  }, this);
  ready_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    auto* m = static_cast<Master*>(self);
    if (!m->starting_) return;
    size_t ready = static_cast<size_t>(std::count_if(m->starting_->workers.begin(), m->starting_->workers.end(),
                                                     [](const auto& w) { return w->state == WorkerHandle::State::Ready; }));
    m->fail_reload("generation " + std::to_string(m->starting_->number) + " was not ready within ready_timeout " +
                       format_duration(m->starting_->config->reload.ready_timeout) + " (" + std::to_string(ready) +
                       " of " + std::to_string(m->starting_->workers.size()) + " workers ready)",
                   Outcome::NotReady);
  }, this);
  deferred_reload_ = event_new(base_, -1, 0, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->reload();
  }, this);
  collect_event_ = event_new(base_, -1, 0, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->collect_generations();
  }, this);
  status_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->answer_status();
  }, this);
  supervise_timer_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->supervise();
  }, this);
  static constexpr timeval kSuperviseEvery{0, 250'000};
  event_add(supervise_timer_, &kSuperviseEvery);
  if (auto every = systemd::watchdog_ping_interval()) {
    watchdog_timer_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void*) {
      systemd::notify("WATCHDOG=1");
    }, nullptr);
    timeval tv = to_timeval(*every);
    event_add(watchdog_timer_, &tv);
  }

  serving_ = start_generation(initial_config_, err);
  if (!serving_) {
    spdlog::critical("{}", err);
    return 1;
  }
  event_base_dispatch(base_);

  if (handed_over_) {
    listeners_.release_all();  // the successor holds the same sockets and their files
    control_->close(false);
  } else {
    listeners_.close_all();
    control_->close(true);
  }
  remove_pid_file();
  spdlog::info("stopped after {} ms; exit code {}", ms(Clock::now() - started_at_), exit_code_);
  return exit_code_;
}

// ---------------------------------------------------------------- generations

Generation* Master::start_generation(std::shared_ptr<const Config> config, std::string& err) {
  if (!listeners_.bind_missing(*config, err)) return nullptr;
  auto generation = std::make_unique<Generation>();
  generation->number = last_generation_ + 1;
  generation->config = config;
  generation->listen_fds = listeners_.fds_for(*config);
  if (!config->log.access_log.empty()) {
    generation->access_log_fd = log::open_append(config->log.access_log, err);
    if (generation->access_log_fd < 0) {
      err = "[log] access_log: " + err;
      return nullptr;
    }
  }
  ++last_generation_;
  generation->started_at = Clock::now();
  generation->kill_timer = evtimer_new(base_, [](evutil_socket_t, short, void* g) {
    auto* gen = static_cast<Generation*>(g);
    if (!gen->workers.empty()) gen->workers.front()->master->kill_stragglers(*gen, format_duration(gen->kill_after));
  }, generation.get());
  spdlog::info("starting generation {}: {} worker(s), cpu_affinity {}", generation->number, config->server.workers,
               describe_affinity(*config));
  for (int i = 0; i < config->server.workers; ++i) {
    auto worker = std::make_unique<WorkerHandle>();
    worker->index = i;
    worker->cpu = config->cpu_for_worker(i);
    worker->generation = generation->number;
    worker->generation_of = generation.get();
    worker->master = this;
    worker->respawn_timer = evtimer_new(base_, on_respawn_timer, worker.get());
    generation->workers.push_back(std::move(worker));
  }
  Generation* started = generation.get();
  generations_.push_back(std::move(generation));
  for (auto& worker : started->workers) {
    if (!spawn(*worker) && serving_) {
      err = "cannot fork the workers of generation " + std::to_string(started->number);
      retire(*started, MsgType::Stop, Millis(0), kStopGrace);
      return nullptr;
    }
  }
  return started;
}

void Master::on_generation_ready(Generation& generation) {
  generation.ready_at = Clock::now();
  generation.state = Generation::State::Serving;
  if (&generation == serving_) {  // the first generation of this master
    spdlog::info("generation {} ready: {} worker(s) in {} ms", generation.number, generation.workers.size(),
                 ms(generation.ready_at - started_at_));
    if (predecessor_fd_ >= 0) return tell_predecessor();
    notify("READY=1\nSTATUS=serving: generation " + std::to_string(generation.number) + ", " +
           std::to_string(generation.workers.size()) + " worker(s)");
    control_->start();
    return;
  }
  evtimer_del(ready_timer_);
  Generation* old = serving_;
  serving_ = &generation;
  starting_ = nullptr;
  log::set_identity({"master", -1, generation.number});
  spdlog::level::level_enum level;
  if (log::parse_level(generation.config->log.level, level)) spdlog::default_logger()->set_level(level);
  auto took = ms(generation.ready_at - busy_since_);
  std::string message = "reload ok: generation " + std::to_string(generation.number) + " ready (" +
                        std::to_string(generation.workers.size()) + " workers, " + std::to_string(took) + " ms)";
  last_reload_ = {generation.number, Outcome::Done, message, Clock::now()};
  spdlog::info("reload succeeded: generation {} ready with {} worker(s) in {} ms; generation {} drains",
               generation.number, generation.workers.size(), took, old->number);
  notify("READY=1\nSTATUS=" + message);
  // "reload ok" is answered once the old generation has drained, with how long that took.
  drain_answers_.push_back({old->number, message, std::move(reload_replies_)});
  reload_replies_.clear();
  // The new generation already accepts from the same queues: no drain_delay for the old one.
  retire(*old, MsgType::Drain, Millis(0), old->config->shutdown.timeout);
  listeners_.close_unused({generation.config.get()});
  end_reload();
}

void Master::retire(Generation& generation, MsgType how, Millis drain_delay, Millis kill_after) {
  generation.state = Generation::State::Draining;
  generation.drain_started_at = Clock::now();
  for (auto& worker : generation.workers) {
    evtimer_del(worker->respawn_timer);
    if (worker->state == WorkerHandle::State::Exited) continue;
    bool was_draining = worker->state == WorkerHandle::State::Draining;
    worker->state = WorkerHandle::State::Draining;
    if (was_draining && how == MsgType::Drain) continue;
    Message msg{how, 0, 0, static_cast<uint32_t>(drain_delay.count())};
    if (!send_message(worker->channel_fd, msg)) {
      int signo = how == MsgType::Stop ? SIGQUIT : SIGTERM;
      spdlog::warn("worker {} pid={}: channel unusable; sending {} instead", worker->index, worker->pid,
                   signal_name(signo));
      kill(worker->pid, signo);
    }
  }
  generation.kill_after = kill_after;
  timeval tv = to_timeval(kill_after);
  evtimer_add(generation.kill_timer, &tv);
  event_active(collect_event_, 0, 0);
}

void Master::kill_stragglers(Generation& generation, const std::string& deadline) {
  for (auto& worker : generation.workers) {
    if (worker->state == WorkerHandle::State::Exited || worker->killed) continue;
    std::string detail = "no drain report";
    if (worker->status_at != Clock::time_point{}) {
      auto age = worker->oldest_age_ms + ms(Clock::now() - worker->status_at);
      detail = std::to_string(worker->in_flight) + " request(s) in flight";
      if (worker->in_flight > 0) detail += ", oldest " + worker->oldest_request + " for " + std::to_string(age) + " ms";
    }
    spdlog::error("worker {} pid={} of generation {} still running at the {} deadline ({}); sending SIGKILL",
                  worker->index, worker->pid, generation.number, deadline, detail);
    worker->killed = true;
    kill(worker->pid, SIGKILL);
  }
}

void Master::collect_generations() {
  for (auto& generation : generations_)
    std::erase_if(generation->workers, [](const std::unique_ptr<WorkerHandle>& w) {
      return w->removed && w->state == WorkerHandle::State::Exited;
    });
  std::erase_if(generations_, [&](const std::unique_ptr<Generation>& g) {
    if (g.get() == serving_ || g.get() == starting_ || g->state != Generation::State::Draining || g->live() > 0)
      return false;
    auto drained_ms = ms(Clock::now() - g->drain_started_at);
    if (state_ != State::ShuttingDown) spdlog::info("generation {} drained in {} ms", g->number, drained_ms);
    for (auto it = drain_answers_.begin(); it != drain_answers_.end();) {
      if (it->old_generation != g->number) {
        ++it;
        continue;
      }
      std::string message = it->message + "; generation " + std::to_string(g->number) + " drained in " +
                            seconds_text(drained_ms);
      for (const ControlReply& reply : it->replies) reply.send(answer(Outcome::Done, message));
      it = drain_answers_.erase(it);
    }
    return true;
  });
}

// ---------------------------------------------------------------- reload

std::string Master::busy_reason() const {
  auto since = seconds_text(ms(Clock::now() - busy_since_));
  switch (state_) {
    case State::Reloading:
      return "a reload to generation " + std::to_string(starting_ ? starting_->number : last_generation_ + 1) +
             " is in progress (since " + since + ")";
    case State::Upgrading:
      return "an upgrade to master " + std::to_string(successor_pid_) + " is in progress (since " + since + ")";
    case State::ShuttingDown:
      return "the server is shutting down (since " + seconds_text(ms(Clock::now() - shutdown_at_)) + ")";
    case State::Running:
      break;
  }
  return "";
}

Outcome Master::reload(std::optional<ControlReply> reply) {
  if (state_ != State::Running) {
    // A signal is coalesced into one more reload after this one; a command is told why not.
    if (state_ == State::Reloading && !reply) {
      if (!reload_pending_) spdlog::info("SIGHUP during a reload: one more reload will follow this one");
      reload_pending_ = true;
      return Outcome::Busy;
    }
    std::string why = "reload refused: " + busy_reason() + "; nothing changed";
    spdlog::warn("{}", why);
    if (reply) reply->send(answer(Outcome::Busy, why));
    return Outcome::Busy;
  }
  if (reply) reload_replies_.push_back(*reply);
  state_ = State::Reloading;
  busy_since_ = Clock::now();
  spdlog::info("reloading {}", config_path_);
  notify("RELOADING=1\n" + systemd::monotonic_usec());
  ConfigResult result = load_config_file(config_path_);
  if (!result.config) {
    std::string errors;
    for (const ConfigError& error : result.errors) {
      spdlog::error("reload: {}", error.to_string());
      errors += (errors.empty() ? "" : "; ") + error.to_string();
    }
    fail_reload(errors, Outcome::ConfigInvalid);
    return Outcome::ConfigInvalid;
  }
  if (auto problem = identity_problem(*result.config)) {
    fail_reload(*problem, Outcome::ConfigInvalid);
    return Outcome::ConfigInvalid;
  }
  if (auto refused = refused_change(*serving_->config, *result.config)) {
    fail_reload(*refused, Outcome::ConfigInvalid);
    return Outcome::ConfigInvalid;
  }
  std::string err;
  Generation* generation = start_generation(std::make_shared<const Config>(std::move(*result.config)), err);
  if (!generation) {
    fail_reload(err, Outcome::StartFailed);
    return Outcome::StartFailed;
  }
  starting_ = generation;
  timeval tv = to_timeval(generation->config->reload.ready_timeout);
  evtimer_add(ready_timer_, &tv);
  return Outcome::Done;
}

std::optional<std::string> Master::refused_change(const Config& running, const Config& next) const {
  auto refuse = [](const char* key, const char* why) {
    return std::string(key) + " cannot change on reload (" + why + "); restart shoal to change it";
  };
  if (running.server.pid_file != next.server.pid_file) return refuse("[server] pid_file", "the master wrote it at start");
  if (running.server.control_socket != next.server.control_socket)
    return refuse("[server] control_socket", "the master listens on it");
  if (running.log.file != next.log.file) return refuse("[log] file", "the master holds it open");
  return std::nullopt;
}

void Master::fail_reload(const std::string& reason, Outcome outcome) {
  evtimer_del(ready_timer_);
  uint64_t number = starting_ ? starting_->number : last_generation_ + 1;
  std::string message = "reload failed: " + reason + "; generation " + std::to_string(serving_->number) + " still serving";
  last_reload_ = {number, outcome, message, Clock::now()};
  spdlog::error("reload failed: {}; generation {} keeps serving", reason, serving_->number);
  notify("READY=1\nSTATUS=" + message);
  for (const ControlReply& reply : reload_replies_) reply.send(answer(outcome, message));
  reload_replies_.clear();
  if (starting_) {
    retire(*starting_, MsgType::Stop, Millis(0), kStopGrace);
    starting_ = nullptr;
  }
  listeners_.close_unused({serving_->config.get()});  // addresses bound for the failed generation
  end_reload();
}

void Master::end_reload() {
  state_ = State::Running;
  if (reload_pending_) {
    reload_pending_ = false;
    event_active(deferred_reload_, 0, 0);
  }
}

// ---------------------------------------------------------------- upgrade

Outcome Master::upgrade(std::optional<ControlReply> reply) {
  auto refuse = [&](Outcome outcome, const std::string& why) {
    spdlog::error("{}", why);
    if (reply) reply->send(answer(outcome, why));
    return outcome;
  };
  if (state_ != State::Running) return refuse(Outcome::Busy, "upgrade refused: " + busy_reason() + "; nothing changed");
  std::string exe = executable_path();
  if (exe.empty() || access(exe.c_str(), X_OK) != 0)
    return refuse(Outcome::StartFailed, "upgrade failed: cannot execute " + (exe.empty() ? "/proc/self/exe" : exe) +
                                            ": " + errno_text(errno) + "; master " + std::to_string(getpid()) +
                                            " keeps serving");
  int channel[2];
  std::string err;
  if (!make_channel(channel, err)) return refuse(Outcome::StartFailed, "upgrade failed: " + err);

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
    setenv("SHOAL_GENERATION", std::to_string(last_generation_ + 1).c_str(), 1);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(exe.c_str(), argv.data());
    _exit(127);
  }
  int fork_errno = errno;
  ::close(channel[1]);
  if (pid < 0) {
    ::close(channel[0]);
    return refuse(Outcome::StartFailed, "upgrade failed: fork() failed: " + errno_text(fork_errno));
  }
  state_ = State::Upgrading;
  busy_since_ = Clock::now();
  successor_pid_ = pid;
  successor_channel_ = channel[0];
  successor_ev_ = event_new(base_, successor_channel_, EV_READ | EV_PERSIST, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->on_upgrade_message();
  }, this);
  event_add(successor_ev_, nullptr);
  Millis limit = serving_->config->reload.ready_timeout + kUpgradeStartup;
  successor_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    auto* m = static_cast<Master*>(self);
    m->fail_upgrade("the new master " + std::to_string(m->successor_pid_) + " was not ready within " +
                        format_duration(m->serving_->config->reload.ready_timeout + kUpgradeStartup),
                    Outcome::NotReady);
  }, this);
  timeval tv = to_timeval(limit);
  evtimer_add(successor_timer_, &tv);
  if (reply) upgrade_replies_.push_back(*reply);
  spdlog::info("upgrading: started {} as master {} on the same {} socket(s)", exe, pid, passed);
  return Outcome::Done;
}

void Master::on_upgrade_message() {
  Message msg;
  std::string text;
  switch (recv_message(successor_channel_, msg, &text)) {
    case RecvStatus::Again:
      return;
    case RecvStatus::Closed:
      event_del(successor_ev_);  // it exited or gave up: its exit status comes through SIGCHLD
      return;
    case RecvStatus::Ok:
      if (msg.type == MsgType::Ready) hand_over(static_cast<pid_t>(msg.value), text);
      else if (msg.type == MsgType::Done) fail_upgrade("the new master's config is invalid: " + text, Outcome::ConfigInvalid);
  }
}

void Master::fail_upgrade(const std::string& reason, Outcome outcome) {
  if (state_ != State::Upgrading) return;
  if (successor_timer_) event_free(successor_timer_), successor_timer_ = nullptr;
  if (successor_ev_) event_free(successor_ev_), successor_ev_ = nullptr;
  if (successor_channel_ >= 0) ::close(successor_channel_), successor_channel_ = -1;
  // Still running (not ready in time): it drains what its workers accepted, without delay.
  if (successor_pid_ > 0) kill(successor_pid_, SIGINT);
  std::string message = "upgrade failed: " + reason + "; master " + std::to_string(getpid()) + " keeps serving";
  spdlog::error("{}", message);
  notify("STATUS=" + message);
  for (const ControlReply& reply : upgrade_replies_) reply.send(answer(outcome, message));
  upgrade_replies_.clear();
  state_ = State::Running;
}

void Master::hand_over(pid_t successor, const std::string& version) {
  if (successor_timer_) event_free(successor_timer_), successor_timer_ = nullptr;
  if (successor_ev_) event_free(successor_ev_), successor_ev_ = nullptr;
  if (successor_channel_ >= 0) ::close(successor_channel_), successor_channel_ = -1;
  handed_over_ = true;
  std::string message = "upgrade ok: master " + std::to_string(getpid()) + " -> " + std::to_string(successor) +
                        ", shoal " + SHOAL_VERSION + " -> " + version;
  spdlog::info("{} in {} ms; this master's workers drain", message, ms(Clock::now() - busy_since_));
  notify("MAINPID=" + std::to_string(successor));
  for (const ControlReply& reply : upgrade_replies_) reply.send(answer(Outcome::Done, message));
  upgrade_replies_.clear();
  control_->pause();  // commands go to the new master now
  // As an old generation after a reload: the new master's workers accept from the same queues,
  // so no drain_delay; the sockets stay open in the successor, so nothing is unlinked.
  state_ = State::ShuttingDown;
  shutdown_at_ = Clock::now();
  shutdown_timeout_ = serving_->config->shutdown.timeout;
  retire_all(MsgType::Drain, Millis(0), shutdown_timeout_);
  listeners_.release_all();
  maybe_finish();
}

void Master::tell_predecessor() {
  // The pid file names this master only now that it is ready: until then, the old one serves.
  bool pid_ok = write_pid_file();
  if (!send_message(predecessor_fd_, {MsgType::Ready, 0, 0, static_cast<uint32_t>(getpid())}, SHOAL_VERSION))
    spdlog::error("could not tell the previous master that this one is ready: {}", errno_text(errno));
  ::close(predecessor_fd_);
  predecessor_fd_ = -1;
  spdlog::info("took over from the previous master{}", pid_ok ? "" : " (the pid file could not be written)");
  notify("MAINPID=" + std::to_string(getpid()) + "\nREADY=1\nSTATUS=serving: generation " +
         std::to_string(serving_->number) + " (upgraded)");
  control_->start();
}

// ---------------------------------------------------------------- workers

// fork() with every signal blocked across it: one arriving in the child before it has reset its
// handlers would otherwise run the master's libevent handler and be delivered to the master. The
// child forgets the master's signal events (restoring the default dispositions without touching
// the master's epoll set) and keeps signals blocked until it unblocks them itself; the parent
// gets its mask back at once. errno is that of fork().
pid_t Master::fork_child() {
  sigset_t all, previous;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &previous);
  pid_t pid = fork();
  int fork_errno = errno;
  if (pid == 0) {
    for (event* ev : signal_events_) event_del(ev);
  } else {
    sigprocmask(SIG_SETMASK, &previous, nullptr);
  }
  errno = fork_errno;
  return pid;
}

bool Master::spawn(WorkerHandle& worker) {
  Generation& generation = *worker.generation_of;
  int channel[2];
  std::string err;
  if (!make_channel(channel, err)) {
    spdlog::error("cannot start worker {}: {}", worker.index, err);
    if (&generation == serving_) schedule_respawn(worker, true);
    return false;
  }
  if (!worker.board) worker.board = WorkerBoard::create();
  if (worker.board) worker.board->leave();
  uint64_t max_requests = generation.config->server.max_requests;
  if (max_requests > 0 && generation.config->server.max_requests_jitter > 0)
    max_requests += std::uniform_int_distribution<uint64_t>(0, generation.config->server.max_requests_jitter)(rng_);
  pid_t pid = fork_child();
  if (pid == 0) {
    // The child keeps only the fds handed over explicitly.
    for (int signo : kHandledSignals) signal(signo, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    for (int signo : {SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU}) signal(signo, SIG_IGN);
    std::vector<int> keep = generation.listen_fds;
    keep.push_back(channel[1]);
    keep.push_back(log_fd_);
    if (generation.access_log_fd >= 0) keep.push_back(generation.access_log_fd);
    close_fds_except(keep);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    log::set_identity({"worker", worker.index, worker.generation});
    spdlog::level::level_enum level;
    if (log::parse_level(generation.config->log.level, level)) spdlog::default_logger()->set_level(level);
    WorkerSpec spec;
    spec.config = generation.config.get();
    spec.app = &app_;
    spec.index = worker.index;
    spec.generation = worker.generation;
    spec.cpu = worker.cpu;
    spec.listen_fds = generation.listen_fds;
    spec.channel_fd = channel[1];
    spec.log_fd = log_fd_;
    spec.access_log_fd = generation.access_log_fd;
    spec.max_requests = max_requests;
    spec.board = worker.board;
    _exit(run_worker(spec));
  }
  int fork_errno = errno;
  ::close(channel[1]);
  if (pid < 0) {
    ::close(channel[0]);
    spdlog::error("fork() for worker {} failed: {}", worker.index, errno_text(fork_errno));
    if (&generation == serving_) schedule_respawn(worker, true);
    return false;
  }
  worker.pid = pid;
  worker.state = WorkerHandle::State::Starting;
  worker.started_at = Clock::now();
  worker.exit_code = -1;
  worker.killed = false;
  worker.status_at = {};
  worker.connections = 0;
  worker.requests_served = 0;
  worker.requests_in_flight = 0;
  worker.stats_pending = false;
  worker.channel_fd = channel[0];
  worker.channel_ev = event_new(base_, channel[0], EV_READ | EV_PERSIST, on_channel_event, &worker);
  event_add(worker.channel_ev, nullptr);
  spdlog::info("spawned worker {} pid={} cpu={} generation={}", worker.index, pid,
               worker.cpu >= 0 ? std::to_string(worker.cpu) : "any", worker.generation);
  return true;
}

void Master::release_channel(WorkerHandle& worker) {
  if (worker.channel_ev) event_free(worker.channel_ev), worker.channel_ev = nullptr;
  if (worker.channel_fd >= 0) ::close(worker.channel_fd), worker.channel_fd = -1;
}

void Master::on_channel_event(evutil_socket_t, short, void* handle) {
  auto* worker = static_cast<WorkerHandle*>(handle);
  worker->master->on_message(*worker);
}

void Master::on_respawn_timer(evutil_socket_t, short, void* handle) {
  auto* worker = static_cast<WorkerHandle*>(handle);
  Master* master = worker->master;
  if (master->state_ != State::ShuttingDown && worker->generation_of == master->serving_) master->spawn(*worker);
}

void Master::on_message(WorkerHandle& worker) {
  Message msg;
  std::string text;
  for (;;) {
    switch (recv_message(worker.channel_fd, msg, &text)) {
      case RecvStatus::Again:
        return;
      case RecvStatus::Closed:
        // The worker is exiting; SIGCHLD brings its status. Stop polling the dead channel.
        event_del(worker.channel_ev);
        if (worker.stats_pending) {
          worker.stats_pending = false;
          answer_status();
        }
        return;
      case RecvStatus::Ok:
        break;
    }
    worker.last_heard = Clock::now();
    switch (msg.type) {
      case MsgType::Heartbeat:
        break;
      case MsgType::Recycle:
        replace_gracefully(worker, "served " + std::to_string(msg.value2) + " requests (max_requests)");
        break;
      case MsgType::Ready: {
        if (worker.state != WorkerHandle::State::Starting) break;
        worker.state = WorkerHandle::State::Ready;
        worker.ready_at = Clock::now();
        spdlog::info("worker {} pid={} of generation {} ready in {} ms", worker.index, worker.pid, worker.generation,
                     ms(worker.ready_at - worker.started_at));
        if (worker.replaces) {
          retire_replaced(*worker.replaces, worker);
          break;
        }
        Generation& generation = *worker.generation_of;
        if (generation.state == Generation::State::Starting && generation.all_ready() &&
            (&generation == starting_ || &generation == serving_))
          on_generation_ready(generation);
        break;
      }
      case MsgType::Done:
        worker.exit_code = static_cast<int>(msg.value);
        worker.failed_hooks = static_cast<int>(msg.value2);
        break;
      case MsgType::Status:
        worker.in_flight = msg.value;
        worker.oldest_age_ms = static_cast<int64_t>(msg.value2);
        worker.oldest_request = std::move(text);
        worker.status_at = Clock::now();
        break;
      case MsgType::Stats:
        worker.connections = msg.value;
        worker.requests_served = msg.value2;
        worker.requests_in_flight = static_cast<uint32_t>(std::strtoul(text.c_str(), nullptr, 10));
        if (worker.stats_pending) {
          worker.stats_pending = false;
          answer_status();
        }
        break;
      default:
        spdlog::warn("unexpected message '{}' from worker {}", msg_name(msg.type), worker.index);
    }
  }
}

WorkerHandle* Master::find_worker(pid_t pid) {
  for (auto& generation : generations_)
    for (auto& worker : generation->workers)
      if (worker->pid == pid) return worker.get();
  return nullptr;
}

void Master::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0) break;
    if (pid < 0) {
      if (errno == EINTR) continue;
      break;  // ECHILD: nothing left
    }
    if (WorkerHandle* worker = find_worker(pid)) {
      on_worker_exit(*worker, status);
    } else if (pid == successor_pid_) {
      successor_pid_ = -1;
      if (state_ == State::Upgrading)
        fail_upgrade("the new master " + std::to_string(pid) + " " + describe_status(status) + " before it was ready" +
                         (WIFEXITED(status) && WEXITSTATUS(status) == 127 ? " (exec failed)" : ""),
                     Outcome::StartFailed);
      else
        spdlog::info("the former upgrade candidate, master {}, {}", pid, describe_status(status));
    } else {
      spdlog::warn("reaped unknown child pid={} that {}", pid, describe_status(status));
    }
  }
  event_active(collect_event_, 0, 0);
  maybe_finish();
}

void Master::on_worker_exit(WorkerHandle& worker, int status) {
  Generation& generation = *worker.generation_of;
  const WorkerHandle::State was = worker.state;
  const pid_t pid = worker.pid;
  worker.state = WorkerHandle::State::Exited;
  worker.pid = -1;
  release_channel(worker);
  worker.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  if (worker.stats_pending) {
    worker.stats_pending = false;
    answer_status();
  }

  if (worker.replacement) {
    // It was to be replaced anyway, and the replacement is on its way: nothing to respawn.
    spdlog::warn("worker {} pid={} {} while its replacement starts", worker.index, pid, describe_status(status));
    worker.replacement->replaces = nullptr;
    worker.replacement = nullptr;
    worker.removed = true;
    event_active(collect_event_, 0, 0);
    return;
  }
  if (state_ != State::ShuttingDown && &generation == serving_ && was != WorkerHandle::State::Draining) {
    // Died on its own: replace it on the same CPU.
    bool died_young = was == WorkerHandle::State::Starting || Clock::now() - worker.ready_at < kHealthyAfter ||
                      worker.exit_code == kWorkerFatal;
    spdlog::error("worker {} pid={} cpu={} {} while {}; replacing it", worker.index, pid, worker.cpu,
                  describe_status(status), state_name(was));
    return schedule_respawn(worker, died_young);
  }
  if (&generation == starting_) {
    return fail_reload("worker " + std::to_string(worker.index) + " pid=" + std::to_string(pid) + " of generation " +
                           std::to_string(generation.number) + " " + describe_status(status) + " before it was ready",
                       Outcome::StartFailed);
  }
  if (worker.killed) worker.outcome = "killed at the deadline";
  else if (WIFSIGNALED(status)) worker.outcome = describe_status(status);
  else if (worker.exit_code == 0) worker.outcome = "drained, hooks ok";
  else if (worker.failed_hooks > 0) worker.outcome = std::to_string(worker.failed_hooks) + " hook(s) failed";
  else worker.outcome = describe_status(status);
  worker.outcome = "worker " + std::to_string(worker.index) + " pid=" + std::to_string(pid) + " " + worker.outcome;
  bool clean = worker.exit_code == 0 && !worker.killed;
  spdlog::log(clean ? spdlog::level::info : spdlog::level::warn, "worker {} pid={} of generation {} {}{}",
              worker.index, pid, generation.number, describe_status(status),
              worker.killed ? " (killed at the deadline)" : "");
  if (worker.in_shutdown && !clean) exit_code_ = 1;
}

// Starts a new worker in the old one's place (same index, same CPU); the old one drains once the
// new one reports ready, as in a one-worker reload. Only in a steady state: a reload, upgrade or
// shutdown replaces every worker anyway.
void Master::replace_gracefully(WorkerHandle& old, const std::string& why) {
  if (state_ != State::Running || old.generation_of != serving_ || old.state != WorkerHandle::State::Ready ||
      old.replacement || old.removed)
    return;
  Generation& generation = *serving_;
  auto fresh = std::make_unique<WorkerHandle>();
  fresh->index = old.index;
  fresh->cpu = old.cpu;
  fresh->generation = generation.number;
  fresh->generation_of = &generation;
  fresh->master = this;
  fresh->respawn_timer = evtimer_new(base_, on_respawn_timer, fresh.get());
  fresh->replaces = &old;
  fresh->replace_reason = why;
  old.replacement = fresh.get();
  spdlog::info("worker {} pid={} {}; starting its replacement before it drains", old.index, old.pid, why);
  WorkerHandle& started = *fresh;
  generation.workers.push_back(std::move(fresh));
  spawn(started);
}

void Master::retire_replaced(WorkerHandle& old, WorkerHandle& fresh) {
  fresh.replaces = nullptr;
  old.replacement = nullptr;
  old.removed = true;  // drains, is not respawned, and is then forgotten
  spdlog::info("worker {} pid={} replaced by pid={} ({}); pid={} drains", old.index, old.pid, fresh.pid,
               fresh.replace_reason, old.pid);
  if (old.state != WorkerHandle::State::Ready) return;
  old.state = WorkerHandle::State::Draining;
  if (!send_message(old.channel_fd, {MsgType::Drain, 0, 0, 0})) kill(old.pid, SIGTERM);
}

// Every supervise tick: a ready worker that has been silent for heartbeat_timeout is stuck (an
// endless loop in a handler, SIGSTOP), and a serving generation's worker not ready within
// ready_timeout is stuck at start: SIGKILL, and the usual respawn (with its backoff) replaces it.
// A worker above max_worker_rss is replaced gracefully.
void Master::supervise() {
  const auto now = Clock::now();
  for (auto& generation : generations_) {
    const Config::Server& server = generation->config->server;
    for (auto& worker : generation->workers) {
      // A replacement (after a crash, or for max_requests) that never gets ready, for instance
      // an application start hook that hangs: a reload has its own ready timer, these do not.
      if (worker->state == WorkerHandle::State::Starting && generation.get() == serving_ && !worker->killed &&
          state_ != State::ShuttingDown) {
        Millis limit = generation->config->reload.ready_timeout;
        if (now - worker->started_at >= limit) {
          spdlog::error("worker {} pid={} of generation {} is not ready {} ms after its start (ready_timeout {}); "
                        "sending SIGKILL",
                        worker->index, worker->pid, generation->number, ms(now - worker->started_at),
                        format_duration(limit));
          worker->killed = true;
          kill(worker->pid, SIGKILL);
        }
        continue;
      }
      if (worker->state != WorkerHandle::State::Ready || worker->killed) continue;
      auto silent = now - worker->last_heard;
      if (silent >= server.heartbeat_timeout) {
        std::string doing = worker->board ? worker->board->describe() : "";
        std::string state = process_state(worker->pid);
        spdlog::error("worker {} pid={} of generation {} sent no heartbeat for {} ms (heartbeat_timeout {}); {}{}; "
                      "sending SIGKILL",
                      worker->index, worker->pid, generation->number, ms(silent), format_duration(server.heartbeat_timeout),
                      doing.empty() ? "not inside a handler" : "stuck in " + doing,
                      state.empty() ? "" : ", process state " + state);
        worker->killed = true;
        kill(worker->pid, SIGKILL);
        continue;
      }
      if (server.max_worker_rss > 0 && generation.get() == serving_ && !worker->replacement) {
        uint64_t rss = resident_bytes(worker->pid);
        if (rss > server.max_worker_rss)
          replace_gracefully(*worker, "uses " + std::to_string(rss >> 20) + " MiB of memory, above max_worker_rss (" +
                                          std::to_string(server.max_worker_rss >> 20) + " MiB)");
      }
    }
  }
}

void Master::schedule_respawn(WorkerHandle& worker, bool died_young) {
  worker.state = WorkerHandle::State::Exited;
  worker.startup_failures = died_young ? worker.startup_failures + 1 : 0;
  if (worker.startup_failures == 0) {
    spawn(worker);
    return;
  }
  // Exponential backoff, capped: a worker that cannot start never turns into a fork loop.
  Millis delay = kFirstBackoff * (1 << std::min(worker.startup_failures - 1, 10));
  delay = std::min(delay, kMaxBackoff);
  spdlog::warn("worker {} failed at start-up {} time(s) in a row; next start in {}", worker.index,
               worker.startup_failures, format_duration(delay));
  timeval tv = to_timeval(delay);
  evtimer_add(worker.respawn_timer, &tv);
}

// ---------------------------------------------------------------- signals and commands

void Master::on_signal(int signo) {
  switch (signo) {
    case SIGCHLD: return reap();
    case SIGTERM: return shutdown("SIGTERM", serving_->config->shutdown.drain_delay);
    case SIGINT: return shutdown("SIGINT", Millis(0));  // Ctrl+C: the operator is watching, skip the delay
    case SIGQUIT: return quit("SIGQUIT");
    case SIGHUP: reload(); return;
    case SIGUSR2: upgrade(); return;
    case SIGUSR1: return reopen_logs();
    case SIGTTIN: return add_worker();
    case SIGTTOU: return remove_worker();
    default:
      spdlog::warn("{} received: no action is defined for it; nothing changed", signal_name(signo));
  }
}

void Master::on_command(const std::string& command, ControlReply reply) {
  spdlog::info("control command '{}'", command);
  if (command == "reload") {
    reload(reply);
  } else if (command == "upgrade") {
    upgrade(reply);
  } else if (command == "stop") {
    stop_replies_.push_back(reply);
    shutdown("stop command", serving_->config->shutdown.drain_delay);
  } else if (command == "status") {
    status_replies_.push_back(reply);
    if (evtimer_pending(status_timer_, nullptr)) return;  // a round is under way: this reply joins it
    for (auto& generation : generations_)
      for (auto& worker : generation->workers)
        if (worker->state != WorkerHandle::State::Exited && worker->channel_fd >= 0)
          worker->stats_pending = send_message(worker->channel_fd, {MsgType::StatsQuery});
    timeval tv = to_timeval(kStatusWait);
    evtimer_add(status_timer_, &tv);
    answer_status();  // at once if no worker has anything to say
  } else {
    reply.send(answer(Outcome::ConfigInvalid, "unknown command '" + command + "'; known: reload, stop, upgrade, status"));
  }
}

// Answers the waiting `status` commands once every worker sent its figures or the wait is over.
void Master::answer_status() {
  if (status_replies_.empty()) return;
  bool waiting = false;
  for (auto& generation : generations_)
    for (auto& worker : generation->workers) waiting = waiting || worker->stats_pending;
  if (waiting && evtimer_pending(status_timer_, nullptr)) return;
  evtimer_del(status_timer_);
  std::string summary = "master " + std::to_string(getpid()) + ": " + std::to_string(live_workers()) +
                        " worker(s), generation " + std::to_string(serving_->number) + " serving";
  nlohmann::json out = {{"code", 0}, {"message", summary}, {"status", nlohmann::json::parse(status_json())}};
  for (const ControlReply& reply : status_replies_) reply.send(out.dump());
  status_replies_.clear();
  for (auto& generation : generations_)
    for (auto& worker : generation->workers) worker->stats_pending = false;
}

std::string Master::status_json() const {
  using nlohmann::json;
  auto state_text = [&] {
    switch (state_) {
      case State::Running: return "running";
      case State::Reloading: return "reloading";
      case State::Upgrading: return "upgrading";
      case State::ShuttingDown: return "shutting down";
    }
    return "?";
  };
  json generations = json::array();
  for (const auto& generation : generations_) {
    json workers = json::array();
    for (const auto& worker : generation->workers) {
      if (worker->state == WorkerHandle::State::Exited) continue;
      workers.push_back({{"index", worker->index},
                         {"pid", worker->pid},
                         {"cpu", worker->cpu},
                         {"state", state_name(worker->state)},
                         {"connections", worker->connections},
                         {"requests_in_flight", worker->requests_in_flight},
                         {"requests_served", worker->requests_served}});
    }
    generations.push_back({{"number", generation->number},
                           {"state", state_name(generation->state)},
                           {"age_s", ms(Clock::now() - generation->started_at) / 1000},
                           {"workers", workers}});
  }
  json last_reload = nullptr;
  if (last_reload_.at != Clock::time_point{})
    last_reload = {{"generation", last_reload_.generation},
                   {"ok", last_reload_.outcome == Outcome::Done},
                   {"code", static_cast<int>(last_reload_.outcome)},
                   {"message", last_reload_.message},
                   {"ago_s", ms(Clock::now() - last_reload_.at) / 1000}};
  json master = {{"pid", getpid()},
                 {"version", SHOAL_VERSION},
                 {"uptime_s", ms(Clock::now() - started_at_) / 1000},
                 {"config", config_path_},
                 {"state", state_text()}};
  return json{{"master", master}, {"generations", generations}, {"last_reload", last_reload}}.dump();
}

void Master::reopen_logs() {
  std::string err;
  size_t told = 0;
  const std::string& log_file = initial_config_->log.file;  // cannot change on reload
  if (!log_file.empty() && !log::reopen_onto(log_file, log_fd_, err)) spdlog::error("SIGUSR1: reopening the log: {}", err);
  for (auto& generation : generations_) {
    if (generation->access_log_fd >= 0 &&
        !log::reopen_onto(generation->config->log.access_log, generation->access_log_fd, err))
      spdlog::error("SIGUSR1: reopening the access log: {}", err);
    // The reopened files travel with the message: a worker that gave up root may not be able to
    // open them itself.
    std::vector<int> fds;
    uint32_t which = 0;
    if (!log_file.empty()) fds.push_back(log_fd_), which |= kReopenLog;
    if (generation->access_log_fd >= 0) fds.push_back(generation->access_log_fd), which |= kReopenAccessLog;
    for (auto& worker : generation->workers)
      if (worker->state != WorkerHandle::State::Exited &&
          send_message_fds(worker->channel_fd, {MsgType::Reopen, 0, 0, which}, fds))
        ++told;
  }
  spdlog::info("SIGUSR1: reopened the log files; {} worker(s) told to do the same", told);
}

void Master::add_worker() {
  if (state_ == State::ShuttingDown) return spdlog::warn("SIGTTIN ignored: shutting down");
  Generation& generation = *serving_;
  int index = 0;  // the lowest index free, so that a worker taken away and given back gets its CPU again
  while (std::any_of(generation.workers.begin(), generation.workers.end(),
                     [&](const auto& w) { return w->index == index && !w->removed; }))
    ++index;
  auto worker = std::make_unique<WorkerHandle>();
  worker->index = index;
  worker->cpu = generation.config->cpu_for_worker(index);
  worker->generation = generation.number;
  worker->generation_of = &generation;
  worker->master = this;
  worker->respawn_timer = evtimer_new(base_, on_respawn_timer, worker.get());
  WorkerHandle& added = *worker;
  generation.workers.push_back(std::move(worker));
  spdlog::info("SIGTTIN: adding worker {} on CPU {}; generation {} now has {} worker(s)", index, added.cpu,
               generation.number, generation.size());
  spawn(added);
}

void Master::remove_worker() {
  if (state_ == State::ShuttingDown) return spdlog::warn("SIGTTOU ignored: shutting down");
  Generation& generation = *serving_;
  if (generation.size() <= 1)
    return spdlog::warn("SIGTTOU ignored: generation {} has one worker, the fewest it can have", generation.number);
  WorkerHandle* last = nullptr;
  for (auto& worker : generation.workers)
    if (!worker->removed && (!last || worker->index > last->index)) last = worker.get();
  last->removed = true;
  evtimer_del(last->respawn_timer);
  if (last->state != WorkerHandle::State::Exited) {
    last->state = WorkerHandle::State::Draining;
    if (!send_message(last->channel_fd, {MsgType::Drain})) kill(last->pid, SIGTERM);
  }
  spdlog::info("SIGTTOU: worker {} pid={} drains and is not replaced; generation {} now has {} worker(s)", last->index,
               last->pid, generation.number, generation.size());
  event_active(collect_event_, 0, 0);
}

// ---------------------------------------------------------------- shutdown

size_t Master::live_workers() const {
  size_t live = 0;
  for (const auto& generation : generations_) live += generation->live();
  return live;
}

void Master::shutdown(const char* why, Millis drain_delay) {
  if (state_ == State::ShuttingDown) {
    auto left = shutdown_timeout_ - std::chrono::duration_cast<Millis>(Clock::now() - shutdown_at_);
    spdlog::info("{} received while shutting down; already in progress ({} ms left before the deadline)", why,
                 std::max<long long>(0, left.count()));
    return;
  }
  if (starting_) {
    spdlog::warn("{}: the reload to generation {} is abandoned; its workers drain too", why, starting_->number);
    fail_reload("abandoned: the server is shutting down", Outcome::StartFailed);
  }
  if (state_ == State::Upgrading) fail_upgrade("abandoned: the server is shutting down", Outcome::StartFailed);
  evtimer_del(ready_timer_);
  reload_pending_ = false;
  state_ = State::ShuttingDown;
  shutdown_at_ = Clock::now();
  shutdown_timeout_ = serving_->config->shutdown.timeout;
  spdlog::info("{}: graceful shutdown of {} worker(s); drain_delay {}, timeout {}", why, live_workers(),
               format_duration(drain_delay), format_duration(shutdown_timeout_));
  notify("STOPPING=1");
  retire_all(MsgType::Drain, drain_delay, shutdown_timeout_);
  // The master's copies close with the workers' (after the delay): new connections are then
  // refused instead of queued to nobody.
  timeval delay = to_timeval(drain_delay);
  evtimer_add(listener_close_timer_, &delay);
  maybe_finish();
}

void Master::quit(const char* why) {
  spdlog::warn("{}: stopping now, without draining ({} worker(s))", why, live_workers());
  exit_code_ = 1;
  if (state_ == State::Upgrading) fail_upgrade("abandoned: " + std::string(why), Outcome::StartFailed);
  if (state_ != State::ShuttingDown) shutdown_at_ = Clock::now();
  notify("STOPPING=1");
  evtimer_del(ready_timer_);
  starting_ = nullptr;
  reload_pending_ = false;
  state_ = State::ShuttingDown;
  shutdown_timeout_ = kStopGrace;
  if (handed_over_) listeners_.release_all();
  else listeners_.close_all();
  retire_all(MsgType::Stop, Millis(0), kStopGrace);
  maybe_finish();
}

// Ends every generation (`how`: drain or stop) under one deadline; every worker alive now counts
// towards the exit code.
void Master::retire_all(MsgType how, Millis drain_delay, Millis deadline) {
  for (auto& generation : generations_) {
    for (auto& worker : generation->workers)
      if (worker->state != WorkerHandle::State::Exited) worker->in_shutdown = true;
    retire(*generation, how, drain_delay, deadline);
  }
  timeval tv = to_timeval(deadline);
  evtimer_add(deadline_timer_, &tv);
}

void Master::maybe_finish() {
  // Once: SIGCHLD may be handled twice in the loop's last pass (two children, two signals).
  if (finished_ || state_ != State::ShuttingDown || live_workers() != 0) return;
  finished_ = true;
  std::string outcomes;
  for (const auto& generation : generations_)
    for (const auto& worker : generation->workers)
      if (worker->in_shutdown && !worker->outcome.empty()) outcomes += (outcomes.empty() ? "" : "; ") + worker->outcome;
  std::string summary = std::string(handed_over_ ? "hand-over" : "shutdown") + (exit_code_ == 0 ? " clean" : " NOT clean") +
                        " in " + std::to_string(ms(Clock::now() - shutdown_at_)) + " ms: " +
                        (outcomes.empty() ? "no worker was running" : outcomes);
  spdlog::log(exit_code_ == 0 ? spdlog::level::info : spdlog::level::warn, "{}", summary);
  for (const ControlReply& reply : stop_replies_)
    reply.send(answer(exit_code_ == 0 ? Outcome::Done : Outcome::ConfigInvalid, "stop: " + summary));
  stop_replies_.clear();
  event_base_loopexit(base_, nullptr);
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
