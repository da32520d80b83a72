// What a worker is doing right now, readable by the master even while the worker is stuck: one
// shared page per worker (MAP_SHARED | MAP_ANONYMOUS), mapped by the master before the fork.
// Only application handlers are recorded (built-in routes cannot hang), so the fixed-response
// hot path never touches it.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

namespace shoal {

struct WorkerBoard {
  std::atomic<int64_t> handler_since_ms{0};  // monotonic ms when the running handler began; 0 = none
  char request[240] = {};                    // "GET /path", cut to fit, NUL-terminated

  static WorkerBoard* create();  // nullptr if mmap fails (the worker then runs without one)
  static void destroy(WorkerBoard* board);

  // In the worker, around a handler call. Both sides read the same clock (CLOCK_MONOTONIC_COARSE, one
  // for every process), here and in describe().
  void enter(std::string_view method, std::string_view target);
  void leave() { handler_since_ms.store(0, std::memory_order_release); }

  // In the master: "GET /spin for 1200 ms", or "" when no handler is running.
  std::string describe() const;
};

}  // namespace shoal
