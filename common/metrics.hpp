// The server's figures for Prometheus, where every process reaches them: one shared region (a
// memfd, mapped MAP_SHARED) that the first master creates and hands to every master after it (an
// upgrade passes the fd with the sockets), so that no counter resets while the server runs.
//
// The region holds a block per master (two at once during a hand-over). A block holds its
// master's lifecycle figures, published after every step of its core, the counters of its
// workers that exited (folded in at reap), and one slot per live worker. A worker writes only
// its own slot, with plain stores (one writer: no lock, no read-modify-write, no syscall);
// masters change what a reader sums (a slot folded into its block, a block folded into another)
// only inside their block's sequence lock, and a reader retries until it copied every block
// between two equal readings of every sequence.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shoal::metrics {

// Request duration buckets, upper bounds in µs: a server that answers in microseconds to seconds.
constexpr int64_t kBucketBoundsUs[] = {100, 250, 500, 1'000, 2'500, 5'000, 10'000, 25'000, 50'000,
                                      100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000};
constexpr int kBuckets = sizeof kBucketBoundsUs / sizeof kBucketBoundsUs[0];
constexpr int kFirstCode = 100, kCodes = 500;  // status codes 100..599
constexpr int kHooks = 8, kHookName = 48;
constexpr int kSlots = 128;     // live workers per master
constexpr int kBlocks = 4;      // masters at once (a hand-over, and one more)
constexpr int kGenerations = 8; // generations per master shown in shoal_workers
// Why a worker was replaced: shoal_worker_restarts_total{reason}.
enum Restart { kCrash, kHeartbeat, kMaxRequests, kMaxWorkerRss, kReadyTimeout, kRestartReasons };
// What a reload or an upgrade came to: shoal_reloads_total{outcome}, shoal_upgrades_total{outcome}.
enum Outcome { kOk, kConfigInvalid, kStartFailed, kNotReady, kCancelled, kOutcomes };
const char* restart_label(int reason);
const char* outcome_label(int outcome);

// One process writes it; others read it. Relaxed loads and stores of aligned 64-bit words are
// single instructions on every platform shoal builds for, never torn.
struct Counter {
  std::atomic<uint64_t> value{0};
  void add(uint64_t n) { value.store(value.load(std::memory_order_relaxed) + n, std::memory_order_relaxed); }
  void set(uint64_t n) { value.store(n, std::memory_order_relaxed); }
  uint64_t get() const { return value.load(std::memory_order_relaxed); }
};

// A worker's own figures, in its slot.
struct WorkerCounters {
  Counter requests[kCodes];
  Counter duration_buckets[kBuckets + 1];  // the last: above every bound (+Inf minus the others)
  Counter duration_us;                     // the sum
  Counter response_bytes;
  Counter accepted;
  Counter cpu_us;  // user + system, refreshed each heartbeat (and at reap from wait4)
  struct Hook {
    char name[kHookName];
    Counter failures;
  } hooks[kHooks];
  // Gauges, refreshed each heartbeat; not folded when the worker exits.
  Counter reading, writing, idle, rss_bytes;

  // The request path: a few stores into this worker's own cache lines.
  void record(int status, uint64_t body_bytes, int64_t duration_us);
  void hook_failed(std::string_view name, uint64_t times = 1);
  void add_counters(const WorkerCounters& other);  // folds the counters (not the gauges)
  void clear();
};

// What a master publishes of its core after every step.
struct Lifecycle {
  Counter reloads[kOutcomes], upgrades[kOutcomes], restarts[kRestartReasons];
  Counter serving_generation;
  Counter last_load_ok;         // 1: the last config load (the start's, or a reload's) succeeded
  Counter last_load_at_ms;      // wall clock: when it happened
  Counter last_success_at_ms;   // wall clock: the last load that succeeded
  struct Generation {
    Counter number;  // 0: unused
    Counter starting, ready, draining;
    Counter drain_started_at_ms;  // wall clock; 0: not draining
    Counter shutdown_timeout_ms;
  } generations[kGenerations];
  void add_counters(const Lifecycle& other);  // the counters only
  void clear();
};

struct SlotHeader {
  std::atomic<uint32_t> live{0};
  std::atomic<int32_t> pid{0};
  std::atomic<uint64_t> generation{0};
  std::atomic<int32_t> index{0};
};

struct Block {
  enum State : uint32_t { Free = 0, Live = 1, Exited = 2 };
  std::atomic<uint32_t> state{Free};
  std::atomic<uint32_t> seq{0};  // odd while its master changes what readers sum
  std::atomic<int32_t> pid{0};
  std::atomic<uint64_t> epoch{0};  // the order masters claimed blocks in
  Lifecycle life;    // this master's core, since it (or its image) started
  Lifecycle folded;  // what earlier masters and images counted
  WorkerCounters retired;  // workers that exited
  SlotHeader slots[kSlots];
};

struct Region {
  static constexpr uint64_t kMagic = 0x73686f616c4d3031;  // "shoalM01"
  std::atomic<uint64_t> magic{0};
  std::atomic<uint64_t> start_time_ms{0};  // wall clock: the first master's start
  std::atomic<uint64_t> next_epoch{1};
  Block blocks[kBlocks];
  WorkerCounters counters[kBlocks][kSlots];
};

// Everything a scrape shows, copied consistently.
struct Snapshot {
  uint64_t start_time_ms = 0;
  uint64_t now_ms = 0;  // wall clock, when it was read
  WorkerCounters totals;  // every worker's counters, live and exited (gauges unused)
  Lifecycle life;         // counters summed; the rest from the newest master
  struct Worker {
    uint64_t generation;
    int index;
    int pid;
    uint64_t reading, writing, idle, rss_bytes;
  };
  std::vector<Worker> workers;
  struct Gen {
    uint64_t number, starting, ready, draining, drain_started_at_ms, shutdown_timeout_ms;
  };
  std::vector<Gen> generations;
  uint64_t serving_generation = 0;
  uint64_t draining_generations = 0;
  uint64_t region_blocks_in_use = 0;  // masters whose figures are in it (2 during a hand-over)
  bool last_load_ok = true;
  uint64_t last_success_at_ms = 0;
};

// A master's handle on the region: create it (the first master) or map the one it was handed.
class Shared {
 public:
  Shared() = default;
  ~Shared();
  Shared(const Shared&) = delete;
  Shared& operator=(const Shared&) = delete;

  // The first master: a new region. false (err set) if memfd_create or mmap fail.
  bool create(std::string& err);
  // A successor master or a new image: the region at fd (taken over, close-on-exec).
  bool map(int fd, std::string& err);
  // Takes a block for this master (a new master), folding into it every block whose master
  // exited. `same_image`: this process's own block is kept (an upgrade in place), and what its
  // old image counted moves to `folded`.
  bool claim(int pid, bool same_image, std::string& err);
  int fd() const { return fd_; }
  Region* region() const { return region_; }
  Block* block() const { return block_; }

  // A slot for a worker about to fork, zeroed; -1 if every slot is taken.
  int take_slot(uint64_t generation, int index);
  void slot_forked(int slot, int pid);
  WorkerCounters* counters(int slot) const;
  int slot_of(int pid) const;  // -1: none
  // The worker exited: its counters (cpu at least `cpu_us`, from wait4) join the block's retired.
  void fold_slot(int slot, uint64_t cpu_us);
  // The core's figures after a step.
  void publish(const Lifecycle& life);
  // This master is done: its block may be folded by its successor.
  void exited();
  // Folds into this one the blocks whose masters exited (and, dead_too, whose masters are gone
  // without saying so: a SIGKILL).
  void fold_exited(bool dead_too);

 private:
  bool would_change(const Lifecycle& life) const;
  void begin() { block_->seq.fetch_add(1, std::memory_order_acq_rel); }
  void end() { block_->seq.fetch_add(1, std::memory_order_release); }
  int fd_ = -1;
  Region* region_ = nullptr;
  Block* block_ = nullptr;
  int block_index_ = -1;
};

// Copies every block consistently: false if the masters kept changing it for a second.
bool read(const Region& region, Snapshot& out);

// The Prometheus text exposition format (0.0.4) of a snapshot, plus what only the scraping
// worker reads itself: its listeners' accept queues.
struct ListenQueue {
  std::string listener;
  uint64_t length, limit;
};
void render(const Snapshot& s, std::string_view version, const std::vector<ListenQueue>& queues, std::string& out);

}  // namespace shoal::metrics
