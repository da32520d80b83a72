#include "worker/server.hpp"

#include <errno.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <time.h>
#include <cstring>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cstdio>

#include "common/sys.hpp"
#include "worker/connection.hpp"
#include "worker/http_syntax.hpp"

namespace shoal {

int64_t monotonic_ms() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return int64_t{ts.tv_sec} * 1000 + ts.tv_nsec / 1'000'000;
}

int64_t monotonic_us() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return int64_t{ts.tv_sec} * 1'000'000 + ts.tv_nsec / 1000;
}

bool iequals(std::string_view a, std::string_view b) {
  static constexpr auto kLower = [] {
    std::array<unsigned char, 256> lower{};
    for (int c = 0; c < 256; ++c) lower[c] = static_cast<unsigned char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return lower;
  }();
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (kLower[static_cast<unsigned char>(a[i])] != kLower[static_cast<unsigned char>(b[i])]) return false;
  return true;
}

std::string_view Request::header(std::string_view name) const {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return h.value;
  return {};
}

void Responder::send(int status, std::string_view content_type, std::string_view body) const {
  if (Connection* c = server_->awaiting(slot_, serial_)) c->respond(status, content_type, body);
}

void Responder::send(const Response& response) const {
  if (Connection* c = server_->awaiting(slot_, serial_)) c->respond(response);
}

Stream Responder::stream(const Response& head) const {
  Connection* c = server_->awaiting(slot_, serial_);
  if (c && c->start_stream(head)) return Stream(server_, slot_, serial_);
  return Stream(server_, slot_, 0);  // serial 0 is never a request's: a dead stream
}

void Responder::on_drain(DrainCallback fn) const {
  if (Connection* c = server_->awaiting(slot_, serial_)) c->set_drain_callback(std::move(fn));
}

Stream::Write Stream::write(std::string_view piece) const {
  Connection* c = server_->streaming(slot_, serial_);
  return c ? c->stream_write(piece) : Write::Closed;
}
void Stream::end() const {
  if (Connection* c = server_->streaming(slot_, serial_)) c->stream_end();
}
void Stream::abort() const {
  if (Connection* c = server_->streaming(slot_, serial_)) c->stream_abort();
}
void Stream::on_writable(std::function<void()> fn) const {
  if (Connection* c = server_->streaming(slot_, serial_)) c->set_writable_callback(std::move(fn));
}
void Stream::on_drain(DrainCallback fn) const {
  if (Connection* c = server_->streaming(slot_, serial_)) c->set_drain_callback(std::move(fn));
}
void Stream::on_close(std::function<void()> fn) const {
  if (Connection* c = server_->streaming(slot_, serial_)) c->set_close_callback(std::move(fn));
}
bool Stream::alive() const { return server_->streaming(slot_, serial_) != nullptr; }
size_t Stream::unsent_bytes() const {
  Connection* c = server_->streaming(slot_, serial_);
  return c ? c->unsent_bytes() : 0;
}
event_base* Stream::loop() const { return server_->base(); }

namespace {
// An SSE field's value may not hold a line break (it would end the field) or NUL.
bool is_sse_value(std::string_view value) { return value.find_first_of(std::string_view("\r\n\0", 3)) == std::string_view::npos; }
}  // namespace

Sse Sse::start(const Responder& reply, Response head) {
  head.header("Content-Type", "text/event-stream").header("Cache-Control", "no-cache");
  return Sse(reply.stream(head));
}

Stream::Write Sse::event(std::string_view name, std::string_view data, std::string_view id) const {
  if (!is_sse_value(name) || !is_sse_value(id)) return Stream::Write::Invalid;
  // One write, so that an event is never split by another's.
  std::string text;
  text.reserve(name.size() + data.size() + id.size() + 32);
  if (!name.empty()) text.append("event: ").append(name).append("\n");
  // Each line of data is a data: field; LF, CR and CRLF all end a line (WHATWG HTML 9.2.5).
  size_t at = 0;
  while (true) {
    size_t eol = data.find_first_of("\r\n", at);
    text.append("data: ").append(data.substr(at, eol == std::string_view::npos ? eol : eol - at)).append("\n");
    if (eol == std::string_view::npos) break;
    at = eol + (data[eol] == '\r' && eol + 1 < data.size() && data[eol + 1] == '\n' ? 2 : 1);
  }
  if (!id.empty()) text.append("id: ").append(id).append("\n");
  text.append("\n");
  return stream_.write(text);
}

Stream::Write Sse::retry(std::chrono::milliseconds reconnect_after) const {
  char line[40];
  int n = snprintf(line, sizeof line, "retry: %lld\n\n", static_cast<long long>(reconnect_after.count()));
  return stream_.write({line, static_cast<size_t>(n)});
}

Stream::Write Sse::comment(std::string_view text) const {
  if (!is_sse_value(text)) return Stream::Write::Invalid;
  std::string line;
  line.reserve(text.size() + 4);
  line.append(":").append(text).append("\n\n");
  return stream_.write(line);
}

namespace {

// A field value shoal may send (RFC 9110 5.5): no control character but HTAB; obs-text passes.
bool is_field_value(std::string_view value) {
  for (unsigned char c : value)
    if ((c < 0x20 && c != '\t') || c == 0x7f) return false;
  return true;
}

// For the log: what the handler gave, its control characters escaped.
std::string printable(std::string_view text) {
  std::string out;
  for (unsigned char c : text.substr(0, 64)) {
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
    } else {
      char hex[5];
      snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  return text.size() > 64 ? out + "..." : out;
}

// What frames the message or the connection: shoal writes these, from what it knows.
constexpr std::string_view kShoalsFields[] = {"content-length", "transfer-encoding", "date",    "keep-alive",
                                              "trailer",        "te",                "upgrade", "proxy-connection"};

}  // namespace

Response::Response(int status, std::string_view content_type, std::string_view body)
    : status_(status), content_type_(trim_ows(content_type)), body_(body) {
  if (status < 200 || status > 599)
    refuse("status " + std::to_string(status) + ": a handler answers with 200 to 599 (shoal sends 100 Continue itself)");
  if (!is_field_value(content_type)) refuse("Content-Type '" + printable(content_type) + "' holds a control character");
}

Response& Response::header(std::string_view name, std::string_view value) {
  if (!problem_.empty()) return *this;
  const std::string_view v = trim_ows(value);
  if (!is_token(name)) {
    refuse("field name '" + printable(name) + "' is not a token (RFC 9110 5.6.2)");
  } else if (!is_field_value(v)) {
    refuse("field " + std::string(name) + ": '" + printable(value) +
           "' holds a control character (CR, LF or other): refused, as a header injection would be");
  } else if (std::any_of(std::begin(kShoalsFields), std::end(kShoalsFields),
                         [&](std::string_view own) { return iequals(name, own); })) {
    refuse("field " + std::string(name) + " is shoal's to write: it frames the message");
  } else if (iequals(name, "content-type")) {
    content_type_ = v;
  } else if (iequals(name, "server")) {
    server_ = v;
  } else if (iequals(name, "connection")) {
    if (iequals(v, "close")) close_ = true;
    else refuse("Connection: '" + printable(v) + "': a handler may only ask for \"close\"; shoal decides keep-alive");
  } else if (count_ == kMaxFields) {
    refuse("more than " + std::to_string(kMaxFields) + " fields");
  } else {
    fields_[count_++] = {name, v};
  }
  return *this;
}

void Response::refuse(std::string why) {
  if (problem_.empty()) problem_ = std::move(why);
}

bool Responder::alive() const { return server_->awaiting(slot_, serial_) != nullptr; }

event_base* Responder::loop() const { return server_->base(); }

namespace {

constexpr size_t kReadBufferBytes = 64 * 1024;

// The i-th of n, spread evenly from 0 to the whole window.
Millis spread_offset(size_t i, size_t n, Millis window) {
  return n > 1 ? Millis(window.count() * static_cast<int64_t>(i) / static_cast<int64_t>(n - 1)) : Millis(0);
}

constexpr size_t kAccessLogFlushBytes = 32 * 1024;
constexpr timeval kAccessLogFlushInterval{1, 0};
constexpr timeval kAcceptRetry{0, 100'000};
constexpr timeval kLinger{2, 0};

RouteEntry make_entry(RouteEntry::Kind kind, const std::string& path, bool prefix = false) {
  RouteEntry entry;
  entry.kind = kind;
  entry.path = path;
  entry.prefix = prefix;
  return entry;
}

}  // namespace

HttpServer::HttpServer(event_base* base, const Config& config, const Application& app, int access_log_fd,
                       std::string identity)
    : base_(base), config_(config), app_(app), access_log_fd_(access_log_fd), identity_(std::move(identity) + "\n"),
      read_buffer_(kReadBufferBytes) {
  work_pool_ = std::make_unique<WorkPool>();
  keepalive_list_ = std::make_unique<KeepaliveList>(base_, config_.http.keepalive_timeout);
  // Common timeouts: libevent keeps same-length timers in a queue instead of its heap, so
  // arming a connection's request timer costs O(1).
  timeval header = to_timeval(config.http.header_timeout);
  header_tv_ = event_base_init_common_timeout(base_, &header);
  linger_tv_ = event_base_init_common_timeout(base_, &kLinger);
  timeval body = to_timeval(config.http.body_timeout);
  timeval send = to_timeval(config.http.send_timeout);
  body_tv_ = event_base_init_common_timeout(base_, &body);
  send_tv_ = event_base_init_common_timeout(base_, &send);

  auto add = [&](RouteEntry entry) {
    size_t index = routes_.size();
    if (entry.prefix) prefix_routes_.push_back(index);
    else exact_routes_.insert(entry.path, index);
    routes_.push_back(std::move(entry));
  };
  if (!config.health.liveness_path.empty())
    add(make_entry(RouteEntry::Kind::Liveness, config.health.liveness_path));
  if (!config.health.readiness_path.empty())
    add(make_entry(RouteEntry::Kind::Readiness, config.health.readiness_path));
  for (const RouteConfig& route : config.routes) {
    RouteEntry entry = make_entry(RouteEntry::Kind::Fixed, route.path);
    entry.config = &route;
    if (route.kind == RouteConfig::Kind::Echo) entry.kind = RouteEntry::Kind::Echo;
    if (route.kind == RouteConfig::Kind::Info) entry.kind = RouteEntry::Kind::Info;
    if (route.kind == RouteConfig::Kind::Static) {
      entry.kind = RouteEntry::Kind::Static;
      entry.prefix = true;
      entry.root_fd = ::open(route.root.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (entry.root_fd < 0)
        spdlog::error("open({}) for static route {} failed: {}", route.root, route.path, errno_text(errno));
    }
    add(std::move(entry));
  }
  // Application handlers come after the config's routes: a path declared in both is served
  // by the config, which the operator controls.
  for (const Application::Route& route : app.routes()) {
    bool taken = route.prefix ? std::any_of(prefix_routes_.begin(), prefix_routes_.end(),
                                            [&](size_t i) { return routes_[i].path == route.path; })
                              : exact_routes_.find(route.path) != ExactRoutes::kNone;
    if (taken) {
      spdlog::warn("application route {} is shadowed by the config's route of the same path", route.path);
      continue;
    }
    RouteEntry entry = make_entry(RouteEntry::Kind::App, route.path, route.prefix);
    entry.handler = &route.handler;
    add(std::move(entry));
  }
  for (RouteEntry& entry : routes_) {
    if (entry.kind != RouteEntry::Kind::Fixed) continue;
    const RouteConfig& r = *entry.config;
    auto render = [&](bool keep, std::string& out, size_t& date_at, size_t& head_bytes) {
      out = "HTTP/1.1 " + std::to_string(r.status) + " " + std::string(reason_phrase(r.status)) +
            "\r\nServer: shoal\r\nDate: ";
      date_at = out.size();
      out += std::string(29, ' ');
      if (!r.content_type.empty()) out += "\r\nContent-Type: " + r.content_type;
      if (r.status != 204 && r.status != 304) out += "\r\nContent-Length: " + std::to_string(r.body.size());
      out += keep ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
      head_bytes = out.size();
      out += r.body;
    };
    render(true, entry.rendered.keep_alive, entry.rendered.keep_alive_date_at, entry.rendered.keep_alive_head_bytes);
    render(false, entry.rendered.close, entry.rendered.close_date_at, entry.rendered.close_head_bytes);
  }
  std::sort(prefix_routes_.begin(), prefix_routes_.end(),
            [&](size_t a, size_t b) { return routes_[a].path.size() > routes_[b].path.size(); });

  date_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) { static_cast<HttpServer*>(self)->renew_date(); }, this);
  renew_date();

  if (access_log_fd_ >= 0) {
    // Its working size from the start: appending a line never reallocates (a line longer than
    // the slack, from a long target, grows it once).
    access_buffer_.reserve(kAccessLogFlushBytes + 16 * 1024);
    access_flush_timer_ = event_new(base_, -1, EV_PERSIST, [](evutil_socket_t, short, void* self) {
      static_cast<HttpServer*>(self)->flush_access_log();
    }, this);
    event_add(access_flush_timer_, &kAccessLogFlushInterval);
  }
}

HttpServer::~HttpServer() {
  for (auto& slot : slots_) slot.reset();  // closes any connection still open
  close_listeners();
  for (const RouteEntry& route : routes_)
    if (route.root_fd >= 0) ::close(route.root_fd);
  flush_access_log();
  if (statm_fd_ >= 0) ::close(statm_fd_);
  for (event* ev : {accept_retry_, drain_timer_, drained_event_, access_flush_timer_, notice_timer_, stream_grace_timer_,
                    date_timer_})
    if (ev) event_free(ev);
}

bool HttpServer::listen(const std::vector<int>& fds, std::string& err) {
  listeners_.reserve(fds.size());
  for (size_t i = 0; i < fds.size(); ++i) {
    int fd = fds[i];
    // The fds come in the config's listen order (socket activation too).
    ProxyProtocol proxy = i < config_.server.listen.size() ? config_.server.listen[i].proxy_protocol : ProxyProtocol::Off;
    bool metrics = i < config_.server.listen.size() && config_.server.listen[i].metrics;
    // Sockets passed in (systemd, a launcher) may be blocking; libevent accepts until EAGAIN, and
    // a blocking accept would then hang this worker whenever another one won the connection.
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      err = "fcntl(fd " + std::to_string(fd) + ", O_NONBLOCK) failed: " + errno_text(errno);
      return false;
    }
    // The socket is already listening (the master's); the queue is shared by every worker.
    listeners_.push_back({fd, nullptr, proxy, this, metrics, bound_address(fd)});
    Listener& listener = listeners_.back();
    listener.ev = event_new(base_, fd, EV_READ | EV_PERSIST, on_acceptable, &listener);
    if (!listener.ev || event_add(listener.ev, nullptr) != 0) {
      err = "event_add(listening fd " + std::to_string(fd) + ") failed";
      if (listener.ev) event_free(listener.ev);
      listeners_.pop_back();
      return false;
    }
  }
  accepting_ = true;
  return true;
}

void HttpServer::set_accepting(bool on) {
  if (on == accepting_) return;
  accepting_ = on;
  for (const Listener& listener : listeners_) on ? event_add(listener.ev, nullptr) : event_del(listener.ev);
}

void HttpServer::close_listeners() {
  for (const Listener& listener : listeners_) {
    event_free(listener.ev);
    ::close(listener.fd);
  }
  listeners_.clear();
}

// One connection per wake-up, as nginx does with multi_accept off: accepting until EAGAIN would
// cost a failed accept4 per wake-up, and with several workers on one queue it would let one of
// them take a whole burst. The listener stays readable while connections wait, so the loop comes
// back at once for the next one, between the other connections' events.
void HttpServer::on_acceptable(evutil_socket_t fd, short, void* arg) {
  auto* listener = static_cast<Listener*>(arg);
  HttpServer* server = listener->server;
  sockaddr_storage peer;
  socklen_t len = sizeof peer;
  int client = accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (client >= 0) {
    if (server->counters_ && !listener->metrics) server->counters_->accepted.add(1);
    return server->adopt(client, reinterpret_cast<sockaddr*>(&peer), len, listener->proxy, listener->metrics);
  }
  int err = errno;
  if (err == EAGAIN || err == EWOULDBLOCK || err == EINTR || err == ECONNABORTED || err == EPROTO) return;
  server->accept_failed(err);
}

void HttpServer::accept_failed(int err) {
  // EMFILE, ENFILE, ENOBUFS: pause accepting briefly instead of spinning on a ready listener.
  int64_t now = monotonic_ms();
  if (now - last_accept_error_log_ms_ >= 1000) {
    spdlog::error("accept() failed: {}; pausing accepts for 100ms", errno_text(err));
    last_accept_error_log_ms_ = now;
  }
  set_accepting(false);
  if (!accept_retry_)
    accept_retry_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
      auto* s = static_cast<HttpServer*>(self);
      if (!s->draining_ && !s->paused_at_limit_) s->set_accepting(true);
    }, this);
  evtimer_add(accept_retry_, &kAcceptRetry);
}

void HttpServer::proxy_header_refused(std::string_view peer, std::string_view why) {
  ++proxy_refused_;
  int64_t now = monotonic_ms();
  if (now - last_proxy_log_ms_ < 1000) return;  // one line a second, with the count
  last_proxy_log_ms_ = now;
  spdlog::warn("closed the connection from {} without a response: {} ({} so far)", peer, why, proxy_refused_);
}

void HttpServer::adopt(int fd, const sockaddr* addr, socklen_t addr_len, ProxyProtocol proxy, bool metrics_only) {
  uint32_t slot;
  if (!free_slots_.empty()) {
    slot = free_slots_.back();
    free_slots_.pop_back();
  } else {
    slot = static_cast<uint32_t>(slots_.size());
    slots_.push_back(std::make_unique<Connection>(*this, slot));
  }
  ++live_;
  if (live_ >= static_cast<size_t>(config_.http.max_connections) && accepting_) {
    spdlog::warn("max_connections ({}) reached; not accepting until a connection closes", config_.http.max_connections);
    paused_at_limit_ = true;
    set_accepting(false);
  }
  slots_[slot]->open(fd, addr, addr_len, proxy, metrics_only);
}

void HttpServer::refresh_gauges() {
  if (!counters_) return;
  uint64_t by_state[3] = {};
  for (const auto& c : slots_)
    if (c->is_open() && !c->metrics_only()) ++by_state[c->gauge_state()];  // scrapes are not clients
  counters_->reading.set(by_state[0]);
  counters_->writing.set(by_state[1]);
  counters_->idle.set(by_state[2]);
  rusage usage{};
  if (getrusage(RUSAGE_SELF, &usage) == 0) counters_->cpu_us.set(cpu_microseconds(usage));
  if (statm_fd_ < 0) statm_fd_ = ::open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  char text[128];
  ssize_t n = statm_fd_ >= 0 ? pread(statm_fd_, text, sizeof text - 1, 0) : -1;
  if (n > 0) {
    text[n] = '\0';
    unsigned long pages = 0, resident = 0;
    if (sscanf(text, "%lu %lu", &pages, &resident) == 2)
      counters_->rss_bytes.set(static_cast<uint64_t>(resident) * static_cast<uint64_t>(sysconf(_SC_PAGESIZE)));
  }
}

std::string_view HttpServer::metrics_page() {
  if (!snapshot_) snapshot_ = std::make_unique<metrics::Snapshot>();
  refresh_gauges();  // this worker's own figures as of now
  std::vector<metrics::ListenQueue> queues;
  for (const Listener& l : listeners_) {
    tcp_info info{};
    socklen_t len = sizeof info;
    // For a listening TCP socket the kernel reports its accept queue: tcpi_unacked is its
    // length, tcpi_sacked its limit (the backlog).
    if (getsockopt(l.fd, IPPROTO_TCP, TCP_INFO, &info, &len) == 0 && info.tcpi_state == TCP_LISTEN)
      queues.push_back({l.address, info.tcpi_unacked, info.tcpi_sacked});
  }
  if (!metrics_region_ || !metrics::read(*metrics_region_, *snapshot_)) {
    metrics_text_ = "# shoal: the metrics region could not be read consistently\n";
    return metrics_text_;
  }
  metrics::render(*snapshot_, SHOAL_VERSION, queues, metrics_text_);
  return metrics_text_;
}

void HttpServer::release(Connection& connection) {
  free_slots_.push_back(connection.slot());
  --live_;
  if (paused_at_limit_ && live_ < static_cast<size_t>(config_.http.max_connections)) {
    paused_at_limit_ = false;
    if (!draining_ && !listeners_.empty()) set_accepting(true);
  }
  maybe_drained();
}

Connection* HttpServer::streaming(uint32_t slot, uint64_t serial) const {
  if (slot >= slots_.size()) return nullptr;
  Connection* c = slots_[slot].get();
  return c->streaming(serial) ? c : nullptr;
}

Connection* HttpServer::awaiting(uint32_t slot, uint64_t serial) const {
  if (slot >= slots_.size()) return nullptr;
  Connection* c = slots_[slot].get();
  return c->awaiting(serial) ? c : nullptr;
}

void HttpServer::ExactRoutes::insert(std::string_view path, size_t index) {
  if (find(path) != kNone) return;
  last_ = kNone;  // slots move
  if (2 * (count_ + 1) > slots_.size()) {
    std::vector<Slot> old(slots_.size() * 2);
    old.swap(slots_);
    count_ = 0;
    for (Slot& slot : old)
      if (slot.index != kNone) insert(slot.path, slot.index);
  }
  const uint64_t h = hash(path);
  const size_t mask = slots_.size() - 1;
  size_t at = h & mask;
  while (slots_[at].index != kNone) at = (at + 1) & mask;
  slots_[at] = {h, index, std::string(path)};
  ++count_;
}

size_t HttpServer::ExactRoutes::find(std::string_view path) const {
  if (last_ != kNone) {  // clients ask for the same paths again and again: no hash for those
    const Slot& slot = slots_[last_];
    if (equal_bytes(slot.path, path)) return slot.index;
  }
  const uint64_t h = hash(path);
  const size_t mask = slots_.size() - 1;
  for (size_t at = h & mask;; at = (at + 1) & mask) {
    const Slot& slot = slots_[at];
    if (slot.index == kNone) return kNone;
    if (slot.hash == h && equal_bytes(slot.path, path)) {
      last_ = at;
      return slot.index;
    }
  }
}

const RouteEntry* HttpServer::route(std::string_view path) const {
  if (size_t index = exact_routes_.find(path); index != ExactRoutes::kNone) return &routes_[index];
  for (size_t index : prefix_routes_)
    if (path.starts_with(routes_[index].path)) return &routes_[index];
  return nullptr;
}

bool HttpServer::valid_authority(std::string_view authority) {
  if (authority.empty()) return true;  // HTTP/1.0 without Host
  if (equal_bytes(authority, {known_authority_, known_authority_length_})) return true;
  if (!is_authority(authority)) return false;
  if (authority.size() <= sizeof known_authority_) {
    memcpy(known_authority_, authority.data(), authority.size());
    known_authority_length_ = authority.size();
  }
  return true;
}

std::string_view HttpServer::format_second(SecondText& cache, time_t second, bool local, const char* format) {
  if (second != cache.second) {
    cache.second = second;
    tm parts;
    if (local) localtime_r(&second, &parts);
    else gmtime_r(&second, &parts);
    cache.length = strftime(cache.text, sizeof cache.text, format, &parts);
  }
  return {cache.text, cache.length};
}

std::string_view HttpServer::format_second(SecondText& cache, bool local, const char* format) {
  timeval now;
  event_base_gettimeofday_cached(base_, &now);
  return format_second(cache, now.tv_sec, local, format);
}

void HttpServer::renew_date() {
  timeval now;
  evutil_gettimeofday(&now, nullptr);
  format_second(date_, now.tv_sec, false, "%a, %d %b %Y %H:%M:%S GMT");
  // Again at the next second's start (at least 1 us on: a timer a little early formats the same
  // second and comes back at once).
  timeval next{0, static_cast<suseconds_t>(1'000'000 - now.tv_usec)};
  evtimer_add(date_timer_, &next);
}

std::string_view HttpServer::log_time() { return format_second(log_time_, true, "%d/%b/%Y:%H:%M:%S %z"); }

std::string_view HttpServer::rfc3339_now() {
  // The second (and its offset, "+0100") once a second; the milliseconds of each call.
  std::string_view second = format_second(rfc3339_, true, "%Y-%m-%dT%H:%M:%S%z");
  timeval now;
  event_base_gettimeofday_cached(base_, &now);
  if (second.size() < 5 || second.size() + 5 > sizeof rfc3339_text_) return second;
  const size_t stamp = second.size() - 5;  // "2026-12-01T15:04:05" before "+0100"
  char* p = rfc3339_text_;
  memcpy(p, second.data(), stamp);
  p += stamp;
  const int ms = static_cast<int>(now.tv_usec / 1000);
  *p++ = '.', *p++ = static_cast<char>('0' + ms / 100), *p++ = static_cast<char>('0' + ms / 10 % 10),
  *p++ = static_cast<char>('0' + ms % 10);
  memcpy(p, second.data() + stamp, 3);  // "+01"
  p += 3;
  *p++ = ':';
  memcpy(p, second.data() + stamp + 3, 2);  // "00"
  p += 2;
  return {rfc3339_text_, static_cast<size_t>(p - rfc3339_text_)};
}

std::string_view HttpServer::next_request_id() {
  if (request_id_prefix_ == 0) {
    // Random per worker start, so that ids of different workers and starts do not collide.
    if (getrandom(&request_id_prefix_, sizeof request_id_prefix_, 0) != sizeof request_id_prefix_ ||
        request_id_prefix_ == 0)
      request_id_prefix_ = (static_cast<uint64_t>(monotonic_us()) ^ (static_cast<uint64_t>(getpid()) << 40)) | 1;
  }
  int n = snprintf(request_id_, sizeof request_id_, "%016llx-%llx", static_cast<unsigned long long>(request_id_prefix_),
                   static_cast<unsigned long long>(++request_ids_));
  return {request_id_, static_cast<size_t>(n)};
}

std::string_view HttpServer::rendered(const RouteEntry& route, bool keep_alive, bool head) {
  std::string_view today = date();
  RenderedResponse& r = route.rendered;
  if (r.date_second != date_.second) {
    r.date_second = date_.second;
    r.keep_alive.replace(r.keep_alive_date_at, today.size(), today);
    r.close.replace(r.close_date_at, today.size(), today);
  }
  const std::string& bytes = keep_alive ? r.keep_alive : r.close;
  return {bytes.data(), head ? (keep_alive ? r.keep_alive_head_bytes : r.close_head_bytes) : bytes.size()};
}

void HttpServer::access_log_written() {
  if (access_buffer_.size() >= kAccessLogFlushBytes) flush_access_log();
}

bool HttpServer::flush_access_log() {
  bool ok = true;
  size_t done = 0;
  while (access_log_fd_ >= 0 && done < access_buffer_.size()) {
    ssize_t n = ::write(access_log_fd_, access_buffer_.data() + done, access_buffer_.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      spdlog::error("writing the access log failed: {}; {} bytes dropped", errno_text(errno),
                    access_buffer_.size() - done);
      ok = false;
      break;
    }
    done += static_cast<size_t>(n);
  }
  access_buffer_.clear();
  return ok;
}

int64_t HttpServer::now_ms() const {
  timeval now;
  event_base_gettimeofday_cached(base_, &now);
  return int64_t{now.tv_sec} * 1000 + now.tv_usec / 1000;
}

HttpServer::InFlight HttpServer::in_flight() const {
  InFlight out;
  const Connection* oldest = nullptr;
  for (const auto& slot : slots_) {
    if (!slot->in_flight()) continue;
    ++out.requests;
    if (!oldest || slot->request_started_ms() < oldest->request_started_ms()) oldest = slot.get();
  }
  if (oldest) {
    out.oldest_age_ms = std::max<int64_t>(0, now_ms() - oldest->request_started_ms());
    out.oldest = oldest->describe_request();
  }
  return out;
}

void HttpServer::drain(Millis delay, std::function<void()> on_drained, Millis deadline_in) {
  if (!ready_) return;  // already draining: the first request decides
  ready_ = false;
  on_drained_ = std::move(on_drained);
  const auto& shutdown = config_.shutdown;
  drain_started_ms_ = monotonic_ms();
  deadline_at_ms_ = drain_started_ms_ + (deadline_in.count() > 0 ? deadline_in : shutdown.timeout).count();
  streams_end_at_ms_ = std::min(drain_started_ms_ + shutdown.stream_grace.count(), deadline_at_ms_);
  // Streams and long-polls are told (or, streams that did not ask, ended) spread evenly over the
  // window, so that their clients do not all reconnect at once; new ones are told at once.
  std::vector<Connection*> told;
  for (auto& slot : slots_)
    if (slot->wants_drain_notice()) told.push_back(slot.get());
  for (size_t i = 0; i < told.size(); ++i)
    schedule_drain_notice(*told[i], spread_offset(i, told.size(), shutdown.stream_close_spread));
  if (!told.empty())
    spdlog::info("draining: telling {} stream(s) and long-poll(s) over {}; streams still open in {} are ended",
                 told.size(), format_duration(shutdown.stream_close_spread),
                 format_duration(Millis(streams_end_at_ms_ - drain_started_ms_)));
  stream_grace_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    static_cast<HttpServer*>(self)->end_streams("at [shutdown] stream_grace");
  }, this);
  timeval grace = to_timeval(Millis(streams_end_at_ms_ - drain_started_ms_));
  evtimer_add(stream_grace_timer_, &grace);
  for (const auto& fn : app_.drain_callbacks()) {
    try {
      fn(drain_notice());
    } catch (const std::exception& e) {
      spdlog::error("an on_drain callback threw: {}", e.what());
    }
  }
  if (delay.count() == 0) return begin_drain();
  spdlog::info("readiness now 503; still accepting for drain_delay {}", format_duration(delay));
  drain_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
    static_cast<HttpServer*>(self)->begin_drain();
  }, this);
  timeval tv = to_timeval(delay);
  evtimer_add(drain_timer_, &tv);
}

DrainNotice HttpServer::drain_notice() const {
  const int64_t now = monotonic_ms();
  DrainNotice notice;
  notice.streams_end_in = Millis(std::max<int64_t>(0, streams_end_at_ms_ - now));
  notice.deadline_in = Millis(std::max<int64_t>(0, deadline_at_ms_ - now));
  notice.still_accepting = !draining_;
  return notice;
}

size_t HttpServer::streams_open() const {
  size_t n = 0;
  for (const auto& slot : slots_) n += slot->streaming();
  return n;
}

void HttpServer::schedule_drain_notice(Connection& connection, Millis after) {
  const Notice notice{monotonic_ms() + after.count(), connection.slot(), connection.serial()};
  // Kept in due order: appended in order at the drain's start, at "now" afterwards.
  auto at = std::upper_bound(notices_.begin() + static_cast<std::ptrdiff_t>(next_notice_), notices_.end(), notice,
                             [](const Notice& a, const Notice& b) { return a.due_ms < b.due_ms; });
  notices_.insert(at, notice);
  if (!notice_timer_)
    notice_timer_ = evtimer_new(base_, [](evutil_socket_t, short, void* self) {
      static_cast<HttpServer*>(self)->deliver_drain_notices();
    }, this);
  timeval tv = to_timeval(Millis(std::max<int64_t>(0, notices_[next_notice_].due_ms - monotonic_ms())));
  evtimer_add(notice_timer_, &tv);
}

void HttpServer::deliver_drain_notices() {
  const int64_t now = monotonic_ms();
  while (next_notice_ < notices_.size() && notices_[next_notice_].due_ms <= now) {
    const Notice due = notices_[next_notice_++];
    Connection* c = slots_[due.slot].get();
    if (c->is_open() && c->serial() == due.serial) c->drain_notice(drain_notice());
  }
  if (next_notice_ == notices_.size()) {
    notices_.clear();
    next_notice_ = 0;
    return;
  }
  timeval tv = to_timeval(Millis(std::max<int64_t>(1, notices_[next_notice_].due_ms - now)));
  evtimer_add(notice_timer_, &tv);
}

void HttpServer::end_streams(const char* why) {
  size_t ended = 0;
  for (auto& slot : slots_) {
    if (!slot->streaming()) continue;
    slot->stream_end();
    ++ended;
  }
  if (ended) spdlog::info("draining: ended {} stream(s) still open {}", ended, why);
}

void HttpServer::hurry() {
  if (ready_) return;
  spdlog::warn("draining cut short: too many generations draining; open streams end now");
  streams_end_at_ms_ = monotonic_ms();
  // Those not told yet are told now, with no time left, and may end themselves; the rest end here.
  for (auto& slot : slots_)
    if (slot->wants_drain_notice()) slot->drain_notice(drain_notice());
  end_streams("as the drain was cut short");
  notices_.clear();
  next_notice_ = 0;
  if (notice_timer_) evtimer_del(notice_timer_);
}

void HttpServer::begin_drain() {
  draining_ = true;
  // Take what is already queued before closing: once the last copy of a listening socket
  // closes, connections still in its queue are reset.
  if (accepting_) {
    for (const Listener& listener : listeners_) {
      int fd = listener.fd;
      sockaddr_storage peer;
      socklen_t len = sizeof peer;
      int client;
      while ((client = accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        adopt(client, reinterpret_cast<sockaddr*>(&peer), len, listener.proxy);
        len = sizeof peer;
      }
    }
  }
  close_listeners();  // our copies
  accepting_ = false;
  InFlight now = in_flight();
  spdlog::info("draining: listeners closed; {} request(s) in flight on {} connection(s){}", now.requests, live_,
               now.requests ? ", oldest " + now.oldest + " for " + std::to_string(now.oldest_age_ms) + " ms" : "");
  // Idle keep-alive connections close after idle_grace; spread over idle_close_spread when set.
  std::vector<Connection*> idle;
  for (auto& slot : slots_)
    if (slot->idle()) idle.push_back(slot.get());
  // (Connections with a request under way finish it first; wait_idle() then calls on_drain.)
  for (size_t i = 0; i < idle.size(); ++i) idle[i]->on_drain(spread_offset(i, idle.size(), config_.shutdown.idle_close_spread));
  maybe_drained();
}

void HttpServer::maybe_drained() {
  if (!draining_ || live_ != 0 || !on_drained_) return;
  // Run from the loop, not from inside the connection that just closed. Checked again there:
  // the count may have been zero only for a moment (the first connection begin_drain took from
  // the queue answered and closed at once, before it took the next ones).
  if (!drained_event_)
    drained_event_ = event_new(base_, -1, 0, [](evutil_socket_t, short, void* self) {
      auto* s = static_cast<HttpServer*>(self);
      if (s->live_ != 0) return;  // the last of them to close calls maybe_drained again
      if (auto done = std::move(s->on_drained_)) done();
    }, this);
  event_active(drained_event_, 0, 0);
}

}  // namespace shoal
