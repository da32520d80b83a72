// Small helpers at the edge with the operating system, shared by master and worker.
#pragma once

#include <sched.h>
#include <sys/resource.h>

#include <cstdint>

#include <string>
#include <vector>

namespace shoal {

// strerror as a std::string, for "bind(127.0.0.1:8080) failed: Address already in use".
std::string errno_text(int err);

// The CPUs in this process's affinity mask, ascending.
std::vector<int> allowed_cpus();

// "0-3,6": the compact list form the kernel uses in /proc/PID/status.
std::string format_cpu_list(const std::vector<int>& cpus);

// User plus system time of a getrusage or wait4 report, in microseconds.
inline uint64_t cpu_microseconds(const rusage& usage) {
  return static_cast<uint64_t>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1'000'000 +
         static_cast<uint64_t>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec);
}

// Sets FD_CLOEXEC; returns false with errno set on failure.
bool set_cloexec(int fd);

// Closes every fd of this process except 0, 1, 2 and those in keep.
// Used right after fork so that a worker holds only what it was handed explicitly.
void close_fds_except(const std::vector<int>& keep);

// setgroups, setgid, setuid, in that order (each needs the privilege the next one gives up),
// then a check that root cannot be regained. Nothing to do when user is empty, the process is not
// root, or the target is root (uid and gid 0, said deliberately). False with err on failure.
bool switch_user(const std::string& user, uint32_t uid, uint32_t gid, std::string& err);

}  // namespace shoal
