// The application-facing HTTP types: what a handler sees and how it answers.
#pragma once

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

// A handle to answer one request, exactly once, now or later from the worker's event loop.
// It is a small value (no allocation) and safe to keep after the client went away: send() then
// does nothing and alive() is false.
class Responder {
 public:
  // Sends a complete response with this body (copied into the connection's output buffer).
  void send(int status, std::string_view content_type, std::string_view body) const;
  // The same with the fields the response carries (see Response).
  void send(const Response& response) const;
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

using Handler = std::function<void(const Request&, Responder)>;

// "OK", "Not Found", … for a status code.
std::string_view reason_phrase(int status);

// Case-insensitive ASCII comparison for header names and tokens.
bool iequals(std::string_view a, std::string_view b);

}  // namespace shoal
