// Scripted tests of the core for [app] workers (programs shoal execs): what differs from shoal's
// own workers is decided in the core, so it is tested here on the fake clock, like the rest.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/core_harness.hpp"

namespace shoal::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

std::shared_ptr<const Config> app_config(const std::string& server, const std::string& app,
                                         const std::string& rest = "") {
  return core_config(server, "[app]\ncommand = [\"node\", \"server.js\"]\n" + app + "\n" + rest);
}

int reply_code(const std::string& json) { return nlohmann::json::parse(json)["code"].get<int>(); }

TEST(CoreApp, ReloadSendsTheDrainSignalOnlyOnceTheNewGenerationIsReady) {
  CoreHarness h(app_config("workers = 2", "drain_signal = \"SIGQUIT\""));
  h.boot_ready();
  const Pid old0 = h.pids[{1, 0, 0}], old1 = h.pids[{1, 1, 0}];
  h.command(7, "reload");
  auto fresh = h.generation_workers(2);
  ASSERT_EQ(fresh.size(), 2u);
  h.ready(fresh[0]);
  EXPECT_TRUE(h.kills_of(old0).empty());  // one new worker ready is not the generation ready
  auto promoted = h.ready(fresh[1]);
  EXPECT_THAT(h.kills_of(old0), ElementsAre(SIGQUIT));
  EXPECT_THAT(h.kills_of(old1), ElementsAre(SIGQUIT));
  EXPECT_TRUE(h.logged("worker 0 pid=" + std::to_string(old0) + ": sent SIGQUIT (drain)", promoted));
  EXPECT_EQ(h.count<core::SendToWorker>(), 0u);  // an app has no channel: never a message
  h.exit(old0, 0);
  h.exit(old1, 0);
  ASSERT_EQ(h.replies_to(7).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(7)[0]), 0);
}

// The app learns how long to keep serving: nothing on a hand-over (the new generation accepts on
// the same sockets), the drain delay at a shutdown.
TEST(CoreApp, TheDrainSignalSaysHowLongToKeepServing) {
  CoreHarness h(app_config("workers = 1", "", "[shutdown]\ndrain_delay = \"2s\"\ntimeout = \"10s\""));
  h.boot_ready();
  h.command(1, "reload");
  auto promoted = h.ready(h.generation_workers(2)[0]);
  auto drains = h.all<core::Kill>(promoted);
  ASSERT_EQ(drains.size(), 1u);
  EXPECT_EQ(drains[0].app_drain_delay, Time(0));
  auto stop = h.signal(SIGTERM);
  auto told = h.all<core::Kill>(stop);
  ASSERT_EQ(told.size(), 1u);
  EXPECT_EQ(told[0].signo, SIGTERM);
  EXPECT_EQ(told[0].app_drain_delay, Time(2000));
  h.exit(drains[0].pid, 0);
  EXPECT_TRUE(h.all<core::Kill>(h.signal(SIGQUIT))[0].app_drain_delay == Time(0));  // stop now: no delay
}

TEST(CoreApp, ReadyDelayTakesAWorkerForReadyAtItsDeadlineAndSaysItIsAGuess) {
  CoreHarness h(app_config("workers = 1", "ready = \"delay\"\nready_delay = \"2s\""));
  h.boot();
  h.advance(1999ms);
  EXPECT_EQ(h.core().phase(), core::Phase::Booting);
  h.advance(1ms);
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  EXPECT_TRUE(h.logged("ready in 2000 ms (assumed: ready = \"delay\" takes it for ready after 2s; it did not say)"));
}

TEST(CoreApp, ReadyDelayIsNotAppliedToAWorkerAlreadyToldToGo) {
  CoreHarness h(app_config("workers = 2", "ready = \"delay\"\nready_delay = \"2s\""));
  h.boot();
  h.signal(SIGTTOU);  // worker 1, still starting, is stopped
  h.advance(2000ms);
  auto views = h.core().generations();
  ASSERT_EQ(views.size(), 1u);
  for (const auto& w : views[0].workers)
    if (w.key.slot == 1) EXPECT_STREQ(w.state, "draining");
}

TEST(CoreApp, TheWatchdogKillsASilentAppAndWatchdogPingsKeepItAlive) {
  CoreHarness h(app_config("workers = 1", "watchdog = \"5s\""));
  h.boot_ready();
  const WorkerKey key{1, 0, 0};
  h.advance(4000ms);
  h.message(key, MsgType::Heartbeat);  // WATCHDOG=1
  h.advance(4999ms);
  EXPECT_EQ(h.count<core::ProbeWorker>(), 0u);
  h.advance(1ms);
  ASSERT_EQ(h.count<core::ProbeWorker>(), 1u);
  EXPECT_THAT(h.kills_of(h.pids[key]), ElementsAre(SIGKILL));
  EXPECT_TRUE(h.logged("sent no WATCHDOG=1 for 5000 ms ([app] watchdog 5s)"));
}

TEST(CoreApp, WithoutAWatchdogASilentAppIsNeverProbed) {
  CoreHarness h(app_config("workers = 1", ""));
  h.boot_ready();
  h.advance(3'600'000ms);
  EXPECT_EQ(h.count<core::ProbeWorker>(), 0u);
  EXPECT_TRUE(h.kills_of(h.pids[{1, 0, 0}]).empty());
}

TEST(CoreApp, ANewGenerationThatNeverSaysReadyIsStoppedAndTheOldOneServesOn) {
  CoreHarness h(app_config("workers = 1", "", "[reload]\nready_timeout = \"3s\""));
  h.boot_ready();
  const Pid old = h.pids[{1, 0, 0}];
  h.command(9, "reload");
  auto fresh = h.generation_workers(2);
  ASSERT_EQ(fresh.size(), 1u);
  const Pid stuck = h.pids[fresh[0]];
  h.advance(3000ms);
  ASSERT_EQ(h.replies_to(9).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(9)[0]), 3);
  EXPECT_THAT(h.kills_of(stuck), ElementsAre(SIGTERM));  // its drain signal: it holds no request
  h.advance(1000ms);
  EXPECT_THAT(h.kills_of(stuck), ElementsAre(SIGTERM, SIGKILL));
  EXPECT_TRUE(h.kills_of(old).empty());
  EXPECT_EQ(h.core().serving(), 1u);
}

TEST(CoreApp, AnAppThatCrashesAtStartIsRetriedWithBackoffNotInALoop) {
  CoreHarness h(app_config("workers = 1", ""));
  h.boot();
  h.exit(h.pids[{1, 0, 0}], 127);  // cannot exec
  EXPECT_TRUE(h.logged("next start in 100ms"));
  h.advance(100ms);
  h.exit(h.pids[{1, 0, 1}], 1);
  EXPECT_TRUE(h.logged("next start in 200ms"));
  h.advance(199ms);
  EXPECT_EQ(h.count<core::ForkWorker>(), 2u);
  h.advance(1ms);
  EXPECT_EQ(h.count<core::ForkWorker>(), 3u);
}

TEST(CoreApp, AnAppThatIgnoresItsDrainSignalIsKilledAtTheDeadlineAndTheExitIsUnclean) {
  CoreHarness h(app_config("workers = 1", "", "[shutdown]\ntimeout = \"4s\""));
  h.boot_ready();
  const Pid pid = h.pids[{1, 0, 0}];
  h.signal(SIGTERM);
  EXPECT_THAT(h.kills_of(pid), ElementsAre(SIGTERM));
  h.advance(3999ms);
  EXPECT_THAT(h.kills_of(pid), ElementsAre(SIGTERM));
  h.advance(1ms);
  EXPECT_THAT(h.kills_of(pid), ElementsAre(SIGTERM, SIGKILL));
  h.exit(pid, SIGKILL, /*by_signal=*/true);
  EXPECT_TRUE(h.exited);
  EXPECT_EQ(h.exit_code, 1);
  EXPECT_TRUE(h.logged("killed at the deadline"));
}

TEST(CoreApp, AnAppsOwnExitCodeDecidesShoalsExitCode) {
  for (int code : {0, 1}) {
    CoreHarness h(app_config("workers = 2", ""));
    h.boot_ready();
    h.signal(SIGTERM);
    h.exit(h.pids[{1, 0, 0}], 0);
    h.exit(h.pids[{1, 1, 0}], code);  // a cleanup failed: the helper exits 1
    EXPECT_TRUE(h.exited);
    EXPECT_EQ(h.exit_code, code);
    if (code == 0) EXPECT_TRUE(h.logged("exited 0 after its drain signal"));
  }
}

TEST(CoreApp, StatusShowsTheAppsStatusLineAndAsksItForNoFigures) {
  CoreHarness h(app_config("workers = 1", ""));
  h.boot_ready();
  h.input(core::AppStatusReported{{1, 0, 0}, "warming the cache"});
  auto status = h.command(3, "status");
  EXPECT_EQ(h.count<core::SendToWorker>(status), 0u);
  ASSERT_EQ(h.replies_to(3).size(), 1u);  // answered at once: nothing to wait for
  auto json = nlohmann::json::parse(h.replies_to(3)[0]);
  const auto& generation = json["status"]["generations"][0];
  EXPECT_EQ(generation["kind"], "app");
  EXPECT_EQ(generation["workers"][0]["app_status"], "warming the cache");
}

TEST(CoreApp, LogsAreReopenedByTheMasterAloneForAppWorkers) {
  CoreHarness h(app_config("workers = 2", ""));
  h.boot_ready();
  auto reopen = h.signal(SIGUSR1);
  ASSERT_EQ(h.count<core::ReopenLogs>(reopen), 1u);
  EXPECT_TRUE(h.all<core::ReopenLogs>(reopen)[0].workers.empty());
}

TEST(CoreApp, SigquitSendsTheDrainSignalAndKillsWhatIsLeftAfterOneSecond) {
  CoreHarness h(app_config("workers = 1", "drain_signal = \"SIGUSR2\""));
  h.boot_ready();
  const Pid pid = h.pids[{1, 0, 0}];
  h.signal(SIGQUIT);
  EXPECT_THAT(h.kills_of(pid), ElementsAre(SIGUSR2));
  h.advance(1000ms);
  EXPECT_THAT(h.kills_of(pid), ElementsAre(SIGUSR2, SIGKILL));
}

// A reload may change the kind: the new generation's config decides how its workers are told.
TEST(CoreApp, AReloadFromShoalsOwnWorkersToAnAppDrainsTheOldOnesByMessage) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.next_config = app_config("workers = 1", "");
  h.command(5, "reload");
  auto fresh = h.generation_workers(2);
  ASSERT_EQ(fresh.size(), 1u);
  auto promoted = h.ready(fresh[0]);
  auto sends = h.all<core::SendToWorker>(promoted);
  ASSERT_EQ(sends.size(), 1u);
  EXPECT_EQ(sends[0].type, MsgType::Drain);
  EXPECT_EQ(sends[0].key.generation, 1u);
  h.signal(SIGTERM);
  EXPECT_THAT(h.kills_of(h.pids[fresh[0]]), ElementsAre(SIGTERM));
}

}  // namespace
}  // namespace shoal::test
