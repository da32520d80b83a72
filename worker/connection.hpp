// One client connection inside a worker: HTTP/1.1 parsing on llhttp (strict mode), routing,
// response writing, keep-alive, pipelining and the connection's part of a graceful drain.
//
// Invariants:
// - Requests are handled one at a time, in order. While one is being answered (a handler that
//   answers later, a delay, a file being sent), input is not parsed: bytes already read wait in
//   pending_, and reading stops, which is the backpressure on a pipelining client.
// - Responses produced while parsing one read are written together, in one send().
// - close() is only called from the top of an event callback (advance()), never from inside
//   llhttp_execute or a handler, so no code runs on a closed connection.
// - An idle connection holds its socket, its read event and its client's address, nothing else
//   (about 300 bytes): the parser, the buffers, the write event and the request's timer are a
//   Work, taken from the server's WorkPool when bytes arrive and given back once the connection
//   is idle with nothing buffered. Its keepalive_timeout is kept by the server's KeepaliveList.
#pragma once

#include <event2/event.h>
#include <event2/event_struct.h>
#include <llhttp.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/duration.hpp"
#include "common/net.hpp"
#include "worker/http.hpp"

namespace shoal {

struct RouteConfig;
struct RouteEntry;

class Connection {
 public:
  Connection(HttpServer& server, uint32_t slot);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // metrics_only: it came on the [metrics] listener, which answers only the metrics path.
  void open(int fd, const sockaddr* addr, socklen_t addr_len, ProxyProtocol proxy = ProxyProtocol::Off,
            bool metrics_only = false);
  bool is_open() const { return fd_ >= 0; }
  // For shoal_connections{state}: 0 reading a request, 1 answering one (or closing), 2 idle.
  int gauge_state() const { return phase_ == Phase::Idle ? 2 : phase_ == Phase::Reading ? 0 : 1; }
  bool metrics_only() const { return metrics_only_; }
  uint32_t slot() const { return slot_; }

  // True while the request numbered `serial` still waits for its response.
  bool awaiting(uint64_t serial) const { return fd_ >= 0 && serial == serial_ && phase_ == Phase::Handling; }
  // True while the request numbered `serial` is answered by a stream still open.
  bool streaming(uint64_t serial) const { return fd_ >= 0 && serial == serial_ && phase_ == Phase::Streaming; }
  bool streaming() const { return fd_ >= 0 && phase_ == Phase::Streaming; }
  uint64_t serial() const { return serial_; }

  // Answers the request being handled; from a handler (synchronously) or later from the loop.
  // extra_headers: whole "Name: value\r\n" lines (Allow, Location, validators).
  void respond(int status, std::string_view content_type, std::string_view body, std::string_view extra_headers = {},
               std::span<const Header> fields = {}, std::string_view server = "shoal");
  // A handler's Response: its fields, or 500 (logged) if one of them could not be sent.
  void respond(const Response& response);

  // Streaming (see Stream in http.hpp): the head now, the body piece by piece.
  bool start_stream(const Response& head);  // false: refused (answered 500) or nothing to stream (HEAD)
  Stream::Write stream_write(std::string_view piece);
  void stream_end();    // the terminator; by the application, or by shoal at the drain
  void stream_abort();
  size_t unsent_bytes() const;
  // Callbacks of a stream or a long-poll; kept only while such a request is under way.
  void set_writable_callback(std::function<void()> fn) { extras().writable = std::move(fn); }
  void set_close_callback(std::function<void()> fn) { extras().closed = std::move(fn); }
  void set_drain_callback(DrainCallback fn);
  // A stream or long-poll the drain tells (or, a stream without a drain callback, ends).
  bool wants_drain_notice() const;
  void drain_notice(const DrainNotice& notice);

  // The worker began draining: close now if idle long enough, else after the idle grace (and
  // not before not_before from now: the closes of many idle connections are spread).
  void on_drain(Millis not_before = Millis(0));
  bool idle() const { return fd_ >= 0 && phase_ == Phase::Idle && !buffered() && answered_; }

  // A request has begun arriving and is not fully answered yet.
  bool in_flight() const {
    return fd_ >= 0 && (phase_ == Phase::Reading || phase_ == Phase::Handling || phase_ == Phase::SendingFile ||
                        phase_ == Phase::Streaming);
  }
  int64_t request_started_ms() const;
  std::string describe_request() const;  // "GET /slow", or what has arrived of it

 private:
  enum class Phase : uint8_t {
    Idle,         // between requests (or before the first one)
    Reading,      // request bytes have arrived, the request is not complete yet
    Handling,     // complete request handed to its handler, response not produced yet
    SendingFile,  // response headers queued, file body going out with sendfile
    Lingering,    // response sent, write side shut, discarding input until EOF or timeout
    Streaming,    // a streamed response's head is out; its body comes from the application
  };
  // The timers of a request under way (Work's timer_ev_).
  enum class Timer : uint8_t { None, Header, Body, Write, Delay, Linger };
  // The deadlines of an idle connection other than keepalive_timeout (read_ev_'s timeout); that
  // one is the KeepaliveList's.
  enum class IdleTimer : uint8_t { None, FirstRequest, DrainIdle };
  friend class WorkPool;
  friend class KeepaliveList;
  struct Work;
  struct RequestScalars;
  struct WorkScalars;

  struct Span {
    uint32_t offset = 0, length = 0;
  };
  struct HeaderSpan {
    Span name, value;
  };
  // A request's fields as spans, in a vector's elements up to end_: adding one is a store and a
  // pointer moved, and the vector grows (rarely: its size is kept from request to request) out
  // of line, which keeps the callback that adds a field small.
  class HeaderSpans {
   public:
    HeaderSpans() = default;
    HeaderSpans(const HeaderSpans&) = delete;  // end_ points into its own storage
    HeaderSpans& operator=(const HeaderSpans&) = delete;
    bool empty() const { return end_ == storage_.data(); }
    size_t size() const { return static_cast<size_t>(end_ - storage_.data()); }
    HeaderSpan& back() { return end_[-1]; }
    const HeaderSpan* begin() const { return storage_.data(); }
    const HeaderSpan* end() const { return end_; }
    void clear() { end_ = storage_.data(); }
    void push_back(const HeaderSpan& span) {
      if (end_ == storage_.data() + storage_.size()) [[unlikely]] grow();
      *end_++ = span;
    }

   private:
    [[gnu::noinline]] void grow() {
      const size_t used = size();
      storage_.resize(used == 0 ? 16 : used * 2);
      end_ = storage_.data() + used;
    }
    std::vector<HeaderSpan> storage_;
    HeaderSpan* end_ = nullptr;
  };

  static int on_message_begin(llhttp_t* p);
  static int on_method(llhttp_t* p, const char* at, size_t length);
  static int on_url(llhttp_t* p, const char* at, size_t length);
  static int on_url_complete(llhttp_t* p);
  static int on_header_field(llhttp_t* p, const char* at, size_t length);
  static int on_chunk_header(llhttp_t* p);
  static int on_chunk_complete(llhttp_t* p);
  static int on_header_value(llhttp_t* p, const char* at, size_t length);
  static int on_headers_complete(llhttp_t* p);
  static bool empty_field_name(const HeaderSpans& spans);
  static int on_body(llhttp_t* p, const char* at, size_t length);
  static int on_message_complete(llhttp_t* p);

  static const llhttp_settings_t& parser_settings();
  static void on_readable(evutil_socket_t, short what, void* self);
  static void on_writable(evutil_socket_t, short, void* self);
  static void on_timer(evutil_socket_t, short, void* self);

  bool read_input();
  void take_input(const char* data, size_t length);
  void read_again();
  bool read_proxy_header();  // false: not complete yet, or refused (the connection is closed)
  void set_client(const sockaddr* addr, socklen_t addr_len);
  size_t feed_all(const char* data, size_t length);
  size_t feed(const char* data, size_t length);
  size_t feed_chunk_line(const char* data, size_t length);
  // Where a byte handed to llhttp now sits in the connection's input stream.
  uint32_t offset_of(const char* at) const;
  // The request's head (its request line and header section) is read where the parser found
  // it: in the buffer being parsed, while that lives, and copied into the arena only if the
  // request outlives it. A fixed route answered at once never copies it. Spans are offsets
  // among the head's bytes (from its first one), wherever those are.
  uint32_t head_offset(const char* at) const;
  // A piece of a field name or value: of the head, where it lies; of a trailer section (after
  // the body), appended to the arena. Its offset, as a span takes it.
  uint32_t field_piece(const char* at, size_t length);
  // The request outlives the buffer being parsed: its head's bytes into the arena, and when it
  // began noted (a request answered within its read never needs either).
  void keep_request();
  void forget_head();  // the request was answered while its head was in that buffer
  bool can_parse() const;
  void advance();
  bool flush_output();
  enum class Sent { All, Blocked, Failed };
  Sent send_output();  // flush_output without closing: for writes from the application
  void advance_stream();
  void end_request_extras();  // a request is over: its stream callbacks go (on_close is called)
  void end_request();         // its response is complete: Idle, extras gone, the connection moves on
  bool send_file();
  void wait_idle();
  void on_idle_timeout();
  void request_timed_out(Timer which);
  void arm_idle(IdleTimer purpose, const timeval* after);
  void close();
  // The request state, taken from the server's pool when a request begins (or input or output
  // must be held) and given back when the connection is idle again: an idle keep-alive connection
  // holds none of it.
  Work& work();
  bool has_work() const { return work_ != nullptr; }
  void release_work();
  bool buffered() const;  // input not parsed yet, or output not written yet

  void dispatch();
  struct Target {
    std::string_view target, path, query;
  };
  Target request_target() const;  // views into the head, wherever it is now
  std::string_view method_name() const;  // the parsed method's name ("GET")
  void serve_static(const RouteEntry& route, const Request& request);
  void reject(int status, std::string_view why);
  // Appends a status line and headers; the body (content_length bytes) follows from the caller.
  // content_length kStreamed: chunked for HTTP/1.1, up to the close for HTTP/1.0.
  static constexpr size_t kStreamed = SIZE_MAX;
  void write_head(int status, std::string_view content_type, size_t content_length, std::string_view extra_headers,
                  std::span<const Header> fields, std::string_view server);
  void finish_response(int status, size_t body_bytes);
  bool keep_alive_after_response();  // decides Connection: keep-alive or close for this response
  void respond_rendered(const RouteEntry& route);

  void arm(Timer purpose, const timeval* after);
  void disarm();
  void arm_request_clock();  // header_timeout or body_timeout for a request still arriving
  void start_reading();
  void stop_reading();
  void want_write(bool on);
  event& write_event();
  std::string_view span(Span s) const;
  bool over_header_limit() const;

  HttpServer& server_;
  const uint32_t slot_;
  int fd_ = -1;
  uint64_t serial_ = 0;  // bumped per request and on close: identifies the request a Responder answers
  Phase phase_ = Phase::Idle;
  IdleTimer idle_timer_ = IdleTimer::None;  // what read_ev_'s timeout is for
  bool reading_ = false;
  bool writing_ = false;
  bool read_eof_ = false;
  bool keep_alive_ = true;         // the current request allows keep-alive
  bool answered_ = false;          // a response was completed on this connection
  bool close_after_write_ = false;
  bool linger_ = false;            // unread input may remain: shut the write side and drain before closing
  bool more_input_ = false;        // bytes of a pipelined request follow the current one
  bool in_parse_ = false;          // inside feed_all: respond() must not re-enter advance()
  bool is_tcp_ = true;
  bool nodelay_set_ = false;
  bool metrics_only_ = false;
  bool in_keepalive_ = false;  // in the server's KeepaliveList (between idle_prev_ and idle_next_)
  ProxyProtocol proxy_ = ProxyProtocol::Off;  // a PROXY header is still expected
  uint8_t client_family_ = 0;  // AF_INET, AF_INET6, or 0 (a unix socket)
  uint8_t client_address_at_ = 0, client_address_length_ = 0;  // the address alone, within remote_
  int32_t client_port_ = -1;                                     // -1: none (a unix socket)
  // Read readiness, and (its timeout) header_timeout for a first request not sent with the
  // connection, or the idle grace while draining.
  event read_ev_;
  Connection* idle_prev_ = nullptr;
  Connection* idle_next_ = nullptr;
  int64_t idle_since_ms_ = 0;  // monotonic; when the last response was fully written (or the accept)
  int64_t listed_ms_ = 0;      // the idle_since_ms_ it has its place in the KeepaliveList by
  // "127.0.0.1:51234", formatted once per connection without allocating; the longest IPv6 one,
  // "[ffff:...:255.255.255.255]:65535", takes 54 bytes with its NUL.
  char remote_[56] = {};
  // The client's IP, for trusted_proxies: the socket's peer, or what the PROXY header carried.
  unsigned char client_ip_[16] = {};

  // What only a stream or a long-poll needs, allocated for it and freed when it is over: an idle
  // connection carries one pointer of it.
  struct Extras {
    DrainCallback drain;
    std::function<void()> writable, closed;
    bool drain_told = false;
    bool chunked = false;
    bool wants_writable = false;
    bool failed = false;  // a write found the client gone: closed from the loop
    int status = 200;
    uint64_t body_bytes = 0;
  };
  Extras& extras() {
    if (!extras_) extras_ = std::make_unique<Extras>();
    return *extras_;
  }
  std::unique_ptr<Extras> extras_;
  std::unique_ptr<Work> work_;  // while a request is under way, or input or output is buffered
};

// What a connection needs only while a request is under way: the parser, the request's fields,
// the buffers, the write event and the request's timer. Taken from the WorkPool and given back.
//
// One request's own values, reset to these when the next request on the same Work begins (a
// Work fresh from the pool has them already).
struct Connection::RequestScalars {
  bool headers_done_ = false;
  bool in_header_value_ = false;
  int error_status_ = 0;  // set by a parser callback that rejects the request
  bool method_seen_ = false;
  // The request line's parts, as offsets from its first byte, to check its single spaces.
  uint32_t method_end_ = 0, url_end_ = 0;
  bool chunk_line_next_ = false;  // the next input is a chunk-size line (see feed_chunk_line)
  uint32_t chunk_ext_bytes_ = 0;  // of this request's chunk extensions so far
  Span url_;
  Span origin_;     // the target's origin form (path and query); of an absolute-form target too
  Span authority_;  // the absolute-form target's authority, else the Host header's value
  Span forwarded_;  // this request's client address from trusted forwarding headers, in arena_
  size_t header_bytes_ = 0;
  int64_t request_start_us_ = 0;
  int64_t request_started_ms_ = 0;  // loop time, for the drain's report of the oldest request
  std::string_view method_;         // of the current request, for the access log
};

struct Connection::WorkScalars : RequestScalars {  // reset to these values whenever a Work is given back
  bool request_begun_ = false;  // a request began on this Work since it was taken
  Timer timer_ = Timer::None;
  bool write_ev_assigned_ = false, timer_ev_assigned_ = false;  // to this connection
  bool is_head_ = false;
  bool client_closes_ = false;       // the request said Connection: close (or was HTTP/1.0 without keep-alive)
  bool value_piece_at_end_ = false;  // the last piece of a header value ended where its read ended
  const char* feed_begin_ = nullptr;  // what llhttp_execute is parsing now
  const char* feed_end_ = nullptr;
  const char* parsed_end_ = nullptr;  // how far it parsed
  // The head's first byte while its bytes are only in the buffer being parsed (nullptr: they
  // are in arena_, from its start, or there is no head yet).
  const char* head_in_feed_ = nullptr;
  // Stream offsets, modulo 2^32: only differences within one request line are used.
  uint32_t feed_at_ = 0;  // the stream offset of feed_begin_
  uint32_t fed_ = 0;      // bytes of the stream handed to llhttp so far
  uint32_t line_at_ = 0;  // the stream offset of the request line's first byte
  bool last_chunk_ = false;
  size_t pending_offset_ = 0;
  size_t out_offset_ = 0;
  std::string_view direct_out_;  // a fixed route's response, sent from its own bytes (respond_rendered)
  int file_fd_ = -1;
  off_t file_offset_ = 0;
  off_t file_end_ = 0;
  const RouteConfig* delayed_ = nullptr;  // fixed route answering after its delay
};

struct Connection::Work : WorkScalars {
  llhttp_t parser_;
  event write_ev_, timer_ev_;
  // The request's head once kept (see keep_request), then any trailer fields and the forwarded
  // client address; reused across requests.
  std::string arena_;
  HeaderSpans header_spans_;
  std::vector<Header> headers_;
  std::string body_;
  std::string chunk_line_;        // a chunk-size line split between reads
  std::string pending_;  // input read but not parsed yet (see the invariants above)
  std::string out_;      // output not written yet
  std::string path_scratch_;  // decoded static-file path, reused
};

inline uint32_t Connection::offset_of(const char* at) const {
  return work_->feed_at_ + static_cast<uint32_t>(at - work_->feed_begin_);
}

inline uint32_t Connection::head_offset(const char* at) const { return offset_of(at) - work_->line_at_; }

inline std::string_view Connection::span(Span s) const {
  const char* base = work_->head_in_feed_ ? work_->head_in_feed_ : work_->arena_.data();
  return {base + s.offset, s.length};
}

// A server's idle keep-alive connections, in the order they went idle, under one timer: each is
// closed keepalive_timeout after it went idle, and at most a sixteenth of it later. One that
// becomes busy stays where it is until the timer's sweep meets it (and takes it out) or it goes
// idle again. Idle again within that sixteenth of when it took its place, it keeps its place,
// which the sweep corrects when it meets it (as nginx does not move a timer by less than 300 ms):
// a busy connection's request then touches no other connection, and no timer.
class KeepaliveList {
 public:
  KeepaliveList(event_base* base, Millis timeout);
  ~KeepaliveList();
  KeepaliveList(const KeepaliveList&) = delete;
  KeepaliveList& operator=(const KeepaliveList&) = delete;
  void went_idle(Connection& c);  // its idle_since_ms_ is now
  void remove(Connection& c);

 private:
  static void on_timer(evutil_socket_t, short, void* self);
  void append(Connection& c);  // at the end, listed by its idle_since_ms_
  void arm(int64_t now_ms);
  Connection* head_ = nullptr;
  Connection* tail_ = nullptr;
  event* timer_;
  Millis timeout_;
  Millis relist_after_;  // timeout_ / 16: how far a connection's idle_since_ms_ moves before it moves
};

// A server's spare Works: a request takes one and gives it back, so that the buffers' capacity
// is reused (no allocation per request) while idle connections hold none.
class WorkPool {
 public:
  WorkPool();
  ~WorkPool();
  std::unique_ptr<Connection::Work> take();
  void give(std::unique_ptr<Connection::Work> work);

 private:
  // Requests under way at once are few (one per read callback, unless answers wait): past this
  // many spares, a burst's Works are freed rather than kept for good.
  static constexpr size_t kMaxSpare = 64;
  std::vector<std::unique_ptr<Connection::Work>> spare_;
};

}  // namespace shoal
