// A worker process as the master sees it. The code that runs inside the worker never sees this.
#pragma once

#include <event2/event.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "common/scoreboard.hpp"

namespace shoal {

class Master;
struct Generation;

struct WorkerHandle {
  enum class State {
    Starting,  // forked, has not reported ready
    Ready,     // accepting
    Draining,  // told to drain or stop
    Exited,    // reaped; waiting for a respawn, or done
  };

  Master* master = nullptr;          // for the event callbacks
  Generation* generation_of = nullptr;  // the generation this worker belongs to
  int index = 0;
  int cpu = -1;
  uint64_t generation = 1;
  pid_t pid = -1;
  State state = State::Exited;
  int channel_fd = -1;
  event* channel_ev = nullptr;
  event* respawn_timer = nullptr;
  std::chrono::steady_clock::time_point started_at{};
  std::chrono::steady_clock::time_point ready_at{};
  int startup_failures = 0;  // consecutive deaths before or soon after ready: drives the backoff
  int exit_code = -1;        // from the Done message or waitpid
  bool killed = false;       // SIGKILLed at a deadline
  bool in_shutdown = false;  // was live when the shutdown began: its outcome sets the exit code
  bool removed = false;      // taken away by SIGTTOU: drains, is not replaced, and is then forgotten
  int failed_hooks = 0;      // from the Done message

  // The worker's last drain report (a Status message), to name stragglers at the deadline.
  uint32_t in_flight = 0;
  int64_t oldest_age_ms = 0;
  std::string oldest_request;
  std::chrono::steady_clock::time_point status_at{};

  // Figures for `status`, from the worker's Stats answer.
  uint32_t connections = 0;
  uint64_t requests_served = 0;
  uint32_t requests_in_flight = 0;
  bool stats_pending = false;

  std::string outcome;  // how it ended during a shutdown, for the summary

  // Supervision.
  WorkerBoard* board = nullptr;              // shared page: the handler it is running, if any
  std::chrono::steady_clock::time_point last_heard{};  // its last message of any kind
  // Graceful replacement (max_requests, max_worker_rss): the new worker starts first; the old one
  // drains once the new one is ready.
  WorkerHandle* replacement = nullptr;  // on the old handle
  WorkerHandle* replaces = nullptr;     // on the new handle
  std::string replace_reason;

  WorkerHandle() = default;
  WorkerHandle(const WorkerHandle&) = delete;
  WorkerHandle& operator=(const WorkerHandle&) = delete;
  ~WorkerHandle() {
    if (channel_ev) event_free(channel_ev);
    if (channel_fd >= 0) ::close(channel_fd);
    if (respawn_timer) event_free(respawn_timer);
    WorkerBoard::destroy(board);
    // A replacement pair may be broken up (SIGTTOU took one away, a generation was retired):
    // the other side must not keep a pointer to this handle.
    if (replaces) replaces->replacement = nullptr;
    if (replacement) replacement->replaces = nullptr;
  }
};

inline const char* state_name(WorkerHandle::State s) {
  switch (s) {
    case WorkerHandle::State::Starting: return "starting";
    case WorkerHandle::State::Ready: return "ready";
    case WorkerHandle::State::Draining: return "draining";
    case WorkerHandle::State::Exited: return "exited";
  }
  return "?";
}

}  // namespace shoal
