#include "common/scoreboard.hpp"

#include <sys/mman.h>
#include <time.h>

#include <algorithm>
#include <cstring>
#include <new>

namespace shoal {
namespace {

int64_t now_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

}  // namespace

WorkerBoard* WorkerBoard::create() {
  void* page = mmap(nullptr, sizeof(WorkerBoard), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (page == MAP_FAILED) return nullptr;
  return new (page) WorkerBoard();
}

void WorkerBoard::destroy(WorkerBoard* board) {
  if (!board) return;
  board->~WorkerBoard();
  munmap(board, sizeof(WorkerBoard));
}

void WorkerBoard::enter(std::string_view method, std::string_view target) {
  size_t m = std::min(method.size(), sizeof request - 2);
  memcpy(request, method.data(), m);
  request[m] = ' ';
  size_t t = std::min(target.size(), sizeof request - m - 2);
  memcpy(request + m + 1, target.data(), t);
  request[m + 1 + t] = '\0';
  handler_since_ms.store(now_ms(), std::memory_order_release);
}

std::string WorkerBoard::describe() const {
  int64_t since = handler_since_ms.load(std::memory_order_acquire);
  if (since == 0) return "";
  char copy[sizeof request];
  memcpy(copy, request, sizeof copy);
  copy[sizeof copy - 1] = '\0';
  return std::string(copy) + " for " + std::to_string(now_ms() - since) + " ms";
}

}  // namespace shoal
