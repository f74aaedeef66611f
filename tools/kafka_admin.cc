// kafka-admin: the few Kafka and port questions tests/kafka/kafka-cluster.sh asks, answered
// through librdkafka instead of a JVM tool (a JVM per question costs seconds on 2 cores).
//
//   $ kafka-admin free-ports 3              # three TCP ports on 127.0.0.1 the OS says are free
//   40123 38411 45007
//   $ kafka-admin ready --brokers=127.0.0.1:40123 --count=3 --node=2 --timeout=60s
//   $ kafka-admin leader --brokers=127.0.0.1:40123 --topic=orders --partition=0
//   2
//   $ kafka-admin records --brokers=127.0.0.1:40123 --topic_prefix=dbz.
//   240
//
// `ready` is a real Metadata request, repeated until the cluster lists at least --count brokers
// (KRaft lists only registered, unfenced brokers), --node among them if given, and then until a
// topic can be created and is led (the controller answers CreateTopics only once it has a quorum
// and a broker to place replicas on) when --probe_topic is given. --property adds a client
// property (security settings for a SASL listener).
//
// Threads: main only; every librdkafka call here waits with a timeout.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "librdkafka/rdkafka.h"

ABSL_FLAG(std::string, brokers, "", "bootstrap.servers");
ABSL_FLAG(int, count, 1, "ready: at least this many brokers in the metadata");
ABSL_FLAG(int, node, -1, "ready: this broker id among them");
ABSL_FLAG(std::string, probe_topic, "",
          "ready: also create this topic (replication factor --count) and wait until it has a "
          "leader");
ABSL_FLAG(absl::Duration, timeout, absl::Seconds(60), "how long to keep asking");
ABSL_FLAG(int, pid, 0, "ready: give up as soon as this process (the node's JVM) has exited");
ABSL_FLAG(std::string, topic, "", "leader: the topic");
ABSL_FLAG(int, partition, 0, "leader: the partition");
ABSL_FLAG(std::string, topic_prefix, "", "records: the topics whose names start with this");
ABSL_FLAG(std::vector<std::string>, property, {},
          "client properties as key=value (repeat the flag or separate with commas)");

namespace {

constexpr char kUsage[] = R"(Kafka and port questions for tests/kafka/kafka-cluster.sh.

  kafka-admin free-ports N
  kafka-admin ready --brokers=B [--count=N] [--node=ID] [--probe_topic=T] [--timeout=60s] [--pid=P]
  kafka-admin leader --brokers=B --topic=T [--partition=P]
  kafka-admin records --brokers=B --topic_prefix=P   records now in those topics (high - low
                                                     watermark, summed over their partitions)

Exit 0 when answered, 1 (with the reason on stderr) otherwise.)";

struct HandleDeleter {
  void operator()(rd_kafka_t* rk) const { rd_kafka_destroy(rk); }
};
struct MetadataDeleter {
  void operator()(const rd_kafka_metadata_t* md) const { rd_kafka_metadata_destroy(md); }
};
struct QueueDeleter {
  void operator()(rd_kafka_queue_t* q) const { rd_kafka_queue_destroy(q); }
};
struct NewTopicDeleter {
  void operator()(rd_kafka_NewTopic_t* t) const { rd_kafka_NewTopic_destroy(t); }
};
struct EventDeleter {
  void operator()(rd_kafka_event_t* e) const { rd_kafka_event_destroy(e); }
};
using Handle = std::unique_ptr<rd_kafka_t, HandleDeleter>;
using Metadata = std::unique_ptr<const rd_kafka_metadata_t, MetadataDeleter>;

// Binds N sockets to 127.0.0.1:0 at once (so the N ports differ) and prints what the OS chose.
// The ports are free when printed; the caller binds them soon after and retries on a clash.
int FreePorts(int n) {
  std::vector<int> fds;
  std::vector<std::string> ports;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof(addr);
    if (fd < 0 || bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      std::perror("kafka-admin free-ports");
      return 1;
    }
    fds.push_back(fd);
    ports.push_back(absl::StrCat(ntohs(addr.sin_port)));
  }
  for (int fd : fds) close(fd);
  std::printf("%s\n", absl::StrJoin(ports, " ").c_str());
  return 0;
}

Handle Connect(std::string* error) {
  char errstr[512];
  rd_kafka_conf_t* conf = rd_kafka_conf_new();
  std::vector<std::pair<std::string, std::string>> props = {
      {"bootstrap.servers", absl::GetFlag(FLAGS_brokers)},
      // Errors while the cluster is still coming up are expected; the answer is the exit code.
      {"log_level", "0"},
      {"reconnect.backoff.ms", "50"},
      {"reconnect.backoff.max.ms", "500"}};
  for (const std::string& p : absl::GetFlag(FLAGS_property)) {
    std::pair<std::string, std::string> kv = absl::StrSplit(p, absl::MaxSplits('=', 1));
    props.push_back(kv);
  }
  for (const auto& [k, v] : props) {
    if (rd_kafka_conf_set(conf, k.c_str(), v.c_str(), errstr, sizeof(errstr)) != RD_KAFKA_CONF_OK) {
      rd_kafka_conf_destroy(conf);
      *error = absl::StrCat(k, ": ", errstr);
      return nullptr;
    }
  }
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr));
  if (rk == nullptr) {
    rd_kafka_conf_destroy(conf);
    *error = errstr;
  }
  return Handle(rk);
}

// One Metadata request (all topics when topic is null).
Metadata Ask(rd_kafka_t* rk, rd_kafka_topic_t* topic, std::string* error) {
  const rd_kafka_metadata_t* md = nullptr;
  rd_kafka_resp_err_t err = rd_kafka_metadata(rk, topic == nullptr ? 1 : 0, topic, &md, 2000);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    *error = rd_kafka_err2str(err);
    return nullptr;
  }
  return Metadata(md);
}

// The leader of topic/partition in md, -1 when none (yet).
int LeaderOf(const rd_kafka_metadata_t& md, const std::string& topic, int partition) {
  for (int t = 0; t < md.topic_cnt; ++t) {
    if (topic != md.topics[t].topic || md.topics[t].err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    for (int p = 0; p < md.topics[t].partition_cnt; ++p) {
      const rd_kafka_metadata_partition_t& part = md.topics[t].partitions[p];
      if (part.id == partition && part.err == RD_KAFKA_RESP_ERR_NO_ERROR) return part.leader;
    }
  }
  return -1;
}

// CreateTopics once; "already exists" is success.
std::string CreateTopic(rd_kafka_t* rk, const std::string& name, int replication) {
  char errstr[512];
  std::unique_ptr<rd_kafka_NewTopic_t, NewTopicDeleter> topic(
      rd_kafka_NewTopic_new(name.c_str(), 1, replication, errstr, sizeof(errstr)));
  if (topic == nullptr) return errstr;
  std::unique_ptr<rd_kafka_queue_t, QueueDeleter> queue(rd_kafka_queue_new(rk));
  rd_kafka_NewTopic_t* topics[] = {topic.get()};
  rd_kafka_CreateTopics(rk, topics, 1, nullptr, queue.get());
  std::unique_ptr<rd_kafka_event_t, EventDeleter> event(rd_kafka_queue_poll(queue.get(), 5000));
  if (event == nullptr) return "CreateTopics timed out";
  if (rd_kafka_event_error(event.get()) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return rd_kafka_event_error_string(event.get());
  }
  size_t count = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &count);
  for (size_t i = 0; i < count; ++i) {
    rd_kafka_resp_err_t err = rd_kafka_topic_result_error(results[i]);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR && err != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      return rd_kafka_err2str(err);
    }
  }
  return "";
}

int Ready() {
  const int count = absl::GetFlag(FLAGS_count);
  const int node = absl::GetFlag(FLAGS_node);
  const std::string probe = absl::GetFlag(FLAGS_probe_topic);
  const absl::Time end = absl::Now() + absl::GetFlag(FLAGS_timeout);
  std::string error;
  Handle rk = Connect(&error);
  if (rk == nullptr) {
    std::fprintf(stderr, "kafka-admin ready: %s\n", error.c_str());
    return 1;
  }
  std::string last = "no answer yet";
  bool brokers_ok = false;
  bool created = probe.empty();
  const int pid = absl::GetFlag(FLAGS_pid);
  while (absl::Now() < end) {
    if (pid > 0 && kill(pid, 0) != 0) {
      std::fprintf(stderr, "kafka-admin ready: process %d (the node) has exited\n", pid);
      return 1;
    }
    Metadata md = Ask(rk.get(), nullptr, &error);
    if (md == nullptr) {
      last = error;
      continue;  // the request itself waited up to 2 s
    }
    if (!brokers_ok) {
      bool has_node = node < 0;
      for (int b = 0; b < md->broker_cnt; ++b) has_node |= md->brokers[b].id == node;
      brokers_ok = md->broker_cnt >= count && has_node;
      if (!brokers_ok) {
        last = absl::StrCat(md->broker_cnt, " broker(s) in the metadata, want ", count,
                            node >= 0 ? absl::StrCat(" with node ", node) : "");
      }
    }
    if (brokers_ok && !created) {
      error = CreateTopic(rk.get(), probe, count);
      created = error.empty();
      if (!created) last = absl::StrCat("CreateTopics ", probe, ": ", error);
    }
    if (brokers_ok && created) {
      if (probe.empty() || LeaderOf(*md, probe, 0) >= 0) return 0;
      last = absl::StrCat(probe, " has no leader yet");
    }
    absl::SleepFor(absl::Milliseconds(100));  // pacing between requests, not synchronisation
  }
  std::fprintf(stderr, "kafka-admin ready: %s not ready after %s: %s\n",
               absl::GetFlag(FLAGS_brokers).c_str(),
               absl::FormatDuration(absl::GetFlag(FLAGS_timeout)).c_str(), last.c_str());
  return 1;
}

int Leader() {
  const std::string topic = absl::GetFlag(FLAGS_topic);
  const absl::Time end = absl::Now() + absl::GetFlag(FLAGS_timeout);
  std::string error;
  Handle rk = Connect(&error);
  if (rk == nullptr) {
    std::fprintf(stderr, "kafka-admin leader: %s\n", error.c_str());
    return 1;
  }
  while (absl::Now() < end) {
    Metadata md = Ask(rk.get(), nullptr, &error);
    if (md != nullptr) {
      int leader = LeaderOf(*md, topic, absl::GetFlag(FLAGS_partition));
      if (leader >= 0) {
        std::printf("%d\n", leader);
        return 0;
      }
      error = "no leader";
    }
    absl::SleepFor(absl::Milliseconds(100));
  }
  std::fprintf(stderr, "kafka-admin leader: %s/%d: %s\n", topic.c_str(),
               absl::GetFlag(FLAGS_partition), error.c_str());
  return 1;
}

// The records in every topic whose name starts with --topic_prefix: the sum of high - low
// watermarks over their partitions (0 when there is no such topic). A test reads exactly that
// many back once nothing writes any more.
int Records() {
  const std::string prefix = absl::GetFlag(FLAGS_topic_prefix);
  const absl::Time end = absl::Now() + absl::GetFlag(FLAGS_timeout);
  std::string error;
  Handle rk = Connect(&error);
  if (rk == nullptr) {
    std::fprintf(stderr, "kafka-admin records: %s\n", error.c_str());
    return 1;
  }
  while (absl::Now() < end) {
    Metadata md = Ask(rk.get(), nullptr, &error);
    if (md == nullptr) continue;  // the request itself waited up to 2 s
    int64_t total = 0;
    bool answered = true;
    for (int t = 0; t < md->topic_cnt && answered; ++t) {
      const rd_kafka_metadata_topic_t& topic = md->topics[t];
      if (!absl::StartsWith(topic.topic, prefix)) continue;
      for (int p = 0; p < topic.partition_cnt; ++p) {
        int64_t low = 0;
        int64_t high = 0;
        rd_kafka_resp_err_t err = rd_kafka_query_watermark_offsets(
            rk.get(), topic.topic, topic.partitions[p].id, &low, &high, 2000);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
          error = absl::StrCat(topic.topic, "/", topic.partitions[p].id, ": ", rd_kafka_err2str(err));
          answered = false;
          break;
        }
        total += high - low;
      }
    }
    if (answered) {
      std::printf("%lld\n", static_cast<long long>(total));
      return 0;
    }
    absl::SleepFor(absl::Milliseconds(100));  // pacing between requests, not synchronisation
  }
  std::fprintf(stderr, "kafka-admin records: %s\n", error.c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> args = absl::ParseCommandLine(argc, argv);
  if (args.size() >= 2 && std::string(args[1]) == "free-ports") {
    int n = 0;
    if (args.size() != 3 || !absl::SimpleAtoi(args[2], &n) || n < 1 || n > 64) {
      std::fprintf(stderr, "usage: kafka-admin free-ports N (1..64)\n");
      return 2;
    }
    return FreePorts(n);
  }
  if (args.size() == 2 && std::string(args[1]) == "ready") return Ready();
  if (args.size() == 2 && std::string(args[1]) == "leader") return Leader();
  if (args.size() == 2 && std::string(args[1]) == "records") return Records();
  std::fprintf(stderr, "%s\n", kUsage);
  return 2;
}
