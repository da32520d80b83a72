#include "master/app_worker.hpp"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>

#include "common/sys.hpp"

extern char** environ;

namespace shoal {
namespace {

constexpr int kFirstListenFd = 3;  // SD_LISTEN_FDS_START

bool belongs_to_supervisor(std::string_view entry) {
  for (std::string_view prefix : {"NOTIFY_SOCKET=", "LISTEN_", "WATCHDOG_", "SHOAL_"})
    if (entry.starts_with(prefix)) return true;
  return false;
}

// Says why the set-up failed on stderr (a pipe into shoal's log) and ends the child.
[[noreturn]] void fail(int code, const std::string& what) {
  std::string line = "shoal: " + what + "\n";
  (void)!::write(STDERR_FILENO, line.data(), line.size());
  _exit(code);
}

}  // namespace

std::vector<std::string> app_environment(char** inherited, const AppExec& exec, pid_t child_pid) {
  const AppConfig& app = *exec.config->app;
  std::vector<std::string> env;
  for (char** e = inherited; e && *e; ++e) {
    std::string_view entry(*e);
    if (belongs_to_supervisor(entry)) continue;
    auto eq = entry.find('=');
    std::string_view name = entry.substr(0, eq);
    bool replaced = std::any_of(app.env.begin(), app.env.end(), [&](const auto& kv) { return kv.first == name; });
    if (!replaced) env.emplace_back(entry);
  }
  for (const auto& [name, value] : app.env) env.push_back(name + "=" + value);
  std::string names;
  for (const ListenAddress& a : exec.config->server.listen) names += (names.empty() ? "" : ":") + a.name;
  env.push_back("LISTEN_FDS=" + std::to_string(exec.listen_fds.size()));
  env.push_back("LISTEN_PID=" + std::to_string(child_pid));
  env.push_back("LISTEN_FDNAMES=" + names);
  if (!exec.notify_socket.empty()) env.push_back("NOTIFY_SOCKET=" + exec.notify_socket);
  const std::string control = std::to_string(kFirstListenFd + static_cast<int>(exec.listen_fds.size()));
  if (exec.control_fd >= 0) env.push_back("SHOAL_CONTROL_FD=" + control);
  if (exec.control_fd >= 0 && app.ready == AppConfig::Ready::Fd) env.push_back("SHOAL_READY_FD=" + control);
  if (app.watchdog.count() > 0) {
    env.push_back("WATCHDOG_USEC=" + std::to_string(app.watchdog.count() * 1000));
    env.push_back("WATCHDOG_PID=" + std::to_string(child_pid));
  }
  env.push_back("SHOAL_GENERATION=" + std::to_string(exec.generation));
  env.push_back("SHOAL_WORKER_INDEX=" + std::to_string(exec.slot));
  env.push_back("SHOAL_DRAIN_DELAY_MS=" + std::to_string(exec.config->shutdown.drain_delay.count()));
  env.push_back("SHOAL_SHUTDOWN_TIMEOUT_MS=" + std::to_string(exec.config->shutdown.timeout.count()));
  env.push_back("SHOAL_IDLE_GRACE_MS=" + std::to_string(exec.config->shutdown.idle_grace.count()));
  env.push_back("SHOAL_DRAIN_SIGNAL=" + app.drain_signal_name);
  return env;
}

void exec_app(const AppExec& exec) {
  const AppConfig& app = *exec.config->app;
  // Exec keeps ignored signals ignored and the mask as it is: give the program a clean slate.
  for (int signo = 1; signo < NSIG; ++signo)
    if (signo != SIGKILL && signo != SIGSTOP) signal(signo, SIG_DFL);
  // Its own process group: a Ctrl+C at the terminal reaches the master, which drains the app
  // with its drain signal, rather than the app directly. If the master dies, the app is told.
  setpgid(0, 0);
  prctl(PR_SET_PDEATHSIG, app.drain_signal);
  if (getppid() != exec.master_pid) _exit(1);  // the master died before the line above

  // Output first, so that every later failure is logged.
  int devnull = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (devnull < 0 || dup2(devnull, STDIN_FILENO) < 0 || dup2(exec.stdout_fd, STDOUT_FILENO) < 0 ||
      dup2(exec.stderr_fd, STDERR_FILENO) < 0)
    _exit(2);

  // The sockets to 3, 4, ... and the control socket after them: first out of the way of the
  // targets (each copy close-on-exec), then onto them (dup2 clears close-on-exec on the target only).
  std::vector<int> wanted = exec.listen_fds;
  if (exec.control_fd >= 0) wanted.push_back(exec.control_fd);
  const int high = kFirstListenFd + static_cast<int>(wanted.size()) + 16;
  std::vector<int> moved;
  for (int fd : wanted) {
    int copy = fcntl(fd, F_DUPFD_CLOEXEC, high);
    if (copy < 0) fail(2, "cannot copy fd " + std::to_string(fd) + ": " + errno_text(errno));
    moved.push_back(copy);
  }
  for (size_t i = 0; i < moved.size(); ++i)
    if (dup2(moved[i], kFirstListenFd + static_cast<int>(i)) < 0) fail(2, "dup2 failed: " + errno_text(errno));
  // Nothing else is inherited, even an fd that someone forgot to open close-on-exec.
  const unsigned first_other = kFirstListenFd + static_cast<unsigned>(moved.size());
  if (syscall(SYS_close_range, first_other, ~0U, 0) != 0) {
    for (int fd = static_cast<int>(first_other); fd < 65536; ++fd) ::close(fd);
  }

  if (exec.cpu >= 0) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(exec.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
      fail(2, "sched_setaffinity(cpu " + std::to_string(exec.cpu) + ") failed: " + errno_text(errno));
  }
  const Config::Server& server = exec.config->server;
  std::string err;
  if (!switch_user(server.user, server.uid, server.gid, err)) fail(2, err);
  if (chdir(app.cwd.c_str()) != 0) fail(2, "[app] cwd: chdir(" + app.cwd + ") failed: " + errno_text(errno));

  std::vector<std::string> env = app_environment(environ, exec, getpid());
  std::vector<char*> envp, argv;
  for (auto& e : env) envp.push_back(e.data());
  envp.push_back(nullptr);
  std::vector<std::string> args = app.command;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, nullptr);
  execvpe(argv[0], argv.data(), envp.data());
  fail(127, "[app] command: cannot execute '" + args[0] + "': " + errno_text(errno) + " (cwd " + app.cwd + ")");
}

Notification parse_notification(std::string_view datagram) {
  Notification n;
  while (!datagram.empty()) {
    auto end = datagram.find('\n');
    std::string_view line = datagram.substr(0, end);
    datagram = end == std::string_view::npos ? std::string_view() : datagram.substr(end + 1);
    if (line.empty()) continue;
    auto eq = line.find('=');
    std::string_view key = line.substr(0, eq);
    std::string_view value = eq == std::string_view::npos ? std::string_view() : line.substr(eq + 1);
    if (key == "READY" && value == "1") n.ready = true;
    else if (key == "WATCHDOG" && value == "1") n.watchdog = true;
    else if (key == "STATUS") n.status = std::string(value);
    else n.ignored.emplace_back(key);
  }
  return n;
}

int open_notify_socket(const std::string& unique, std::string* name, std::string& err) {
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    err = "socket(AF_UNIX, SOCK_DGRAM) failed: " + errno_text(errno);
    return -1;
  }
  int on = 1;
  setsockopt(fd, SOL_SOCKET, SO_PASSCRED, &on, sizeof on);
  int rcvbuf = 64 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::string abstract = "shoal/notify/" + unique;
  if (abstract.size() + 1 > sizeof addr.sun_path) abstract.resize(sizeof addr.sun_path - 1);
  memcpy(addr.sun_path + 1, abstract.data(), abstract.size());  // sun_path[0] = '\0': the abstract namespace
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract.size());
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), len) != 0) {
    err = "bind(@" + abstract + ") failed: " + errno_text(errno);
    ::close(fd);
    return -1;
  }
  *name = "@" + abstract;
  return fd;
}

ssize_t recv_notification(int fd, char* buf, size_t size, pid_t* sender) {
  iovec iov{buf, size};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(ucred)) + CMSG_SPACE(sizeof(int) * 8)];
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC | MSG_TRUNC);
  if (n < 0) return -1;
  *sender = 0;
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level != SOL_SOCKET) continue;
    if (c->cmsg_type == SCM_CREDENTIALS) {
      ucred cred;
      memcpy(&cred, CMSG_DATA(c), sizeof cred);
      *sender = cred.pid;
    } else if (c->cmsg_type == SCM_RIGHTS) {  // sd_pid_notify_with_fds: shoal keeps no fd store
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int passed;
        memcpy(&passed, CMSG_DATA(c) + i * sizeof(int), sizeof passed);
        ::close(passed);
      }
    }
  }
  return std::min<ssize_t>(n, static_cast<ssize_t>(size));
}

std::vector<std::string> split_output(std::string& partial, std::string_view more, size_t max_line) {
  std::vector<std::string> lines;
  while (!more.empty()) {
    auto nl = more.find('\n');
    std::string_view piece = more.substr(0, nl);
    size_t room = max_line - std::min(max_line, partial.size());
    if (piece.size() > room) {  // too long for one line: emit what fits, go on with the rest
      partial.append(piece.substr(0, room));
      lines.push_back(std::move(partial));
      partial.clear();
      more.remove_prefix(room);
      continue;
    }
    partial.append(piece);
    if (nl == std::string_view::npos) break;
    if (!partial.empty() && partial.back() == '\r') partial.pop_back();
    lines.push_back(std::move(partial));
    partial.clear();
    more.remove_prefix(nl + 1);
  }
  return lines;
}

}  // namespace shoal
