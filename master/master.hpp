// The master process: binds the listening sockets, forks and supervises the workers, and turns
// signals into state transitions. See master/README.md for the invariants.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "master/worker_handle.hpp"
#include "worker/app.hpp"

namespace shoal {

class Master {
 public:
  // log_fd and access_log_fd (or -1) are open, close-on-exec, and handed to every worker.
  Master(Config config, const Application& app, int log_fd, int access_log_fd);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Runs until every worker is gone after a shutdown. Returns the process exit code:
  // 0 clean, 1 something failed (a bind, a straggler killed, a worker that failed to drain).
  int run();

 private:
  enum class State {
    Running,       // serving; dead workers are replaced
    ShuttingDown,  // workers told to drain (or stop); waiting for every one to exit
  };
  using Clock = std::chrono::steady_clock;

  bool bind_listeners();
  void close_listeners();
  bool write_pid_file();
  void remove_pid_file();

  void spawn(WorkerHandle& worker);
  void reap();
  void on_worker_exit(WorkerHandle& worker, int wait_status);
  void schedule_respawn(WorkerHandle& worker, bool died_young);
  void on_message(WorkerHandle& worker);
  static void on_channel_event(evutil_socket_t, short, void* handle);
  static void on_respawn_timer(evutil_socket_t, short, void* handle);
  void release_channel(WorkerHandle& worker);

  void on_signal(int signo);
  void shutdown(const char* why, Millis drain_delay);
  void quit(const char* why);
  void on_deadline();
  void maybe_finish();
  size_t live_workers() const;

  Config config_;
  const Application& app_;
  int log_fd_;
  int access_log_fd_;
  uint64_t generation_ = 1;

  event_base* base_ = nullptr;
  std::vector<event*> signal_events_;
  event* deadline_timer_ = nullptr;
  event* listener_close_timer_ = nullptr;

  std::vector<int> listen_fds_;
  std::vector<std::unique_ptr<WorkerHandle>> workers_;

  State state_ = State::Running;
  bool quitting_ = false;
  bool announced_ready_ = false;
  bool pid_file_written_ = false;
  int exit_code_ = 0;
  Clock::time_point started_at_;
  Clock::time_point shutdown_at_;
  Millis shutdown_timeout_{0};
};

}  // namespace shoal
