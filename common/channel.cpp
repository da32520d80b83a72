#include "common/channel.hpp"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cstring>

#include "common/sys.hpp"

namespace shoal {

const char* msg_name(MsgType type) {
  switch (type) {
    case MsgType::Ready: return "ready";
    case MsgType::Drain: return "drain";
    case MsgType::Stop: return "stop";
    case MsgType::Done: return "done";
    case MsgType::Status: return "status";
    case MsgType::Reopen: return "reopen";
    case MsgType::Reopened: return "reopened";
    case MsgType::StatsQuery: return "stats-query";
    case MsgType::Stats: return "stats";
    case MsgType::Heartbeat: return "heartbeat";
    case MsgType::Recycle: return "recycle";
    case MsgType::ConfigRejected: return "config-rejected";
  }
  return "unknown";
}

bool make_channel(int fds[2], std::string& err) {
  if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) != 0) {
    err = "socketpair(AF_UNIX, SOCK_SEQPACKET) failed: " + errno_text(errno);
    return false;
  }
  return true;
}

namespace {

bool send_with(int fd, Message msg, std::string_view text, const std::vector<int>& fds) {
  text = text.substr(0, kMaxMessageText);
  msg.text_length = static_cast<uint16_t>(text.size());
  iovec parts[2] = {{&msg, sizeof msg}, {const_cast<char*>(text.data()), text.size()}};
  msghdr hdr{};
  hdr.msg_iov = parts;
  hdr.msg_iovlen = text.empty() ? 1 : 2;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMessageFds)];
  if (!fds.empty()) {
    if (fds.size() > kMaxMessageFds) return false;
    hdr.msg_control = control;
    hdr.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
    cmsghdr* c = CMSG_FIRSTHDR(&hdr);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
    memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
  }
  ssize_t n;
  do n = sendmsg(fd, &hdr, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof msg + text.size());
}

}  // namespace

bool send_message(int fd, Message msg, std::string_view text) { return send_with(fd, msg, text, {}); }

bool send_message_fds(int fd, Message msg, const std::vector<int>& fds) { return send_with(fd, msg, {}, fds); }

RecvStatus recv_message(int fd, Message& msg, std::string* text, std::vector<int>* fds) {
  char buf[sizeof(Message) + kMaxMessageText];
  iovec part{buf, sizeof buf};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxMessageFds)];
  msghdr hdr{};
  hdr.msg_iov = &part;
  hdr.msg_iovlen = 1;
  hdr.msg_control = control;
  hdr.msg_controllen = sizeof control;
  ssize_t n;
  do n = recvmsg(fd, &hdr, MSG_DONTWAIT | MSG_TRUNC | MSG_CMSG_CLOEXEC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? RecvStatus::Again : RecvStatus::Closed;
  // Every fd that came along is either handed to the caller or closed: none may leak.
  std::vector<int> received;
  for (cmsghdr* c = CMSG_FIRSTHDR(&hdr); c; c = CMSG_NXTHDR(&hdr, c)) {
    if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
    size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
    for (size_t i = 0; i < count; ++i) {
      int received_fd;
      memcpy(&received_fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
      received.push_back(received_fd);
    }
  }
  bool whole = n >= static_cast<ssize_t>(sizeof msg) && n <= static_cast<ssize_t>(sizeof buf);
  if (whole) {
    memcpy(&msg, buf, sizeof msg);
    whole = n == static_cast<ssize_t>(sizeof msg + msg.text_length);
  }
  if (whole && fds) *fds = std::move(received);
  else for (int f : received) ::close(f);
  if (!whole) return RecvStatus::Closed;  // EOF (n == 0) or a malformed datagram
  if (text) text->assign(buf + sizeof msg, msg.text_length);
  return RecvStatus::Ok;
}

}  // namespace shoal
