// Failure points in the master's shell, for tests: before each fork, socketpair, send to a worker
// and bind, the shell asks whether to fail that call as the OS would. shoal itself never does:
// the definition here answers no, and only the tests' own binaries link one that answers from
// SHOAL_FAULTS (tests/support/fault_points.cpp), so the core's failure paths can be driven
// against a real master.
#pragma once

#include <cstdint>

namespace shoal {

enum class FaultPoint : uint8_t { Fork, Socketpair, Send, Bind };

// True: fail this call, with errno set as the failing syscall would set it.
bool fault_injected(FaultPoint point);

}  // namespace shoal
