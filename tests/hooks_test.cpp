// HookRunner in-process: reverse order is the caller's; here, that hooks run one after another,
// each bounded, and that every one settles whatever the others do.
#include <event2/event.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>

#include "support/shoal_process.hpp"
#include "worker/hooks.hpp"

namespace shoal {
namespace {

using namespace std::chrono_literals;

class HooksTest : public ::testing::Test {
 protected:
  void SetUp() override { base_ = event_base_new(); }
  void TearDown() override {
    runner_.reset();
    event_base_free(base_);
  }

  // Runs the hooks to the end (or the deadline); returns the failure count, -1 if unfinished.
  int run(std::vector<CleanupHook> hooks, std::chrono::milliseconds deadline = 5s) {
    int failures = -1;
    runner_ = std::make_unique<HookRunner>(base_, std::move(hooks), [&](int f) { failures = f; });
    runner_->start();
    auto end = std::chrono::steady_clock::now() + deadline;
    while (failures < 0 && std::chrono::steady_clock::now() < end) event_base_loop(base_, EVLOOP_ONCE);
    return failures;
  }

  CleanupHook sync(const std::string& name, std::function<void()> fn) {
    return {name, 1s, [fn](event_base*, HookDone done) { fn(); done(true, ""); }, {}};
  }

  event_base* base_;
  std::unique_ptr<HookRunner> runner_;
  std::vector<std::string> trace_;
};

TEST_F(HooksTest, RunOneAfterAnotherInTheGivenOrder) {
  EXPECT_EQ(run({sync("a", [&] { trace_.push_back("a"); }), sync("b", [&] { trace_.push_back("b"); }),
                 sync("c", [&] { trace_.push_back("c"); })}),
            0);
  EXPECT_EQ(trace_, (std::vector<std::string>{"a", "b", "c"}));
}

TEST_F(HooksTest, AsynchronousHookIsWaitedFor) {
  CleanupHook later{"later", 1s, [&](event_base* base, HookDone done) {
                      trace_.push_back("later started");
                      auto* parked = new HookDone(std::move(done));
                      timeval tv{0, 50'000};
                      event_base_once(base, -1, EV_TIMEOUT, [](evutil_socket_t, short, void* d) {
                        std::unique_ptr<HookDone> finish(static_cast<HookDone*>(d));
                        (*finish)(true, "");
                      }, parked, &tv);
                    }, {}};
  auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(run({later, sync("next", [&] { trace_.push_back("next"); })}), 0);
  EXPECT_GE(std::chrono::steady_clock::now() - began, 45ms);
  EXPECT_EQ(trace_, (std::vector<std::string>{"later started", "next"}));
}

TEST_F(HooksTest, ThrowingFailingAndTimingOutHooksAllSettleAndTheRestStillRun) {
  bool cancelled = false;
  HookDone kept;  // a hook that never calls done: it times out
  CleanupHook hangs{"hangs", 100ms, [&](event_base*, HookDone done) { kept = done; }, [&] { cancelled = true; }};
  CleanupHook fails{"fails", 1s, [](event_base*, HookDone done) { done(false, "pool refused to close"); }, {}};
  int failures = run({sync("throws", [] { throw std::runtime_error("boom"); }), fails, hangs,
                      sync("last", [&] { trace_.push_back("last ran"); })});
  EXPECT_EQ(failures, 3);
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(trace_, (std::vector<std::string>{"last ran"}));
  // A hook that answers after its timeout changes nothing.
  kept(true, "");
  EXPECT_EQ(failures, 3);
}

TEST_F(HooksTest, DoneCalledTwiceCountsOnce) {
  CleanupHook twice{"twice", 1s, [](event_base*, HookDone done) { done(false, "first"); done(true, "second"); }, {}};
  EXPECT_EQ(run({twice, sync("after", [&] { trace_.push_back("after"); })}), 1);
  EXPECT_EQ(trace_.size(), 1u);
}

TEST_F(HooksTest, CommandHookSucceedsOnExitZeroAndFailsOtherwise) {
  test::TempDir dir;
  std::string out = dir.path() + "/env";
  std::vector<CleanupHook> hooks = {
      command_hook("ok", {"sh", "-c", "echo $SHOAL_HOOK $SHOAL_WORKER_INDEX $SHOAL_GENERATION > " + out}, 2s, 2, 3, 7),
      command_hook("bad", {"sh", "-c", "exit 4"}, 2s, 2, 3, 7),
      command_hook("missing", {"/nonexistent/program"}, 2s, 2, 3, 7),
      command_hook("slow", {"sleep", "30"}, 100ms, 2, 3, 7)};
  auto began = std::chrono::steady_clock::now();
  EXPECT_EQ(run(std::move(hooks)), 3);
  EXPECT_LT(std::chrono::steady_clock::now() - began, 3s);
  std::ifstream in(out);
  std::string line;
  std::getline(in, line);
  EXPECT_EQ(line, "ok 3 7");
}

TEST_F(HooksTest, NoHooksFinishesAtOnce) { EXPECT_EQ(run({}), 0); }

}  // namespace
}  // namespace shoal
