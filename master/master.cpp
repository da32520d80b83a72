#include "master/master.hpp"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>

#include "common/channel.hpp"
#include "common/log.hpp"
#include "common/net.hpp"
#include "common/sys.hpp"
#include "worker/worker.hpp"

namespace shoal {
namespace {

constexpr auto kHealthyAfter = std::chrono::seconds(1);  // a worker that lived this long after ready was healthy
constexpr Millis kFirstBackoff{100};
constexpr Millis kMaxBackoff{10'000};
constexpr Millis kQuitGrace{1000};  // SIGQUIT: how long workers get to exit before SIGKILL

timeval to_timeval(Millis d) {
  return {static_cast<time_t>(d.count() / 1000), static_cast<suseconds_t>(d.count() % 1000 * 1000)};
}

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

constexpr int kHandledSignals[] = {SIGTERM, SIGINT, SIGQUIT, SIGHUP, SIGCHLD,
                                   SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU};

}  // namespace

Master::Master(Config config, const Application& app, int log_fd, int access_log_fd)
    : config_(std::move(config)), app_(app), log_fd_(log_fd), access_log_fd_(access_log_fd) {}

Master::~Master() {
  for (auto& worker : workers_) {
    release_channel(*worker);
    if (worker->respawn_timer) event_free(worker->respawn_timer);
  }
  for (event* ev : signal_events_) event_free(ev);
  for (event* ev : {deadline_timer_, listener_close_timer_})
    if (ev) event_free(ev);
  close_listeners();
  if (base_) event_base_free(base_);
}

int Master::run() {
  started_at_ = Clock::now();
  log::set_identity({"master", -1, generation_});
  if (!bind_listeners()) return 1;
  if (!write_pid_file()) {
    close_listeners();
    return 1;
  }
  base_ = event_base_new();
  if (!base_) {
    spdlog::critical("event_base_new failed");
    return 1;
  }
  signal(SIGPIPE, SIG_IGN);
  for (int signo : kHandledSignals) {
    event* ev = evsignal_new(base_, signo, [](evutil_socket_t s, short, void* self) {
      static_cast<Master*>(self)->on_signal(static_cast<int>(s));
    }, this);
    event_add(ev, nullptr);
    signal_events_.push_back(ev);
  }
  deadline_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->on_deadline();
  }, this);
  listener_close_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    static_cast<Master*>(self)->close_listeners();
  }, this);

  spdlog::info("shoal {} starting generation {}: {} worker(s), cpu_affinity {}", SHOAL_VERSION, generation_,
               config_.server.workers,
               config_.server.cpu_affinity == CpuAffinity::None ? "none"
               : config_.server.cpu_affinity == CpuAffinity::Auto ? "auto (" + format_cpu_list(allowed_cpus()) + ")"
                                                                  : "list");
  for (int i = 0; i < config_.server.workers; ++i) {
    auto worker = std::make_unique<WorkerHandle>();
    worker->index = i;
    worker->cpu = config_.cpu_for_worker(i);
    worker->generation = generation_;
    worker->master = this;
    worker->respawn_timer = evtimer_new(base_, on_respawn_timer, worker.get());
    workers_.push_back(std::move(worker));
  }
  for (auto& worker : workers_) spawn(*worker);

  event_base_dispatch(base_);

  close_listeners();
  remove_pid_file();
  spdlog::info("stopped after {} ms; exit code {}", ms(Clock::now() - started_at_), exit_code_);
  return exit_code_;
}

// ---------------------------------------------------------------- sockets and files

bool Master::bind_listeners() {
  for (const ListenAddress& address : config_.server.listen) {
    std::string err;
    int fd = bind_listener(address, config_.server.backlog, err);
    if (fd < 0) {
      spdlog::critical("{}", err);
      close_listeners();
      return false;
    }
    listen_fds_.push_back(fd);
    std::string bound = bound_address(fd);
    spdlog::info("listening on {}{} (fd {})", address.kind == ListenAddress::Kind::Unix ? "" : "http://", bound, fd);
  }
  return true;
}

void Master::close_listeners() {
  if (listen_fds_.empty()) return;
  for (int fd : listen_fds_) ::close(fd);
  listen_fds_.clear();
  for (const ListenAddress& address : config_.server.listen)
    if (address.kind == ListenAddress::Kind::Unix) ::unlink(address.unix_path.c_str());
  if (base_) spdlog::info("master closed its listening sockets");
}

bool Master::write_pid_file() {
  const std::string& path = config_.server.pid_file;
  if (path.empty()) return true;
  // Written whole under a temporary name, then renamed: a reader never sees a partial pid.
  std::string tmp = path + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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
  std::ifstream in(config_.server.pid_file);
  pid_t pid = 0;
  if (in >> pid && pid == getpid()) ::unlink(config_.server.pid_file.c_str());
  pid_file_written_ = false;
}

// ---------------------------------------------------------------- workers

void Master::spawn(WorkerHandle& worker) {
  int channel[2];
  std::string err;
  if (!make_channel(channel, err)) {
    spdlog::error("cannot start worker {}: {}", worker.index, err);
    return schedule_respawn(worker, true);
  }
  // Signals stay blocked across fork: one arriving in the child before it has reset its
  // handlers would otherwise run the master's libevent handler and be delivered to the master.
  sigset_t all, previous;
  sigfillset(&all);
  sigprocmask(SIG_BLOCK, &all, &previous);
  pid_t pid = fork();
  if (pid == 0) {
    // The child. Forget the master's signal events (this restores the default dispositions
    // without touching the master's epoll set), then keep only the fds handed over explicitly.
    for (event* ev : signal_events_) event_del(ev);
    for (int signo : kHandledSignals) signal(signo, SIG_DFL);
    signal(SIGPIPE, SIG_IGN);
    for (int signo : {SIGHUP, SIGUSR1, SIGUSR2, SIGWINCH, SIGTTIN, SIGTTOU}) signal(signo, SIG_IGN);
    std::vector<int> keep = listen_fds_;
    keep.push_back(channel[1]);
    keep.push_back(log_fd_);
    if (access_log_fd_ >= 0) keep.push_back(access_log_fd_);
    close_fds_except(keep);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    log::set_identity({"worker", worker.index, worker.generation});
    WorkerSpec spec;
    spec.config = &config_;
    spec.app = &app_;
    spec.index = worker.index;
    spec.generation = worker.generation;
    spec.cpu = worker.cpu;
    spec.listen_fds = listen_fds_;
    spec.channel_fd = channel[1];
    spec.log_fd = log_fd_;
    spec.access_log_fd = access_log_fd_;
    _exit(run_worker(spec));
  }
  int fork_errno = errno;
  sigprocmask(SIG_SETMASK, &previous, nullptr);
  ::close(channel[1]);
  if (pid < 0) {
    ::close(channel[0]);
    spdlog::error("fork() for worker {} failed: {}", worker.index, errno_text(fork_errno));
    return schedule_respawn(worker, true);
  }
  worker.pid = pid;
  worker.state = WorkerHandle::State::Starting;
  worker.started_at = Clock::now();
  worker.exit_code = -1;
  worker.killed = false;
  worker.channel_fd = channel[0];
  worker.channel_ev = event_new(base_, channel[0], EV_READ | EV_PERSIST, on_channel_event, &worker);
  event_add(worker.channel_ev, nullptr);
  spdlog::info("spawned worker {} pid={} cpu={}", worker.index, pid, worker.cpu >= 0 ? std::to_string(worker.cpu) : "any");
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
  if (worker->master->state_ == State::Running) worker->master->spawn(*worker);
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
        return;
      case RecvStatus::Ok:
        break;
    }
    switch (msg.type) {
      case MsgType::Ready:
        if (worker.state != WorkerHandle::State::Starting) break;
        worker.state = WorkerHandle::State::Ready;
        worker.ready_at = Clock::now();
        spdlog::info("worker {} pid={} ready in {} ms", worker.index, worker.pid, ms(worker.ready_at - worker.started_at));
        if (!announced_ready_ &&
            std::all_of(workers_.begin(), workers_.end(), [](const auto& w) { return w->state == WorkerHandle::State::Ready; })) {
          announced_ready_ = true;
          spdlog::info("generation {} ready: {} worker(s) in {} ms", generation_, workers_.size(),
                       ms(Clock::now() - started_at_));
        }
        break;
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
      default:
        spdlog::warn("unexpected message '{}' from worker {}", msg_name(msg.type), worker.index);
    }
  }
}

void Master::reap() {
  for (;;) {
    int status = 0;
    pid_t pid = waitpid(-1, &status, WNOHANG);
    if (pid == 0) return;
    if (pid < 0) {
      if (errno == EINTR) continue;
      return;  // ECHILD: nothing left
    }
    auto it = std::find_if(workers_.begin(), workers_.end(), [&](const auto& w) { return w->pid == pid; });
    if (it == workers_.end()) {
      spdlog::warn("reaped unknown child pid={} that {}", pid, describe_status(status));
      continue;
    }
    on_worker_exit(**it, status);
  }
}

void Master::on_worker_exit(WorkerHandle& worker, int status) {
  const WorkerHandle::State was = worker.state;
  const pid_t pid = worker.pid;
  worker.state = WorkerHandle::State::Exited;
  worker.pid = -1;
  release_channel(worker);
  worker.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);

  if (state_ == State::Running) {
    // Died on its own: replace it on the same CPU.
    bool died_young = was == WorkerHandle::State::Starting || Clock::now() - worker.ready_at < kHealthyAfter ||
                      worker.exit_code == kWorkerFatal;
    spdlog::error("worker {} pid={} cpu={} {} while {}; replacing it", worker.index, pid, worker.cpu,
                  describe_status(status), state_name(was));
    return schedule_respawn(worker, died_young);
  }
  if (worker.killed) worker.outcome = "killed at the deadline";
  else if (WIFSIGNALED(status)) worker.outcome = describe_status(status);
  else if (worker.exit_code == 0) worker.outcome = "drained, hooks ok";
  else if (worker.failed_hooks > 0) worker.outcome = std::to_string(worker.failed_hooks) + " hook(s) failed";
  else worker.outcome = describe_status(status);
  worker.outcome = "worker " + std::to_string(worker.index) + " pid=" + std::to_string(pid) + " " + worker.outcome;
  auto level = (worker.exit_code == 0 && !worker.killed) ? spdlog::level::info : spdlog::level::warn;
  spdlog::log(level, "worker {} pid={} {}{}", worker.index, pid, describe_status(status),
              worker.killed ? " (killed at the deadline)" : "");
  if (worker.exit_code != 0 || worker.killed) exit_code_ = 1;
  maybe_finish();
}

void Master::schedule_respawn(WorkerHandle& worker, bool died_young) {
  worker.state = WorkerHandle::State::Exited;
  worker.startup_failures = died_young ? worker.startup_failures + 1 : 0;
  if (worker.startup_failures == 0) return spawn(worker);
  // Exponential backoff, capped: a worker that cannot start never turns into a fork loop.
  Millis delay = kFirstBackoff * (1 << std::min(worker.startup_failures - 1, 10));
  delay = std::min(delay, kMaxBackoff);
  spdlog::warn("worker {} failed at start-up {} time(s) in a row; next start in {}", worker.index,
               worker.startup_failures, format_duration(delay));
  timeval tv = to_timeval(delay);
  evtimer_add(worker.respawn_timer, &tv);
}

// ---------------------------------------------------------------- signals and shutdown

void Master::on_signal(int signo) {
  switch (signo) {
    case SIGCHLD: return reap();
    case SIGTERM: return shutdown("SIGTERM", config_.shutdown.drain_delay);
    case SIGINT: return shutdown("SIGINT", Millis(0));  // Ctrl+C: the operator is watching, skip the delay
    case SIGQUIT: return quit("SIGQUIT");
    case SIGHUP:
      spdlog::warn("SIGHUP received: configuration reload is not available in this version; nothing changed");
      return;
    default:
      spdlog::warn("{} received: no action is defined for it in this version; nothing changed", signal_name(signo));
  }
}

size_t Master::live_workers() const {
  return static_cast<size_t>(std::count_if(workers_.begin(), workers_.end(),
                                           [](const auto& w) { return w->state != WorkerHandle::State::Exited; }));
}

void Master::shutdown(const char* why, Millis drain_delay) {
  if (state_ == State::ShuttingDown) {
    auto left = shutdown_timeout_ - std::chrono::duration_cast<Millis>(Clock::now() - shutdown_at_);
    spdlog::info("{} received while shutting down; already in progress ({} ms left before the deadline)", why,
                 std::max<long long>(0, left.count()));
    return;
  }
  state_ = State::ShuttingDown;
  shutdown_at_ = Clock::now();
  shutdown_timeout_ = config_.shutdown.timeout;
  spdlog::info("{}: graceful shutdown of {} worker(s); drain_delay {}, timeout {}", why, live_workers(),
               format_duration(drain_delay), format_duration(shutdown_timeout_));
  for (auto& worker : workers_) {
    if (worker->respawn_timer) evtimer_del(worker->respawn_timer);
    if (worker->state == WorkerHandle::State::Exited) continue;
    worker->state = WorkerHandle::State::Draining;
    if (!send_message(worker->channel_fd, {MsgType::Drain, 0, 0, static_cast<uint32_t>(drain_delay.count())})) {
      spdlog::warn("worker {} pid={}: channel unusable; sending SIGTERM instead", worker->index, worker->pid);
      kill(worker->pid, SIGTERM);
    }
  }
  timeval deadline = to_timeval(shutdown_timeout_);
  evtimer_add(deadline_timer_, &deadline);
  // The master's copies close with the workers' (after the delay): new connections are then
  // refused instead of queued to nobody.
  timeval delay = to_timeval(drain_delay);
  evtimer_add(listener_close_timer_, &delay);
  maybe_finish();
}

void Master::quit(const char* why) {
  spdlog::warn("{}: stopping now, without draining ({} worker(s))", why, live_workers());
  quitting_ = true;
  exit_code_ = 1;
  if (state_ != State::ShuttingDown) shutdown_at_ = Clock::now();
  state_ = State::ShuttingDown;
  shutdown_timeout_ = kQuitGrace;
  close_listeners();
  for (auto& worker : workers_) {
    if (worker->respawn_timer) evtimer_del(worker->respawn_timer);
    if (worker->state == WorkerHandle::State::Exited) continue;
    worker->state = WorkerHandle::State::Draining;
    if (!send_message(worker->channel_fd, {MsgType::Stop})) kill(worker->pid, SIGQUIT);
  }
  timeval deadline = to_timeval(kQuitGrace);
  evtimer_add(deadline_timer_, &deadline);
  maybe_finish();
}

void Master::on_deadline() {
  for (auto& worker : workers_) {
    if (worker->state == WorkerHandle::State::Exited) continue;
    std::string detail = "no drain report";
    if (worker->status_at != Clock::time_point{}) {
      auto age = worker->oldest_age_ms + ms(Clock::now() - worker->status_at);
      detail = std::to_string(worker->in_flight) + " request(s) in flight";
      if (worker->in_flight > 0) detail += ", oldest " + worker->oldest_request + " for " + std::to_string(age) + " ms";
    }
    spdlog::error("worker {} pid={} still running at the {} deadline ({}); sending SIGKILL", worker->index,
                  worker->pid, format_duration(shutdown_timeout_), detail);
    worker->killed = true;
    kill(worker->pid, SIGKILL);
  }
  exit_code_ = 1;
}

void Master::maybe_finish() {
  if (state_ != State::ShuttingDown || live_workers() != 0) return;
  std::string outcomes;
  for (const auto& worker : workers_) {
    if (worker->outcome.empty()) continue;
    outcomes += (outcomes.empty() ? "" : "; ") + worker->outcome;
  }
  spdlog::log(exit_code_ == 0 ? spdlog::level::info : spdlog::level::warn,
              "shutdown {} in {} ms: {}", exit_code_ == 0 ? "clean" : "NOT clean", ms(Clock::now() - shutdown_at_),
              outcomes.empty() ? "no worker was running" : outcomes);
  event_base_loopexit(base_, nullptr);
}

}  // namespace shoal
