#include "common/sys.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <string.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>

namespace shoal {

std::string errno_text(int err) {
  char buf[128];
  return std::string(strerror_r(err, buf, sizeof buf));
}

std::vector<int> allowed_cpus() {
  std::vector<int> cpus;
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) != 0) return cpus;
  for (int cpu = 0; cpu < CPU_SETSIZE; ++cpu)
    if (CPU_ISSET(cpu, &set)) cpus.push_back(cpu);
  return cpus;
}

std::string format_cpu_list(const std::vector<int>& cpus) {
  std::string out;
  for (size_t i = 0; i < cpus.size();) {
    size_t j = i;
    while (j + 1 < cpus.size() && cpus[j + 1] == cpus[j] + 1) ++j;
    if (!out.empty()) out += ',';
    out += std::to_string(cpus[i]);
    if (j > i) out += '-' + std::to_string(cpus[j]);
    i = j + 1;
  }
  return out;
}

bool set_cloexec(int fd) {
  int flags = fcntl(fd, F_GETFD);
  return flags >= 0 && fcntl(fd, F_SETFD, flags | FD_CLOEXEC) == 0;
}

void close_fds_except(const std::vector<int>& keep) {
  // Collect first, close after: closing while iterating would close the directory's own fd.
  std::vector<int> doomed;
  if (DIR* dir = opendir("/proc/self/fd")) {
    int own = dirfd(dir);
    while (dirent* entry = readdir(dir)) {
      char* end = nullptr;
      long fd = strtol(entry->d_name, &end, 10);
      if (*end != '\0' || end == entry->d_name || fd <= 2 || fd == own) continue;
      if (std::find(keep.begin(), keep.end(), static_cast<int>(fd)) == keep.end())
        doomed.push_back(static_cast<int>(fd));
    }
    closedir(dir);
  }
  for (int fd : doomed) close(fd);
}

bool switch_user(const std::string& user, uint32_t uid, uint32_t gid, std::string& err) {
  if (user.empty() || geteuid() != 0) return true;  // not root: nothing to give up (the master warned)
  if (uid == 0 && gid == 0) return true;            // user = "root", deliberately
  if (initgroups(user.c_str(), gid) != 0) {
    err = "initgroups(" + user + ") failed: " + errno_text(errno);
    return false;
  }
  if (setgid(gid) != 0 || setuid(uid) != 0) {
    err = "switching to user " + user + " (uid " + std::to_string(uid) + ", gid " + std::to_string(gid) +
          ") failed: " + errno_text(errno);
    return false;
  }
  if (uid != 0 && (setuid(0) == 0 || seteuid(0) == 0)) {
    err = "after switching to user " + user + ", root could be regained; refusing to serve";
    return false;
  }
  if (getuid() != uid || geteuid() != uid || getgid() != gid || getegid() != gid) {
    err = "after switching to user " + user + " the process still has other ids; refusing to serve";
    return false;
  }
  return true;
}

}  // namespace shoal
