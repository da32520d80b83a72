// `shoal reload | stop | upgrade | status [--json] [-c FILE]`: finds the running master through
// its control socket, asks, waits for the outcome, prints one line a person can act on, and
// exits with a code a deploy script can act on (see Outcome in master.hpp; 5 = no master found).
#pragma once

#include <string>

namespace shoal {

constexpr int kNoMasterFound = 5;

bool is_cli_command(const std::string& word);
int run_cli(const std::string& command, bool json, const std::string& config_path);

}  // namespace shoal
