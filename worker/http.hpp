// The application-facing HTTP types: what a handler sees and how it answers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>

struct event_base;

namespace shoal {

class HttpServer;

struct Header {
  std::string_view name;
  std::string_view value;
};

// One parsed request. Every view points into the connection's buffers and is valid only during
// the handler call: a handler that answers later copies what it needs first.
struct Request {
  std::string_view method;  // "GET"
  std::string_view target;  // "/path?query": as sent, or the path and query of an absolute-form target
  std::string_view path;    // "/path" (not decoded)
  std::string_view host;    // the absolute-form target's authority, else the Host header (may be empty)
  std::string_view query;   // "query" without the '?', or empty
  std::string_view body;
  // The client: "127.0.0.1:51234" (the socket's peer, or what a PROXY header carried), or the
  // address trusted forwarding headers name ("203.0.113.9", no port).
  std::string_view remote;
  int version_major = 1;
  int version_minor = 1;
  std::span<const Header> headers;

  // The first header with this name (ASCII case-insensitive), or an empty view.
  std::string_view header(std::string_view name) const;
};

// A response with the header fields a handler chooses, for what send(status, type, body) cannot
// say: a redirect's Location, Set-Cookie, Cache-Control, ETag, Vary.
//
//   reply.send(Response(302).header("Location", "/login").header("Cache-Control", "no-store"));
//
// Each field is checked as it is added. One that shoal must not send (a CR, LF or other control
// character in a value: a header injection; a name that is no token; a field that frames the
// message, which is shoal's to write) makes send() answer 500 instead and log which field and
// why: nothing half-checked reaches the client. The views must stay valid until send(), which
// copies them into the connection's output buffer; a Response allocates nothing itself.
class Response {
 public:
  static constexpr size_t kMaxFields = 32;

  // status: 200 to 599 (shoal sends 100 Continue itself). A 204 or 304 carries no body,
  // whatever body() says; a HEAD request gets the fields and the body's Content-Length.
  explicit Response(int status, std::string_view content_type = "text/plain", std::string_view body = {});

  // Appends a field; a name may repeat (Set-Cookie). Content-Type replaces the constructor's;
  // Server replaces shoal's own. Connection is taken only as "close": the connection then closes
  // after this response. Content-Length, Transfer-Encoding, Date, Keep-Alive, Trailer, TE,
  // Upgrade and Proxy-Connection are shoal's and refused. Whitespace around a value is dropped.
  Response& header(std::string_view name, std::string_view value);
  Response& body(std::string_view body) {
    body_ = body;
    return *this;
  }

  // Why send() would answer 500 instead of this response, or empty.
  const std::string& problem() const { return problem_; }

 private:
  friend class Connection;
  void refuse(std::string why);

  int status_;
  std::string_view content_type_, body_, server_ = "shoal";
  bool close_ = false;
  size_t count_ = 0;
  Header fields_[kMaxFields];
  std::string problem_;  // the first one; empty (and unallocated) when all is well
};

// What a worker that begins to drain tells its application (Application::on_drain), and each
// stream or long-poll that asked (Stream::on_drain, Responder::on_drain).
struct DrainNotice {
  // Until shoal ends the streams still open itself ([shutdown] stream_grace from the drain's
  // start; at once when the drain is hurried: see [reload] max_draining_generations).
  std::chrono::milliseconds streams_end_in{0};
  // Until the worker is killed if it has not exited ([shutdown] timeout).
  std::chrono::milliseconds deadline_in{0};
  // Serving continues meanwhile ([shutdown] drain_delay): the listeners are still open.
  bool still_accepting = false;
};
using DrainCallback = std::function<void(const DrainNotice&)>;

class Stream;

// A handle to answer one request, exactly once, now or later from the worker's event loop.
// It is a small value (no allocation) and safe to keep after the client went away: send() then
// does nothing and alive() is false.
class Responder {
 public:
  // Sends a complete response with this body (copied into the connection's output buffer).
  void send(int status, std::string_view content_type, std::string_view body) const;
  // The same with the fields the response carries (see Response).
  void send(const Response& response) const;
  // Starts a streamed response: head's status and fields now, its body (if any) as the first
  // piece, the rest through the Stream. See Stream for the framing. A response shoal refuses
  // (see Response) is answered 500 instead and the Stream returned is dead.
  Stream stream(const Response& head) const;
  // A long-poll's handle on the drain: fn is called once, from the loop, when this worker begins
  // to drain while the request still waits for its answer (at once, if it already drains).
  void on_drain(DrainCallback fn) const;
  bool alive() const;
  // The worker's event loop, for a handler that answers later (a timer, a socket of its own).
  event_base* loop() const;

 private:
  friend class Connection;
  Responder(HttpServer* server, uint32_t slot, uint64_t serial) : server_(server), slot_(slot), serial_(serial) {}
  HttpServer* server_;
  uint32_t slot_;
  uint64_t serial_;
};

// A response whose body is written piece by piece from the worker's loop: chunked (HTTP/1.1),
// or delimited by the close of the connection (HTTP/1.0). Like a Responder it is a small value
// that is safe to keep after the client went away: write() then says Closed.
//
// Backpressure: a write is queued in the connection's output buffer and sent at once as far as
// the client takes it. Once kSlowBytes wait unsent, write() says Slow: stop writing and wait for
// on_writable. Beyond kMaxBufferedBytes a write is refused (Full) and nothing of it is queued, so
// a client that does not read cannot grow the worker's memory; [http] send_timeout then closes it.
class Stream {
 public:
  static constexpr size_t kSlowBytes = 64 * 1024;
  static constexpr size_t kMaxBufferedBytes = 1024 * 1024;
  enum class Write {
    Ok,      // queued; below kSlowBytes unsent
    Slow,    // queued, but the client is behind: wait for on_writable before writing more
    Full,    // not queued: kMaxBufferedBytes already wait
    Closed,  // not queued: the stream has ended or its client is gone
    Invalid, // not queued: an SSE name, id or comment with a line break or NUL (see Sse)
  };
  Write write(std::string_view piece) const;
  // Ends the response: the chunked terminator (or, for HTTP/1.0, the close) once the rest is out.
  // The connection then serves the client's next request, or closes if the worker drains.
  void end() const;
  // Gives up: the connection closes now, unsent output is dropped and the client sees the body
  // cut short (no terminator), as a failure.
  void abort() const;
  // Called once, from the loop, when a Slow (or Full) stream has sent what waited below kSlowBytes.
  void on_writable(std::function<void()> fn) const;
  // Called once, from the loop, when the worker begins to drain (spread over
  // [shutdown] stream_close_spread among the open streams). Without it, shoal ends the stream at
  // that point itself. Either way, a stream still open at stream_grace is ended by shoal.
  void on_drain(DrainCallback fn) const;
  // Called once when the stream is over: ended, aborted, or its client went away.
  void on_close(std::function<void()> fn) const;
  bool alive() const;
  size_t unsent_bytes() const;
  event_base* loop() const;

 private:
  friend class Connection;
  friend class Responder;
  Stream(HttpServer* server, uint32_t slot, uint64_t serial) : server_(server), slot_(slot), serial_(serial) {}
  HttpServer* server_;
  uint32_t slot_;
  uint64_t serial_;
};

// Server-Sent Events (the WHATWG HTML standard, 9.2) over a Stream: text/event-stream framing.
// Each call is one write; each reports as Stream::write does.
//
//   Sse events = Sse::start(reply);           // 200, text/event-stream, Cache-Control: no-cache
//   events.event("tick", "1", "42");          // event: tick / data: 1 / id: 42
//   events.retry(std::chrono::seconds(2));    // retry: 2000
//   events.comment();                         // ":" heartbeat, which proxies and clients ignore
class Sse {
 public:
  // A response head of the caller's: its status and fields, with Content-Type text/event-stream.
  static Sse start(const Responder& reply, Response head = Response(200));
  explicit Sse(Stream stream) : stream_(stream) {}

  // An event: "event:" if name is not empty, one "data:" line per line of data (LF, CR or CRLF
  // separated), "id:" if id is not empty, then the blank line that dispatches it. A name or id
  // with a line break or NUL (which would end it early or forge a field) is refused: Invalid,
  // and nothing is written.
  Stream::Write event(std::string_view name, std::string_view data, std::string_view id = {}) const;
  Stream::Write data(std::string_view data) const { return event({}, data); }
  Stream::Write retry(std::chrono::milliseconds reconnect_after) const;
  Stream::Write comment(std::string_view text = {}) const;
  const Stream& stream() const { return stream_; }

 private:
  Stream stream_;
};

using Handler = std::function<void(const Request&, Responder)>;

// "OK", "Not Found", … for a status code.
std::string_view reason_phrase(int status);

// Case-insensitive ASCII comparison for header names and tokens.
bool iequals(std::string_view a, std::string_view b);

}  // namespace shoal
