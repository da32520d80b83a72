// Scripted tests of the core for an upgrade in place (`[server] upgrade = "in-place"`): the old
// image checks the new program, hands its state over (Supervisor::takeover()), and the new
// image's core adopts every child and starts its own generation beside them as a reload does.
// The harness plays the exec: a new core, booted from the old one's takeover, the same children.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/core_harness.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;

int reply_code(const std::string& json) { return nlohmann::json::parse(json)["code"].get<int>(); }
std::string reply_text(const std::string& json) { return nlohmann::json::parse(json)["message"].get<std::string>(); }

std::shared_ptr<const Config> in_place(const std::string& server = "workers = 2", const std::string& rest = "") {
  return core_config(server + "\nupgrade = \"in-place\"", rest);
}

const core::Supervisor::GenerationView* view_of(CoreHarness& h, uint64_t number) {
  static std::vector<core::Supervisor::GenerationView> views;
  views = h.core().generations();
  for (const auto& g : views)
    if (g.number == number) return &g;
  return nullptr;
}

TEST(CoreInPlace, TheNewImageAdoptsEveryWorkerAndDrainsThemOnceItsOwnAreReady) {
  CoreHarness h(in_place());
  h.boot_ready();
  const Pid old0 = h.pids[{1, 0, 0}], old1 = h.pids[{1, 1, 0}];
  auto out = h.command(5, "upgrade");
  EXPECT_EQ(h.count<core::CheckProgram>(out), 1u);
  EXPECT_EQ(h.count<core::StartSuccessor>(out), 0u);  // no second master
  ASSERT_EQ(h.execs, 1);
  // The new image: the same children, ready, and a generation of its own starting beside them.
  EXPECT_EQ(h.core().phase(), core::Phase::Reloading);
  const auto* adopted = view_of(h, 1);
  ASSERT_NE(adopted, nullptr);
  EXPECT_STREQ(adopted->state, "serving");
  ASSERT_EQ(adopted->workers.size(), 2u);
  EXPECT_EQ(adopted->workers[0].pid, old0);
  EXPECT_STREQ(adopted->workers[0].state, "ready");
  EXPECT_TRUE(h.kills_of(old0).empty());
  EXPECT_EQ(h.count<core::StartControl>(), 2u);  // once per image: the new one takes the same socket
  auto fresh = h.generation_workers(2);
  ASSERT_EQ(fresh.size(), 2u);
  EXPECT_TRUE(h.replies_to(5).empty());
  h.ready(fresh[0]);
  auto promoted = h.ready(fresh[1]);
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 0);
  EXPECT_THAT(reply_text(h.replies_to(5)[0]), HasSubstr("upgrade ok: master 4242 in place, shoal test -> test2"));
  int drains = 0;
  for (const auto& s : h.all<core::SendToWorker>(promoted)) drains += s.type == MsgType::Drain && s.key.generation == 1;
  EXPECT_EQ(drains, 2);
  h.exit(old0, 0);
  h.exit(old1, 0);
  EXPECT_EQ(view_of(h, 1), nullptr);  // drained and forgotten
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  // Reloads and upgrades go on from generation 2, with keys never reused.
  h.command(6, "upgrade");
  EXPECT_EQ(h.execs, 2);
  EXPECT_EQ(h.generation_workers(3).size(), 2u);
}

TEST(CoreInPlace, AProgramThatRefusesTheConfigChangesNothing) {
  CoreHarness h(in_place());
  h.boot_ready();
  h.program_check_exit = 1;
  h.program_check_output = "/etc/shoal/server.toml:3:1: unknown key 'wrokers' in [server]";
  auto out = h.command(5, "upgrade");
  EXPECT_EQ(h.execs, 0);
  EXPECT_EQ(h.count<core::ExecInPlace>(out), 0u);
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 1);
  EXPECT_THAT(reply_text(h.replies_to(5)[0]), HasSubstr("unknown key 'wrokers'"));
  EXPECT_THAT(reply_text(h.replies_to(5)[0]), HasSubstr("master 4242 keeps serving"));
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  EXPECT_EQ(h.count<core::Kill>(), 0u);
}

TEST(CoreInPlace, AProgramThatCannotAdoptOrAFailedExecIsAStartFailure) {
  CoreHarness h(in_place());
  h.boot_ready();
  h.program_check_exit = 64;  // an older shoal: "unknown argument '--can-adopt'"
  h.command(5, "upgrade");
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 2);
  h.program_check_exit = 0;
  h.exec_fails = "execv(/usr/bin/shoal) failed: Exec format error";
  h.command(6, "upgrade");
  EXPECT_EQ(h.execs, 0);
  ASSERT_EQ(h.replies_to(6).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(6)[0]), 2);
  EXPECT_THAT(reply_text(h.replies_to(6)[0]), HasSubstr("Exec format error"));
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  h.exec_fails.clear();
  h.command(7, "upgrade");  // and the next one goes through
  EXPECT_EQ(h.execs, 1);
}

// The config was edited between the check and the exec: the new image cannot use it, and must
// still supervise what it adopted, with the config those workers were started with.
TEST(CoreInPlace, ANewImageThatCannotReadTheConfigSupervisesTheOldGeneration) {
  CoreHarness h(in_place("workers = 2\nheartbeat_timeout = \"4s\""));
  h.boot_ready();
  h.next_config_errors = {"server.toml:1:1: unknown key 'x'"};
  h.command(5, "upgrade");
  ASSERT_EQ(h.execs, 1);
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 1);
  EXPECT_THAT(reply_text(h.replies_to(5)[0]), HasSubstr("generation 1 serves on, supervised by master 4242 now running shoal test2"));
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  EXPECT_EQ(h.core().serving(), 1u);
  // A worker of the adopted generation that crashes is replaced, on its slot, in its generation.
  const Pid crashed = h.pids[{1, 1, 0}];
  h.advance(core::Time(2000));
  h.exit(crashed, 139, true);
  h.advance(core::Time(10));
  auto replacement = h.generation_workers(1);
  ASSERT_EQ(replacement.size(), 2u);
  EXPECT_EQ(replacement[1].slot, 1);
  EXPECT_EQ(replacement[1].incarnation, 1u);
  // Its heartbeat limit is its own config's: silent for 4 s, it is probed.
  h.ready(replacement[1]);
  h.advance(core::Time(4100));
  EXPECT_GE(h.count<core::ProbeWorker>(), 1u);
  // A reload once the file is fixed works as ever.
  h.next_config_errors.clear();
  h.command(6, "reload");
  EXPECT_EQ(h.core().phase(), core::Phase::Reloading);
}

TEST(CoreInPlace, ANewGenerationNotReadyInTimeLeavesTheAdoptedOneServing) {
  CoreHarness h(in_place("workers = 1", "[reload]\nready_timeout = \"1s\""));
  h.boot_ready();
  const Pid old = h.pids[{1, 0, 0}];
  h.command(5, "upgrade");
  ASSERT_EQ(h.execs, 1);
  h.advance(core::Time(1001));
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 3);
  EXPECT_EQ(h.core().serving(), 1u);
  EXPECT_TRUE(h.kills_of(old).empty());
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
}

// A generation that was draining at the exec keeps draining in the new image, within the same
// deadline, counted from its drain's start before the exec.
TEST(CoreInPlace, ADrainingGenerationKeepsItsDeadlineAcrossTheExec) {
  CoreHarness h(in_place("workers = 1", "[shutdown]\ntimeout = \"30s\""));
  h.boot_ready();
  const Pid straggler = h.pids[{1, 0, 0}];
  h.command(1, "reload");
  h.ready(h.generation_workers(2)[0]);  // generation 1 drains from t=0
  h.advance(core::Time(10'000));
  h.command(5, "upgrade");
  ASSERT_EQ(h.execs, 1);
  const auto* draining = view_of(h, 1);
  ASSERT_NE(draining, nullptr);
  EXPECT_STREQ(draining->state, "draining");
  ASSERT_TRUE(draining->workers[0].kill_at.has_value());
  EXPECT_EQ(*draining->workers[0].kill_at, core::Time(30'000));
  h.advance_to(core::Time(30'000));
  EXPECT_EQ(h.kills_of(straggler).back(), SIGKILL);
}

// ---- signals and commands during an upgrade in place, in each of its phases

TEST(CoreInPlace, WhileTheCheckRunsOtherLifecycleCommandsAreRefusedAndAShutdownAbandonsIt) {
  CoreHarness h(in_place());
  h.boot_ready();
  h.program_check_pending = true;
  h.command(5, "upgrade");
  h.command(6, "reload");
  EXPECT_EQ(reply_code(h.replies_to(6)[0]), 4);
  EXPECT_THAT(reply_text(h.replies_to(6)[0]), HasSubstr("an upgrade in place is in progress"));
  h.command(7, "upgrade");
  EXPECT_EQ(reply_code(h.replies_to(7)[0]), 4);
  h.signal(SIGTERM);
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 6);
  h.input(core::ProgramChecked{0, ""});  // the check ends after all: nothing is executed
  EXPECT_EQ(h.count<core::ExecInPlace>(), 0u);
  EXPECT_EQ(h.core().phase(), core::Phase::ShuttingDown);
}

TEST(CoreInPlace, ACheckThatHangsFailsAtItsDeadline) {
  CoreHarness h(in_place());
  h.boot_ready();
  h.program_check_pending = true;
  h.command(5, "upgrade");
  h.advance(core::Time(2001));
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 3);
  EXPECT_THAT(reply_text(h.replies_to(5)[0]), HasSubstr("did not end within"));
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
}

// The exec would cut a `status` short: it waits until the status is answered.
TEST(CoreInPlace, TheExecWaitsForAStatusRoundToBeAnswered) {
  CoreHarness h(in_place());
  h.boot_ready();
  h.program_check_pending = true;
  h.command(5, "upgrade");
  h.command(6, "status");
  h.input(core::ProgramChecked{0, ""});
  EXPECT_EQ(h.count<core::ExecInPlace>(), 0u);
  for (const auto& key : h.generation_workers(1)) h.message(key, MsgType::Stats, 1, 2);
  ASSERT_EQ(h.replies_to(6).size(), 1u);
  EXPECT_EQ(h.count<core::ExecInPlace>(), 1u);
  EXPECT_EQ(h.execs, 1);
}

TEST(CoreInPlace, WhileTheNewImagesGenerationStartsASighupWaitsAndAShutdownAbandonsTheUpgrade) {
  CoreHarness h(in_place());
  h.boot_ready();
  h.command(5, "upgrade");
  ASSERT_EQ(h.execs, 1);
  auto hup = h.signal(SIGHUP);
  EXPECT_TRUE(h.logged("one more reload will follow", hup));
  h.command(6, "upgrade");
  EXPECT_EQ(reply_code(h.replies_to(6)[0]), 4);
  h.signal(SIGTERM);
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 6);
  EXPECT_THAT(reply_text(h.replies_to(5)[0]), HasSubstr("upgrade abandoned"));
  for (const auto& key : h.generation_workers(1)) h.exit(h.pids[key], 0);
  for (const auto& key : h.generation_workers(2)) h.exit(h.pids[key], 0);
  EXPECT_TRUE(h.exited);
}

}  // namespace
}  // namespace shoal::test
