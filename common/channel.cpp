#include "common/channel.hpp"

#include <errno.h>
#include <sys/socket.h>

#include "common/sys.hpp"

namespace shoal {

const char* msg_name(MsgType type) {
  switch (type) {
    case MsgType::Ready: return "ready";
    case MsgType::Drain: return "drain";
    case MsgType::Stop: return "stop";
    case MsgType::Done: return "done";
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

bool send_message(int fd, const Message& msg) {
  ssize_t n;
  do n = send(fd, &msg, sizeof msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  while (n < 0 && errno == EINTR);
  return n == static_cast<ssize_t>(sizeof msg);
}

RecvStatus recv_message(int fd, Message& msg) {
  ssize_t n;
  do n = recv(fd, &msg, sizeof msg, MSG_DONTWAIT | MSG_TRUNC);
  while (n < 0 && errno == EINTR);
  if (n < 0) return (errno == EAGAIN || errno == EWOULDBLOCK) ? RecvStatus::Again : RecvStatus::Closed;
  if (n != static_cast<ssize_t>(sizeof msg)) return RecvStatus::Closed;
  return RecvStatus::Ok;
}

}  // namespace shoal
