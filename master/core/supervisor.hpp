// The master's lifecycle as a pure state machine: step(event, now) -> actions. It holds every
// lifecycle decision and no I/O: no syscall, no clock, no libevent, no log sink. The shell
// (master/master.cpp) turns the OS into events and carries out the actions; the answer to an
// action comes back as an event before any new input (so nothing here is re-entrant).
//
// Every handler only records what happened; one reconcile pass, repeated until nothing changes,
// then compares the state with what it should be (promote a generation whose workers are all
// ready, respawn or cull toward the desired size, expire deadlines, collect what drained, finish).
// Deadlines are absolute times in the state, set once and only ever moved earlier.
#pragma once

#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "common/metrics.hpp"
#include "master/core/vocabulary.hpp"

namespace shoal::core {

enum class Phase {
  Booting,       // the first generation is starting; nothing serves yet
  Running,       // one generation serving
  Reloading,     // a new generation is being loaded or started beside the serving one
  Upgrading,     // a new master is starting on the same sockets
  ShuttingDown,  // everything drains (or stops); exit when no child is left
  Exited,        // Exit was emitted; every later event is ignored
};
const char* phase_name(Phase phase);

struct Timing {
  Time healthy_after{1000};   // a worker that lived this long after ready was healthy (no backoff)
  Time first_backoff{100};    // a slot that keeps dying at start: 100, 200, 400 ms ... apart
  Time max_backoff{10'000};
  Time stop_grace{1000};      // SIGQUIT or an abandoned start: how long before SIGKILL
  Time status_wait{300};      // how long `status` waits for the workers' figures
  Time upgrade_startup{2000}; // a new master's own start-up, on top of its workers' ready_timeout
  Time rss_every{250};        // how often max_worker_rss is checked
  Time reopen_wait{2000};     // how long `reopen` waits for the workers to confirm
};

struct Identity {
  Pid pid = 0;               // this master's
  std::string version;       // SHOAL_VERSION
  std::string config_path;
  bool has_predecessor = false;  // started by an upgrade: tell the old master once ready
  uint64_t first_generation = 1;
  // Re-executed by an upgrade in place: adopt these children, then start a generation of this
  // config beside them as a reload does.
  std::optional<Takeover> takeover;
};

class Supervisor {
 public:
  Supervisor(Identity identity, std::shared_ptr<const Config> config, uint64_t seed, Timing timing = {});

  // The one transition function.
  std::vector<Action> step(const Event& event, Time now);
  // When the core next needs TimerFired, if ever.
  std::optional<Time> next_deadline() const;

  // Read-only views, for the shell's status and for tests and the simulation's invariants.
  struct WorkerView {
    WorkerKey key;
    Pid pid;
    const char* state;
    bool culled;
    std::optional<Time> kill_at;
  };
  struct GenerationView {
    uint64_t number;
    const char* state;
    int desired;
    bool hurried;
    std::vector<WorkerView> workers;
    std::optional<Time> drain_started_at;
    Time shutdown_timeout;  // its config's [shutdown] timeout
  };
  Phase phase() const { return phase_; }
  std::vector<GenerationView> generations() const;
  std::optional<uint64_t> serving() const { return serving_; }
  std::optional<uint64_t> starting() const { return starting_; }
  bool control_started() const { return control_started_; }
  std::optional<Pid> successor_pid() const { return successor_pid_; }
  bool listeners_closed() const { return listeners_closed_; }
  // After ExecInPlace: what the new image adopts. Nothing once the exec is no longer due.
  std::optional<Takeover> takeover() const;
  // What this core counted since it started, for the metrics (the shell keeps the totals across
  // images and masters).
  struct Counts {
    uint64_t reloads[metrics::kOutcomes] = {}, upgrades[metrics::kOutcomes] = {};
    uint64_t restarts[metrics::kRestartReasons] = {};
    bool last_load_ok = true;  // the last reload (or the start) put its config into service
    std::optional<Time> last_load_at, last_success_at;
  };
  const Counts& counts() const { return counts_; }

 private:
  enum class WState { Forking, Starting, Ready, Draining, Exited };
  enum class GState { Preparing, Starting, Serving, Draining };
  static const char* wstate_name(WState s);
  static const char* gstate_name(GState s);

  struct Worker {
    WorkerKey key;
    int cpu = -1;
    WState state = WState::Forking;
    Pid pid = -1;
    Time forked_at{0}, ready_at{0}, last_heard{0};
    std::optional<Time> kill_at;  // set once; only moved earlier
    std::string kill_deadline;    // what kill_at is, for the log ("the 30s deadline")
    bool killed = false;          // SIGKILL sent
    bool culled = false;          // no longer counts toward its slot: SIGTTOU, replaced, or its generation retired
    bool counted = false;         // ready or draining when the shutdown began: its outcome sets the exit code
    MsgType told = MsgType::Ready;  // Drain or Stop once told (Ready: not told yet)
    std::optional<WorkerKey> replaces;  // a graceful replacement: the incumbent it takes over from
    std::string replace_reason;         // on the incumbent: why it wants replacing (empty: it does not)
    int restart = metrics::kCrash;      // why it is replaced when it dies, or is replaced (replace_reason)
    // From its messages:
    int reported_exit = -1, failed_hooks = 0;
    uint32_t in_flight = 0;
    int64_t oldest_age_ms = 0;
    std::string oldest_request;
    std::optional<Time> status_at;
    uint32_t connections = 0, requests_in_flight = 0;
    uint64_t requests_served = 0;
    bool stats_pending = false, probe_pending = false, rss_pending = false;
    std::string app_status;  // an [app] worker's last STATUS=
  };
  struct Slot {
    int failures = 0;                 // consecutive deaths at start-up: drives the backoff
    std::optional<Time> respawn_at;   // not before then
    uint32_t incarnations = 0;
  };
  struct Generation {
    uint64_t number = 0;
    std::shared_ptr<const Config> config;
    GState state = GState::Preparing;
    int desired = 1;
    bool failed = false;  // stopped after a failed start: never served
    bool hurried = false;  // its drain was cut short by [reload] max_draining_generations
    Time started_at{0};
    std::optional<Time> ready_deadline, drain_started_at;
    std::vector<Worker> workers;  // live ones (an exited worker is forgotten once recorded)
    std::map<int, Slot> slots;
  };
  struct ReloadRecord {
    uint64_t generation = 0;
    Outcome outcome = Outcome::Done;
    std::string message;
    Time at{0};
  };
  struct DrainWaiter {
    uint64_t old_generation;
    std::string message;
    std::vector<uint64_t> replies;
  };

  // handlers (record only; reconcile decides)
  void on(const Boot&);
  void on(const SignalReceived&);
  void on(const CommandReceived&);
  void on(const ConfigLoaded&);
  void on(const ConfigRejected&);
  void on(const GenerationPrepared&);
  void on(const GenerationPrepareFailed&);
  void on(const WorkerForked&);
  void on(const WorkerForkFailed&);
  void on(const WorkerMessage&);
  void on(const AppStatusReported&);
  void on(const SendFailed&);
  void on(const ChannelClosed&);
  void on(const ChildExited&);
  void on(const RssSampled&);
  void on(const WorkerProbed&);
  void on(const SuccessorStarted&);
  void on(const SuccessorStartFailed&);
  void on(const SuccessorReady&);
  void on(const SuccessorConfigRejected&);
  void on(const SuccessorChannelClosed&);
  void on(const PidFileWritten&);
  void on(const PredecessorTold&);
  void on(const LogsReopened&);
  void on(const ServerHooksDone&);
  void on(const ProgramChecked&);
  void on(const ExecFailed&);
  void on(const TimerFired&) {}
  void adopt(const Takeover& t);

  // commands and signals
  void reload(std::optional<uint64_t> reply);
  void upgrade(std::optional<uint64_t> reply);
  void status(uint64_t reply);
  void reopen(std::optional<uint64_t> reply);
  void change_size(int delta);
  void enter_shutdown(const std::string& why, Time drain_delay, std::optional<uint64_t> stop_reply);
  void quit(const std::string& why);

  // the reconcile pass and its parts; each returns true if it changed something
  void reconcile();
  bool promote();
  bool expire_deadlines();
  bool supervise_slots(Generation& g);
  bool collect();
  bool answer_status();
  bool answer_reopen();
  bool finish();

  // one function each
  void start_generation(std::shared_ptr<const Config> config);
  void fork_worker(Generation& g, int slot, std::optional<WorkerKey> replaces);
  void tell(Worker& w, MsgType how, Time drain_delay);  // drain or stop, with its signal fallback
  void bound_draining(const Config& serving);
  // What a draining generation still holds (its workers' last reported connections) and its
  // earliest kill deadline: for the log and `shoal status`.
  struct DrainFigures {
    size_t connections = 0;
    std::optional<Time> deadline;
  };
  DrainFigures drain_figures(const Generation& g) const;
  void set_kill_deadline(Worker& w, Time at, const std::string& what);
  void retire(Generation& g, MsgType how, Time drain_delay, Time kill_after, Time unready_grace);
  void fail_reload(const std::string& reason, Outcome outcome);
  void count_reload(Outcome outcome);  // the reload's end, or (in place) the upgrade's
  void count_upgrade(Outcome outcome);
  void fail_upgrade(const std::string& reason, Outcome outcome);
  void answer_waiters_abandoned(const std::string& why);
  void end_reload();
  void worker_exited(Generation& g, size_t index, const ChildExited& e);
  bool respawns(const Generation& g, const Worker& w) const;
  void became_ready(Generation& g, Worker& w, const std::string& how);
  static const AppConfig* app_of(const Generation& g) { return g.config->app ? &*g.config->app : nullptr; }
  // How long a ready worker may stay silent before it is probed and killed, if at all: [server]
  // heartbeat_timeout for shoal's workers, [app] watchdog (0: never) for an app's.
  static std::optional<Time> silence_limit(const Generation& g);
  // The serving generation's config, or the first one's before anything serves.
  std::shared_ptr<const Config> current_config();
  // When an [app] worker with ready = "delay" is taken for ready, if it is one.
  static std::optional<Time> assumed_ready_at(const Generation& g, const Worker& w);
  void failed_at_start(Generation& g, int slot);
  void kill_now(Worker& w, const std::string& why);
  void close_listeners();
  void sync_listeners();
  void reply(uint64_t id, Outcome outcome, const std::string& message);
  void log(Level level, std::string text);
  std::string status_json() const;
  std::string busy_reason() const;
  Time shutdown_deadline() const;

  Generation* generation(uint64_t number);
  Worker* worker(const WorkerKey& key, Generation** owner = nullptr);
  size_t live_workers() const;

  Identity identity_;
  std::shared_ptr<const Config> initial_config_;
  Timing timing_;
  std::mt19937_64 rng_;  // max_requests_jitter
  Time now_{0};
  Time started_at_{0};
  std::vector<Action> out_;

  Phase phase_ = Phase::Booting;
  std::vector<Generation> generations_;  // in number order
  std::optional<uint64_t> serving_, starting_;
  uint64_t last_generation_ = 0;
  bool reload_pending_ = false;          // SIGHUPs coalesced into one more reload
  bool loading_config_ = false;          // LoadConfig emitted, its answer not yet in
  std::vector<uint64_t> reload_replies_;
  std::vector<DrainWaiter> drain_waiters_;
  ReloadRecord last_reload_;
  Time busy_since_{0};

  // shutdown
  Time shutdown_at_{0};
  std::string shutdown_why_;  // what began the shutdown: a second Ctrl+C after a first one is a quit
  Time shutdown_timeout_{0};
  std::optional<Time> close_listeners_at_;
  bool listeners_closed_ = false;
  bool quitting_ = false;
  bool handed_over_ = false;
  bool unclean_ = false;
  std::vector<std::string> outcomes_;
  std::vector<uint64_t> stop_replies_;
  std::shared_ptr<const Config> final_config_;  // the serving one's when the shutdown began: its server hooks run
  enum class ServerHooks { NotRun, Running, Done } server_hooks_ = ServerHooks::NotRun;

  // status
  std::vector<uint64_t> status_replies_;
  std::optional<Time> status_deadline_;
  std::optional<Time> next_rss_at_;

  // reopen (SIGUSR1, `reopen`)
  std::vector<uint64_t> reopen_replies_;
  std::optional<Time> reopen_deadline_;  // a round is under way
  std::vector<WorkerKey> reopen_pending_;  // told, not confirmed yet
  size_t reopen_told_ = 0, reopen_confirmed_ = 0, reopen_gone_ = 0;
  bool reopen_files_done_ = false;  // LogsReopened came back
  std::vector<std::string> reopen_errors_;

  // upgrade, as the old master
  std::optional<Pid> successor_pid_;
  bool successor_starting_ = false;  // StartSuccessor emitted, no answer yet
  std::optional<Time> successor_deadline_;
  std::vector<uint64_t> upgrade_replies_;
  // upgrade in place, as the old image: the check runs, then the exec is due, then sent
  bool checking_program_ = false, exec_due_ = false, exec_sent_ = false;
  // as the new image, until its generation is ready (phase Reloading) or failed
  bool in_place_ = false;
  std::string from_version_;
  // as the new master
  bool told_predecessor_ = false;
  bool control_started_ = false;
  bool pid_file_ok_ = true;
  Counts counts_;
};

}  // namespace shoal::core
