// Steps the master's core (master/core/supervisor.hpp) as the shell does, on a fake clock in
// milliseconds: every action that has an answer is answered through a FIFO before the next
// input, by default with success, or as the test or the simulation decides.
#pragma once

#include <signal.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "common/config.hpp"
#include "master/core/supervisor.hpp"

namespace shoal::test {

using core::Action;
using core::Event;
using core::Pid;
using core::Time;
using core::WorkerKey;

inline std::shared_ptr<const Config> core_config(const std::string& extra_server = "", const std::string& rest = "") {
  std::string text = "[server]\nlisten = [\"127.0.0.1:0\"]\ncpu_affinity = \"none\"\ncontrol_socket = \"\"\n" +
                     extra_server + "\n" + rest;
  ConfigResult result = parse_config(text, "/tmp/core-test.toml");
  if (!result.config) {
    std::string all;
    for (const auto& e : result.errors) all += e.to_string() + "\n";
    throw std::runtime_error("bad test config: " + all);
  }
  return std::make_shared<const Config>(std::move(*result.config));
}

class CoreHarness {
 public:
  explicit CoreHarness(std::shared_ptr<const Config> config, bool has_predecessor = false, uint64_t seed = 1,
                       core::Timing timing = {})
      : config_(config), seed_(seed), timing_(timing),
        core_(std::make_unique<core::Supervisor>(identity(has_predecessor), config, seed, timing)) {}

  // What the next LoadConfig answers.
  std::shared_ptr<const Config> next_config;
  std::vector<std::string> next_config_errors;  // non-empty: ConfigRejected
  // Failure points: return an error text to fail the action, or "" to let it succeed.
  std::function<std::string(const WorkerKey&)> fork_fails = [](const WorkerKey&) { return std::string(); };
  std::function<std::string(uint64_t)> prepare_fails = [](uint64_t) { return std::string(); };
  std::function<bool(const core::SendToWorker&)> send_fails = [](const core::SendToWorker&) { return false; };
  std::string successor_fails;  // non-empty: StartSuccessor fails with it
  // An upgrade in place: what the new program's -t answers (exit code, output), and whether the
  // exec fails (non-empty: ExecFailed with it). The new image reads next_config (or, with
  // next_config_errors, cannot: it then runs with the adopted serving generation's config).
  bool program_check_pending = false;  // true: CheckProgram goes unanswered; the test answers it
  int program_check_exit = 0;
  std::string program_check_output;
  std::string exec_fails;
  std::string new_version = "test2";
  int execs = 0;  // images this master re-executed into
  size_t server_hook_failures = 0;  // what the next RunServerHooks answers

  Time now{0};
  std::vector<Action> actions;  // everything the core did, in order
  std::map<WorkerKey, Pid> pids;
  std::set<Pid> dead;           // reaped
  Pid successor = -1;
  bool exited = false;
  int exit_code = -1;
  int steps = 0;

  core::Supervisor& core() { return *core_; }

  // One input, then every answer it causes, in order. Returns the actions of this input alone.
  std::vector<Action> input(Event e) {
    size_t first = actions.size();
    std::vector<Event> fifo{std::move(e)};
    bool exec = false;
    for (size_t i = 0; i < fifo.size(); ++i) {
      ++steps;
      for (Action& a : core_->step(fifo[i], now)) {
        exec = exec || std::holds_alternative<core::ExecInPlace>(a);
        answer(a, fifo);
        actions.push_back(std::move(a));
      }
    }
    // As the shell: the exec once every answer is in.
    if (exec) exec_in_place();
    return {actions.begin() + static_cast<std::ptrdiff_t>(first), actions.end()};
  }
  std::vector<Action> boot() { return input(core::Boot{}); }
  std::vector<Action> signal(int signo) { return input(core::SignalReceived{signo}); }
  std::vector<Action> command(uint64_t id, const std::string& c) { return input(core::CommandReceived{id, c}); }
  std::vector<Action> message(const WorkerKey& key, MsgType type, uint32_t value = 0, uint64_t value2 = 0) {
    return input(core::WorkerMessage{key, type, value, value2, ""});
  }
  std::vector<Action> ready(const WorkerKey& key) { return message(key, MsgType::Ready); }
  // The child exits (code) or is killed (signal): the channel closes, then SIGCHLD.
  std::vector<Action> exit(Pid pid, int code, bool by_signal = false) {
    dead.insert(pid);
    for (auto& [key, p] : pids)
      if (p == pid) input(core::ChannelClosed{key});
    return input(core::ChildExited{pid, !by_signal, code});
  }

  // Time passes up to `until`, firing the one timer at each deadline on the way, as the shell's
  // libevent timer would.
  void advance_to(Time until) {
    for (int guard = 0; guard < 100000; ++guard) {
      auto next = core_->next_deadline();
      if (!next || *next > until) break;
      now = std::max(now, *next);
      input(core::TimerFired{});
    }
    now = std::max(now, until);
  }
  void advance(Time by) { advance_to(now + by); }

  // ---- queries
  template <class A>
  std::vector<A> all(const std::vector<Action>& from) const {
    std::vector<A> out;
    for (const Action& a : from)
      if (auto* x = std::get_if<A>(&a)) out.push_back(*x);
    return out;
  }
  template <class A>
  std::vector<A> all() const { return all<A>(actions); }
  template <class A>
  size_t count(const std::vector<Action>& from) const { return all<A>(from).size(); }
  template <class A>
  size_t count() const { return all<A>().size(); }
  // Workers forked, in order.
  std::vector<WorkerKey> forked(const std::vector<Action>& from) const {
    std::vector<WorkerKey> keys;
    for (const auto& f : all<core::ForkWorker>(from))
      if (pids.count(f.key)) keys.push_back(f.key);
    return keys;
  }
  std::vector<WorkerKey> forked() const { return forked(actions); }
  std::vector<WorkerKey> generation_workers(uint64_t generation) const {
    std::vector<WorkerKey> keys;
    for (const auto& [key, pid] : pids)
      if (key.generation == generation && !dead.count(pid)) keys.push_back(key);
    return keys;
  }
  bool logged(const std::string& text, const std::vector<Action>& from) const {
    for (const auto& l : all<core::Log>(from))
      if (l.text.find(text) != std::string::npos) return true;
    return false;
  }
  bool logged(const std::string& text) const { return logged(text, actions); }
  std::vector<std::string> replies_to(uint64_t id) const {
    std::vector<std::string> out;
    for (const auto& r : all<core::Reply>())
      if (r.reply_id == id) out.push_back(r.json);
    return out;
  }
  std::vector<int> kills_of(Pid pid) const {
    std::vector<int> out;
    for (const auto& k : all<core::Kill>())
      if (k.pid == pid) out.push_back(k.signo);
    return out;
  }
  // Boots `n` workers (the config's count) and makes them all ready.
  void boot_ready() {
    boot();
    for (const auto& key : generation_workers(1)) ready(key);
  }

 private:
  static core::Identity identity(bool has_predecessor) {
    core::Identity id;
    id.pid = 4242;
    id.version = "test";
    id.config_path = "/tmp/core-test.toml";
    id.has_predecessor = has_predecessor;
    return id;
  }

  void answer(const Action& a, std::vector<Event>& fifo) {
    if (auto* x = std::get_if<core::LoadConfig>(&a)) {
      if (!next_config_errors.empty()) fifo.push_back(core::ConfigRejected{next_config_errors});
      else fifo.push_back(core::ConfigLoaded{next_config ? next_config : config_});
    } else if (auto* x = std::get_if<core::PrepareGeneration>(&a)) {
      std::string err = prepare_fails(x->generation);
      if (err.empty()) fifo.push_back(core::GenerationPrepared{x->generation});
      else fifo.push_back(core::GenerationPrepareFailed{x->generation, err});
    } else if (auto* x = std::get_if<core::ForkWorker>(&a)) {
      std::string err = fork_fails(x->key);
      if (!err.empty()) {
        fifo.push_back(core::WorkerForkFailed{x->key, err});
      } else {
        pids[x->key] = next_pid_;
        fifo.push_back(core::WorkerForked{x->key, next_pid_++});
      }
    } else if (auto* x = std::get_if<core::SendToWorker>(&a)) {
      if (send_fails(*x)) fifo.push_back(core::SendFailed{x->key, x->type});
    } else if (auto* x = std::get_if<core::SampleRss>(&a)) {
      fifo.push_back(core::RssSampled{x->key, rss_bytes});
    } else if (auto* x = std::get_if<core::ProbeWorker>(&a)) {
      fifo.push_back(core::WorkerProbed{x->key, "GET /spin for 1 ms", "R (running)"});
    } else if (std::get_if<core::StartSuccessor>(&a)) {
      if (!successor_fails.empty()) {
        fifo.push_back(core::SuccessorStartFailed{successor_fails});
      } else {
        successor = next_pid_++;
        fifo.push_back(core::SuccessorStarted{successor, "/usr/bin/shoal", 1});
      }
    } else if (std::get_if<core::CheckProgram>(&a)) {
      if (!program_check_pending) fifo.push_back(core::ProgramChecked{program_check_exit, program_check_output});
    } else if (std::get_if<core::WritePidFile>(&a)) {
      fifo.push_back(core::PidFileWritten{true});
    } else if (std::get_if<core::TellPredecessor>(&a)) {
      fifo.push_back(core::PredecessorTold{true, ""});
    } else if (std::get_if<core::RunServerHooks>(&a)) {
      fifo.push_back(core::ServerHooksDone{server_hook_failures});
    } else if (auto* x = std::get_if<core::ReopenLogs>(&a)) {
      fifo.push_back(core::LogsReopened{x->workers, {}});
    } else if (auto* x = std::get_if<core::Exit>(&a)) {
      exited = true;
      exit_code = x->code;
    }
  }

 public:
  uint64_t rss_bytes = 0;

 private:
  // The same process, a new image: a new core from the old one's takeover(), booted.
  void exec_in_place() {
    if (!exec_fails.empty()) {
      input(core::ExecFailed{exec_fails});
      return;
    }
    std::optional<core::Takeover> t = core_->takeover();
    if (!t) return;
    std::shared_ptr<const Config> config = next_config ? next_config : config_;
    if (!next_config_errors.empty()) {
      t->config_error = "the new program cannot use the config: " + next_config_errors.front();
      for (const auto& g : t->generations)
        if (g.serving) config = g.config;
    }
    core::Identity id = identity(false);
    id.version = new_version;
    id.takeover = std::move(*t);
    core_ = std::make_unique<core::Supervisor>(std::move(id), config, seed_ + static_cast<uint64_t>(++execs), timing_);
    input(core::Boot{});
  }

  std::shared_ptr<const Config> config_;
  uint64_t seed_;
  core::Timing timing_;
  std::unique_ptr<core::Supervisor> core_;
  Pid next_pid_ = 1000;
};

}  // namespace shoal::test
