// The worker process: runs after fork, with its own event_base, serving HTTP on the listening
// sockets it inherited until the master tells it to drain or stop (or the master disappears).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <vector>

#include "common/config.hpp"
#include "common/metrics.hpp"
#include "worker/app.hpp"

namespace shoal {

// Exit codes a worker returns; the master reads them.
enum WorkerExit : int {
  kWorkerClean = 0,   // drained (or stopped) as asked
  kWorkerFailed = 1,  // something failed while draining
  kWorkerFatal = 2,   // could not set up at all (nothing to gain from an immediate respawn)
};

struct WorkerSpec {
  const Config* config = nullptr;
  const Application* app = nullptr;
  int index = 0;
  uint64_t generation = 1;
  int cpu = -1;                 // -1: not pinned
  std::vector<int> listen_fds;  // inherited from the master
  int channel_fd = -1;
  int log_fd = 2;
  int access_log_fd = -1;
  uint64_t max_requests = 0;     // this worker's own limit (max_requests plus its jitter); 0 = none
  struct WorkerBoard* board = nullptr;  // shared with the master; may be nullptr
  // [metrics]: this worker's counters and the region every scrape reads (inherited mapping).
  metrics::WorkerCounters* counters = nullptr;
  const metrics::Region* metrics = nullptr;
};

// Runs the worker to its end and returns its exit code. The caller _exit()s with it.
int run_worker(const WorkerSpec& spec);

}  // namespace shoal
