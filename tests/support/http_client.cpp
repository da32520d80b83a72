#include "support/http_client.hpp"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cctype>
#include <cstring>

namespace shoal::test {

ResponseParser::ResponseParser() {
  llhttp_settings_init(&settings_);
  settings_.on_header_field = on_header_field;
  settings_.on_header_value = on_header_value;
  settings_.on_headers_complete = on_headers_complete;
  settings_.on_body = on_body;
  settings_.on_message_complete = on_message_complete;
  llhttp_init(&parser_, HTTP_RESPONSE, &settings_);
  parser_.data = this;
}

bool ResponseParser::feed(std::string_view bytes) {
  return llhttp_execute(&parser_, bytes.data(), bytes.size()) == HPE_OK;
}

std::string ResponseParser::error() const { return llhttp_get_error_reason(&parser_) ?: ""; }

int ResponseParser::on_header_field(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<ResponseParser*>(p->data);
  if (self->in_value_) {
    self->current_.headers[self->field_] = self->value_;
    self->field_.clear(), self->value_.clear(), self->in_value_ = false;
  }
  for (size_t i = 0; i < n; ++i) self->field_ += static_cast<char>(std::tolower(static_cast<unsigned char>(at[i])));
  return 0;
}

int ResponseParser::on_header_value(llhttp_t* p, const char* at, size_t n) {
  auto* self = static_cast<ResponseParser*>(p->data);
  self->in_value_ = true;
  self->value_.append(at, n);
  return 0;
}

int ResponseParser::on_headers_complete(llhttp_t* p) {
  auto* self = static_cast<ResponseParser*>(p->data);
  if (self->in_value_) self->current_.headers[self->field_] = self->value_;
  self->field_.clear(), self->value_.clear(), self->in_value_ = false;
  self->current_.status = p->status_code;
  if (p->status_code >= 100 && p->status_code < 200) return 0;
  if (self->heads_pending_ > 0) {
    --self->heads_pending_;
    return 1;  // a response to HEAD has no body, whatever its Content-Length says
  }
  return p->status_code == 204 || p->status_code == 304 ? 1 : 0;  // never content (RFC 9112 6.3)
}

int ResponseParser::on_body(llhttp_t* p, const char* at, size_t n) {
  static_cast<ResponseParser*>(p->data)->current_.body.append(at, n);
  return 0;
}

int ResponseParser::on_message_complete(llhttp_t* p) {
  auto* self = static_cast<ResponseParser*>(p->data);
  if (self->current_.status >= 100 && self->current_.status < 200) {
    ++self->interim_;
  } else {
    self->current_.keep_alive = llhttp_should_keep_alive(p);
    self->responses_.push_back(std::move(self->current_));
  }
  self->current_ = {};
  return 0;
}

Client::Client(int port, const char* from) {
  fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd_ >= 0 && from) {
    sockaddr_in local{};
    local.sin_family = AF_INET;
    if (inet_pton(AF_INET, from, &local.sin_addr) != 1 || bind(fd_, reinterpret_cast<sockaddr*>(&local), sizeof local) != 0)
      close(fd_), fd_ = -1;
  }
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  sin.sin_port = htons(static_cast<uint16_t>(port));
  sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&sin), sizeof sin) != 0) close(fd_), fd_ = -1;
}

Client::Client(const std::string& unix_path) {
  fd_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  strncpy(sun.sun_path, unix_path.c_str(), sizeof sun.sun_path - 1);
  if (fd_ >= 0 && connect(fd_, reinterpret_cast<sockaddr*>(&sun), sizeof sun) != 0) close(fd_), fd_ = -1;
}

Client::~Client() {
  if (fd_ >= 0) close(fd_);
}

bool Client::send(std::string_view bytes) {
  while (!bytes.empty()) {
    ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

bool Client::read_some(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return false;
  pollfd pfd{fd_, POLLIN, 0};
  int ready = poll(&pfd, 1, static_cast<int>(left.count()));
  if (ready <= 0) return false;
  char buf[65536];
  ssize_t n = recv(fd_, buf, sizeof buf, 0);
  if (n < 0) {
    if (errno == EINTR || errno == EAGAIN) return true;
    eof_ = errno == ECONNRESET ? Eof::Reset : Eof::Clean;
    return false;
  }
  if (n == 0) {
    eof_ = Eof::Clean;
    return false;
  }
  raw_.append(buf, static_cast<size_t>(n));
  parser_.feed({buf, static_cast<size_t>(n)});
  return true;
}

std::vector<HttpResponse> Client::read(size_t count, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (fd_ >= 0 && parser_.responses().size() < count && eof_ == Eof::None && read_some(deadline)) {
  }
  std::vector<HttpResponse> out = std::move(parser_.responses());
  parser_.responses().clear();
  return out;
}

Eof Client::wait_close(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (fd_ >= 0 && eof_ == Eof::None && read_some(deadline)) {
  }
  return eof_;
}

HttpResponse get(int port, const std::string& path, std::chrono::milliseconds timeout) {
  Client client(port);
  if (!client.connected() || !client.send(request("GET", path, "Connection: close\r\n"))) return {};
  auto responses = client.read(1, timeout);
  return responses.empty() ? HttpResponse{} : responses.front();
}

std::string request(std::string_view method, std::string_view path, std::string_view extra, std::string_view body) {
  std::string out;
  out.append(method).append(" ").append(path).append(" HTTP/1.1\r\nHost: test\r\n").append(extra);
  if (!body.empty()) out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
  out.append("\r\n").append(body);
  return out;
}

}  // namespace shoal::test
