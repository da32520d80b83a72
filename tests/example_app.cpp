// shoal as a library: the README's example, built and driven by the integration tests.
// Its routes come from code; the config, command line and signals are shoal's own.
#include <event2/event.h>

#include <unistd.h>

#include <cstdio>
#include <stdexcept>
#include <memory>
#include <string>

#include "master/run.hpp"

int main(int argc, char** argv) {
  shoal::Application app;
  app.handle("/time", [](const shoal::Request&, shoal::Responder reply) {
    reply.send(200, "text/plain", "now\n");
  });
  app.handle_prefix("/api/", [](const shoal::Request& req, shoal::Responder reply) {
    reply.send(200, "application/json", "{\"path\":\"" + std::string(req.path) + "\"}");
  });
  // Answers 100 ms later, from a timer on the worker's own event loop: the worker keeps
  // serving other connections meanwhile.
  app.handle("/later", [](const shoal::Request&, shoal::Responder reply) {
    timeval after{0, 100'000};
    event_base_once(reply.loop(), -1, EV_TIMEOUT, [](evutil_socket_t, short, void* parked) {
      std::unique_ptr<shoal::Responder> r(static_cast<shoal::Responder*>(parked));
      r->send(200, "text/plain", "later\n");
    }, new shoal::Responder(reply), &after);
  });
  // Runs in each worker before it accepts. The tests use it to make a generation fail to start:
  // a file "fail-start" in the working directory makes it throw, "slow-start" makes it take 3 s.
  app.on_worker_start([] {
    if (access("fail-start", F_OK) == 0) throw std::runtime_error("fail-start is present");
    if (access("slow-start", F_OK) == 0) sleep(3);
  });
  // Cleanup hooks run in each worker after its HTTP drain, the last registered first.
  app.on_shutdown("close pool", std::chrono::seconds(1), [] { fprintf(stderr, "example: pool closed\n"); });
  app.on_shutdown_async("finish queue message", std::chrono::seconds(1), [](event_base* loop, shoal::HookDone done) {
    timeval after{0, 50'000};  // the message in hand takes a moment to finish
    event_base_once(loop, -1, EV_TIMEOUT, [](evutil_socket_t, short, void* parked) {
      std::unique_ptr<shoal::HookDone> finish(static_cast<shoal::HookDone*>(parked));
      fprintf(stderr, "example: queue message finished\n");
      (*finish)(true, "");
    }, new shoal::HookDone(std::move(done)), &after);
  });
  return shoal::run(argc, argv, app);
}
