// The master process: binds the listening sockets, forks and supervises generations of workers,
// and turns signals into state transitions. See master/README.md for the invariants.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/channel.hpp"
#include "common/config.hpp"
#include "master/generation.hpp"
#include "master/listeners.hpp"
#include "master/worker_handle.hpp"
#include "worker/app.hpp"

namespace shoal {

class Master {
 public:
  // config was read from config_path (re-read on SIGHUP). log_fd is open, close-on-exec, and
  // handed to every worker.
  Master(std::string config_path, Config config, const Application& app, int log_fd);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Runs until every worker is gone after a shutdown. Returns the process exit code:
  // 0 clean, 1 something failed (a bind, a straggler killed, a worker that failed to drain).
  int run();

 private:
  enum class State {
    Running,       // one generation serving; dead workers are replaced
    Reloading,     // a new generation is starting beside the serving one
    ShuttingDown,  // every worker told to drain (or stop); waiting for all to exit
  };
  using Clock = std::chrono::steady_clock;

  struct ReloadRecord {
    uint64_t generation = 0;
    bool ok = false;
    std::string reason;
  };

  Generation* start_generation(std::shared_ptr<const Config> config, std::string& err);
  void on_generation_ready(Generation& generation);
  void retire(Generation& generation, MsgType how, Millis drain_delay, Millis kill_after);
  void kill_stragglers(Generation& generation, const std::string& deadline);
  void collect_generations();

  void reload();
  void fail_reload(const std::string& reason);
  void end_reload();
  std::optional<std::string> refused_change(const Config& running, const Config& next) const;

  bool spawn(WorkerHandle& worker);
  void reap();
  void on_worker_exit(WorkerHandle& worker, int wait_status);
  void schedule_respawn(WorkerHandle& worker, bool died_young);
  void on_message(WorkerHandle& worker);
  void release_channel(WorkerHandle& worker);
  static void on_channel_event(evutil_socket_t, short, void* handle);
  static void on_respawn_timer(evutil_socket_t, short, void* handle);

  void on_signal(int signo);
  void reopen_logs();
  void add_worker();
  void remove_worker();
  void shutdown(const char* why, Millis drain_delay);
  void quit(const char* why);
  void maybe_finish();
  size_t live_workers() const;
  WorkerHandle* find_worker(pid_t pid);

  bool write_pid_file();
  void remove_pid_file();

  std::string config_path_;
  std::shared_ptr<const Config> initial_config_;
  const Application& app_;
  int log_fd_;

  event_base* base_ = nullptr;
  std::vector<event*> signal_events_;
  event* deadline_timer_ = nullptr;
  event* listener_close_timer_ = nullptr;
  event* ready_timer_ = nullptr;
  event* deferred_reload_ = nullptr;
  event* collect_event_ = nullptr;

  ListenerSet listeners_;
  std::vector<std::unique_ptr<Generation>> generations_;
  Generation* serving_ = nullptr;
  Generation* starting_ = nullptr;
  uint64_t last_generation_ = 0;

  State state_ = State::Running;
  bool reload_pending_ = false;
  ReloadRecord last_reload_;
  Clock::time_point reload_started_at_;
  bool announced_ready_ = false;
  bool pid_file_written_ = false;
  int exit_code_ = 0;
  Clock::time_point started_at_;
  Clock::time_point shutdown_at_;
  Millis shutdown_timeout_{0};
};

}  // namespace shoal
