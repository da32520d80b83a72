#include "common/channel.hpp"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>

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
    case MsgType::StatsQuery: return "stats-query";
    case MsgType::Stats: return "stats";
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

bool send_message(int fd, Message msg, std::string_view text) {
  text = text.substr(0, kMaxMessageText);
  msg.text_length = static_cast<uint16_t>(text.size());
  iovec parts[2] = {{&msg, sizeof msg}, {const_cast<char*>(text.data()), text.size()}};
  msghdr hdr{};
  hdr.msg_iov = parts;
  hdr.msg_iovlen = text.empty() ? 1 : 2;
  ssize_t n;
  do n = sendmsg(fd, &hdr, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof msg + text.size());
}

RecvStatus recv_message(int fd, Message& msg, std::string* text) {
  char buf[sizeof(Message) + kMaxMessageText];
  ssize_t n;
  do n = recv(fd, buf, sizeof buf, MSG_DONTWAIT | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? RecvStatus::Again : RecvStatus::Closed;
  if (n == 0 || n < static_cast<ssize_t>(sizeof msg) || n > static_cast<ssize_t>(sizeof buf)) return RecvStatus::Closed;
  memcpy(&msg, buf, sizeof msg);
  if (n != static_cast<ssize_t>(sizeof msg + msg.text_length)) return RecvStatus::Closed;
  if (text) text->assign(buf + sizeof msg, msg.text_length);
  return RecvStatus::Ok;
}

}  // namespace shoal
