// shoal as a library: an Application holds the handlers a C++ program registers before calling
// shoal::run(); the shoal executable is this plus the routes its config declares.
#pragma once

#include <string>
#include <vector>

#include "worker/hooks.hpp"
#include "worker/http.hpp"

namespace shoal {

class Application {
 public:
  struct Route {
    std::string path;  // exact, or a prefix when it ends with '/' and prefix is set
    bool prefix = false;
    Handler handler;
  };

  // Answers requests whose path is exactly `path`.
  Application& handle(std::string path, Handler handler) {
    routes_.push_back({std::move(path), false, std::move(handler)});
    return *this;
  }
  // Answers requests whose path starts with `prefix`.
  Application& handle_prefix(std::string prefix, Handler handler) {
    routes_.push_back({std::move(prefix), true, std::move(handler)});
    return *this;
  }

  // Cleanup hooks run in every worker at shutdown, after its HTTP drain, in reverse order of
  // registration (the last resource opened is the first closed), each bounded by its timeout.
  // A hook that throws, fails or times out is logged by name; the others still run, and the
  // worker then exits 1.
  //
  // fn returns: success; fn throws: failure.
  Application& on_shutdown(std::string name, Millis timeout, std::function<void()> fn) {
    hooks_.push_back({std::move(name), timeout, [fn = std::move(fn)](event_base*, HookDone done) {
                        fn();
                        done(true, "");
                      }, {}});
    return *this;
  }
  // For work that finishes later: fn calls done(ok, reason) now or from the worker's loop.
  Application& on_shutdown_async(std::string name, Millis timeout, std::function<void(event_base*, HookDone)> fn) {
    hooks_.push_back({std::move(name), timeout, std::move(fn), {}});
    return *this;
  }

  // Runs in every worker after fork, before it accepts (open per-worker connections, warm caches).
  // A hook that throws fails the worker's start: at a reload, the new generation is then stopped
  // and the old one serves on; otherwise the worker is restarted with backoff.
  Application& on_worker_start(std::function<void()> fn) {
    start_hooks_.push_back(std::move(fn));
    return *this;
  }

  // Runs in every worker when it begins to drain (a stop, a reload, a replacement), from its loop:
  // for what the application holds open itself (a broadcast channel to tell its clients to
  // reconnect, a queue consumer to pause). Streams and long-polls can each ask on their own
  // (Stream::on_drain, Responder::on_drain).
  Application& on_drain(DrainCallback fn) {
    drain_callbacks_.push_back(std::move(fn));
    return *this;
  }

  const std::vector<Route>& routes() const { return routes_; }
  const std::vector<DrainCallback>& drain_callbacks() const { return drain_callbacks_; }
  const std::vector<CleanupHook>& hooks() const { return hooks_; }
  const std::vector<std::function<void()>>& start_hooks() const { return start_hooks_; }

 private:
  std::vector<Route> routes_;
  std::vector<CleanupHook> hooks_;
  std::vector<std::function<void()>> start_hooks_;
  std::vector<DrainCallback> drain_callbacks_;
};

}  // namespace shoal
