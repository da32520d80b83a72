// What crosses the exec of an upgrade in place (`[server] upgrade = "in-place"`): the core's
// Takeover (every generation and worker, master/core/vocabulary.hpp) and the fds the new image
// takes over by number, which the exec keeps open. One JSON document in a memfd whose number is
// in SHOAL_TAKEOVER_FD; a generation's config travels as its effective TOML (`shoal -T`), so the
// new image supervises an old generation with the config it was started with.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "master/core/vocabulary.hpp"

namespace shoal {

struct Handover {
  uint32_t protocol = 0;  // the channel protocol the adopted workers speak (common/channel.hpp)
  core::Takeover takeover;
  std::vector<int> listeners;
  int control = -1;
  int metrics = -1;  // the metrics region (common/metrics.hpp), or -1
  struct WorkerFds {
    core::WorkerKey key;
    bool app = false;
    int channel = -1;  // shoal's own worker: its channel; an app: its NOTIFY_SOCKET (or -1)
    int control = -1, out = -1, err = -1;  // an app's SHOAL_CONTROL_FD and output pipes
  };
  std::vector<WorkerFds> workers;
  std::vector<std::pair<uint64_t, int>> replies;  // a command still owed its answer: reply id, its connection

  std::vector<int> all_fds() const;
};

std::string encode_handover(const Handover& handover);
// config_path anchors the configs' relative paths (they have none: they are effective configs).
// A generation whose config no longer parses gets `fallback` (the error is in *warnings).
std::optional<Handover> decode_handover(const std::string& text, const std::string& config_path,
                                        std::shared_ptr<const Config> fallback, std::vector<std::string>* warnings,
                                        std::string& err);

// The new image's side: reads and closes the memfd SHOAL_TAKEOVER_FD names, if it is set (and
// unsets it). nullopt and err empty: no upgrade in place started this process.
std::optional<std::string> take_handover_text(std::string& err);

}  // namespace shoal
