// Drives the real shoal binary: a temporary directory with a config, the process in its own
// process group (so that teardown kills master and workers, pass or fail), its log, its pids.
// Every wait has a deadline; nothing sleeps for a fixed time.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <optional>
#include <regex>
#include <string>
#include <vector>

namespace shoal::test {

using namespace std::chrono_literals;

// Polls `condition` every few milliseconds until it holds or `timeout` passes.
bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout);

class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }
  std::string write(const std::string& name, const std::string& content) const;  // returns the full path

 private:
  std::string path_;
};

struct ExitStatus {
  bool exited = false;  // else killed by a signal
  int code = -1;        // exit code, or the signal number
};

struct StartOptions {
  std::vector<std::string> env;  // "NAME=value" added to the environment
  int listen_fd = -1;            // passed as fd 3 with LISTEN_FDS=1 and LISTEN_PID, as systemd does
  int max_open_files = 0;        // RLIMIT_NOFILE for shoal and its workers; 0 = inherited
};

class ShoalProcess {
 public:
  // Starts `BINARY -c config_path` with stdout and stderr going to log_path, in the config's directory.
  ShoalProcess(const std::string& config_path, const std::string& log_path, const std::string& binary = SHOAL_BINARY,
               const StartOptions& options = {});
  ~ShoalProcess();  // SIGKILLs the whole process group if still running, and reaps
  ShoalProcess(const ShoalProcess&) = delete;
  ShoalProcess& operator=(const ShoalProcess&) = delete;

  pid_t pid() const { return pid_; }
  std::string log() const;
  // Waits until a log line matches; returns the match's first group (or the whole line).
  std::optional<std::string> wait_for_log(const std::string& regex, std::chrono::milliseconds timeout = 10s,
                                          size_t occurrences = 1) const;
  // The port of the first "listening on http://127.0.0.1:PORT" line.
  int wait_for_port(std::chrono::milliseconds timeout = 10s) const;
  bool wait_ready(std::chrono::milliseconds timeout = 10s) const;  // the first generation is ready, every worker
  void signal(int signo) const;
  std::optional<ExitStatus> wait_exit(std::chrono::milliseconds timeout);
  bool running() const { return pid_ > 0 && !reaped_; }
  // Log lines at warning level or above that match none of `expected`.
  std::vector<std::string> unexpected_log_lines(const std::vector<std::string>& expected = {}) const;

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  std::string log_path_;
};

std::string read_file(const std::string& path);

// Another program a test drives (Prometheus): in its own process group, output to a log file,
// the group killed and reaped when the test ends, pass or fail.
class Subprocess {
 public:
  Subprocess(const std::vector<std::string>& argv, const std::string& log_path, const std::string& cwd = "");
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  pid_t pid() const { return pid_; }
  std::string log() const { return read_file(log_path_); }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// `user = "NAME"` and a newline, NAME being whoever runs the tests: shoal started as root refuses
// to run its workers as root unless the config says so, and the tests run as root in CI.
std::string run_as_line();

// Children of `parent` (from /proc/*/stat), ascending.
// A file's whole content ("" if it cannot be opened; what was read if reading fails, as it does
// with ESRCH for /proc/PID files of a process that exits meanwhile: never an exception).
std::string read_file(const std::string& path);
std::vector<pid_t> children_of(pid_t parent);
// "Cpus_allowed_list" of a process, as the kernel prints it ("0", "0-1").
std::string cpus_allowed_list(pid_t pid);
bool process_exists(pid_t pid);
// Runs a command, returns its exit code; stdout+stderr into `output`.
int run_command(const std::vector<std::string>& argv, std::string& output, std::chrono::milliseconds timeout = 10s);

}  // namespace shoal::test
