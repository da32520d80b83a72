#include "common/metrics.hpp"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sched.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>

#include "common/sys.hpp"

namespace shoal::metrics {
namespace {

constexpr std::memory_order relaxed = std::memory_order_relaxed;

std::string failed(const char* call) { return std::string(call) + " failed: " + errno_text(errno); }

void add_all(Counter* into, const Counter* from, int n) {
  for (int i = 0; i < n; ++i) into[i].add(from[i].get());
}

void zero(Counter* counters, int n) {
  for (int i = 0; i < n; ++i) counters[i].set(0);
}

// Prometheus's text format: a label value escapes backslash, double quote and line feed.
void append_label_value(std::string& out, std::string_view value) {
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

void append_number(std::string& out, uint64_t n) {
  char buf[24];
  int len = snprintf(buf, sizeof buf, "%llu", static_cast<unsigned long long>(n));
  out.append(buf, static_cast<size_t>(len));
}

// Seconds from µs or ms, exactly as many digits as they carry.
void append_seconds(std::string& out, uint64_t units, uint64_t per_second) {
  char buf[40];
  int digits = per_second == 1'000'000 ? 6 : 3;
  int len = snprintf(buf, sizeof buf, "%llu.%0*llu", static_cast<unsigned long long>(units / per_second), digits,
                     static_cast<unsigned long long>(units % per_second));
  out.append(buf, static_cast<size_t>(len));
}

struct Family {
  std::string& out;
  Family(std::string& o, const char* name, const char* type, const char* help) : out(o) {
    out += "# HELP ";
    out += name;
    out += ' ';
    out += help;
    out += "\n# TYPE ";
    out += name;
    out += ' ';
    out += type;
    out += '\n';
  }
};

// name{k1="v1",k2="v2"} value
void sample(std::string& out, std::string_view name, std::initializer_list<std::pair<const char*, std::string_view>> labels,
            uint64_t value) {
  out += name;
  if (labels.size()) {
    out += '{';
    bool first = true;
    for (const auto& [k, v] : labels) {
      if (!first) out += ',';
      first = false;
      out += k;
      out += "=\"";
      append_label_value(out, v);
      out += '"';
    }
    out += '}';
  }
  out += ' ';
  append_number(out, value);
  out += '\n';
}

}  // namespace

const char* restart_label(int reason) {
  static const char* const kNames[] = {"crash", "heartbeat", "max_requests", "max_worker_rss", "ready_timeout"};
  return reason >= 0 && reason < kRestartReasons ? kNames[reason] : "unknown";
}

const char* outcome_label(int outcome) {
  static const char* const kNames[] = {"ok", "config_invalid", "start_failed", "not_ready", "cancelled"};
  return outcome >= 0 && outcome < kOutcomes ? kNames[outcome] : "unknown";
}

// ---------------------------------------------------------------- the writers' side

void WorkerCounters::record(int status, uint64_t body_bytes, int64_t duration_us) {
  unsigned code = static_cast<unsigned>(status - kFirstCode);
  if (code < kCodes) requests[code].add(1);
  int bucket = 0;
  while (bucket < kBuckets && duration_us > kBucketBoundsUs[bucket]) ++bucket;
  duration_buckets[bucket].add(1);
  this->duration_us.add(static_cast<uint64_t>(std::max<int64_t>(duration_us, 0)));
  response_bytes.add(body_bytes);
}

void WorkerCounters::hook_failed(std::string_view name, uint64_t times) {
  name = name.substr(0, sizeof hooks[0].name - 1);
  for (Hook& hook : hooks) {
    if (hook.name[0] == '\0') {
      memcpy(hook.name, name.data(), name.size());
      hook.name[name.size()] = '\0';
    }
    if (std::string_view(hook.name) == name) {
      hook.failures.add(times);
      return;
    }
  }
}

void WorkerCounters::add_counters(const WorkerCounters& other) {
  add_all(requests, other.requests, kCodes);
  add_all(duration_buckets, other.duration_buckets, kBuckets + 1);
  duration_us.add(other.duration_us.get());
  response_bytes.add(other.response_bytes.get());
  accepted.add(other.accepted.get());
  cpu_us.add(other.cpu_us.get());
  for (const Hook& hook : other.hooks)
    if (hook.name[0] != '\0')
      hook_failed(hook.name, hook.failures.get());
}

void WorkerCounters::clear() {
  zero(requests, kCodes);
  zero(duration_buckets, kBuckets + 1);
  for (Counter* c : {&duration_us, &response_bytes, &accepted, &cpu_us, &reading, &writing, &idle, &rss_bytes}) c->set(0);
  for (Hook& hook : hooks) {
    hook.name[0] = '\0';
    hook.failures.set(0);
  }
}

namespace {
constexpr Counter Lifecycle::Generation::*kGenerationFields[] = {
    &Lifecycle::Generation::number,   &Lifecycle::Generation::starting,
    &Lifecycle::Generation::ready,    &Lifecycle::Generation::draining,
    &Lifecycle::Generation::drain_started_at_ms, &Lifecycle::Generation::shutdown_timeout_ms};
}  // namespace

void Lifecycle::clear() {
  for (Counter* c : {&serving_generation, &last_load_ok, &last_load_at_ms, &last_success_at_ms}) c->set(0);
  zero(reloads, kOutcomes);
  zero(upgrades, kOutcomes);
  zero(restarts, kRestartReasons);
  for (Generation& g : generations)
    for (auto field : kGenerationFields) (g.*field).set(0);
}

void Lifecycle::add_counters(const Lifecycle& other) {
  add_all(reloads, other.reloads, kOutcomes);
  add_all(upgrades, other.upgrades, kOutcomes);
  add_all(restarts, other.restarts, kRestartReasons);
}

Shared::~Shared() {
  if (region_) munmap(region_, sizeof(Region));
  if (fd_ >= 0) ::close(fd_);
}

bool Shared::create(std::string& err) {
  int fd = memfd_create("shoal-metrics", MFD_CLOEXEC);
  if (fd < 0) return err = failed("memfd_create"), false;
  if (ftruncate(fd, sizeof(Region)) != 0) {
    err = failed("ftruncate");
    ::close(fd);
    return false;
  }
  if (!map(fd, err)) return false;
  // The memfd reads as zeros, every field's initial value: touching all of it would make 2 MB resident.
  region_->next_epoch.store(1);
  timespec now;
  clock_gettime(CLOCK_REALTIME, &now);
  region_->start_time_ms.store(static_cast<uint64_t>(now.tv_sec) * 1000 + static_cast<uint64_t>(now.tv_nsec) / 1'000'000);
  region_->magic.store(Region::kMagic, std::memory_order_release);
  return true;
}

bool Shared::map(int fd, std::string& err) {
  void* at = mmap(nullptr, sizeof(Region), PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (at == MAP_FAILED) {
    err = failed("mmap of the metrics region");
    ::close(fd);
    return false;
  }
  fcntl(fd, F_SETFD, FD_CLOEXEC);
  fd_ = fd;
  region_ = static_cast<Region*>(at);
  return true;
}

bool Shared::claim(int pid, bool same_image, std::string& err) {
  if (region_->magic.load(std::memory_order_acquire) != Region::kMagic) return err = "the metrics region is not shoal's", false;
  if (same_image) {
    for (int b = 0; b < kBlocks; ++b) {
      Block& block = region_->blocks[b];
      if (block.state.load() == Block::Live && block.pid.load() == pid) {
        block_ = &block;
        block_index_ = b;
        begin();
        block.folded.add_counters(block.life);
        zero(block.life.reloads, kOutcomes);  // the rest stays until the new image publishes its own
        zero(block.life.upgrades, kOutcomes);
        zero(block.life.restarts, kRestartReasons);
        end();
        return true;
      }
    }
  }
  for (int b = 0; b < kBlocks; ++b) {
    Block& block = region_->blocks[b];
    uint32_t free = Block::Free;
    if (!block.state.compare_exchange_strong(free, Block::Live)) continue;
    block_ = &block;
    block_index_ = b;
    begin();
    block.pid.store(pid);
    block.epoch.store(region_->next_epoch.fetch_add(1));
    block.life.clear();
    block.folded.clear();
    block.retired.clear();
    for (SlotHeader& slot : block.slots) slot.live.store(0);
    end();
    fold_exited(true);
    return true;
  }
  return err = "every block of the metrics region is taken (" + std::to_string(kBlocks) + " masters at once)", false;
}

int Shared::take_slot(uint64_t generation, int index) {
  if (!block_) return -1;
  for (int s = 0; s < kSlots; ++s) {
    SlotHeader& slot = block_->slots[s];
    if (slot.live.load(relaxed)) continue;
    begin();
    region_->counters[block_index_][s].clear();
    slot.generation.store(generation, relaxed);
    slot.index.store(index, relaxed);
    slot.pid.store(0, relaxed);
    slot.live.store(1, relaxed);
    end();
    return s;
  }
  return -1;
}

void Shared::slot_forked(int slot, int pid) {
  if (block_ && slot >= 0) block_->slots[slot].pid.store(pid, relaxed);
}

WorkerCounters* Shared::counters(int slot) const {
  return block_ && slot >= 0 ? &region_->counters[block_index_][slot] : nullptr;
}

int Shared::slot_of(int pid) const {
  if (!block_) return -1;
  for (int s = 0; s < kSlots; ++s)
    if (block_->slots[s].live.load(relaxed) && block_->slots[s].pid.load(relaxed) == pid) return s;
  return -1;
}

void Shared::fold_slot(int slot, uint64_t cpu_us) {
  if (!block_ || slot < 0 || !block_->slots[slot].live.load(relaxed)) return;
  WorkerCounters& c = region_->counters[block_index_][slot];
  begin();
  if (cpu_us > c.cpu_us.get()) c.cpu_us.set(cpu_us);
  block_->retired.add_counters(c);
  block_->slots[slot].live.store(0, relaxed);
  end();
}

// Whether publishing `life` would change what readers see (most steps change nothing).
bool Shared::would_change(const Lifecycle& life) const {
  const Lifecycle& to = block_->life;
  auto differ = [](const Counter* a, const Counter* b, int n) {
    for (int i = 0; i < n; ++i)
      if (a[i].get() != b[i].get()) return true;
    return false;
  };
  if (differ(to.reloads, life.reloads, kOutcomes) || differ(to.upgrades, life.upgrades, kOutcomes) ||
      differ(to.restarts, life.restarts, kRestartReasons) || to.serving_generation.get() != life.serving_generation.get())
    return true;
  if (life.last_load_at_ms.get() && (to.last_load_at_ms.get() != life.last_load_at_ms.get() ||
                                     to.last_load_ok.get() != life.last_load_ok.get()))
    return true;
  if (life.last_success_at_ms.get() && to.last_success_at_ms.get() != life.last_success_at_ms.get()) return true;
  for (int g = 0; g < kGenerations; ++g)
    for (auto field : kGenerationFields)
      if ((to.generations[g].*field).get() != (life.generations[g].*field).get()) return true;
  return false;
}

void Shared::publish(const Lifecycle& life) {
  if (!block_) return;
  fold_exited(false);
  if (!would_change(life)) return;
  begin();
  Lifecycle& to = block_->life;
  auto copy = [](Counter* into, const Counter* from, int n) {
    for (int i = 0; i < n; ++i) into[i].set(from[i].get());
  };
  copy(to.reloads, life.reloads, kOutcomes);
  copy(to.upgrades, life.upgrades, kOutcomes);
  copy(to.restarts, life.restarts, kRestartReasons);
  to.serving_generation.set(life.serving_generation.get());
  if (life.last_load_at_ms.get()) {  // none yet: an upgrade's new image keeps its old image's
    to.last_load_ok.set(life.last_load_ok.get());
    to.last_load_at_ms.set(life.last_load_at_ms.get());
  }
  if (life.last_success_at_ms.get()) to.last_success_at_ms.set(life.last_success_at_ms.get());
  for (int g = 0; g < kGenerations; ++g)
    for (auto field : kGenerationFields) (to.generations[g].*field).set((life.generations[g].*field).get());
  end();
}

void Shared::exited() {
  if (!block_) return;
  begin();
  for (int g = 0; g < kGenerations; ++g) block_->life.generations[g].number.set(0);
  end();
  block_->state.store(Block::Exited, std::memory_order_release);
  block_ = nullptr;
}

void Shared::fold_exited(bool dead_too) {
  if (!block_) return;
  for (int b = 0; b < kBlocks; ++b) {
    Block& other = region_->blocks[b];
    if (&other == block_) continue;
    uint32_t state = other.state.load(std::memory_order_acquire);
    // A master that died without saying so (SIGKILL) leaves its block Live: its counts are final.
    bool gone = dead_too && state == Block::Live && other.pid.load() > 0 && kill(other.pid.load(), 0) != 0 && errno == ESRCH;
    if (state != Block::Exited && !gone) continue;
    begin();
    block_->folded.add_counters(other.life);
    block_->folded.add_counters(other.folded);
    block_->retired.add_counters(other.retired);
    for (int s = 0; s < kSlots; ++s)
      if (other.slots[s].live.load(relaxed)) block_->retired.add_counters(region_->counters[b][s]);
    other.state.store(Block::Free, std::memory_order_release);
    end();
  }
}

// ---------------------------------------------------------------- the readers' side

bool read(const Region& region, Snapshot& out) {
  if (region.magic.load(std::memory_order_acquire) != Region::kMagic) return false;
  // A master changes its block in microseconds, but may be preempted in the middle on a busy
  // machine: spin a little, then yield, then sleep, for up to a second in all.
  timespec started;
  clock_gettime(CLOCK_MONOTONIC, &started);
  for (int attempt = 0;; ++attempt) {
    if (attempt >= 16) {
      timespec now;
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((now.tv_sec - started.tv_sec) * 1000 + (now.tv_nsec - started.tv_nsec) / 1'000'000 > 1000) return false;
      if (attempt < 64) {
        sched_yield();
      } else {
        timespec pause{0, 100'000};
        nanosleep(&pause, nullptr);
      }
    }
    uint32_t before[kBlocks];
    bool busy = false;
    for (int b = 0; b < kBlocks; ++b) {
      before[b] = region.blocks[b].seq.load(std::memory_order_acquire);
      busy |= (before[b] & 1) != 0;
    }
    if (busy) continue;
    Snapshot& s = out;
    s.totals.clear();
    s.life.clear();
    s.workers.clear();
    s.generations.clear();
    s.serving_generation = s.draining_generations = s.last_success_at_ms = s.region_blocks_in_use = 0;
    s.last_load_ok = true;
    s.start_time_ms = region.start_time_ms.load(relaxed);
    timespec wall;
    clock_gettime(CLOCK_REALTIME, &wall);
    s.now_ms = static_cast<uint64_t>(wall.tv_sec) * 1000 + static_cast<uint64_t>(wall.tv_nsec) / 1'000'000;
    uint64_t newest_epoch = 0, latest_load_at = 0;
    for (int b = 0; b < kBlocks; ++b) {
      const Block& block = region.blocks[b];
      uint32_t state = block.state.load(std::memory_order_acquire);
      if (state == Block::Free) continue;
      ++s.region_blocks_in_use;
      s.life.add_counters(block.life);
      s.life.add_counters(block.folded);
      s.totals.add_counters(block.retired);
      s.last_success_at_ms = std::max(s.last_success_at_ms, block.life.last_success_at_ms.get());
      if (block.life.last_load_at_ms.get() >= latest_load_at) {
        latest_load_at = block.life.last_load_at_ms.get();
        s.last_load_ok = block.life.last_load_ok.get() != 0;
      }
      if (state == Block::Live && block.epoch.load(relaxed) > newest_epoch) {
        newest_epoch = block.epoch.load(relaxed);
        s.serving_generation = block.life.serving_generation.get();
      }
      for (const Lifecycle::Generation& g : block.life.generations) {
        if (!g.number.get()) continue;
        s.generations.push_back({g.number.get(), g.starting.get(), g.ready.get(), g.draining.get(),
                                 g.drain_started_at_ms.get(), g.shutdown_timeout_ms.get()});
      }
      for (int slot = 0; slot < kSlots; ++slot) {
        const SlotHeader& h = block.slots[slot];
        if (!h.live.load(relaxed)) continue;
        const WorkerCounters& c = region.counters[b][slot];
        s.totals.add_counters(c);
        s.workers.push_back({h.generation.load(relaxed), h.index.load(relaxed), h.pid.load(relaxed), c.reading.get(),
                             c.writing.get(), c.idle.get(), c.rss_bytes.get()});
      }
    }
    std::atomic_thread_fence(std::memory_order_acquire);
    bool same = true;
    for (int b = 0; b < kBlocks; ++b) same &= region.blocks[b].seq.load(relaxed) == before[b];
    if (!same) continue;
    std::sort(s.generations.begin(), s.generations.end(), [](const auto& a, const auto& b) { return a.number < b.number; });
    for (const auto& g : s.generations)
      if (g.draining && !g.starting && !g.ready) ++s.draining_generations;
    std::sort(s.workers.begin(), s.workers.end(),
              [](const auto& a, const auto& b) { return a.generation != b.generation ? a.generation < b.generation : a.index < b.index; });
    return true;
  }
}

void render(const Snapshot& s, std::string_view version, const std::vector<ListenQueue>& queues, std::string& out) {
  out.clear();
  char text[24];
  auto number = [&](uint64_t n) {
    snprintf(text, sizeof text, "%llu", static_cast<unsigned long long>(n));
    return std::string_view(text);
  };

  Family(out, "shoal_build_info", "gauge", "A metric with a constant '1' value labeled by the version shoal was built from.");
  sample(out, "shoal_build_info", {{"version", version}}, 1);
  Family(out, "shoal_start_time_seconds", "gauge", "When the server started (the first master), in seconds since the epoch.");
  out += "shoal_start_time_seconds ";
  append_seconds(out, s.start_time_ms, 1000);
  out += '\n';
  Family(out, "shoal_generation", "gauge", "The worker generation that serves.");
  sample(out, "shoal_generation", {}, s.serving_generation);
  Family(out, "shoal_draining", "gauge", "Generations whose workers are all draining (old generations after a reload).");
  sample(out, "shoal_draining", {}, s.draining_generations);
  Family(out, "shoal_config_last_reload_successful", "gauge", "1 if the last reload (or the start) put its config into service; 0: it failed and the old config serves on.");
  sample(out, "shoal_config_last_reload_successful", {}, s.last_load_ok ? 1 : 0);
  Family(out, "shoal_config_last_reload_success_timestamp_seconds", "gauge",
         "When a reload (or the start) last put its config into service, in seconds since the epoch.");
  out += "shoal_config_last_reload_success_timestamp_seconds ";
  append_seconds(out, s.last_success_at_ms, 1000);
  out += '\n';

  Family(out, "shoal_reloads_total", "counter", "Reloads (SIGHUP, shoal reload), by outcome.");
  for (int o = 0; o < kOutcomes; ++o) sample(out, "shoal_reloads_total", {{"outcome", outcome_label(o)}}, s.life.reloads[o].get());
  Family(out, "shoal_upgrades_total", "counter", "Binary upgrades (SIGUSR2, shoal upgrade), by outcome.");
  for (int o = 0; o < kOutcomes; ++o) sample(out, "shoal_upgrades_total", {{"outcome", outcome_label(o)}}, s.life.upgrades[o].get());
  Family(out, "shoal_worker_restarts_total", "counter", "Workers replaced, by why.");
  for (int r = 0; r < kRestartReasons; ++r)
    sample(out, "shoal_worker_restarts_total", {{"reason", restart_label(r)}}, s.life.restarts[r].get());

  Family(out, "shoal_workers", "gauge", "Worker processes, by generation and state.");
  for (const auto& g : s.generations) {
    std::string gen(number(g.number));
    sample(out, "shoal_workers", {{"generation", gen}, {"state", "starting"}}, g.starting);
    sample(out, "shoal_workers", {{"generation", gen}, {"state", "ready"}}, g.ready);
    sample(out, "shoal_workers", {{"generation", gen}, {"state", "draining"}}, g.draining);
  }

  Family(out, "shoal_generation_draining_seconds", "gauge",
         "How long each draining generation has been draining (its workers are killed at its shutdown timeout).");
  for (const auto& g : s.generations) {
    if (!g.drain_started_at_ms) continue;
    out += "shoal_generation_draining_seconds{generation=\"";
    append_number(out, g.number);
    out += "\"} ";
    append_seconds(out, s.now_ms > g.drain_started_at_ms ? s.now_ms - g.drain_started_at_ms : 0, 1000);
    out += '\n';
  }
  Family(out, "shoal_generation_shutdown_timeout_seconds", "gauge", "Each generation's [shutdown] timeout.");
  for (const auto& g : s.generations) {
    out += "shoal_generation_shutdown_timeout_seconds{generation=\"";
    append_number(out, g.number);
    out += "\"} ";
    append_seconds(out, g.shutdown_timeout_ms, 1000);
    out += '\n';
  }

  const WorkerCounters& t = s.totals;
  Family(out, "shoal_requests_total", "counter", "Responses sent, by status code.");
  uint64_t count = 0;
  for (int c = 0; c < kCodes; ++c) {
    uint64_t n = t.requests[c].get();
    count += n;
    if (n) sample(out, "shoal_requests_total", {{"code", number(static_cast<uint64_t>(kFirstCode + c))}}, n);
  }
  Family(out, "shoal_request_duration_seconds", "histogram",
         "From a request's first byte to its response's last byte handed to the kernel.");
  uint64_t cumulative = 0;
  for (int b = 0; b < kBuckets; ++b) {
    cumulative += t.duration_buckets[b].get();
    out += "shoal_request_duration_seconds_bucket{le=\"";
    append_seconds(out, static_cast<uint64_t>(kBucketBoundsUs[b]), 1'000'000);
    while (out.back() == '0') out.pop_back();  // 0.000100 -> 0.0001; 1.000000 -> 1.
    if (out.back() == '.') out.pop_back();
    out += "\"} ";
    append_number(out, cumulative);
    out += '\n';
  }
  cumulative += t.duration_buckets[kBuckets].get();
  sample(out, "shoal_request_duration_seconds_bucket", {{"le", "+Inf"}}, cumulative);
  out += "shoal_request_duration_seconds_sum ";
  append_seconds(out, t.duration_us.get(), 1'000'000);
  out += '\n';
  sample(out, "shoal_request_duration_seconds_count", {}, cumulative);
  Family(out, "shoal_response_bytes_total", "counter", "Response body bytes sent.");
  sample(out, "shoal_response_bytes_total", {}, t.response_bytes.get());
  Family(out, "shoal_connections_accepted_total", "counter", "Client connections accepted.");
  sample(out, "shoal_connections_accepted_total", {}, t.accepted.get());

  Family(out, "shoal_connections", "gauge", "Open client connections, by generation and state (refreshed every second).");
  struct PerGen {
    uint64_t reading = 0, writing = 0, idle = 0;
  };
  std::vector<std::pair<uint64_t, PerGen>> per_gen;
  for (const auto& w : s.workers) {
    if (per_gen.empty() || per_gen.back().first != w.generation) per_gen.push_back({w.generation, {}});
    per_gen.back().second.reading += w.reading;
    per_gen.back().second.writing += w.writing;
    per_gen.back().second.idle += w.idle;
  }
  for (const auto& [gen, c] : per_gen) {
    std::string g(number(gen));
    sample(out, "shoal_connections", {{"generation", g}, {"state", "reading"}}, c.reading);
    sample(out, "shoal_connections", {{"generation", g}, {"state", "writing"}}, c.writing);
    sample(out, "shoal_connections", {{"generation", g}, {"state", "idle"}}, c.idle);
  }

  Family(out, "shoal_listen_queue_length", "gauge", "Connections in the kernel's accept queue, not yet accepted by a worker.");
  for (const auto& q : queues) sample(out, "shoal_listen_queue_length", {{"listener", q.listener}}, q.length);
  Family(out, "shoal_listen_queue_limit", "gauge", "The accept queue's limit (the listen backlog).");
  for (const auto& q : queues) sample(out, "shoal_listen_queue_limit", {{"listener", q.listener}}, q.limit);

  Family(out, "shoal_worker_cpu_seconds_total", "counter", "CPU time (user and system) of every worker, exited ones included.");
  out += "shoal_worker_cpu_seconds_total ";
  append_seconds(out, t.cpu_us.get(), 1'000'000);
  out += '\n';
  Family(out, "shoal_worker_resident_memory_bytes", "gauge", "Each live worker's resident memory (refreshed every second).");
  for (const auto& w : s.workers)
    sample(out, "shoal_worker_resident_memory_bytes",
           {{"generation", std::string(number(w.generation))}, {"worker", std::to_string(w.index)}}, w.rss_bytes);
  Family(out, "shoal_hook_failures_total", "counter", "[[shutdown.hook]] runs that failed or timed out, by hook.");
  for (const auto& hook : t.hooks)
    if (hook.name[0] != '\0') sample(out, "shoal_hook_failures_total", {{"hook", hook.name}}, hook.failures.get());
}

}  // namespace shoal::metrics
