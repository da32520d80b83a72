// A generation: one set of workers started together from one config. A reload starts generation
// G+1 beside G; G drains only once every worker of G+1 has reported ready.
#pragma once

#include <event2/event.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "common/config.hpp"
#include "master/worker_handle.hpp"

namespace shoal {

struct Generation {
  enum class State {
    Starting,  // workers forked, not all ready yet
    Serving,   // the generation the master supervises (dead workers are replaced)
    Draining,  // told to drain (replaced by a newer one, or shutdown) or to stop (a failed start)
  };

  uint64_t number = 0;
  std::shared_ptr<const Config> config;
  std::vector<int> listen_fds;  // the master's sockets this generation's workers inherit
  int access_log_fd = -1;       // owned
  State state = State::Starting;
  std::chrono::steady_clock::time_point started_at{}, ready_at{}, drain_started_at{};
  std::vector<std::unique_ptr<WorkerHandle>> workers;
  event* kill_timer = nullptr;  // SIGKILL for stragglers once this generation drains too long
  Millis kill_after{0};

  ~Generation() {
    if (kill_timer) event_free(kill_timer);
    if (access_log_fd >= 0) ::close(access_log_fd);
  }

  size_t live() const {
    return static_cast<size_t>(std::count_if(workers.begin(), workers.end(), [](const auto& w) {
      return w->state != WorkerHandle::State::Exited;
    }));
  }
  // Workers that count towards the generation's size (not the ones SIGTTOU took away).
  size_t size() const {
    return static_cast<size_t>(std::count_if(workers.begin(), workers.end(), [](const auto& w) { return !w->removed; }));
  }
  bool all_ready() const {
    return std::all_of(workers.begin(), workers.end(),
                       [](const auto& w) { return w->state == WorkerHandle::State::Ready; });
  }
};

inline const char* state_name(Generation::State s) {
  switch (s) {
    case Generation::State::Starting: return "starting";
    case Generation::State::Serving: return "serving";
    case Generation::State::Draining: return "draining";
  }
  return "?";
}

}  // namespace shoal
