#include "sink/transactional_kafka.h"

#include <fcntl.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "outboxd/log.h"
#include "outboxd/status_macros.h"
#include "sink/producer.h"
#include "sink/rdkafka_util.h"

namespace outboxd::sink {
namespace {

constexpr int kTransactionTimeoutMs = 30000;

struct ErrorDeleter {
  void operator()(rd_kafka_error_t* e) const { rd_kafka_error_destroy(e); }
};
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;

struct ConsumerDeleter {
  void operator()(rd_kafka_t* rk) const {
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
  }
};
struct MessageDeleter {
  void operator()(rd_kafka_message_t* m) const { rd_kafka_message_destroy(m); }
};
struct PartitionListDeleter {
  void operator()(rd_kafka_topic_partition_list_t* l) const { rd_kafka_topic_partition_list_destroy(l); }
};

// Maps a transactional API error: Aborted when the transaction must be
// aborted, Internal when the producer is unusable (fenced), else Unavailable.
absl::Status TxnStatus(ErrorPtr error, absl::string_view what) {
  if (error == nullptr) return absl::OkStatus();
  const std::string message = absl::StrCat(what, ": ", rd_kafka_error_name(error.get()), ": ",
                                           rd_kafka_error_string(error.get()));
  if (IsPermanentRecordError(rd_kafka_error_code(error.get()))) {
    // Sending the batch again would be rejected again; the caller must stop.
    return absl::FailedPreconditionError(message);
  }
  if (rd_kafka_error_is_fatal(error.get())) return absl::InternalError(message);
  if (rd_kafka_error_txn_requires_abort(error.get())) return absl::AbortedError(message);
  return absl::UnavailableError(message);
}

// librdkafka behind TransactionalKafka, on the shared Producer core.
//
// Thread: the owning thread calls everything; delivery reports (which record
// the first failed record of the open transaction, so FlushTransaction() can
// refuse to commit around it) run inside Poll(), flushes and the
// transactional calls.
class RdKafkaTransactional final : public TransactionalKafka {
 public:
  explicit RdKafkaTransactional(SinkConfig config) : config_(std::move(config)) {}
  ~RdKafkaTransactional() override { producer_.reset(); }

  absl::Status Init(absl::string_view transactional_id) {
    ASSIGN_OR_RETURN(auto producer, Producer::Create(
        config_,
        {{"transactional.id", std::string(transactional_id)},
         {"transaction.timeout.ms", absl::StrCat(kTransactionTimeoutMs * 2)},
         // Bounded by the transaction timeout; a timed-out record aborts
         // its transaction, which readers never see, so order holds.
         {"message.timeout.ms", absl::StrCat(kTransactionTimeoutMs * 2)}},
        [this](const rd_kafka_message_t& message) { OnReport(message); }));
    producer_ = std::move(producer);
    return absl::OkStatus();
  }

  absl::Status InitTransactions() override {
    return TxnStatus(ErrorPtr(rd_kafka_init_transactions(producer_->get(), kTransactionTimeoutMs)),
                     "initialising Kafka transactions");
  }

  absl::StatusOr<std::optional<std::string>> ReadLastCommitted(absl::string_view topic,
                                                               absl::string_view key) override;

  absl::Status BeginTransaction() override {
    failed_record_ = RD_KAFKA_RESP_ERR_NO_ERROR;
    return TxnStatus(ErrorPtr(rd_kafka_begin_transaction(producer_->get())),
                     "beginning a Kafka transaction");
  }

  absl::Status Send(const Record& record) override { return producer_->Send(record, nullptr); }

  absl::StatusOr<bool> Delivered() override {
    // Every record's fate first: a record that failed (e.g. timed out in the
    // queue during an outage) must abort the transaction, never be committed
    // around; librdkafka 2.0.2 does not always fail the commit for it.
    if (failed_record_ != RD_KAFKA_RESP_ERR_NO_ERROR) {
      const std::string why = absl::StrCat("a record of the transaction was not delivered: ",
                                           rd_kafka_err2name(failed_record_), ": ",
                                           rd_kafka_err2str(failed_record_));
      return IsPermanentRecordError(failed_record_) ? absl::FailedPreconditionError(why)
                                                    : absl::AbortedError(why);
    }
    return producer_->in_flight() == 0;
  }

  absl::StatusOr<bool> CommitTransaction(absl::Duration slice) override {
    return Step(rd_kafka_commit_transaction(producer_->get(), SliceMs(slice)),
                "committing the Kafka transaction");
  }

  absl::StatusOr<bool> AbortTransaction(absl::Duration slice) override {
    return Step(rd_kafka_abort_transaction(producer_->get(), SliceMs(slice)),
                "aborting the Kafka transaction");
  }

  void Poll(int timeout_ms) override { producer_->Poll(timeout_ms); }
  int wakeup_fd() const override { return producer_->fd(); }
  int64_t message_max_bytes() const override { return producer_->message_max_bytes(); }
  bool Reachable() const override { return producer_->reachable(); }

 private:
  void OnReport(const rd_kafka_message_t& message) {
    if (message.err != RD_KAFKA_RESP_ERR_NO_ERROR && failed_record_ == RD_KAFKA_RESP_ERR_NO_ERROR) {
      failed_record_ = message.err;
    }
  }

  static int SliceMs(absl::Duration slice) {
    return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(slice), 1, kTransactionTimeoutMs));
  }

  // One bounded call of a resumable transactional API: a retriable error
  // (the call timed out, the coordinator is not there yet) means "not done,
  // call again"; librdkafka goes on with it in the background meanwhile.
  static absl::StatusOr<bool> Step(rd_kafka_error_t* raw, absl::string_view what) {
    ErrorPtr error(raw);
    if (error == nullptr) return true;
    if (rd_kafka_error_is_retriable(error.get()) && !rd_kafka_error_is_fatal(error.get()) &&
        !rd_kafka_error_txn_requires_abort(error.get())) {
      return false;
    }
    return TxnStatus(std::move(error), what);
  }

  rd_kafka_resp_err_t failed_record_ = RD_KAFKA_RESP_ERR_NO_ERROR;  // first failure in this transaction
  SinkConfig config_;
  std::unique_ptr<Producer> producer_;  // last: destroyed first
};

absl::StatusOr<std::optional<std::string>> RdKafkaTransactional::ReadLastCommitted(
    absl::string_view topic, absl::string_view key) {
  ConfPtr conf(rd_kafka_conf_new());
  std::array<char, 512> errstr{};
  const std::pair<const char*, std::string> settings[] = {
      {"bootstrap.servers", config_.brokers},
      // assign() needs a group id; nothing joins or commits with it.
      {"group.id", "outboxd-checkpoint-reader"},
      {"isolation.level", "read_committed"},
      {"enable.auto.commit", "false"},
      {"enable.partition.eof", "true"},
      {"auto.offset.reset", "earliest"},
  };
  for (const auto& [name, value] : settings) {
    if (rd_kafka_conf_set(conf.get(), name, value.c_str(), errstr.data(), errstr.size()) != RD_KAFKA_CONF_OK) {
      return absl::InvalidArgumentError(absl::StrCat("checkpoint reader property ", name, ": ", errstr.data()));
    }
  }
  for (const auto& [name, value] : config_.kafka_properties) {
    // Security settings apply to the reader too; producer-only ones are refused and skipped.
    rd_kafka_conf_set(conf.get(), name.c_str(), value.c_str(), errstr.data(), errstr.size());
  }
  rd_kafka_conf_set_log_cb(conf.get(), &LogToOutboxd);
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf.get(), errstr.data(), errstr.size());
  if (rk == nullptr) return absl::InvalidArgumentError(absl::StrCat("checkpoint reader: ", errstr.data()));
  conf.release();
  std::unique_ptr<rd_kafka_t, ConsumerDeleter> consumer(rk);
  rd_kafka_poll_set_consumer(rk);

  // All topics, not the one by name: naming it would auto-create it.
  const rd_kafka_metadata_t* metadata = nullptr;
  if (rd_kafka_resp_err_t e = rd_kafka_metadata(rk, 1, nullptr, &metadata, 10000); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("cannot read Kafka metadata for the checkpoint: ", rd_kafka_err2str(e)));
  }
  std::unique_ptr<rd_kafka_topic_partition_list_t, PartitionListDeleter> partitions(
      rd_kafka_topic_partition_list_new(4));
  const std::string topic_name(topic);
  for (int t = 0; t < metadata->topic_cnt; ++t) {
    if (topic_name != metadata->topics[t].topic) continue;
    for (int p = 0; p < metadata->topics[t].partition_cnt; ++p) {
      int64_t low = 0, high = 0;
      const int32_t id = metadata->topics[t].partitions[p].id;
      if (rd_kafka_query_watermark_offsets(rk, topic_name.c_str(), id, &low, &high, 10000) ==
              RD_KAFKA_RESP_ERR_NO_ERROR &&
          high > low) {
        rd_kafka_topic_partition_list_add(partitions.get(), topic_name.c_str(), id)->offset =
            RD_KAFKA_OFFSET_BEGINNING;
      }
    }
  }
  rd_kafka_metadata_destroy(metadata);
  if (partitions->cnt == 0) return std::optional<std::string>();
  if (rd_kafka_resp_err_t e = rd_kafka_assign(rk, partitions.get()); e != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return absl::UnavailableError(absl::StrCat("cannot read ", topic, ": ", rd_kafka_err2str(e)));
  }
  std::optional<std::string> last;
  int at_end = 0;
  const absl::Time deadline = absl::Now() + absl::Seconds(30);
  while (at_end < partitions->cnt) {
    if (absl::Now() > deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "reading the checkpoint from ", topic, " took over 30 s; is a transaction of another "
          "producer still open on it?"));
    }
    std::unique_ptr<rd_kafka_message_t, MessageDeleter> m(rd_kafka_consumer_poll(rk, 200));
    if (m == nullptr) continue;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
      ++at_end;
      continue;
    }
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) continue;
    if (absl::string_view(static_cast<const char*>(m->key), m->key_len) == key) {
      last.emplace(static_cast<const char*>(m->payload), m->len);
    }
  }
  return last;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TransactionalKafka>> MakeRdKafkaTransactional(
    const SinkConfig& config, absl::string_view transactional_id) {
  auto kafka = std::make_unique<RdKafkaTransactional>(config);
  RETURN_IF_ERROR(kafka->Init(transactional_id));
  return std::unique_ptr<TransactionalKafka>(std::move(kafka));
}

}  // namespace outboxd::sink
