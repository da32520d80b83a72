// The test builds' failure points (master/faults.hpp), linked into fault_app only. SHOAL_FAULTS
// names which calls fail, counted per point from 1 in each master process:
//   SHOAL_FAULTS="fork=2-3,send=5,bind=1-"      calls 2 and 3 of fork, the 5th send, every bind
//   SHOAL_FAULTS="seed=42,fork~0.25"            each fork fails with probability 0.25, seeded
// A bad spec is reported on stderr and fails nothing.
#include <errno.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <string_view>

#include "master/faults.hpp"

namespace shoal {
namespace {

struct Rule {
  uint64_t first = 0, last = 0;  // calls first..last fail; 0 = none
  double probability = 0;
};

constexpr std::array<std::string_view, 4> kNames = {"fork", "socketpair", "send", "bind"};
constexpr std::array<int, 4> kErrno = {EAGAIN, EMFILE, EPIPE, EADDRINUSE};

struct Faults {
  std::array<Rule, 4> rules{};
  std::array<uint64_t, 4> calls{};
  std::mt19937_64 random{0};

  Faults() {
    const char* spec = getenv("SHOAL_FAULTS");
    if (!spec) return;
    std::string_view rest = spec;
    while (!rest.empty()) {
      size_t comma = rest.find(',');
      std::string item(rest.substr(0, comma));
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
      if (!parse(item)) fprintf(stderr, "SHOAL_FAULTS: cannot read '%s'; ignored\n", item.c_str());
    }
  }

  bool parse(const std::string& item) {
    size_t op = item.find_first_of("=~");
    if (op == std::string::npos) return false;
    std::string name = item.substr(0, op), value = item.substr(op + 1);
    char* end = nullptr;
    if (name == "seed" && item[op] == '=') {
      random.seed(strtoull(value.c_str(), &end, 10));
      return *end == 0;
    }
    for (size_t i = 0; i < kNames.size(); ++i) {
      if (name != kNames[i]) continue;
      Rule& rule = rules[i];
      if (item[op] == '~') {
        rule.probability = strtod(value.c_str(), &end);
        return *end == 0 && rule.probability >= 0 && rule.probability <= 1;
      }
      rule.first = strtoull(value.c_str(), &end, 10);
      if (*end == 0) return rule.last = rule.first, rule.first > 0;
      if (*end != '-') return false;
      rule.last = end[1] ? strtoull(end + 1, &end, 10) : UINT64_MAX;
      return *end == 0 && rule.first > 0 && rule.last >= rule.first;
    }
    return false;
  }

  bool fail(FaultPoint point) {
    size_t i = static_cast<size_t>(point);
    uint64_t call = ++calls[i];
    const Rule& rule = rules[i];
    bool fails = (rule.first && call >= rule.first && call <= rule.last) ||
                 (rule.probability > 0 && std::uniform_real_distribution<>(0, 1)(random) < rule.probability);
    if (!fails) return false;
    fprintf(stderr, "SHOAL_FAULTS: failing %.*s call %llu in pid %d\n", static_cast<int>(kNames[i].size()),
            kNames[i].data(), static_cast<unsigned long long>(call), static_cast<int>(getpid()));
    errno = kErrno[i];
    return true;
  }
};

}  // namespace

bool fault_injected(FaultPoint point) {
  static Faults faults;
  return faults.fail(point);
}

}  // namespace shoal
