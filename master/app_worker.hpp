// An [app] worker: a forked child that execs the operator's program and hands it the listening
// sockets and the lifecycle through systemd's protocol (sd_listen_fds(3), sd_notify(3)):
//   fds 3, 4, ... the listening sockets, in [server] listen order; LISTEN_FDS, LISTEN_PID (its own
//   pid), LISTEN_FDNAMES; nothing else inherited but stdin (/dev/null), stdout and stderr (pipes
//   into shoal's log).
//   SHOAL_CONTROL_FD, the fd after the sockets: a unix stream socket to the master, which writes
//   "drain_delay_ms=N\n" on it just before each drain signal (0 for a hand-over to a new
//   generation, [shutdown] drain_delay for a shutdown).
//   ready = "notify": NOTIFY_SOCKET names a datagram socket of its own; READY=1, STATUS=...,
//   WATCHDOG=1 (with WATCHDOG_USEC when [app] watchdog is set). ready = "fd": SHOAL_READY_FD
//   (the control fd) takes one line.
//   SHOAL_GENERATION, SHOAL_WORKER_INDEX, SHOAL_DRAIN_DELAY_MS, SHOAL_SHUTDOWN_TIMEOUT_MS,
//   SHOAL_IDLE_GRACE_MS shape its drain, which starts at [app] drain_signal.
// What the master does with the notifications and the output is in master.cpp; the decisions in
// the core (master/core/supervisor.cpp).
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"

namespace shoal {

// What one exec needs, all prepared before fork (the child only copies and execs).
struct AppExec {
  const Config* config = nullptr;  // with config->app set
  std::vector<int> listen_fds;     // the master's, in [server] listen order
  int cpu = -1;
  uint64_t generation = 0;
  int slot = 0;
  pid_t master_pid = 0;
  std::string notify_socket;  // "@..." (abstract) for ready = "notify", else empty
  int control_fd = -1;        // the app's end of the control socket pair
  int stdout_fd = -1, stderr_fd = -1;  // the write ends of the output pipes
};

// The environment the program gets: shoal's own, less what belongs to shoal's own supervisor
// (NOTIFY_SOCKET, LISTEN_*, WATCHDOG_*, SHOAL_*), plus [app] env, plus the protocol's variables
// (LISTEN_PID is `child_pid`). Pure, for the tests.
std::vector<std::string> app_environment(char** inherited, const AppExec& exec, pid_t child_pid);

// In the forked child: set up the process and exec the program. Returns only by _exit: 127 when
// the exec fails, kWorkerFatal (2) when the set-up does; the reason goes to stderr (the log).
[[noreturn]] void exec_app(const AppExec& exec);

// A datagram of sd_notify's "KEY=VALUE\n..." form, read into what shoal uses of it.
struct Notification {
  bool ready = false;
  bool watchdog = false;
  std::optional<std::string> status;
  std::vector<std::string> ignored;  // other assignments, by name (STOPPING, RELOADING, MAINPID ...)
};
Notification parse_notification(std::string_view datagram);

// A notify socket for one child: AF_UNIX datagram, abstract name, non-blocking, close-on-exec,
// SO_PASSCRED (each datagram says who sent it). -1 and err on failure; *name gets "@...".
int open_notify_socket(const std::string& unique, std::string* name, std::string& err);

// Reads one datagram and its sender's pid (0 if unknown). -1: nothing more (EAGAIN) or an error.
ssize_t recv_notification(int fd, char* buf, size_t size, pid_t* sender);

// Splits what a pipe gave into lines, each without its '\n'; keeps a trailing partial line in
// `partial` (cut at max_line bytes so a program that never writes '\n' cannot grow it unbounded).
std::vector<std::string> split_output(std::string& partial, std::string_view more, size_t max_line = 16384);

}  // namespace shoal
