#include "common/log.hpp"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/base_sink.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <ctime>
#include <memory>

#include "common/sys.hpp"

namespace shoal::log {
namespace {

// One write(2) per line: lines from several processes appending to one file never interleave.
class FdSink final : public spdlog::sinks::base_sink<spdlog::details::null_mutex> {
 public:
  explicit FdSink(int fd) : fd_(fd) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    spdlog::memory_buf_t line;
    formatter_->format(msg, line);
    const char* p = line.data();
    size_t left = line.size();
    while (left > 0) {
      ssize_t n = ::write(fd_, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return report_failure(n < 0 ? errno : ENOSPC);
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  void flush_() override {}

 private:
  // The log's disk is full or the file unwritable: serving goes on, and stderr (the terminal,
  // the journal) hears of it, at most every 10 s, so that the operator learns lines are lost.
  void report_failure(int err) {
    ++lost_;
    if (fd_ == STDERR_FILENO) return;  // nowhere else to report it
    timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if (reported_ && now.tv_sec - last_report_s_ < 10) return;
    reported_ = true;
    last_report_s_ = now.tv_sec;
    char line[256];
    int len = snprintf(line, sizeof line,
                       "shoal[%d]: writing to the log failed: %s; %llu line(s) lost so far; still serving "
                       "(reported at most every 10 s)\n",
                       static_cast<int>(getpid()), strerror(err), static_cast<unsigned long long>(lost_));
    if (len > 0) (void)!::write(STDERR_FILENO, line, static_cast<size_t>(std::min<int>(len, sizeof line - 1)));
  }

  int fd_;
  uint64_t lost_ = 0;
  bool reported_ = false;
  time_t last_report_s_ = 0;
};

std::string current_pattern = "%v";
std::shared_ptr<spdlog::logger> output_logger;  // program_output's: the same fd, its own prefix  // of the default logger: the echo sink takes it too

std::string pattern_for(const Identity& who) {
  std::string prefix = who.worker_index >= 0
                           ? "worker " + std::to_string(who.worker_index)
                           : std::string(who.role);
  return "%Y-%m-%dT%H:%M:%S.%e%z %l [" + prefix + " pid=%P gen=" + std::to_string(who.generation) +
         "] %v";
}

void libevent_log(int severity, const char* msg) {
  switch (severity) {
    case EVENT_LOG_DEBUG: spdlog::debug("libevent: {}", msg); break;
    case EVENT_LOG_MSG: spdlog::info("libevent: {}", msg); break;
    case EVENT_LOG_WARN: spdlog::warn("libevent: {}", msg); break;
    default: spdlog::error("libevent: {}", msg); break;
  }
}

}  // namespace

bool parse_level(const std::string& name, spdlog::level::level_enum& out) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"critical", spdlog::level::critical},
      {"off", spdlog::level::off}};
  for (const auto& [text, level] : kLevels)
    if (name == text) return out = level, true;
  return false;
}

void setup(const Identity& who, spdlog::level::level_enum level, int fd) {
  auto logger = std::make_shared<spdlog::logger>("shoal", std::make_shared<FdSink>(fd));
  logger->set_level(level);
  current_pattern = pattern_for(who);
  logger->set_pattern(current_pattern);
  spdlog::set_default_logger(std::move(logger));
  output_logger = std::make_shared<spdlog::logger>("output", std::make_shared<FdSink>(fd));
  output_logger->set_pattern("%Y-%m-%dT%H:%M:%S.%e%z %l %v");
  output_logger->set_level(spdlog::level::info);
}

void program_output(const Identity& who, int pid, std::string_view line) {
  if (!output_logger) return;
  output_logger->info("[worker {} pid={} gen={}] {}", who.worker_index, pid, who.generation, line);
}

void echo_errors_to_stderr(bool on) {
  static std::shared_ptr<spdlog::sinks::sink> echo;
  auto& sinks = spdlog::default_logger()->sinks();
  if (on && !echo) {
    echo = std::make_shared<FdSink>(STDERR_FILENO);
    echo->set_level(spdlog::level::err);
    echo->set_pattern(current_pattern);
    sinks.push_back(echo);
  } else if (!on && echo) {
    sinks.erase(std::remove(sinks.begin(), sinks.end(), echo), sinks.end());
    echo.reset();
  }
}

void set_identity(const Identity& who) {
  current_pattern = pattern_for(who);
  spdlog::default_logger()->set_pattern(current_pattern);
}

int open_append(const std::string& path, std::string& err) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) err = "open(" + path + ") failed: " + errno_text(errno);
  return fd;
}

bool reopen_onto(const std::string& path, int fd, std::string& err) {
  int fresh = open_append(path, err);
  if (fresh < 0) return false;
  // dup3 keeps O_CLOEXEC on the target, which dup2 would clear.
  bool ok = dup3(fresh, fd, O_CLOEXEC) >= 0;
  if (!ok) err = "dup3 onto fd " + std::to_string(fd) + " failed: " + errno_text(errno);
  ::close(fresh);
  return ok;
}

void capture_libevent() { event_set_log_callback(libevent_log); }

}  // namespace shoal::log
