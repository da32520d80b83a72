// Config parsing and validation: good files, each kind of error with its line and column,
// the unknown-key suggestion, and durations.
#include <gmock/gmock.h>
#include <filesystem>
#include <regex>
#include <gtest/gtest.h>

#include "common/config.hpp"
#include "common/duration.hpp"
#include "common/sys.hpp"
#include "master/cli.hpp"
#include "support/shoal_process.hpp"

namespace shoal {
namespace {

using ::testing::HasSubstr;

std::vector<std::string> error_lines(const ConfigResult& result) {
  std::vector<std::string> out;
  for (const auto& e : result.errors) out.push_back(e.to_string());
  return out;
}

ConfigResult parse(const std::string& text) { return parse_config(text, "/tmp/test.toml"); }

constexpr const char* kMinimal = "[server]\nlisten = [\"127.0.0.1:8080\"]\n";

TEST(Duration, ParsesUnitsAndSums) {
  EXPECT_EQ(parse_duration("250ms"), Millis(250));
  EXPECT_EQ(parse_duration("10s"), Millis(10'000));
  EXPECT_EQ(parse_duration("2m"), Millis(120'000));
  EXPECT_EQ(parse_duration("1h"), Millis(3'600'000));
  EXPECT_EQ(parse_duration("1m30s"), Millis(90'000));
  EXPECT_EQ(parse_duration("0s"), Millis(0));
}

TEST(Duration, RejectsWhatIsNotADuration) {
  for (const char* bad : {"", "10", "s", "1.5s", "-1s", "10 s", "5d", "ms", "1s2", "99999999999h"})
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
}

TEST(Duration, FormatsShortestExactForm) {
  EXPECT_EQ(format_duration(Millis(1500)), "1500ms");
  EXPECT_EQ(format_duration(Millis(2000)), "2s");
  EXPECT_EQ(format_duration(Millis(120'000)), "2m");
  EXPECT_EQ(format_duration(Millis(0)), "0s");
}

TEST(Config, MinimalFileGetsDocumentedDefaults) {
  auto result = parse(kMinimal);
  ASSERT_TRUE(result.config) << ::testing::PrintToString(error_lines(result));
  const Config& c = *result.config;
  EXPECT_EQ(c.server.backlog, 1024);
  EXPECT_TRUE(c.server.workers_auto);
  EXPECT_EQ(c.server.workers, static_cast<int>(allowed_cpus().size()));
  EXPECT_EQ(c.shutdown.timeout, Millis(30'000));
  EXPECT_EQ(c.shutdown.idle_grace, Millis(250));
  EXPECT_EQ(c.http.max_header_bytes, 16384u);
  EXPECT_EQ(c.http.max_body_bytes, 1048576u);
  EXPECT_EQ(c.http.keepalive_timeout, Millis(60'000));
  EXPECT_EQ(c.health.readiness_path, "/readyz");
  EXPECT_EQ(c.server.listen.at(0).kind, ListenAddress::Kind::Tcp4);
}

// Every error of a file that can be read says where: also those inside arrays and inline tables
// (whose nodes lost their position when a loop read a copy of them), and a missing [server].
TEST(Config, EveryErrorCarriesItsLineAndColumn) {
  const char* bad[] = {
      "[server]\nlisten = [\"127.0.0.1:99999\"]\n",
      "[server]\nlisten = [\"127.0.0.1:1\", 5]\n",
      "[server]\nlisten = [{ address = \"127.0.0.1:1\", name = \"a b\" }]\n",
      "[server]\nlisten = [\"127.0.0.1:1\"]\n[http]\ntrusted_proxies = [\"x\"]\n",
      "[server]\nlisten = [\"127.0.0.1:1\"]\n[[shutdown.hook]]\nname = \"a\"\ncommand = [\"x\", 3]\n",
      "[server]\nlisten = [\"127.0.0.1:1\"]\n[app]\ncommand = [\"x\", 3]\n",
      "[server]\nlisten = [\"127.0.0.1:1\"]\n[app]\ncommand = [\"x\"]\nenv = { A = 1 }\n",
      "[server]\nlisten = [\"127.0.0.1:1\"]\ncpu_affinity = [\"a\"]\n",
      "[http]\nmax_body_bytes = 10\n",
  };
  for (const char* text : bad) {
    auto result = parse(text);
    ASSERT_FALSE(result.errors.empty()) << text;
    for (const auto& e : result.errors) EXPECT_GT(e.line, 0) << e.to_string() << "\nin:\n" << text;
  }
  EXPECT_EQ(error_lines(parse("[http]\nmax_body_bytes = 10\n")).at(0),
            "/tmp/test.toml:1:1: [server] is missing: shoal needs at least [server] listen");
  auto dir = load_config_file("/tmp");
  ASSERT_EQ(dir.errors.size(), 1u);
  EXPECT_THAT(dir.errors[0].message, HasSubstr("is a directory, not a config file"));
}

// shoal -T prints the config as shoal uses it; that text is itself a config that reads back to the
// same (printing it again gives the same text), for every shipped file and one with every kind of key.
TEST(Config, TheEffectiveConfigReadsBackToItself) {
  std::vector<std::string> files;
  for (const char* file : {"server.toml", "conf/shoal.toml", "examples/node/shoal.toml", "examples/python/shoal.toml"})
    files.push_back(std::string(SHOAL_SOURCE_DIR) + "/" + file);
  for (const std::string& path : files) {
    auto first = load_config_file(path);
    ASSERT_TRUE(first.config) << path;
    std::string printed = effective_config(*first.config);
    auto again = parse_config(printed, path);
    ASSERT_TRUE(again.config) << path << ": " << ::testing::PrintToString(error_lines(again)) << "\n" << printed;
    EXPECT_EQ(effective_config(*again.config), printed) << path;
    EXPECT_EQ(again.config->server.workers, first.config->server.workers);
    EXPECT_EQ(again.config->routes.size(), first.config->routes.size());
  }
  auto odd = parse("[server]\nlisten = [{ address = \"127.0.0.1:0\", proxy_protocol = \"v2\", name = \"edge\" }]\n"
                   "cpu_affinity = [0]\n[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n");
  ASSERT_TRUE(odd.config) << ::testing::PrintToString(error_lines(odd));
  std::string printed = effective_config(*odd.config);
  EXPECT_THAT(printed, HasSubstr("proxy_protocol = 'v2'"));
  EXPECT_THAT(printed, HasSubstr("'10.0.0.0/8'"));
  auto again = parse_config(printed, "/tmp/test.toml");
  ASSERT_TRUE(again.config) << ::testing::PrintToString(error_lines(again)) << "\n" << printed;
  EXPECT_EQ(effective_config(*again.config), printed);
}

TEST(Config, MetricsGetAListenerOfTheirOwnAndAreOffUnlessSet) {
  auto off = parse(kMinimal);
  ASSERT_TRUE(off.config);
  EXPECT_EQ(off.config->metrics_listen(), nullptr);
  EXPECT_EQ(off.config->metrics.path, "/metrics");
  auto on = parse(std::string(kMinimal) + "[metrics]\nlisten = \"127.0.0.1:9180\"\npath = \"/m\"\n");
  ASSERT_TRUE(on.config) << ::testing::PrintToString(error_lines(on));
  ASSERT_NE(on.config->metrics_listen(), nullptr);
  EXPECT_EQ(on.config->metrics_listen()->text, "127.0.0.1:9180");
  EXPECT_EQ(on.config->server.listen.size(), 2u);  // bound, inherited and handed over with the others
  EXPECT_FALSE(on.config->server.listen[0].metrics);
  EXPECT_EQ(on.config->metrics.path, "/m");
  std::string printed = effective_config(*on.config);
  EXPECT_THAT(printed, HasSubstr("[metrics]\nlisten = '127.0.0.1:9180'\npath = '/m'"));
  auto again = parse_config(printed, "/tmp/test.toml");
  ASSERT_TRUE(again.config) << printed;
  EXPECT_EQ(effective_config(*again.config), printed);

  auto same = error_lines(parse(std::string(kMinimal) + "[metrics]\nlisten = \"127.0.0.1:8080\"\n"));
  ASSERT_EQ(same.size(), 1u);
  EXPECT_EQ(same[0], "/tmp/test.toml:4:10: [metrics] listen: \"127.0.0.1:8080\" is also in [server] listen: the "
                     "metrics need a listener of their own, which the public one must not be");
  EXPECT_THAT(error_lines(parse(std::string(kMinimal) + "[metrics]\npath = \"/m\"\n")).at(0),
              HasSubstr("/tmp/test.toml:3:1: [metrics] listen is missing"));
  EXPECT_THAT(error_lines(parse(std::string(kMinimal) + "[metrics]\nlisten = \"127.0.0.1:9180\"\npath = \"m\"\n")).at(0),
              HasSubstr("/tmp/test.toml:5:8: [metrics] path: \"m\" must start with '/'"));
  EXPECT_THAT(error_lines(parse(std::string(kMinimal) + "[metrics]\nlisten = \"nowhere\"\n")).at(0),
              HasSubstr("/tmp/test.toml:4:10: [metrics] listen: \"nowhere\""));
  EXPECT_THAT(error_lines(parse(std::string(kMinimal) + "[metrics]\nlisten = \"127.0.0.1:9180\"\nlisen = 1\n")).at(0),
              HasSubstr("unknown key 'lisen' in [metrics]; did you mean 'listen'?"));
  EXPECT_THAT(error_lines(parse(std::string(kMinimal) + "[app]\ncommand = [\"/bin/true\"]\n[metrics]\nlisten = \"127.0.0.1:9180\"\n")),
              testing::Contains(HasSubstr("[metrics] does not apply with [app]")));
}

// The shipped production files agree with each other: the config writes only where the unit lets
// it, logrotate rotates what it logs and reopens the master the unit runs, systemd waits longer
// than shoal's own deadline, and the unit's user is the config's.
TEST(Config, TheProductionConfigTheUnitAndLogrotateAgree) {
  auto slurp = [](const std::string& name) { return test::read_file(std::string(SHOAL_SOURCE_DIR) + "/conf/" + name); };
  std::string config_text = slurp("server.production.toml"), unit = slurp("shoal.service"), rotate = slurp("shoal.logrotate");
  ASSERT_FALSE(config_text.empty() || unit.empty() || rotate.empty());
  // Read it as it would be in place: /run/shoal and /var/log/shoal exist then.
  std::string root = std::filesystem::temp_directory_path() / ("shoal-prod-" + std::to_string(getpid()));
  std::filesystem::create_directories(root + "/run/shoal");
  std::filesystem::create_directories(root + "/var/log/shoal");
  std::string staged = std::regex_replace(config_text, std::regex("\"/(run|var/log)/shoal/"), "\"" + root + "/$1/shoal/");
  // The user shoal is made at install time; here, one that exists stands in for it.
  std::smatch user;
  ASSERT_TRUE(std::regex_search(config_text, user, std::regex(R"re(\nuser = "(\w+)")re")));
  const std::string config_user = user[1];
  staged = std::regex_replace(staged, std::regex(R"re(\nuser = "\w+")re"), "\nuser = \"nobody\"");
  auto result = parse_config(staged, root + "/etc/shoal/server.toml");
  std::filesystem::remove_all(root);
  ASSERT_TRUE(result.config) << ::testing::PrintToString(error_lines(result));
  const Config& c = *result.config;
  auto unstaged = [&](const std::string& path) { return path.substr(root.size()); };
  std::smatch m;
  ASSERT_TRUE(std::regex_search(unit, m, std::regex(R"(\nReadWritePaths=([^\n]+))")));
  std::string writable = m[1];
  for (const std::string& path : {c.server.control_socket, c.server.pid_file, c.log.file, c.log.access_log}) {
    std::string dir = std::filesystem::path(unstaged(path)).parent_path().string();
    EXPECT_THAT(writable, HasSubstr(dir)) << path;
  }
  for (const std::string& path : {c.log.file, c.log.access_log}) {
    EXPECT_EQ(std::filesystem::path(unstaged(path)).parent_path().string(), "/var/log/shoal") << path;
    EXPECT_TRUE(path.ends_with(".log")) << path;
  }
  EXPECT_THAT(rotate, HasSubstr("/var/log/shoal/*.log {"));
  EXPECT_THAT(unit, HasSubstr("\nExecStart=/usr/local/bin/shoal -c /etc/shoal/server.toml\n"));
  EXPECT_THAT(unit, HasSubstr("\nExecReload=/usr/local/bin/shoal reload -c /etc/shoal/server.toml\n"));
  EXPECT_THAT(rotate, HasSubstr("/usr/local/bin/shoal reopen -c /etc/shoal/server.toml"));
  EXPECT_THAT(unit, HasSubstr("\nUser=" + config_user + "\n"));
  ASSERT_TRUE(std::regex_search(unit, m, std::regex(R"(\nTimeoutStopSec=(\d+)s)")));
  EXPECT_GT(std::stoi(m[1]) * 1000, c.shutdown.timeout.count());
  EXPECT_EQ(unit.find("Documentation="), std::string::npos) << "it names a file nothing installs";
}

TEST(Config, ServerHooksAreReadApartFromEachWorkersHooks) {
  auto result = parse(std::string(kMinimal) +
                      "[[shutdown.hook]]\nname = \"pool\"\ncommand = [\"a\"]\n"
                      "[[shutdown.server_hook]]\nname = \"deregister\"\ncommand = [\"b\", \"--host\"]\ntimeout = \"3s\"\n"
                      "[[shutdown.server_hook]]\nname = \"pool\"\ncommand = [\"c\"]\n");  // its own namespace of names
  ASSERT_TRUE(result.config) << ::testing::PrintToString(error_lines(result));
  ASSERT_EQ(result.config->shutdown.hooks.size(), 1u);
  ASSERT_EQ(result.config->shutdown.server_hooks.size(), 2u);
  EXPECT_EQ(result.config->shutdown.server_hooks[0].name, "deregister");
  EXPECT_EQ(result.config->shutdown.server_hooks[0].timeout, Millis(3000));
  auto bad = error_lines(parse(std::string(kMinimal) + "[shutdown]\nserver_hook = \"x\"\n"));
  ASSERT_EQ(bad.size(), 1u);
  EXPECT_THAT(bad[0], HasSubstr(":4:15: [shutdown] server_hook must be written as [[shutdown.server_hook]] tables"));
  auto twice = error_lines(parse(std::string(kMinimal) + "[[shutdown.server_hook]]\nname = \"a\"\ncommand = [\"x\"]\n"
                                                          "[[shutdown.server_hook]]\nname = \"a\"\ncommand = [\"y\"]\n"));
  ASSERT_EQ(twice.size(), 1u);
  EXPECT_THAT(twice[0], HasSubstr("[[shutdown.server_hook]] at line 6: duplicate hook name 'a' (first declared at line 3)"));
}

TEST(Config, ShippedConfigsAreValid) {
  for (const char* file : {"server.toml", "conf/shoal.toml", "examples/node/shoal.toml", "examples/python/shoal.toml"}) {
    auto result = load_config_file(std::string(SHOAL_SOURCE_DIR) + "/" + file);
    EXPECT_TRUE(result.config) << file << ": " << ::testing::PrintToString(error_lines(result));
  }
}

TEST(Config, ReadsEveryKey) {
  auto result = parse(R"(
[server]
listen = ["127.0.0.1:0", "[::1]:0", "unix:/tmp/shoal-test.sock"]
backlog = 64
workers = 3
cpu_affinity = "none"
[shutdown]
drain_delay = "1s"
timeout = "5s"
idle_grace = "100ms"
[http]
max_header_bytes = 4096
max_url_bytes = 1024
max_header_fields = 20
max_chunk_ext_bytes = 0
max_body_bytes = 10
header_timeout = "2s"
keepalive_timeout = "3s"
max_connections = 7
[health]
liveness_path = "/live"
readiness_path = ""
[log]
level = "debug"
[[route]]
path = "/a"
status = 201
body = "x"
content_type = "text/x"
delay = "20ms"
[[route]]
path = "/e"
handler = "echo"
)");
  ASSERT_TRUE(result.config) << ::testing::PrintToString(error_lines(result));
  const Config& c = *result.config;
  ASSERT_EQ(c.server.listen.size(), 3u);
  EXPECT_EQ(c.server.listen[1].kind, ListenAddress::Kind::Tcp6);
  EXPECT_EQ(c.server.listen[2].unix_path, "/tmp/shoal-test.sock");
  EXPECT_EQ(c.server.workers, 3);
  EXPECT_EQ(c.http.max_header_fields, 20u);
  EXPECT_EQ(c.http.max_chunk_ext_bytes, 0u);
  EXPECT_EQ(c.server.cpu_affinity, CpuAffinity::None);
  EXPECT_EQ(c.cpu_for_worker(0), -1);
  EXPECT_EQ(c.shutdown.drain_delay, Millis(1000));
  EXPECT_EQ(c.http.max_connections, 7);
  EXPECT_EQ(c.health.readiness_path, "");
  ASSERT_EQ(c.routes.size(), 2u);
  EXPECT_EQ(c.routes[0].status, 201);
  EXPECT_EQ(c.routes[0].delay, Millis(20));
  EXPECT_EQ(c.routes[1].kind, RouteConfig::Kind::Echo);
}

TEST(Config, UnknownKeySuggestsTheClosestWithLineAndColumn) {
  auto result = parse("[server]\nlisten = [\"127.0.0.1:8080\"]\nwrokers = 2\n");
  ASSERT_FALSE(result.config);
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].to_string(),
            "/tmp/test.toml:3:1: unknown key 'wrokers' in [server]; did you mean 'workers'?");
}

TEST(Config, UnknownSectionSuggestsTheClosest) {
  auto result = parse(std::string(kMinimal) + "[shutdwn]\ntimeout = \"1s\"\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message, HasSubstr("did you mean 'shutdown'?"));
  EXPECT_EQ(result.errors[0].line, 3);
}

TEST(Config, FarFetchedKeyGetsNoSuggestion) {
  auto result = parse(std::string(kMinimal) + "[http]\ncompletely_else = 1\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].message, "unknown key 'completely_else' in [http]");
}

TEST(Config, SyntaxErrorHasLineAndColumn) {
  auto result = parse("[server]\nlisten = [\"127.0.0.1:8080\"\nbacklog = 5\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 3);
  EXPECT_GT(result.errors[0].column, 0);
  EXPECT_THAT(result.errors[0].message, HasSubstr("syntax error"));
}

TEST(Config, WrongTypesAndRangesAreReportedTogether) {
  auto result = parse(R"([server]
listen = ["127.0.0.1:8080"]
workers = "lots"
backlog = 0
[shutdown]
timeout = 30
drain_delay = "soon"
[http]
max_body_bytes = -1
)");
  ASSERT_FALSE(result.config);
  auto lines = error_lines(result);
  ASSERT_EQ(lines.size(), 5u) << ::testing::PrintToString(lines);
  EXPECT_THAT(lines[0], HasSubstr(":3:11: [server] workers: expected an integer from 1 to 1024 or \"auto\", got \"lots\""));
  EXPECT_THAT(lines[1], HasSubstr(":4:11: [server] backlog: 0 is out of range (1 to 65535)"));
  EXPECT_THAT(lines[2], HasSubstr(":6:11: [shutdown] timeout: expected a duration"));
  EXPECT_THAT(lines[3], HasSubstr(":7:15: [shutdown] drain_delay: expected a duration such as \"250ms\""));
  EXPECT_THAT(lines[4], HasSubstr(":9:18: [http] max_body_bytes: -1 is out of range"));
}

TEST(Config, UnusableListenAddresses) {
  auto result = parse(R"([server]
listen = ["127.0.0.1", "::1:80", "127.0.0.1:99999", "example.com:80", "unix:/no/such/dir/s.sock", "127.0.0.1:80", "127.0.0.1:80"]
)");
  auto lines = error_lines(result);
  ASSERT_EQ(lines.size(), 6u) << ::testing::PrintToString(lines);
  EXPECT_THAT(lines[0], HasSubstr("expected \"host:port\""));
  EXPECT_THAT(lines[1], HasSubstr("must be written in brackets"));
  EXPECT_THAT(lines[2], HasSubstr("port '99999' is not a number from 0 to 65535"));
  EXPECT_THAT(lines[3], HasSubstr("is not an IP address"));
  EXPECT_THAT(lines[4], HasSubstr("directory /no/such/dir does not exist"));
  EXPECT_THAT(lines[5], HasSubstr("is listed twice"));
}

TEST(Config, MissingListenIsAnError) {
  EXPECT_FALSE(parse("[server]\nworkers = 1\n").config);
  EXPECT_FALSE(parse("").config);
  EXPECT_FALSE(parse("[server]\nlisten = []\n").config);
}

TEST(Config, CpuAffinityListMustNameAllowedCpus) {
  auto cpus = allowed_cpus();
  auto ok = parse(std::string(kMinimal) + "workers = 3\ncpu_affinity = [" + std::to_string(cpus.back()) + "]\n");
  ASSERT_TRUE(ok.config);
  EXPECT_EQ(ok.config->cpu_for_worker(2), cpus.back());
  auto bad = parse(std::string(kMinimal) + "cpu_affinity = [4000]\n");
  ASSERT_EQ(bad.errors.size(), 1u);
  EXPECT_THAT(bad.errors[0].message, HasSubstr("CPU 4000 is not in this process's affinity mask"));
  EXPECT_EQ(bad.errors[0].line, 3);
}

TEST(Config, AutoAffinityIsRoundRobinOverAllowedCpus) {
  auto result = parse(std::string(kMinimal) + "workers = 5\n");
  ASSERT_TRUE(result.config);
  auto cpus = allowed_cpus();
  for (int i = 0; i < 5; ++i) EXPECT_EQ(result.config->cpu_for_worker(i), cpus[static_cast<size_t>(i) % cpus.size()]);
}

TEST(Config, DuplicateRoutePathsNameTheFirst) {
  auto result = parse(std::string(kMinimal) + R"([[route]]
path = "/a"
body = "1"
[[route]]
path = "/a"
body = "2"
[[route]]
path = "/healthz"
body = "3"
)");
  auto lines = error_lines(result);
  ASSERT_EQ(lines.size(), 2u) << ::testing::PrintToString(lines);
  EXPECT_THAT(lines[0], HasSubstr(":7:8: [[route]] \"/a\": duplicate route path (first declared at line 3)"));
  EXPECT_THAT(lines[1], HasSubstr("it is a [health] path"));
}

TEST(Config, RouteMistakes) {
  shoal::test::TempDir dir;
  auto result = parse_config(std::string(kMinimal) + R"([[route]]
path = "no-slash"
[[route]]
path = "/s/"
root = "missing-dir"
[[route]]
path = "/t"
root = "."
body = "x"
[[route]]
path = "/h"
handler = "php"
[[route]]
path = "/x"
status = 99
)", dir.path() + "/c.toml");
  EXPECT_FALSE(result.config);
  std::string all;
  for (const auto& line : error_lines(result)) all += line + "\n";
  EXPECT_THAT(all, HasSubstr("must start with '/'"));
  EXPECT_THAT(all, HasSubstr("\"missing-dir\" (" + dir.path() + "/missing-dir) is not a directory"));
  EXPECT_THAT(all, HasSubstr("a static route (root) takes no status, body"));
  EXPECT_THAT(all, HasSubstr("a static route's path is a prefix and must end with '/'"));
  EXPECT_THAT(all, HasSubstr("\"php\" is not a built-in handler"));
}

TEST(Config, RouteMustBeArrayOfTables) {
  auto result = parse(std::string(kMinimal) + "[route]\npath = \"/a\"\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message, HasSubstr("[[route]]"));
}

TEST(Config, RelativePathsAreRelativeToTheConfigFile) {
  shoal::test::TempDir dir;
  dir.write("www/index.html", "hi");
  auto result = parse_config(std::string(kMinimal) + "pid_file = \"run/shoal.pid\"\n[[route]]\npath = \"/w/\"\nroot = \"www\"\n",
                             dir.path() + "/c.toml");
  // run/ does not exist: the pid file cannot be written there.
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message, HasSubstr("directory " + dir.path() + "/run does not exist"));
  dir.write("run/.keep", "");
  result = parse_config(std::string(kMinimal) + "pid_file = \"run/shoal.pid\"\n[[route]]\npath = \"/w/\"\nroot = \"www\"\n",
                        dir.path() + "/c.toml");
  ASSERT_TRUE(result.config);
  EXPECT_EQ(result.config->server.pid_file, dir.path() + "/run/shoal.pid");
  EXPECT_EQ(result.config->routes[0].root, std::filesystem::canonical(dir.path() + "/www").string());
}

TEST(Config, LogLevelMustBeKnown) {
  auto result = parse(std::string(kMinimal) + "[log]\nlevel = \"loud\"\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message, HasSubstr("\"loud\" is not one of trace, debug"));
}

TEST(Config, HardeningKeysAreReadAndNamesResolved) {
  auto result = parse(std::string(kMinimal) +
                      "user = \"nobody\"\ngroup = \"nogroup\"\nheartbeat_timeout = \"2s\"\nmax_requests = 1000\n"
                      "max_requests_jitter = 50\nmax_worker_rss = 268435456\n[http]\nbody_timeout = \"5s\"\n"
                      "send_timeout = \"7s\"\n");
  ASSERT_TRUE(result.config) << ::testing::PrintToString(error_lines(result));
  const Config& c = *result.config;
  EXPECT_EQ(c.server.user, "nobody");
  EXPECT_EQ(c.server.uid, 65534u);
  EXPECT_EQ(c.server.gid, 65534u);
  EXPECT_EQ(c.server.heartbeat_timeout, Millis(2000));
  EXPECT_EQ(c.server.max_requests, 1000u);
  EXPECT_EQ(c.server.max_requests_jitter, 50u);
  EXPECT_EQ(c.server.max_worker_rss, 268435456u);
  EXPECT_EQ(c.http.body_timeout, Millis(5000));
  EXPECT_EQ(c.http.send_timeout, Millis(7000));
  // Defaults.
  auto plain = parse(kMinimal);
  ASSERT_TRUE(plain.config);
  EXPECT_EQ(plain.config->server.heartbeat_timeout, Millis(30'000));
  EXPECT_EQ(plain.config->server.max_requests, 0u);
  EXPECT_EQ(plain.config->http.body_timeout, Millis(60'000));
  EXPECT_EQ(plain.config->http.send_timeout, Millis(60'000));
}

TEST(Config, HardeningMistakesAreReportedWithTheirLine) {
  auto lines = error_lines(parse(std::string(kMinimal) +
                                 "user = \"no-such-user-here\"\nmax_requests_jitter = 5\nmax_worker_rss = 1000\n"
                                 "heartbeat_timeout = \"10ms\"\n"));
  ASSERT_EQ(lines.size(), 4u) << ::testing::PrintToString(lines);
  EXPECT_THAT(lines[0], HasSubstr(":3:8: [server] user: no user named 'no-such-user-here' on this system"));
  EXPECT_THAT(lines[1], HasSubstr(":4:23: [server] max_requests_jitter needs max_requests"));
  EXPECT_THAT(lines[2], HasSubstr(":5:18: [server] max_worker_rss: 1000 bytes is below 1 MiB"));
  EXPECT_THAT(lines[3], HasSubstr(":6:21: [server] heartbeat_timeout: 10ms is out of range"));
  auto group_alone = error_lines(parse(std::string(kMinimal) + "group = \"nogroup\"\n"));
  ASSERT_EQ(group_alone.size(), 1u);
  EXPECT_THAT(group_alone[0], HasSubstr("[server] group needs user"));
  auto bad_group = error_lines(parse(std::string(kMinimal) + "user = \"nobody\"\ngroup = \"no-such-group\"\n"));
  ASSERT_EQ(bad_group.size(), 1u);
  EXPECT_THAT(bad_group[0], HasSubstr(":4:9: [server] group: no group named 'no-such-group'"));
}

TEST(Config, MissingFileIsAClearError) {
  auto result = load_config_file("/nonexistent/shoal.toml");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].to_string(), "/nonexistent/shoal.toml: cannot open: No such file or directory");
}

TEST(Config, ClosestKey) {
  EXPECT_EQ(closest_key("wrokers", {"listen", "workers", "backlog"}), "workers");
  EXPECT_EQ(closest_key("timout", {"timeout", "drain_delay"}), "timeout");
  EXPECT_EQ(closest_key("zzz", {"timeout", "drain_delay"}), "");
}

}  // namespace
}  // namespace shoal

namespace shoal {
namespace {

TEST(ConfigHooks, ReadsShutdownHooksInFileOrder) {
  auto result = parse(std::string(kMinimal) + R"([shutdown]
timeout = "30s"
[[shutdown.hook]]
name = "close-db"
command = ["/usr/bin/close", "--now"]
timeout = "2s"
[[shutdown.hook]]
name = "flush"
command = ["flush"]
)");
  ASSERT_TRUE(result.config) << ::testing::PrintToString(error_lines(result));
  const auto& hooks = result.config->shutdown.hooks;
  ASSERT_EQ(hooks.size(), 2u);
  EXPECT_EQ(hooks[0].name, "close-db");
  EXPECT_EQ(hooks[0].command, (std::vector<std::string>{"/usr/bin/close", "--now"}));
  EXPECT_EQ(hooks[0].timeout, Millis(2000));
  EXPECT_EQ(hooks[1].timeout, Millis(5000));  // the default
}

TEST(ConfigHooks, HookMistakesAreReported) {
  auto result = parse(std::string(kMinimal) + R"([shutdown]
timeout = "30s"
[[shutdown.hook]]
command = []
[[shutdown.hook]]
name = "a"
command = ["x", 3]
[[shutdown.hook]]
name = "a"
command = ["y"]
tiemout = "1s"
)");
  std::string all;
  for (const auto& line : error_lines(result)) all += line + "\n";
  EXPECT_THAT(all, HasSubstr("name is missing"));
  EXPECT_THAT(all, HasSubstr("command: expected a non-empty array of strings"));
  EXPECT_THAT(all, HasSubstr("command: expected a string, got an integer"));
  EXPECT_THAT(all, HasSubstr("duplicate hook name 'a' (first declared at line 7)"));
  EXPECT_THAT(all, HasSubstr("unknown key 'tiemout' in [[shutdown.hook]] at line 10; did you mean 'timeout'?"));
}

TEST(ConfigHooks, HooksMustFitInTheShutdownTimeout) {
  auto result = parse(std::string(kMinimal) + R"([shutdown]
timeout = "5s"
drain_delay = "2s"
[[shutdown.hook]]
name = "slow"
command = ["x"]
timeout = "3s"
)");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message,
              HasSubstr("timeout (5s) must exceed drain_delay (2s) plus the hooks' timeouts (3s)"));
}

// Without any hook, a drain_delay that does not fit in the timeout is refused too: every SIGTERM
// would otherwise kill the workers in the middle of the drain delay.
TEST(ConfigShutdown, DrainDelayMustFitInTheTimeoutWithoutHooks) {
  auto result = parse(std::string(kMinimal) + R"([shutdown]
drain_delay = "60s"
timeout = "30s"
)");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 5);
  EXPECT_THAT(result.errors[0].message,
              HasSubstr("[shutdown] timeout (30s) must exceed drain_delay (1m), or every shutdown kills the workers"));
  EXPECT_TRUE(parse(std::string(kMinimal) + "[shutdown]\ndrain_delay = \"29s\"\ntimeout = \"30s\"\n").config);
}

// Streams end within the shutdown deadline; their spread within the stream grace. Unset, the
// grace follows a short timeout down, so an old file with timeout = "2s" still loads.
TEST(ConfigShutdown, StreamGraceFitsInTheTimeoutAndItsSpreadInTheGrace) {
  auto result = parse(std::string(kMinimal) + "[shutdown]\ntimeout = \"3s\"\nstream_grace = \"3s\"\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_EQ(result.errors[0].line, 5);
  EXPECT_THAT(result.errors[0].message, HasSubstr("[shutdown] stream_grace (3s) must be shorter than [shutdown] timeout (3s)"));
  result = parse(std::string(kMinimal) + "[shutdown]\nstream_grace = \"1s\"\nstream_close_spread = \"2s\"\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message, HasSubstr("stream_close_spread (2s) must be at most [shutdown] stream_grace (1s)"));
  result = parse(std::string(kMinimal) + "[shutdown]\ntimeout = \"2s\"\n");
  ASSERT_TRUE(result.config);
  EXPECT_EQ(result.config->shutdown.stream_grace, Millis(1000));
  EXPECT_EQ(result.config->shutdown.stream_close_spread, Millis(1000));
  result = parse(std::string(kMinimal));
  ASSERT_TRUE(result.config);
  EXPECT_EQ(result.config->shutdown.stream_grace, Millis(5000));
  EXPECT_EQ(result.config->shutdown.stream_close_spread, Millis(1000));
  EXPECT_EQ(result.config->shutdown.idle_close_spread, Millis(0));
  EXPECT_EQ(result.config->reload.max_draining_generations, 2);
  result = parse(std::string(kMinimal) + "[reload]\nmax_draining_generations = 0\n");
  ASSERT_EQ(result.errors.size(), 1u);
  EXPECT_THAT(result.errors[0].message, HasSubstr("[reload] max_draining_generations: 0 is out of range (1 to 64)"));
}

// Without --timeout, a command waits as long as the master's own deadlines for it allow.
TEST(CliWaitBound, FollowsTheConfigsDeadlines) {
  Config config;
  config.reload.ready_timeout = Millis(1000);
  config.shutdown.timeout = Millis(2000);
  EXPECT_EQ(cli_wait_bound("status", config), Millis(5000));
  EXPECT_EQ(cli_wait_bound("stop", config), Millis(7000));
  EXPECT_EQ(cli_wait_bound("reload", config), Millis(8000));
  EXPECT_EQ(cli_wait_bound("upgrade", config), Millis(10'000));
}

TEST(Config, HeaderFieldAndChunkExtensionLimitsHaveBounds) {
  auto lines = error_lines(parse(std::string(kMinimal) + "[http]\nmax_header_fields = 0\nmax_chunk_ext_bytes = -1\n"));
  ASSERT_EQ(lines.size(), 2u) << ::testing::PrintToString(lines);
  EXPECT_THAT(lines[0], HasSubstr("[http] max_header_fields: 0 is out of range (1 to 10000)"));
  EXPECT_THAT(lines[1], HasSubstr("[http] max_chunk_ext_bytes: -1 is out of range"));
}

TEST(Config, A204Or304RouteHasNoBody) {
  auto lines = error_lines(parse(std::string(kMinimal) + "[[route]]\npath = \"/n\"\nstatus = 204\nbody = \"x\"\n"));
  ASSERT_EQ(lines.size(), 1u) << ::testing::PrintToString(lines);
  EXPECT_THAT(lines[0], HasSubstr("a 204 response has no body"));
  EXPECT_TRUE(parse(std::string(kMinimal) + "[[route]]\npath = \"/n\"\nstatus = 204\n").config);
}

TEST(Config, ListenEntriesMayBeTablesWithAProxyProtocol) {
  auto result = parse("[server]\nlisten = [\"127.0.0.1:8080\", { address = \"127.0.0.1:8081\", proxy_protocol = \"v2\" },"
                      " { address = \"[::1]:8082\" }]\n[http]\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]\n");
  ASSERT_TRUE(result.config) << ::testing::PrintToString(error_lines(result));
  const auto& listen = result.config->server.listen;
  ASSERT_EQ(listen.size(), 3u);
  EXPECT_EQ(listen[0].proxy_protocol, ProxyProtocol::Off);
  EXPECT_EQ(listen[1].proxy_protocol, ProxyProtocol::V2);
  EXPECT_EQ(listen[2].proxy_protocol, ProxyProtocol::Off);
  ASSERT_EQ(result.config->http.trusted_proxies.size(), 2u);
  EXPECT_EQ(result.config->http.trusted_proxies[0].prefix, 8);

  auto lines = error_lines(parse("[server]\nlisten = [{ address = \"127.0.0.1:1\", proxy_protocol = \"v3\" },"
                                 " { proxy_protocol = \"v1\" }, { adress = \"127.0.0.1:2\" }, 7]\n"
                                 "[http]\ntrusted_proxies = [\"10.0.0.0/40\"]\n"));
  ASSERT_GE(lines.size(), 5u) << ::testing::PrintToString(lines);
  std::string all = ::testing::PrintToString(lines);
  EXPECT_THAT(all, HasSubstr("proxy_protocol must be \\\"off\\\", \\\"v1\\\", \\\"v2\\\" or \\\"any\\\""));
  EXPECT_THAT(all, HasSubstr("a table entry needs address"));
  EXPECT_THAT(all, HasSubstr("did you mean 'address'"));
  EXPECT_THAT(all, HasSubstr("expected a string or { address"));
  EXPECT_THAT(all, HasSubstr("trusted_proxies: expected an address or network"));
}

}  // namespace
}  // namespace shoal
