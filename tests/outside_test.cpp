// Strict clients none of us wrote, against the real binary: Debian's python3-h11 on every route
// of the demo config (server.toml) and every response shape, and varnishtest's VTC scripts
// (tests/vtc/) on framing and smuggling, byte for byte; and HAProxy and curl sending PROXY headers. Both packages are installed by
// ./build.sh; a missing one fails here, as it would on a fresh machine.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
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
  ASSERT_EQ(access("/usr/bin/python3", X_OK), 0) << "/usr/bin/python3 is missing: ./build.sh test installs python3";
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
  ASSERT_EQ(access("/usr/bin/varnishtest", X_OK), 0) << "varnishtest is missing: ./build.sh test installs varnish";
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

// A port nothing listens on now (bound to 0, read, closed): for HAProxy's frontend.
int unused_port() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&sin), sizeof sin);
  socklen_t len = sizeof sin;
  getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len);
  close(fd);
  return ntohs(sin.sin_port);
}

// Debian's HAProxy, daemonized with this config in dir, killed when the test ends.
struct Haproxy {
  std::string pid_file, output;
  bool started = false;
  Haproxy(const TempDir& dir, const std::string& config) : pid_file(dir.path() + "/haproxy.pid") {
    std::string path = dir.write("haproxy.cfg", config);
    started = run_command({"/usr/sbin/haproxy", "-f", path, "-p", pid_file, "-D"}, output, 10s) == 0;
  }
  ~Haproxy() {
    pid_t pid = 0;
    std::ifstream(pid_file) >> pid;
    if (pid > 0) kill(pid, SIGKILL);
  }
};

// Behind Debian's HAProxy with send-proxy (v1) and send-proxy-v2, each to a listener that
// expects that version: the access log shows the client's address (a client bound to
// 127.0.0.9), not HAProxy's, for every request of a keep-alive connection.
class BehindHaproxy : public ServerTest, public ::testing::WithParamInterface<const char*> {};

TEST_P(BehindHaproxy, TheAccessLogShowsTheClient) {
  ASSERT_EQ(access("/usr/sbin/haproxy", X_OK), 0) << "haproxy is missing: ./build.sh test installs it";
  std::string version = GetParam();  // "v1" or "v2"
  start("workers = 1", "[log]\naccess_log = \"access.log\"\n",
        "{ address = \"127.0.0.1:0\", proxy_protocol = \"" + version + "\" }");
  int shoal_port = port_;
  int lb_port = unused_port();
  Haproxy haproxy(dir_, "global\n    maxconn 100\ndefaults\n    mode http\n    timeout connect 1s\n"
                       "    timeout client 10s\n    timeout server 10s\nfrontend in\n    bind 127.0.0.1:" +
                           std::to_string(lb_port) + "\n    default_backend shoal\nbackend shoal\n"
                           "    server s1 127.0.0.1:" + std::to_string(shoal_port) +
                           (version == "v2" ? " send-proxy-v2\n" : " send-proxy\n"));
  ASSERT_TRUE(haproxy.started) << haproxy.output;

  Client client(lb_port, "127.0.0.9");
  ASSERT_TRUE(client.connected());
  constexpr int kRequests = 25;
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_TRUE(client.send(request("GET", "/hello")));
    auto r = client.read(1);
    ASSERT_EQ(r.size(), 1u) << i;
    EXPECT_EQ(r[0].status, 200);
  }
  std::string log;
  ASSERT_TRUE(wait_until([&] {
    log = read_file(dir_.path() + "/access.log");
    return occurrences(log, "GET /hello") >= kRequests;
  }, 5s)) << log;
  EXPECT_EQ(occurrences(log, "\n127.0.0.9 - - [") + log.starts_with("127.0.0.9 - - ["), static_cast<size_t>(kRequests)) << log;
  EXPECT_EQ(log.find("127.0.0.1 "), std::string::npos) << log;
}

INSTANTIATE_TEST_SUITE_P(OutsideClients, BehindHaproxy, ::testing::Values("v1", "v2"),
                         [](const auto& info) { return std::string("SendProxy") + info.param; });

// curl --haproxy-protocol sends a v1 header; without one, a v1 listener answers nothing.
TEST_F(OutsideClients, CurlsProxyV1HeaderIsAcceptedAndItsAbsenceIsNot) {
  ASSERT_EQ(access("/usr/bin/curl", X_OK), 0) << "curl is missing: ./build.sh test installs it";
  start("workers = 1", "", R"({ address = "127.0.0.1:0", proxy_protocol = "v1" })");
  std::string url = "http://127.0.0.1:" + std::to_string(port_) + "/hello", out;
  EXPECT_EQ(run_command({"/usr/bin/curl", "-sS", "--haproxy-protocol", url}, out, 10s), 0) << out;
  EXPECT_EQ(out, "ok\n");
  // No header: the connection closes without a byte; curl says "Empty reply from server" (52).
  EXPECT_EQ(run_command({"/usr/bin/curl", "-sS", url}, out, 10s), 52) << out;
  EXPECT_TRUE(shoal_->wait_for_log("closed the connection from 127.0.0.1:[0-9]+ without a response: no PROXY header", 5s));
}

// conf/haproxy.cfg's retry rules, as shipped (only its addresses, maxconn and its server
// timeout changed): a request to a backend that does not answer in time is retried only if it is safe
// to repeat. The access log counts what reached shoal: one POST, and the GET 1 + `retries` times.
TEST_F(OutsideClients, TheShippedHaproxyConfigNeverReplaysAPost) {
  ASSERT_EQ(access("/usr/sbin/haproxy", X_OK), 0) << "haproxy is missing: ./build.sh test installs it";
  // The backend takes 5 s, far past 4 attempts of 300 ms even on a loaded machine under ASan (with
  // 1 s, one such run had an attempt answered).
  start("workers = 1", "[log]\naccess_log = \"access.log\"\n" + slow_route("/slow", "5s"));
  int lb_port = unused_port(), stats_port = unused_port();
  std::string cfg = read_file(std::string(SHOAL_SOURCE_DIR) + "/conf/haproxy.cfg");
  ASSERT_THAT(cfg, HasSubstr("retry-on conn-failure empty-response response-timeout"));
  cfg = std::regex_replace(cfg, std::regex(R"(\n\s*stats socket [^\n]*)"), "");
  cfg = std::regex_replace(cfg, std::regex(R"(bind :80)"), "bind 127.0.0.1:" + std::to_string(lb_port));
  cfg = std::regex_replace(cfg, std::regex(R"(bind 127\.0\.0\.1:8404)"), "bind 127.0.0.1:" + std::to_string(stats_port));
  cfg = std::regex_replace(cfg, std::regex(R"(timeout server 30s)"), "timeout server 300ms");
  cfg = std::regex_replace(cfg, std::regex(R"(maxconn 20000)"), "maxconn 100");  // the tests' fd limit
  cfg = std::regex_replace(cfg, std::regex(R"(\n\s*server web1 [^\n]*)"), "\n    server web1 127.0.0.1:" + std::to_string(port_));
  cfg = std::regex_replace(cfg, std::regex(R"(\n\s*server web[23] [^\n]*)"), "");
  Haproxy haproxy(dir_, cfg);
  ASSERT_TRUE(haproxy.started) << haproxy.output << cfg;

  auto through_haproxy = [&](const std::string& bytes) {
    Client c(lb_port);
    EXPECT_TRUE(c.send(bytes));
    auto r = c.read(1, 10s);
    return r.empty() ? 0 : r[0].status;
  };
  EXPECT_EQ(through_haproxy("POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\ncharge=1"), 504);
  EXPECT_EQ(through_haproxy(request("GET", "/slow")), 504);
  std::string log;
  ASSERT_TRUE(wait_until([&] {
    log = read_file(dir_.path() + "/access.log");
    return occurrences(log, "\"GET /slow") >= 4;
  }, 20s)) << log;
  EXPECT_EQ(occurrences(log, "\"POST /slow"), 1u) << log;
  EXPECT_EQ(occurrences(log, "\"GET /slow"), 4u) << log;  // retries 3
}

}  // namespace
}  // namespace shoal::test
