#include "common/systemd.hpp"

#include <stdlib.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "common/sys.hpp"

namespace shoal::systemd {

void notify(const std::string& state) { sd_notify(0, state.c_str()); }

std::string monotonic_usec() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return "MONOTONIC_USEC=" + std::to_string(uint64_t(ts.tv_sec) * 1'000'000 + uint64_t(ts.tv_nsec) / 1000);
}

std::optional<Millis> watchdog_ping_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return Millis(std::max<uint64_t>(usec / 2000, 1));
}

std::vector<InheritedSocket> inherited_sockets() {
  std::vector<InheritedSocket> out;
  char** names = nullptr;
  int n = sd_listen_fds_with_names(1, &names);
  for (int i = 0; i < n; ++i) {
    int fd = SD_LISTEN_FDS_START + i;
    set_cloexec(fd);
    out.push_back({fd, names && names[i] ? names[i] : "unknown"});
  }
  if (names) {
    for (int i = 0; i < n; ++i) free(names[i]);
    free(names);
  }
  return out;
}

}  // namespace shoal::systemd
