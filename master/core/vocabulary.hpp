// The words the master's core and its shell speak: events in, actions out, time as a value.
// Nothing here touches the OS; see master/README.md for what each word means in each phase.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/channel.hpp"
#include "common/config.hpp"

namespace shoal::core {

// Milliseconds on a monotonic clock since an arbitrary origin: the shell passes steady_clock,
// the tests a fake clock that starts at zero.
using Time = std::chrono::milliseconds;
using Pid = int;

// A worker, named by value: the generation it belongs to, its slot (the worker index, which
// picks its CPU) and which incarnation of that slot it is. Never reused within one master.
struct WorkerKey {
  uint64_t generation = 0;
  int slot = 0;
  uint32_t incarnation = 0;
  auto operator<=>(const WorkerKey&) const = default;
};

// What a reload, upgrade or stop came to. exit_code() is the CLI's exit code for it.
enum class Outcome {
  Done,            // 0
  ConfigInvalid,   // 1: nothing changed
  StopUnclean,     // 1: the shutdown a `stop` waited for was not clean
  UnknownCommand,  // 1
  StartFailed,     // 2: the new generation or master failed to start; the old one serves
  NotReady,        // 3: not ready before the deadline; the old one serves
  Busy,            // 4: another reload or upgrade is in progress; nothing changed
  ShuttingDown,    // 6: the server is shutting down: the command is refused, or what it waited for abandoned
  ReopenFailed,    // 1: a log file could not be reopened, or a worker did not confirm in time
};
int exit_code(Outcome outcome);

enum class Level { Debug, Info, Warn, Error, Critical };

// ---------------------------------------------------------------- an upgrade in place
// `[server] upgrade = "in-place"`: the master re-executes itself as the new program and keeps its
// pid. What the old image knew of its children goes across the exec (Supervisor::takeover(),
// serialized by the shell), and the new image's core starts from it (Identity::takeover): every
// generation and worker as the old core left them, times given relative to the hand-over.
struct AdoptedWorker {
  WorkerKey key;
  Pid pid = -1;
  int cpu = -1;
  enum class State { Starting, Ready, Draining } state = State::Ready;
  MsgType told = MsgType::Ready;  // Ready: not told to go; Drain or Stop
  bool culled = false, killed = false;
  std::optional<WorkerKey> replaces;  // a graceful replacement under way: the incumbent
  std::string replace_reason;
  Time age{0}, ready_for{0};          // since its fork, since it was ready
  std::optional<Time> kill_in;        // its kill deadline, from the hand-over (negative: it was due)
  std::string kill_deadline;
};
struct AdoptedSlot {
  int slot = 0;
  uint32_t incarnations = 0;  // keys are never reused within one master, across the exec too
  int failures = 0;
  std::optional<Time> respawn_in;
};
struct AdoptedGeneration {
  uint64_t number = 0;
  std::shared_ptr<const Config> config;  // the config it was started with
  bool serving = false;                  // else draining
  bool failed = false;
  bool hurried = false;                  // its drain was cut short (max_draining_generations)
  int desired = 1;
  Time age{0};
  std::optional<Time> draining_for;
  std::vector<AdoptedSlot> slots;
};
struct Takeover {
  Pid pid = 0;               // the master's, which the exec keeps
  std::string from_version;  // the old program's
  uint64_t last_generation = 0;
  Time uptime{0}, busy_for{0};   // the master's, and the upgrade's so far
  std::vector<AdoptedGeneration> generations;
  std::vector<AdoptedWorker> workers;
  std::vector<uint64_t> replies;  // `upgrade` commands waiting for the outcome
  // `reload` commands answered once an old generation has drained (with this message).
  struct DrainWaiter {
    uint64_t generation = 0;
    std::string message;
    std::vector<uint64_t> replies;
  };
  std::vector<DrainWaiter> drain_waiters;
  // Every command whose connection crosses the exec.
  std::vector<uint64_t> connections() const {
    std::vector<uint64_t> ids = replies;
    for (const auto& w : drain_waiters) ids.insert(ids.end(), w.replies.begin(), w.replies.end());
    return ids;
  }
  // Set by the new image: it cannot use the config file (edited since the check): it supervises
  // the old generation and reports this as the upgrade's failure.
  std::string config_error;
};

// ---------------------------------------------------------------- events (the shell -> the core)

struct Boot {};  // the shell bound the sockets of the first config; start generation 1
struct SignalReceived { int signo; };
struct CommandReceived { uint64_t reply_id; std::string command; };
struct ConfigLoaded { std::shared_ptr<const Config> config; };
struct ConfigRejected { std::vector<std::string> errors; };  // each with file:line:column
struct GenerationPrepared { uint64_t generation; };  // its listeners bound, its access log open
struct GenerationPrepareFailed { uint64_t generation; std::string error; };
struct WorkerForked { WorkerKey key; Pid pid; };
struct WorkerForkFailed { WorkerKey key; std::string error; };  // socketpair or fork
struct WorkerMessage {
  WorkerKey key;
  MsgType type;
  uint32_t value = 0;
  uint64_t value2 = 0;
  std::string text;
};
// An [app] worker's notification (NOTIFY_SOCKET), other than READY=1 and WATCHDOG=1, which come
// as WorkerMessage Ready and Heartbeat: STATUS=..., for `shoal status`.
struct AppStatusReported { WorkerKey key; std::string status; };
struct SendFailed { WorkerKey key; MsgType type; };  // the channel is unusable
struct ChannelClosed { WorkerKey key; };
// A reaped child: exited with `code`, or killed by signal `code`.
struct ChildExited {
  Pid pid;
  bool exited;
  int code;
  bool core_dumped = false;
};
struct RssSampled { WorkerKey key; uint64_t bytes; };
struct WorkerProbed { WorkerKey key; std::string doing; std::string process_state; };
struct SuccessorStarted { Pid pid; std::string program; int sockets; };
struct SuccessorStartFailed { std::string error; };
struct SuccessorReady { std::string version; };
struct SuccessorConfigRejected { std::string error; };
struct SuccessorChannelClosed {};
struct PidFileWritten { bool ok; };
// The new program's `-t` on this config (CheckProgram): its exit code (0: it accepts the config
// and can adopt these workers) and what it printed.
struct ProgramChecked { int exit_code; std::string output; };
struct ExecFailed { std::string error; };  // the re-exec failed: this image runs on
struct PredecessorTold { bool ok; std::string error; };
// The master reopened its files (errors: those it could not) and sent them to `told`, each of which
// answers WorkerMessage Reopened once it took them.
struct LogsReopened { std::vector<WorkerKey> told; std::vector<std::string> errors; };
// The [[shutdown.server_hook]]s ran (the shell runs each with its timeout; all run, each logged
// by name): how many failed.
struct ServerHooksDone { size_t failures = 0; };
struct TimerFired {};  // only time passed (the shell's one timer, at next_deadline())

using Event = std::variant<Boot, SignalReceived, CommandReceived, ConfigLoaded, ConfigRejected, GenerationPrepared,
                           GenerationPrepareFailed, WorkerForked, WorkerForkFailed, WorkerMessage, AppStatusReported, SendFailed,
                           ChannelClosed, ChildExited, RssSampled, WorkerProbed, SuccessorStarted,
                           SuccessorStartFailed, SuccessorReady, SuccessorConfigRejected, SuccessorChannelClosed,
                           PidFileWritten, PredecessorTold, LogsReopened, ServerHooksDone, ProgramChecked, ExecFailed,
                           TimerFired>;

// ---------------------------------------------------------------- actions (the core -> the shell)

struct LoadConfig {};  // answer: ConfigLoaded or ConfigRejected
// Bind what the config lists and is not bound yet, open its access log. Answer:
// GenerationPrepared or GenerationPrepareFailed.
struct PrepareGeneration { uint64_t generation; std::shared_ptr<const Config> config; };
struct ReleaseGeneration { uint64_t generation; };  // its workers are gone: close its access log
// Close the listening sockets that none of these configs lists.
struct CloseUnusedListeners { std::vector<std::shared_ptr<const Config>> in_use; };
struct CloseListeners {};    // every listening socket: new connections are refused from now on
struct ReleaseListeners {};  // close without unlinking: a successor master holds the same sockets
// Answer: WorkerForked or WorkerForkFailed.
struct ForkWorker { WorkerKey key; int cpu; uint64_t max_requests; };
// Answer on failure only: SendFailed. Drain: value the drain delay, value2 the ms left until the
// worker's kill deadline, flags kDrainHurry when the drain is cut short (see MsgType::Drain).
struct SendToWorker {
  WorkerKey key;
  MsgType type;
  uint32_t value = 0;
  uint64_t value2 = 0;
  uint8_t flags = 0;
};
// signo to pid. For an [app] worker's drain signal, app_drain_delay is set: the shell first writes
// "drain_delay_ms=N" to its SHOAL_CONTROL_FD, N being 0 for a hand-over (reload, upgrade,
// replacement: the next generation already accepts on the same sockets) and [shutdown]
// drain_delay for a shutdown, so that the app knows whether to keep serving (readiness 503) first.
struct Kill {
  Pid pid;
  int signo;
  std::optional<Time> app_drain_delay = std::nullopt;
};
struct SampleRss { WorkerKey key; Pid pid; };     // answer: RssSampled
struct ProbeWorker { WorkerKey key; Pid pid; };   // answer: WorkerProbed
struct StartSuccessor { uint64_t first_generation; };  // answer: SuccessorStarted or SuccessorStartFailed
struct CloseSuccessorChannel {};
// An upgrade in place, first: run the program now at the executable's path with `-t` on this
// config and `--can-adopt` this channel protocol, in a child. Answer: ProgramChecked.
struct CheckProgram {};
// Then: once every answer is in, take takeover() and re-execute this process as that program.
// Answer on failure only: ExecFailed.
struct ExecInPlace {};
struct TellPredecessor {};  // answer: PredecessorTold
struct WritePidFile {};     // answer: PidFileWritten
struct StartControl {};     // accept commands on the control socket (once)
struct PauseControl {};     // stop accepting: a successor master takes the commands now
struct Reply { uint64_t reply_id; std::string json; };
struct Notify { std::string state; };  // to systemd
struct Log { Level level; std::string text; };
struct SetLogIdentity { uint64_t generation; };
struct SetLogLevel { std::string level; };
struct ReopenLogs { std::vector<WorkerKey> workers; };  // answer: LogsReopened
// Run config's [[shutdown.server_hook]]s, in file order, once, after the last worker exited. Answer: ServerHooksDone.
struct RunServerHooks { std::shared_ptr<const Config> config; };
struct Exit { int code; bool handed_over; };

using Action = std::variant<LoadConfig, PrepareGeneration, ReleaseGeneration, CloseUnusedListeners, CloseListeners,
                            ReleaseListeners, ForkWorker, SendToWorker, Kill, SampleRss, ProbeWorker, StartSuccessor,
                            CloseSuccessorChannel, CheckProgram, ExecInPlace, TellPredecessor, WritePidFile, StartControl, PauseControl, Reply,
                            Notify, Log, SetLogIdentity, SetLogLevel, ReopenLogs, RunServerHooks, Exit>;

// "SIGTERM", for logs.
std::string signal_name(int signo);

}  // namespace shoal::core
