// TransactionalSink: exactly-once delivery (--delivery=exactly-once).
//
//   auto sink = TransactionalSink::Create(config, std::move(kafka), on_delivery);
//   Lsn resume = (*sink)->RecoveredPosition();   // replicate from here on
//   (*sink)->Produce(event, "", ticket);          // inside a Kafka transaction
//   (*sink)->EndOfTransaction(commit.end_lsn);   // a PostgreSQL transaction ended
//   (*sink)->StreamIdle();                       // nothing more buffered: commit now
//
// One Kafka transaction carries the events of one or more whole PostgreSQL
// transactions plus a checkpoint record (key = slot, value =
// outboxd.v1.Checkpoint with the end LSN of the last PostgreSQL transaction in
// it) on the compacted checkpoint topic. Tickets are acknowledged only when
// the Kafka transaction commits, so the relay confirms a WAL position to
// PostgreSQL only after Kafka made it visible to read_committed consumers.
//
// Recovery: Create() first fences every older producer of the slot's
// transactional id (their open transactions are aborted), then reads the last
// committed checkpoint. A checkpoint holds a position in one PostgreSQL
// system's WAL: one written on another system (a different cluster with the
// same slot name, a restored backup of another cluster) is refused rather than
// used to skip or repeat by positions of another history. The relay resumes replication after it; events of
// PostgreSQL transactions that committed before it are acknowledged without
// being sent again. So a crash anywhere — before, during or after a Kafka
// commit, before or after the LSN reached PostgreSQL — neither loses nor
// repeats an event for read_committed consumers.
//
// Commit policy: at a PostgreSQL transaction boundary, when the batch holds
// max_batch_events events, when the stream has nothing more buffered
// (StreamIdle: low latency under light load), or when the batch is
// max_batch_age old (bounded latency under heavy load). Under a backlog the
// stream runs dry after every read (the socket holds only what arrived during
// the last commit), so an idle moment is not taken as one when events had to
// wait for the last commit: that batch is committed at an idle moment once it
// is as old as the last commit took (at most max_batch_age), so that batches
// grow with the backlog instead of staying one socket buffer long.
//
// Never blocking: a commit or an abort is a sequence of bounded steps (wait
// for the events' delivery reports, queue the checkpoint, wait for its
// report, commit or abort in slices of kStepSlice) driven by Poll(), so the
// relay's loop keeps answering PostgreSQL through a Kafka outage. While one is
// in progress Produce() returns ResourceExhausted: the relay holds the event
// (and stops reading the socket) as it does for a full producer queue.
//
// Failures: a commit that fails is aborted and every ticket of the batch is
// reported Unavailable (the relay rewinds and sends the batch again in a new
// transaction). A record the broker rejects for good fails the commit without
// saying which record it was: every ticket is then reported FailedPrecondition
// (a poison event: the relay stops rather than retry forever).
//
// An EventSink (outboxd/event_sink.h) for the relay.
//
// Thread: one owning thread; delivery callbacks run inside its calls.
#ifndef OUTBOXD_SINK_TRANSACTIONAL_SINK_H_
#define OUTBOXD_SINK_TRANSACTIONAL_SINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "outboxd/event_sink.h"
#include "outboxd/lsn.h"
#include "outboxd/v1/checkpoint.pb.h"
#include "outboxd/v1/event.pb.h"
#include "sink/record.h"
#include "sink/sink_config.h"
#include "sink/transactional_kafka.h"

namespace outboxd::sink {

// The longest a single librdkafka transactional call may take on the
// caller's thread; the relay's loop answers PostgreSQL between two calls.
inline constexpr absl::Duration kStepSlice = absl::Milliseconds(50);

struct TransactionalConfig {
  SinkConfig sink;
  std::string slot = "outboxd";
  std::string checkpoint_topic = "outboxd.checkpoints";
  // The PostgreSQL system the events come from (IDENTIFY_SYSTEM's systemid).
  // Checkpoints record it; one written by another system is refused
  // (FailedPrecondition) unless accept_system_id_change, which ignores its
  // position (it is in another system's WAL) and resumes at the slot's.
  std::string system_identifier;
  bool accept_system_id_change = false;
  uint64_t max_batch_events = 10000;
  absl::Duration max_batch_age = absl::Milliseconds(100);
  // Recovery (in Create) waits for Kafka in steps of at most kStepSlice (the
  // checkpoint read: 100 ms) and asks this between two: false ends it with
  // Cancelled. The relay answers PostgreSQL in it and says false on stop.
  std::function<bool()> keep_waiting;
  // Recovery gives up (Unavailable) after this long.
  absl::Duration recovery_timeout = absl::Seconds(30);
};

class TransactionalSink final : public EventSink {
 public:
  using Clock = std::function<absl::Time()>;

  static absl::StatusOr<std::unique_ptr<TransactionalSink>> Create(
      TransactionalConfig config, std::unique_ptr<TransactionalKafka> kafka,
      DeliveryCallback on_delivery, Clock clock = absl::Now);
  // An open transaction is aborted: its events were not acknowledged.
  ~TransactionalSink() override;

  // End LSN from the last committed checkpoint (0/0 if none).
  Lsn RecoveredPosition() const override { return recovered_; }

  absl::Status Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                       Ticket ticket) override;
  void EndOfTransaction(Lsn end_lsn) override;
  void StreamIdle() override;
  absl::Duration WorkDueIn() const override;
  void Poll(int timeout_ms) override;
  int wakeup_fd() const override { return kafka_->wakeup_fd(); }
  absl::Status Failure() const override { return kafka_->Failure(); }
  // Commits a batch that ends at a transaction boundary; aborts one that does
  // not (its events were never acknowledged and will be read again).
  absl::Status Flush(absl::Duration timeout) override;
  int InFlight() const override { return static_cast<int>(batch_events_); }
  // The replication stream broke: end the Kafka transaction now rather than
  // leave it to the broker's transaction timeout while read_committed readers
  // of its partitions wait. Whole PostgreSQL transactions are committed; a
  // batch that ends inside one is aborted (its events come again).
  void StreamLost() override;
  uint64_t DeadLettered() const override { return dead_lettered_; }
  bool Reachable() const override { return kafka_->Reachable(); }

  // For tests and logs.
  uint64_t transactions_committed() const { return transactions_committed_; }
  uint64_t events_skipped() const { return events_skipped_; }

 private:
  TransactionalSink(TransactionalConfig config, std::unique_ptr<TransactionalKafka> kafka,
                    DeliveryCallback on_delivery, Clock clock)
      : config_(std::move(config)),
        kafka_(std::move(kafka)),
        on_delivery_(std::move(on_delivery)),
        clock_(std::move(clock)) {}

  // Where the open Kafka transaction is.
  enum class Phase {
    kNone,                // no transaction open
    kOpen,                // open, taking events
    kAwaitEvents,         // committing: waiting for the events' delivery reports
    kSendCheckpoint,      // committing: queueing the checkpoint record
    kAwaitCheckpoint,     // committing: waiting for its delivery report
    kCommitting,          // committing: rd_kafka_commit_transaction, in slices
    kAborting,            // rd_kafka_abort_transaction, in slices
  };

  absl::Status Recover();
  // A checkpoint of another PostgreSQL system: refused, or (accepted) its
  // position dropped. One without a system (older outboxd): accepted.
  absl::Status CheckSystem(const v1::Checkpoint& checkpoint);
  // Starts committing the open batch (checkpoint record included); its
  // tickets are acknowledged once Kafka has committed it. Advance() does it.
  void StartCommit();
  // Starts aborting the open batch; once aborted its tickets are reported
  // with `why`. Advance() does it.
  void StartAbort(absl::Status why);
  // Aborts a batch whose delivery or commit failed: a record rejected for
  // good is a poison event, anything else is retried.
  void FailCommit(const absl::Status& status);
  // Takes the commit or abort in progress as far as it goes without waiting
  // more than `slice` in any one librdkafka call.
  void Advance(absl::Duration slice);
  void Committed();
  void Aborted();
  // Reports every ticket of the batch with `status` and empties the batch.
  void ReportBatch(const absl::Status& status);
  bool AtBoundary() const { return phase_ == Phase::kOpen && !inside_pg_transaction_; }
  bool Finishing() const { return phase_ != Phase::kNone && phase_ != Phase::kOpen; }

  TransactionalConfig config_;
  std::unique_ptr<TransactionalKafka> kafka_;
  DeliveryCallback on_delivery_;
  Clock clock_;
  Lsn recovered_;
  Record scratch_;  // the record of the event in Produce(), kept for its buffers

  Phase phase_ = Phase::kNone;
  absl::Status abort_reason_;           // what the batch's tickets get once aborted
  Record checkpoint_;                   // the checkpoint record of the batch being committed
  bool inside_pg_transaction_ = false;  // events sent since the last EndOfTransaction
  absl::Time opened_at_;
  // Batching under a backlog: an event refused while a commit was under way
  // (backlogged_) makes the next batch wait, at an idle moment, until it is
  // as old as that commit took (batch_waits_for), capped by max_batch_age.
  absl::Time commit_started_;
  absl::Duration last_commit_took_ = absl::ZeroDuration();
  bool backlogged_ = false;
  absl::Duration batch_waits_for_ = absl::ZeroDuration();
  Lsn batch_end_;
  uint64_t batch_events_ = 0;
  // Tickets of the batch, run-length encoded: a PostgreSQL transaction's
  // events share one ticket, so a million-event transaction is one entry.
  std::vector<std::pair<Ticket, uint64_t>> batch_tickets_;

  uint64_t transactions_committed_ = 0;
  uint64_t events_skipped_ = 0;
  uint64_t dead_lettered_ = 0;
};

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_TRANSACTIONAL_SINK_H_
