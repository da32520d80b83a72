// A seeded, randomized simulation of the master's core against a model of the world (after
// TigerBeetle's VOPR): one seed picks the config, every child's behaviour, every fault and every
// input. A safety phase checks the invariants after each step; a liveness phase (faults and
// input off, then one SIGTERM) must reach a clean end. A failure names the seed that replays it.
#pragma once

#include <queue>
#include <random>
#include <sstream>

#include "support/core_harness.hpp"

namespace shoal::test {

struct SimResult {
  bool ok = true;
  std::string failure;  // the first invariant broken, with the time and the seed
  int steps = 0;
  int forks = 0;
  int kills = 0;
  int commands = 0;
  bool exited_in_safety = false;
};

class Simulation {
 public:
  explicit Simulation(uint64_t seed, bool trace = false) : seed_(seed), rng_(seed), trace_(trace) {}

  SimResult run() {
    try {
      setup();
      input(core::Boot{});
      const Time safety_end = Time(uniform(5'000, 40'000));
      while (!h_->exited && !failed() && h_->now < safety_end) {
        Time next = next_time(/*with_input=*/true);
        if (next > safety_end) break;
        step_to(next, /*with_input=*/true);
      }
      result_.exited_in_safety = h_->exited;
      if (!h_->exited && !failed()) liveness();
      if (!failed()) final_checks();
    } catch (const std::exception& e) {
      fail(std::string("exception: ") + e.what());
    }
    result_.steps = h_ ? h_->steps : 0;
    return result_;
  }

 private:
  // ---------------------------------------------------------------- the world
  struct Child {
    WorkerKey key;
    Pid pid;
    Time forked_at{0}, last_message{0};
    bool ready_sent = false, told = false, dead = false, exiting = false, silent = false, ignores_drain = false;
    int drain_exit = 0;
  };
  struct Scheduled {
    Time at;
    uint64_t order;
    std::function<void()> what;
    bool operator>(const Scheduled& o) const { return std::tie(at, order) > std::tie(o.at, o.order); }
  };

  uint64_t seed_;
  std::mt19937_64 rng_;
  bool trace_ = false;
  std::unique_ptr<CoreHarness> h_;
  std::shared_ptr<const Config> config_;
  std::priority_queue<Scheduled, std::vector<Scheduled>, std::greater<>> world_;
  uint64_t order_ = 0;
  std::map<Pid, Child> children_;
  std::map<WorkerKey, Time> last_kill_at_;
  std::map<uint64_t, int> commands_;  // reply id -> replies seen
  uint64_t next_command_ = 1;
  Time next_input_{0};
  bool faults_ = true;
  bool quit_seen_ = false;
  bool shutdown_by_sigint_ = false;
  bool successor_alive_ = false;
  bool handed_over_ = false;
  bool was_shutting_down_ = false;
  bool ever_running_ = false;
  std::set<Pid> counted_;
  int server_hook_runs_ = 0;
  std::map<std::pair<uint64_t, int>, std::vector<Time>> forks_by_slot_;
  size_t seen_actions_ = 0;
  int execs_seen_ = 0;
  core::Supervisor::Counts counts_seen_;
  int start_controls_ = 0;
  std::set<Pid> live_;  // forked and not reaped
  SimResult result_;

  int64_t uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(rng_); }
  bool chance(double p) { return std::uniform_real_distribution<double>(0, 1)(rng_) < p; }
  bool failed() const { return !result_.ok; }
  void fail(const std::string& what) {
    if (!result_.ok) return;
    result_.ok = false;
    std::ostringstream out;
    out << "seed " << seed_ << " at t=" << (h_ ? h_->now.count() : 0) << " ms: " << what
        << " (replay: ./build.sh sim --seed " << seed_ << ")";
    result_.failure = out.str();
  }
  void check(bool ok, const std::string& what) {
    if (!ok) fail(what);
  }
  void at(Time when, std::function<void()> what) { world_.push({when, order_++, std::move(what)}); }

  Time random_duration() {
    // 1 ms to 30 s, most of them short.
    static const int64_t choices[] = {1, 5, 20, 100, 250, 500, 1000, 2000, 5000, 30000};
    return Time(choices[uniform(0, 9)]);
  }

  void setup() {
    for (int attempt = 0; attempt < 100 && !config_; ++attempt) {
      std::string server = "workers = " + std::to_string(uniform(1, 8)) + "\n";
      const bool app = chance(0.3);  // the workers exec a program: drained by a signal, ready by notify, fd or guess
      if (!app && chance(0.3)) server += "max_requests = " + std::to_string(uniform(10, 1000)) + "\n";
      if (!app && chance(0.5)) server += "heartbeat_timeout = \"" + std::to_string(uniform(1, 30)) + "s\"\n";
      if (chance(0.2)) server += "max_worker_rss = " + std::to_string(uniform(2, 64) << 20) + "\n";
      if (chance(0.4)) server += "upgrade = \"in-place\"\n";  // the master re-executes itself and adopts its children
      Time timeout = random_duration(), delay = chance(0.5) ? Time(0) : random_duration();
      std::string rest = "[shutdown]\ntimeout = \"" + std::to_string(timeout.count()) + "ms\"\ndrain_delay = \"" +
                         std::to_string(delay.count()) + "ms\"\n" +
                         (chance(0.5) ? "stream_grace = \"" + std::to_string(random_duration().count()) + "ms\"\n" : "") +
                         "[reload]\nready_timeout = \"" +
                         std::to_string(random_duration().count()) + "ms\"\n";
      if (chance(0.5)) rest += "max_draining_generations = " + std::to_string(uniform(1, 3)) + "\n";
      if (chance(0.2)) rest += "[[shutdown.server_hook]]\nname = \"deregister\"\ncommand = [\"true\"]\n";
      if (app) {
        static const char* signals[] = {"SIGTERM", "SIGQUIT", "SIGUSR2"};
        static const char* modes[] = {"notify", "fd", "delay"};
        const char* mode = modes[uniform(0, 2)];
        rest += "[app]\ncommand = [\"app\"]\ndrain_signal = \"" + std::string(signals[uniform(0, 2)]) +
                "\"\nready = \"" + mode + "\"\n";
        if (std::string(mode) == "delay") rest += "ready_delay = \"" + std::to_string(random_duration().count()) + "ms\"\n";
        if (chance(0.5)) rest += "watchdog = \"" + std::to_string(uniform(1, 30)) + "s\"\n";
      }
      try {
        config_ = core_config(server, rest);
      } catch (const std::exception&) {
        // an impossible mix (drain_delay past the timeout): draw again
      }
    }
    if (!config_) throw std::runtime_error("no valid config drawn");
    h_ = std::make_unique<CoreHarness>(config_, chance(0.2), seed_);
    h_->fork_fails = [this](const WorkerKey&) {
      return faults_ && chance(0.05) ? std::string(chance(0.5) ? "fork() failed: Resource temporarily unavailable"
                                                              : "socketpair(AF_UNIX, SOCK_SEQPACKET) failed: Too many open files")
                                     : std::string();
    };
    h_->send_fails = [this](const core::SendToWorker&) { return faults_ && chance(0.03); };
    h_->prepare_fails = [this](uint64_t g) {
      return faults_ && g > 1 && chance(0.05) ? std::string("bind(127.0.0.1:80) failed: Address already in use")
                                              : std::string();
    };
    h_->successor_fails = "";
    h_->program_check_pending = true;  // the world answers the check (after_input), sometimes late
    next_input_ = Time(uniform(0, 2000));
  }

  Time next_time(bool with_input) const {
    Time next = Time::max();
    if (!world_.empty()) next = std::min(next, world_.top().at);
    if (auto d = h_->core().next_deadline()) next = std::min(next, *d);
    if (with_input) next = std::min(next, next_input_);
    return next;
  }

  void step_to(Time next, bool with_input) {
    h_->now = std::max(h_->now, next);
    if (!world_.empty() && world_.top().at <= h_->now) {
      auto what = world_.top().what;
      world_.pop();
      what();
      return;
    }
    if (auto d = h_->core().next_deadline(); d && *d <= h_->now) {
      input(core::TimerFired{});
      return;
    }
    if (with_input && next_input_ <= h_->now) {
      random_input();
      next_input_ = h_->now + Time(uniform(1, 3000));
    }
  }

  void random_input() {
    // An upgrade in place may find its exec failing, or a new image that cannot read the config.
    h_->exec_fails = faults_ && chance(0.1) ? "execv(/usr/bin/shoal) failed: Exec format error" : "";
    if (faults_ && chance(0.1)) h_->next_config_errors = {"server.toml:1:1: unknown key 'x'"};
    else h_->next_config_errors.clear();
    // Shutdowns are rare (about 1 input in 70), so that most episodes reach the liveness phase.
    int pick = static_cast<int>(uniform(0, 199));
    if (pick < 60) return input(core::SignalReceived{SIGHUP});
    if (pick < 76) return input(core::SignalReceived{SIGTTIN});
    if (pick < 92) return input(core::SignalReceived{SIGTTOU});
    if (pick < 100) return input(core::SignalReceived{SIGUSR1});
    if (pick < 104) return input(core::SignalReceived{SIGWINCH});
    if (pick < 114) return input(core::SignalReceived{SIGUSR2});
    if (pick < 116) return input(core::SignalReceived{SIGTERM});
    if (pick < 117) return input(core::SignalReceived{SIGINT});
    if (pick < 118 && chance(0.5)) return input(core::SignalReceived{SIGQUIT});
    static const char* commands[] = {"reload", "reload", "status", "status", "upgrade", "stop", "bogus", "reopen", "stop --now"};
    if (pick < 185) {
      uint64_t id = next_command_++;
      commands_[id] = 0;
      ++result_.commands;
      const char* c = commands[uniform(0, 8)];
      if (std::string(c).starts_with("stop") && !chance(0.3)) c = "status";
      return input(core::CommandReceived{id, c});
    }
    // a child misbehaves
    std::vector<Pid> alive;
    for (auto& [pid, c] : children_)
      if (!c.dead) alive.push_back(pid);
    if (alive.empty()) return;
    Pid victim = alive[static_cast<size_t>(uniform(0, static_cast<int64_t>(alive.size()) - 1))];
    if (chance(0.5)) child_exit(victim, chance(0.5) ? 1 : 139);
    else children_[victim].silent = true;
  }

  // One input to the core, then the world reacts to what it did, and the invariants are checked.
  void input(Event e) {
    // Who counts for the exit code if this input starts a shutdown: ready or told before it.
    std::set<Pid> candidates;
    for (auto& [pid, c] : children_)
      if (!c.dead && (c.ready_sent || c.told)) candidates.insert(pid);
    bool shutting_before = h_->core().phase() == core::Phase::ShuttingDown;
    auto* signal = std::get_if<core::SignalReceived>(&e);
    bool sigint = signal && signal->signo == SIGINT;
    // The model's own rule for a second Ctrl+C: a SIGINT while a SIGINT-begun shutdown runs is a quit.
    if (shutting_before && sigint && shutdown_by_sigint_) quit_seen_ = true;
    size_t first = h_->actions.size();
    h_->input(std::move(e));
    if (!shutting_before && h_->core().phase() == core::Phase::ShuttingDown) {
      counted_ = candidates;
      shutdown_by_sigint_ = sigint;
    }
    std::vector<Action> out(h_->actions.begin() + static_cast<std::ptrdiff_t>(first), h_->actions.end());
    if (trace_) print(out);
    after_input(out);
  }

  void print(const std::vector<Action>& out) const {
    for (const Action& a : out) {
      if (auto* l = std::get_if<core::Log>(&a)) printf("%8lld  log  %s\n", (long long)h_->now.count(), l->text.c_str());
      else if (auto* k = std::get_if<core::Kill>(&a)) printf("%8lld  kill %d %d\n", (long long)h_->now.count(), k->pid, k->signo);
      else if (auto* x = std::get_if<core::SendToWorker>(&a))
        printf("%8lld  send %s to %llu/%d/%u\n", (long long)h_->now.count(), msg_name(x->type),
               (unsigned long long)x->key.generation, x->key.slot, x->key.incarnation);
      else if (auto* r = std::get_if<core::Reply>(&a)) printf("%8lld  reply %llu %s\n", (long long)h_->now.count(), (unsigned long long)r->reply_id, r->json.c_str());
    }
  }

  void after_input(const std::vector<Action>& out) {
    const Time now = h_->now;
    auto views = h_->core().generations();
    auto phase = h_->core().phase();
    std::map<Pid, const core::Supervisor::WorkerView*> by_pid;
    for (const auto& g : views)
      for (const auto& w : g.workers)
        if (w.pid > 0) by_pid[w.pid] = &w;

    for (const Action& a : out) {
      if (auto* f = std::get_if<core::ForkWorker>(&a)) {
        auto it = h_->pids.find(f->key);
        if (it == h_->pids.end()) continue;  // the fork failed
        ++result_.forks;
        auto& times = forks_by_slot_[{f->key.generation, f->key.slot}];
        times.push_back(now);
        std::erase_if(times, [&](Time t) { return now - t >= Time(1000); });
        check(times.size() <= 6, "fork loop: slot " + std::to_string(f->key.slot) + " of generation " +
                                     std::to_string(f->key.generation) + " forked " + std::to_string(times.size()) +
                                     " times within 1 s");
        spawn_child(f->key, it->second);
      } else if (auto* k = std::get_if<core::Kill>(&a)) {
        ++result_.kills;
        on_kill(*k, by_pid);
      } else if (auto* s = std::get_if<core::SendToWorker>(&a)) {
        on_send(*s);
      } else if (auto* r = std::get_if<core::ReopenLogs>(&a)) {
        for (const WorkerKey& key : r->workers) {  // each takes the files, unless it is stuck
          check(!config_->app, "an app worker was sent log files");
          Pid pid = h_->pids.count(key) ? h_->pids[key] : -1;
          if (pid > 0 && !children_[pid].silent)
            at(now + Time(uniform(0, 300)), [this, pid] { send_from(pid, MsgType::Reopened); });
        }
      } else if (auto* r = std::get_if<core::Reply>(&a)) {
        auto it = commands_.find(r->reply_id);
        check(it != commands_.end(), "a reply to a command never sent");
        if (it != commands_.end()) check(++it->second == 1, "command " + std::to_string(r->reply_id) + " answered twice");
      } else if (std::get_if<core::CheckProgram>(&a)) {
        // The new program's -t: quick or slow (past its 2 s deadline), accepting or refusing.
        int code = faults_ && chance(0.2) ? (chance(0.5) ? 1 : 64) : 0;
        Time takes = faults_ ? Time(uniform(1, 3000)) : Time(uniform(1, 100));
        at(now + takes, [this, code] { input(core::ProgramChecked{code, code ? "x:1:1: bad" : ""}); });
      } else if (std::get_if<core::ExecInPlace>(&a)) {
        check(h_->execs > execs_seen_ || !h_->exec_fails.empty(), "an exec that neither happened nor failed");
      } else if (std::get_if<core::StartSuccessor>(&a)) {
        if (h_->successor > 0 && !children_.count(h_->successor)) start_successor(h_->successor);
      } else if (auto* c = std::get_if<core::CloseUnusedListeners>(&a)) {
        // Every generation that serves or starts keeps its config's sockets.
        size_t live = h_->core().serving() && phase != core::Phase::ShuttingDown ? 1 : 0;
        size_t kept = 0;
        for (const auto& config : c->in_use) kept += config != nullptr;
        check(kept >= live, "listeners of a live generation closed");
      } else if (std::get_if<core::CloseListeners>(&a)) {
        check(phase == core::Phase::ShuttingDown || phase == core::Phase::Exited,
              "listening sockets closed while not shutting down");
      } else if (auto* l = std::get_if<core::Log>(&a)) {
        check(l->text.find("internal:") == std::string::npos, l->text);
        auto has = l->text.find(" now has ");
        if (has != std::string::npos) {
          int said = std::stoi(l->text.substr(has + 9));
          bool match = false;
          for (const auto& g : views) match = match || g.desired == said;
          check(match, "a reported size matches no generation: " + l->text);
        }
      } else if (std::get_if<core::RunServerHooks>(&a)) {
        check(++server_hook_runs_ == 1, "the server hooks ran twice");
        size_t live = 0;
        for (auto& [pid, c] : children_) live += !c.dead;
        check(live == 0, "the server hooks ran while a worker was still alive");
        check(phase == core::Phase::ShuttingDown || phase == core::Phase::Exited, "the server hooks ran while not shutting down");
      } else if (auto* x = std::get_if<core::Exit>(&a)) {
        handed_over_ = x->handed_over;
      }
    }

    // ---- invariants of the state
    if (phase == core::Phase::Running || phase == core::Phase::Reloading || phase == core::Phase::Upgrading) {
      ever_running_ = true;
      int serving = 0;
      for (const auto& g : views) serving += std::string(g.state) == "serving";
      check(serving == 1, "exactly one serving generation outside boot and shutdown, got " + std::to_string(serving));
    }
    int starting = 0;
    for (const auto& g : views) {
      starting += std::string(g.state) == "starting" || std::string(g.state) == "preparing";
      check(g.desired >= 1, "a desired size below 1");
      std::map<int, int> per_slot;
      for (const auto& w : g.workers)
        if (!w.culled) ++per_slot[w.key.slot];
      for (auto& [slot, n] : per_slot) check(n <= 2, "more than one replacement for slot " + std::to_string(slot));
      for (const auto& w : g.workers) {
        if (!w.kill_at) continue;
        auto prev = last_kill_at_.find(w.key);
        if (prev != last_kill_at_.end()) check(*w.kill_at <= prev->second, "a kill deadline moved later");
        last_kill_at_[w.key] = *w.kill_at;
      }
    }
    check(starting <= 1, "more than one generation starting");
    // [reload] max_draining_generations: beyond it, the oldest are cut short.
    int draining_uncut = 0;
    for (const auto& g : views) draining_uncut += std::string(g.state) == "draining" && !g.hurried && !g.workers.empty();
    check(phase == core::Phase::ShuttingDown || phase == core::Phase::Exited ||
              draining_uncut <= config_->reload.max_draining_generations,
          std::to_string(draining_uncut) + " generations draining uncut, more than max_draining_generations");
    start_controls_ += h_->count<core::StartControl>(out);
    check(start_controls_ <= 1 + h_->execs, "the control socket started twice in one image");
    // Every child the world still runs is the core's, across every exec too.
    for (Pid pid : live_) check(by_pid.count(pid) > 0, "pid " + std::to_string(pid) + " runs but the core does not know it");
    // The metrics' counts only grow within one image (the shell carries them across an exec).
    const auto& counts = h_->core().counts();
    if (h_->execs == execs_seen_) {
      for (int i = 0; i < metrics::kOutcomes; ++i) {
        check(counts.reloads[i] >= counts_seen_.reloads[i], "a reload count went down");
        check(counts.upgrades[i] >= counts_seen_.upgrades[i], "an upgrade count went down");
      }
      for (int i = 0; i < metrics::kRestartReasons; ++i)
        check(counts.restarts[i] >= counts_seen_.restarts[i], "a restart count went down");
    }
    counts_seen_ = counts;
    execs_seen_ = h_->execs;
    if (auto d = h_->core().next_deadline()) check(*d > now || phase == core::Phase::Exited, "a deadline already due");
    if (phase == core::Phase::Exited || h_->exited) check(phase == core::Phase::Exited && h_->exited, "exit mismatch");
    if (!was_shutting_down_ && phase == core::Phase::ShuttingDown) was_shutting_down_ = true;
  }

  void on_kill(const core::Kill& k, const std::map<Pid, const core::Supervisor::WorkerView*>& by_pid) {
    const Time now = h_->now;
    if (k.pid == h_->successor) {
      check(successor_alive_, "a signal to the upgrade candidate after its exit");
      if (successor_alive_) at(now + Time(uniform(1, 500)), [this, pid = k.pid] { successor_exit(pid, 0); });
      return;
    }
    auto it = children_.find(k.pid);
    check(it != children_.end(), "a signal to a pid never forked");
    if (it == children_.end()) return;
    Child& c = it->second;
    check(!c.dead, "a signal to pid " + std::to_string(k.pid) + " after it was reaped");
    if (c.dead || c.exiting) return;
    if (k.signo == SIGKILL) {
      // Only at a deadline: its kill deadline, its start deadline, or its heartbeat's.
      const Config& config = *config_for(c.key.generation);
      auto view = by_pid.find(k.pid);
      bool at_kill = view != by_pid.end() && view->second->kill_at && *view->second->kill_at <= now;
      bool at_start = !c.ready_sent && now - c.forked_at >= config.reload.ready_timeout;
      Time silence = config.app ? config.app->watchdog : config.server.heartbeat_timeout;
      bool at_heartbeat = silence > Time(0) && now - c.last_message >= silence;
      check(at_kill || at_start || at_heartbeat, "SIGKILL before any deadline to pid " + std::to_string(k.pid));
      at(now + Time(uniform(0, 5)), [this, pid = k.pid] { child_exit(pid, SIGKILL, true); });
    } else if (const AppConfig* app = config_for(c.key.generation)->app ? &*config_for(c.key.generation)->app : nullptr) {
      // An app drains on its drain signal, and knows no other.
      check(k.signo == app->drain_signal, "an app worker got signal " + std::to_string(k.signo) + ", not its drain signal");
      bool first = !c.told;
      c.told = true;
      if (!first || c.ignores_drain || c.silent) return;
      Time takes = faults_ ? config_->shutdown.drain_delay + Time(uniform(0, 3000)) : Time(uniform(0, 100));
      at(now + takes, [this, pid = k.pid, code = c.drain_exit] { child_exit(pid, code); });
    } else if (k.signo == SIGTERM || k.signo == SIGQUIT) {
      c.told = true;
      if (!c.ignores_drain) at(now + Time(uniform(1, 200)), [this, pid = k.pid] { child_exit(pid, 0); });
    }
  }

  void on_send(const core::SendToWorker& s) {
    Pid pid = h_->pids.count(s.key) ? h_->pids[s.key] : -1;
    auto it = children_.find(pid);
    if (it == children_.end() || it->second.dead || it->second.exiting) return;
    Child& c = it->second;
    check(!config_for(c.key.generation)->app, "a channel message to an app worker, which has no channel");
    if (s.type == MsgType::StatsQuery) {
      if (!c.silent && chance(0.9))
        at(h_->now + Time(uniform(0, 400)), [this, pid] { send_from(pid, MsgType::Stats, 1, 10); });
      return;
    }
    if (s.type != MsgType::Drain && s.type != MsgType::Stop) return;
    if (s.type == MsgType::Drain) check(s.value2 > 0, "a Drain without the time left to its deadline");
    if (s.flags & kDrainHurry) {
      // Cut short: only a worker already draining, with its stream grace left; it ends its
      // streams and is soon gone (unless it ignores drains altogether).
      check(c.told, "a hurried drain to a worker never told to drain");
      check(Time(static_cast<int64_t>(s.value2)) == std::max(Time(1), config_for(c.key.generation)->shutdown.stream_grace),
            "a hurried drain whose time left is not the stream grace");
      if (!c.ignores_drain && !c.silent && !c.exiting)
        at(h_->now + Time(uniform(0, 100)), [this, pid, code = c.drain_exit] { child_exit(pid, code); });
      return;
    }
    bool first = !c.told;
    c.told = true;
    if (!first || c.ignores_drain || c.silent) return;
    Time takes = s.type == MsgType::Stop ? Time(uniform(0, 50)) : Time(s.value) + Time(uniform(0, 3000));
    if (!faults_) takes = Time(s.value) + Time(uniform(0, 100));
    int code = c.drain_exit;
    at(h_->now + takes, [this, pid, code] { child_exit(pid, code); });
  }

  std::shared_ptr<const Config> config_for(uint64_t) const { return config_; }

  void spawn_child(const WorkerKey& key, Pid pid) {
    Child c;
    c.key = key;
    c.pid = pid;
    c.forked_at = c.last_message = h_->now;
    const Config& config = *config_;
    Time ready_timeout = config.reload.ready_timeout;
    if (faults_) {
      c.ignores_drain = chance(0.05);
      c.drain_exit = chance(0.1) ? 1 : 0;
    }
    children_[pid] = c;
    live_.insert(pid);
    int fate = faults_ ? static_cast<int>(uniform(0, 99)) : 99;
    const bool delay = config.app && config.app->ready == AppConfig::Ready::Delay;
    if (delay)  // the core takes it for ready after ready_delay, whatever it is doing, unless it died
      at(h_->now + config.app->ready_delay, [this, pid] {
        Child& c = children_[pid];
        if (c.dead || c.exiting) return;
        c.ready_sent = true;
        if (!c.silent) heartbeat(pid);
      });
    if (fate < 5) {  // hangs in its start hook
      c.silent = true;
      children_[pid].silent = true;
    } else if (fate < 12) {  // dies before ready (2: a fatal setup error)
      at(h_->now + Time(uniform(0, 300)), [this, pid] { child_exit(pid, chance(0.5) ? 2 : 1); });
    } else if (delay) {
      // It says nothing: the core's guess (above) is all there is.
    } else {
      Time after = faults_ ? Time(uniform(0, ready_timeout.count() * 3 / 2 + 1))
                           : Time(uniform(0, std::min<int64_t>(50, ready_timeout.count() - 1)));
      at(h_->now + after, [this, pid] { child_ready(pid); });
      if (fate < 20) at(h_->now + after + Time(uniform(1, 20000)), [this, pid] { child_exit(pid, 139); });
    }
  }

  void child_ready(Pid pid) {
    Child& c = children_[pid];
    if (c.dead || c.silent) return;
    c.ready_sent = true;
    send_from(pid, MsgType::Ready);
    heartbeat(pid);
    if (config_->server.max_requests > 0 && faults_ && chance(0.3))
      at(h_->now + Time(uniform(100, 10000)), [this, pid] { send_from(pid, MsgType::Recycle, 0, config_->server.max_requests); });
  }

  void heartbeat(Pid pid) {
    Time limit = config_->app ? config_->app->watchdog : config_->server.heartbeat_timeout;
    if (limit == Time(0)) return;  // an app without a watchdog sends nothing, and is never probed
    Time every = std::min(Time(1000), limit / 4);
    at(h_->now + every, [this, pid] {
      Child& c = children_[pid];
      if (c.dead || c.silent) return;
      send_from(pid, MsgType::Heartbeat);
      heartbeat(pid);
    });
  }

  void send_from(Pid pid, MsgType type, uint32_t value = 0, uint64_t value2 = 0) {
    Child& c = children_[pid];
    if (c.dead || c.exiting) return;
    c.last_message = h_->now;
    input(core::WorkerMessage{c.key, type, value, value2, ""});
  }

  void child_exit(Pid pid, int code, bool by_signal = false) {
    Child& c = children_[pid];
    if (c.dead || c.exiting) return;
    // The channel closes first; until SIGCHLD is reaped the pid is a zombie, which a signal
    // cannot harm. "Dead" (no signal may follow) starts at the reap.
    c.exiting = true;
    counted_exit(pid, code, by_signal);
    WorkerKey key = c.key;
    input(core::ChannelClosed{key});
    children_[pid].dead = true;
    live_.erase(pid);
    h_->dead.insert(pid);
    input(core::ChildExited{pid, !by_signal, code});
  }

  // The exit code the master must end with.
  bool unclean_end_ = false;
  void counted_exit(Pid pid, int code, bool by_signal) {
    if (counted_.count(pid) && (by_signal || code != 0)) unclean_end_ = true;
  }

  void start_successor(Pid pid) {
    successor_alive_ = true;
    int fate = faults_ ? static_cast<int>(uniform(0, 99)) : 99;
    Time after = Time(uniform(1, 4000));
    if (fate < 15) at(h_->now + after, [this, pid] { successor_exit(pid, 127); });
    else if (fate < 30) at(h_->now + after, [this] { if (successor_alive_) input(core::SuccessorConfigRejected{"x:1:1: bad"}); });
    else if (fate < 45) {}  // hangs: the deadline stops it
    else at(h_->now + after, [this] { if (successor_alive_) input(core::SuccessorReady{"0.2.0"}); });
  }

  void successor_exit(Pid pid, int code) {
    if (!successor_alive_ || pid != h_->successor) return;
    successor_alive_ = false;
    h_->dead.insert(pid);
    input(core::ChildExited{pid, true, code});
  }

  // ---------------------------------------------------------------- liveness
  void liveness() {
    faults_ = false;
    for (auto& [pid, c] : children_) c.ignores_drain = c.ignores_drain && !c.dead;  // what hangs now is killed at deadlines
    // Converge: the serving generation at its desired size, all ready, nothing starting.
    const Time give_up = h_->now + Time(300'000);
    while (!failed() && !h_->exited && h_->now < give_up && !settled()) step_to(next_time(false), false);
    check(h_->exited || settled(), "did not converge to a serving generation at its desired size");
    if (failed() || h_->exited) return;
    // Answer every command still waiting (a reload waits for its old generation's drain).
    input(core::SignalReceived{SIGTERM});
    const Time end = h_->now + Time(300'000);
    while (!failed() && !h_->exited && h_->now < end) {
      Time next = next_time(false);
      if (next == Time::max()) break;
      step_to(next, false);
    }
    check(h_->exited, "no exit after the final SIGTERM");
  }

  bool settled() const {
    if (h_->core().phase() != core::Phase::Running || h_->core().starting()) return false;
    for (const auto& g : h_->core().generations()) {
      if (g.number != h_->core().serving()) continue;
      int live = 0;
      for (const auto& w : g.workers) {
        if (w.culled) continue;
        if (std::string(w.state) != "ready") return false;
        ++live;
      }
      return live == g.desired;
    }
    return false;
  }

  void final_checks() {
    // Every child reaped: the core kills what it stops at a deadline, so nothing may be left.
    for (auto& [pid, c] : children_) check(c.dead, "pid " + std::to_string(pid) + " never reaped");
    check(!successor_alive_ || handed_over_, "the upgrade candidate was never reaped");
    for (auto& [id, n] : commands_) check(n == 1, "command " + std::to_string(id) + " never answered");
    for (const auto& l : h_->all<core::Log>())
      if (l.text.find(": stopping now, without draining") != std::string::npos) quit_seen_ = true;
    int expect = quit_seen_ || unclean_end_ ? 1 : 0;
    check(h_->exit_code == expect, "exit code " + std::to_string(h_->exit_code) + ", expected " + std::to_string(expect));
    if (ever_running_) check(start_controls_ == 1 + h_->execs, "the control socket was not started once per image");
    bool hooks = !config_->shutdown.server_hooks.empty();
    check(server_hook_runs_ == (hooks && !handed_over_ ? 1 : 0),
          "server hooks ran " + std::to_string(server_hook_runs_) + " time(s) at a " + (handed_over_ ? "hand-over" : "stop"));
  }
};

}  // namespace shoal::test
