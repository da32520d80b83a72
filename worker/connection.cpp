#include "worker/connection.hpp"

#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <spdlog/spdlog.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <arpa/inet.h>

#include <charconv>
#include <cstring>

#include "common/net.hpp"
#include "common/scoreboard.hpp"
#include "worker/access_log.hpp"
#include "worker/http_syntax.hpp"
#include "worker/proxy_protocol.hpp"
#include "worker/server.hpp"
#include "worker/static_files.hpp"

namespace shoal {
namespace {

// Past this much unsent output, pipelined requests wait: a client that writes but never reads
// must not make the worker buffer without bound.
constexpr size_t kOutputHighWater = 256 * 1024;
// Buffers above this size are given back when a request is done, so idle connections stay small.
constexpr size_t kKeepCapacity = 64 * 1024;


std::string_view content_type_for(std::string_view path) {
  static const std::pair<std::string_view, std::string_view> kTypes[] = {
      {".html", "text/html; charset=utf-8"},   {".htm", "text/html; charset=utf-8"},
      {".css", "text/css; charset=utf-8"},     {".js", "text/javascript; charset=utf-8"},
      {".mjs", "text/javascript; charset=utf-8"}, {".json", "application/json"},
      {".map", "application/json"},            {".webmanifest", "application/manifest+json"},
      {".txt", "text/plain; charset=utf-8"},   {".csv", "text/csv; charset=utf-8"},
      {".md", "text/markdown; charset=utf-8"}, {".xml", "application/xml"},
      {".svg", "image/svg+xml"},               {".png", "image/png"},
      {".jpg", "image/jpeg"},                  {".jpeg", "image/jpeg"},
      {".gif", "image/gif"},                   {".webp", "image/webp"},
      {".avif", "image/avif"},                 {".ico", "image/x-icon"},
      {".woff2", "font/woff2"},                {".woff", "font/woff"},
      {".ttf", "font/ttf"},                    {".otf", "font/otf"},
      {".wasm", "application/wasm"},           {".pdf", "application/pdf"},
      {".mp4", "video/mp4"},                   {".webm", "video/webm"},
      {".mp3", "audio/mpeg"},                  {".ogg", "audio/ogg"},
      {".zip", "application/zip"},             {".gz", "application/gzip"},
  };
  auto dot = path.rfind('.');
  auto slash = path.rfind('/');
  if (dot != std::string_view::npos && (slash == std::string_view::npos || dot > slash)) {
    std::string_view ext = path.substr(dot);
    for (const auto& [suffix, type] : kTypes)
      if (iequals(ext, suffix)) return type;
  }
  return "application/octet-stream";
}

// A 4-byte field name is Host, in any case, in one comparison: OR 0x20 lowers a letter, and of
// a token's characters only H, O, S and T themselves lower to h, o, s and t.
bool is_host(std::string_view name) {
  uint32_t word, host;
  memcpy(&word, name.data(), 4);
  memcpy(&host, "host", 4);
  return (word | 0x20202020u) == host;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Percent-decodes a path; false for a malformed escape or an encoded NUL.
bool percent_decode(std::string_view in, std::string& out) {
  out.clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out += in[i];
      continue;
    }
    int hi = i + 1 < in.size() ? hex_value(in[i + 1]) : -1;
    int lo = i + 2 < in.size() ? hex_value(in[i + 2]) : -1;
    if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) return false;
    out += static_cast<char>(hi * 16 + lo);
    i += 2;
  }
  return true;
}

// "1.2.3.4:5", "[::1]:5" or "unix:" into buf, without allocating: it runs once per connection.
void format_remote(const sockaddr* addr, socklen_t, char* buf, size_t size) {
  char* end = buf + size - 1;
  char* p = buf;
  uint16_t port = 0;
  if (addr->sa_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(addr);
    inet_ntop(AF_INET, &sin->sin_addr, p, static_cast<socklen_t>(end - p));
    p += strlen(p);
    port = ntohs(sin->sin_port);
  } else if (addr->sa_family == AF_INET6) {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(addr);
    *p++ = '[';
    inet_ntop(AF_INET6, &sin6->sin6_addr, p, static_cast<socklen_t>(end - p));
    p += strlen(p);
    *p++ = ']';
    port = ntohs(sin6->sin6_port);
  } else {
    memcpy(buf, "unix:", 6);
    return;
  }
  *p++ = ':';
  p = std::to_chars(p, end, port).ptr;
  *p = '\0';
}

void append_number(std::string& out, uint64_t value) {
  char digits[24];
  auto [end, ec] = std::to_chars(digits, digits + sizeof digits, value);
  out.append(digits, static_cast<size_t>(end - digits));
}

}  // namespace

std::string_view reason_phrase(int status) {
  switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
  }
  return status < 300 ? "OK" : status < 400 ? "Redirect" : status < 500 ? "Client Error" : "Server Error";
}

Connection::Connection(HttpServer& server, uint32_t slot) : server_(server), slot_(slot) {}

Connection::~Connection() {
  if (fd_ >= 0) close();
}

void Connection::set_client(const sockaddr* addr, socklen_t addr_len) {
  format_remote(addr, addr_len, remote_, sizeof remote_);
  client_family_ = 0;
  // The address alone within remote_ ("127.0.0.1", "::1" without its brackets, "unix:") and the
  // port, for the access log: found once per connection, not per request.
  const size_t length = strlen(remote_);
  client_address_at_ = 0;
  client_address_length_ = static_cast<uint8_t>(length);
  client_port_ = -1;
  if (addr->sa_family == AF_INET) {
    client_family_ = AF_INET;
    memcpy(client_ip_, &reinterpret_cast<const sockaddr_in*>(addr)->sin_addr, 4);
    client_port_ = ntohs(reinterpret_cast<const sockaddr_in*>(addr)->sin_port);
    client_address_length_ = static_cast<uint8_t>(strrchr(remote_, ':') - remote_);
  } else if (addr->sa_family == AF_INET6) {
    client_family_ = AF_INET6;
    memcpy(client_ip_, &reinterpret_cast<const sockaddr_in6*>(addr)->sin6_addr, 16);
    client_port_ = ntohs(reinterpret_cast<const sockaddr_in6*>(addr)->sin6_port);
    client_address_at_ = 1;  // "[::1]:5"
    client_address_length_ = static_cast<uint8_t>(strrchr(remote_, ']') - remote_ - 1);
  }
}

const llhttp_settings_t& Connection::parser_settings() {
  static const llhttp_settings_t settings = [] {
    llhttp_settings_t s;
    llhttp_settings_init(&s);
    s.on_message_begin = on_message_begin;
    s.on_method = on_method;
    s.on_url = on_url;
    s.on_url_complete = on_url_complete;
    s.on_header_field = on_header_field;
    s.on_chunk_header = on_chunk_header;
    s.on_chunk_complete = on_chunk_complete;
    s.on_header_value = on_header_value;
    s.on_headers_complete = on_headers_complete;
    s.on_body = on_body;
    s.on_message_complete = on_message_complete;
    return s;
  }();
  return settings;
}

void Connection::open(int fd, const sockaddr* addr, socklen_t addr_len, ProxyProtocol proxy, bool metrics_only) {
  fd_ = fd;
  ++serial_;
  metrics_only_ = metrics_only;
  phase_ = Phase::Idle;
  idle_timer_ = IdleTimer::None;
  reading_ = writing_ = read_eof_ = close_after_write_ = linger_ = more_input_ = false;
  keep_alive_ = true;
  answered_ = false;
  is_tcp_ = addr->sa_family == AF_INET || addr->sa_family == AF_INET6;
  set_client(addr, addr_len);
  proxy_ = proxy;
  nodelay_set_ = false;
  // Edge-triggered, as nginx's: epoll reports a socket when bytes arrive, not again at every wait
  // while some are unread, which spares the kernel a poll of each socket it just reported (2-4 %
  // of a keep-alive request's CPU at 256 connections). So a read that may have left bytes
  // behind reads again (read_input), and reading resumes through event_add, which looks at the
  // socket as it is (start_reading).
  event_assign(&read_ev_, server_.base(), fd_, EV_READ | EV_PERSIST | EV_ET, on_readable, this);
  idle_since_ms_ = monotonic_ms();
  // The request has usually arrived with the connection: read it now rather than after a trip
  // through epoll. A connection answered and closed at once then never enters the epoll set.
  // Nothing yet: wait for it, header_timeout from now (not the longer keep-alive).
  if (!read_input()) arm_idle(IdleTimer::FirstRequest, server_.header_timeout());
}

Connection::Work& Connection::work() {
  if (work_) return *work_;
  work_ = server_.work_pool().take();
  Work& w = *work_;
  // A parser per request, not per connection: between requests llhttp holds nothing. Copied
  // from one llhttp_init made once, which is what llhttp_init would write.
  static const llhttp_t fresh = [] {
    llhttp_t parser;
    llhttp_init(&parser, HTTP_REQUEST, &parser_settings());
    // HTTP/1.2 to 1.9 are parsed, and served as 1.1 (RFC 9110 2.5); majors other than 1 get 505.
    parser.lenient_flags |= LENIENT_VERSION;
    return parser;
  }();
  w.parser_ = fresh;
  w.parser_.data = this;
  return w;  // its events are assigned when first needed: most requests need neither
}

bool Connection::buffered() const {
  return work_ && (!work_->pending_.empty() || work_->out_offset_ < work_->out_.size() || !work_->direct_out_.empty());
}

size_t Connection::unsent_bytes() const {
  return work_ ? work_->out_.size() - work_->out_offset_ + work_->direct_out_.size() : 0;
}

int64_t Connection::request_started_ms() const { return work_ ? work_->request_started_ms_ : 0; }


void Connection::release_work() {
  if (!work_) return;
  Work& w = *work_;
  // Deleted whenever assigned, not only while added: a write event made active by hand (a
  // stream's failed write) sits in libevent's queue until the loop runs it, and the Work may be
  // freed or taken by another connection before then.
  if (w.write_ev_assigned_) event_del(&w.write_ev_);
  if (w.timer_ev_assigned_) evtimer_del(&w.timer_ev_);
  writing_ = false;
  if (w.file_fd_ >= 0) ::close(w.file_fd_);
  // Emptied, and their capacity kept for the next request (within a bound).
  for (std::string* buffer : {&w.arena_, &w.body_, &w.chunk_line_, &w.pending_, &w.out_}) {
    buffer->clear();
    if (buffer->capacity() > kKeepCapacity) buffer->shrink_to_fit();
  }
  w.header_spans_.clear();
  w.headers_.clear();
  static_cast<WorkScalars&>(w) = WorkScalars{};
  server_.work_pool().give(std::move(work_));
}

void Connection::close() {
  if (fd_ < 0) return;
  event_del(&read_ev_);
  reading_ = false;
  idle_timer_ = IdleTimer::None;
  if (in_keepalive_) server_.keepalive_list().remove(*this);
  release_work();
  ::close(fd_);
  fd_ = -1;
  ++serial_;  // any Responder still held for this connection now does nothing
  phase_ = Phase::Idle;
  end_request_extras();
  server_.release(*this);
}

KeepaliveList::KeepaliveList(event_base* base, Millis timeout)
    : timer_(evtimer_new(base, on_timer, this)), timeout_(timeout), relist_after_(timeout / 16) {}

KeepaliveList::~KeepaliveList() { event_free(timer_); }

void KeepaliveList::went_idle(Connection& c) {
  if (c.in_keepalive_) {
    if (c.idle_since_ms_ - c.listed_ms_ < relist_after_.count()) return;  // near enough: it stays
    remove(c);
  }
  append(c);
}

void KeepaliveList::append(Connection& c) {
  // The timer runs whenever the list is not empty, due no later than the head's deadline.
  const bool timer_running = head_ != nullptr;
  c.in_keepalive_ = true;
  c.listed_ms_ = c.idle_since_ms_;
  c.idle_prev_ = tail_;
  c.idle_next_ = nullptr;
  (tail_ ? tail_->idle_next_ : head_) = &c;
  tail_ = &c;
  if (!timer_running) arm(c.idle_since_ms_);
}

void KeepaliveList::remove(Connection& c) {
  (c.idle_prev_ ? c.idle_prev_->idle_next_ : head_) = c.idle_next_;
  (c.idle_next_ ? c.idle_next_->idle_prev_ : tail_) = c.idle_prev_;
  c.idle_prev_ = c.idle_next_ = nullptr;
  c.in_keepalive_ = false;
}

void KeepaliveList::arm(int64_t now_ms) {
  timeval tv = to_timeval(Millis(std::max<int64_t>(head_->listed_ms_ + timeout_.count() - now_ms, 0)));
  evtimer_add(timer_, &tv);
}

// The list is in the order of listed_ms_, except that a connection the sweep moves to the end
// (below) may have been listed up to relist_after_ before the one in front of it: it is then
// closed up to that much late, never early.
void KeepaliveList::on_timer(evutil_socket_t, short, void* self) {
  auto* list = static_cast<KeepaliveList*>(self);
  const int64_t now_ms = monotonic_ms();
  const int64_t timeout_ms = list->timeout_.count();
  while (Connection* c = list->head_) {
    if (c->has_work()) {  // busy since it went idle: it comes back when it is idle again
      list->remove(*c);
      continue;
    }
    if (now_ms - c->listed_ms_ < timeout_ms) break;  // the rest were listed later
    list->remove(*c);
    if (now_ms - c->idle_since_ms_ < timeout_ms) list->append(*c);  // idle again since it was listed
    else c->close();
  }
  if (list->head_) list->arm(now_ms);
}

WorkPool::WorkPool() { spare_.reserve(kMaxSpare); }
WorkPool::~WorkPool() = default;

std::unique_ptr<Connection::Work> WorkPool::take() {
  if (spare_.empty()) return std::make_unique<Connection::Work>();
  std::unique_ptr<Connection::Work> work = std::move(spare_.back());
  spare_.pop_back();
  return work;
}

void WorkPool::give(std::unique_ptr<Connection::Work> work) {
  if (spare_.size() < kMaxSpare) spare_.push_back(std::move(work));
}

// ---------------------------------------------------------------- parser callbacks

int Connection::on_message_begin(llhttp_t* p) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  c->phase_ = Phase::Reading;
  // A Work comes from the pool reset (release_work): only a request after another on the same
  // Work (pipelined, or while input was held) starts from the previous one's values.
  if (w.request_begun_) {
    static_cast<RequestScalars&>(w) = RequestScalars{};
    w.arena_.clear();
    w.header_spans_.clear();
    w.body_.clear();
    w.chunk_line_.clear();
  }
  w.request_begun_ = true;
  if (c->server_.access_log_on() || c->server_.counters()) w.request_start_us_ = monotonic_us();
  return 0;
}

bool Connection::over_header_limit() const {
  return work_->header_bytes_ + work_->url_.length > server_.config().http.max_header_bytes;
}

// The request line is method SP target SP HTTP-version, one space each (RFC 9112 3): llhttp
// skips extra spaces, which a proxy in front may read differently, so the offsets of its parts
// in the stream are checked: the target's here, the version's in on_headers_complete.
int Connection::on_method(llhttp_t* p, const char* at, size_t length) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  if (!w.method_seen_) {  // the head's first byte: its bytes are read where they are, for now
    w.method_seen_ = true;
    w.line_at_ = c->offset_of(at);
    w.head_in_feed_ = at;
  }
  w.method_end_ = c->offset_of(at) + static_cast<uint32_t>(length) - w.line_at_;
  return 0;
}

int Connection::on_url(llhttp_t* p, const char* at, size_t length) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  if (w.url_.length == 0) {
    w.url_.offset = c->head_offset(at);
    if (c->offset_of(at) - w.line_at_ != w.method_end_ + 1u) {
      w.error_status_ = 400;
      return -1;
    }
  }
  w.url_end_ = c->offset_of(at) + static_cast<uint32_t>(length) - w.line_at_;
  w.url_.length += static_cast<uint32_t>(length);
  if (w.url_.length > c->server_.config().http.max_url_bytes) {
    w.error_status_ = 414;
    return -1;
  }
  return 0;
}

int Connection::on_url_complete(llhttp_t* p) {
  // llhttp marks a request line without a version (HTTP/0.9, "GET /") as 0.9 here, and would
  // then wait for headers that never come: answer at once.
  if (p->http_major == 0 && p->http_minor == 9) {
    static_cast<Connection*>(p->data)->work_->error_status_ = 505;
    return -1;
  }
  return 0;
}

int Connection::on_header_field(llhttp_t* p, const char* at, size_t length) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  const auto& http = c->server_.config().http;
  const bool first_piece = w.header_spans_.empty() || w.in_header_value_;
  size_t header_bytes = w.header_bytes_ + length;
  if (first_piece) {
    if (w.header_spans_.size() >= http.max_header_fields) {
      w.error_status_ = 431;
      return -1;
    }
    header_bytes += 4;  // ": " and CRLF
  }
  w.header_bytes_ = header_bytes;
  if (c->over_header_limit()) {
    w.error_status_ = 431;
    return -1;
  }
  const uint32_t offset = c->field_piece(at, length);
  if (first_piece) {
    w.in_header_value_ = false;
    w.header_spans_.push_back({{offset, static_cast<uint32_t>(length)}, {}});
  } else {
    w.header_spans_.back().name.length += static_cast<uint32_t>(length);
  }
  return 0;
}

int Connection::on_header_value(llhttp_t* p, const char* at, size_t length) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  // llhttp accepts obs-fold (a value continued on the next line, after CRLF and a space) and
  // hands the continuation as one more piece of the value. A value also comes in pieces when it
  // is split between two reads; that is the only other way: the previous piece ended where its
  // read ended, and this one starts where its read starts. Anything else is a fold, which
  // RFC 9112 5.2 lets a server reject: a proxy in front might unfold it differently.
  if (w.in_header_value_ && !(w.value_piece_at_end_ && at == w.feed_begin_)) {
    w.error_status_ = 400;
    return -1;
  }
  const char* const end = at + length;
  w.value_piece_at_end_ = end == w.feed_end_;
  w.header_bytes_ += length;
  if (c->over_header_limit()) {
    w.error_status_ = 431;
    return -1;
  }
  const uint32_t offset = c->field_piece(at, length);
  Span& value = w.header_spans_.back().value;
  if (!w.in_header_value_) {
    value.offset = offset;
    w.in_header_value_ = true;
  }
  // The value's pieces lie one after the other (a head's in the head, a trailer's in the arena):
  // it runs to this piece's end, less trailing OWS, which is not part of it (RFC 9110 5.5; llhttp
  // drops only the leading). Trimmed as each piece arrives, and a later piece extends it again
  // from its own end, so no callback at the value's end is needed. The usual piece ends in
  // something else, which its own last byte says.
  uint32_t value_length = offset + static_cast<uint32_t>(length) - value.offset;
  if (length == 0 || end[-1] == ' ' || end[-1] == '\t') {
    const char* bytes = c->span(value).data();
    while (value_length > 0 && (bytes[value_length - 1] == ' ' || bytes[value_length - 1] == '\t')) --value_length;
  }
  value.length = value_length;
  return 0;
}

// A field name is a token (RFC 9112 5.1). llhttp, strict, has checked each of its bytes against
// tchar and refused whitespace before the colon (RFC 9112 5.1's MUST); it lets an empty name
// through, which is no token either. So a name is checked by its length alone, once its section
// is whole, rather than read again byte by byte in a callback per field: on a browser's dozen
// fields that was a tenth of the request's instructions. tests/support/malformed_requests.hpp
// holds each case (NonTokenInFieldName, SpaceBeforeColon, EmptyFieldName, ...), so that an
// llhttp which checked less would fail them.
bool Connection::empty_field_name(const HeaderSpans& spans) {
  return std::any_of(spans.begin(), spans.end(), [](const HeaderSpan& h) { return h.name.length == 0; });
}

int Connection::on_headers_complete(llhttp_t* p) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  const auto& http = c->server_.config().http;
  const bool has_length = (p->flags & F_CONTENT_LENGTH) != 0;
  const bool chunked = (p->flags & F_CHUNKED) != 0;
  // llhttp parses any single-digit version; this server speaks HTTP/1.x, and a minor above 1 is
  // served as 1.1, the highest it implements (RFC 9110 2.5).
  if (p->http_major != 1) {
    w.error_status_ = 505;
    return -1;
  }
  // One space between the target and the version (llhttp skips more): what follows the target
  // is SP and the "H" of "HTTP/", which llhttp has checked.
  if (const std::string_view after_target = c->span({w.url_end_, 2}); after_target[0] != ' ' || after_target[1] != 'H') {
    w.error_status_ = 400;
    return -1;
  }
  const bool http11 = p->http_minor >= 1;
  // RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing (an HTTP/1.0 hop
  // in front would not have decoded it): a smuggling vector. Rejected, and the connection closes.
  if (!http11 && (p->flags & F_TRANSFER_ENCODING)) {
    w.error_status_ = 400;
    return -1;
  }
  if (has_length && p->content_length > http.max_body_bytes) {
    w.error_status_ = 413;
    return -1;
  }
  int hosts = 0;
  bool continue_expected = false;
  for (const HeaderSpan& h : w.header_spans_) {
    if (h.name.length == 0) {  // see empty_field_name
      w.error_status_ = 400;
      return -1;
    }
    std::string_view name = c->span(h.name);
    if (name.size() == 4 && is_host(name)) {
      ++hosts;
      w.authority_ = h.value;
    } else if (chunked && name.size() == 17 && iequals(name, "transfer-encoding") && !only_chunked(c->span(h.value))) {
      // llhttp checks that chunked comes last (else 400, RFC 9112 6.3); a coding before it
      // ("gzip, chunked") would reach the handler undecoded. RFC 9112 6.1: one the server does
      // not understand gets 501.
      w.error_status_ = 501;
      return -1;
    } else if (name.size() == 6 && iequals(name, "expect")) {
      if (!iequals(c->span(h.value), "100-continue")) {
        w.error_status_ = 417;
        return -1;
      }
      continue_expected = true;
    }
  }
  // RFC 9112 3.2: an HTTP/1.1 request has exactly one Host, HTTP/1.0 at most one. A request that
  // names two hosts could be routed by one and served as the other.
  if (hosts > 1 || (hosts == 0 && http11)) {
    w.error_status_ = 400;
    return -1;
  }
  // The target's forms (RFC 9112 3.2): origin-form "/path?query"; absolute-form, whose path is
  // the target's path and whose authority replaces Host; "*" for OPTIONS only.
  std::string_view target = c->span(w.url_);
  if (!target.empty() && target[0] == '/') {
    w.origin_ = w.url_;
  } else if (size_t after = absolute_form_prefix(target)) {
    size_t end = target.find_first_of("/?#", after);
    if (end == std::string_view::npos) end = target.size();
    w.authority_ = {static_cast<uint32_t>(w.url_.offset + after), static_cast<uint32_t>(end - after)};
    w.origin_ = {static_cast<uint32_t>(w.url_.offset + end), static_cast<uint32_t>(target.size() - end)};
    if (w.authority_.length == 0) {  // "http:///x": an http URI has a host (RFC 9110 4.2.1)
      w.error_status_ = 400;
      return -1;
    }
  } else if (p->method == HTTP_CONNECT) {
    w.error_status_ = 501;  // a tunnel: not something this server does
    return -1;
  } else if (target == "*" && p->method == HTTP_OPTIONS) {
    w.origin_ = w.url_;
  } else {
    w.error_status_ = 400;
    return -1;
  }
  // RFC 9110 7.2: Host is uri-host [":" port]; anything else is 400 (RFC 9112 3.2).
  if (!c->server_.valid_authority(c->span(w.authority_))) {
    w.error_status_ = 400;
    return -1;
  }
  // Each chunk-size line goes through feed_chunk_line() first, which checks and counts its
  // extensions and hands llhttp the size alone.
  w.chunk_line_next_ = chunked;
  // RFC 9110 10.1.1: the client waits for this before sending the body. HTTP/1.0 has no 1xx.
  if (continue_expected && http11 && (chunked || p->content_length > 0))
    w.out_.append("HTTP/1.1 100 Continue\r\n\r\n");
  w.headers_done_ = true;
  return w.chunk_line_next_ ? HPE_PAUSED : 0;
}

int Connection::on_chunk_header(llhttp_t* p) {
  static_cast<Connection*>(p->data)->work_->last_chunk_ = p->content_length == 0;
  return 0;
}

int Connection::on_chunk_complete(llhttp_t* p) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  if (w.last_chunk_) return 0;
  w.chunk_line_next_ = true;  // another chunk-size line follows
  return HPE_PAUSED;
}

int Connection::on_body(llhttp_t* p, const char* at, size_t length) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  if (w.body_.size() + length > c->server_.config().http.max_body_bytes) {
    w.error_status_ = 413;
    return -1;
  }
  w.body_.append(at, length);
  return 0;
}

int Connection::on_message_complete(llhttp_t* p) {
  auto* c = static_cast<Connection*>(p->data);
  Work& w = *c->work_;
  // HTTP/0.9 ("GET /path" and nothing else) comes here without a header section.
  if (!w.headers_done_) {
    w.error_status_ = 505;
    return -1;
  }
  // A trailer section's names, as the header section's (on_headers_complete checked those again).
  if ((p->flags & F_CHUNKED) && empty_field_name(w.header_spans_)) {
    w.error_status_ = 400;
    return -1;
  }
  // Decided now, while the parser still holds this request's flags.
  w.client_closes_ = !llhttp_should_keep_alive(p);
  c->keep_alive_ = !w.client_closes_ && !p->upgrade;
  w.is_head_ = p->method == HTTP_HEAD;
  // Pause so that the request is handled before anything behind it is parsed.
  return HPE_PAUSED;
}

// ---------------------------------------------------------------- input

void Connection::on_readable(evutil_socket_t, short what, void* self) {
  auto* c = static_cast<Connection*>(self);
  if (what & EV_READ) c->read_input();
  else c->on_idle_timeout();
}

void Connection::on_writable(evutil_socket_t, short, void* self) {
  static_cast<Connection*>(self)->advance();
}

// Reads once and moves the connection on; false if there was nothing to read yet.
bool Connection::read_input() {
  std::span<char> buffer = server_.read_buffer();
  ssize_t n = recv(fd_, buffer.data(), buffer.size(), 0);
  if (n < 0) {
    if (errno == EINTR) {
      read_again();  // nothing was read: no new edge will come for what waits
      return false;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    close();  // ECONNRESET and the like: nobody is left to answer
    return true;
  }
  take_input(buffer.data(), static_cast<size_t>(n));
  // The socket may hold more than the buffer took, and epoll (edge-triggered) will not say so.
  if (static_cast<size_t>(n) == buffer.size()) read_again();
  return true;
}

void Connection::read_again() {
  // From the loop, after the other connections ready now; not if reading stopped meanwhile (its
  // start_reading looks at the socket again) or the connection closed.
  if (fd_ >= 0 && reading_) event_active(&read_ev_, EV_READ, 0);
}

// What one read brought (length 0: the client's end of the stream).
void Connection::take_input(const char* data, size_t length) {
  if (length == 0) {
    if (proxy_ != ProxyProtocol::Off) {  // the client left before its PROXY header was whole
      server_.proxy_header_refused(remote_, "the connection ended inside the PROXY header");
      close();
      return;
    }
    read_eof_ = true;
    stop_reading();
    advance();
    return;
  }
  if (phase_ == Phase::Lingering) return;  // discarding
  Work& w = work();
  if (proxy_ != ProxyProtocol::Off) {
    w.pending_.append(data, length);
    if (read_proxy_header()) return advance();
    if (fd_ < 0) return;
    // Not whole yet: the rest is due within header_timeout too, and read as it comes (this may be
    // the first read, right after the accept, before reading started).
    arm_request_clock();
    start_reading();
    return;
  }
  size_t used = feed_all(data, length);
  if (used < length) w.pending_.append(data + used, length - used);
  // A request left incomplete at the end of a read is now on the clock; one that arrived whole
  // never touches a timer.
  if (phase_ == Phase::Reading && fd_ >= 0) arm_request_clock();
  advance();
}

// The PROXY header, read once before the first request (the header timer runs meanwhile). The
// address it carries is the client's for every request on the connection; what follows it is
// the first request, left in pending_ for advance() to parse.
bool Connection::read_proxy_header() {
  ProxyHeader header = parse_proxy_header(work_->pending_, proxy_);
  if (header.status == ProxyHeader::Status::NeedMore) return false;
  if (header.status == ProxyHeader::Status::Invalid) {
    server_.proxy_header_refused(remote_, header.why);
    close();
    return false;
  }
  proxy_ = ProxyProtocol::Off;
  if (header.has_address) set_client(reinterpret_cast<const sockaddr*>(&header.source), header.source_length);
  work_->pending_offset_ = header.length;
  if (work_->pending_offset_ == work_->pending_.size()) work_->pending_.clear(), work_->pending_offset_ = 0;
  return true;
}

bool Connection::can_parse() const {
  return (phase_ == Phase::Idle || phase_ == Phase::Reading) && !close_after_write_ && unsent_bytes() < kOutputHighWater;
}

size_t Connection::feed_all(const char* data, size_t length) {
  size_t used = 0;
  in_parse_ = true;
  while (used < length && can_parse()) used += feed(data + used, length - used);
  in_parse_ = false;
  return used;
}

size_t Connection::feed(const char* data, size_t length) {
  Work& w = *work_;
  if (w.chunk_line_next_) return feed_chunk_line(data, length);
  const char* parse = data;
  if (w.method_seen_ && !w.headers_done_) {
    // A head begun in an earlier read (kept in the arena since): it continues there, so that
    // its bytes stay in one piece.
    const size_t kept = w.arena_.size();
    w.arena_.append(data, length);
    parse = w.arena_.data() + kept;
  }
  w.feed_begin_ = parse;
  w.feed_end_ = parse + length;
  w.feed_at_ = w.fed_;
  llhttp_errno_t err = llhttp_execute(&w.parser_, parse, length);
  size_t used = err == HPE_PAUSED ? static_cast<size_t>(llhttp_get_error_pos(&w.parser_) - parse) : length;
  w.parsed_end_ = parse + used;
  if (err == HPE_OK) {
    w.fed_ += static_cast<uint32_t>(length);
    keep_request();  // the request goes on in a later read
    return length;
  }
  if (err == HPE_PAUSED) {
    w.fed_ += static_cast<uint32_t>(used);
    llhttp_resume(&w.parser_);
    if (w.chunk_line_next_) {  // paused before a chunk-size line, not at a request's end
      keep_request();
      return used;
    }
    more_input_ = used < length;
    dispatch();
    // Answered within this read: nothing reads its head again. Else it outlives the read.
    if (phase_ == Phase::Idle) forget_head();
    else keep_request();
    return used;
  }
  keep_request();
  if (err == HPE_PAUSED_UPGRADE) {
    // The request before it was answered with Connection: close; nothing after it is HTTP.
    close_after_write_ = true;
    return length;
  }
  int status = w.error_status_ != 0 ? w.error_status_ : 400;
  if (err == HPE_INVALID_VERSION) status = 505;
  // A method llhttp does not know, but a well-formed token followed by a space: 501 (RFC 9110
  // 9.1), not the 400 of a line that is not HTTP at all.
  if (err == HPE_INVALID_METHOD && starts_with_token_and_space({data, length})) status = 501;
  reject(status, w.error_status_ != 0 ? std::string_view() : llhttp_get_error_reason(&w.parser_));
  return length;
}

uint32_t Connection::field_piece(const char* at, size_t length) {
  Work& w = *work_;
  if (!w.headers_done_) return head_offset(at);
  const auto offset = static_cast<uint32_t>(w.arena_.size());
  w.arena_.append(at, length);
  return offset;
}

void Connection::keep_request() {
  Work& w = *work_;
  // The loop's time, which this read began at too: what the drain reports of the oldest request.
  if (w.request_started_ms_ == 0) w.request_started_ms_ = server_.now_ms();
  if (!w.head_in_feed_) return;
  w.arena_.assign(w.head_in_feed_, static_cast<size_t>(w.parsed_end_ - w.head_in_feed_));
  w.head_in_feed_ = nullptr;
}

void Connection::forget_head() {
  Work& w = *work_;
  if (!w.head_in_feed_) return;
  w.head_in_feed_ = nullptr;
  // Nothing reads them again; emptied rather than left pointing at bytes that are gone.
  w.url_ = w.origin_ = w.authority_ = {};
  w.header_spans_.clear();
}

// A chunk-size line, gathered whole (within max_chunk_ext_bytes). Its extensions are checked
// here and not handed to llhttp, which shoal does not need them from: llhttp 8 rejects the bad
// whitespace RFC 9112 7.1.1 allows around ';' and '=' (a recipient MUST remove it), and a second
// extension after an unquoted value ("3;a=1;b").
size_t Connection::feed_chunk_line(const char* data, size_t length) {
  const auto& http = server_.config().http;
  const char* lf = static_cast<const char*>(memchr(data, '\n', length));
  size_t take = lf ? static_cast<size_t>(lf - data) + 1 : length;
  work_->fed_ += static_cast<uint32_t>(take);
  // 16 hex digits of size, and CRLF, beside the extensions.
  if (work_->chunk_line_.size() + take > http.max_chunk_ext_bytes - work_->chunk_ext_bytes_ + 18) {
    reject(400, "chunk extensions over max_chunk_ext_bytes");
    return length;
  }
  work_->chunk_line_.append(data, take);
  if (!lf) return length;
  work_->chunk_line_next_ = false;
  size_t size_end = 0;
  while (size_end < work_->chunk_line_.size() && hex_value(work_->chunk_line_[size_end]) >= 0) ++size_end;
  size_t line_end = work_->chunk_line_.size() - 1;  // the LF; llhttp checks the CR before it
  if (line_end > size_end && work_->chunk_line_[line_end - 1] == '\r') --line_end;
  std::string_view extensions(work_->chunk_line_.data() + size_end, line_end - size_end);
  work_->chunk_ext_bytes_ += static_cast<uint32_t>(extensions.size());
  if (work_->chunk_ext_bytes_ > http.max_chunk_ext_bytes) {
    reject(400, "chunk extensions over max_chunk_ext_bytes");
    return take;
  }
  if (!is_chunk_extensions(extensions)) {
    reject(400, "invalid chunk extension");
    return take;
  }
  work_->chunk_line_.erase(size_end, extensions.size());
  work_->feed_begin_ = work_->chunk_line_.data();
  work_->feed_end_ = work_->chunk_line_.data() + work_->chunk_line_.size();
  llhttp_errno_t err = llhttp_execute(&work_->parser_, work_->chunk_line_.data(), work_->chunk_line_.size());
  work_->chunk_line_.clear();
  if (err != HPE_OK) {
    reject(work_->error_status_ != 0 ? work_->error_status_ : 400, llhttp_get_error_reason(&work_->parser_));
    return length;
  }
  return take;
}

// ---------------------------------------------------------------- requests

std::string_view Connection::method_name() const {
  return llhttp_method_name(static_cast<llhttp_method_t>(work_->parser_.method));
}

Connection::Target Connection::request_target() const {
  // Routed by the origin form: an absolute-form target's path (RFC 9112 3.2.2), "/" when it has
  // none; "*" (OPTIONS) stays as it is.
  Target t;
  t.target = span(work_->origin_);
  if (t.target.empty()) t.target = "/";
  const size_t question = t.target.find('?');
  t.path = t.target.substr(0, question);
  if (t.path.empty()) t.path = "/";  // "http://host?q" (RFC 9110 4.2.3)
  if (question != std::string_view::npos) t.query = t.target.substr(question + 1);
  return t;
}

void Connection::dispatch() {
  phase_ = Phase::Handling;
  ++serial_;
  if (work_->timer_ == Timer::Header || work_->timer_ == Timer::Body) disarm();

  // From a trusted proxy, the client is who its forwarding headers say (the arena grows here,
  // before any view into it is taken).
  work_->forwarded_ = {};
  const auto& trusted = server_.config().http.trusted_proxies;
  if (!trusted.empty() && client_family_ != 0 &&
      std::any_of(trusted.begin(), trusted.end(), [&](const Cidr& c) { return c.contains(client_family_, client_ip_); })) {
    std::string_view forwarded, x_forwarded_for;
    for (const HeaderSpan& h : work_->header_spans_) {
      std::string_view name = span(h.name);
      if (name.size() == 9 && iequals(name, "forwarded")) forwarded = span(h.value);
      else if (name.size() == 15 && iequals(name, "x-forwarded-for")) x_forwarded_for = span(h.value);
    }
    char client[46];
    std::string_view found = forwarded_client(forwarded, x_forwarded_for, trusted, client);
    if (!found.empty()) {
      keep_request();  // the arena takes the address after the head
      work_->forwarded_ = {static_cast<uint32_t>(work_->arena_.size()), static_cast<uint32_t>(found.size())};
      work_->arena_.append(found);
    }
  }
  const Target target = request_target();
  const RouteEntry* route = metrics_only_ ? nullptr : server_.route(target.path);
  // A fixed response reads nothing of the request: it needs no Request built, nor its method's
  // name (the access log finds it).
  if (route && route->kind == RouteEntry::Kind::Fixed && route->config->delay.count() == 0) return respond_rendered(*route);
  work_->method_ = method_name();
  if (metrics_only_) {
    // The [metrics] listener: the metrics page, or nothing else.
    if (target.path != server_.config().metrics.path) return respond(404, "text/plain", "not found\n");
    if (work_->method_ != "GET" && work_->method_ != "HEAD") return respond(405, "text/plain", "method not allowed\n", "Allow: GET, HEAD\r\n");
    return respond(200, "text/plain; version=0.0.4; charset=utf-8", server_.metrics_page());
  }
  work_->headers_.clear();
  for (const HeaderSpan& h : work_->header_spans_) work_->headers_.push_back({span(h.name), span(h.value)});
  Request request;
  request.method = work_->method_;
  request.target = target.target;
  request.path = target.path;
  request.query = target.query;
  request.host = span(work_->authority_);
  request.body = work_->body_;
  request.remote = work_->forwarded_.length ? span(work_->forwarded_) : std::string_view(remote_);
  request.version_major = work_->parser_.http_major;
  request.version_minor = std::min<int>(work_->parser_.http_minor, 1);  // 1.2 to 1.9 are served as 1.1
  request.headers = work_->headers_;

  if (!route) {
    respond(404, "text/plain", "not found\n");
  } else {
    switch (route->kind) {
      case RouteEntry::Kind::Liveness:
        respond(200, "text/plain", "ok\n");
        break;
      case RouteEntry::Kind::Readiness:
        if (server_.ready()) respond(200, "text/plain", "ready\n");
        else respond(503, "text/plain", "draining\n");
        break;
      case RouteEntry::Kind::Echo:
        respond(200, request.header("content-type").empty() ? "application/octet-stream"
                                                            : request.header("content-type"),
                request.body);
        break;
      case RouteEntry::Kind::Info:
        respond(200, "text/plain", server_.identity());
        break;
      case RouteEntry::Kind::Fixed: {  // one with a delay (the others were answered above)
        work_->delayed_ = route->config;
        timeval tv = to_timeval(route->config->delay);
        arm(Timer::Delay, &tv);
        break;
      }
      case RouteEntry::Kind::Static:
        serve_static(*route, request);
        break;
      case RouteEntry::Kind::App: {
        // Recorded for the master: if this handler never returns, the heartbeat check names it.
        WorkerBoard* board = server_.board();
        if (board) board->enter(request.method, request.target);
        try {
          (*route->handler)(request, Responder(&server_, slot_, serial_));
        } catch (const std::exception& e) {
          spdlog::error("handler for {} threw: {}", route->path, e.what());
          respond(500, "text/plain", "internal server error\n");
        } catch (...) {
          spdlog::error("handler for {} threw a non-standard exception", route->path);
          respond(500, "text/plain", "internal server error\n");
        }
        if (board) board->leave();
        break;
      }
    }
  }
}

void Connection::respond(const Response& response) {
  if (phase_ != Phase::Handling) return;
  if (!response.problem().empty()) {
    spdlog::error("{} {}: the handler's response was not sent: {}; answered 500 instead", work_->method_, span(work_->url_),
                  response.problem());
    return respond(500, "text/plain", "internal server error\n");
  }
  if (response.close_) keep_alive_ = false;
  respond(response.status_, response.content_type_, response.body_, {}, {response.fields_, response.count_},
          response.server_);
}

// ---------------------------------------------------------------- streams

bool Connection::start_stream(const Response& head) {
  if (phase_ != Phase::Handling) return false;
  if (!head.problem().empty() || head.status_ == 204 || head.status_ == 304) {
    spdlog::error("{} {}: the handler's stream was not started: {}; answered 500 instead", work_->method_, span(work_->url_),
                  head.problem().empty() ? "a " + std::to_string(head.status_) + " has no body to stream" : head.problem());
    respond(500, "text/plain", "internal server error\n");
    return false;
  }
  if (head.close_) keep_alive_ = false;
  const bool chunked = work_->parser_.http_minor >= 1;
  if (!chunked) keep_alive_ = false;  // HTTP/1.0: the close ends the body
  write_head(head.status_, head.content_type_, kStreamed, {}, {head.fields_, head.count_}, head.server_);
  if (work_->is_head_) {  // the head says what a GET would get; there is no body to stream
    finish_response(head.status_, 0);
    end_request();
    return false;
  }
  Extras& x = extras();
  x.chunked = chunked;
  x.status = head.status_;
  x.body_bytes = 0;
  phase_ = Phase::Streaming;
  if (!head.body_.empty()) stream_write(head.body_);
  // A stream started while the worker drains is told at once (from the loop, once its handler
  // had the chance to ask): the client has to reconnect elsewhere anyway.
  if (!server_.ready()) server_.schedule_drain_notice(*this, Millis(0));
  if (!in_parse_) advance();
  return true;
}

Stream::Write Connection::stream_write(std::string_view piece) {
  if (phase_ != Phase::Streaming) return Stream::Write::Closed;
  Extras& x = extras();
  if (x.failed) return Stream::Write::Closed;
  if (unsent_bytes() >= Stream::kMaxBufferedBytes) {
    x.wants_writable = true;
    return Stream::Write::Full;
  }
  if (piece.empty()) return Stream::Write::Ok;  // an empty chunk would end the body
  using namespace std::string_view_literals;
  if (x.chunked) {
    char size[20];
    auto end = std::to_chars(size, size + sizeof size, piece.size(), 16).ptr;
    work_->out_.append(size, static_cast<size_t>(end - size));
    work_->out_.append("\r\n"sv);
  }
  work_->out_.append(piece);
  if (x.chunked) work_->out_.append("\r\n"sv);
  x.body_bytes += piece.size();
  // Sent at once as far as the client takes it; what it does not take waits for on_writable.
  // Inside the handler's call the parse loop sends it, with whatever else this read produced.
  if (!in_parse_ && !writing_) {
    if (send_output() == Sent::Failed) {
      // Closed from the loop, not from inside the application's call.
      x.failed = true;
      event_active(&write_event(), EV_WRITE, 0);
      return Stream::Write::Closed;
    }
  }
  if (unsent_bytes() >= Stream::kSlowBytes) {
    x.wants_writable = true;
    return Stream::Write::Slow;
  }
  return Stream::Write::Ok;
}

void Connection::stream_end() {
  if (phase_ != Phase::Streaming) return;
  Extras& x = extras();
  if (x.chunked) work_->out_.append("0\r\n\r\n");
  // Its head went out before the drain began, saying keep-alive: the close after the terminator
  // tells the client now (a complete response, then the end: no request of its is lost).
  if (!x.chunked || !server_.ready()) close_after_write_ = true;
  finish_response(x.status, static_cast<size_t>(x.body_bytes));
  end_request();
}

void Connection::stream_abort() {
  if (phase_ != Phase::Streaming) return;
  spdlog::debug("{} {}: the stream to {} was aborted", work_->method_, span(work_->url_), remote_);
  work_->out_.resize(work_->out_offset_);  // unsent output goes: the body is cut short
  work_->pending_.clear(), work_->pending_offset_ = 0;
  close_after_write_ = true;
  linger_ = false;
  end_request();
}

void Connection::end_request() {
  phase_ = Phase::Idle;
  end_request_extras();
  // Inside the parse loop, the loop moves on; from the event loop (an answer given later, a
  // timeout, a stream's end), this is where the connection moves on.
  if (!in_parse_) advance();
}

void Connection::set_drain_callback(DrainCallback fn) {
  extras().drain = std::move(fn);
  extras().drain_told = false;
  if (!server_.ready()) server_.schedule_drain_notice(*this, Millis(0));
}

bool Connection::wants_drain_notice() const {
  if (fd_ < 0) return false;
  if (phase_ == Phase::Streaming) return !extras_ || !extras_->drain_told;
  return phase_ == Phase::Handling && extras_ && extras_->drain && !extras_->drain_told;
}

void Connection::drain_notice(const DrainNotice& notice) {
  if (!wants_drain_notice()) return;
  Extras& x = extras();
  x.drain_told = true;
  if (x.drain) {
    DrainCallback told = std::move(x.drain);
    x.drain = nullptr;
    told(notice);
    return;
  }
  // A stream that did not ask is ended by shoal at its place in the spread.
  if (phase_ == Phase::Streaming) stream_end();
}

void Connection::end_request_extras() {
  if (!extras_) return;
  std::unique_ptr<Extras> x = std::move(extras_);
  if (x->closed) x->closed();
}

void Connection::advance_stream() {
  Sent sent = send_output();
  if (sent == Sent::Failed || extras().failed) return close();
  if (sent == Sent::Blocked) stop_reading();
  else if (read_eof_) return close();  // the client went away: nobody reads the stream
  // Input while streaming is only watched for the client's leaving, and kept for its next request
  // (within a bound: a client that sends much while it is streamed to waits for the end).
  else if (work_->pending_.size() < server_.config().http.max_header_bytes) start_reading();
  else stop_reading();
  if (extras_ && extras_->wants_writable && unsent_bytes() < Stream::kSlowBytes) {
    extras_->wants_writable = false;
    if (extras_->writable) {
      std::function<void()> ready = std::move(extras_->writable);
      extras_->writable = nullptr;
      ready();  // it may write, end or abort: nothing of this call runs after it
    }
  }
}

void Connection::respond(int status, std::string_view content_type, std::string_view body,
                         std::string_view extra_headers, std::span<const Header> fields, std::string_view server) {
  if (phase_ != Phase::Handling) return;
  const bool no_content = status == 204 || status == 304;  // RFC 9112 6.3: whatever the handler gave
  write_head(status, content_type, no_content ? 0 : body.size(), extra_headers, fields, server);
  if (!work_->is_head_ && !no_content) work_->out_.append(body);
  finish_response(status, no_content ? 0 : body.size());
  end_request();
}

void Connection::reject(int status, std::string_view why) {
  spdlog::debug("{} from {}: {}", status, remote_, why.empty() ? reason_phrase(status) : why);
  keep_alive_ = false;
  work_->is_head_ = false;
  linger_ = true;  // the client may still be sending: read it away before closing (see advance)
  phase_ = Phase::Handling;
  std::string body = std::to_string(status) + " " + std::string(reason_phrase(status)) + "\n";
  if (work_->method_.empty()) work_->method_ = "-";
  if (phase_ == Phase::Idle) work_->url_ = {};
  respond(status, "text/plain", body);
  close_after_write_ = true;
}

bool Connection::keep_alive_after_response() {
  // Keep-alive ends with this response when the request or the config says so, or while the
  // worker drains and no pipelined request follows this one.
  // From the drain's very start (its drain_delay included): every client still sending is told
  // to reconnect, through its balancer, to an instance that is not stopping.
  const bool stopping = !server_.ready();
  bool more = more_input_;
  if (stopping && !more) {
    // Requests the client pipelined before we began draining may still sit in the kernel's
    // buffer: they are answered too (one peek, only while draining).
    char byte;
    more = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
  }
  bool keep = keep_alive_ && server_.config().http.keepalive_timeout.count() > 0 && !(stopping && !more);
  if (!keep) close_after_write_ = true;
  return keep;
}

void Connection::respond_rendered(const RouteEntry& route) {
  bool keep = keep_alive_after_response();
  std::string_view bytes = server_.rendered(route, keep, work_->is_head_);
  // The only output of this read (nothing before it, nothing pipelined behind it): sent from the
  // route's own bytes by the send_output() that follows in this callback, not copied first.
  if (work_->out_.empty() && !more_input_) work_->direct_out_ = bytes;
  else work_->out_.append(bytes);
  finish_response(route.config->status, route.config->body.size());
  phase_ = Phase::Idle;
}

void Connection::write_head(int status, std::string_view content_type, size_t content_length,
                            std::string_view extra_headers, std::span<const Header> fields, std::string_view server) {
  bool keep = keep_alive_after_response();
  // Literal pieces as string_views: their lengths are known at compile time (no strlen per request).
  using namespace std::string_view_literals;
  work_->out_.append("HTTP/1.1 "sv);
  append_number(work_->out_, static_cast<uint64_t>(status));
  work_->out_ += ' ';
  work_->out_.append(reason_phrase(status));
  work_->out_.append("\r\nServer: "sv);
  work_->out_.append(server);
  work_->out_.append("\r\nDate: "sv);
  work_->out_.append(server_.date());
  if (!content_type.empty()) {
    work_->out_.append("\r\nContent-Type: "sv);
    work_->out_.append(content_type);
  }
  // RFC 9110 8.6: never in a 204; a 304 says nothing of a body it does not have (nginx sends none).
  if (content_length == kStreamed) {
    // HTTP/1.0 has no chunked coding (RFC 9112 7): its body ends with the connection.
    if (work_->parser_.http_minor >= 1) work_->out_.append("\r\nTransfer-Encoding: chunked"sv);
  } else if (status != 204 && status != 304) {
    work_->out_.append("\r\nContent-Length: "sv);
    append_number(work_->out_, content_length);
  }
  work_->out_.append(keep ? "\r\nConnection: keep-alive\r\n"sv : "\r\nConnection: close\r\n"sv);
  for (const Header& field : fields) {
    work_->out_.append(field.name);
    work_->out_.append(": "sv);
    work_->out_.append(field.value);
    work_->out_.append("\r\n"sv);
  }
  work_->out_.append(extra_headers);
  work_->out_.append("\r\n"sv);
}

void Connection::finish_response(int status, size_t body_bytes) {
  server_.count_response();
  int64_t duration_us = work_->request_start_us_ ? monotonic_us() - work_->request_start_us_ : 0;
  if (metrics::WorkerCounters* counters = server_.counters(); counters && !metrics_only_)
    counters->record(status, body_bytes, duration_us);
  if (!server_.access_log_on()) return;
  AccessRecord r;
  if (work_->forwarded_.length) {
    r.address = span(work_->forwarded_);  // trusted forwarding headers name an address, no port
  } else {
    r.address = {remote_ + client_address_at_, client_address_length_};
    r.port = client_port_;
  }
  r.method = work_->method_.empty() ? method_name() : work_->method_;
  r.target = span(work_->url_);
  r.http_major = work_->parser_.http_major;
  r.http_minor = work_->parser_.http_minor;
  r.status = status;
  r.body_bytes = body_bytes;
  r.duration_us = duration_us;
  for (const HeaderSpan& h : work_->header_spans_) {
    std::string_view name = span(h.name);
    if (name.size() == 7 && iequals(name, "referer")) r.referer = span(h.value);
    else if (name.size() == 10 && iequals(name, "user-agent")) r.user_agent = span(h.value);
    else if (name.size() == 12 && iequals(name, "x-request-id")) r.request_id = span(h.value);
  }
  std::string& log = server_.access_log_buffer();
  if (server_.access_log_json()) {
    if (!is_valid_request_id(r.request_id)) r.request_id = server_.next_request_id();
    append_json(log, r, server_.rfc3339_now(), server_.access_identity());
  } else {
    append_combined(log, r, server_.log_time());
  }
  server_.access_log_written();
}

void Connection::serve_static(const RouteEntry& route, const Request& request) {
  if (request.method != "GET" && request.method != "HEAD")
    return respond(405, "text/plain", "method not allowed\n", "Allow: GET, HEAD\r\n");
  if (route.root_fd < 0) return respond(500, "text/plain", "static root unavailable\n");
  std::string& relative = work_->path_scratch_;
  if (!percent_decode(request.path.substr(route.path.size()), relative))
    return respond(400, "text/plain", "bad path encoding\n");
  if (relative.empty() || relative.back() == '/') relative += "index.html";
  while (!relative.empty() && relative.front() == '/') relative.erase(0, 1);

  // RESOLVE_BENEATH refuses "..", absolute paths and symlinks that lead out of the root.
  open_how how{};
  how.flags = O_RDONLY | O_CLOEXEC | O_NOCTTY;
  how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
  int fd = static_cast<int>(syscall(SYS_openat2, route.root_fd, relative.c_str(), &how, sizeof how));
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT || err == ENOTDIR) return respond(404, "text/plain", "not found\n");
    if (err == EXDEV || err == ELOOP || err == EACCES || err == EPERM)
      return respond(403, "text/plain", "forbidden\n");
    spdlog::error("openat2({}/{}) failed: {}", route.config->root, relative, strerror(err));
    return respond(500, "text/plain", "internal server error\n");
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    bool dir = S_ISDIR(st.st_mode);
    ::close(fd);
    if (!dir) return respond(403, "text/plain", "forbidden\n");
    std::string location = "Location: " + std::string(request.path) + "/\r\n";
    return respond(301, "text/plain", "", location);
  }
  // Validators, preconditions and a range (RFC 9110 8.8, 13, 14), as nginx answers them.
  const FileValidators file(st.st_ino, static_cast<uint64_t>(st.st_size), st.st_mtim.tv_sec, st.st_mtim.tv_nsec);
  const uint64_t size = static_cast<uint64_t>(st.st_size);
  char head[256];
  size_t head_length = 0;
  auto add = [&](std::string_view piece) {
    size_t n = std::min(piece.size(), sizeof head - head_length);
    memcpy(head + head_length, piece.data(), n);
    head_length += n;
  };
  auto add_number = [&](uint64_t value) {
    head_length = static_cast<size_t>(std::to_chars(head + head_length, head + sizeof head, value).ptr - head);
  };
  add("Last-Modified: "), add(file.last_modified_view()), add("\r\nETag: "), add(file.etag_view());
  add("\r\nAccept-Ranges: bytes\r\n");
  Precondition pre = evaluate_preconditions({request.header("if-match"), request.header("if-none-match"),
                                             request.header("if-modified-since"),
                                             request.header("if-unmodified-since")}, file);
  if (pre != Precondition::Proceed) {
    ::close(fd);
    if (pre == Precondition::Failed) return respond(412, "text/plain", "412 Precondition Failed\n", {head, head_length});
    return respond(304, {}, {}, {head, head_length});
  }
  ByteRange range = work_->is_head_ ? ByteRange{} : select_range(request.header("range"), request.header("if-range"), size, file);
  if (range.kind == ByteRange::Kind::Unsatisfiable) {
    ::close(fd);
    add("Content-Range: bytes */"), add_number(size), add("\r\n");
    return respond(416, "text/plain", "416 Range Not Satisfiable\n", {head, head_length});
  }
  int status = 200;
  uint64_t first = 0, length = size;
  if (range.kind == ByteRange::Kind::Partial) {
    status = 206;
    first = range.first;
    length = range.last - range.first + 1;
    add("Content-Range: bytes "), add_number(range.first), add("-"), add_number(range.last), add("/"), add_number(size);
    add("\r\n");
  }
  write_head(status, content_type_for(relative), static_cast<size_t>(length), {head, head_length}, {}, "shoal");
  finish_response(status, static_cast<size_t>(length));
  if (work_->is_head_ || length == 0) {
    ::close(fd);
    phase_ = Phase::Idle;
    return;
  }
  work_->file_fd_ = fd;
  work_->file_offset_ = static_cast<off_t>(first);
  work_->file_end_ = static_cast<off_t>(first + length);
  phase_ = Phase::SendingFile;
}

// ---------------------------------------------------------------- output and state

void Connection::advance() {
  if (phase_ == Phase::Streaming) return advance_stream();
  if (!work_) {  // idle, nothing held: only the client's leaving moves it
    if (read_eof_) close();
    return;
  }
  while (fd_ >= 0) {
    // Requests held back while the previous one was answered.
    if (work_->pending_offset_ < work_->pending_.size() && can_parse()) {
      work_->pending_offset_ += feed_all(work_->pending_.data() + work_->pending_offset_, work_->pending_.size() - work_->pending_offset_);
      if (work_->pending_offset_ == work_->pending_.size()) work_->pending_.clear(), work_->pending_offset_ = 0;
    }
    if (!flush_output()) return;
    if (phase_ == Phase::SendingFile) {
      if (!send_file()) return;
      phase_ = Phase::Idle;
      continue;
    }
    if (work_->pending_offset_ < work_->pending_.size() && can_parse()) continue;
    break;
  }
  if (fd_ < 0) return;

  if (phase_ == Phase::Lingering) {
    if (read_eof_) close();
    return;
  }
  if (close_after_write_) {
    if (!linger_ && work_->pending_.empty()) return close();
    // Shut our side (the response is complete) and read away what the client still sends,
    // so that closing with unread input does not reset the connection under its response.
    ::shutdown(fd_, SHUT_WR);
    phase_ = Phase::Lingering;
    work_->pending_.clear(), work_->pending_offset_ = 0;
    if (read_eof_) return close();
    start_reading();
    arm(Timer::Linger, server_.linger_timeout());
    return;
  }
  if (phase_ == Phase::Handling) {
    stop_reading();
    if (work_->timer_ != Timer::Delay) disarm();
    return;
  }
  if (!work_->pending_.empty()) {  // held back by output that could not be written yet
    stop_reading();
    return;
  }
  if (read_eof_) {
    // The client sent its last byte: close once everything is answered; a partial request
    // can never complete.
    return close();
  }
  start_reading();
  if (phase_ == Phase::Idle) wait_idle();
}

std::string Connection::describe_request() const {
  if (!work_) return "(idle)";
  std::string out(work_->method_.empty() ? std::string_view("(receiving)") : work_->method_);
  out += ' ';
  out.append(span(work_->url_));
  return out;
}

void Connection::wait_idle() {
  answered_ = true;
  idle_since_ms_ = monotonic_ms();
  release_work();  // nothing is held: the advance() that calls this wrote everything out
  if (server_.draining()) return on_drain();
  if (is_tcp_ && !nodelay_set_) {
    // Kept alive: from now on a response may follow another one still unacknowledged, which
    // Nagle would hold back. A connection closed after one response never needs the call.
    int one = 1;
    setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    nodelay_set_ = true;
  }
  if (idle_timer_ != IdleTimer::None) event_remove_timer(&read_ev_), idle_timer_ = IdleTimer::None;  // FirstRequest
  server_.keepalive_list().went_idle(*this);
}

void Connection::arm_idle(IdleTimer purpose, const timeval* after) {
  idle_timer_ = purpose;
  event_add(&read_ev_, after);
  reading_ = true;
}

void Connection::on_idle_timeout() {
  if (has_work()) {
    // A request is under way, or input or output is held: the request's own timers watch it, and
    // the idle deadline starts again once it is over (wait_idle).
    event_remove_timer(&read_ev_);
    idle_timer_ = IdleTimer::None;
    return;
  }
  switch (idle_timer_) {
    case IdleTimer::FirstRequest:
      return request_timed_out(Timer::Header);
    case IdleTimer::DrainIdle:
      return close();
    case IdleTimer::None:
      event_remove_timer(&read_ev_);
      return;
  }
}

// header_timeout (Header) or body_timeout (Body) passed, from a request's timer or, for a first
// request that has not begun, from the idle one.
void Connection::request_timed_out(Timer which) {
  if (proxy_ != ProxyProtocol::Off) {  // no PROXY header in time: no response either
    server_.proxy_header_refused(remote_, "no PROXY header within header_timeout");
    return close();
  }
  if (phase_ != Phase::Reading && phase_ != Phase::Idle) return;
  work().error_status_ = 408;
  reject(408, which == Timer::Header ? "header section not received within header_timeout"
                                     : "no part of the body received within body_timeout");
}

void Connection::on_drain(Millis not_before) {
  if (fd_ < 0 || phase_ != Phase::Idle || buffered()) return;
  // A connection not answered yet is not idle: its client connected to send a request, which may
  // still be on its way (a busy client, or one accepted from the queue as the drain began). It
  // waits under header_timeout, like any connection, and its answer says Connection: close.
  if (!answered_) return;
  // Idle: close only once no request can be on its way from a client that saw the last response
  // before it saw us stop (the idle grace). A request arriving in the grace gets Connection: close.
  int64_t grace_ms = server_.config().shutdown.idle_grace.count();
  int64_t left_ms = std::max<int64_t>(grace_ms - (monotonic_ms() - idle_since_ms_), not_before.count());
  if (left_ms <= 0) return close();
  if (in_keepalive_) server_.keepalive_list().remove(*this);
  timeval tv = to_timeval(Millis(left_ms));
  arm_idle(IdleTimer::DrainIdle, &tv);
}

Connection::Sent Connection::send_output() {
  // The last response, on a connection its client asked to close: corked, so that the close
  // right after it sends it with the FIN in one segment, one segment (and its ACK) less for the
  // kernel. Not when shoal decides the close: a client that does not know may be sending its
  // next request, which would make the close a reset that drops a corked response.
  const bool last = close_after_write_ && work_->client_closes_ && phase_ != Phase::Streaming;
  const int flags = MSG_NOSIGNAL | (phase_ == Phase::SendingFile || last ? MSG_MORE : 0);
  if (std::string_view direct = work_->direct_out_; !direct.empty()) {
    work_->direct_out_ = {};
    ssize_t n = send(fd_, direct.data(), direct.size(), flags);
    // What did not go (a full socket buffer, an error) waits in out_ like any output, and the
    // loop below sends it or finds why not.
    if (n != static_cast<ssize_t>(direct.size())) work_->out_.append(direct.substr(n > 0 ? static_cast<size_t>(n) : 0));
  }
  while (work_->out_offset_ < work_->out_.size()) {
    ssize_t n = send(fd_, work_->out_.data() + work_->out_offset_, work_->out_.size() - work_->out_offset_, flags);
    if (n > 0) {
      work_->out_offset_ += static_cast<size_t>(n);
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      want_write(true);
      return Sent::Blocked;
    } else {
      return Sent::Failed;
    }
  }
  work_->out_.clear();
  work_->out_offset_ = 0;
  if (phase_ != Phase::SendingFile && writing_) want_write(false);
  return Sent::All;
}

bool Connection::flush_output() {
  Sent sent = send_output();
  if (sent == Sent::Failed) close();
  return sent == Sent::All;
}

bool Connection::send_file() {
  while (work_->file_offset_ < work_->file_end_) {
    size_t chunk = static_cast<size_t>(std::min<off_t>(work_->file_end_ - work_->file_offset_, 1 << 20));
    ssize_t n = sendfile(fd_, work_->file_fd_, &work_->file_offset_, chunk);
    if (n > 0) continue;
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      want_write(true);
      return false;
    }
    // The file shrank under us (n == 0) or the client left: the promised length cannot be kept.
    if (n == 0) spdlog::warn("static file shrank while being sent to {}; closing", remote_);
    close();
    return false;
  }
  ::close(work_->file_fd_);
  work_->file_fd_ = -1;
  want_write(false);
  return true;
}

void Connection::on_timer(evutil_socket_t, short, void* self) {
  auto* c = static_cast<Connection*>(self);
  Timer fired = c->work_->timer_;
  c->work_->timer_ = Timer::None;
  switch (fired) {
    case Timer::Header:
    case Timer::Body:
      return c->request_timed_out(fired);
    case Timer::Delay: {
      const RouteConfig* route = c->work_->delayed_;
      c->work_->delayed_ = nullptr;
      if (route) c->respond(route->status, route->content_type, route->body);
      return;
    }
    case Timer::Write:
      spdlog::info("closing the connection from {}: it read nothing for send_timeout", c->remote_);
      return c->close();
    case Timer::Linger:
      return c->close();
    case Timer::None:
      return;
  }
}

void Connection::arm(Timer purpose, const timeval* after) {
  Work& w = *work_;
  if (!w.timer_ev_assigned_) evtimer_assign(&w.timer_ev_, server_.base(), on_timer, this), w.timer_ev_assigned_ = true;
  w.timer_ = purpose;
  evtimer_add(&w.timer_ev_, after);
}

// The header section has one deadline as a whole (a later read does not restart it); the body's
// timeout restarts with every read that brings some of it.
void Connection::arm_request_clock() {
  if (work_->headers_done_) return arm(Timer::Body, server_.body_timeout());
  if (work_->timer_ == Timer::Header) return;
  if (answered_) return arm(Timer::Header, server_.header_timeout());
  // A connection's first request (its PROXY header too) is due header_timeout after the accept.
  int64_t left_ms = server_.config().http.header_timeout.count() - (monotonic_ms() - idle_since_ms_);
  timeval tv = to_timeval(Millis(std::max<int64_t>(left_ms, 0)));
  arm(Timer::Header, &tv);
}

void Connection::disarm() {
  if (work_->timer_ == Timer::None) return;
  work_->timer_ = Timer::None;
  evtimer_del(&work_->timer_ev_);
}

event& Connection::write_event() {
  Work& w = *work_;
  if (!w.write_ev_assigned_)
    // Edge-triggered, as read_ev_ (libevent has one mode per socket): it is added only after a
    // write found the socket full, and event_add looks at the socket as it is.
    event_assign(&w.write_ev_, server_.base(), fd_, EV_WRITE | EV_PERSIST | EV_ET, on_writable, this),
        w.write_ev_assigned_ = true;
  return w.write_ev_;
}

void Connection::start_reading() {
  if (!reading_ && !read_eof_) event_add(&read_ev_, nullptr), reading_ = true;
}

void Connection::stop_reading() {
  if (reading_) event_del(&read_ev_), reading_ = false, idle_timer_ = IdleTimer::None;
}

void Connection::want_write(bool on) {
  if (on) {
    if (!writing_) event_add(&write_event(), nullptr), writing_ = true;
    // send_timeout runs from the last write that made progress: a slow reader that keeps taking
    // bytes is never cut off, one that stopped reading is. (Called on EAGAIN, after a write.)
    if (work_->timer_ != Timer::Delay) arm(Timer::Write, server_.send_timeout());
    return;
  }
  if (!writing_) return;
  writing_ = false;
  event_del(&work_->write_ev_);
  if (work_->timer_ == Timer::Write) {
    disarm();
    // A pipelined request may have begun arriving while output waited: it is on the clock again.
    if (phase_ == Phase::Reading) arm_request_clock();
  }
}

}  // namespace shoal
