// The HTTP side of a worker: accepts on inherited listening sockets, owns a pool of connections,
// holds the route table, and carries out the HTTP part of a graceful drain.
// It needs only an event_base and a Config, so tests run it in-process on a socketpair.
#pragma once

#include <event2/event.h>
#include <sys/socket.h>

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/config.hpp"
#include "common/metrics.hpp"
#include "worker/access_log.hpp"
#include "worker/app.hpp"
#include "worker/http.hpp"

namespace shoal {

class Connection;
class WorkPool;
class KeepaliveList;
struct WorkerBoard;

// A fixed response rendered once: status line, headers and body, in a keep-alive and a close
// variant. Only the Date value changes (once a second), in place: answering is one append.
struct RenderedResponse {
  std::string keep_alive, close;
  size_t keep_alive_date_at = 0, close_date_at = 0;      // where the 29 bytes of the date go
  size_t keep_alive_head_bytes = 0, close_head_bytes = 0;  // headers only, for HEAD
  time_t date_second = -1;
};

struct RouteEntry {
  enum class Kind { Fixed, Static, Echo, Info, Liveness, Readiness, App } kind = Kind::Fixed;
  std::string path;
  bool prefix = false;
  const RouteConfig* config = nullptr;  // Fixed, Static
  int root_fd = -1;                     // Static: O_PATH descriptor of the root directory
  const Handler* handler = nullptr;     // App
  mutable RenderedResponse rendered;    // Fixed
};

class HttpServer {
 public:
  // config and app must outlive the server. access_log_fd (not owned) may be -1 for none.
  // identity ("pid=… generation=… worker=…") is what the built-in "info" handler answers.
  HttpServer(event_base* base, const Config& config, const Application& app, int access_log_fd = -1,
             std::string identity = "pid=0 generation=0 worker=0");
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Starts accepting on these listening sockets; the server owns them from now on.
  bool listen(const std::vector<int>& fds, std::string& err);
  // Serves an already-connected, non-blocking socket; `proxy` says whether its input starts with
  // a PROXY protocol header (the listener's proxy_protocol).
  // metrics_only: it came on the [metrics] listener.
  void adopt(int fd, const sockaddr* addr, socklen_t addr_len, ProxyProtocol proxy = ProxyProtocol::Off,
             bool metrics_only = false);
  // A connection closed without a response because its PROXY header was missing or malformed.
  void proxy_header_refused(std::string_view peer, std::string_view why);
  uint64_t proxy_headers_refused() const { return proxy_refused_; }

  // Graceful drain: readiness turns 503 at once; after `delay` the listeners close and every
  // connection is finished (idle ones after idle_grace). on_drained runs, from the loop, once
  // no connection is left.
  // deadline_in: until the master kills this worker ([shutdown] timeout when 0), for the notices.
  // The application's on_drain callbacks run at once; streams and long-polls that asked are told
  // spread over [shutdown] stream_close_spread, and streams still open at stream_grace are ended.
  void drain(Millis delay, std::function<void()> on_drained, Millis deadline_in = Millis(0));
  // The master shortened this drain (too many generations draining): every stream ends now.
  void hurry();
  // Tells this stream or long-poll of the drain `after` from now (one timer for all of them).
  void schedule_drain_notice(Connection& connection, Millis after);
  DrainNotice drain_notice() const;
  size_t streams_open() const;
  struct InFlight {
    size_t requests = 0;         // requests received in part or whole and not fully answered yet
    int64_t oldest_age_ms = 0;
    std::string oldest;          // "GET /slow"
  };
  InFlight in_flight() const;
  bool ready() const { return ready_; }
  uint64_t requests_served() const { return requests_served_; }
  void count_response() {
    if (++requests_served_ == request_limit_) on_request_limit_();
  }
  // Calls `reached` once, from the response that makes the count reach `limit`.
  void set_request_limit(uint64_t limit, std::function<void()> reached) {
    request_limit_ = limit;
    on_request_limit_ = std::move(reached);
  }
  // Where application handlers are recorded for the master (nullptr: nowhere).
  void set_board(WorkerBoard* board) { board_ = board; }
  WorkerBoard* board() const { return board_; }
  // [metrics]: where this worker counts (nullptr: it does not), and the region a scrape reads.
  void set_metrics(metrics::WorkerCounters* counters, const metrics::Region* region) {
    counters_ = counters;
    metrics_region_ = region;
  }
  metrics::WorkerCounters* counters() const { return counters_; }
  // Connections by state, CPU time and resident memory into this worker's slot (each heartbeat).
  void refresh_gauges();
  // The metrics page, rendered into a buffer the server keeps.
  std::string_view metrics_page();
  bool draining() const { return draining_; }
  size_t connection_count() const { return live_; }
  // Writes the buffered access log lines; false (and logged) if the write failed.
  bool flush_access_log();

  // --- for Connection and Responder ---
  event_base* base() const { return base_; }
  const Config& config() const { return config_; }
  // The Date header's text: renewed at each second's start by a timer (renew_date), so that a
  // response reads no clock. Under load a renewal waits for the loop's turn: at most one turn late.
  std::string_view date() const { return {date_.text, date_.length}; }
  // The same second as the access log writes it, local time with its offset, as nginx's
  // $time_local: "01/Dec/2026:15:04:05 +0100" (the main log uses the same zone and offset).
  std::string_view log_time();
  // The fixed route's response with today's date, whole or (head) without its body.
  std::string_view rendered(const RouteEntry& route, bool keep_alive, bool head);
  int64_t now_ms() const;  // the loop's cached wall-clock time: no system call
  std::span<char> read_buffer() { return {read_buffer_.data(), read_buffer_.size()}; }
  WorkPool& work_pool() { return *work_pool_; }
  KeepaliveList& keepalive_list() { return *keepalive_list_; }
  const RouteEntry* route(std::string_view path) const;
  // is_authority, remembering the last valid value: a server's clients send the same Host on
  // every request, and comparing it costs a fraction of checking it byte by byte.
  bool valid_authority(std::string_view authority);
  Connection* awaiting(uint32_t slot, uint64_t serial) const;
  Connection* streaming(uint32_t slot, uint64_t serial) const;
  void release(Connection& connection);
  bool access_log_on() const { return access_log_fd_ >= 0; }
  bool access_log_json() const { return config_.log.access_log_format == Config::Log::AccessFormat::Json; }
  // Who writes the JSON lines: set once by the worker.
  void set_access_identity(const AccessIdentity& who) { access_identity_ = who; }
  const AccessIdentity& access_identity() const { return access_identity_; }
  // The loop's time as RFC 3339 with milliseconds and the local offset: "2026-12-01T15:04:05.123+01:00".
  std::string_view rfc3339_now();
  // An id for a request whose client sent none (or none valid): unique per worker and start.
  std::string_view next_request_id();
  std::string& access_log_buffer() { return access_buffer_; }
  void access_log_written();
  const std::string& identity() const { return identity_; }
  const timeval* header_timeout() const { return header_tv_; }
  const timeval* linger_timeout() const { return linger_tv_; }
  const timeval* body_timeout() const { return body_tv_; }
  const timeval* send_timeout() const { return send_tv_; }

 private:
  struct Listener {
    int fd;
    event* ev;
    ProxyProtocol proxy;
    HttpServer* server;
    bool metrics;  // [metrics] listen: it answers only the metrics path
    std::string address;
  };
  static void on_acceptable(evutil_socket_t fd, short, void* self);
  void accept_failed(int err);
  void close_listeners();
  void set_accepting(bool on);
  void begin_drain();
  void maybe_drained();
  void deliver_drain_notices();
  void end_streams(const char* why);

  // The exact routes by path: open addressing over a power-of-two table whose slots keep their
  // path's hash, so that a lookup hashes the path once and compares bytes only where the hash
  // and the length agree. FNV-1a: a path is short, and the table is the config's, so a path
  // chosen to collide costs at most a walk over the config's routes. The slot found last is
  // tried first, without hashing.
  class ExactRoutes {
   public:
    static constexpr size_t kNone = SIZE_MAX;
    void insert(std::string_view path, size_t index);  // a path already there keeps its index
    size_t find(std::string_view path) const;           // kNone if absent
   private:
    static uint64_t hash(std::string_view s) {
      uint64_t h = 14695981039346656037ull;
      for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
      return h;
    }
    struct Slot {
      uint64_t hash = 0;
      size_t index = kNone;  // kNone: empty
      std::string path;
    };
    std::vector<Slot> slots_ = std::vector<Slot>(8);  // a power of two, at most half full
    size_t count_ = 0;
    mutable size_t last_ = kNone;  // the slot the last lookup found
  };

  event_base* base_;
  const Config& config_;
  const Application& app_;
  int access_log_fd_;
  std::string identity_;
  std::vector<RouteEntry> routes_;
  ExactRoutes exact_routes_;
  std::vector<size_t> prefix_routes_;  // longest first
  char known_authority_[64];  // the last authority that is_authority accepted
  size_t known_authority_length_ = 0;  // none yet (an empty authority is never compared)

  std::vector<Listener> listeners_;  // reserved once: events hold pointers into it
  uint64_t proxy_refused_ = 0;
  int64_t last_proxy_log_ms_ = 0;
  bool accepting_ = false;
  bool paused_at_limit_ = false;
  event* accept_retry_ = nullptr;  // re-enables accepting after EMFILE and the like
  int64_t last_accept_error_log_ms_ = 0;

  // Declared before the connections, which give their Works back and leave the list as they close.
  std::unique_ptr<WorkPool> work_pool_;
  std::unique_ptr<KeepaliveList> keepalive_list_;
  std::vector<std::unique_ptr<Connection>> slots_;
  std::vector<uint32_t> free_slots_;
  size_t live_ = 0;
  uint64_t requests_served_ = 0;
  uint64_t request_limit_ = UINT64_MAX;
  std::function<void()> on_request_limit_;
  WorkerBoard* board_ = nullptr;
  metrics::WorkerCounters* counters_ = nullptr;
  const metrics::Region* metrics_region_ = nullptr;
  std::unique_ptr<metrics::Snapshot> snapshot_;  // reused by every scrape
  std::string metrics_text_;
  int statm_fd_ = -1;

  bool ready_ = true;
  bool draining_ = false;
  std::function<void()> on_drained_;
  event* drain_timer_ = nullptr;
  event* drained_event_ = nullptr;
  // The drain's notices to streams and long-polls, in the order they are due; one timer for all.
  struct Notice {
    int64_t due_ms;  // monotonic
    uint32_t slot;
    uint64_t serial;
  };
  std::vector<Notice> notices_;
  size_t next_notice_ = 0;
  event* notice_timer_ = nullptr;
  event* stream_grace_timer_ = nullptr;
  int64_t drain_started_ms_ = 0;  // monotonic
  int64_t streams_end_at_ms_ = 0;
  int64_t deadline_at_ms_ = 0;

  std::vector<char> read_buffer_;
  std::string access_buffer_;
  event* access_flush_timer_ = nullptr;

  // A second formatted once, for every response and log line of that second.
  struct SecondText {
    time_t second = -1;
    char text[40] = {};
    size_t length = 0;
  };
  std::string_view format_second(SecondText& cache, time_t second, bool local, const char* format);
  std::string_view format_second(SecondText& cache, bool local, const char* format);  // the loop's second
  void renew_date();
  event* date_timer_ = nullptr;
  SecondText date_, log_time_, rfc3339_;
  char rfc3339_text_[40] = {};
  AccessIdentity access_identity_;
  uint64_t request_id_prefix_ = 0, request_ids_ = 0;
  char request_id_[40] = {};

  const timeval* header_tv_;
  const timeval* linger_tv_;
  const timeval* body_tv_;
  const timeval* send_tv_;
};

// Monotonic clock readings for bookkeeping (never for timers: those belong to libevent).
int64_t monotonic_ms();
int64_t monotonic_us();

}  // namespace shoal
