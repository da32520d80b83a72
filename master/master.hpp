// The master process: binds the listening sockets, forks and supervises generations of workers,
// turns signals and control commands into state transitions, and hands everything over to a
// new binary on upgrade. See master/README.md for the invariants.
#pragma once

#include <event2/event.h>

#include <chrono>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/channel.hpp"
#include "common/config.hpp"
#include "master/control.hpp"
#include "master/generation.hpp"
#include "master/listeners.hpp"
#include "master/worker_handle.hpp"
#include "worker/app.hpp"

namespace shoal {

// What a reload or upgrade came to; also the CLI's exit code.
enum class Outcome : int {
  Done = 0,
  ConfigInvalid = 1,  // nothing changed
  StartFailed = 2,    // the new generation or master failed to start; the old one serves
  NotReady = 3,       // the new generation was not ready before the deadline; the old one serves
  Busy = 4,           // another reload or upgrade is in progress; nothing changed
};

class Master {
 public:
  // config was read from config_path (re-read on reload); argv re-executes this program on
  // upgrade. log_fd is open, close-on-exec, and handed to every worker.
  Master(std::string config_path, Config config, const Application& app, int log_fd, std::vector<std::string> argv);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Runs until every worker is gone after a shutdown (or a hand-over to a new master). Returns
  // the process exit code: 0 clean, 1 something failed.
  int run();

 private:
  enum class State {
    Running,       // one generation serving; dead workers are replaced
    Reloading,     // a new generation is starting beside the serving one
    Upgrading,     // a new master (the binary on disk) is starting on the same sockets
    ShuttingDown,  // every worker told to drain (or stop); waiting for all to exit
  };
  using Clock = std::chrono::steady_clock;

  struct ReloadRecord {
    uint64_t generation = 0;
    Outcome outcome = Outcome::Done;
    std::string message;
    Clock::time_point at{};
  };

  // generations
  Generation* start_generation(std::shared_ptr<const Config> config, std::string& err);
  void on_generation_ready(Generation& generation);
  void retire(Generation& generation, MsgType how, Millis drain_delay, Millis kill_after);
  void kill_stragglers(Generation& generation, const std::string& deadline);
  void retire_all(MsgType how, Millis drain_delay, Millis deadline);
  void collect_generations();

  // reload
  Outcome reload(std::optional<ControlReply> reply = std::nullopt);
  void fail_reload(const std::string& reason, Outcome outcome);
  void end_reload();
  std::optional<std::string> refused_change(const Config& running, const Config& next) const;
  std::string busy_reason() const;

  // upgrade
  Outcome upgrade(std::optional<ControlReply> reply = std::nullopt);
  void on_upgrade_message();
  void fail_upgrade(const std::string& reason, Outcome outcome);
  void hand_over(pid_t successor, const std::string& version);
  void tell_predecessor();

  // workers
  pid_t fork_child();
  bool spawn(WorkerHandle& worker);
  void reap();
  void on_worker_exit(WorkerHandle& worker, int wait_status);
  void schedule_respawn(WorkerHandle& worker, bool died_young);
  void replace_gracefully(WorkerHandle& old, const std::string& why);
  void retire_replaced(WorkerHandle& old, WorkerHandle& fresh);
  void supervise();
  void on_message(WorkerHandle& worker);
  void release_channel(WorkerHandle& worker);
  static void on_channel_event(evutil_socket_t, short, void* handle);
  static void on_respawn_timer(evutil_socket_t, short, void* handle);

  // signals, commands, shutdown
  void on_signal(int signo);
  void on_command(const std::string& command, ControlReply reply);
  void answer_status();
  std::string status_json() const;
  void reopen_logs();
  void add_worker();
  void remove_worker();
  void shutdown(const char* why, Millis drain_delay);
  void quit(const char* why);
  void maybe_finish();
  size_t live_workers() const;
  WorkerHandle* find_worker(pid_t pid);
  void notify(const std::string& state) const;

  bool check_pid_file();
  bool write_pid_file();
  void remove_pid_file();

  std::string config_path_;
  std::shared_ptr<const Config> initial_config_;
  const Application& app_;
  int log_fd_;
  std::vector<std::string> argv_;

  event_base* base_ = nullptr;
  std::vector<event*> signal_events_;
  event* deadline_timer_ = nullptr;
  event* listener_close_timer_ = nullptr;
  event* ready_timer_ = nullptr;
  event* deferred_reload_ = nullptr;
  event* collect_event_ = nullptr;
  event* watchdog_timer_ = nullptr;
  event* status_timer_ = nullptr;
  event* supervise_timer_ = nullptr;  // heartbeats and max_worker_rss
  std::mt19937_64 rng_{std::random_device{}()};  // max_requests_jitter

  ListenerSet listeners_;
  std::unique_ptr<ControlServer> control_;
  std::vector<std::unique_ptr<Generation>> generations_;
  Generation* serving_ = nullptr;
  Generation* starting_ = nullptr;
  uint64_t last_generation_ = 0;

  State state_ = State::Running;
  bool reload_pending_ = false;
  ReloadRecord last_reload_;
  Clock::time_point busy_since_;
  std::vector<ControlReply> reload_replies_;       // answered when the reload is decided
  struct DrainAnswer {
    uint64_t old_generation;
    std::string message;
    std::vector<ControlReply> replies;
  };
  std::vector<DrainAnswer> drain_answers_;         // "reload ok" replies wait for the old generation's drain
  std::vector<ControlReply> stop_replies_;
  std::vector<ControlReply> status_replies_;

  // Upgrade, as the old master:
  pid_t successor_pid_ = -1;
  int successor_channel_ = -1;
  event* successor_ev_ = nullptr;
  event* successor_timer_ = nullptr;
  std::vector<ControlReply> upgrade_replies_;
  bool handed_over_ = false;
  // Upgrade, as the new master: where to tell the old one that we are ready.
  int predecessor_fd_ = -1;

  bool pid_file_written_ = false;
  bool finished_ = false;  // the shutdown summary was logged and the loop told to exit
  int exit_code_ = 0;
  Clock::time_point started_at_;
  Clock::time_point shutdown_at_;
  Millis shutdown_timeout_{0};
};

}  // namespace shoal
