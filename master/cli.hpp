// `shoal reload | stop | upgrade | status [--json] [-c FILE]`: finds the running master through
// its control socket, asks, waits for the outcome, prints one line a person can act on, and
// exits with a code a deploy script can act on (see Outcome in master/core/vocabulary.hpp;
// 5 = no master found, 7 = no answer in time, 8 = not allowed to ask, 64 = bad usage).
#pragma once

#include <optional>
#include <string>

#include "common/config.hpp"

namespace shoal {

constexpr int kNoMasterFound = 5;
constexpr int kNoAnswerInTime = 7;
constexpr int kPermissionDenied = 8;  // the control socket is there, but not ours to open
constexpr int kBadUsage = 64;         // sysexits.h's EX_USAGE

bool is_cli_command(const std::string& word);

// How long `command` waits for the master's answer by default: as long as the master's own
// deadlines for it (from the config the command will act on), plus 5 s for reaping and replying.
Millis cli_wait_bound(const std::string& command, const Config& config);

// wait: --timeout DURATION, or nullopt for cli_wait_bound of the config at config_path.
int run_cli(const std::string& command, bool json, const std::string& config_path, std::optional<Millis> wait);

}  // namespace shoal
