// shoal as a library: the README's example, built and driven by the integration tests.
// Its routes come from code; the config, command line and signals are shoal's own.
#include <event2/event.h>

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
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
  // A redirect that sets a cookie: any header field, checked by shoal (no CR/LF injection).
  app.handle("/go", [](const shoal::Request&, shoal::Responder reply) {
    reply.send(shoal::Response(302)
                   .header("Location", "/time")
                   .header("Set-Cookie", "session=demo; Path=/; HttpOnly")
                   .header("Cache-Control", "no-store"));
  });
  // Server-Sent Events: a tick every 100 ms, resumed after Last-Event-ID when the client
  // reconnects. When the worker drains, the client is told to reconnect in 1 s (to the new
  // generation, or through its balancer to another instance) and the stream ends cleanly.
  // With ?hold, the stream says goodbye but stays open (a stream that outlives the notice):
  // shoal ends it at [shutdown] stream_grace, or at once when the drain is cut short.
  app.handle("/events", [](const shoal::Request& req, shoal::Responder reply) {
    struct Ticker {
      shoal::Sse sse;
      event* timer = nullptr;
      unsigned long next = 0;
    };
    auto* t = new Ticker{shoal::Sse::start(reply)};
    if (!t->sse.stream().alive()) return delete t;  // a HEAD request, or a refused head
    t->next = std::strtoul(std::string(req.header("last-event-id")).c_str(), nullptr, 10) + 1;
    t->timer = event_new(reply.loop(), -1, EV_PERSIST, [](evutil_socket_t, short, void* self) {
      auto* t = static_cast<Ticker*>(self);
      std::string n = std::to_string(t->next++);
      if (t->sse.event("tick", n, n) == shoal::Stream::Write::Full) t->sse.stream().abort();  // a client that never reads
    }, t);
    timeval every{0, 100'000};
    event_add(t->timer, &every);
    const bool hold = req.query == "hold";
    t->sse.stream().on_drain([t, hold](const shoal::DrainNotice&) {
      t->sse.retry(std::chrono::seconds(1));
      t->sse.event("shutdown", "reconnect");
      if (!hold) t->sse.stream().end();
    });
    t->sse.stream().on_close([t] {  // ended, aborted, or the client left
      event_free(t->timer);
      delete t;
    });
  });
  // A long-poll: answers after 30 s, or at once when the worker begins to drain.
  app.handle("/poll", [](const shoal::Request&, shoal::Responder reply) {
    struct Poll {
      shoal::Responder reply;
      event* timer = nullptr;
    };
    auto* p = new Poll{reply};
    p->timer = evtimer_new(reply.loop(), [](evutil_socket_t, short, void* self) {
      auto* p = static_cast<Poll*>(self);
      p->reply.send(200, "text/plain", "nothing new\n");
      event_free(p->timer);
      delete p;
    }, p);
    timeval after{30, 0};
    evtimer_add(p->timer, &after);
    reply.on_drain([p](const shoal::DrainNotice&) {
      p->reply.send(200, "text/plain", "draining: poll again\n");
      event_free(p->timer);
      delete p;
    });
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
