// The master process's shell: the event loop, signals, channels and the control socket turned
// into events for the lifecycle core (master/core/supervisor.hpp), and the core's actions carried
// out: fork and reap, kill, bind and close, the successor's exec, the pid file, /proc probes.
// It decides nothing; see master/README.md for the invariants and the phase table.
#pragma once

#include <event2/event.h>

#include <deque>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "common/metrics.hpp"
#include "common/scoreboard.hpp"
#include "master/control.hpp"
#include "master/core/supervisor.hpp"
#include "master/listeners.hpp"
#include "master/takeover.hpp"
#include "worker/app.hpp"
#include "worker/hooks.hpp"

namespace shoal {

class Master {
 public:
  // config was read from config_path (re-read on reload); argv re-executes this program on
  // upgrade. log_fd is open, close-on-exec, and handed to every worker. handover: this process
  // is the new image of an upgrade in place, and adopts what it lists.
  Master(std::string config_path, Config config, const Application& app, int log_fd, std::vector<std::string> argv,
         std::optional<Handover> handover = std::nullopt);
  ~Master();
  Master(const Master&) = delete;
  Master& operator=(const Master&) = delete;

  // Runs until every worker is gone after a shutdown (or a hand-over to a new master). Returns
  // the process exit code: 0 clean, 1 something failed.
  int run();

 private:
  // What the shell holds for a generation the core prepared: its sockets and access log.
  struct GenerationFiles {
    std::shared_ptr<const Config> config;
    std::vector<int> listen_fds;  // the master's sockets its workers inherit (not owned)
    int access_log_fd = -1;       // owned
  };
  // What the shell holds for one forked worker.
  struct WorkerChannel {
    Master* master = nullptr;
    core::WorkerKey key;
    pid_t pid = -1;
    int fd = -1;
    event* ev = nullptr;
    WorkerBoard* board = nullptr;  // shared page: the handler it is running, if any
    int metrics_slot = -1;         // its counters' slot in the metrics region, if any
    // An [app] worker's instead of a channel: its NOTIFY_SOCKET (fd, ev above), its control
    // socket (SHOAL_CONTROL_FD, also SHOAL_READY_FD), and its stdout and stderr, logged line by line.
    bool app = false;
    int control_fd = -1;
    event* control_ev = nullptr;
    struct Output {
      int fd = -1;
      event* ev = nullptr;
      std::string partial;
    } output[2];
    ~WorkerChannel();
  };

  // The core's one way in: step it, carry out its actions, and feed their answers back (FIFO)
  // before any new input; then arm the one timer at the core's next deadline.
  void feed(core::Event event);
  void carry_out(const core::Action& action);
  core::Time now() const;

  // actions that take more than a line
  void prepare_generation(const core::PrepareGeneration& a);
  void fork_worker(const core::ForkWorker& a);
  void fork_app_worker(const core::ForkWorker& a, const GenerationFiles& files);
  void on_app_notify(WorkerChannel& worker);
  void on_app_control(WorkerChannel& worker);
  void signal_worker(const core::Kill& a);
  void on_app_output(WorkerChannel& worker, int stream, bool final);
  void send_to_worker(const core::SendToWorker& a);
  void probe_worker(const core::ProbeWorker& a);
  void start_successor(const core::StartSuccessor& a);
  void check_program();
  void exec_in_place();
  void adopt_handover();
  // The events of a worker's fds: its channel, or an app's notify socket, control socket (when
  // its ready line is still to come) and output.
  void watch_worker(WorkerChannel& worker, bool read_ready_line);
  void tell_predecessor();
  void reopen_logs(const core::ReopenLogs& a);
  void close_successor_channel();
  void run_server_hooks(const core::RunServerHooks& a);

  // inputs
  void reap();
  void on_worker_channel(WorkerChannel& worker);
  void on_successor_channel();
  pid_t fork_child();

  // The metrics region: mapped as handed over (an upgrade) or created, and this master's block in it.
  void open_metrics();
  void publish_metrics();

  bool check_pid_file();
  bool write_pid_file();
  void remove_pid_file();

  std::string config_path_;
  std::shared_ptr<const Config> initial_config_;
  const Application& app_;
  int log_fd_;
  std::vector<std::string> argv_;

  std::unique_ptr<core::Supervisor> core_;
  std::deque<core::Event> inbox_;  // answers to actions, stepped before any new input
  bool stepping_ = false;

  event_base* base_ = nullptr;
  std::vector<event*> signal_events_;
  event* timer_ = nullptr;
  event* watchdog_timer_ = nullptr;

  ListenerSet listeners_;
  std::unique_ptr<ControlServer> control_;
  std::map<uint64_t, ControlReply> replies_;
  uint64_t next_reply_ = 1;
  std::map<uint64_t, GenerationFiles> generations_;
  std::map<core::WorkerKey, std::unique_ptr<WorkerChannel>> workers_;
  std::map<pid_t, core::WorkerKey> by_pid_;

  // Upgrade, as the old master: the candidate's channel.
  pid_t successor_pid_ = -1;
  int successor_channel_ = -1;
  event* successor_ev_ = nullptr;
  // Upgrade, as the new master: where to tell the old one that we are ready.
  int predecessor_fd_ = -1;
  // Upgrade in place: the new program's -t running in a child, and what it prints; then the
  // exec, carried out once every answer is in. As the new image: what the old one handed over.
  pid_t check_pid_ = -1;
  int check_fd_ = -1;
  bool exec_due_ = false;
  std::optional<Handover> handover_;

  // [[shutdown.server_hook]]s, run once at the very end; their processes are reaped by the runner
  // (pidfd), not by reap(), while it runs.
  std::unique_ptr<HookRunner> server_hooks_;

  metrics::Shared metrics_;
  bool metrics_ok_ = false;
  metrics::Lifecycle metrics_life_;  // what publish_metrics() last built
  core::Time last_load_seen_{-1}, last_success_seen_{-1};

  bool pid_file_written_ = false;
  bool handed_over_ = false;
  int exit_code_ = 1;
};

}  // namespace shoal
