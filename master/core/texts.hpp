// Every text the master's core logs, replies or sends to systemd, in one place: the integration
// tests and operators' scripts match these lines, so they change here or nowhere.
#pragma once

#include <concepts>
#include <cstdio>
#include <string>
#include <string_view>

#include "common/config.hpp"
#include "master/core/vocabulary.hpp"

namespace shoal::core::say {

inline void append(std::string& out, std::string_view s) { out += s; }
inline void append(std::string& out, const char* s) { out += s; }
inline void append(std::string& out, const std::string& s) { out += s; }
inline void append(std::string& out, char c) { out += c; }
template <std::integral I>
void append(std::string& out, I n) { out += std::to_string(n); }
inline void append(std::string& out, Time t) { out += std::to_string(t.count()); }

// cat("worker ", 3, " pid=", 42): the texts' one formatting tool.
template <typename... A>
std::string cat(const A&... parts) {
  std::string out;
  (append(out, parts), ...);
  return out;
}

inline std::string seconds(Time t) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f s", static_cast<double>(t.count()) / 1000.0);
  return buf;
}
inline std::string duration(Time t) { return format_duration(t); }

inline std::string cpu(int cpu) { return cpu >= 0 ? std::to_string(cpu) : "any"; }

inline std::string affinity(const Config& config) {
  switch (config.server.cpu_affinity) {
    case CpuAffinity::None: return "none";
    case CpuAffinity::Auto: return "auto (" + format_cpu_list(config.server.allowed_cpus) + ")";
    case CpuAffinity::List: return "[" + format_cpu_list(config.server.cpu_list) + "]";
  }
  return "?";
}

inline std::string exit_status(const ChildExited& e) {
  if (e.exited) return cat("exited with code ", e.code);
  return cat("was killed by ", signal_name(e.code), e.core_dumped ? " (core dumped)" : "");
}

inline std::string worker(int slot, Pid pid) { return cat("worker ", slot, " pid=", pid); }
inline std::string worker_of(int slot, Pid pid, uint64_t generation) {
  return cat(worker(slot, pid), " of generation ", generation);
}

// ---- generations
inline std::string starting_generation(uint64_t n, int workers, const Config& config) {
  return cat("starting generation ", n, ": ", workers, " worker(s), cpu_affinity ", affinity(config));
}
inline std::string generation_ready(uint64_t n, size_t workers, Time took) {
  return cat("generation ", n, " ready: ", workers, " worker(s) in ", took, " ms");
}
inline std::string serving_status(uint64_t n, size_t workers) {
  return cat("READY=1\nSTATUS=serving: generation ", n, ", ", workers, " worker(s)");
}
inline std::string generation_drained(uint64_t n, Time took) { return cat("generation ", n, " drained in ", took, " ms"); }
inline std::string cannot_prepare(uint64_t n, const std::string& error) {
  return cat("generation ", n, " cannot start: ", error);
}

// ---- workers
inline std::string spawned(int slot, Pid pid, int cpu_index, uint64_t generation) {
  return cat("spawned worker ", slot, " pid=", pid, " cpu=", cpu(cpu_index), " generation=", generation);
}
inline std::string app_started(int slot, Pid pid, const AppConfig& app) {
  std::string argv;
  for (const auto& arg : app.command) argv += (argv.empty() ? "" : " ") + arg;
  const char* ready = app.ready == AppConfig::Ready::Notify ? "when it sends READY=1 to NOTIFY_SOCKET"
                      : app.ready == AppConfig::Ready::Fd   ? "when it writes a line to SHOAL_READY_FD"
                                                            : "after ready_delay (a guess: it cannot say)";
  return cat(worker(slot, pid), " runs `", argv, "` in ", app.cwd, "; ready ", ready);
}
inline std::string app_told(int slot, Pid pid, const std::string& signal, bool drain) {
  return cat(worker(slot, pid), ": sent ", signal, drain ? " (drain)" : " (stop: it never reported ready)");
}
inline std::string assumed_ready(Time delay) {
  return cat(" (assumed: ready = \"delay\" takes it for ready after ", duration(delay), "; it did not say)");
}
inline std::string fork_failed(int slot, const std::string& error) { return cat("cannot start worker ", slot, ": ", error); }
inline std::string worker_ready(int slot, Pid pid, uint64_t generation, Time took) {
  return cat(worker_of(slot, pid, generation), " ready in ", took, " ms");
}
inline std::string worker_died(int slot, Pid pid, int cpu_index, const std::string& status, const char* was) {
  return cat(worker(slot, pid), " cpu=", cpu(cpu_index), " ", status, " while ", was, "; replacing it");
}
inline std::string backoff(int slot, int failures, Time delay) {
  return cat("worker ", slot, " failed at start-up ", failures, " time(s) in a row; next start in ", duration(delay));
}
inline std::string worker_ended(int slot, Pid pid, uint64_t generation, const std::string& status, bool killed) {
  return cat(worker_of(slot, pid, generation), " ", status, killed ? " (killed at the deadline)" : "");
}
inline std::string channel_unusable(int slot, Pid pid, int signo) {
  return cat(worker(slot, pid), ": channel unusable; sending ", signal_name(signo), " instead");
}
inline std::string still_running(int slot, Pid pid, uint64_t generation, const std::string& deadline,
                                 const std::string& detail) {
  return cat(worker_of(slot, pid, generation), " still running at ", deadline, " (", detail, "); sending SIGKILL");
}
inline std::string deadline_of(Time after) { return cat("the ", duration(after), " deadline"); }
inline std::string hurried_deadline(Time grace) {
  return cat("the stream_grace deadline (", duration(grace), ") of a drain cut short");
}
inline std::string hurried(uint64_t generation, Time draining_for, size_t connections, size_t would, size_t limit,
                           Time grace) {
  return cat("generation ", generation, " (draining for ", seconds(draining_for), ", ", connections,
             " connection(s)) is cut short: ", would, " generations would be draining, more than [reload] "
             "max_draining_generations (", limit, "); its streams end now and its workers are killed in ", duration(grace),
             " ([shutdown] stream_grace)");
}
inline std::string still_draining(uint64_t generation, Time draining_for, size_t connections, Time deadline_in) {
  return cat("generation ", generation, " still draining: for ", seconds(draining_for), ", ", connections,
             " connection(s), killed in ", seconds(deadline_in), " at the latest");
}
inline std::string not_ready_in_time(int slot, Pid pid, uint64_t generation, Time waited, Time limit) {
  return cat(worker_of(slot, pid, generation), " is not ready ", waited, " ms after its start (ready_timeout ",
             duration(limit), "); sending SIGKILL");
}
inline std::string app_silent(int slot, Pid pid, uint64_t generation, Time quiet, Time limit, const std::string& state) {
  return cat(worker_of(slot, pid, generation), " sent no WATCHDOG=1 for ", quiet, " ms ([app] watchdog ", duration(limit),
             ")", state.empty() ? "" : ", process state " + state, "; sending SIGKILL");
}
inline std::string silent(int slot, Pid pid, uint64_t generation, Time quiet, Time limit, const std::string& doing,
                          const std::string& state) {
  return cat(worker_of(slot, pid, generation), " sent no heartbeat for ", quiet, " ms (heartbeat_timeout ",
             duration(limit), "); ", doing.empty() ? "not inside a handler" : "stuck in " + doing,
             state.empty() ? "" : ", process state " + state, "; sending SIGKILL");
}
inline std::string wants_replacement(int slot, Pid pid, const std::string& why) {
  return cat(worker(slot, pid), " ", why, "; starting its replacement before it drains");
}
inline std::string replaced(int slot, Pid old_pid, Pid new_pid, const std::string& why) {
  return cat(worker(slot, old_pid), " replaced by pid=", new_pid, " (", why, "); pid=", old_pid, " drains");
}
inline std::string served_max(uint64_t n) { return cat("served ", n, " requests (max_requests)"); }
inline std::string above_rss(uint64_t rss, uint64_t limit) {
  return cat("uses ", rss >> 20, " MiB of memory, above max_worker_rss (", limit >> 20, " MiB)");
}
inline std::string unexpected_message(MsgType type, int slot) {
  return cat("unexpected message '", msg_name(type), "' from worker ", slot);
}

// ---- size
inline std::string added(int slot, int cpu_index, uint64_t generation, int size) {
  return cat("SIGTTIN: adding worker ", slot, " on CPU ", cpu_index, "; generation ", generation, " now has ", size,
             " worker(s)");
}
inline std::string removed(int slot, Pid pid, uint64_t generation, int size) {
  return cat("SIGTTOU: worker ", slot, pid > 0 ? cat(" pid=", pid) : std::string(" (not running)"),
             " drains and is not replaced; generation ", generation, " now has ", size, " worker(s)");
}
inline std::string fewest(uint64_t generation) {
  return cat("SIGTTOU ignored: generation ", generation, " has one worker, the fewest it can have");
}

// ---- reload
inline std::string reloading(const std::string& path) { return "reloading " + path; }
inline std::string reloading_notify(Time now) { return cat("RELOADING=1\nMONOTONIC_USEC=", now.count() * 1000); }
inline std::string reload_coalesced() { return "SIGHUP during a reload: one more reload will follow this one"; }
inline std::string reload_after_boot(uint64_t n) {
  return cat("SIGHUP while generation ", n, " starts: a reload will follow once it is ready");
}
inline std::string reload_refused(const std::string& why) { return "reload refused: " + why + "; nothing changed"; }
inline std::string reload_ok(uint64_t n, size_t workers, Time took) {
  return cat("reload ok: generation ", n, " ready (", workers, " workers, ", took, " ms)");
}
inline std::string reload_succeeded(uint64_t n, size_t workers, Time took, uint64_t old) {
  return cat("reload succeeded: generation ", n, " ready with ", workers, " worker(s) in ", took, " ms; generation ",
             old, " drains");
}
inline std::string reload_ok_drained(const std::string& message, uint64_t old, Time took) {
  return cat(message, "; generation ", old, " drained in ", seconds(took));
}
inline std::string reload_failed_reply(const std::string& reason, uint64_t serving) {
  return cat("reload failed: ", reason, "; generation ", serving, " still serving");
}
inline std::string reload_failed_log(const std::string& reason, uint64_t serving) {
  return cat("reload failed: ", reason, "; generation ", serving, " keeps serving");
}
inline std::string not_ready_within(uint64_t n, Time limit, size_t ready, size_t all) {
  return cat("generation ", n, " was not ready within ready_timeout ", duration(limit), " (", ready, " of ", all,
             " workers ready)");
}
inline std::string died_before_ready(int slot, Pid pid, uint64_t generation, const std::string& status) {
  return cat(worker_of(slot, pid, generation), " ", status, " before it was ready");
}
inline std::string cannot_fork_generation(uint64_t n, const std::string& error) {
  return cat("cannot fork the workers of generation ", n, ": ", error);
}
inline std::string reload_abandoned(const std::string& why, uint64_t n) {
  return cat("reload abandoned: the server is shutting down (", why, "); generation ", n, " stops");
}
inline std::string reload_abandoned_log(const std::string& why, uint64_t n) {
  return cat(why, ": the reload to generation ", n, " is abandoned; its workers stop");
}

// ---- upgrade
inline std::string upgrade_refused(const std::string& why) { return "upgrade refused: " + why + "; nothing changed"; }
inline std::string upgrading(const std::string& program, Pid pid, int sockets) {
  return cat("upgrading: started ", program, " as master ", pid, " on the same ", sockets, " socket(s)");
}
inline std::string upgrade_failed(const std::string& reason, Pid self) {
  return cat("upgrade failed: ", reason, "; master ", self, " keeps serving");
}
inline std::string successor_not_ready(Pid pid, Time limit) {
  return cat("the new master ", pid, " was not ready within ", duration(limit));
}
inline std::string successor_died(Pid pid, const ChildExited& e) {
  return cat("the new master ", pid, " ", exit_status(e), " before it was ready",
             e.exited && e.code == 127 ? " (exec failed)" : "");
}
inline std::string former_candidate(Pid pid, const ChildExited& e) {
  return cat("the former upgrade candidate, master ", pid, ", ", exit_status(e));
}
inline std::string upgrade_ok(Pid self, Pid successor, const std::string& version, const std::string& next_version) {
  return cat("upgrade ok: master ", self, " -> ", successor, ", shoal ", version, " -> ", next_version);
}
inline std::string upgrade_abandoned(const std::string& why, Pid successor) {
  return cat("upgrade abandoned: the server is shutting down (", why, "); the new master ", successor, " is stopped");
}
inline std::string took_over(bool pid_file_ok) {
  return cat("took over from the previous master", pid_file_ok ? "" : " (the pid file could not be written)");
}
// in place
inline std::string checking_program(const std::string& config) {
  return "upgrade in place: checking the new program with -t on " + config;
}
inline std::string program_check_failed(int code, const std::string& output) {
  return cat("the new program's check (-t) exited ", code, output.empty() ? "" : ": ", output);
}
inline std::string program_check_slow(Time limit) { return cat("the new program's check (-t) did not end within ", duration(limit)); }
inline std::string re_executing(Pid self) {
  return cat("upgrade in place: the new program accepts the config; re-executing as it (pid ", self, " stays)");
}
inline std::string exec_failed(const std::string& error) { return "the re-exec failed: " + error; }
inline std::string adopted(const std::string& from, uint64_t serving, size_t workers, size_t generations) {
  return cat("upgrade in place: took over from shoal ", from, ": generation ", serving, " serving, ", workers,
             " worker(s) in ", generations, " generation(s) adopted");
}
inline std::string in_place_ok(Pid self, const std::string& from, const std::string& to, uint64_t n, size_t workers,
                               Time took) {
  return cat("upgrade ok: master ", self, " in place, shoal ", from, " -> ", to, "; generation ", n, " ready (",
             workers, " workers, ", took, " ms)");
}
inline std::string in_place_failed(const std::string& reason, uint64_t serving, Pid self, const std::string& version) {
  return cat("upgrade failed: ", reason, "; generation ", serving, " serves on, supervised by master ", self,
             " now running shoal ", version);
}
inline std::string busy_in_place(Time since) { return cat("an upgrade in place is in progress (since ", seconds(since), ")"); }
inline std::string upgraded_status(Pid self, uint64_t n) {
  return cat("MAINPID=", self, "\nREADY=1\nSTATUS=serving: generation ", n, " (upgraded)");
}

// ---- shutdown
inline std::string graceful(const std::string& why, size_t workers, Time drain_delay, Time timeout) {
  return cat(why, ": graceful shutdown of ", workers, " worker(s); drain_delay ", duration(drain_delay), ", timeout ",
             duration(timeout));
}
inline std::string already_stopping(const std::string& why, Time left) {
  return cat(why, " received while shutting down; already in progress (", left, " ms left before the deadline)");
}
inline std::string stopping_now(const std::string& why, size_t workers) {
  return cat(why, ": stopping now, without draining (", workers, " worker(s))");
}
inline std::string summary(bool handed_over, bool clean, Time took, const std::string& outcomes) {
  return cat(handed_over ? "hand-over" : "shutdown", clean ? " clean" : " NOT clean", " in ", took, " ms: ",
             outcomes.empty() ? "no worker was running" : outcomes);
}
inline std::string stopped(Time took, int code) { return cat("stopped after ", took, " ms; exit code ", code); }
inline const char* listeners_closed() { return "master closed its listening sockets"; }

// ---- signals, commands, logs
inline std::string no_action(int signo) {
  return cat(signal_name(signo), " received: no action is defined for it; nothing changed");
}
inline std::string ignored_shutting_down(const char* what) { return cat(what, " ignored: shutting down"); }
inline std::string command(const std::string& c) { return "control command '" + c + "'"; }
inline std::string unknown_command(const std::string& c) {
  return "unknown command '" + c + "'; known: reload, stop, stop --now, upgrade, status, reopen";
}
inline std::string reopen_reply(size_t confirmed, size_t told, size_t gone, const std::vector<std::string>& errors) {
  std::string text = cat("reopen: the master reopened its log files; ", confirmed, " of ", told,
                         " worker(s) confirmed they took them");
  if (gone) text += cat(" (", gone, " exited meanwhile)");
  for (const auto& e : errors) text += "; " + e;
  return text;
}
inline std::string running_server_hooks(size_t count) {
  return cat("every worker is gone: running ", count, " server hook(s)");
}
inline std::string reopened(size_t told) {
  return cat("SIGUSR1: reopened the log files; ", told, " worker(s) told to do the same");
}
inline std::string status_summary(Pid self, size_t workers, uint64_t serving) {
  return cat("master ", self, ": ", workers, " worker(s), generation ", serving, " serving");
}

// ---- why a command is refused
inline std::string busy_reloading(uint64_t n, Time since) {
  return cat("a reload to generation ", n, " is in progress (since ", seconds(since), ")");
}
inline std::string busy_upgrading(Pid successor, Time since) {
  return cat("an upgrade to master ", successor, " is in progress (since ", seconds(since), ")");
}
inline std::string busy_shutting_down(Time since) { return cat("the server is shutting down (since ", seconds(since), ")"); }
inline std::string busy_booting(uint64_t n) { return cat("the server is still starting (generation ", n, " is not ready yet)"); }
inline std::string busy_candidate(Pid pid) {
  return cat("the previous upgrade candidate, master ", pid, ", has not exited yet");
}

}  // namespace shoal::core::say
