#include "master/core/supervisor.hpp"

#include <signal.h>
#include <string.h>

#include <algorithm>
#include <nlohmann/json.hpp>

#include "common/sys.hpp"
#include "master/core/texts.hpp"

namespace shoal::core {

using say::cat;

namespace {
// worker/worker.hpp's kWorkerFatal: the worker could not set up at all. Part of the channel's
// contract; the shell static_asserts that the two agree.
constexpr int kWorkerFatalExit = 2;

// A worker's state as it crosses an upgrade in place, in either direction: what the core's Worker
// and the hand-over's AdoptedWorker both hold as it is (times and states differ, and are converted).
template <class From, class To>
void copy_what_both_name(const From& from, To& to) {
  to.key = from.key;
  to.pid = from.pid;
  to.cpu = from.cpu;
  to.told = from.told;
  to.culled = from.culled;
  to.killed = from.killed;
  to.replaces = from.replaces;
  to.replace_reason = from.replace_reason;
}

}  // namespace

int exit_code(Outcome outcome) {
  switch (outcome) {
    case Outcome::Done: return 0;
    case Outcome::ConfigInvalid:
    case Outcome::StopUnclean:
    case Outcome::UnknownCommand:
    case Outcome::ReopenFailed: return 1;
    case Outcome::StartFailed: return 2;
    case Outcome::NotReady: return 3;
    case Outcome::Busy: return 4;
    case Outcome::ShuttingDown: return 6;
  }
  return 1;
}

std::string signal_name(int signo) {
  const char* abbrev = sigabbrev_np(signo);
  return std::string("SIG") + (abbrev ? abbrev : "?");
}

const char* phase_name(Phase phase) {
  switch (phase) {
    case Phase::Booting: return "starting";
    case Phase::Running: return "running";
    case Phase::Reloading: return "reloading";
    case Phase::Upgrading: return "upgrading";
    case Phase::ShuttingDown: return "shutting down";
    case Phase::Exited: return "exited";
  }
  return "?";
}

const char* Supervisor::wstate_name(WState s) {
  switch (s) {
    case WState::Forking: return "forking";
    case WState::Starting: return "starting";
    case WState::Ready: return "ready";
    case WState::Draining: return "draining";
    case WState::Exited: return "exited";
  }
  return "?";
}

const char* Supervisor::gstate_name(GState s) {
  switch (s) {
    case GState::Preparing: return "preparing";
    case GState::Starting: return "starting";
    case GState::Serving: return "serving";
    case GState::Draining: return "draining";
  }
  return "?";
}

Supervisor::Supervisor(Identity identity, std::shared_ptr<const Config> config, uint64_t seed, Timing timing)
    : identity_(std::move(identity)), initial_config_(std::move(config)), timing_(timing), rng_(seed) {
  last_generation_ = identity_.first_generation - 1;
}

// ---------------------------------------------------------------- the transition function

std::vector<Action> Supervisor::step(const Event& event, Time now) {
  out_.clear();
  if (phase_ == Phase::Exited) return {};
  now_ = std::max(now_, now);  // time never runs backwards here, whatever the caller's clock does
  std::visit([this](const auto& e) { on(e); }, event);
  reconcile();
  // The re-exec waits for a `status` or `reopen` round to be answered, and is the step's last action.
  if (exec_due_ && phase_ == Phase::Upgrading && !status_deadline_ && !reopen_deadline_) {
    exec_due_ = false;
    exec_sent_ = true;
    out_.push_back(ExecInPlace{});
  }
  return std::move(out_);
}

void Supervisor::log(Level level, std::string text) { out_.push_back(Log{level, std::move(text)}); }

void Supervisor::reply(uint64_t id, Outcome outcome, const std::string& message) {
  out_.push_back(Reply{id, nlohmann::json{{"code", exit_code(outcome)}, {"message", message}}.dump()});
}

Supervisor::Generation* Supervisor::generation(uint64_t number) {
  for (auto& g : generations_)
    if (g.number == number) return &g;
  return nullptr;
}

Supervisor::Worker* Supervisor::worker(const WorkerKey& key, Generation** owner) {
  Generation* g = generation(key.generation);
  if (!g) return nullptr;
  for (auto& w : g->workers)
    if (w.key == key) {
      if (owner) *owner = g;
      return &w;
    }
  return nullptr;
}

size_t Supervisor::live_workers() const {
  size_t n = 0;
  for (const auto& g : generations_) n += g.workers.size();
  return n;
}

// ---------------------------------------------------------------- handlers

void Supervisor::on(const Boot&) {
  started_at_ = now_;
  if (identity_.takeover) return adopt(*identity_.takeover);
  start_generation(initial_config_);
}

// The new image of an upgrade in place: the old image's children become this core's, exactly as
// it left them, and a generation of this config starts beside them as in a reload (phase
// Reloading, answered as the upgrade). If it cannot start, the adopted generation serves on.
void Supervisor::adopt(const Takeover& t) {
  started_at_ = now_ - t.uptime;
  busy_since_ = now_ - t.busy_for;
  last_generation_ = std::max(last_generation_, t.last_generation);
  for (const AdoptedGeneration& a : t.generations) {
    Generation g;
    g.number = a.number;
    g.config = a.config;
    g.state = a.serving ? GState::Serving : GState::Draining;
    g.failed = a.failed;
    g.hurried = a.hurried;
    g.desired = a.desired;
    g.started_at = now_ - a.age;
    if (a.draining_for) g.drain_started_at = now_ - *a.draining_for;
    else if (!a.serving) g.drain_started_at = now_;
    for (const AdoptedSlot& slot : a.slots) {
      Slot& s = g.slots[slot.slot];
      s.incarnations = slot.incarnations;
      s.failures = slot.failures;
      if (slot.respawn_in) s.respawn_at = now_ + *slot.respawn_in;
    }
    if (a.serving) serving_ = a.number;
    generations_.push_back(std::move(g));
  }
  for (const AdoptedWorker& a : t.workers) {
    Generation* g = generation(a.key.generation);
    if (!g) continue;
    Worker w;
    w.state = a.state == AdoptedWorker::State::Starting ? WState::Starting
              : a.state == AdoptedWorker::State::Ready  ? WState::Ready
                                                        : WState::Draining;
    copy_what_both_name(a, w);
    w.forked_at = now_ - a.age;
    w.ready_at = now_ - a.ready_for;
    w.last_heard = now_;  // the exec took its time: a full heartbeat window from here
    if (a.kill_in) w.kill_at = now_ + *a.kill_in, w.kill_deadline = a.kill_deadline;
    Slot& s = g->slots[a.key.slot];
    s.incarnations = std::max(s.incarnations, a.key.incarnation + 1);
    g->workers.push_back(std::move(w));
  }
  control_started_ = true;
  out_.push_back(StartControl{});
  upgrade_replies_ = t.replies;
  for (const auto& w : t.drain_waiters) drain_waiters_.push_back({w.generation, w.message, w.replies});
  from_version_ = t.from_version;
  if (!serving_) {  // nothing served: the old image cannot have sent this; start afresh
    log(Level::Error, "upgrade in place: the hand-over names no serving generation");
    return start_generation(initial_config_);
  }
  log(Level::Info, say::adopted(t.from_version, *serving_, t.workers.size(), t.generations.size()));
  phase_ = Phase::Reloading;
  in_place_ = true;
  if (!t.config_error.empty()) return fail_reload(t.config_error, Outcome::ConfigInvalid);
  if (auto refused = reload_refusal(*generation(*serving_)->config, *initial_config_))
    return fail_reload(*refused, Outcome::ConfigInvalid);
  start_generation(initial_config_);
}

std::optional<Takeover> Supervisor::takeover() const {
  if (!exec_sent_ || phase_ != Phase::Upgrading) return std::nullopt;
  Takeover t;
  t.pid = identity_.pid;
  t.from_version = identity_.version;
  t.last_generation = last_generation_;
  t.uptime = now_ - started_at_;
  t.busy_for = now_ - busy_since_;
  t.replies = upgrade_replies_;
  for (const auto& w : drain_waiters_) t.drain_waiters.push_back({w.old_generation, w.message, w.replies});
  for (const Generation& g : generations_) {
    if (g.state == GState::Preparing) continue;  // never in Upgrading: a reload is not under way
    AdoptedGeneration a;
    a.number = g.number;
    a.config = g.config;
    a.serving = serving_ == g.number;
    a.failed = g.failed;
    a.hurried = g.hurried;
    a.desired = g.desired;
    a.age = now_ - g.started_at;
    if (g.drain_started_at) a.draining_for = now_ - *g.drain_started_at;
    for (const auto& [number, slot] : g.slots)
      a.slots.push_back({number, slot.incarnations, slot.failures,
                         slot.respawn_at ? std::optional<Time>(std::max(Time(0), *slot.respawn_at - now_)) : std::nullopt});
    t.generations.push_back(std::move(a));
    for (const Worker& w : g.workers) {
      if (w.pid <= 0 || w.state == WState::Forking || w.state == WState::Exited) continue;
      AdoptedWorker aw;
      aw.state = w.state == WState::Starting ? AdoptedWorker::State::Starting
                 : w.state == WState::Ready  ? AdoptedWorker::State::Ready
                                             : AdoptedWorker::State::Draining;
      copy_what_both_name(w, aw);
      aw.age = now_ - w.forked_at;
      aw.ready_for = now_ - w.ready_at;
      if (w.kill_at) aw.kill_in = *w.kill_at - now_, aw.kill_deadline = w.kill_deadline;  // past, if it was due
      t.workers.push_back(std::move(aw));
    }
  }
  return t;
}

void Supervisor::on(const SignalReceived& e) {
  switch (e.signo) {
    case SIGTERM: {
      const Generation* g = generation(serving_ ? *serving_ : starting_.value_or(0));
      Time delay = g ? g->config->shutdown.drain_delay : initial_config_->shutdown.drain_delay;
      return enter_shutdown("SIGTERM", delay, std::nullopt);
    }
    case SIGINT:
      // Ctrl+C: an operator is watching. Twice: they do not want to wait (as most servers do).
      if (phase_ == Phase::ShuttingDown && shutdown_why_ == "SIGINT") return quit("a second SIGINT");
      return enter_shutdown("SIGINT", Time(0), std::nullopt);
    case SIGQUIT: return quit("SIGQUIT");
    case SIGHUP: return reload(std::nullopt);
    case SIGUSR2: return upgrade(std::nullopt);
    case SIGTTIN: return change_size(+1);
    case SIGTTOU: return change_size(-1);
    case SIGUSR1: return reopen(std::nullopt);
    default: log(Level::Warn, say::no_action(e.signo));
  }
}

void Supervisor::on(const CommandReceived& e) {
  log(Level::Info, say::command(e.command));
  if (e.command == "reload") return reload(e.reply_id);
  if (e.command == "upgrade") return upgrade(e.reply_id);
  if (e.command == "status") return status(e.reply_id);
  if (e.command == "reopen") return reopen(e.reply_id);
  if (e.command == "stop --now") {
    stop_replies_.push_back(e.reply_id);  // answered at the end, like a stop
    return quit("stop --now");
  }
  if (e.command == "stop") {
    const Generation* g = generation(serving_ ? *serving_ : starting_.value_or(0));
    Time delay = g ? g->config->shutdown.drain_delay : initial_config_->shutdown.drain_delay;
    return enter_shutdown("stop command", delay, e.reply_id);
  }
  reply(e.reply_id, Outcome::UnknownCommand, say::unknown_command(e.command));
}

void Supervisor::on(const ConfigLoaded& e) {
  if (!loading_config_) return;  // abandoned meanwhile
  loading_config_ = false;
  const Generation* serving = generation(*serving_);
  if (auto refused = reload_refusal(*serving->config, *e.config)) return fail_reload(*refused, Outcome::ConfigInvalid);
  start_generation(e.config);
}

void Supervisor::on(const ConfigRejected& e) {
  if (!loading_config_) return;
  loading_config_ = false;
  std::string all;
  for (const auto& error : e.errors) {
    log(Level::Error, "reload: " + error);
    all += (all.empty() ? "" : "; ") + error;
  }
  fail_reload(all, Outcome::ConfigInvalid);
}

void Supervisor::on(const GenerationPrepared& e) {
  Generation* g = generation(e.generation);
  if (!g || g->state != GState::Preparing) return;
  g->state = GState::Starting;
  g->started_at = now_;
  if (serving_) g->ready_deadline = now_ + g->config->reload.ready_timeout;
  log(Level::Info, say::starting_generation(g->number, g->desired, *g->config));
  for (int slot = 0; slot < g->desired; ++slot) fork_worker(*g, slot, std::nullopt);
}

void Supervisor::on(const GenerationPrepareFailed& e) {
  Generation* g = generation(e.generation);
  if (!g || g->state != GState::Preparing) return;
  if (!serving_) {  // the first generation: nothing serves, nothing to fall back to
    log(Level::Critical, e.error);
    std::erase_if(generations_, [&](const Generation& x) { return x.number == e.generation; });
    out_.push_back(ReleaseGeneration{e.generation});
    out_.push_back(Exit{1, false});
    phase_ = Phase::Exited;
    return;
  }
  if (e.generation == last_generation_) --last_generation_;  // it started nothing: its number is free again
  fail_reload(e.error, Outcome::StartFailed);
}

void Supervisor::on(const WorkerForked& e) {
  Generation* g = nullptr;
  Worker* w = worker(e.key, &g);
  if (!w || w->state != WState::Forking) return;
  w->pid = e.pid;
  w->state = WState::Starting;
  w->forked_at = w->last_heard = now_;
  log(Level::Info, say::spawned(e.key.slot, e.pid, w->cpu, e.key.generation));
  if (const AppConfig* app = app_of(*g)) log(Level::Info, say::app_started(e.key.slot, e.pid, *app));
  if (w->told != MsgType::Ready) {  // told to drain or stop before the fork came back
    MsgType how = w->told;
    w->told = MsgType::Ready;
    tell(*w, how, Time(0));
  }
}

void Supervisor::on(const WorkerForkFailed& e) {
  Generation* g = nullptr;
  Worker* w = worker(e.key, &g);
  if (!w) return;
  log(Level::Error, say::fork_failed(e.key.slot, e.error));
  std::erase_if(g->workers, [&](const Worker& x) { return x.key == e.key; });
  if (starting_ == g->number && serving_) return fail_reload(say::cannot_fork_generation(g->number, e.error), Outcome::StartFailed);
  // Serving (or the first) generation: the slot is retried with the same backoff as a worker
  // that died at start, so that a lack of fds or memory never turns into a fork loop.
  failed_at_start(*g, e.key.slot);
}

// A slot whose worker could not start (fork failed, died before or soon after ready) is retried
// after an exponential, capped backoff: a worker that cannot start never turns into a fork loop.
void Supervisor::failed_at_start(Generation& g, int slot) {
  Slot& s = g.slots[slot];
  ++s.failures;
  Time delay = std::min(timing_.max_backoff, timing_.first_backoff * (1 << std::min(s.failures - 1, 10)));
  s.respawn_at = now_ + delay;
  log(Level::Warn, say::backoff(slot, s.failures, delay));
}

void Supervisor::on(const WorkerMessage& e) {
  Generation* g = nullptr;
  Worker* w = worker(e.key, &g);
  if (!w || w->state == WState::Exited) return;
  w->last_heard = now_;
  switch (e.type) {
    case MsgType::Heartbeat:
      break;
    case MsgType::Reopened:
      if (std::erase(reopen_pending_, e.key) > 0) ++reopen_confirmed_;
      break;
    case MsgType::Ready:
      if (w->state == WState::Starting) became_ready(*g, *w, "");
      break;
    case MsgType::Recycle:
      if (phase_ == Phase::Running && serving_ == g->number && w->state == WState::Ready && !w->culled &&
          w->replace_reason.empty()) {
        w->replace_reason = say::served_max(e.value2);
        w->restart = metrics::kMaxRequests;
        log(Level::Info, say::wants_replacement(e.key.slot, w->pid, w->replace_reason));
      }
      break;
    case MsgType::Done:
      w->reported_exit = static_cast<int>(e.value);
      w->failed_hooks = static_cast<int>(e.value2);
      break;
    case MsgType::Status:
      w->in_flight = e.value;
      w->oldest_age_ms = static_cast<int64_t>(e.value2);
      w->oldest_request = e.text;
      w->status_at = now_;
      break;
    case MsgType::Stats:
      w->connections = e.value;
      w->requests_served = e.value2;
      w->requests_in_flight = static_cast<uint32_t>(std::strtoul(e.text.c_str(), nullptr, 10));
      w->stats_pending = false;
      break;
    default:
      log(Level::Warn, say::unexpected_message(e.type, e.key.slot));
  }
}

void Supervisor::became_ready(Generation& g, Worker& w, const std::string& how) {
  w.state = WState::Ready;
  w.ready_at = w.last_heard = now_;
  log(Level::Info, say::worker_ready(w.key.slot, w.pid, g.number, now_ - w.forked_at) + how);
}

void Supervisor::on(const AppStatusReported& e) {
  Worker* w = worker(e.key);
  if (!w || w->state == WState::Exited) return;
  w->last_heard = now_;
  w->app_status = e.status;
}

std::shared_ptr<const Config> Supervisor::current_config() {
  const Generation* g = serving_ ? generation(*serving_) : nullptr;
  return g ? g->config : initial_config_;
}

std::optional<Time> Supervisor::silence_limit(const Generation& g) {
  if (const AppConfig* app = app_of(g)) return app->watchdog > Time(0) ? std::optional<Time>(app->watchdog) : std::nullopt;
  return g.config->server.heartbeat_timeout;
}

std::optional<Time> Supervisor::assumed_ready_at(const Generation& g, const Worker& w) {
  const AppConfig* app = app_of(g);
  if (!app || app->ready != AppConfig::Ready::Delay || w.state != WState::Starting || w.told != MsgType::Ready) return std::nullopt;
  return w.forked_at + app->ready_delay;
}

void Supervisor::on(const SendFailed& e) {
  Worker* w = worker(e.key);
  if (!w || w->pid <= 0) return;
  if (e.type == MsgType::StatsQuery) {
    w->stats_pending = false;
    return;
  }
  if (e.type != MsgType::Drain && e.type != MsgType::Stop) return;
  int signo = e.type == MsgType::Stop ? SIGQUIT : SIGTERM;
  log(Level::Warn, say::channel_unusable(e.key.slot, w->pid, signo));
  out_.push_back(Kill{w->pid, signo});
}

void Supervisor::on(const ChannelClosed& e) {
  if (Worker* w = worker(e.key)) w->stats_pending = false;  // it is exiting; SIGCHLD brings its status
}

void Supervisor::on(const ChildExited& e) {
  if (successor_pid_ && e.pid == *successor_pid_) {
    successor_pid_.reset();
    if (phase_ == Phase::Upgrading) fail_upgrade(say::successor_died(e.pid, e), Outcome::StartFailed);
    else log(Level::Info, say::former_candidate(e.pid, e));
    return;
  }
  for (auto& g : generations_)
    for (size_t i = 0; i < g.workers.size(); ++i)
      if (g.workers[i].pid == e.pid && g.workers[i].state != WState::Forking) return worker_exited(g, i, e);
  log(Level::Warn, cat("reaped unknown child pid=", e.pid, " that ", say::exit_status(e)));
}

void Supervisor::on(const RssSampled& e) {
  Generation* g = nullptr;
  Worker* w = worker(e.key, &g);
  if (!w) return;
  w->rss_pending = false;
  uint64_t limit = g->config->server.max_worker_rss;
  if (phase_ != Phase::Running || serving_ != g->number || w->state != WState::Ready || w->culled ||
      !w->replace_reason.empty() || limit == 0 || e.bytes <= limit)
    return;
  w->replace_reason = say::above_rss(e.bytes, limit);
  w->restart = metrics::kMaxWorkerRss;
  log(Level::Info, say::wants_replacement(e.key.slot, w->pid, w->replace_reason));
}

void Supervisor::on(const WorkerProbed& e) {
  Generation* g = nullptr;
  Worker* w = worker(e.key, &g);
  if (!w || !w->probe_pending) return;
  w->probe_pending = false;
  std::optional<Time> limit = silence_limit(*g);
  if (w->state != WState::Ready || w->killed || !limit) return;
  if (now_ - w->last_heard < *limit) return;  // it spoke meanwhile
  log(Level::Error, app_of(*g) ? say::app_silent(e.key.slot, w->pid, g->number, now_ - w->last_heard, *limit, e.process_state)
                               : say::silent(e.key.slot, w->pid, g->number, now_ - w->last_heard, *limit, e.doing, e.process_state));
  w->killed = true;
  w->restart = metrics::kHeartbeat;
  out_.push_back(Kill{w->pid, SIGKILL});
}

void Supervisor::on(const SuccessorStarted& e) {
  successor_starting_ = false;
  successor_pid_ = e.pid;
  if (phase_ != Phase::Upgrading) {  // abandoned while it was being started
    out_.push_back(Kill{e.pid, SIGINT});
    out_.push_back(CloseSuccessorChannel{});
    return;
  }
  const Generation* serving = generation(*serving_);
  successor_deadline_ = now_ + serving->config->reload.ready_timeout + timing_.upgrade_startup;
  log(Level::Info, say::upgrading(e.program, e.pid, e.sockets));
}

void Supervisor::on(const SuccessorStartFailed& e) {
  successor_starting_ = false;
  fail_upgrade(e.error, Outcome::StartFailed);
}

void Supervisor::on(const SuccessorReady& e) {
  if (phase_ != Phase::Upgrading || !successor_pid_) return;
  Pid successor = *successor_pid_;
  out_.push_back(CloseSuccessorChannel{});
  successor_deadline_.reset();
  handed_over_ = true;
  count_upgrade(Outcome::Done);
  std::string message = say::upgrade_ok(identity_.pid, successor, identity_.version, e.version);
  log(Level::Info, cat(message, " in ", now_ - busy_since_, " ms; this master's workers drain"));
  out_.push_back(Notify{cat("MAINPID=", successor)});
  for (uint64_t id : upgrade_replies_) reply(id, Outcome::Done, message);
  upgrade_replies_.clear();
  out_.push_back(PauseControl{});  // commands go to the new master now
  // As an old generation after a reload: the new master's workers accept from the same queues,
  // so no drain_delay; the sockets stay open in the successor, so nothing is unlinked.
  phase_ = Phase::ShuttingDown;
  shutdown_at_ = now_;
  Time timeout = generation(*serving_)->config->shutdown.timeout;
  for (auto& g : generations_) {
    for (auto& w : g.workers) w.counted = w.state == WState::Ready || w.state == WState::Draining;
    retire(g, MsgType::Drain, Time(0), timeout, timing_.stop_grace);
  }
  out_.push_back(ReleaseListeners{});
  listeners_closed_ = true;
}

void Supervisor::on(const SuccessorConfigRejected& e) {
  fail_upgrade("the new master's config is invalid: " + e.error, Outcome::ConfigInvalid);
}

void Supervisor::on(const SuccessorChannelClosed&) {}  // it exited or gave up: ChildExited says how

void Supervisor::on(const PidFileWritten& e) { pid_file_ok_ = e.ok; }

void Supervisor::on(const PredecessorTold& e) {
  if (!e.ok) log(Level::Error, "could not tell the previous master that this one is ready: " + e.error);
  log(Level::Info, say::took_over(pid_file_ok_));
  out_.push_back(Notify{say::upgraded_status(identity_.pid, serving_.value_or(0))});
}

// SIGUSR1 or `reopen`: the master reopens its files and hands them to each of shoal's own workers
// (an app's output reaches the master's own log). A `reopen` is answered once every worker told
// confirmed, or at reopen_wait; rounds do not overlap: a reopen during one joins it.
void Supervisor::reopen(std::optional<uint64_t> reply_id) {
  if (reply_id) reopen_replies_.push_back(*reply_id);
  if (reopen_deadline_) return;
  ReopenLogs reopen;
  for (const auto& g : generations_)
    for (const auto& w : g.workers)
      if (w.pid > 0 && !app_of(g)) reopen.workers.push_back(w.key);
  reopen_deadline_ = now_ + timing_.reopen_wait;
  reopen_errors_.clear();
  reopen_told_ = reopen_confirmed_ = reopen_gone_ = 0;
  reopen_files_done_ = false;
  out_.push_back(std::move(reopen));
}

void Supervisor::on(const ServerHooksDone& e) {
  if (server_hooks_ != ServerHooks::Running) return;
  server_hooks_ = ServerHooks::Done;
  if (e.failures == 0) return;
  unclean_ = true;
  outcomes_.push_back(cat(e.failures, " server hook(s) failed"));
}

void Supervisor::on(const LogsReopened& e) {
  for (const auto& error : e.errors) log(Level::Error, "SIGUSR1: " + error);
  log(Level::Info, say::reopened(e.told.size()));
  reopen_errors_ = e.errors;
  reopen_told_ = e.told.size();
  reopen_files_done_ = true;
  reopen_pending_.clear();
  for (const auto& key : e.told)
    if (const Worker* w = worker(key); w && w->state != WState::Exited) reopen_pending_.push_back(key);
}

// Answers the `reopen` round once nothing is pending, or at its deadline.
bool Supervisor::answer_reopen() {
  if (!reopen_deadline_) return false;
  reopen_gone_ += std::erase_if(reopen_pending_, [&](const WorkerKey& key) { return worker(key) == nullptr; });
  if ((!reopen_files_done_ || !reopen_pending_.empty()) && *reopen_deadline_ > now_) return false;
  bool ok = reopen_errors_.empty() && reopen_pending_.empty();
  std::string message = say::reopen_reply(reopen_confirmed_, reopen_told_, reopen_gone_, reopen_errors_);
  for (uint64_t id : reopen_replies_) reply(id, ok ? Outcome::Done : Outcome::ReopenFailed, message);
  if (!ok && !reopen_replies_.empty()) log(Level::Warn, message);
  reopen_replies_.clear();
  reopen_deadline_.reset();
  reopen_pending_.clear();
  return true;
}

// ---------------------------------------------------------------- commands and signals

std::string Supervisor::busy_reason() const {
  switch (phase_) {
    case Phase::Booting: return say::busy_booting(starting_.value_or(last_generation_));
    case Phase::Reloading:
      if (in_place_) return say::busy_in_place(now_ - busy_since_);
      return say::busy_reloading(starting_.value_or(last_generation_ + 1), now_ - busy_since_);
    case Phase::Upgrading:
      if (!successor_pid_) return say::busy_in_place(now_ - busy_since_);
      return say::busy_upgrading(*successor_pid_, now_ - busy_since_);
    case Phase::ShuttingDown:
    case Phase::Exited: return say::busy_shutting_down(now_ - shutdown_at_);
    case Phase::Running: break;
  }
  return "";
}

void Supervisor::reload(std::optional<uint64_t> reply_id) {
  switch (phase_) {
    case Phase::Running: break;
    case Phase::Booting:
      if (!reply_id) {  // the file may have been edited after the start: load it once we serve
        if (!reload_pending_) log(Level::Info, say::reload_after_boot(starting_.value_or(0)));
        reload_pending_ = true;
        return;
      }
      [[fallthrough]];
    case Phase::Reloading:
      if (phase_ == Phase::Reloading && !reply_id) {  // a signal is coalesced into one more reload
        if (!reload_pending_) log(Level::Info, say::reload_coalesced());
        reload_pending_ = true;
        return;
      }
      [[fallthrough]];
    case Phase::Upgrading:
    case Phase::ShuttingDown:
    case Phase::Exited: {
      std::string why = say::reload_refused(busy_reason());
      log(Level::Warn, why);
      if (reply_id)
        reply(*reply_id, phase_ == Phase::ShuttingDown ? Outcome::ShuttingDown : Outcome::Busy, why);
      return;
    }
  }
  phase_ = Phase::Reloading;
  busy_since_ = now_;
  if (reply_id) reload_replies_.push_back(*reply_id);
  log(Level::Info, say::reloading(identity_.config_path));
  out_.push_back(Notify{say::reloading_notify(now_)});
  loading_config_ = true;
  out_.push_back(LoadConfig{});
}

void Supervisor::upgrade(std::optional<uint64_t> reply_id) {
  std::optional<std::string> why;
  Outcome outcome = Outcome::Busy;
  if (phase_ == Phase::ShuttingDown || phase_ == Phase::Exited) outcome = Outcome::ShuttingDown;
  if (phase_ != Phase::Running) why = busy_reason();
  else if (successor_pid_) why = say::busy_candidate(*successor_pid_);
  if (why) {
    std::string text = say::upgrade_refused(*why);
    log(Level::Error, text);
    if (reply_id) reply(*reply_id, outcome, text);
    return;
  }
  phase_ = Phase::Upgrading;
  busy_since_ = now_;
  if (reply_id) upgrade_replies_.push_back(*reply_id);
  if (current_config()->server.upgrade == Config::Server::Upgrade::InPlace) {
    // The new program must accept this config and these workers before this image gives itself up.
    checking_program_ = true;
    successor_deadline_ = now_ + timing_.upgrade_startup;
    log(Level::Info, say::checking_program(identity_.config_path));
    out_.push_back(CheckProgram{});
    return;
  }
  successor_starting_ = true;
  out_.push_back(StartSuccessor{last_generation_ + 1});
}

void Supervisor::on(const ProgramChecked& e) {
  if (!checking_program_ || phase_ != Phase::Upgrading) return;  // abandoned meanwhile
  checking_program_ = false;
  successor_deadline_.reset();
  if (e.exit_code != 0)
    return fail_upgrade(say::program_check_failed(e.exit_code, e.output),
                        e.exit_code == 1 ? Outcome::ConfigInvalid : Outcome::StartFailed);
  log(Level::Info, say::re_executing(identity_.pid));
  exec_due_ = true;
}

void Supervisor::on(const ExecFailed& e) {
  if (!exec_sent_) return;
  exec_sent_ = false;
  fail_upgrade(say::exec_failed(e.error), Outcome::StartFailed);
}

void Supervisor::status(uint64_t reply_id) {
  status_replies_.push_back(reply_id);
  if (status_deadline_) return;  // a round is under way: this reply joins it
  for (auto& g : generations_)
    for (auto& w : g.workers)
      if (w.pid > 0 && !app_of(g)) {  // an app's figures are its own; it reports STATUS= instead
        w.stats_pending = true;
        out_.push_back(SendToWorker{w.key, MsgType::StatsQuery});
      }
  status_deadline_ = now_ + timing_.status_wait;
}

void Supervisor::change_size(int delta) {
  const char* what = delta > 0 ? "SIGTTIN" : "SIGTTOU";
  if (phase_ == Phase::ShuttingDown || phase_ == Phase::Exited) return log(Level::Warn, say::ignored_shutting_down(what));
  // Only the desired size changes here; the reconcile pass starts or culls the workers.
  Generation* g = generation(serving_ ? *serving_ : starting_.value_or(0));
  if (!g) return;
  if (delta > 0) {
    ++g->desired;
    int slot = g->desired - 1;
    return log(Level::Info, say::added(slot, g->config->cpu_for_worker(slot), g->number, g->desired));
  }
  if (g->desired <= 1) return log(Level::Warn, say::fewest(g->number));
  --g->desired;
  Pid pid = -1;
  for (const auto& w : g->workers)
    if (w.key.slot == g->desired && !w.culled && w.pid > 0 && !w.replaces) pid = w.pid;
  log(Level::Info, say::removed(g->desired, pid, g->number, g->desired));
}

// One function for the three ways in (SIGTERM, SIGINT, stop): every waiter is answered, what
// was starting is stopped before the listeners close, everything else drains.
void Supervisor::enter_shutdown(const std::string& why, Time drain_delay, std::optional<uint64_t> stop_reply) {
  if (stop_reply) stop_replies_.push_back(*stop_reply);
  if (phase_ == Phase::ShuttingDown) {
    Time left = std::max(Time(0), shutdown_deadline() - now_);
    return log(Level::Info, say::already_stopping(why, left));
  }
  answer_waiters_abandoned(why);
  final_config_ = current_config();
  Time timeout = final_config_->shutdown.timeout;
  phase_ = Phase::ShuttingDown;
  shutdown_at_ = now_;
  shutdown_why_ = why;
  shutdown_timeout_ = timeout;
  log(Level::Info, say::graceful(why, live_workers(), drain_delay, timeout));
  out_.push_back(Notify{"STOPPING=1"});
  for (auto& gen : generations_) {
    for (auto& w : gen.workers) w.counted = w.state == WState::Ready || w.state == WState::Draining;
    // What has not started yet accepted nothing but holds copies of the listening sockets: it
    // must be gone when the master closes its own (at the drain delay), or connections would
    // queue to a process that never accepts them, and be reset when it exits.
    retire(gen, MsgType::Drain, drain_delay, timeout, std::min(timing_.stop_grace, drain_delay));
  }
  // The master's copies close with the workers' (after the delay): new connections are then
  // refused instead of queued to nobody.
  close_listeners_at_ = now_ + drain_delay;
}

void Supervisor::quit(const std::string& why) {
  log(Level::Warn, say::stopping_now(why, live_workers()));
  unclean_ = true;
  if (phase_ != Phase::ShuttingDown) {
    final_config_ = current_config();
    answer_waiters_abandoned(why);
    shutdown_at_ = now_;
    shutdown_timeout_ = timing_.stop_grace;
    for (auto& g : generations_)
      for (auto& w : g.workers) w.counted = w.state == WState::Ready || w.state == WState::Draining;
    out_.push_back(Notify{"STOPPING=1"});
  }
  phase_ = Phase::ShuttingDown;
  shutdown_timeout_ = std::min(shutdown_timeout_, now_ + timing_.stop_grace - shutdown_at_);
  for (auto& g : generations_) retire(g, MsgType::Stop, Time(0), timing_.stop_grace, timing_.stop_grace);
  close_listeners();
}

// Every reply that waits on something a shutdown cancels is answered now (tableflip's rule: no
// caller is left waiting because the state changed under it).
void Supervisor::answer_waiters_abandoned(const std::string& why) {
  reload_pending_ = false;
  if (phase_ == Phase::Booting) starting_.reset();  // the first generation drains like any other
  if (phase_ == Phase::Reloading) {
    loading_config_ = false;
    uint64_t number = starting_.value_or(last_generation_ + 1);
    std::string message = say::reload_abandoned(why, number);
    count_reload(Outcome::ShuttingDown);
    if (in_place_) message = "upgrade abandoned: " + message.substr(sizeof "reload abandoned: " - 1);
    else last_reload_ = {number, Outcome::ShuttingDown, message, now_};
    for (uint64_t id : in_place_ ? upgrade_replies_ : reload_replies_) reply(id, Outcome::ShuttingDown, message);
    reload_replies_.clear();
    upgrade_replies_.clear();
    in_place_ = false;
    if (Generation* g = starting_ ? generation(*starting_) : nullptr) {
      log(Level::Warn, say::reload_abandoned_log(why, g->number));
      g->failed = true;
    }
    starting_.reset();
    phase_ = Phase::Running;
  }
  if (phase_ == Phase::Upgrading) {
    checking_program_ = exec_due_ = exec_sent_ = false;
    std::string message = say::upgrade_abandoned(why, successor_pid_.value_or(0));
    count_upgrade(Outcome::ShuttingDown);
    log(Level::Warn, message);
    for (uint64_t id : upgrade_replies_) reply(id, Outcome::ShuttingDown, message);
    upgrade_replies_.clear();
    if (successor_pid_) out_.push_back(Kill{*successor_pid_, SIGINT});
    out_.push_back(CloseSuccessorChannel{});
    successor_deadline_.reset();
    phase_ = Phase::Running;
  }
}

// ---------------------------------------------------------------- generations

void Supervisor::start_generation(std::shared_ptr<const Config> config) {
  Generation g;
  g.number = ++last_generation_;
  g.config = std::move(config);
  g.desired = g.config->server.workers;
  g.started_at = now_;
  generations_.push_back(std::move(g));
  starting_ = last_generation_;
  out_.push_back(PrepareGeneration{last_generation_, generations_.back().config});
}

void Supervisor::fork_worker(Generation& g, int slot, std::optional<WorkerKey> replaces) {
  Slot& s = g.slots[slot];
  Worker w;
  w.key = {g.number, slot, s.incarnations++};
  w.cpu = g.config->cpu_for_worker(slot);
  w.replaces = replaces;
  s.respawn_at.reset();
  uint64_t max_requests = g.config->server.max_requests;
  if (max_requests > 0 && g.config->server.max_requests_jitter > 0)
    max_requests += std::uniform_int_distribution<uint64_t>(0, g.config->server.max_requests_jitter)(rng_);
  out_.push_back(ForkWorker{w.key, w.cpu, max_requests});
  g.workers.push_back(std::move(w));
}

// Tells a worker to drain (or stop). A worker that never reported ready holds no connection:
// it is always stopped, not drained. The channel's failure falls back to a signal (SendFailed).
void Supervisor::tell(Worker& w, MsgType how, Time drain_delay) {
  if (w.state == WState::Exited) return;
  if (w.state == WState::Forking) {
    w.told = how;  // sent once the fork comes back
    return;
  }
  if (w.state == WState::Starting) how = MsgType::Stop;
  if (w.told == how || w.told == MsgType::Stop) return;  // a drain is asked once; a stop ends it
  w.told = how;
  w.state = WState::Draining;
  const Generation* g = generation(w.key.generation);
  if (const AppConfig* app = g ? app_of(*g) : nullptr) {
    // An app knows one word, its drain signal: told to stop, it drains too, within a shorter deadline.
    log(Level::Info, say::app_told(w.key.slot, w.pid, app->drain_signal_name, how == MsgType::Drain));
    out_.push_back(Kill{w.pid, app->drain_signal, how == MsgType::Drain ? drain_delay : Time(0)});
    return;
  }
  // Its deadline goes with the drain (set before telling), so that the application's drain
  // notice says how long it has.
  uint64_t deadline_in = how == MsgType::Drain && w.kill_at ? static_cast<uint64_t>(std::max(Time(1), *w.kill_at - now_).count()) : 0;
  out_.push_back(SendToWorker{w.key, how, static_cast<uint32_t>(how == MsgType::Drain ? drain_delay.count() : 0), deadline_in});
}

// One more generation is about to drain: if that would make more than [reload]
// max_draining_generations drain at once, the oldest are cut short first (their streams end now,
// their workers are killed at now + their stream_grace), so that a reload every few seconds
// under long-lived connections cannot pile up processes.
void Supervisor::bound_draining(const Config& serving) {
  std::vector<Generation*> draining;
  for (auto& g : generations_)
    if (g.state == GState::Draining && !g.hurried && !g.workers.empty()) draining.push_back(&g);
  std::sort(draining.begin(), draining.end(), [](const Generation* a, const Generation* b) { return a->number < b->number; });
  const size_t limit = static_cast<size_t>(serving.reload.max_draining_generations);
  const size_t would = draining.size() + 1;
  for (size_t i = 0; i < draining.size() && would - i > limit; ++i) {
    Generation& g = *draining[i];
    g.hurried = true;
    const Time grace = g.config->shutdown.stream_grace;
    log(Level::Warn, say::hurried(g.number, now_ - g.drain_started_at.value_or(now_), drain_figures(g).connections,
                                  would, limit, grace));
    for (auto& w : g.workers) {
      if (w.state == WState::Exited || w.killed) continue;
      set_kill_deadline(w, now_ + grace, say::hurried_deadline(grace));
      if (w.state == WState::Draining && w.told == MsgType::Drain && w.pid > 0 && !app_of(g))
        out_.push_back(SendToWorker{w.key, MsgType::Drain, 0, static_cast<uint64_t>(std::max(Time(1), grace).count()), kDrainHurry});
    }
  }
  for (size_t i = 0; i < draining.size(); ++i) {
    const Generation& g = *draining[i];
    if (g.hurried) continue;
    const DrainFigures now = drain_figures(g);
    log(Level::Info, say::still_draining(g.number, now_ - g.drain_started_at.value_or(now_), now.connections,
                                         now.deadline ? *now.deadline - now_ : Time(0)));
  }
}

Supervisor::DrainFigures Supervisor::drain_figures(const Generation& g) const {
  DrainFigures out;
  for (const auto& w : g.workers) {
    if (w.pid <= 0) continue;
    out.connections += w.connections;
    if (w.kill_at && (!out.deadline || *w.kill_at < *out.deadline)) out.deadline = w.kill_at;
  }
  return out;
}

void Supervisor::set_kill_deadline(Worker& w, Time at, const std::string& what) {
  if (w.kill_at && *w.kill_at <= at) return;  // a deadline only ever moves earlier
  w.kill_at = at;
  w.kill_deadline = what;
}

// Ends a generation: ready workers drain (or stop), workers not ready yet stop; each gets its
// deadline. Retiring again (a shutdown after a reload) keeps the first drain start and any
// earlier deadline.
void Supervisor::retire(Generation& g, MsgType how, Time drain_delay, Time kill_after, Time unready_grace) {
  if (g.state == GState::Preparing) return;  // no worker yet; collect() forgets it
  g.state = GState::Draining;
  g.ready_deadline.reset();
  if (!g.drain_started_at) g.drain_started_at = now_;
  for (auto& s : g.slots) s.second.respawn_at.reset();
  for (auto& w : g.workers) {
    w.culled = true;
    if (w.state == WState::Exited) continue;
    bool ready = w.state == WState::Ready || (w.state == WState::Draining && w.told == MsgType::Drain);
    if (ready && how == MsgType::Drain) {
      set_kill_deadline(w, *g.drain_started_at + kill_after, say::deadline_of(kill_after));
      tell(w, MsgType::Drain, drain_delay);
    } else {
      // Not ready (or told to stop): it holds no request, only its copies of the listening
      // sockets; it gets unready_grace to exit.
      Time grace = ready ? kill_after : unready_grace;
      set_kill_deadline(w, now_ + grace, say::deadline_of(grace));
      tell(w, MsgType::Stop, Time(0));
    }
  }
}

void Supervisor::fail_reload(const std::string& reason, Outcome outcome) {
  uint64_t number = starting_.value_or(last_generation_ + 1);
  uint64_t serving = serving_.value_or(0);
  std::string message = say::reload_failed_reply(reason, serving);
  count_reload(outcome);
  if (in_place_) {
    // The new image supervises the old generation from now on: the upgrade failed, the server did not.
    message = say::in_place_failed(reason, serving, identity_.pid, identity_.version);
    log(Level::Error, message);
    for (uint64_t id : upgrade_replies_) reply(id, outcome, message);
    upgrade_replies_.clear();
    in_place_ = false;
  } else {
    last_reload_ = {number, outcome, message, now_};
    log(Level::Error, say::reload_failed_log(reason, serving));
  }
  out_.push_back(Notify{"READY=1\nSTATUS=" + message});
  for (uint64_t id : reload_replies_) reply(id, outcome, message);
  reload_replies_.clear();
  if (Generation* g = starting_ ? generation(*starting_) : nullptr) {
    g->failed = true;
    // Its ready workers may already hold connections: they drain, within their own timeout.
    if (g->state != GState::Preparing && phase_ != Phase::ShuttingDown) bound_draining(*g->config);
    retire(*g, MsgType::Drain, Time(0), g->config->shutdown.timeout, timing_.stop_grace);
    if (g->state == GState::Preparing) g->state = GState::Draining;
  }
  starting_.reset();
  sync_listeners();  // addresses bound only for the failed generation
  end_reload();
}

namespace {
int outcome_index(Outcome outcome) {
  switch (outcome) {
    case Outcome::Done: return metrics::kOk;
    case Outcome::ConfigInvalid: return metrics::kConfigInvalid;
    case Outcome::NotReady: return metrics::kNotReady;
    case Outcome::ShuttingDown: return metrics::kCancelled;
    default: return metrics::kStartFailed;
  }
}
}  // namespace

void Supervisor::count_reload(Outcome outcome) {
  if (in_place_) return count_upgrade(outcome);
  ++counts_.reloads[outcome_index(outcome)];
  if (outcome == Outcome::ShuttingDown) return;  // abandoned: it says nothing of the config
  counts_.last_load_ok = outcome == Outcome::Done;
  counts_.last_load_at = now_;
  if (outcome == Outcome::Done) counts_.last_success_at = now_;
}

void Supervisor::count_upgrade(Outcome outcome) { ++counts_.upgrades[outcome_index(outcome)]; }

void Supervisor::end_reload() {
  phase_ = Phase::Running;
  if (reload_pending_) {
    reload_pending_ = false;
    reload(std::nullopt);
  }
}

void Supervisor::fail_upgrade(const std::string& reason, Outcome outcome) {
  if (phase_ != Phase::Upgrading) return;
  count_upgrade(outcome);
  checking_program_ = exec_due_ = exec_sent_ = false;
  out_.push_back(CloseSuccessorChannel{});
  successor_deadline_.reset();
  // Still running (not ready in time): it drains what its workers accepted, without delay. It is
  // reaped before this master exits.
  if (successor_pid_) out_.push_back(Kill{*successor_pid_, SIGINT});
  std::string message = say::upgrade_failed(reason, identity_.pid);
  log(Level::Error, message);
  out_.push_back(Notify{"STATUS=" + message});
  for (uint64_t id : upgrade_replies_) reply(id, outcome, message);
  upgrade_replies_.clear();
  phase_ = Phase::Running;
}

void Supervisor::close_listeners() {
  close_listeners_at_.reset();
  if (listeners_closed_) return;
  listeners_closed_ = true;
  if (handed_over_) {
    out_.push_back(ReleaseListeners{});
    return;
  }
  out_.push_back(CloseListeners{});
  log(Level::Info, say::listeners_closed());
}

void Supervisor::sync_listeners() {
  CloseUnusedListeners keep;
  for (const auto& g : generations_)
    if (serving_ == g.number || starting_ == g.number) keep.in_use.push_back(g.config);
  out_.push_back(std::move(keep));
}

// ---------------------------------------------------------------- workers

// Only the serving generation's workers are replaced when they die (and the first generation's,
// as it boots: there is nothing to fall back to), unless they were told to go.
bool Supervisor::respawns(const Generation& g, const Worker& w) const {
  if (phase_ == Phase::ShuttingDown || phase_ == Phase::Exited || w.culled || w.told != MsgType::Ready) return false;
  return serving_ == g.number || (phase_ == Phase::Booting && starting_ == g.number);
}

void Supervisor::worker_exited(Generation& g, size_t index, const ChildExited& e) {
  Worker w = std::move(g.workers[index]);
  g.workers.erase(g.workers.begin() + static_cast<std::ptrdiff_t>(index));
  const int code = e.exited ? e.code : 128 + e.code;
  const std::string status = say::exit_status(e);
  const int slot = w.key.slot;

  if (respawns(g, w)) {
    ++counts_.restarts[w.restart];
    bool young = w.state == WState::Starting || now_ - w.ready_at < timing_.healthy_after || code == kWorkerFatalExit;
    log(Level::Error, say::worker_died(slot, w.pid, w.cpu, status, wstate_name(w.state)));
    if (young) return failed_at_start(g, slot);
    g.slots[slot].failures = 0;
    g.slots[slot].respawn_at = now_;
    return;
  }
  if (starting_ == g.number && serving_ && !w.culled) {
    return fail_reload(say::died_before_ready(slot, w.pid, g.number, status), Outcome::StartFailed);
  }
  // The wait status decides: a worker that exited by itself as its SIGKILL was sent made it.
  const bool killed = w.killed && !e.exited && e.code == SIGKILL;
  std::string outcome;
  if (killed) outcome = "killed at the deadline";
  else if (!e.exited) outcome = status;
  else if (w.told == MsgType::Stop) outcome = cat("stopped without draining (exit code ", code, ")");
  else if (code == 0) outcome = app_of(g) ? "exited 0 after its drain signal" : "drained, hooks ok";
  else if (w.failed_hooks > 0) outcome = cat(w.failed_hooks, " hook(s) failed");
  else outcome = status;
  bool clean = code == 0 && !killed;
  log(clean ? Level::Info : Level::Warn, say::worker_ended(slot, w.pid, g.number, status, killed));
  if (w.counted) {
    outcomes_.push_back(cat(say::worker(slot, w.pid), " ", outcome));
    if (!clean) unclean_ = true;
  }
}

void Supervisor::kill_now(Worker& w, const std::string& text) {
  log(Level::Error, text);
  w.killed = true;
  out_.push_back(Kill{w.pid, SIGKILL});
}

// ---------------------------------------------------------------- reconcile

void Supervisor::reconcile() {
  // Each part returns whether it changed something; repeat until none does. A pass changes a
  // finite amount of state (every change removes a reason for itself), so this ends; the bound
  // is a guard, and the simulation checks that it is never reached.
  for (int pass = 0; pass < 64; ++pass) {
    bool changed = false;
    changed |= expire_deadlines();
    changed |= promote();
    for (auto& g : generations_) changed |= supervise_slots(g);
    changed |= collect();
    changed |= answer_status();
    changed |= answer_reopen();
    changed |= finish();
    if (!changed || phase_ == Phase::Exited) return;
  }
  log(Level::Critical, "internal: the master's reconcile pass did not settle");
}

bool Supervisor::expire_deadlines() {
  bool changed = false;
  for (auto& g : generations_) {
    for (auto& w : g.workers) {
      if (w.pid <= 0 || w.killed) continue;
      if (w.kill_at && *w.kill_at <= now_) {
        std::string detail = "no drain report";
        if (w.status_at) {
          detail = cat(w.in_flight, " request(s) in flight");
          if (w.in_flight > 0)
            detail += cat(", oldest ", w.oldest_request, " for ", w.oldest_age_ms + (now_ - *w.status_at).count(), " ms");
        }
        kill_now(w, say::still_running(w.key.slot, w.pid, g.number, w.kill_deadline, detail));
        changed = true;
        continue;
      }
      // A worker stuck at start (a start hook that hangs) in a generation that replaces its
      // dead: a reload's new generation has its own deadline instead.
      if (w.state == WState::Starting && respawns(g, w) && now_ - w.forked_at >= g.config->reload.ready_timeout) {
        w.restart = metrics::kReadyTimeout;
        kill_now(w, say::not_ready_in_time(w.key.slot, w.pid, g.number, now_ - w.forked_at, g.config->reload.ready_timeout));
        changed = true;
        continue;
      }
      // ready = "delay": an app that cannot say it is ready is taken for ready after ready_delay.
      if (auto at = assumed_ready_at(g, w); at && *at <= now_) {
        became_ready(g, w, say::assumed_ready(g.config->app->ready_delay));
        changed = true;
        continue;
      }
      // Silent for heartbeat_timeout: stuck (an endless loop in a handler, SIGSTOP). Probe what
      // it is doing for the log, then SIGKILL; the usual respawn replaces it.
      std::optional<Time> limit = silence_limit(g);
      if (w.state == WState::Ready && !w.probe_pending && limit && now_ - w.last_heard >= *limit) {
        w.probe_pending = true;
        out_.push_back(ProbeWorker{w.key, w.pid});
        changed = true;
      }
    }
    if (g.state == GState::Starting && g.ready_deadline && *g.ready_deadline <= now_ && starting_ == g.number) {
      size_t ready = static_cast<size_t>(std::count_if(g.workers.begin(), g.workers.end(),
                                                       [](const Worker& w) { return w.state == WState::Ready; }));
      fail_reload(say::not_ready_within(g.number, g.config->reload.ready_timeout, ready, static_cast<size_t>(g.desired)),
                  Outcome::NotReady);
      changed = true;
    }
  }
  if (successor_deadline_ && *successor_deadline_ <= now_) {
    const Generation* serving = generation(*serving_);
    fail_upgrade(checking_program_ ? say::program_check_slow(timing_.upgrade_startup)
                                   : say::successor_not_ready(successor_pid_.value_or(0),
                                                              serving->config->reload.ready_timeout + timing_.upgrade_startup),
                 Outcome::NotReady);
    changed = true;
  }
  if (close_listeners_at_ && *close_listeners_at_ <= now_) {
    close_listeners();
    changed = true;
  }
  // max_worker_rss: sampled every rss_every while a serving generation sets it.
  const Generation* serving = serving_ ? generation(*serving_) : nullptr;
  bool sample = phase_ == Phase::Running && serving && serving->config->server.max_worker_rss > 0;
  if (!sample) {
    next_rss_at_.reset();
  } else if (!next_rss_at_) {
    next_rss_at_ = now_ + timing_.rss_every;
  } else if (*next_rss_at_ <= now_) {
    next_rss_at_ = now_ + timing_.rss_every;
    for (auto& w : generation(*serving_)->workers)
      if (w.state == WState::Ready && !w.culled && w.replace_reason.empty() && !w.rss_pending) {
        w.rss_pending = true;
        out_.push_back(SampleRss{w.key, w.pid});
      }
    changed = true;
  }
  return changed;
}

// A starting generation whose workers are all ready takes over: the first one (Booting ->
// Running, once) or a reload's (the old generation then drains).
bool Supervisor::promote() {
  if (!starting_ || (phase_ != Phase::Booting && phase_ != Phase::Reloading)) return false;
  Generation* g = generation(*starting_);
  if (!g || g->state != GState::Starting) return false;
  size_t ready = 0;
  for (const auto& w : g->workers) {
    if (w.culled) continue;
    if (w.state != WState::Ready) return false;
    ++ready;
  }
  if (ready != static_cast<size_t>(g->desired)) return false;
  g->state = GState::Serving;
  g->ready_deadline.reset();
  starting_.reset();

  if (phase_ == Phase::Booting) {
    serving_ = g->number;
    phase_ = Phase::Running;
    counts_.last_load_at = counts_.last_success_at = now_;  // the start's config serves
    log(Level::Info, say::generation_ready(g->number, ready, now_ - started_at_));
    if (identity_.has_predecessor) {
      // The pid file names this master only now that it is ready: until then, the old one serves.
      out_.push_back(WritePidFile{});
      out_.push_back(TellPredecessor{});
      told_predecessor_ = true;
    } else {
      out_.push_back(Notify{say::serving_status(g->number, ready)});
    }
    out_.push_back(StartControl{});
    control_started_ = true;
    end_reload();  // a SIGHUP that came while booting
    return true;
  }

  Generation* old = generation(*serving_);
  uint64_t old_number = *serving_;
  serving_ = g->number;
  out_.push_back(SetLogIdentity{g->number});
  out_.push_back(SetLogLevel{g->config->log.level});
  Time took = now_ - busy_since_;
  count_reload(Outcome::Done);
  if (in_place_) {
    // As an upgrade by a new master, answered once the new program's workers are ready.
    std::string message = say::in_place_ok(identity_.pid, from_version_, identity_.version, g->number, ready, took);
    log(Level::Info, cat(message, "; generation ", old_number, " drains"));
    out_.push_back(Notify{"READY=1\nSTATUS=" + message});
    for (uint64_t id : upgrade_replies_) reply(id, Outcome::Done, message);
    upgrade_replies_.clear();
    in_place_ = false;
  } else {
    std::string message = say::reload_ok(g->number, ready, took);
    last_reload_ = {g->number, Outcome::Done, message, now_};
    log(Level::Info, say::reload_succeeded(g->number, ready, took, old_number));
    out_.push_back(Notify{"READY=1\nSTATUS=" + message});
    // "reload ok" is answered once the old generation has drained, with how long that took.
    drain_waiters_.push_back({old_number, message, std::move(reload_replies_)});
  }
  reload_replies_.clear();
  // The new generation already accepts from the same queues: no drain_delay for the old one.
  if (old) {
    bound_draining(*g->config);
    retire(*old, MsgType::Drain, Time(0), old->config->shutdown.timeout, timing_.stop_grace);
  }
  sync_listeners();
  end_reload();
  return true;
}

// The serving generation (or the first, as it boots) toward its desired size: cull above it,
// retire incumbents whose replacement is ready, start what a slot lacks (after its backoff), and
// start a graceful replacement for an incumbent that asked for one.
bool Supervisor::supervise_slots(Generation& g) {
  bool current = serving_ == g.number || (phase_ == Phase::Booting && starting_ == g.number);
  if (!current || g.state == GState::Draining || g.state == GState::Preparing) return false;
  if (phase_ == Phase::ShuttingDown || phase_ == Phase::Exited) return false;
  bool changed = false;
  const Time timeout = g.config->shutdown.timeout;
  for (auto& w : g.workers) {
    if (w.culled || w.key.slot < g.desired) continue;
    w.culled = true;
    w.replace_reason.clear();
    set_kill_deadline(w, now_ + timeout, say::deadline_of(timeout));
    tell(w, MsgType::Drain, Time(0));
    changed = true;
  }
  for (auto& fresh : g.workers) {
    if (!fresh.replaces || fresh.culled || fresh.state != WState::Ready) continue;
    Worker* old = worker(*fresh.replaces);
    if (old && !old->culled) {
      log(Level::Info, say::replaced(fresh.key.slot, old->pid, fresh.pid, old->replace_reason));
      old->culled = true;
      old->replace_reason.clear();
      set_kill_deadline(*old, now_ + timeout, say::deadline_of(timeout));
      tell(*old, MsgType::Drain, Time(0));
    }
    fresh.replaces.reset();
    changed = true;
  }
  if (g.state != GState::Serving && !(phase_ == Phase::Booting && g.state == GState::Starting)) return changed;
  for (int slot = 0; slot < g.desired; ++slot) {
    Slot& s = g.slots[slot];
    const Worker* incumbent = nullptr;
    bool replacing = false;
    for (const auto& w : g.workers) {
      if (w.culled || w.key.slot != slot) continue;
      if (w.replaces) replacing = true;
      else incumbent = &w;
    }
    bool respawn = !incumbent && !replacing;
    bool replace = incumbent && !replacing && !incumbent->replace_reason.empty() && phase_ == Phase::Running &&
                   incumbent->state == WState::Ready;
    if (!respawn && !replace) {
      s.respawn_at.reset();  // nothing to start: a backoff left over must not keep the timer busy
      continue;
    }
    if (s.respawn_at && *s.respawn_at > now_) continue;
    if (replace) ++counts_.restarts[incumbent->restart];
    fork_worker(g, slot, respawn ? std::nullopt : std::optional<WorkerKey>(incumbent->key));
    changed = true;
  }
  return changed;
}

// Forgets the generations that drained and answers whoever waited for that.
bool Supervisor::collect() {
  bool changed = false;
  for (auto it = generations_.begin(); it != generations_.end();) {
    Generation& g = *it;
    bool current = (serving_ == g.number && phase_ != Phase::ShuttingDown) || starting_ == g.number;
    if (current || g.state != GState::Draining || !g.workers.empty()) {
      ++it;
      continue;
    }
    Time drained = now_ - g.drain_started_at.value_or(now_);
    if (phase_ != Phase::ShuttingDown && !g.failed) log(Level::Info, say::generation_drained(g.number, drained));
    for (auto w = drain_waiters_.begin(); w != drain_waiters_.end();) {
      if (w->old_generation != g.number) {
        ++w;
        continue;
      }
      for (uint64_t id : w->replies) reply(id, Outcome::Done, say::reload_ok_drained(w->message, g.number, drained));
      w = drain_waiters_.erase(w);
    }
    out_.push_back(ReleaseGeneration{g.number});
    it = generations_.erase(it);
    changed = true;
  }
  return changed;
}

bool Supervisor::answer_status() {
  if (status_replies_.empty()) return false;
  bool waiting = false;
  for (const auto& g : generations_)
    for (const auto& w : g.workers) waiting = waiting || w.stats_pending;
  if (waiting && status_deadline_ && *status_deadline_ > now_) return false;
  std::string summary = say::status_summary(identity_.pid, live_workers(), serving_.value_or(0));
  nlohmann::json out = {{"code", 0}, {"message", summary}, {"status", nlohmann::json::parse(status_json())}};
  for (uint64_t id : status_replies_) out_.push_back(Reply{id, out.dump()});
  status_replies_.clear();
  status_deadline_.reset();
  for (auto& g : generations_)
    for (auto& w : g.workers) w.stats_pending = false;
  return true;
}

std::string Supervisor::status_json() const {
  using nlohmann::json;
  json generations = json::array();
  for (const auto& g : generations_) {
    json workers = json::array();
    for (const auto& w : g.workers) {
      if (w.pid <= 0) continue;
      json one = {{"index", w.key.slot}, {"pid", w.pid}, {"cpu", w.cpu}, {"state", wstate_name(w.state)}};
      if (app_of(g)) {
        one["app_status"] = w.app_status;
      } else {
        one["connections"] = w.connections;
        one["requests_in_flight"] = w.requests_in_flight;
        one["requests_served"] = w.requests_served;
      }
      workers.push_back(std::move(one));
    }
    json one = {{"number", g.number},
                {"state", gstate_name(g.state)},
                {"desired_workers", g.desired},
                {"kind", app_of(g) ? "app" : "http"},
                {"age_s", (now_ - g.started_at).count() / 1000},
                {"workers", workers}};
    if (g.state == GState::Draining) {
      // Per draining generation: since when, what it still holds, and when it is killed.
      const DrainFigures now = drain_figures(g);
      one["draining_for_ms"] = g.drain_started_at ? (now_ - *g.drain_started_at).count() : 0;
      if (!app_of(g)) one["connections"] = now.connections;
      one["deadline_in_ms"] = now.deadline ? json(std::max<int64_t>(0, (*now.deadline - now_).count())) : json(nullptr);
      one["hurried"] = g.hurried;
    }
    generations.push_back(std::move(one));
  }
  json last_reload = nullptr;
  if (last_reload_.generation != 0)
    last_reload = {{"generation", last_reload_.generation},
                   {"ok", last_reload_.outcome == Outcome::Done},
                   {"code", exit_code(last_reload_.outcome)},
                   {"message", last_reload_.message},
                   {"ago_s", (now_ - last_reload_.at).count() / 1000}};
  json master = {{"pid", identity_.pid},
                 {"version", identity_.version},
                 {"uptime_s", (now_ - started_at_).count() / 1000},
                 {"config", identity_.config_path},
                 {"state", phase_name(phase_)}};
  return json{{"master", master}, {"generations", generations}, {"last_reload", last_reload}}.dump();
}

// Exit once nothing is left: no worker of any generation, and no upgrade candidate that this
// master started and has not reaped (unless it took over).
bool Supervisor::finish() {
  if (phase_ != Phase::ShuttingDown || live_workers() != 0 || successor_starting_) return false;
  if (successor_pid_ && !handed_over_) return false;
  // The server really stops (not a hand-over to a new master): its server hooks run, once, now
  // that no worker is left, and the exit waits for them.
  if (!handed_over_ && server_hooks_ != ServerHooks::Done) {
    if (server_hooks_ == ServerHooks::Running) return false;
    std::shared_ptr<const Config> config = final_config_ ? final_config_ : initial_config_;
    if (!config->shutdown.server_hooks.empty()) {
      server_hooks_ = ServerHooks::Running;
      log(Level::Info, say::running_server_hooks(config->shutdown.server_hooks.size()));
      out_.push_back(RunServerHooks{config});
      return true;
    }
    server_hooks_ = ServerHooks::Done;
  }
  std::string outcomes;
  for (const auto& o : outcomes_) outcomes += (outcomes.empty() ? "" : "; ") + o;
  bool clean = !unclean_;
  std::string summary = say::summary(handed_over_, clean, now_ - shutdown_at_, outcomes);
  log(clean ? Level::Info : Level::Warn, summary);
  for (uint64_t id : stop_replies_) reply(id, clean ? Outcome::Done : Outcome::StopUnclean, "stop: " + summary);
  stop_replies_.clear();
  for (const auto& w : drain_waiters_)
    for (uint64_t id : w.replies) reply(id, Outcome::Done, w.message);
  drain_waiters_.clear();
  for (uint64_t id : status_replies_) reply(id, Outcome::ShuttingDown, summary);
  status_replies_.clear();
  for (uint64_t id : reopen_replies_) reply(id, Outcome::ShuttingDown, summary);
  reopen_replies_.clear();
  reopen_deadline_.reset();
  for (auto& g : generations_) out_.push_back(ReleaseGeneration{g.number});
  generations_.clear();
  close_listeners();
  int code = clean ? 0 : 1;
  log(Level::Info, say::stopped(now_ - started_at_, code));
  out_.push_back(Exit{code, handed_over_});
  phase_ = Phase::Exited;
  return true;
}

// ---------------------------------------------------------------- deadlines and views

Time Supervisor::shutdown_deadline() const { return shutdown_at_ + shutdown_timeout_; }

std::optional<Time> Supervisor::next_deadline() const {
  std::optional<Time> next;
  auto consider = [&](std::optional<Time> t) {
    if (t && (!next || *t < *next)) next = t;
  };
  for (const auto& g : generations_) {
    bool current = serving_ == g.number || (phase_ == Phase::Booting && starting_ == g.number);
    for (const auto& w : g.workers) {
      if (w.pid <= 0 || w.killed) continue;
      consider(w.kill_at);
      if (w.state == WState::Starting && respawns(g, w)) consider(w.forked_at + g.config->reload.ready_timeout);
      if (auto limit = silence_limit(g); w.state == WState::Ready && !w.probe_pending && limit) consider(w.last_heard + *limit);
      consider(assumed_ready_at(g, w));
    }
    if (starting_ == g.number) consider(g.ready_deadline);
    if (current && phase_ != Phase::ShuttingDown && phase_ != Phase::Exited)
      for (const auto& [slot, s] : g.slots)
        if (slot < g.desired) consider(s.respawn_at);
  }
  consider(successor_deadline_);
  consider(close_listeners_at_);
  if (!status_replies_.empty()) consider(status_deadline_);
  consider(reopen_deadline_);
  consider(next_rss_at_);
  return next;
}

std::vector<Supervisor::GenerationView> Supervisor::generations() const {
  std::vector<GenerationView> views;
  for (const auto& g : generations_) {
    GenerationView v{g.number, gstate_name(g.state), g.desired, g.hurried, {}, g.drain_started_at,
                     g.config->shutdown.timeout};
    for (const auto& w : g.workers) v.workers.push_back({w.key, w.pid, wstate_name(w.state), w.culled, w.kill_at});
    views.push_back(std::move(v));
  }
  return views;
}

}  // namespace shoal::core
