// The `kafka-mock` binary (librdkafka's mock cluster) as a child process, steered over its stdin;
// the default KafkaControl (tests/support/kafka_control.h).
//
//   absl::StatusOr<std::unique_ptr<KafkaMockProcess>> kafka = KafkaMockProcess::Start();
//   ASSERT_TRUE(kafka.ok()) << kafka.status();
//   ASSERT_TRUE((*kafka)->CreateTopic("outbox.event.order", 3).ok());
//   Relay relay(/*brokers=*/(*kafka)->bootstrap());
//   ASSERT_TRUE((*kafka)->AllDown().ok());   // every broker refuses connections
//   ASSERT_TRUE((*kafka)->AllUp().ok());
//
// A separate process, not an in-process mock cluster, so the relay under test (also a separate
// process) can reach it, and so a broker outage never shares threads with the test.
//
// Used from one test thread; not thread-safe.
#ifndef OUTBOXD_TESTS_SUPPORT_KAFKA_MOCK_PROCESS_H_
#define OUTBOXD_TESTS_SUPPORT_KAFKA_MOCK_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "tests/support/kafka_control.h"

namespace outboxd::test {

class KafkaMockProcess : public KafkaControl {
 public:
  // Starts OUTBOXD_BIN_DIR/kafka-mock --brokers=N (broker ids 1..N) and waits for its bootstrap
  // list. Topics that a producer names are auto-created with the mock cluster's default
  // partition count (4); CreateTopic first to choose another.
  static absl::StatusOr<std::unique_ptr<KafkaMockProcess>> Start(int brokers = 3);

  KafkaMockProcess(const KafkaMockProcess&) = delete;
  KafkaMockProcess& operator=(const KafkaMockProcess&) = delete;
  // SIGTERM, then SIGKILL if it has not exited within a few seconds.
  ~KafkaMockProcess() override;

  // "127.0.0.1:port,127.0.0.1:port,..." for bootstrap.servers.
  const std::string& bootstrap() const override { return bootstrap_; }
  pid_t pid() const { return pid_; }

  // Sends one control line (see `kafka-mock --help`) and waits for its answer; an error unless
  // the answer is "ok".
  absl::Status Command(absl::string_view line) override;
  bool HasMockControl() const override { return true; }
  // Down: the broker drops its connections and refuses new ones; partition leadership stays.
  absl::Status BrokerDown(int id);
  absl::Status BrokerUp(int id);
  absl::Status AllDown() override;
  absl::Status AllUp() override;
  // Replication factor min(brokers, 3).
  absl::Status CreateTopic(absl::string_view name, int partitions) override;

 private:
  KafkaMockProcess(pid_t pid, int control_fd) : pid_(pid), control_fd_(control_fd) {}
  // The next line the child printed, without '\n'.
  absl::StatusOr<std::string> ReadLine(absl::Duration timeout);

  pid_t pid_;
  int control_fd_;       // our end of a socketpair that is the child's stdin and stdout
  std::string pending_;  // bytes read past the last line returned
  std::string bootstrap_;
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_KAFKA_MOCK_PROCESS_H_
