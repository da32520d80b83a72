// systemd integration through libsystemd: readiness notification (Type=notify), the watchdog,
// and sockets passed by socket activation or by a previous master (LISTEN_FDS). Without
// NOTIFY_SOCKET or LISTEN_FDS every call here is a no-op.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "common/duration.hpp"

namespace shoal::systemd {

// Sends one notification ("READY=1", "RELOADING=1\nMONOTONIC_USEC=…", "STOPPING=1", …).
void notify(const std::string& state);

// "MONOTONIC_USEC=<now>", as RELOADING=1 needs it.
std::string monotonic_usec();

// Half the watchdog interval systemd expects pings at, if it expects any.
std::optional<Millis> watchdog_ping_interval();

struct InheritedSocket {
  int fd;
  std::string name;  // LISTEN_FDNAMES entry, or "unknown"
};

// Sockets passed to this process (LISTEN_PID must be ours), made close-on-exec; the LISTEN_*
// variables are removed from the environment so that children do not see them.
std::vector<InheritedSocket> inherited_sockets();

}  // namespace shoal::systemd
