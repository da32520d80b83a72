// The application-facing HTTP types: what a handler sees and how it answers.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
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

// A handle to answer one request, exactly once, now or later from the worker's event loop.
// It is a small value (no allocation) and safe to keep after the client went away: send() then
// does nothing and alive() is false.
class Responder {
 public:
  // Sends a complete response with this body (copied into the connection's output buffer).
  void send(int status, std::string_view content_type, std::string_view body) const;
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
