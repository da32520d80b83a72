#include "worker/worker.hpp"

#include <errno.h>
#include <event2/event.h>
#include <sched.h>
#include <signal.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <memory>

#include "common/channel.hpp"
#include "common/log.hpp"
#include "common/sys.hpp"
#include "worker/server.hpp"

namespace shoal {
namespace {

class Worker {
 public:
  explicit Worker(const WorkerSpec& spec) : spec_(spec) {}

  ~Worker() {
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
    server_ = std::make_unique<HttpServer>(base_, *spec_.config, *spec_.app, spec_.access_log_fd);
    std::string err;
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

    if (!send_message(spec_.channel_fd, {MsgType::Ready})) {
      spdlog::error("cannot tell the master this worker is ready; draining");
      begin_drain(Millis(0), "lost master");
    }
    spdlog::debug("accepting on {} listener(s)", spec_.listen_fds.size());
    event_base_dispatch(base_);

    server_->flush_access_log();
    send_message(spec_.channel_fd, {MsgType::Done, 0, 0, static_cast<uint32_t>(exit_code_)});
    spdlog::info("exiting with code {}", exit_code_);
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
    for (;;) {
      switch (recv_message(fd, msg)) {
        case RecvStatus::Again: return;
        case RecvStatus::Closed:
          // The master is gone (even SIGKILL closes its end): finish what was accepted and leave,
          // rather than serve on unsupervised.
          event_del(w->channel_ev_);
          spdlog::warn("channel to the master closed; draining");
          w->begin_drain(Millis(0), "master gone");
          return;
        case RecvStatus::Ok:
          if (msg.type == MsgType::Drain) w->begin_drain(Millis(msg.value), "master");
          else if (msg.type == MsgType::Stop) w->stop_now("master");
          else spdlog::warn("unexpected message '{}' from the master", msg_name(msg.type));
      }
    }
  }

  void begin_drain(Millis delay, const char* why) {
    if (draining_) {
      spdlog::info("drain requested again ({}); already draining", why);
      return;
    }
    draining_ = true;
    spdlog::info("drain requested ({}), {} connection(s) open", why, server_->connection_count());
    server_->drain(delay, [this] { event_base_loopexit(base_, nullptr); });
  }

  void stop_now(const char* why) {
    spdlog::info("stop requested ({}); closing {} connection(s) without draining", why,
                 server_->connection_count());
    event_base_loopbreak(base_);
  }

  const WorkerSpec& spec_;
  event_base* base_ = nullptr;
  std::unique_ptr<HttpServer> server_;
  std::vector<event*> events_;
  event* channel_ev_ = nullptr;
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
