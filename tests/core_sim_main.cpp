// ./build.sh sim N: N random seeds of the core's simulation; --seed S replays one.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "core_sim.hpp"

int main(int argc, char** argv) {
  if (argc >= 3 && strcmp(argv[1], "--seed") == 0) {
    bool trace = argc > 3 && strcmp(argv[3], "--trace") == 0;
    auto r = shoal::test::Simulation(strtoull(argv[2], nullptr, 10), trace).run();
    printf("%s\n", r.ok ? "ok" : r.failure.c_str());
    return r.ok ? 0 : 1;
  }
  long n = argc > 1 ? strtol(argv[1], nullptr, 10) : 1000;
  std::random_device random;
  int failed = 0;
  for (long i = 0; i < n; ++i) {
    uint64_t seed = (static_cast<uint64_t>(random()) << 32) | random();
    auto r = shoal::test::Simulation(seed).run();
    if (!r.ok) printf("%s\n", r.failure.c_str()), ++failed;
  }
  printf("%ld passed, %d failed\n", n - failed, failed);
  return failed ? 1 : 0;
}
