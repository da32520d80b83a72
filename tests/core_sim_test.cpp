// The seeded simulation of the master's core (tests/core_sim.hpp), a fixed set of seeds in the
// suite: each episode draws its config, children, faults and input from its seed.
#include <gtest/gtest.h>

#include <chrono>

#include "core_sim.hpp"

namespace shoal::test {
namespace {

// Seeds first..last; two halves, so that the suite (two tests at a time) runs them side by side.
void run_episodes(uint64_t first, uint64_t last) {
  auto started = std::chrono::steady_clock::now();
  int steps = 0, forks = 0, kills = 0, commands = 0, early = 0, failures = 0;
  for (uint64_t seed = first; seed <= last; ++seed) {
    SimResult r = Simulation(seed).run();
    steps += r.steps, forks += r.forks, kills += r.kills, commands += r.commands, early += r.exited_in_safety;
    if (!r.ok && failures++ < 5) ADD_FAILURE() << r.failure;
  }
  auto took = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - started);
  const uint64_t episodes = last - first + 1;
  printf("simulation: %llu episodes in %lld ms: %d steps, %d forks, %d kills, %d commands, %d ended before the "
         "liveness phase, %d failed\n",
         static_cast<unsigned long long>(episodes), static_cast<long long>(took.count()), steps, forks, kills, commands,
         early, failures);
  EXPECT_EQ(failures, 0);
  EXPECT_GT(forks, static_cast<int>(episodes));  // the episodes did something
  EXPECT_GT(kills, 0);
}

TEST(CoreSimulation, SeedsOneToAThousandKeepEveryInvariantAndEndClean) { run_episodes(1, 1000); }
TEST(CoreSimulation, SeedsAThousandAndOneToTwoThousandKeepEveryInvariantAndEndClean) { run_episodes(1001, 2000); }

}  // namespace
}  // namespace shoal::test
