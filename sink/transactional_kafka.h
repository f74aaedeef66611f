// TransactionalKafka: the part of Kafka that exactly-once delivery needs —
// transactions and a read_committed read — behind a small seam, so the
// recovery logic in TransactionalSink runs on librdkafka in production and on
// an in-process model of Kafka transactions in tests.
//
//   auto kafka = MakeRdKafkaTransactional(config, "outboxd-myslot");
//   while (!*(*kafka)->InitTransactions(absl::Milliseconds(50))) {}  // fences older producers of the id
//   (*kafka)->BeginTransaction();
//   (*kafka)->Send(record);
//   while (!*(*kafka)->Delivered()) (*kafka)->Poll(10);          // (an error: abort)
//   while (!*(*kafka)->CommitTransaction(absl::Milliseconds(50))) {}  // each call bounded
//
// Completion steps (Delivered, CommitTransaction, AbortTransaction) never wait
// longer than they are told: false means "not done yet, ask again", and
// librdkafka resumes the same commit or abort on the next call (its
// transactional calls are resumable after a retriable timeout). That keeps a
// Kafka outage from holding the caller's thread, which must go on answering
// PostgreSQL.
//
// Thread: one owning thread calls every method.
#ifndef OUTBOXD_SINK_TRANSACTIONAL_KAFKA_H_
#define OUTBOXD_SINK_TRANSACTIONAL_KAFKA_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "sink/record.h"
#include "sink/sink_config.h"

namespace outboxd::sink {

class TransactionalKafka {
 public:
  virtual ~TransactionalKafka() = default;

  // Registers the transactional id, waiting at most `slice`: true once done,
  // false if not yet (call again; librdkafka goes on meanwhile). Any earlier
  // producer with the same id is fenced: its open transaction is aborted and
  // it can commit nothing more. Refused credentials: Failure()'s error.
  virtual absl::StatusOr<bool> InitTransactions(absl::Duration slice) = 0;

  // Value of the last committed record with this key (read_committed), or
  // nullopt when there is none (or the topic does not exist). Between two
  // waits of at most 100 ms it asks keep_waiting (if set), and ends with
  // Cancelled when that says no.
  virtual absl::StatusOr<std::optional<std::string>> ReadLastCommitted(
      absl::string_view topic, absl::string_view key, const std::function<bool()>& keep_waiting) = 0;

  virtual absl::Status BeginTransaction() = 0;
  // Queues a record in the open transaction. ResourceExhausted: queue full,
  // nothing queued. OutOfRange: the record is larger than the client allows.
  virtual absl::Status Send(const Record& record) = 0;
  // Whether every record sent in the open transaction has been delivered
  // (false: some are still in flight; Poll() and ask again). Does not wait.
  // Aborted if one failed (the transaction must be aborted);
  // FailedPrecondition if Kafka rejected one for good.
  virtual absl::StatusOr<bool> Delivered() = 0;
  // Commits everything sent since BeginTransaction, waiting at most `slice`:
  // true once committed, false if not yet (call again). Aborted: the
  // transaction must be aborted (and its records sent again);
  // FailedPrecondition: Kafka rejected one of its records for good (sending
  // again cannot help); other errors are fatal for this producer (e.g. fenced
  // by a newer one).
  virtual absl::StatusOr<bool> CommitTransaction(absl::Duration slice) = 0;
  // Aborts the open transaction, waiting at most `slice`: true once aborted,
  // false if not yet (call again).
  virtual absl::StatusOr<bool> AbortTransaction(absl::Duration slice) = 0;

  // Serves the producer's events, waiting up to timeout_ms.
  virtual void Poll(int timeout_ms) = 0;
  // Turns readable when Poll() has something to serve (-1: none).
  virtual int wakeup_fd() const = 0;
  // The client's message.max.bytes, for the reason a record is too large.
  virtual int64_t message_max_bytes() const = 0;
  // False while every broker is down.
  virtual bool Reachable() const { return true; }
  // EventSink::Failure(): OK, or a kFatal error no retry can fix.
  virtual absl::Status Failure() const { return absl::OkStatus(); }
};

// The librdkafka implementation: the shared Producer core with
// transactional.id (plus outboxd's producer defaults and the user's
// properties) and a read_committed consumer for ReadLastCommitted.
absl::StatusOr<std::unique_ptr<TransactionalKafka>> MakeRdKafkaTransactional(
    const SinkConfig& config, absl::string_view transactional_id);

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_TRANSACTIONAL_KAFKA_H_
