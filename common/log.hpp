// Logging for every process: spdlog's default logger, writing whole lines with write(2) to an fd
// that the process owns (stderr or a log file opened O_APPEND|O_CLOEXEC), so that the master and
// all of its workers can share one file without interleaving inside a line.
#pragma once

#include <spdlog/spdlog.h>

#include <cstdint>
#include <string>
#include <string_view>

namespace shoal::log {

// Who is speaking: every line carries the role, pid, worker index and generation.
struct Identity {
  const char* role = "master";  // "master" or "worker"
  int worker_index = -1;        // -1 for the master
  uint64_t generation = 0;
};

// Parses "trace".."off"; returns false for anything else.
bool parse_level(const std::string& name, spdlog::level::level_enum& out);

// Installs the default logger writing to fd (not owned). Call again after fork with the child's identity.
void setup(const Identity& who, spdlog::level::level_enum level, int fd);

// While a master starts with its log going to a file, errors are written to stderr too, so that a
// start that fails says why where the operator typed the command (as nginx's [emerg] does).
// Ends when the first generation is ready, and in every child at once (its fd 2 is not kept).
void echo_errors_to_stderr(bool on);

// Writes a line another program printed (an [app] worker's stdout or stderr) to the same log,
// under that worker's identity: "... info [worker 1 pid=4242 gen=3] <line>". Always at info, so
// that [log] level = "warn" still keeps what the app says (it has its own levels, in its text).
void program_output(const Identity& who, int pid, std::string_view line);

// Changes only the identity in the line prefix (a worker learns its index after fork).
void set_identity(const Identity& who);

// Opens path for appending, close-on-exec. Returns -1 and fills err on failure.
int open_append(const std::string& path, std::string& err);

// Reopens path for appending onto the same fd number (dup2), so that every holder of that number
// writes to the new file: what logrotate's "postrotate: kill -USR1" expects. False with err on failure.
bool reopen_onto(const std::string& path, int fd, std::string& err);

// Routes libevent's internal warnings into spdlog.
void capture_libevent();

}  // namespace shoal::log
