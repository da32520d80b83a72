#include "master/faults.hpp"

namespace shoal {

// Weak: a test binary's strong definition replaces it at link time.
__attribute__((weak)) bool fault_injected(FaultPoint) { return false; }

}  // namespace shoal
