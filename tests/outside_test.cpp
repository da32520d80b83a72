// Strict clients none of us wrote, against the real binary: Debian's python3-h11 on every route
// of the demo config (server.toml) and every response shape, and varnishtest's VTC scripts
// (tests/vtc/) on framing and smuggling, byte for byte. Both packages are installed by
// ./build.sh; a missing one fails here, as it would on a fresh machine.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <regex>

#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;
using OutsideClients = ServerTest;

// The demo config as shipped, on an ephemeral port, its static root where the source tree has it.
std::string demo_config(const std::string& source_dir) {
  std::string text = read_file(source_dir + "/server.toml");
  text = std::regex_replace(text, std::regex(R"(listen = \["127.0.0.1:8080"\])"), R"(listen = ["127.0.0.1:0"])");
  text = std::regex_replace(text, std::regex(R"(root = "./public")"), "root = \"" + source_dir + "/public\"");
  text = std::regex_replace(text, std::regex(R"(\nuser = "nobody"\ngroup = "nogroup")"), "\n" + run_as_line());
  return text;
}

TEST_F(OutsideClients, H11AcceptsEveryResponseShapeOfTheDemoConfig) {
  ASSERT_EQ(access("/usr/bin/python3", X_OK), 0) << "/usr/bin/python3 is missing: ./build.sh installs python3";
  std::string config = demo_config(SHOAL_SOURCE_DIR);
  ASSERT_THAT(config, HasSubstr("listen = [\"127.0.0.1:0\"]"));
  std::string path = dir_.write("demo.toml", config);
  shoal_ = std::make_unique<ShoalProcess>(path, dir_.path() + "/shoal.log");
  ASSERT_TRUE(shoal_->wait_ready());
  int port = shoal_->wait_for_port();
  std::string output;
  int code = run_command({"/bin/sh", "-c", std::string("cd ") + SHOAL_SOURCE_DIR + " && /usr/bin/python3 " +
                                               "tests/outside/h11_check.py " + std::to_string(port) + " 2>&1"},
                         output, 60s);
  EXPECT_EQ(code, 0) << output;
  EXPECT_THAT(output, ::testing::ContainsRegex("h11_check: [0-9]+ exchanges ok"));
}

TEST_F(OutsideClients, VarnishtestScriptsOnFramingAndSmugglingPass) {
  ASSERT_EQ(access("/usr/bin/varnishtest", X_OK), 0) << "varnishtest is missing: ./build.sh installs varnish";
  start("workers = 1");
  std::vector<std::string> argv = {"/usr/bin/varnishtest", "-q", "-j", "1", "-D",
                                   "shoal=127.0.0.1:" + std::to_string(port_)};
  size_t scripts = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::string(SHOAL_SOURCE_DIR) + "/tests/vtc"))
    if (entry.path().extension() == ".vtc") argv.push_back(entry.path().string()), ++scripts;
  ASSERT_GE(scripts, 2u);
  std::string output;
  int code = run_command(argv, output, 60s);
  EXPECT_EQ(code, 0) << output;
}

}  // namespace
}  // namespace shoal::test
