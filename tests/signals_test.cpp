// The operator's other signals, against the real binary: SIGTTIN and SIGTTOU change the worker
// count by one, SIGUSR1 reopens the log files after logrotate moved them away.
#include <signal.h>

#include <fstream>

#include "common/sys.hpp"
#include "support/server_fixture.hpp"

namespace shoal::test {
namespace {

using ::testing::HasSubstr;
using Signals = ServerTest;

TEST_F(Signals, TtinAddsAPinnedWorkerAndTtouTakesOneAwayButNeverTheLast) {
  start("workers = 2");
  auto cpus = allowed_cpus();
  auto original = workers();
  shoal_->signal(SIGTTIN);
  ASSERT_TRUE(wait_until([&] { return children_of(shoal_->pid()).size() == 3; }, 5s));
  ASSERT_TRUE(shoal_->wait_for_log("worker 2 pid=[0-9]+ of generation 1 ready", 5s));
  auto now = workers();
  ASSERT_EQ(now.count(2), 1u);
  EXPECT_EQ(cpus_allowed_list(now[2].first), std::to_string(cpus[2 % cpus.size()]));
  EXPECT_EQ(now[0].first, original[0].first);  // the others were not touched
  EXPECT_EQ(now[1].first, original[1].first);

  // One at a time: the kernel merges a signal sent while the same one is still pending.
  for (size_t taken = 1; taken <= 2; ++taken) {
    shoal_->signal(SIGTTOU);
    ASSERT_TRUE(shoal_->wait_for_log("SIGTTOU: worker", 5s, taken));
  }
  shoal_->signal(SIGTTOU);
  ASSERT_TRUE(shoal_->wait_for_log("SIGTTOU ignored: generation 1 has one worker, the fewest it can have", 5s));
  ASSERT_TRUE(wait_until([&] { return children_of(shoal_->pid()).size() == 1; }, 5s));
  EXPECT_EQ(children_of(shoal_->pid()), std::vector<pid_t>{original[0].first});
  for (int i = 0; i < 5; ++i) EXPECT_EQ(get(port_, "/hello").status, 200);

  // Given back, worker 1 gets its index and CPU again.
  shoal_->signal(SIGTTIN);
  ASSERT_TRUE(wait_until([&] { return children_of(shoal_->pid()).size() == 2; }, 5s));
  EXPECT_TRUE(shoal_->wait_for_log("SIGTTIN: adding worker 1 on CPU " + std::to_string(cpus[1 % cpus.size()]), 1s));
  expect_clean_log({"SIGTTOU ignored"});
}

TEST_F(Signals, Sigusr1ReopensTheLogAndTheAccessLogAfterRotation) {
  std::string config = write_config("workers = 2", "[log]\nfile = \"server.log\"\naccess_log = \"access.log\"\n");
  std::string log = dir_.path() + "/server.log", access = dir_.path() + "/access.log";
  // The harness's own output goes to the same file as the server's log.
  shoal_ = std::make_unique<ShoalProcess>(config, log);
  ASSERT_TRUE(shoal_->wait_ready());
  port_ = shoal_->wait_for_port();
  ASSERT_EQ(get(port_, "/hello?before").status, 200);
  ASSERT_TRUE(wait_until([&] { return read_file(access).find("/hello?before") != std::string::npos; }, 5s));

  std::filesystem::rename(log, log + ".1");  // what logrotate does
  std::filesystem::rename(access, access + ".1");
  shoal_->signal(SIGUSR1);
  ASSERT_TRUE(wait_until([&] {
    std::string text = read_file(log);
    return text.find("SIGUSR1: reopened the log files; 2 worker(s)") != std::string::npos &&
           occurrences(text, "] reopened the log files") == 2;
  }, 5s)) << read_file(log);
  ASSERT_EQ(get(port_, "/hello?after").status, 200);
  ASSERT_TRUE(wait_until([&] { return read_file(access).find("/hello?after") != std::string::npos; }, 5s));
  EXPECT_EQ(read_file(access).find("/hello?before"), std::string::npos);
  EXPECT_THAT(read_file(access + ".1"), HasSubstr("/hello?before"));
  EXPECT_EQ(read_file(access + ".1").find("/hello?after"), std::string::npos);
  EXPECT_THAT(read_file(log + ".1"), HasSubstr("generation 1 ready"));
}

}  // namespace
}  // namespace shoal::test
