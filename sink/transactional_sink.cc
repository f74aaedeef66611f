#include "sink/transactional_sink.h"

#include "absl/strings/str_cat.h"
#include "outboxd/log.h"
#include "outboxd/v1/checkpoint.pb.h"
#include "sink/record.h"

namespace outboxd::sink {

absl::StatusOr<std::unique_ptr<TransactionalSink>> TransactionalSink::Create(
    TransactionalConfig config, std::unique_ptr<TransactionalKafka> kafka,
    DeliveryCallback on_delivery, Clock clock) {
  if (!on_delivery) return absl::InvalidArgumentError("TransactionalSink needs a delivery callback");
  if (absl::Status s = ValidateTopicName(config.checkpoint_topic); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("--checkpoint_topic: ", s.message()));
  }
  std::unique_ptr<TransactionalSink> sink(
      new TransactionalSink(std::move(config), std::move(kafka), std::move(on_delivery), std::move(clock)));
  if (absl::Status s = sink->Recover(); !s.ok()) return s;
  return sink;
}

TransactionalSink::~TransactionalSink() {
  if (open_) Abort(absl::CancelledError("the sink closed with a Kafka transaction open"));
}

absl::Status TransactionalSink::Recover() {
  // Fence first: an older producer's open transaction is aborted, so the
  // checkpoint read below cannot be overtaken by a zombie's late commit.
  if (absl::Status s = kafka_->InitTransactions(); !s.ok()) return s;
  auto last = kafka_->ReadLastCommitted(config_.checkpoint_topic, config_.slot);
  if (!last.ok()) return last.status();
  if (last->has_value()) {
    v1::Checkpoint checkpoint;
    if (!checkpoint.ParseFromString(**last) || checkpoint.slot() != config_.slot) {
      return absl::DataLossError(absl::StrCat(
          "the last record for slot ", config_.slot, " in ", config_.checkpoint_topic,
          " is not an outboxd checkpoint; point --checkpoint_topic at outboxd's own topic"));
    }
    recovered_ = Lsn(checkpoint.end_lsn());
  }
  LogInfo(absl::StrCat("exactly-once: last committed checkpoint for slot ", config_.slot, " in ",
                       config_.checkpoint_topic, ": ",
                       recovered_.valid() ? recovered_.ToString() : std::string("none")));
  return absl::OkStatus();
}

absl::Status TransactionalSink::Produce(const v1::OutboxEvent& event,
                                        absl::string_view topic_override, Ticket ticket) {
  // Committed to Kafka before the last crash or rewind: acknowledge, do not repeat.
  if (Lsn(event.source().commit_lsn()) < recovered_) {
    ++events_skipped_;
    on_delivery_(ticket, absl::OkStatus());
    return absl::OkStatus();
  }
  if (!open_) {
    if (absl::Status s = kafka_->BeginTransaction(); !s.ok()) return s;
    open_ = true;
    opened_at_ = clock_();
  }
  bool dead_lettered = false;
  absl::Status sent = SendEvent(event, topic_override, config_.sink, kafka_->message_max_bytes(),
                                &scratch_, [&](const Record& r) { return kafka_->Send(r); },
                                &dead_lettered);
  if (!sent.ok()) return sent;  // ResourceExhausted included: the caller retries
  if (dead_lettered) ++dead_lettered_;
  inside_pg_transaction_ = true;
  ++batch_events_;
  if (!batch_tickets_.empty() && batch_tickets_.back().first == ticket) {
    ++batch_tickets_.back().second;
  } else {
    batch_tickets_.emplace_back(ticket, 1);
  }
  return absl::OkStatus();
}

void TransactionalSink::EndOfTransaction(Lsn end_lsn) {
  if (!open_) return;  // nothing of it was sent: no Kafka transaction to extend
  inside_pg_transaction_ = false;
  batch_end_ = std::max(batch_end_, end_lsn);
  if (batch_events_ >= config_.max_batch_events) Commit();
}

void TransactionalSink::StreamIdle() {
  if (AtBoundary()) Commit();
}

void TransactionalSink::Poll(int timeout_ms) {
  kafka_->Poll(timeout_ms);
  if (AtBoundary() && clock_() - opened_at_ >= config_.max_batch_age) Commit();
}

absl::Status TransactionalSink::Flush(absl::Duration timeout) {
  if (AtBoundary()) Commit();
  if (open_) Abort(absl::CancelledError("stopping inside a PostgreSQL transaction"));
  return absl::OkStatus();
}

void TransactionalSink::Commit() {
  // The events first, the checkpoint after: a checkpoint record is only ever
  // sent for a batch whose events all reached Kafka, so even a reader that
  // sees aborted records (kafka-mock) never finds a checkpoint past them.
  if (absl::Status flushed = kafka_->FlushTransaction(); !flushed.ok()) {
    FailCommit(flushed);
    return;
  }
  v1::Checkpoint checkpoint;
  checkpoint.set_slot(config_.slot);
  checkpoint.set_end_lsn(batch_end_.value());
  checkpoint.set_end_lsn_text(batch_end_.ToString());
  Record record;
  record.topic = config_.checkpoint_topic;
  record.key = config_.slot;
  record.value = checkpoint.SerializeAsString();
  absl::Status sent = kafka_->Send(record);
  // A full queue drains as the broker acknowledges; the commit waits for that anyway.
  for (int tries = 0; absl::IsResourceExhausted(sent) && tries < 1000; ++tries) {
    kafka_->Poll(10);
    sent = kafka_->Send(record);
  }
  absl::Status committed = sent.ok() ? kafka_->CommitTransaction() : sent;
  if (!committed.ok()) {
    FailCommit(committed);
    return;
  }
  open_ = false;
  ++transactions_committed_;
  auto tickets = std::move(batch_tickets_);
  batch_tickets_.clear();
  batch_events_ = 0;
  for (const auto& [ticket, count] : tickets) {
    for (uint64_t i = 0; i < count; ++i) on_delivery_(ticket, absl::OkStatus());
  }
}

void TransactionalSink::FailCommit(const absl::Status& committed) {
  if (absl::IsFailedPrecondition(committed)) {
    // The rejected record is not named in the error, so it cannot be parked
    // in the dead-letter topic, and retrying would fail the same way forever.
    Abort(SinkError(SinkFailure::kPoison, absl::FailedPreconditionError(absl::StrCat(
        "poison event: Kafka rejected a record of the transaction (", committed.message(),
        "); in exactly-once mode outboxd cannot tell which event, so it stops instead of "
        "retrying forever. Nothing past the last committed checkpoint is confirmed. Fix: raise "
        "message.max.bytes on the broker to at least the client's, or find the row with "
        "`outboxd peek` and correct it, then restart"))));
    return;
  }
  Abort(SinkError(SinkFailure::kRewind, absl::UnavailableError(absl::StrCat(
                                            "Kafka transaction not committed: ",
                                            committed.message()))));
}

void TransactionalSink::Abort(const absl::Status& why) {
  if (absl::Status s = kafka_->AbortTransaction(); !s.ok()) {
    LogWarning(absl::StrCat("aborting the Kafka transaction failed: ", s.message(),
                            "; a new producer will fence it"));
  }
  open_ = false;
  inside_pg_transaction_ = false;
  auto tickets = std::move(batch_tickets_);
  batch_tickets_.clear();
  batch_events_ = 0;
  for (const auto& [ticket, count] : tickets) {
    for (uint64_t i = 0; i < count; ++i) on_delivery_(ticket, why);
  }
}

}  // namespace outboxd::sink
