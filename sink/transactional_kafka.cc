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
#include "sink/checkpoint_topic.h"
#include "sink/producer.h"
#include "sink/rdkafka_util.h"

namespace outboxd::sink {
namespace {

constexpr int kTransactionTimeoutMs = 30000;

struct ErrorDeleter {
  void operator()(rd_kafka_error_t* e) const { rd_kafka_error_destroy(e); }
};
using ErrorPtr = std::unique_ptr<rd_kafka_error_t, ErrorDeleter>;

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

  absl::StatusOr<bool> InitTransactions(absl::Duration slice) override {
    absl::StatusOr<bool> done = Step(rd_kafka_init_transactions(producer_->get(), SliceMs(slice)),
                                     "initialising Kafka transactions");
    // Refused credentials look like a timeout here; the error callback says why.
    producer_->Poll(0);
    if (!producer_->failure().ok()) return producer_->failure();
    return done;
  }

  absl::StatusOr<std::optional<std::string>> ReadLastCommitted(
      absl::string_view topic, absl::string_view key, const std::function<bool()>& keep_waiting) override;

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
  absl::Status Failure() const override { return producer_->failure(); }

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
    absl::string_view topic, absl::string_view key, const std::function<bool()>& keep_waiting) {
  return ReadLastCommittedRecord(config_, topic, key, absl::Seconds(30), keep_waiting);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TransactionalKafka>> MakeRdKafkaTransactional(
    const SinkConfig& config, absl::string_view transactional_id) {
  auto kafka = std::make_unique<RdKafkaTransactional>(config);
  RETURN_IF_ERROR(kafka->Init(transactional_id));
  return std::unique_ptr<TransactionalKafka>(std::move(kafka));
}

}  // namespace outboxd::sink
