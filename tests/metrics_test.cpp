// The metrics region (common/metrics.hpp): what workers record, what masters fold, and what a
// scrape reads, with the masters of an upgrade played by two handles on one memfd. The text
// format is checked by Prometheus's own promtool.
#include "common/metrics.hpp"

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <memory>
#include <thread>

#include "support/shoal_process.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;
using namespace metrics;

uint64_t requests(const Snapshot& s, int code) { return s.totals.requests[code - kFirstCode].get(); }

void take(const Shared& any, Snapshot& s) { EXPECT_TRUE(read(*any.region(), s)); }
uint64_t requests_now(const Shared& any, int code) {
  auto s = std::make_unique<Snapshot>();
  take(any, *s);
  return requests(*s, code);
}

std::unique_ptr<Lifecycle> life_with(uint64_t reloads_ok, uint64_t generation) {
  auto owned = std::make_unique<Lifecycle>();
  Lifecycle& life = *owned;
  life.reloads[kOk].set(reloads_ok);
  life.serving_generation.set(generation);
  life.last_load_ok.set(1);
  life.last_load_at_ms.set(1000 + reloads_ok);
  life.last_success_at_ms.set(1000 + reloads_ok);
  life.generations[0].number.set(generation);
  life.generations[0].ready.set(1);
  return owned;
}

// A new region with a block claimed, as the first master has it.
void create_claimed(Shared& master, int pid = getpid()) {
  std::string err;
  ASSERT_TRUE(master.create(err)) << err;
  ASSERT_TRUE(master.claim(pid, false, err)) << err;
}

// A slot for a worker of `generation` that forked as `pid`.
int live_slot(Shared& master, uint64_t generation, int index, int pid) {
  int slot = master.take_slot(generation, index);
  master.slot_forked(slot, pid);
  return slot;
}

TEST(Metrics, AWorkersCountsSurviveItsExitAndAHandOverToANewMaster) {
  Shared old_master;
  create_claimed(old_master);
  std::string err;
  int slot = live_slot(old_master, 1, 0, 4242);
  ASSERT_GE(slot, 0);
  WorkerCounters* w = old_master.counters(slot);
  for (int i = 0; i < 10; ++i) w->record(200, 100, 300);
  w->record(404, 10, 20'000'000);
  old_master.publish(*life_with(3, 4));
  Snapshot s;
  take(old_master, s);
  EXPECT_EQ(requests(s, 200), 10u);
  EXPECT_EQ(requests(s, 404), 1u);
  EXPECT_EQ(s.totals.duration_buckets[2].get(), 10u);         // 300 µs: the 0.0005 s bucket
  EXPECT_EQ(s.totals.duration_buckets[kBuckets].get(), 1u);   // 20 s: above every bound
  EXPECT_EQ(s.totals.response_bytes.get(), 1010u);
  EXPECT_EQ(s.life.reloads[kOk].get(), 3u);
  ASSERT_EQ(s.workers.size(), 1u);
  EXPECT_EQ(s.workers[0].pid, 4242);

  // The successor maps the same region (as SHOAL_METRICS_FD hands it over) and starts its own workers.
  Shared new_master;
  ASSERT_TRUE(new_master.map(dup(old_master.fd()), err)) << err;
  ASSERT_TRUE(new_master.claim(getpid() + 1, false, err)) << err;
  int fresh = new_master.take_slot(5, 0);
  new_master.counters(fresh)->record(200, 1, 1);
  new_master.publish(*life_with(0, 5));
  take(new_master, s);
  EXPECT_EQ(requests(s, 200), 11u);
  EXPECT_EQ(s.serving_generation, 5u);  // the newest master's
  EXPECT_EQ(s.life.reloads[kOk].get(), 3u);
  ASSERT_EQ(s.generations.size(), 2u);  // the old generation, still draining, stays visible

  // The old worker exits (cpu from wait4 is larger than its last heartbeat's), then its master.
  w->cpu_us.set(500);
  old_master.fold_slot(slot, 800);
  EXPECT_EQ(requests_now(new_master, 200), 11u);
  old_master.exited();
  new_master.publish(*life_with(1, 5));  // folds the exited block into its own
  take(new_master, s);
  EXPECT_EQ(requests(s, 200), 11u);
  EXPECT_EQ(requests(s, 404), 1u);
  EXPECT_EQ(s.totals.cpu_us.get(), 800u);
  EXPECT_EQ(s.life.reloads[kOk].get(), 4u);
  ASSERT_EQ(s.generations.size(), 1u);
  EXPECT_EQ(s.generations[0].number, 5u);
  EXPECT_EQ(s.region_blocks_in_use, 1u);
}

TEST(Metrics, AnUpgradeInPlaceKeepsItsBlockAndWhatItsOldImageCounted) {
  Shared image;
  create_claimed(image);
  std::string err;
  int slot = live_slot(image, 1, 0, 4242);
  image.counters(slot)->record(200, 5, 5);
  image.publish(*life_with(2, 1));
  // The new image maps the fd the hand-over names; its core counts from zero again.
  Shared next;
  ASSERT_TRUE(next.map(dup(image.fd()), err)) << err;
  ASSERT_TRUE(next.claim(getpid(), true, err)) << err;
  Snapshot s;
  take(next, s);
  EXPECT_EQ(s.life.reloads[kOk].get(), 2u);
  EXPECT_EQ(s.last_success_at_ms, 1002u);  // kept until the new image loads a config itself
  EXPECT_EQ(next.slot_of(4242), slot);      // the adopted worker's slot
  next.publish(*life_with(1, 2));
  take(next, s);
  EXPECT_EQ(s.life.reloads[kOk].get(), 3u);
  EXPECT_EQ(requests(s, 200), 1u);
  next.fold_slot(next.slot_of(4242), 0);
  EXPECT_EQ(requests_now(next, 200), 1u);
}

TEST(Metrics, AMasterKilledWithoutExitingIsFoldedByTheNextOne) {
  Shared dead, next;
  // A pid that cannot exist (above pid_max), standing for a master killed by SIGKILL.
  create_claimed(dead, 0x3fffffff);
  std::string err;
  int slot = dead.take_slot(1, 0);
  dead.counters(slot)->record(503, 0, 1);
  ASSERT_TRUE(next.map(dup(dead.fd()), err)) << err;
  ASSERT_TRUE(next.claim(getpid(), false, err)) << err;
  Snapshot s;
  take(next, s);
  EXPECT_EQ(requests(s, 503), 1u);
  EXPECT_EQ(s.region_blocks_in_use, 1u);
}

// Workers record while masters fold exited workers and start new ones: a reader never sees a
// counter go down, and in the end sees every request.
TEST(Metrics, AReaderNeverSeesACounterGoDownWhileMastersFold) {
  Shared master;
  create_claimed(master);
  std::atomic<bool> done{false};
  std::atomic<uint64_t> recorded{0};
  std::atomic<int> current{master.take_slot(1, 0)};
  std::atomic<uint64_t> went_down{0}, reads{0};
  std::thread reader([&] {
    uint64_t last = 0;
    Snapshot s;
    while (!done.load()) {
      if (!read(*master.region(), s)) continue;
      uint64_t now = requests(s, 200);
      if (now < last) went_down.fetch_add(1);
      last = now;
      reads.fetch_add(1);
    }
  });
  // One "worker" at a time records, then "exits" and is folded; the next starts at once. Each
  // fold waits for the reader's next whole read, so that folds and reads interleave however the
  // threads are scheduled; without the sequence check this fails (8 runs in 8 here). 20,000 folds
  // take 60 ms on an idle machine; on a loaded one the test stops at 5 s with what it did.
  constexpr int kFolds = 20000;
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  int folds = 0;
  for (; folds < kFolds && std::chrono::steady_clock::now() < until; ++folds) {
    WorkerCounters* w = master.counters(current.load());
    for (int i = 0; i < 50; ++i) w->record(200, 1, 1), recorded.fetch_add(1);
    uint64_t seen = reads.load();
    while (reads.load() == seen && std::chrono::steady_clock::now() < until) std::this_thread::yield();
    int next = master.take_slot(1, 0);
    master.fold_slot(current.load(), 0);
    current.store(next);
  }
  done.store(true);
  reader.join();
  EXPECT_EQ(went_down.load(), 0u);
  EXPECT_GE(folds, 100) << "the machine let this test fold too few times to mean anything";
  EXPECT_GE(reads.load(), static_cast<uint64_t>(folds) - 1);
  EXPECT_EQ(requests_now(master, 200), recorded.load());
}

// A master preempted in the middle of a change (its block's sequence odd for 50 ms, as on a
// loaded machine): a scrape waits for it instead of failing.
TEST(Metrics, AReaderWaitsOutAMasterPreemptedInTheMiddleOfAChange) {
  Shared master;
  create_claimed(master);
  master.counters(live_slot(master, 1, 0, 4242))->record(200, 1, 1);
  std::atomic<uint32_t>& seq = master.block()->seq;
  seq.fetch_add(1);
  std::thread writer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    seq.fetch_add(1);
  });
  auto s = std::make_unique<Snapshot>();
  auto started = std::chrono::steady_clock::now();
  EXPECT_TRUE(read(*master.region(), *s));
  EXPECT_GE(std::chrono::steady_clock::now() - started, std::chrono::milliseconds(45));
  writer.join();
  EXPECT_EQ(requests(*s, 200), 1u);
  // And publishing what is already published changes nothing, so it does not take the lock.
  master.publish(*life_with(1, 1));
  uint32_t after_first = seq.load();
  master.publish(*life_with(1, 1));
  EXPECT_EQ(seq.load(), after_first);
  master.publish(*life_with(2, 1));
  EXPECT_EQ(seq.load(), after_first + 2);
}

TEST(Metrics, TheTextFormatPassesPromtoolAndNamesEveryFigure) {
  Shared master;
  create_claimed(master);
  std::string err;
  int slot = live_slot(master, 3, 1, 77);
  WorkerCounters* w = master.counters(slot);
  w->record(200, 10, 50);
  w->record(200, 10, 700);
  w->record(500, 0, 3'000'000);
  w->accepted.add(2);
  w->idle.set(4);
  w->rss_bytes.set(5'000'000);
  w->cpu_us.set(1'500'000);
  w->hook_failed("close \"db\"\npool");
  master.publish(*life_with(1, 3));
  Snapshot s;
  take(master, s);
  std::string text;
  render(s, "1.2.3", {{"127.0.0.1:8080", 3, 511}}, text);
  EXPECT_THAT(text, HasSubstr("shoal_build_info{version=\"1.2.3\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("shoal_requests_total{code=\"200\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("shoal_requests_total{code=\"500\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("shoal_request_duration_seconds_bucket{le=\"0.0001\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("shoal_request_duration_seconds_bucket{le=\"0.001\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("shoal_request_duration_seconds_bucket{le=\"2.5\"} 2\n"));
  EXPECT_THAT(text, HasSubstr("shoal_request_duration_seconds_bucket{le=\"5\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("shoal_request_duration_seconds_bucket{le=\"+Inf\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("shoal_request_duration_seconds_sum 3.000750\n"));
  EXPECT_THAT(text, HasSubstr("shoal_request_duration_seconds_count 3\n"));
  EXPECT_THAT(text, HasSubstr("shoal_connections{generation=\"3\",state=\"idle\"} 4\n"));
  EXPECT_THAT(text, HasSubstr("shoal_listen_queue_length{listener=\"127.0.0.1:8080\"} 3\n"));
  EXPECT_THAT(text, HasSubstr("shoal_listen_queue_limit{listener=\"127.0.0.1:8080\"} 511\n"));
  EXPECT_THAT(text, HasSubstr("shoal_worker_cpu_seconds_total 1.500000\n"));
  EXPECT_THAT(text, HasSubstr("shoal_worker_resident_memory_bytes{generation=\"3\",worker=\"1\"} 5000000\n"));
  EXPECT_THAT(text, HasSubstr("shoal_workers{generation=\"3\",state=\"ready\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("shoal_reloads_total{outcome=\"ok\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("shoal_hook_failures_total{hook=\"close \\\"db\\\"\\npool\"} 1\n"));
  for (const char* name : {"shoal_start_time_seconds", "shoal_generation", "shoal_draining",
                           "shoal_config_last_reload_successful", "shoal_config_last_reload_success_timestamp_seconds",
                           "shoal_upgrades_total", "shoal_worker_restarts_total", "shoal_response_bytes_total",
                           "shoal_connections_accepted_total"})
    EXPECT_THAT(text, HasSubstr(std::string("\n# TYPE ") + name + " ")) << name;

  TempDir dir;
  std::string path = dir.write("metrics.txt", text);
  std::string output;
  int code = run_command({"/bin/sh", "-c", "promtool check metrics < " + path}, output);
  EXPECT_EQ(code, 0) << "promtool (Debian's prometheus package; build.sh installs it):\n" << output;
}

}  // namespace
}  // namespace shoal::test
