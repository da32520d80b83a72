// [app]: the section that makes the workers exec a program, and the unit pieces of that exec
// (its environment, sd_notify datagrams, output lines).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <signal.h>

#include "common/config.hpp"
#include "master/app_worker.hpp"

namespace shoal {
namespace {

using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr const char* kServer = "[server]\nlisten = [\"127.0.0.1:8080\", { address = \"[::1]:8080\", name = \"admin\" }]\n";

ConfigResult parse(const std::string& text) { return parse_config(text, "/tmp/app-test.toml"); }

std::vector<std::string> errors(const std::string& text) {
  std::vector<std::string> out;
  for (const auto& e : parse(text).errors) out.push_back(e.to_string());
  return out;
}

TEST(ConfigApp, ReadsEveryKeyAndDefaultsToNotifyAndSigterm) {
  auto result = parse(std::string(kServer) + "[app]\ncommand = [\"node\", \"server.js\"]\n");
  ASSERT_TRUE(result.config);
  const AppConfig& app = *result.config->app;
  EXPECT_THAT(app.command, ElementsAre("node", "server.js"));
  EXPECT_EQ(app.cwd, "/tmp");
  EXPECT_EQ(app.ready, AppConfig::Ready::Notify);
  EXPECT_EQ(app.drain_signal, SIGTERM);
  EXPECT_EQ(app.watchdog, Millis(0));
  EXPECT_EQ(result.config->server.listen[0].name, "http");
  EXPECT_EQ(result.config->server.listen[1].name, "admin");

  result = parse(std::string(kServer) +
                 "[app]\ncommand = [\"x\"]\ncwd = \"/\"\nenv = { A = \"1\", B = \"two\" }\nready = \"delay\"\n"
                 "ready_delay = \"2s\"\ndrain_signal = \"QUIT\"\nwatchdog = \"10s\"\n");
  ASSERT_TRUE(result.config);
  const AppConfig& b = *result.config->app;
  EXPECT_EQ(b.cwd, "/");
  EXPECT_EQ(b.env.size(), 2u);
  EXPECT_EQ(b.ready, AppConfig::Ready::Delay);
  EXPECT_EQ(b.ready_delay, Millis(2000));
  EXPECT_EQ(b.drain_signal, SIGQUIT);
  EXPECT_EQ(b.drain_signal_name, "SIGQUIT");
  EXPECT_EQ(b.watchdog, Millis(10'000));
}

TEST(ConfigApp, EachMistakeIsNamedWithItsLine) {
  const std::string head = std::string(kServer) + "[app]\n";
  EXPECT_THAT(errors(head + "command = []\n"), Contains(HasSubstr("app-test.toml:4:11: [app] command: expected a non-empty array")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\nready = \"socket\"\n"), Contains(HasSubstr(":5:9: [app] ready: expected \"notify\"")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\nready = \"delay\"\n"), Contains(HasSubstr("needs ready_delay")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\nready_delay = \"1s\"\n"), Contains(HasSubstr("applies only to ready = \"delay\"")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\nready = \"delay\"\nready_delay = \"20s\"\n"),
              Contains(HasSubstr("[app] ready_delay (20s) must be shorter than [reload] ready_timeout (10s)")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\ndrain_signal = \"SIGKILL\"\n"), Contains(HasSubstr(":5:16: [app] drain_signal: expected one of")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\ncwd = \"/nonexistent/dir\"\n"), Contains(HasSubstr("is not a directory")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\nenv = { LISTEN_FDS = \"9\" }\n"), Contains(HasSubstr("LISTEN_FDS is set by shoal itself")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\nenv = { PORT = 8080 }\n"), Contains(HasSubstr("[app] env PORT: expected a string")));
  EXPECT_THAT(errors(head + "command = [\"x\"]\nwatchdgo = \"1s\"\n"), Contains(HasSubstr("did you mean 'watchdog'?")));
  EXPECT_THAT(errors("[server]\nlisten = [{ address = \"127.0.0.1:1\", name = \"a:b\" }]\n"), Contains(HasSubstr("without ':'")));
}

// What only shoal's own workers do would be ignored with an [app]: it is refused instead.
TEST(ConfigApp, RefusesWhatOnlyShoalsOwnWorkersWouldUse) {
  const std::string app = "[app]\ncommand = [\"x\"]\n";
  EXPECT_THAT(errors(std::string(kServer) + "[http]\nmax_body_bytes = 10\n" + app), Contains(HasSubstr("[http] does not apply with [app]")));
  EXPECT_THAT(errors(std::string(kServer) + "[[route]]\npath = \"/\"\n" + app), Contains(HasSubstr("[[route]] does not apply")));
  EXPECT_THAT(errors(std::string(kServer) + "[shutdown]\ntimeout = \"30s\"\n[[shutdown.hook]]\nname = \"a\"\ncommand = [\"b\"]\n" + app),
              Contains(HasSubstr("[[shutdown.hook]] (run cleanups in the app")));
  EXPECT_THAT(errors("[server]\nlisten = [\"127.0.0.1:1\"]\nmax_requests = 10\n" + app), Contains(HasSubstr("max_requests (shoal cannot count")));
  EXPECT_THAT(errors("[server]\nlisten = [\"127.0.0.1:1\"]\nheartbeat_timeout = \"5s\"\n" + app), Contains(HasSubstr("use [app] watchdog")));
  EXPECT_THAT(errors("[server]\nlisten = [{ address = \"127.0.0.1:1\", proxy_protocol = \"v2\" }]\n" + app),
              Contains(HasSubstr("proxy_protocol does not apply with [app]")));
}

TEST(AppEnvironment, HandsOverTheProtocolAndDropsWhatBelongsToShoalsOwnSupervisor) {
  auto result = parse(std::string(kServer) + "[shutdown]\ndrain_delay = \"1s\"\n[app]\ncommand = [\"x\"]\nenv = { HOME = \"/srv\" }\nwatchdog = \"2s\"\n");
  ASSERT_TRUE(result.config);
  AppExec exec;
  exec.config = &*result.config;
  exec.listen_fds = {7, 8};
  exec.generation = 3;
  exec.slot = 1;
  exec.notify_socket = "@shoal/notify/x";
  std::vector<std::string> inherited = {"PATH=/usr/bin", "HOME=/root", "NOTIFY_SOCKET=/run/systemd/notify",
                                        "LISTEN_FDS=2", "LISTEN_PID=1", "WATCHDOG_USEC=5", "SHOAL_FAULTS=fork"};
  std::vector<char*> envp;
  for (auto& e : inherited) envp.push_back(e.data());
  envp.push_back(nullptr);
  auto env = app_environment(envp.data(), exec, 4242);
  EXPECT_THAT(env, Contains("PATH=/usr/bin"));
  EXPECT_THAT(env, Contains("HOME=/srv"));
  EXPECT_THAT(env, Not(Contains("HOME=/root")));
  EXPECT_THAT(env, Not(Contains("NOTIFY_SOCKET=/run/systemd/notify")));
  EXPECT_THAT(env, Not(Contains("SHOAL_FAULTS=fork")));
  EXPECT_THAT(env, Not(Contains("LISTEN_PID=1")));
  for (const char* want : {"LISTEN_FDS=2", "LISTEN_PID=4242", "LISTEN_FDNAMES=http:admin", "NOTIFY_SOCKET=@shoal/notify/x",
                           "WATCHDOG_USEC=2000000", "WATCHDOG_PID=4242", "SHOAL_GENERATION=3", "SHOAL_WORKER_INDEX=1",
                           "SHOAL_DRAIN_DELAY_MS=1000", "SHOAL_SHUTDOWN_TIMEOUT_MS=30000", "SHOAL_IDLE_GRACE_MS=250",
                           "SHOAL_DRAIN_SIGNAL=SIGTERM"})
    EXPECT_THAT(env, Contains(want));
  EXPECT_EQ(std::count_if(env.begin(), env.end(), [](const std::string& e) { return e.starts_with("LISTEN_FDS="); }), 1);
}

TEST(AppNotification, ReadsSdNotifysAssignments) {
  auto n = parse_notification("READY=1\nSTATUS=warming up\nMAINPID=7\n");
  EXPECT_TRUE(n.ready);
  EXPECT_FALSE(n.watchdog);
  EXPECT_EQ(n.status, "warming up");
  EXPECT_THAT(n.ignored, ElementsAre("MAINPID"));
  n = parse_notification("WATCHDOG=1");
  EXPECT_TRUE(n.watchdog);
  EXPECT_FALSE(n.ready);
  EXPECT_FALSE(parse_notification("READY=0\n").ready);
  EXPECT_FALSE(parse_notification("").status.has_value());
}

TEST(AppOutput, SplitsLinesKeepsThePartialOneAndCutsEndlessOnes) {
  std::string partial;
  EXPECT_THAT(split_output(partial, "one\ntw"), ElementsAre("one"));
  EXPECT_EQ(partial, "tw");
  EXPECT_THAT(split_output(partial, "o\r\nthree\n"), ElementsAre("two", "three"));
  EXPECT_EQ(partial, "");
  EXPECT_THAT(split_output(partial, std::string(10, 'x'), 4), ElementsAre("xxxx", "xxxx"));
  EXPECT_EQ(partial, "xx");
}

}  // namespace
}  // namespace shoal
