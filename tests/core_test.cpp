// Scripted tests of the master's lifecycle core on a fake clock (milliseconds): each asserts the
// exact actions for one rule of master/README.md, or for one bug the old master had (A-I in the
// redesign's issue; J is a worker-side window, tested in http_test.cpp).
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/core_harness.hpp"

namespace shoal::test {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

int reply_code(const std::string& json) { return nlohmann::json::parse(json)["code"].get<int>(); }
std::string reply_message(const std::string& json) { return nlohmann::json::parse(json)["message"].get<std::string>(); }

// ---------------------------------------------------------------- boot

TEST(Core, BootStartsEveryWorkerAndPromotesOnceAllAreReady) {
  CoreHarness h(core_config("workers = 3"));
  auto boot = h.boot();
  ASSERT_EQ(h.count<core::PrepareGeneration>(boot), 1u);
  auto keys = h.forked(boot);
  ASSERT_EQ(keys.size(), 3u);
  EXPECT_EQ(h.core().phase(), core::Phase::Booting);
  h.ready(keys[0]);
  h.ready(keys[1]);
  EXPECT_EQ(h.count<core::StartControl>(), 0u);
  auto last = h.ready(keys[2]);
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  EXPECT_EQ(h.count<core::StartControl>(last), 1u);
  ASSERT_EQ(h.count<core::Notify>(last), 1u);
  EXPECT_THAT(h.all<core::Notify>(last)[0].state, HasSubstr("READY=1"));
  EXPECT_TRUE(h.logged("generation 1 ready: 3 worker(s) in 0 ms", last));
}

// A: SIGTTOU while the first generation starts. Readiness is recomputed from the whole state, so
// the generation is promoted as soon as the workers it still wants are ready.
TEST(Core, A_SigttouWhileBootingStillPromotesTheFirstGeneration) {
  CoreHarness h(core_config("workers = 2"));
  auto keys = h.forked(h.boot());
  auto ttou = h.signal(SIGTTOU);
  EXPECT_TRUE(h.logged("SIGTTOU: worker 1 pid=1001 drains and is not replaced; generation 1 now has 1 worker(s)", ttou));
  ASSERT_EQ(h.all<core::SendToWorker>(ttou).size(), 1u);  // worker 1 was still starting: it is stopped
  EXPECT_EQ(h.all<core::SendToWorker>(ttou)[0].type, MsgType::Stop);
  auto ready = h.ready(keys[0]);
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  EXPECT_EQ(h.count<core::StartControl>(ready), 1u);
  EXPECT_TRUE(h.logged("generation 1 ready: 1 worker(s)", ready));
}

// G: a socketpair or fork failure at start is retried with the backoff, like a worker that died.
TEST(Core, G_ForkFailureWhileBootingIsRetriedWithBackoff) {
  CoreHarness h(core_config("workers = 2"));
  int failures = 2;
  h.fork_fails = [&](const WorkerKey& key) {
    return key.slot == 1 && failures-- > 0 ? std::string("socketpair(AF_UNIX, SOCK_SEQPACKET) failed: Too many open files")
                                           : std::string();
  };
  h.boot();
  EXPECT_TRUE(h.logged("cannot start worker 1: socketpair(AF_UNIX, SOCK_SEQPACKET) failed: Too many open files"));
  EXPECT_TRUE(h.logged("worker 1 failed at start-up 1 time(s) in a row; next start in 100ms"));
  h.advance(99ms);
  EXPECT_EQ(h.count<core::ForkWorker>(), 3u - 1u);  // 0 and 1 at boot
  h.advance(1ms);
  EXPECT_EQ(h.count<core::ForkWorker>(), 3u);
  EXPECT_TRUE(h.logged("next start in 200ms"));
  h.advance(200ms);
  ASSERT_EQ(h.forked().size(), 2u);
  for (const auto& key : h.generation_workers(1)) h.ready(key);
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
}

// E: SIGHUP during the first start waits for it; the control socket starts exactly once.
TEST(Core, E_SighupWhileBootingReloadsOnceTheFirstGenerationIsReady) {
  CoreHarness h(core_config("workers = 1"));
  auto keys = h.forked(h.boot());
  auto hup = h.signal(SIGHUP);
  EXPECT_EQ(h.count<core::LoadConfig>(hup), 0u);
  EXPECT_TRUE(h.logged("SIGHUP while generation 1 starts: a reload will follow once it is ready", hup));
  auto ready = h.ready(keys[0]);
  EXPECT_EQ(h.count<core::StartControl>(ready), 1u);
  EXPECT_EQ(h.count<core::LoadConfig>(ready), 1u);
  EXPECT_EQ(h.core().phase(), core::Phase::Reloading);
  auto second = h.generation_workers(2);
  ASSERT_EQ(second.size(), 1u);
  h.ready(second[0]);
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  EXPECT_EQ(h.count<core::StartControl>(), 1u);
  EXPECT_EQ(h.core().serving(), 2u);
}

TEST(Core, AsANewMasterItWritesThePidFileAndTellsThePredecessorOnceReady) {
  CoreHarness h(core_config("workers = 1"), /*has_predecessor=*/true);
  auto keys = h.forked(h.boot());
  EXPECT_EQ(h.count<core::WritePidFile>(), 0u);
  auto ready = h.ready(keys[0]);
  ASSERT_EQ(h.count<core::WritePidFile>(ready), 1u);
  ASSERT_EQ(h.count<core::TellPredecessor>(ready), 1u);
  EXPECT_EQ(h.count<core::StartControl>(ready), 1u);
  EXPECT_TRUE(h.logged("took over from the previous master", ready));
}

// ---------------------------------------------------------------- server hooks

constexpr const char* kServerHooks =
    "[shutdown]\ntimeout = \"10s\"\n[[shutdown.server_hook]]\nname = \"deregister\"\ncommand = [\"true\"]\n";

TEST(Core, ServerHooksRunOnceWhenTheServerStopsAfterItsLastWorker) {
  CoreHarness h(core_config("workers = 2", kServerHooks));
  h.boot_ready();
  h.command(1, "reload");
  for (const auto& key : h.generation_workers(2)) h.ready(key);  // generation 1 drains: no hook
  for (const auto& key : h.generation_workers(1)) h.exit(h.pids[key], 0);
  h.signal(SIGTTOU);
  EXPECT_EQ(h.count<core::RunServerHooks>(), 0u);
  h.command(2, "stop");
  auto workers = h.generation_workers(2);
  ASSERT_FALSE(workers.empty());
  for (size_t i = 0; i + 1 < workers.size(); ++i) h.exit(h.pids[workers[i]], 0);
  EXPECT_EQ(h.count<core::RunServerHooks>(), 0u);  // a worker is still there
  auto last = h.exit(h.pids[workers.back()], 0);
  ASSERT_EQ(h.count<core::RunServerHooks>(last), 1u);
  EXPECT_TRUE(h.logged("every worker is gone: running 1 server hook(s)", last));
  EXPECT_TRUE(h.exited);  // the harness answers at once: the exit follows the hooks
  EXPECT_EQ(h.exit_code, 0);
  ASSERT_EQ(h.replies_to(2).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(2)[0]), 0);
}

TEST(Core, AFailedServerHookMakesTheStopUnclean) {
  CoreHarness h(core_config("workers = 1", kServerHooks));
  h.server_hook_failures = 1;
  h.boot_ready();
  h.signal(SIGTERM);
  h.exit(h.pids[{1, 0, 0}], 0);
  EXPECT_TRUE(h.exited);
  EXPECT_EQ(h.exit_code, 1);
  EXPECT_TRUE(h.logged("1 server hook(s) failed"));
}

TEST(Core, AnUpgradesHandOverRunsNoServerHook) {
  CoreHarness h(core_config("workers = 1", kServerHooks));
  h.boot_ready();
  h.command(1, "upgrade");
  h.input(core::SuccessorReady{"0.2.0"});
  h.exit(h.pids[{1, 0, 0}], 0);
  EXPECT_TRUE(h.exited);
  EXPECT_EQ(h.count<core::RunServerHooks>(), 0u);  // the server goes on, under the new master
}

// ---------------------------------------------------------------- reopen

TEST(Core, ReopenIsAnsweredOnceEveryWorkerTookTheFiles) {
  CoreHarness h(core_config("workers = 2"));
  h.boot_ready();
  auto round = h.command(5, "reopen");
  ASSERT_EQ(h.count<core::ReopenLogs>(round), 1u);
  auto told = h.all<core::ReopenLogs>(round)[0].workers;
  ASSERT_EQ(told.size(), 2u);
  EXPECT_TRUE(h.replies_to(5).empty());
  h.message(told[0], MsgType::Reopened);
  h.command(6, "reopen");  // joins the round under way: no second ReopenLogs
  EXPECT_EQ(h.count<core::ReopenLogs>(), 1u);
  EXPECT_TRUE(h.replies_to(5).empty());
  h.message(told[1], MsgType::Reopened);
  for (uint64_t id : {5, 6}) {
    ASSERT_EQ(h.replies_to(id).size(), 1u);
    EXPECT_EQ(reply_code(h.replies_to(id)[0]), 0);
    EXPECT_EQ(reply_message(h.replies_to(id)[0]), "reopen: the master reopened its log files; 2 of 2 worker(s) confirmed they took them");
  }
}

TEST(Core, AReopenNotConfirmedInTimeSaysWhoDidNotAndExitsOne) {
  CoreHarness h(core_config("workers = 3"));
  h.boot_ready();
  auto told = h.all<core::ReopenLogs>(h.command(5, "reopen"))[0].workers;
  h.message(told[0], MsgType::Reopened);
  h.exit(h.pids[told[1]], 139);  // gone: nothing to confirm
  h.advance(1999ms);
  EXPECT_TRUE(h.replies_to(5).empty());
  h.advance(1ms);
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 1);
  EXPECT_THAT(reply_message(h.replies_to(5)[0]), HasSubstr("1 of 3 worker(s) confirmed they took them (1 exited meanwhile)"));
}

TEST(Core, StopNowStopsWithoutDrainingAndIsAnsweredAtTheEnd) {
  CoreHarness h(core_config("workers = 2"));
  h.boot_ready();
  auto stop = h.command(8, "stop --now");
  for (const auto& s : h.all<core::SendToWorker>(stop)) EXPECT_EQ(s.type, MsgType::Stop);
  EXPECT_TRUE(h.replies_to(8).empty());
  for (const auto& [key, pid] : std::map<WorkerKey, Pid>(h.pids)) h.exit(pid, 0);
  ASSERT_EQ(h.replies_to(8).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(8)[0]), 1);
  EXPECT_EQ(h.exit_code, 1);
}

// ---------------------------------------------------------------- reload

TEST(Core, ReloadDrainsTheOldGenerationOnlyAfterTheNewOneIsReadyAndAnswersAfterTheDrain) {
  CoreHarness h(core_config("workers = 2"));
  h.boot_ready();
  auto reload = h.command(7, "reload");
  EXPECT_EQ(h.count<core::LoadConfig>(reload), 1u);
  auto fresh = h.generation_workers(2);
  ASSERT_EQ(fresh.size(), 2u);
  for (const auto& s : h.all<core::SendToWorker>()) EXPECT_NE(s.type, MsgType::Drain);  // nothing drains yet
  h.now = 15ms;
  h.ready(fresh[0]);
  auto promoted = h.ready(fresh[1]);
  EXPECT_TRUE(h.logged("reload succeeded: generation 2 ready with 2 worker(s) in 15 ms; generation 1 drains", promoted));
  auto drains = h.all<core::SendToWorker>(promoted);
  ASSERT_EQ(drains.size(), 2u);
  for (const auto& d : drains) {
    EXPECT_EQ(d.type, MsgType::Drain);
    EXPECT_EQ(d.key.generation, 1u);
    EXPECT_EQ(d.value, 0u);  // no drain_delay: the new generation accepts from the same queues
  }
  EXPECT_TRUE(h.replies_to(7).empty());
  h.now = 1215ms;
  h.exit(h.pids[drains[0].key], 0);
  auto last = h.exit(h.pids[drains[1].key], 0);
  ASSERT_EQ(h.replies_to(7).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(7)[0]), 0);
  EXPECT_EQ(reply_message(h.replies_to(7)[0]),
            "reload ok: generation 2 ready (2 workers, 15 ms); generation 1 drained in 1.2 s");
  EXPECT_TRUE(h.logged("generation 1 drained in 1200 ms", last));
}

// After SIGHUP during a reload, exactly one more config load follows the first one's outcome.
TEST(Core, SighupsDuringAReloadAreCoalescedIntoExactlyOneMore) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.signal(SIGHUP);
  h.signal(SIGHUP);
  h.signal(SIGHUP);
  EXPECT_EQ(h.count<core::LoadConfig>(), 1u);
  auto promoted = h.ready(h.generation_workers(2)[0]);
  EXPECT_EQ(h.count<core::LoadConfig>(promoted), 1u);
  EXPECT_EQ(h.count<core::LoadConfig>(), 2u);
  h.ready(h.generation_workers(3)[0]);
  EXPECT_EQ(h.count<core::LoadConfig>(), 2u);
  EXPECT_EQ(h.core().serving(), 3u);
}

TEST(Core, ReloadCommandDuringAReloadIsRefusedBusyWithWhichAndSinceWhen) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.command(1, "reload");
  h.now = 1500ms;
  h.command(2, "reload");
  ASSERT_EQ(h.replies_to(2).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(2)[0]), 4);
  EXPECT_EQ(reply_message(h.replies_to(2)[0]),
            "reload refused: a reload to generation 2 is in progress (since 1.5 s); nothing changed");
}

TEST(Core, AnInvalidConfigChangesNothingAndUsesNoGenerationNumber) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.next_config_errors = {"/tmp/core-test.toml:3:1: unknown key 'wrokers' in [server]; did you mean 'workers'?"};
  h.command(1, "reload");
  EXPECT_EQ(reply_code(h.replies_to(1)[0]), 1);
  EXPECT_EQ(h.count<core::PrepareGeneration>(), 1u);
  h.next_config_errors.clear();
  h.prepare_fails = [](uint64_t) { return std::string("bind(127.0.0.1:80) failed: Address already in use"); };
  h.command(2, "reload");
  EXPECT_EQ(reply_code(h.replies_to(2)[0]), 2);
  EXPECT_THAT(reply_message(h.replies_to(2)[0]), HasSubstr("bind(127.0.0.1:80) failed"));
  h.prepare_fails = [](uint64_t) { return std::string(); };
  h.command(3, "reload");
  EXPECT_EQ(h.all<core::PrepareGeneration>().back().generation, 2u);
}

// H: a fork failure during a reload reports the generation that failed, G+1.
TEST(Core, H_ForkFailureDuringAReloadReportsGenerationGPlusOne) {
  CoreHarness h(core_config("workers = 2"));
  h.boot_ready();
  h.fork_fails = [](const WorkerKey& key) { return key.generation == 2 ? std::string("fork() failed: Resource temporarily unavailable") : std::string(); };
  h.command(1, "reload");
  ASSERT_EQ(h.replies_to(1).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(1)[0]), 2);
  EXPECT_THAT(reply_message(h.replies_to(1)[0]),
              HasSubstr("cannot fork the workers of generation 2: fork() failed: Resource temporarily unavailable"));
  EXPECT_EQ(h.core().serving(), 1u);
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
}

TEST(Core, ANewGenerationNotReadyInTimeIsStoppedAndTheOldOneServesOn) {
  CoreHarness h(core_config("workers = 2", "[reload]\nready_timeout = \"1s\"\n"));
  h.boot_ready();
  h.command(1, "reload");
  auto fresh = h.generation_workers(2);
  h.ready(fresh[0]);
  h.advance(999ms);
  EXPECT_TRUE(h.replies_to(1).empty());
  h.advance(1ms);
  ASSERT_EQ(h.replies_to(1).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(1)[0]), 3);
  EXPECT_THAT(reply_message(h.replies_to(1)[0]),
              HasSubstr("generation 2 was not ready within ready_timeout 1s (1 of 2 workers ready)"));
  // The ready one may hold connections: it drains. The other one is stopped, killed 1 s later.
  std::map<WorkerKey, MsgType> told;
  for (const auto& s : h.all<core::SendToWorker>()) told[s.key] = s.type;
  EXPECT_EQ(told[fresh[0]], MsgType::Drain);
  EXPECT_EQ(told[fresh[1]], MsgType::Stop);
  h.advance(999ms);
  EXPECT_TRUE(h.kills_of(h.pids[fresh[1]]).empty());
  h.advance(1ms);
  EXPECT_THAT(h.kills_of(h.pids[fresh[1]]), ElementsAre(SIGKILL));
  EXPECT_EQ(h.core().serving(), 1u);
}

// C: a generation already draining keeps its drain start and deadline when a shutdown retires it
// again: the straggler is killed at the 2 s deadline counted from its drain, not 3.5 s.
TEST(Core, C_ShutdownDuringAnOldGenerationsDrainKeepsItsDeadline) {
  CoreHarness h(core_config("workers = 1", "[shutdown]\ntimeout = \"2s\"\n"));
  h.boot_ready();
  Pid old = h.pids[h.generation_workers(1)[0]];
  h.signal(SIGHUP);
  h.ready(h.generation_workers(2)[0]);  // generation 1 drains from t = 0
  h.advance(1500ms);
  h.signal(SIGTERM);
  h.advance(499ms);
  EXPECT_TRUE(h.kills_of(old).empty());
  h.advance(1ms);
  EXPECT_THAT(h.kills_of(old), ElementsAre(SIGKILL));
  EXPECT_TRUE(h.logged("worker 0 pid=" + std::to_string(old) + " of generation 1 still running at the 2s deadline"));
  for (const auto& v : h.core().generations())
    for (const auto& w : v.workers)
      if (w.pid == old) EXPECT_EQ(w.kill_at, Time(2000));
}

// [reload] max_draining_generations: a reload that would leave more generations draining first
// cuts the oldest short (its workers get a Drain with kDrainHurry and a kill deadline of now +
// its stream_grace); the others keep theirs. Every Drain carries the time left to its deadline.
TEST(Core, AReloadThatWouldLeaveTooManyDrainingCutsTheOldestShort) {
  CoreHarness h(core_config("workers = 1", "[shutdown]\ntimeout = \"60s\"\nstream_grace = \"2s\"\n"
                                           "[reload]\nmax_draining_generations = 2\n"));
  h.boot_ready();
  auto reload_to = [&](uint64_t generation) {
    h.signal(SIGHUP);
    return h.ready(h.generation_workers(generation)[0]);
  };
  auto first = reload_to(2);  // generation 1 drains
  auto drains = h.all<core::SendToWorker>(first);
  ASSERT_EQ(drains.size(), 1u);
  EXPECT_EQ(drains[0].value2, 60000u);  // the whole shutdown timeout is left
  EXPECT_EQ(drains[0].flags, 0);
  h.advance(1000ms);
  auto second = reload_to(3);  // generations 1 and 2 drain: at the bound, nobody is cut short
  for (const auto& d : h.all<core::SendToWorker>(second)) EXPECT_EQ(d.flags, 0) << d.key.generation;
  EXPECT_TRUE(h.logged("generation 1 still draining: for 1.0 s, 0 connection(s), killed in 59.0 s at the latest", second));
  h.advance(1000ms);
  const WorkerKey gen1 = h.generation_workers(1)[0];
  h.message(gen1, MsgType::Stats, 7);  // a draining worker reports what it still holds
  auto third = reload_to(4);  // 1, 2 and 3 would drain: 1 is cut short
  std::vector<core::SendToWorker> hurried;
  for (const auto& d : h.all<core::SendToWorker>(third))
    if (d.flags & kDrainHurry) hurried.push_back(d);
  ASSERT_EQ(hurried.size(), 1u);
  EXPECT_EQ(hurried[0].key.generation, 1u);
  EXPECT_EQ(hurried[0].type, MsgType::Drain);
  EXPECT_EQ(hurried[0].value2, 2000u);
  EXPECT_TRUE(h.logged("generation 1 (draining for 2.0 s, 7 connection(s)) is cut short: 3 generations would be "
                       "draining, more than [reload] max_draining_generations (2); its streams end now and its "
                       "workers are killed in 2s ([shutdown] stream_grace)", third));
  const Pid oldest = h.pids[hurried[0].key];
  for (const auto& v : h.core().generations())
    for (const auto& w : v.workers) {
      if (w.pid == oldest) EXPECT_EQ(w.kill_at, h.now + 2000ms);
      else if (v.number == 2) EXPECT_EQ(w.kill_at, Time(61000));  // its own deadline stays
    }
  h.command(9, "status");
  for (uint64_t g = 1; g <= 4; ++g)
    for (const WorkerKey& key : h.generation_workers(g)) h.message(key, MsgType::Stats, g == 1 ? 7 : 0);
  ASSERT_EQ(h.replies_to(9).size(), 1u);
  auto status = nlohmann::json::parse(h.replies_to(9)[0])["status"];
  for (const auto& g : status["generations"]) {
    if (g["number"] == 1) {
      EXPECT_TRUE(g["hurried"].get<bool>());
      EXPECT_EQ(g["connections"], 7);
      EXPECT_EQ(g["deadline_in_ms"], 2000);
      EXPECT_EQ(g["draining_for_ms"], 2000);
    } else if (g["number"] == 2) {
      EXPECT_FALSE(g["hurried"].get<bool>());
      EXPECT_EQ(g["deadline_in_ms"], 59000);
    } else if (g["number"] == 3) {  // begins to drain now
      EXPECT_EQ(g["state"], "draining");
      EXPECT_EQ(g["draining_for_ms"], 0);
      EXPECT_EQ(g["deadline_in_ms"], 60000);
    } else {
      EXPECT_EQ(g["state"], "serving");
      EXPECT_FALSE(g.contains("draining_for_ms"));
    }
  }
  h.advance(1999ms);
  EXPECT_TRUE(h.kills_of(oldest).empty());
  h.advance(1ms);
  EXPECT_THAT(h.kills_of(oldest), ElementsAre(SIGKILL));
  // A reload while the cut-short one is still there counts it no more: 2 and 3 drain, 4 would.
  h.exit(oldest, SIGKILL, /*by_signal=*/true);
  auto fourth = reload_to(5);
  std::vector<uint64_t> cut;
  for (const auto& d : h.all<core::SendToWorker>(fourth))
    if (d.flags & kDrainHurry) cut.push_back(d.key.generation);
  EXPECT_THAT(cut, ElementsAre(2u));
}

// B: SIGQUIT while a `reload` waits for a slow new generation: the CLI gets an answer (6), and
// the last reload's outcome says what happened.
TEST(Core, B_SigquitWhileAReloadWaitsAnswersIt) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.command(5, "reload");
  h.signal(SIGQUIT);
  ASSERT_EQ(h.replies_to(5).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(5)[0]), 6);
  EXPECT_EQ(reply_message(h.replies_to(5)[0]),
            "reload abandoned: the server is shutting down (SIGQUIT); generation 2 stops");
  h.command(6, "status");
  h.advance(300ms);  // the workers' figures are awaited at most status_wait
  auto status = nlohmann::json::parse(h.replies_to(6).at(0))["status"];
  EXPECT_EQ(status["last_reload"]["code"], 6);
  EXPECT_EQ(status["master"]["state"], "shutting down");
}

// I: SIGTERM while a reload's workers are in their start hook: they are stopped and, if they
// have not exited, killed no later than the master closes its listening sockets, so that no
// connection is queued to a process that never accepts it.
TEST(Core, I_ShutdownDuringAReloadStopsTheStartingWorkersBeforeTheListenersClose) {
  CoreHarness h(core_config("workers = 1", "[shutdown]\ndrain_delay = \"3s\"\ntimeout = \"10s\"\n"));
  h.boot_ready();
  h.signal(SIGHUP);
  Pid starting = h.pids[h.generation_workers(2)[0]];
  auto term = h.signal(SIGTERM);
  bool stopped = false;
  for (const auto& s : h.all<core::SendToWorker>(term)) stopped |= s.key.generation == 2 && s.type == MsgType::Stop;
  EXPECT_TRUE(stopped);
  h.advance(999ms);
  EXPECT_TRUE(h.kills_of(starting).empty());
  h.advance(1ms);
  EXPECT_THAT(h.kills_of(starting), ElementsAre(SIGKILL));
  h.exit(starting, SIGKILL, true);
  EXPECT_EQ(h.count<core::CloseListeners>(), 0u);
  h.advance(2000ms);
  EXPECT_EQ(h.count<core::CloseListeners>(), 1u);
  // The never-ready worker held no request: it does not make the shutdown unclean.
  h.exit(h.pids[h.generation_workers(1)[0]], 0);
  EXPECT_TRUE(h.exited);
  EXPECT_EQ(h.exit_code, 0);
}

TEST(Core, I_WithoutDrainDelayTheStartingWorkersAreKilledAsTheListenersClose) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.signal(SIGHUP);
  Pid starting = h.pids[h.generation_workers(2)[0]];
  auto interrupt = h.signal(SIGINT);
  EXPECT_THAT(h.kills_of(starting), ElementsAre(SIGKILL));
  EXPECT_EQ(h.count<core::CloseListeners>(interrupt), 1u);
}

// A second Ctrl+C stops at once; a SIGINT after a SIGTERM-begun shutdown changes nothing.
TEST(Core, ASecondSigintStopsNowButNotAfterASigterm) {
  CoreHarness h(core_config("workers = 1", "[shutdown]\ntimeout = \"30s\"\n"));
  h.boot_ready();
  WorkerKey w = h.generation_workers(1)[0];
  auto first = h.signal(SIGINT);
  ASSERT_EQ(h.all<core::SendToWorker>(first).size(), 1u);
  EXPECT_EQ(h.all<core::SendToWorker>(first)[0].type, MsgType::Drain);
  auto second = h.signal(SIGINT);
  ASSERT_EQ(h.all<core::SendToWorker>(second).size(), 1u);
  EXPECT_EQ(h.all<core::SendToWorker>(second)[0].key, w);
  EXPECT_EQ(h.all<core::SendToWorker>(second)[0].type, MsgType::Stop);
  EXPECT_TRUE(h.logged("a second SIGINT", second));
  h.advance(1000ms);  // stop_grace: the worker that ignores the stop is killed
  EXPECT_THAT(h.kills_of(h.pids[w]), ElementsAre(SIGKILL));

  CoreHarness t(core_config("workers = 1", "[shutdown]\ntimeout = \"30s\"\n"));
  t.boot_ready();
  t.signal(SIGTERM);
  auto interrupt = t.signal(SIGINT);
  EXPECT_EQ(t.count<core::SendToWorker>(interrupt), 0u);
  EXPECT_TRUE(t.logged("already in progress", interrupt));
}

// ---------------------------------------------------------------- size and replacement

// F: SIGTTOU while a max_requests replacement starts: the removal is not lost.
TEST(Core, F_SigttouWhileAReplacementStartsKeepsTheRemoval) {
  CoreHarness h(core_config("workers = 2\nmax_requests = 100"));
  h.boot_ready();
  WorkerKey one = h.generation_workers(1)[1];
  auto recycle = h.message(one, MsgType::Recycle, 0, 100);
  auto replacement = h.forked(recycle);
  ASSERT_EQ(replacement.size(), 1u);
  EXPECT_EQ(replacement[0].slot, 1);
  auto ttou = h.signal(SIGTTOU);
  EXPECT_TRUE(h.logged("generation 1 now has 1 worker(s)", ttou));
  h.ready(replacement[0]);
  size_t counted = 0;
  for (const auto& v : h.core().generations())
    for (const auto& w : v.workers) counted += !w.culled;
  EXPECT_EQ(counted, 1u);
  EXPECT_EQ(h.core().generations()[0].desired, 1);
}

TEST(Core, AReplacementIsReadyBeforeTheWorkerItReplacesDrains) {
  CoreHarness h(core_config("workers = 1\nmax_requests = 100"));
  h.boot_ready();
  WorkerKey old = h.generation_workers(1)[0];
  auto recycle = h.message(old, MsgType::Recycle, 0, 100);
  EXPECT_TRUE(h.logged("worker 0 pid=1000 served 100 requests (max_requests); starting its replacement before it drains",
                       recycle));
  EXPECT_EQ(h.count<core::SendToWorker>(recycle), 0u);
  auto ready = h.ready(h.forked(recycle)[0]);
  ASSERT_EQ(h.all<core::SendToWorker>(ready).size(), 1u);
  EXPECT_EQ(h.all<core::SendToWorker>(ready)[0].key, old);
  EXPECT_EQ(h.all<core::SendToWorker>(ready)[0].type, MsgType::Drain);
  EXPECT_TRUE(h.logged("worker 0 pid=1000 replaced by pid=1001 (served 100 requests (max_requests)); pid=1000 drains"));
  // A second Recycle from the one already replaced changes nothing.
  EXPECT_EQ(h.count<core::ForkWorker>(h.message(old, MsgType::Recycle, 0, 101)), 0u);
}

TEST(Core, TtinAndTtouChangeOnlyTheDesiredSizeAndTheReconcileFollows) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  auto ttin = h.signal(SIGTTIN);
  EXPECT_TRUE(h.logged("SIGTTIN: adding worker 1 on CPU -1; generation 1 now has 2 worker(s)", ttin));
  ASSERT_EQ(h.forked(ttin).size(), 1u);
  h.ready(h.forked(ttin)[0]);
  h.signal(SIGTTOU);
  auto fewest = h.signal(SIGTTOU);
  EXPECT_TRUE(h.logged("SIGTTOU ignored: generation 1 has one worker, the fewest it can have", fewest));
}

// ---------------------------------------------------------------- respawn

// Successive forks of a slot that keeps dying at start are 100, 200, 400 ms ... apart, capped at 10 s.
TEST(Core, ASlotThatKeepsDyingIsRetriedWithExponentialBackoffCappedAtTenSeconds) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  std::vector<Time> forked_at;
  for (int i = 0; i < 10; ++i) {
    WorkerKey key = h.generation_workers(1).at(0);
    h.exit(h.pids[key], 2);
    Time died = h.now;
    size_t before = h.count<core::ForkWorker>();
    while (h.count<core::ForkWorker>() == before) h.advance_to(*h.core().next_deadline());
    forked_at.push_back(h.now - died);
  }
  EXPECT_THAT(forked_at, ElementsAre(100ms, 200ms, 400ms, 800ms, 1600ms, 3200ms, 6400ms, 10000ms, 10000ms, 10000ms));
}

TEST(Core, AHealthyWorkerThatDiesIsReplacedAtOnce) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.advance(5000ms);
  auto died = h.exit(h.pids[h.generation_workers(1)[0]], 139);
  EXPECT_EQ(h.forked(died).size(), 1u);
  EXPECT_TRUE(h.logged("worker 0 pid=1000 cpu=any exited with code 139 while ready; replacing it", died));
}

TEST(Core, AWorkerSilentPastTheHeartbeatTimeoutIsProbedAndKilled) {
  CoreHarness h(core_config("workers = 1\nheartbeat_timeout = \"1s\""));
  h.boot_ready();
  Pid pid = h.pids[h.generation_workers(1)[0]];
  h.advance(500ms);
  h.message(h.generation_workers(1)[0], MsgType::Heartbeat);
  h.advance(999ms);
  EXPECT_TRUE(h.kills_of(pid).empty());
  h.advance(1ms);
  EXPECT_THAT(h.kills_of(pid), ElementsAre(SIGKILL));
  EXPECT_TRUE(h.logged("sent no heartbeat for 1000 ms (heartbeat_timeout 1s); stuck in GET /spin for 1 ms, process "
                       "state R (running); sending SIGKILL"));
}

TEST(Core, AChannelThatCannotSendFallsBackToASignal) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.send_fails = [](const core::SendToWorker& s) { return s.type == MsgType::Drain; };
  auto term = h.signal(SIGTERM);
  EXPECT_THAT(h.kills_of(1000), ElementsAre(SIGTERM));
  EXPECT_TRUE(h.logged("worker 0 pid=1000: channel unusable; sending SIGTERM instead", term));
}

// ---------------------------------------------------------------- shutdown

TEST(Core, GracefulShutdownDrainsClosesListenersAfterTheDelayAndExitsCleanOnlyIfAllDrained) {
  CoreHarness h(core_config("workers = 2", "[shutdown]\ndrain_delay = \"1s\"\ntimeout = \"5s\"\n"));
  h.boot_ready();
  auto term = h.command(3, "stop");
  for (const auto& s : h.all<core::SendToWorker>(term)) {
    EXPECT_EQ(s.type, MsgType::Drain);
    EXPECT_EQ(s.value, 1000u);
  }
  EXPECT_EQ(h.all<core::Notify>(term).at(0).state, "STOPPING=1");
  h.advance(999ms);
  EXPECT_EQ(h.count<core::CloseListeners>(), 0u);
  h.advance(1ms);
  EXPECT_EQ(h.count<core::CloseListeners>(), 1u);
  h.exit(1000, 0);
  EXPECT_FALSE(h.exited);
  h.advance(4000ms);  // worker 1 still runs at the 5 s deadline
  EXPECT_THAT(h.kills_of(1001), ElementsAre(SIGKILL));
  h.exit(1001, SIGKILL, true);
  EXPECT_TRUE(h.exited);
  EXPECT_EQ(h.exit_code, 1);
  ASSERT_EQ(h.replies_to(3).size(), 1u);
  EXPECT_EQ(reply_code(h.replies_to(3)[0]), 1);
  EXPECT_THAT(reply_message(h.replies_to(3)[0]),
              HasSubstr("stop: shutdown NOT clean in 5000 ms: worker 0 pid=1000 drained, hooks ok; worker 1 pid=1001 "
                        "killed at the deadline"));
}

TEST(Core, AWorkerStoppedBySigquitIsNotSummarisedAsDrained) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.signal(SIGQUIT);
  EXPECT_EQ(h.all<core::SendToWorker>().back().type, MsgType::Stop);
  h.exit(1000, 0);
  EXPECT_TRUE(h.logged("shutdown NOT clean in 0 ms: worker 0 pid=1000 stopped without draining (exit code 0)"));
  EXPECT_EQ(h.exit_code, 1);
}

TEST(Core, SigquitDuringAGracefulShutdownMovesTheDeadlineEarlierNeverLater) {
  CoreHarness h(core_config("workers = 1", "[shutdown]\ntimeout = \"30s\"\n"));
  h.boot_ready();
  h.signal(SIGTERM);
  h.advance(2000ms);
  h.signal(SIGQUIT);
  h.advance(999ms);
  EXPECT_TRUE(h.kills_of(1000).empty());
  h.advance(1ms);
  EXPECT_THAT(h.kills_of(1000), ElementsAre(SIGKILL));
}

// A master that abandoned an upgrade reaps the candidate it stopped before it exits.
TEST(Core, ShutdownDuringAnUpgradeWaitsForTheCandidateToBeReaped) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.command(1, "upgrade");
  ASSERT_GT(h.successor, 0);
  h.signal(SIGTERM);
  EXPECT_THAT(h.kills_of(h.successor), ElementsAre(SIGINT));
  EXPECT_EQ(reply_code(h.replies_to(1).at(0)), 6);
  h.exit(1000, 0);
  EXPECT_FALSE(h.exited);
  h.input(core::ChildExited{h.successor, true, 0});
  EXPECT_TRUE(h.exited);
  EXPECT_EQ(h.exit_code, 0);
}

TEST(Core, AnUpgradeHandsOverOnceTheNewMasterIsReady) {
  CoreHarness h(core_config("workers = 1"));
  h.boot_ready();
  h.command(1, "upgrade");
  auto ready = h.input(core::SuccessorReady{"0.2.0"});
  EXPECT_EQ(reply_message(h.replies_to(1).at(0)), "upgrade ok: master 4242 -> " + std::to_string(h.successor) +
                                                      ", shoal test -> 0.2.0");
  EXPECT_EQ(h.count<core::PauseControl>(ready), 1u);
  EXPECT_EQ(h.count<core::ReleaseListeners>(ready), 1u);
  EXPECT_EQ(h.count<core::CloseListeners>(), 0u);
  h.exit(1000, 0);
  EXPECT_TRUE(h.exited);
  EXPECT_TRUE(h.logged("hand-over clean"));
}

TEST(Core, AnUpgradeWhoseNewMasterIsNotReadyInTimeFailsAndTheOldServesOn) {
  CoreHarness h(core_config("workers = 1", "[reload]\nready_timeout = \"1s\"\n"));
  h.boot_ready();
  h.command(1, "upgrade");
  h.advance(2999ms);
  EXPECT_TRUE(h.replies_to(1).empty());
  h.advance(1ms);
  EXPECT_EQ(reply_code(h.replies_to(1).at(0)), 3);
  EXPECT_THAT(h.kills_of(h.successor), ElementsAre(SIGINT));
  EXPECT_EQ(h.core().phase(), core::Phase::Running);
  // Until that candidate is reaped, another upgrade is refused.
  h.command(2, "upgrade");
  EXPECT_THAT(reply_message(h.replies_to(2).at(0)), HasSubstr("has not exited yet"));
}

// What the metrics show of the lifecycle: every reload's and upgrade's outcome, and each
// replacement with its reason, counted once.
TEST(Core, CountsEveryReloadUpgradeAndReplacementByOutcomeAndReason) {
  CoreHarness h(core_config("workers = 1\nmax_requests = 100\nheartbeat_timeout = \"1s\"",
                            "[reload]\nready_timeout = \"1s\"\n"));
  const auto& c = h.core().counts();
  h.now = 5ms;
  h.boot_ready();
  EXPECT_TRUE(c.last_load_ok);
  EXPECT_EQ(c.last_success_at, Time(5));
  // A reload that succeeds, one refused for its config, one whose generation is not ready in time.
  h.now = 10ms;
  h.command(1, "reload");
  h.ready(h.generation_workers(2)[0]);
  EXPECT_EQ(c.reloads[metrics::kOk], 1u);
  EXPECT_EQ(c.last_success_at, Time(10));
  h.next_config_errors = {"bad"};
  h.command(2, "reload");
  EXPECT_EQ(c.reloads[metrics::kConfigInvalid], 1u);
  EXPECT_FALSE(c.last_load_ok);
  h.next_config_errors.clear();
  h.command(3, "reload");
  h.advance(1000ms);
  EXPECT_EQ(c.reloads[metrics::kNotReady], 1u);
  EXPECT_FALSE(c.last_load_ok);
  EXPECT_EQ(c.last_success_at, Time(10));
  for (auto& [key, pid] : h.pids)
    if (key.generation != 2 && !h.dead.count(pid)) h.exit(pid, 0);
  h.command(4, "reload");
  WorkerKey serving = h.generation_workers(4)[0];
  h.ready(serving);
  EXPECT_EQ(c.reloads[metrics::kOk], 2u);
  EXPECT_TRUE(c.last_load_ok);
  // A crash, a silent worker, and max_requests.
  h.exit(h.pids[h.generation_workers(2)[0]], 0);
  h.advance(800ms);
  h.message(serving, MsgType::Heartbeat);
  h.advance(800ms);
  h.exit(h.pids[serving], 139);
  EXPECT_EQ(c.restarts[metrics::kCrash], 1u);
  WorkerKey second = h.generation_workers(4).back();
  h.ready(second);
  h.advance(1000ms);  // silent: probed (the harness answers) and killed
  ASSERT_THAT(h.kills_of(h.pids[second]), ElementsAre(SIGKILL));
  h.exit(h.pids[second], SIGKILL, true);
  EXPECT_EQ(c.restarts[metrics::kHeartbeat], 1u);
  EXPECT_EQ(c.restarts[metrics::kCrash], 1u);
  WorkerKey third = h.generation_workers(4).back();
  h.ready(third);
  h.message(third, MsgType::Recycle, 0, 100);
  EXPECT_EQ(c.restarts[metrics::kMaxRequests], 1u);
  // An upgrade that hands over.
  h.command(5, "upgrade");
  h.input(core::SuccessorReady{"0.2.0"});
  EXPECT_EQ(c.upgrades[metrics::kOk], 1u);
  EXPECT_EQ(c.reloads[metrics::kOk], 2u);
  EXPECT_EQ(c.restarts[metrics::kMaxRequests], 1u);
}

// ---------------------------------------------------------------- the phase table

enum class In { Hup, ReloadCmd, Usr2, UpgradeCmd, Ttin, Ttou, Term, Int, Quit, StopCmd, StatusCmd, Usr1, Winch, ReopenCmd, StopNowCmd };
const char* in_name(In in) {
  const char* names[] = {"SIGHUP", "reload", "SIGUSR2", "upgrade", "SIGTTIN", "SIGTTOU", "SIGTERM",
                         "SIGINT", "SIGQUIT", "stop", "status", "SIGUSR1", "SIGWINCH", "reopen", "stop --now"};
  return names[static_cast<int>(in)];
}

// Drives a fresh core into `phase` with a 2-worker generation serving (or booting).
std::unique_ptr<CoreHarness> in_phase(core::Phase phase) {
  auto h = std::make_unique<CoreHarness>(core_config("workers = 2", "[shutdown]\ntimeout = \"30s\"\n"));
  h->boot();
  if (phase == core::Phase::Booting) return h;
  for (const auto& key : h->generation_workers(1)) h->ready(key);
  if (phase == core::Phase::Reloading) h->command(100, "reload");
  if (phase == core::Phase::Upgrading) h->command(100, "upgrade");
  if (phase == core::Phase::ShuttingDown) h->signal(SIGTERM);
  EXPECT_EQ(h->core().phase(), phase);
  return h;
}

struct Row {
  core::Phase phase;
  In in;
  const char* expect;  // what master/README.md's phase table says
};

class PhaseTable : public ::testing::TestWithParam<Row> {};

TEST_P(PhaseTable, EachInputInEachPhaseDoesWhatTheTableSays) {
  const Row& row = GetParam();
  auto h = in_phase(row.phase);
  std::vector<Action> out;
  switch (row.in) {
    case In::Hup: out = h->signal(SIGHUP); break;
    case In::ReloadCmd: out = h->command(1, "reload"); break;
    case In::Usr2: out = h->signal(SIGUSR2); break;
    case In::UpgradeCmd: out = h->command(1, "upgrade"); break;
    case In::Ttin: out = h->signal(SIGTTIN); break;
    case In::Ttou: out = h->signal(SIGTTOU); break;
    case In::Term: out = h->signal(SIGTERM); break;
    case In::Int: out = h->signal(SIGINT); break;
    case In::Quit: out = h->signal(SIGQUIT); break;
    case In::StopCmd: out = h->command(1, "stop"); break;
    case In::StatusCmd: out = h->command(1, "status"); break;
    case In::Usr1: out = h->signal(SIGUSR1); break;
    case In::Winch: out = h->signal(SIGWINCH); break;
    case In::ReopenCmd: out = h->command(1, "reopen"); break;
    case In::StopNowCmd: out = h->command(1, "stop --now"); break;
  }
  std::string expect = row.expect;
  auto code = [&] { return h->replies_to(1).empty() ? -1 : reply_code(h->replies_to(1)[0]); };
  if (expect == "reload") {
    EXPECT_EQ(h->count<core::LoadConfig>(out), 1u);
  } else if (expect == "after boot") {
    EXPECT_EQ(h->count<core::LoadConfig>(out), 0u);
    for (const auto& key : h->generation_workers(1)) h->ready(key);
    EXPECT_EQ(h->count<core::LoadConfig>(), 1u);
  } else if (expect == "coalesced") {
    EXPECT_EQ(h->count<core::LoadConfig>(out), 0u);
    for (const auto& key : h->generation_workers(2)) h->ready(key);
    EXPECT_EQ(h->count<core::LoadConfig>(), 2u);
  } else if (expect == "refused") {  // a signal: logged, nothing changes
    EXPECT_EQ(h->count<core::LoadConfig>(out) + h->count<core::StartSuccessor>(out), 0u);
    EXPECT_TRUE(h->logged("refused", out));
  } else if (expect == "4" || expect == "6") {
    EXPECT_EQ(code(), std::stoi(expect));
    EXPECT_EQ(h->count<core::LoadConfig>(out) + h->count<core::StartSuccessor>(out), 0u);
  } else if (expect == "upgrade") {
    EXPECT_EQ(h->count<core::StartSuccessor>(out), 1u);
  } else if (expect == "+1" || expect == "-1") {
    int want = 2 + std::stoi(expect);  // the serving generation's (the booting one's while it boots)
    uint64_t target = h->core().serving().value_or(1);
    for (const auto& g : h->core().generations())
      if (g.number == target) EXPECT_EQ(g.desired, want);
  } else if (expect == "ignored") {
    EXPECT_TRUE(h->logged("ignored: shutting down", out));
    EXPECT_EQ(h->count<core::ForkWorker>(out) + h->count<core::SendToWorker>(out), 0u);
  } else if (expect == "shutdown") {
    EXPECT_EQ(h->core().phase(), core::Phase::ShuttingDown);
    EXPECT_EQ(h->all<core::Notify>(out).size() >= 1 && h->all<core::Notify>(out).back().state == "STOPPING=1", true);
    if (row.phase == core::Phase::Reloading || row.phase == core::Phase::Upgrading)
      EXPECT_EQ(reply_code(h->replies_to(100).at(0)), 6);  // the waiting command is answered
  } else if (expect == "stop now") {
    EXPECT_EQ(h->core().phase(), core::Phase::ShuttingDown);
    for (const auto& s : h->all<core::SendToWorker>(out)) EXPECT_EQ(s.type, MsgType::Stop);
    EXPECT_TRUE(h->logged("stopping now, without draining", out));
  } else if (expect == "in progress") {
    EXPECT_TRUE(h->logged("received while shutting down; already in progress", out));
    EXPECT_EQ(h->count<core::SendToWorker>(out), 0u);
  } else if (expect == "answered") {
    h->advance(300ms);
    EXPECT_EQ(code(), 0);
  } else if (expect == "reopen") {
    EXPECT_EQ(h->count<core::ReopenLogs>(out), 1u);
  } else if (expect == "reopen answered") {
    auto rounds = h->all<core::ReopenLogs>(out);
    ASSERT_EQ(rounds.size(), 1u);
    for (const auto& key : rounds[0].workers) h->message(key, MsgType::Reopened);
    EXPECT_EQ(code(), 0);
  } else if (expect == "logged") {
    EXPECT_TRUE(h->logged("no action is defined for it; nothing changed", out));
  } else {
    FAIL() << "unknown expectation " << expect;
  }
  // Whatever came in, a stop from here on always ends in one exit, with every command answered.
  h->signal(SIGQUIT);
  h->advance(2000ms);
  for (const auto& [key, pid] : std::map<WorkerKey, Pid>(h->pids))
    if (!h->dead.count(pid)) h->exit(pid, 0);
  if (h->successor > 0 && !h->dead.count(h->successor)) h->input(core::ChildExited{h->successor, true, 0});
  EXPECT_TRUE(h->exited) << core::phase_name(row.phase) << " + " << in_name(row.in);
  if (row.in == In::ReloadCmd || row.in == In::UpgradeCmd || row.in == In::StopCmd || row.in == In::StatusCmd ||
      row.in == In::ReopenCmd || row.in == In::StopNowCmd)
    EXPECT_EQ(h->replies_to(1).size(), 1u) << core::phase_name(row.phase) << " + " << in_name(row.in);
  if (row.in == In::StopNowCmd) EXPECT_EQ(code(), 1);  // as SIGQUIT: never a clean stop
}

using core::Phase;
// The phase table of master/README.md, row by row.
INSTANTIATE_TEST_SUITE_P(
    Rows, PhaseTable,
    ::testing::Values(
        Row{Phase::Booting, In::Hup, "after boot"}, Row{Phase::Running, In::Hup, "reload"},
        Row{Phase::Reloading, In::Hup, "coalesced"}, Row{Phase::Upgrading, In::Hup, "refused"},
        Row{Phase::ShuttingDown, In::Hup, "refused"},
        Row{Phase::Booting, In::ReloadCmd, "4"}, Row{Phase::Running, In::ReloadCmd, "reload"},
        Row{Phase::Reloading, In::ReloadCmd, "4"}, Row{Phase::Upgrading, In::ReloadCmd, "4"},
        Row{Phase::ShuttingDown, In::ReloadCmd, "6"},
        Row{Phase::Booting, In::Usr2, "refused"}, Row{Phase::Running, In::Usr2, "upgrade"},
        Row{Phase::Reloading, In::Usr2, "refused"}, Row{Phase::Upgrading, In::Usr2, "refused"},
        Row{Phase::ShuttingDown, In::Usr2, "refused"},
        Row{Phase::Booting, In::UpgradeCmd, "4"}, Row{Phase::Running, In::UpgradeCmd, "upgrade"},
        Row{Phase::Reloading, In::UpgradeCmd, "4"}, Row{Phase::Upgrading, In::UpgradeCmd, "4"},
        Row{Phase::ShuttingDown, In::UpgradeCmd, "6"},
        Row{Phase::Booting, In::Ttin, "+1"}, Row{Phase::Running, In::Ttin, "+1"},
        Row{Phase::Reloading, In::Ttin, "+1"}, Row{Phase::Upgrading, In::Ttin, "+1"},
        Row{Phase::ShuttingDown, In::Ttin, "ignored"},
        Row{Phase::Booting, In::Ttou, "-1"}, Row{Phase::Running, In::Ttou, "-1"},
        Row{Phase::Reloading, In::Ttou, "-1"}, Row{Phase::Upgrading, In::Ttou, "-1"},
        Row{Phase::ShuttingDown, In::Ttou, "ignored"},
        Row{Phase::Booting, In::Term, "shutdown"}, Row{Phase::Running, In::Term, "shutdown"},
        Row{Phase::Reloading, In::Term, "shutdown"}, Row{Phase::Upgrading, In::Term, "shutdown"},
        Row{Phase::ShuttingDown, In::Term, "in progress"},
        Row{Phase::Booting, In::Int, "shutdown"}, Row{Phase::Running, In::Int, "shutdown"},
        Row{Phase::Reloading, In::Int, "shutdown"}, Row{Phase::Upgrading, In::Int, "shutdown"},
        Row{Phase::ShuttingDown, In::Int, "in progress"},
        Row{Phase::Booting, In::StopCmd, "shutdown"}, Row{Phase::Running, In::StopCmd, "shutdown"},
        Row{Phase::Reloading, In::StopCmd, "shutdown"}, Row{Phase::Upgrading, In::StopCmd, "shutdown"},
        Row{Phase::ShuttingDown, In::StopCmd, "in progress"},
        Row{Phase::Booting, In::Quit, "stop now"}, Row{Phase::Running, In::Quit, "stop now"},
        Row{Phase::Reloading, In::Quit, "stop now"}, Row{Phase::Upgrading, In::Quit, "stop now"},
        Row{Phase::ShuttingDown, In::Quit, "stop now"},
        Row{Phase::Booting, In::StatusCmd, "answered"}, Row{Phase::Running, In::StatusCmd, "answered"},
        Row{Phase::Reloading, In::StatusCmd, "answered"}, Row{Phase::Upgrading, In::StatusCmd, "answered"},
        Row{Phase::ShuttingDown, In::StatusCmd, "answered"},
        Row{Phase::Booting, In::Usr1, "reopen"}, Row{Phase::Running, In::Usr1, "reopen"},
        Row{Phase::Reloading, In::Usr1, "reopen"}, Row{Phase::Upgrading, In::Usr1, "reopen"},
        Row{Phase::ShuttingDown, In::Usr1, "reopen"},
        Row{Phase::Booting, In::ReopenCmd, "reopen answered"}, Row{Phase::Running, In::ReopenCmd, "reopen answered"},
        Row{Phase::Reloading, In::ReopenCmd, "reopen answered"}, Row{Phase::Upgrading, In::ReopenCmd, "reopen answered"},
        Row{Phase::ShuttingDown, In::ReopenCmd, "reopen answered"},
        Row{Phase::Booting, In::StopNowCmd, "stop now"}, Row{Phase::Running, In::StopNowCmd, "stop now"},
        Row{Phase::Reloading, In::StopNowCmd, "stop now"}, Row{Phase::Upgrading, In::StopNowCmd, "stop now"},
        Row{Phase::ShuttingDown, In::StopNowCmd, "stop now"},
        Row{Phase::Running, In::Winch, "logged"}, Row{Phase::ShuttingDown, In::Winch, "logged"}),
    [](const ::testing::TestParamInfo<Row>& info) {
      std::string name = std::string(core::phase_name(info.param.phase)) + "_" + in_name(info.param.in);
      std::erase_if(name, [](char c) { return !std::isalnum(static_cast<unsigned char>(c)) && c != '_'; });
      return name;
    });

}  // namespace
}  // namespace shoal::test
