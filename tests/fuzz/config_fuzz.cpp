// libFuzzer target: arbitrary bytes as a config file. The loader must never crash, hang or throw;
// it either returns a config or errors that each name a line and column inside the text.
#include <spdlog/spdlog.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "common/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const bool quiet = (spdlog::set_level(spdlog::level::off), true);
  (void)quiet;
  std::string_view text(reinterpret_cast<const char*>(data), size);
  shoal::ConfigResult result = shoal::parse_config(text, "/tmp/shoal-fuzz/shoal.toml");
  if (result.config.has_value() == !result.errors.empty()) {
    fprintf(stderr, "invariant broken: a config and errors, or neither\n");
    abort();
  }
  for (const shoal::ConfigError& error : result.errors) {
    if (error.message.empty() || error.line < 0 || error.column < 0) {
      fprintf(stderr, "invariant broken: an error without a message or with a negative position\n");
      abort();
    }
  }
  return 0;
}
