// The master-worker channel: a SOCK_SEQPACKET socketpair carrying small typed messages: a
// 16-byte header, optionally followed by a short text (at most kMaxMessageText bytes).
// SEQPACKET keeps message boundaries and reports the peer's death as EOF, so a master that
// dies (even by SIGKILL) is noticed by its workers at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace shoal {

enum class MsgType : uint8_t {
  Ready = 1,  // worker -> master: accepting on every listener
  Drain = 2,  // master -> worker: stop accepting, finish what was accepted, exit; value = drain
              // delay in ms, value2 = ms until its kill deadline (0: its [shutdown] timeout);
              // flags kDrainHurry: the drain is cut short, open streams end now (sent again to
              // a worker already draining). A worker of protocol 1 ignores value2 and flags.

  Stop = 3,   // master -> worker: exit now, without draining
  Done = 4,   // worker -> master: drained; value = exit code it is about to return, value2 = failed hooks
  Status = 5, // worker -> master while draining: value = requests in flight, value2 = age of the
              // oldest in ms, text = its method and target ("GET /slow")
  Reopen = 6,      // master -> worker: the reopened log files come attached (SCM_RIGHTS); value bit 0:
                   // the log is among them, bit 1: the access log; in that order (SIGUSR1)
  StatsQuery = 7,  // master -> worker: send Stats now
  Stats = 8,       // worker -> master: value = open connections, value2 = requests served,
                   // text = requests in flight (decimal)
  Heartbeat = 9,   // worker -> master, every heartbeat_timeout / 4 (at most 1 s): the loop turns
  Recycle = 10,    // worker -> master: max_requests reached, replace me; value2 = requests served
  ConfigRejected = 11,  // a new master -> the old one, on upgrade: its config is invalid; text = the first error
  Reopened = 12,   // worker -> master: it took the files a Reopen brought (`shoal reopen` waits for it)
};

// The channel's protocol: this list of messages and their meanings. Bumped whenever one changes
// meaning; a master adopts the workers of an upgrade in place only if it speaks their protocol,
// which the new program says beforehand (`shoal -t --can-adopt N`).
constexpr uint32_t kChannelProtocol = 1;
inline bool speaks_channel_protocol(uint32_t protocol) { return protocol == 1; }

// Drain's flags.
constexpr uint8_t kDrainHurry = 1;

// Reopen's value: which files come attached, in this order.
constexpr uint32_t kReopenLog = 1, kReopenAccessLog = 2;

constexpr size_t kMaxMessageText = 240;

const char* msg_name(MsgType type);

struct Message {
  MsgType type;
  uint8_t flags = 0;
  uint16_t text_length = 0;  // set by send_message
  uint32_t value = 0;   // meaning depends on type (Drain: drain delay in ms; Done: exit code)
  uint64_t value2 = 0;  // spare, for status figures
};
static_assert(sizeof(Message) == 16, "the channel's wire format is 16 bytes");

// Creates the pair non-blocking and close-on-exec. fds[0] stays in the master, fds[1] goes to the worker.
bool make_channel(int fds[2], std::string& err);

// Sends one message (text cut to kMaxMessageText) without blocking; false if the peer is gone or
// the buffer is full.
bool send_message(int fd, Message msg, std::string_view text = {});
// The same, with open fds attached (at most kMaxMessageFds); the receiver gets its own copies.
constexpr size_t kMaxMessageFds = 4;
bool send_message_fds(int fd, Message msg, const std::vector<int>& fds);

enum class RecvStatus { Ok, Again, Closed };
// Receives one message and its text; a malformed datagram counts as Closed (the peer is broken).
// Attached fds arrive close-on-exec in *fds; without fds, attached ones are closed unread.
RecvStatus recv_message(int fd, Message& msg, std::string* text = nullptr, std::vector<int>* fds = nullptr);

}  // namespace shoal
