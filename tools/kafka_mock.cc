// kafka-mock: librdkafka's in-process mock cluster as a standalone Kafka broker for the tests,
// the demo and the bench. Speaks the Kafka protocol on loopback; no JVM, no fixed ports.
//
//   $ kafka-mock --brokers=3 --topic=orders:6,payments:1
//   127.0.0.1:40123,127.0.0.1:38411,127.0.0.1:45007      <- first line: bootstrap list
//   down 2                                                <- stdin control commands
//   ok
//
// Threads: main runs a poll loop over stdin and a signalfd; the mock brokers run on librdkafka's
// own mock-cluster thread, which the rd_kafka_mock_* calls below hand work to and wait on.

#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "librdkafka/rdkafka.h"
#include "librdkafka/rdkafka_mock.h"

ABSL_FLAG(int, brokers, 3, "Number of mock brokers (ids 1..N).");
ABSL_FLAG(std::vector<std::string>, topic, {},
          "Topics to create at start, as name:partitions, comma-separated "
          "(e.g. orders:6,payments:1).");

namespace {

constexpr char kUsage[] = R"(Runs librdkafka's mock Kafka cluster on loopback.

Usage: kafka-mock [--brokers=N] [--topic=name:partitions[,name:partitions...]]

The first line on stdout is the bootstrap list (host:port,...). Then each line
on stdin is one command, answered by one line on stdout, "ok" or "error: ...":

  down <broker_id>            disconnect broker (ids 1..N) and refuse connections
  up <broker_id>              accept connections again
  down all | up all           the same for every broker
  topic <name> <partitions>   create a topic (replication factor min(N, 3))
  error produce <code> <count>
                              the next <count> Produce requests (any broker) fail
                              with Kafka error <code> (e.g. 10 MESSAGE_TOO_LARGE)
  quit                        destroy the cluster and exit 0

End of input on stdin does not stop the cluster (so it can run with stdin from
/dev/null); SIGTERM or SIGINT destroys the cluster and exits 0.

Topics a producer names that do not exist yet are auto-created by the mock
cluster with its default partition count.)";

struct RdKafkaDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct MockClusterDeleter {
  void operator()(rd_kafka_mock_cluster_t* mc) const { rd_kafka_mock_cluster_destroy(mc); }
};
using RdKafkaPtr = std::unique_ptr<rd_kafka_t, RdKafkaDeleter>;
using MockClusterPtr = std::unique_ptr<rd_kafka_mock_cluster_t, MockClusterDeleter>;

// The mock cluster needs a client handle for its bookkeeping; this producer is never used to
// produce. The cluster must be destroyed before it (declaration order in main does that).
RdKafkaPtr CreateHostHandle(std::string* error) {
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  char errstr[512];
  // Level 4 (warning) hides the notice that this handle has no bootstrap.servers.
  if (rd_kafka_conf_set(conf, "log_level", "4", errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
    rd_kafka_conf_destroy(conf);
    *error = errstr;
    return nullptr;
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);  // rd_kafka_new takes conf only on success
    *error = errstr;
  }
  return RdKafkaPtr(rk);
}

// Turns control lines into mock-cluster calls. Runs on the main thread; each rd_kafka_mock_* call
// is executed by the mock cluster's thread and waited for, so "ok" means it has taken effect.
class Controller {
 public:
  Controller(rd_kafka_mock_cluster_t* cluster, int brokers) : cluster_(cluster), brokers_(brokers) {}

  int ReplicationFactor() const { return std::min(brokers_, 3); }

  // Returns "" on success, else the reason.
  std::string CreateTopic(absl::string_view name, absl::string_view partitions_text) {
    int partitions = 0;
    if (name.empty()) return "empty topic name";
    if (!absl::SimpleAtoi(partitions_text, &partitions) || partitions < 1) {
      return absl::StrCat("bad partition count '", partitions_text, "'");
    }
    rd_kafka_resp_err_t err = rd_kafka_mock_topic_create(cluster_, std::string(name).c_str(),
                                                         partitions, ReplicationFactor());
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return rd_kafka_err2str(err);
    return "";
  }

  // One line in, one line of answer out ("ok" or "error: ...").
  std::string Handle(absl::string_view line, bool* quit) {
    std::vector<absl::string_view> words = absl::StrSplit(line, ' ', absl::SkipWhitespace());
    if (words.empty()) return "error: empty command";
    if (words[0] == "quit" && words.size() == 1) {
      *quit = true;
      return "ok";
    }
    if ((words[0] == "down" || words[0] == "up") && words.size() == 2) {
      // -1 addresses every broker (rdkafka_mock.h).
      int32_t id = -1;
      if (words[1] != "all" && (!absl::SimpleAtoi(words[1], &id) || id < 1 || id > brokers_)) {
        return absl::StrCat("error: broker id must be 1..", brokers_, " or 'all', got '",
                            words[1], "'");
      }
      rd_kafka_resp_err_t err = words[0] == "down" ? rd_kafka_mock_broker_set_down(cluster_, id)
                                                   : rd_kafka_mock_broker_set_up(cluster_, id);
      if (err != RD_KAFKA_RESP_ERR_NO_ERROR) return absl::StrCat("error: ", rd_kafka_err2str(err));
      return "ok";
    }
    if (words[0] == "topic" && words.size() == 3) {
      std::string error = CreateTopic(words[1], words[2]);
      return error.empty() ? "ok" : absl::StrCat("error: ", error);
    }
    if (words[0] == "error" && words.size() == 4 && words[1] == "produce") {
      int code = 0;
      int count = 0;
      if (!absl::SimpleAtoi(words[2], &code) || code <= 0) {
        return absl::StrCat("error: bad Kafka error code '", words[2], "'");
      }
      if (!absl::SimpleAtoi(words[3], &count) || count < 1) {
        return absl::StrCat("error: bad count '", words[3], "'");
      }
      // One error per request; the mock cluster answers the next `count` Produce requests
      // (API key 0) on any broker with it, whole request, every partition in it.
      std::vector<rd_kafka_resp_err_t> errors(static_cast<size_t>(count),
                                              static_cast<rd_kafka_resp_err_t>(code));
      rd_kafka_mock_push_request_errors_array(cluster_, /*ApiKey Produce=*/0, errors.size(),
                                              errors.data());
      return "ok";
    }
    return absl::StrCat("error: unknown command '", line,
                        "' (expected down|up <id|all>, topic <name> <partitions>, "
                        "error produce <code> <count>, quit)");
  }

 private:
  rd_kafka_mock_cluster_t* cluster_;
  int brokers_;
};

void Reply(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  // --help lists the flags of this file (the binary's name has '-', the file '_').
  absl::FlagsUsageConfig usage_config;
  usage_config.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "kafka_mock.cc");
  };
  absl::SetFlagsUsageConfig(usage_config);
  absl::ParseCommandLine(argc, argv);

  const int brokers = absl::GetFlag(FLAGS_brokers);
  if (brokers < 1) {
    std::fprintf(stderr, "kafka-mock: --brokers must be at least 1\n");
    return 2;
  }

  // Block the stop signals before librdkafka starts its threads, so they inherit the mask and
  // the signals reach only our signalfd, read in the poll loop (no work in a handler).
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  sigprocmask(SIG_BLOCK, &stop_signals, nullptr);
  const int signal_fd = signalfd(-1, &stop_signals, SFD_CLOEXEC);
  if (signal_fd < 0) {
    std::fprintf(stderr, "kafka-mock: signalfd: %s\n", std::strerror(errno));
    return 1;
  }

  std::string error;
  RdKafkaPtr host = CreateHostHandle(&error);
  if (host == nullptr) {
    std::fprintf(stderr, "kafka-mock: cannot create client handle: %s\n", error.c_str());
    return 1;
  }
  MockClusterPtr cluster(rd_kafka_mock_cluster_new(host.get(), brokers));
  if (cluster == nullptr) {
    std::fprintf(stderr, "kafka-mock: cannot create mock cluster\n");
    return 1;
  }
  Controller controller(cluster.get(), brokers);

  for (const std::string& spec : absl::GetFlag(FLAGS_topic)) {
    std::pair<std::string, std::string> name_partitions = absl::StrSplit(spec, ':');
    std::string topic_error = controller.CreateTopic(name_partitions.first, name_partitions.second);
    if (!topic_error.empty()) {
      std::fprintf(stderr, "kafka-mock: --topic=%s: %s\n", spec.c_str(), topic_error.c_str());
      return 2;
    }
  }

  Reply(rd_kafka_mock_cluster_bootstraps(cluster.get()));

  std::string pending;  // stdin bytes not yet ending in '\n'
  bool stdin_open = true;
  bool quit = false;
  while (!quit) {
    pollfd fds[2] = {{signal_fd, POLLIN, 0}, {stdin_open ? STDIN_FILENO : -1, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      std::fprintf(stderr, "kafka-mock: poll: %s\n", std::strerror(errno));
      return 1;
    }
    if (fds[0].revents & POLLIN) break;  // SIGTERM / SIGINT
    if (fds[1].revents & (POLLIN | POLLHUP | POLLERR)) {
      char buffer[4096];
      ssize_t n = read(STDIN_FILENO, buffer, sizeof(buffer));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) {
        // EOF: keep serving until a signal; the demo runs us with stdin from /dev/null.
        stdin_open = false;
        continue;
      }
      pending.append(buffer, static_cast<size_t>(n));
      size_t newline;
      while (!quit && (newline = pending.find('\n')) != std::string::npos) {
        std::string line = pending.substr(0, newline);
        pending.erase(0, newline + 1);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        Reply(controller.Handle(line, &quit));
      }
    }
  }

  cluster.reset();  // before the host handle it was created on
  host.reset();
  close(signal_fd);
  return 0;
}
