#include "worker/hooks.hpp"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <spdlog/spdlog.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>

#include "common/sys.hpp"

extern char** environ;

namespace shoal {

struct HookRunner::State : std::enable_shared_from_this<State> {
  event_base* base;
  std::vector<CleanupHook> hooks;
  std::function<void(int)> on_finished;
  std::function<void(const std::string&)> on_failed;
  size_t current = 0;
  uint64_t attempt = 0;  // identifies the running hook: a late done() from an earlier one is ignored
  int failures = 0;
  bool settled_current = false;
  event* timer = nullptr;
  event* next = nullptr;  // the next hook starts from the loop, never inside the previous one's call
  std::chrono::steady_clock::time_point started;

  void run_current() {
    if (current == hooks.size()) {
      // Each hook said how it went; the sum is news only when one failed.
      spdlog::log(failures ? spdlog::level::warn : spdlog::level::debug, "cleanup hooks finished: {} of {} failed",
                  failures, hooks.size());
      if (auto done = std::move(on_finished)) done(failures);
      return;
    }
    const CleanupHook& hook = hooks[current];
    ++attempt;
    settled_current = false;
    started = std::chrono::steady_clock::now();
    timeval tv = to_timeval(hook.timeout);
    evtimer_add(timer, &tv);
    spdlog::debug("cleanup hook '{}' started (timeout {})", hook.name, format_duration(hook.timeout));
    std::weak_ptr<State> weak = weak_from_this();
    uint64_t mine = attempt;
    HookDone done = [weak, mine](bool ok, std::string reason) {
      if (auto self = weak.lock()) self->settle(mine, ok, std::move(reason));
    };
    try {
      hook.run(base, done);
    } catch (const std::exception& e) {
      settle(mine, false, std::string("threw: ") + e.what());
    } catch (...) {
      settle(mine, false, "threw a non-standard exception");
    }
  }

  void settle(uint64_t which, bool ok, std::string reason) {
    if (which != attempt || settled_current) return;
    settled_current = true;
    evtimer_del(timer);
    const CleanupHook& hook = hooks[current];
    auto took_ms = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - started).count();
    if (ok) {
      spdlog::info("cleanup hook '{}' succeeded in {} ms", hook.name, took_ms);
    } else {
      ++failures;
      spdlog::error("cleanup hook '{}' failed after {} ms: {}", hook.name, took_ms, reason);
      if (on_failed) on_failed(hook.name);
    }
    ++current;
    event_active(next, 0, 0);
  }

  void timed_out() {
    const CleanupHook& hook = hooks[current];
    if (hook.cancel) hook.cancel();
    settle(attempt, false, "timed out after " + format_duration(hook.timeout));
  }
};

HookRunner::HookRunner(event_base* base, std::vector<CleanupHook> hooks, std::function<void(int)> on_finished,
                       std::function<void(const std::string&)> on_failed)
    : state_(std::make_shared<State>()) {
  state_->on_failed = std::move(on_failed);
  state_->base = base;
  state_->hooks = std::move(hooks);
  state_->on_finished = std::move(on_finished);
  state_->timer = evtimer_new(base, [](evutil_socket_t, short, void* s) { static_cast<State*>(s)->timed_out(); },
                              state_.get());
  state_->next = event_new(base, -1, 0, [](evutil_socket_t, short, void* s) { static_cast<State*>(s)->run_current(); },
                           state_.get());
}

HookRunner::~HookRunner() {
  event_free(state_->timer);
  event_free(state_->next);
}

void HookRunner::start() { event_active(state_->next, 0, 0); }

namespace {

struct HookProcess {
  pid_t pid = -1;
  int pidfd = -1;
  event* exit_ev = nullptr;
  HookDone done;
  std::string name;

  ~HookProcess() {
    if (exit_ev) event_free(exit_ev);
    if (pidfd >= 0) close(pidfd);
  }

  static void on_exit(evutil_socket_t, short, void* arg) {
    auto* self = static_cast<HookProcess*>(arg);
    int status = 0;
    if (waitpid(self->pid, &status, WNOHANG) != self->pid) return;
    event_del(self->exit_ev);
    self->pid = -1;
    std::string why;
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return self->done(true, "");
    if (WIFEXITED(status)) why = "exited with code " + std::to_string(WEXITSTATUS(status));
    else why = "killed by signal " + std::to_string(WTERMSIG(status));
    self->done(false, why);
  }
};

}  // namespace

CleanupHook command_hook(std::string name, std::vector<std::string> argv, Millis timeout, int log_fd,
                         int worker_index, uint64_t generation) {
  auto process = std::make_shared<HookProcess>();
  process->name = name;
  CleanupHook hook;
  hook.name = name;
  hook.timeout = timeout;
  hook.run = [process, argv, log_fd, worker_index, generation](event_base* base, HookDone done) {
    process->done = std::move(done);
    std::vector<std::string> env_strings = {"SHOAL_HOOK=" + process->name,
                                            "SHOAL_WORKER_INDEX=" + std::to_string(worker_index),
                                            "SHOAL_WORKER_PID=" + std::to_string(getpid()),
                                            "SHOAL_GENERATION=" + std::to_string(generation)};
    std::vector<char*> env;
    for (char** e = environ; *e; ++e) env.push_back(*e);
    for (auto& s : env_strings) env.push_back(s.data());
    env.push_back(nullptr);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);

    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
    if (log_fd != 1) posix_spawn_file_actions_adddup2(&actions, log_fd, 1);
    if (log_fd != 2) posix_spawn_file_actions_adddup2(&actions, log_fd, 2);
    posix_spawnattr_t attr;
    posix_spawnattr_init(&attr);
    sigset_t all, none;
    sigfillset(&all);
    sigemptyset(&none);
    posix_spawnattr_setsigdefault(&attr, &all);  // the worker ignores SIGPIPE and SIGHUP; the command should not
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETPGROUP);
    int err = posix_spawnp(&process->pid, args[0], &actions, &attr, args.data(), env.data());
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    if (err != 0) {
      process->pid = -1;
      return process->done(false, "cannot run '" + argv[0] + "': " + errno_text(err));
    }
    // A pidfd becomes readable when the process exits: its end is an ordinary loop event,
    // with no SIGCHLD handler in the worker.
    process->pidfd = static_cast<int>(syscall(SYS_pidfd_open, process->pid, 0));
    if (process->pidfd < 0) {
      int open_err = errno;
      kill(-process->pid, SIGKILL);
      waitpid(process->pid, nullptr, 0);
      process->pid = -1;
      return process->done(false, "pidfd_open failed: " + errno_text(open_err));
    }
    process->exit_ev = event_new(base, process->pidfd, EV_READ | EV_PERSIST, HookProcess::on_exit, process.get());
    event_add(process->exit_ev, nullptr);
  };
  hook.cancel = [process] {
    // The whole group: a shell's children too. The exit event still reaps it.
    if (process->pid > 0) kill(-process->pid, SIGKILL);
  };
  return hook;
}

}  // namespace shoal
