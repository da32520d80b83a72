#include "support/shoal_process.hpp"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <sys/resource.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace shoal::test {

bool wait_until(const std::function<bool()>& condition, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (condition()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(5ms);
  }
}

TempDir::TempDir() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "shoal-test-XXXXXX").string();
  if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string TempDir::write(const std::string& name, const std::string& content) const {
  std::string full = path_ + "/" + name;
  std::filesystem::create_directories(std::filesystem::path(full).parent_path());
  std::ofstream(full, std::ios::binary) << content;
  return full;
}

namespace {

// fork + exec with stdout/stderr redirected, in `cwd` if given; the child leads its own process group.
pid_t spawn(const std::vector<std::string>& argv, const std::string& out_path, const std::string& cwd = "",
            const StartOptions& options = {}) {
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    if (!cwd.empty() && chdir(cwd.c_str()) != 0) _exit(126);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    dup2(null, 0);
    dup2(out, 1);
    dup2(out, 2);
    for (const std::string& assignment : options.env) putenv(const_cast<char*>(assignment.c_str()));
    if (options.max_open_files > 0) {
      rlimit limit{static_cast<rlim_t>(options.max_open_files), static_cast<rlim_t>(options.max_open_files)};
      if (setrlimit(RLIMIT_NOFILE, &limit) != 0) _exit(125);
    }
    int first_closed = 3;
    if (options.listen_fd >= 0) {
      // dup2 clears O_CLOEXEC so that it survives the exec; but dup2(3, 3) does nothing at all.
      if (options.listen_fd == 3) fcntl(3, F_SETFD, 0);
      else dup2(options.listen_fd, 3);
      setenv("LISTEN_FDS", "1", 1);
      setenv("LISTEN_PID", std::to_string(getpid()).c_str(), 1);
      first_closed = 4;
    }
    // shoal gets exactly stdin, stdout and stderr (and fd 3 if passed): any other fd is its own doing.
    close_range(static_cast<unsigned>(first_closed), ~0U, 0);
    execv(args[0], args.data());
    _exit(127);
  }
  if (pid > 0) setpgid(pid, pid);  // also from the parent: no race with an early killpg
  return pid;
}

}  // namespace

ShoalProcess::ShoalProcess(const std::string& config_path, const std::string& log_path, const std::string& binary,
                           const StartOptions& options)
    : log_path_(log_path) {
  // Workers orphaned by a killed master become our children (not init's, which may reap them
  // late), so that teardown can reap them at once and no test leaves a zombie behind.
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  // In the config's directory: the test's files are there, not wherever ctest runs.
  pid_ = spawn({binary, "-c", config_path}, log_path, std::filesystem::path(config_path).parent_path().string(), options);
}

Subprocess::Subprocess(const std::vector<std::string>& argv, const std::string& log_path, const std::string& cwd)
    : pid_(spawn(argv, log_path, cwd)), log_path_(log_path) {}

Subprocess::~Subprocess() {
  if (pid_ <= 0) return;
  killpg(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  wait_until([&] {
    while (waitpid(-pid_, nullptr, WNOHANG) > 0) {
    }
    return killpg(pid_, 0) != 0;
  }, 5s);
}

ShoalProcess::~ShoalProcess() {
  if (pid_ <= 0) return;
  // [app] workers run in process groups of their own (a terminal's Ctrl+C is the master's to
  // handle): those are killed one group each, the rest with the master's group.
  for (pid_t child : children_of(pid_))
    if (getpgid(child) == child) killpg(child, SIGKILL);
  killpg(pid_, SIGKILL);
  if (!reaped_) waitpid(pid_, nullptr, 0);
  // Workers are in the same group; none may outlive the test.
  wait_until([&] {
    while (waitpid(-pid_, nullptr, WNOHANG) > 0) {
    }
    return killpg(pid_, 0) != 0;
  }, 5s);
}

std::string ShoalProcess::log() const {
  std::ifstream in(log_path_);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::optional<std::string> ShoalProcess::wait_for_log(const std::string& regex, std::chrono::milliseconds timeout,
                                                      size_t occurrences) const {
  std::regex re(regex);
  std::optional<std::string> found;
  wait_until([&] {
    // Checked before reading the log, so that the log read after it is complete: a process that
    // has exited writes no more lines, and waiting longer would only delay the failure.
    siginfo_t info{};
    bool exited = reaped_ ||
                  (waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOHANG | WNOWAIT) == 0 && info.si_pid == pid_);
    std::string text = log();
    size_t seen = 0;
    for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator(); ++it) {
      if (++seen == occurrences) {
        found = it->size() > 1 ? (*it)[1].str() : (*it)[0].str();
        return true;
      }
    }
    return exited;
  }, timeout);
  return found;
}

int ShoalProcess::wait_for_port(std::chrono::milliseconds timeout) const {
  auto port = wait_for_log(R"(listening on http://127\.0\.0\.1:(\d+))", timeout);
  return port ? std::stoi(*port) : -1;
}

bool ShoalProcess::wait_ready(std::chrono::milliseconds timeout) const {
  // The master's line for a whole generation, not a single worker's "… of generation 1 ready in".
  return wait_for_log(R"(\] generation \d+ ready: \d+ worker)", timeout).has_value();
}

void ShoalProcess::signal(int signo) const { kill(pid_, signo); }

std::optional<ExitStatus> ShoalProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (reaped_) return std::nullopt;
  std::optional<ExitStatus> result;
  wait_until([&] {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return false;
    reaped_ = true;
    result = WIFEXITED(status) ? ExitStatus{true, WEXITSTATUS(status)} : ExitStatus{false, WTERMSIG(status)};
    return true;
  }, timeout);
  return result;
}

std::vector<std::string> ShoalProcess::unexpected_log_lines(const std::vector<std::string>& expected) const {
  std::vector<std::string> out;
  std::istringstream lines(log());
  std::string line;
  static const std::regex serious(R"(^\S+ (warning|error|critical) )");
  while (std::getline(lines, line)) {
    if (!std::regex_search(line, serious)) continue;
    bool allowed = false;
    for (const auto& pattern : expected) allowed = allowed || std::regex_search(line, std::regex(pattern));
    if (!allowed) out.push_back(line);
  }
  return out;
}

std::string run_as_line() {
  passwd* pw = getpwuid(geteuid());
  return std::string("user = \"") + (pw ? pw->pw_name : "root") + "\"\n";
}

std::string read_file(const std::string& path) {
  std::string text;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return text;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR))
    if (n > 0) text.append(buf, static_cast<size_t>(n));
  ::close(fd);
  return text;
}

std::vector<pid_t> children_of(pid_t parent) {
  std::vector<pid_t> out;
  DIR* dir = opendir("/proc");
  if (!dir) return out;
  while (dirent* entry = readdir(dir)) {
    char* end;
    long pid = strtol(entry->d_name, &end, 10);
    if (*end != '\0' || pid <= 0) continue;
    std::string text = read_file("/proc/" + std::string(entry->d_name) + "/stat");
    auto close_paren = text.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream rest(text.substr(close_paren + 2));
    char state;
    long ppid;
    if ((rest >> state >> ppid) && ppid == parent && state != 'Z') out.push_back(static_cast<pid_t>(pid));
  }
  closedir(dir);
  std::sort(out.begin(), out.end());
  return out;
}

std::string cpus_allowed_list(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Cpus_allowed_list:", 0) == 0) {
      auto value = line.substr(line.find(':') + 1);
      value.erase(0, value.find_first_not_of(" \t"));
      return value;
    }
  return "";
}

bool process_exists(pid_t pid) {
  std::string text = read_file("/proc/" + std::to_string(pid) + "/stat");
  auto close_paren = text.rfind(')');
  return close_paren != std::string::npos && text.size() > close_paren + 2 && text[close_paren + 2] != 'Z';
}

int run_command(const std::vector<std::string>& argv, std::string& output, std::chrono::milliseconds timeout) {
  TempDir dir;
  std::string out_path = dir.path() + "/out";
  pid_t pid = spawn(argv, out_path);
  int status = 0;
  bool done = wait_until([&] { return waitpid(pid, &status, WNOHANG) == pid; }, timeout);
  if (!done) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  output = read_file(out_path);
  return done && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace shoal::test
