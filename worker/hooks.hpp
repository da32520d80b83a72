// Cleanup hooks: named, bounded, possibly asynchronous pieces of work a worker runs after its
// HTTP drain (close a database pool, let a queue consumer finish its message, flush a log).
#pragma once

#include <event2/event.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/duration.hpp"

namespace shoal {

// Completes a hook: ok, or not and why. Calls after the first, or after the hook timed out, do nothing.
using HookDone = std::function<void(bool ok, std::string reason)>;

struct CleanupHook {
  std::string name;
  Millis timeout{5000};
  // Starts the hook's work; it calls done now or later from the worker's loop.
  std::function<void(event_base*, HookDone done)> run;
  // Called when the hook times out (to stop what it started); may be empty.
  std::function<void()> cancel;
};

// Runs hooks one after another in the given order, each bounded by its own timeout. A hook that
// throws, fails or times out is logged with its name and the reason, and the next one still runs
// (every hook settles, as Promise.allSettled does). on_finished(failures) runs from the loop;
// on_failed(name), if given, once for each hook that failed, as it does.
class HookRunner {
 public:
  HookRunner(event_base* base, std::vector<CleanupHook> hooks, std::function<void(int failures)> on_finished,
             std::function<void(const std::string& name)> on_failed = {});
  ~HookRunner();
  HookRunner(const HookRunner&) = delete;
  HookRunner& operator=(const HookRunner&) = delete;
  void start();

 private:
  struct State;
  std::shared_ptr<State> state_;
};

// A hook that runs a command (argv, no shell) and succeeds when it exits 0. It gets the worker's
// stdout/stderr (log_fd), /dev/null as stdin, its own process group (killed on timeout), and
// SHOAL_HOOK, SHOAL_WORKER_INDEX, SHOAL_WORKER_PID and SHOAL_GENERATION in its environment.
CleanupHook command_hook(std::string name, std::vector<std::string> argv, Millis timeout, int log_fd,
                         int worker_index, uint64_t generation);

}  // namespace shoal
