#include "worker/worker.hpp"

#include <errno.h>
#include <event2/event.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <fcntl.h>
#include <grp.h>
#include <sys/types.h>
#include <unistd.h>

#include <algorithm>
#include <memory>

#include "common/channel.hpp"
#include "common/log.hpp"
#include "common/sys.hpp"
#include "common/proctitle.hpp"
#include "worker/hooks.hpp"
#include "worker/server.hpp"

namespace shoal {
namespace {

bool drop_privileges(const Config::Server& server, std::string& err) {
  if (!switch_user(server.user, server.uid, server.gid, err)) return false;
  if (!server.user.empty() && geteuid() == server.uid && server.uid != 0)
    spdlog::info("running as user {} (uid {}), group gid {}", server.user, server.uid, server.gid);
  return true;
}

class Worker {
 public:
  explicit Worker(const WorkerSpec& spec) : spec_(spec) {}

  ~Worker() {
    hooks_.reset();
    server_.reset();
    for (event* ev : events_) event_free(ev);
    if (base_) event_base_free(base_);
  }

  int run() {
    pin();
    base_ = event_base_new();
    if (!base_) {
      spdlog::critical("event_base_new failed");
      return kWorkerFatal;
    }
    // Built before the privilege drop: it opens the static roots, which may lie where only the
    // master's user can reach.
    server_ = std::make_unique<HttpServer>(base_, *spec_.config, *spec_.app, spec_.access_log_fd,
                                           "pid=" + std::to_string(getpid()) + " generation=" +
                                               std::to_string(spec_.generation) + " worker=" + std::to_string(spec_.index));
    server_->set_board(spec_.board);
    server_->set_metrics(spec_.counters, spec_.metrics);
    server_->set_access_identity({spec_.index, static_cast<long>(getpid()), spec_.generation});
    if (spec_.max_requests > 0)
      server_->set_request_limit(spec_.max_requests, [this] { ask_to_be_replaced(); });
    std::string err;
    if (!drop_privileges(spec_.config->server, err)) {
      spdlog::critical("{}", err);
      return kWorkerFatal;
    }
    // Application code runs only as the unprivileged user.
    for (const auto& hook : spec_.app->start_hooks()) {
      try {
        hook();
      } catch (const std::exception& e) {
        spdlog::critical("worker start hook failed: {}", e.what());
        return kWorkerFatal;
      }
    }
    if (!server_->listen(spec_.listen_fds, err)) {
      spdlog::critical("{}", err);
      return kWorkerFatal;
    }
    add_signal(SIGTERM, [](Worker& w) { w.begin_drain(w.spec_.config->shutdown.drain_delay, "SIGTERM"); });
    add_signal(SIGINT, [](Worker& w) { w.begin_drain(Millis(0), "SIGINT"); });
    add_signal(SIGQUIT, [](Worker& w) { w.stop_now("SIGQUIT"); });
    channel_ev_ = event_new(base_, spec_.channel_fd, EV_READ | EV_PERSIST, on_channel, this);
    events_.push_back(channel_ev_);
    event_add(channel_ev_, nullptr);

    // The heartbeat: sent from the loop, so a worker stuck in a handler (or stopped) falls silent.
    Millis every = std::min(Millis(1000), spec_.config->server.heartbeat_timeout / 4);
    event* heartbeat = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void* self) {
      auto* w = static_cast<Worker*>(self);
      send_message(w->spec_.channel_fd, {MsgType::Heartbeat});
      w->server_->refresh_gauges();
    }, this);
    events_.push_back(heartbeat);
    timeval tv = to_timeval(every);
    event_add(heartbeat, &tv);

    server_->refresh_gauges();  // a scrape before the first heartbeat sees this worker's memory
    if (!send_message(spec_.channel_fd, {MsgType::Ready})) {
      spdlog::error("cannot tell the master this worker is ready; draining");
      begin_drain(Millis(0), "lost master");
    }
    spdlog::debug("accepting on {} listener(s)", spec_.listen_fds.size());
    event_base_dispatch(base_);

    server_->flush_access_log();  // a no-op after the hook did it; needed after a stop or a deadline
    send_message(spec_.channel_fd, {MsgType::Done, 0, 0, static_cast<uint32_t>(exit_code_),
                                    static_cast<uint64_t>(failed_hooks_)});
    spdlog::log(exit_code_ ? spdlog::level::warn : spdlog::level::debug, "exiting with code {}", exit_code_);
    return exit_code_;
  }

 private:
  using SignalAction = void (*)(Worker&);

  void pin() {
    if (spec_.cpu < 0) return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(spec_.cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set) != 0)
      spdlog::error("sched_setaffinity(cpu {}) failed: {}; running unpinned", spec_.cpu, errno_text(errno));
    else
      spdlog::info("pinned to CPU {}", spec_.cpu);
  }

  void add_signal(int signo, SignalAction action) {
    actions_[signo] = action;
    event* ev = evsignal_new(base_, signo, on_signal, this);
    events_.push_back(ev);
    event_add(ev, nullptr);
  }

  static void on_signal(evutil_socket_t signo, short, void* self) {
    auto* w = static_cast<Worker*>(self);
    w->actions_[signo](*w);
  }

  static void on_channel(evutil_socket_t fd, short, void* self) {
    auto* w = static_cast<Worker*>(self);
    Message msg;
    std::vector<int> fds;
    for (;;) {
      switch (recv_message(fd, msg, nullptr, &fds)) {
        case RecvStatus::Again: return;
        case RecvStatus::Closed:
          // The master is gone (even SIGKILL closes its end): finish what was accepted and leave,
          // rather than serve on unsupervised.
          event_del(w->channel_ev_);
          spdlog::warn("channel to the master closed; draining on my own, within the {} shutdown timeout",
                       format_duration(w->spec_.config->shutdown.timeout));
          w->arm_own_deadline();
          w->begin_drain(Millis(0), "master gone");
          return;
        case RecvStatus::Ok:
          if (msg.type == MsgType::Drain)
            w->begin_drain(Millis(msg.value), "master", Millis(static_cast<int64_t>(msg.value2)),
                           (msg.flags & kDrainHurry) != 0);
          else if (msg.type == MsgType::Stop) w->stop_now("master");
          else if (msg.type == MsgType::Reopen) w->reopen_logs(msg.value, fds);
          else if (msg.type == MsgType::StatsQuery) w->send_stats();
          else spdlog::warn("unexpected message '{}' from the master", msg_name(msg.type));
      }
    }
  }

  // SIGUSR1 via the master: it reopened the files (it can: the worker may have given up the
  // rights to) and sent them along; they take the place of the old ones under the same numbers.
  void reopen_logs(uint32_t which, std::vector<int>& fds) {
    size_t next = 0;
    auto take = [&](int onto, const char* what) {
      if (next >= fds.size()) return spdlog::error("reopening the {}: the master sent no file", what);
      if (onto >= 0 && dup3(fds[next], onto, O_CLOEXEC) < 0)
        spdlog::error("reopening the {}: dup3 failed: {}", what, errno_text(errno));
      ::close(fds[next++]);
    };
    if (which & kReopenLog) take(spec_.log_fd, "log");
    if (which & kReopenAccessLog) {
      if (spec_.access_log_fd >= 0) server_->flush_access_log();  // what was buffered belongs to the old file
      take(spec_.access_log_fd, "access log");
    }
    for (; next < fds.size(); ++next) ::close(fds[next]);
    fds.clear();
    spdlog::info("reopened the log files");
    send_message(spec_.channel_fd, {MsgType::Reopened, 0, 0, 0});
  }

  // max_requests reached: the master starts a replacement and then tells this worker to drain.
  void ask_to_be_replaced() {
    spdlog::info("served {} requests (max_requests); asking the master for a replacement", spec_.max_requests);
    send_message(spec_.channel_fd, {MsgType::Recycle, 0, 0, 0, spec_.max_requests});
  }

  void send_stats() {
    HttpServer::InFlight now = server_->in_flight();
    send_message(spec_.channel_fd,
                 {MsgType::Stats, 0, 0, static_cast<uint32_t>(server_->connection_count()), server_->requests_served()},
                 std::to_string(now.requests));
  }

  // deadline_in: until the master's kill deadline (0: [shutdown] timeout). hurry: the master cut
  // this drain short; its streams end now.
  void begin_drain(Millis delay, const char* why, Millis deadline_in = Millis(0), bool hurry = false) {
    if (draining_) {
      if (hurry) return server_->hurry();
      spdlog::info("drain requested again ({}); already draining", why);
      return;
    }
    draining_ = true;
    drain_started_ = std::chrono::steady_clock::now();
    proctitle::set("shoal: worker " + std::to_string(spec_.index) + " (generation " + std::to_string(spec_.generation) +
                   ", draining)");
    // The server's own "draining: listeners closed" line says the rest at info.
    spdlog::debug("drain requested ({}): readiness is now 503; {} connection(s) open", why,
                  server_->connection_count());
    server_->drain(delay, [this] { run_hooks(); }, deadline_in);
    if (hurry) server_->hurry();
    // Tell the master how the drain goes, so that at its deadline it can name what was slow.
    status_timer_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void* self) {
      static_cast<Worker*>(self)->report_status();
    }, this);
    events_.push_back(status_timer_);
    static constexpr timeval kEvery{0, 250'000};
    event_add(status_timer_, &kEvery);
    report_status();
  }

  void report_status() {
    HttpServer::InFlight now = server_->in_flight();
    send_message(spec_.channel_fd,
                 {MsgType::Status, 0, 0, static_cast<uint32_t>(now.requests), static_cast<uint64_t>(now.oldest_age_ms)},
                 now.oldest);
    send_stats();  // the connections it still holds, for `shoal status` per draining generation
    // The count in the log when it changes, at most once a second (and always when it reaches 0).
    auto now_tp = std::chrono::steady_clock::now();
    if (now.requests != last_logged_in_flight_ &&
        (now.requests == 0 || now_tp - last_progress_log_ >= std::chrono::seconds(1))) {
      // Progress is news while requests are in flight; a drain that had none says nothing more.
      bool news = now.requests > 0 || (last_logged_in_flight_ != SIZE_MAX && last_logged_in_flight_ > 0);
      spdlog::log(news ? spdlog::level::info : spdlog::level::debug,
                  "draining: {} request(s) in flight{}", now.requests,
                   now.requests ? ", oldest " + now.oldest + " for " + std::to_string(now.oldest_age_ms) + " ms" : "");
      last_logged_in_flight_ = now.requests;
      last_progress_log_ = now_tp;
    }
  }

  // Runs once no connection is left: the cleanup hooks, in reverse order of registration.
  void run_hooks() {
    if (status_timer_) event_del(status_timer_);
    report_status();
    auto drained_ms = std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - drain_started_).count();
    // Registered first, so it runs last: the access log flush; then the application's hooks;
    // then the config's (loaded last, so run first).
    std::vector<CleanupHook> registered;
    HttpServer* server = server_.get();
    if (spec_.access_log_fd >= 0)
      registered.push_back({"flush access log", Millis(5000), [server](event_base*, HookDone done) {
                              done(server->flush_access_log(), "write to the access log failed");
                            }, {}});
    for (const CleanupHook& hook : spec_.app->hooks()) registered.push_back(hook);
    for (const HookConfig& hook : spec_.config->shutdown.hooks)
      registered.push_back(command_hook(hook.name, hook.command, hook.timeout, spec_.log_fd, spec_.index, spec_.generation));
    std::vector<CleanupHook> in_run_order(registered.rbegin(), registered.rend());
    spdlog::log(in_run_order.empty() ? spdlog::level::debug : spdlog::level::info,
                "HTTP drained in {} ms; running {} cleanup hook(s)", drained_ms, in_run_order.size());
    hooks_ = std::make_unique<HookRunner>(base_, std::move(in_run_order), [this](int failures) {
      failed_hooks_ = failures;
      if (failures > 0) exit_code_ = kWorkerFailed;
      event_base_loopexit(base_, nullptr);
    }, [this](const std::string& name) {
      if (spec_.counters) spec_.counters->hook_failed(name);
    });
    hooks_->start();
  }

  // With no master left to enforce the deadline, the worker keeps it itself.
  void arm_own_deadline() {
    Millis timeout = spec_.config->shutdown.timeout;
    orphan_deadline_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
      auto* w = static_cast<Worker*>(self);
      HttpServer::InFlight now = w->server_->in_flight();
      spdlog::error("the master is gone and the {} deadline passed; exiting with {} request(s) in flight{}",
                    format_duration(w->spec_.config->shutdown.timeout), now.requests,
                    now.requests ? " (oldest " + now.oldest + ")" : "");
      w->exit_code_ = kWorkerFailed;
      event_base_loopbreak(w->base_);
    }, this);
    events_.push_back(orphan_deadline_);
    timeval tv = to_timeval(timeout);
    evtimer_add(orphan_deadline_, &tv);
  }

  void stop_now(const char* why) {
    spdlog::info("stop requested ({}); closing {} connection(s) without draining", why,
                 server_->connection_count());
    if (draining_) exit_code_ = kWorkerFailed;  // a drain was cut short
    event_base_loopbreak(base_);
  }

  const WorkerSpec& spec_;
  event_base* base_ = nullptr;
  std::unique_ptr<HttpServer> server_;
  std::vector<event*> events_;
  event* channel_ev_ = nullptr;
  event* status_timer_ = nullptr;
  event* orphan_deadline_ = nullptr;
  std::unique_ptr<HookRunner> hooks_;
  std::chrono::steady_clock::time_point drain_started_;
  std::chrono::steady_clock::time_point last_progress_log_{};
  size_t last_logged_in_flight_ = SIZE_MAX;
  int failed_hooks_ = 0;
  SignalAction actions_[NSIG] = {};
  bool draining_ = false;
  int exit_code_ = kWorkerClean;
};

}  // namespace

int run_worker(const WorkerSpec& spec) {
  // If the master dies, the kernel tells us too (belt and braces with the channel's EOF).
  prctl(PR_SET_PDEATHSIG, SIGTERM);
  Worker worker(spec);
  return worker.run();
}

}  // namespace shoal
