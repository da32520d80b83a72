// The master's control socket in-process: a reply never blocks the master's loop, even when the
// client does not read, and arrives whole once it does.
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <optional>

#include "master/control.hpp"
#include "support/shoal_process.hpp"

namespace shoal {
namespace {

using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

class ControlTest : public ::testing::Test {
 protected:
  void SetUp() override {
    base_ = event_base_new();
    server_.emplace(base_, [this](const std::string& command, ControlReply reply) {
      commands_.push_back(command);
      replies_.push_back(reply);
    });
    std::string err;
    path_ = dir_.path() + "/ctl";
    ASSERT_TRUE(server_->bind(path_, err)) << err;
    server_->start();
  }
  void TearDown() override {
    replies_.clear();
    server_.reset();
    event_base_free(base_);
  }

  int connect_client() {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    sockaddr_un sun{};
    sun.sun_family = AF_UNIX;
    strncpy(sun.sun_path, path_.c_str(), sizeof sun.sun_path - 1);
    EXPECT_EQ(connect(fd, reinterpret_cast<sockaddr*>(&sun), sizeof sun), 0);
    return fd;
  }

  // Turns the loop until `done` or 3 s.
  void turn_until(const std::function<bool()>& done) {
    auto deadline = Clock::now() + 3s;
    while (!done() && Clock::now() < deadline) {
      event_base_loop(base_, EVLOOP_NONBLOCK);
      poll(nullptr, 0, 1);
    }
  }

  event_base* base_ = nullptr;
  test::TempDir dir_;
  std::string path_;
  std::optional<ControlServer> server_;
  std::vector<std::string> commands_;
  std::vector<ControlReply> replies_;
};

TEST_F(ControlTest, AReplyLargerThanTheSocketTakesNeverBlocksAndArrivesWhole) {
  int fd = connect_client();
  ASSERT_EQ(send(fd, "status\n", 7, MSG_NOSIGNAL), 7);
  turn_until([&] { return !replies_.empty(); });
  ASSERT_EQ(commands_, std::vector<std::string>{"status"});

  std::string big(4 << 20, 'x');  // far more than a unix socket buffers
  auto began = Clock::now();
  replies_[0].send(big);
  EXPECT_LT(Clock::now() - began, 500ms);  // it was a 2 s blocking write
  EXPECT_FALSE(replies_[0].pending());
  replies_[0].send("a second answer is ignored");

  std::string got;
  auto deadline = Clock::now() + 5s;
  char buf[65536];
  while (Clock::now() < deadline) {
    event_base_loop(base_, EVLOOP_NONBLOCK);
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n > 0) got.append(buf, static_cast<size_t>(n));
    else if (n == 0) break;
    else poll(nullptr, 0, 1);
  }
  close(fd);
  ASSERT_EQ(got.size(), big.size() + 1);
  EXPECT_EQ(got, big + "\n");
}

TEST_F(ControlTest, AClientThatNeverReadsIsDroppedAndTheLoopGoesOn) {
  int fd = connect_client();
  ASSERT_EQ(send(fd, "status\n", 7, MSG_NOSIGNAL), 7);
  turn_until([&] { return !replies_.empty(); });
  ASSERT_EQ(replies_.size(), 1u);
  replies_[0].send(std::string(4 << 20, 'x'));
  replies_.clear();  // the handler forgets it; the pending write keeps the connection
  // Another client is served meanwhile.
  int other = connect_client();
  ASSERT_EQ(send(other, "reload\n", 7, MSG_NOSIGNAL), 7);
  turn_until([&] { return replies_.size() == 1; });
  ASSERT_EQ(commands_.back(), "reload");
  replies_[0].send("{\"code\":0}");
  char buf[64];
  pollfd pfd{other, POLLIN, 0};
  ASSERT_EQ(poll(&pfd, 1, 1000), 1);
  EXPECT_EQ(recv(other, buf, sizeof buf, 0), 11);
  close(other);
  // The silent client is closed at the 5 s write timeout: its end reads EOF after the bytes.
  auto deadline = Clock::now() + 8s;
  bool eof = false;
  std::vector<char> sink(1 << 16);
  while (!eof && Clock::now() < deadline) {
    event_base_loop(base_, EVLOOP_NONBLOCK);
    poll(nullptr, 0, 10);
    if (Clock::now() > deadline - 2s) {  // only start reading after the timeout has passed
      ssize_t n;
      while ((n = recv(fd, sink.data(), sink.size(), 0)) > 0) {}
      eof = n == 0;
    }
  }
  EXPECT_TRUE(eof);
  close(fd);
}

}  // namespace
}  // namespace shoal
