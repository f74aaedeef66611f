#include "sink/transactional_sink.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "outboxd/log.h"
#include "outboxd/status_macros.h"
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
  RETURN_IF_ERROR(sink->Recover());
  return sink;
}

TransactionalSink::~TransactionalSink() {
  // One bounded try: the relay is replacing or closing this sink, and the next
  // producer of the transactional id fences (aborts) whatever is left open.
  // A commit already under way is left to finish on its own: its checkpoint
  // tells the next sink whether it did.
  if (phase_ != Phase::kNone && phase_ != Phase::kCommitting) {
    if (absl::StatusOr<bool> aborted = kafka_->AbortTransaction(kStepSlice);
        !aborted.ok() || !*aborted) {
      LogInfo("closing the exactly-once sink with its Kafka transaction not yet aborted; the "
              "next producer of the transactional id fences it");
    }
  }
}

absl::Status TransactionalSink::Recover() {
  // Fence first: an older producer's open transaction is aborted, so the
  // checkpoint read below cannot be overtaken by a zombie's late commit.
  const absl::Time started = absl::Now();
  while (true) {
    ASSIGN_OR_RETURN(bool done, kafka_->InitTransactions(kStepSlice));
    if (done) break;
    if (config_.keep_waiting && !config_.keep_waiting()) {
      return absl::CancelledError("stopped while initialising Kafka transactions");
    }
    if (absl::Now() - started >= config_.recovery_timeout) {
      return absl::UnavailableError(absl::StrCat(
          "initialising Kafka transactions did not complete within ",
          absl::FormatDuration(config_.recovery_timeout),
          " (are the brokers reachable, and the transaction coordinator up?)"));
    }
  }
  const absl::Time fenced = absl::Now();
  ASSIGN_OR_RETURN(auto last, kafka_->ReadLastCommitted(config_.checkpoint_topic, config_.slot,
                                                        config_.keep_waiting));
  if (last.has_value()) {
    v1::Checkpoint checkpoint;
    if (!checkpoint.ParseFromString(*last) || checkpoint.slot() != config_.slot) {
      return absl::DataLossError(absl::StrCat(
          "the last record for slot ", config_.slot, " in ", config_.checkpoint_topic,
          " is not an outboxd checkpoint; point --checkpoint_topic at outboxd's own topic"));
    }
    recovered_ = Lsn(checkpoint.end_lsn());
    RETURN_IF_ERROR(CheckSystem(checkpoint));
  }
  LogInfo(absl::StrCat("exactly-once: last committed checkpoint for slot ", config_.slot, " in ",
                       config_.checkpoint_topic, ": ",
                       recovered_.valid() ? recovered_.ToString() : std::string("none"),
                       " (fenced in ", absl::FormatDuration(absl::Trunc(fenced - started, absl::Milliseconds(1))),
                       ", read in ", absl::FormatDuration(absl::Trunc(absl::Now() - fenced, absl::Milliseconds(1))),
                       ")"));
  return absl::OkStatus();
}

absl::Status TransactionalSink::CheckSystem(const v1::Checkpoint& checkpoint) {
  const std::string& theirs = checkpoint.system_identifier();
  const std::string& ours = config_.system_identifier;
  if (theirs.empty() || ours.empty()) {
    if (theirs.empty()) {
      // Written by an outboxd that did not record it; every checkpoint from
      // now on does, so this is said once per topic and slot.
      LogInfo(absl::StrCat("the checkpoint for slot ", config_.slot, " in ", config_.checkpoint_topic,
                           " records no PostgreSQL system identifier (written by an older outboxd); "
                           "accepting it; checkpoints from now on record system ",
                           ours.empty() ? std::string("(unknown)") : ours));
    }
    return absl::OkStatus();
  }
  if (theirs == ours) return absl::OkStatus();
  if (config_.accept_system_id_change) {
    LogWarning(absl::StrCat(
        "the checkpoint for slot ", config_.slot, " in ", config_.checkpoint_topic,
        " was written for PostgreSQL system ", theirs, ", this server is system ", ours,
        "; accepted (--accept_checkpoint_system_id_change): its position ", recovered_.ToString(),
        " is ignored, replication resumes at the slot's confirmed position (events may repeat, "
        "none are skipped), and checkpoints from now on record system ", ours));
    recovered_ = Lsn();
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the checkpoint for slot ", config_.slot, " in ", config_.checkpoint_topic,
      " was written for PostgreSQL system ", theirs, ", but this server is system ", ours,
      " (a different cluster with the same slot name, or a restored backup of one): its position ",
      recovered_.ToString(), " belongs to another WAL history, and resuming by it could skip or "
      "repeat events. If this server is meant to replace the other (pg_upgrade, a migration), "
      "start once with --accept_checkpoint_system_id_change (resumes at this slot's confirmed "
      "position, events may repeat); otherwise point --checkpoint_topic or --slot at this "
      "server's own"));
}

absl::Status TransactionalSink::Produce(const v1::OutboxEvent& event,
                                        absl::string_view topic_override, Ticket ticket) {
  // Committed to Kafka before the last crash or rewind: acknowledge, do not repeat.
  if (Lsn(event.source().commit_lsn()) < recovered_) {
    ++events_skipped_;
    on_delivery_(ticket, absl::OkStatus());
    return absl::OkStatus();
  }
  // Poll() takes the commit or abort on; the relay offers this event again.
  if (Finishing()) {
    backlogged_ = true;
    return absl::ResourceExhaustedError("a Kafka transaction is being completed");
  }
  if (phase_ == Phase::kNone) {
    RETURN_IF_ERROR(kafka_->BeginTransaction());
    phase_ = Phase::kOpen;
    opened_at_ = clock_();
    batch_waits_for_ = backlogged_ ? std::min(last_commit_took_, config_.max_batch_age)
                                   : absl::ZeroDuration();
    backlogged_ = false;
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
  // Nothing of it was sent (or the batch is already being completed): no
  // Kafka transaction to extend.
  if (phase_ != Phase::kOpen) return;
  inside_pg_transaction_ = false;
  batch_end_ = std::max(batch_end_, end_lsn);
  if (batch_events_ >= config_.max_batch_events) {
    StartCommit();
    Advance(kStepSlice);
  }
}

void TransactionalSink::StreamIdle() {
  if (!AtBoundary() || clock_() - opened_at_ < batch_waits_for_) return;
  StartCommit();
  Advance(kStepSlice);
}

absl::Duration TransactionalSink::WorkDueIn() const {
  if (!AtBoundary()) return absl::InfiniteDuration();  // nothing to commit, or already at it
  // When an idle moment may commit it, if it must wait for that (an idle
  // moment commits any other batch at once); else when it is max_batch_age old.
  const absl::Duration due =
      batch_waits_for_ > absl::ZeroDuration() ? batch_waits_for_ : config_.max_batch_age;
  return std::max(absl::ZeroDuration(), due - (clock_() - opened_at_));
}

void TransactionalSink::StreamLost() {
  if (AtBoundary()) {
    StartCommit();
  } else if (phase_ == Phase::kOpen) {
    StartAbort(SinkError(SinkFailure::kRewind,
                         absl::UnavailableError("the replication connection dropped inside a "
                                                "PostgreSQL transaction; its events come again")));
  }
  Advance(kStepSlice);
}

void TransactionalSink::Poll(int timeout_ms) {
  kafka_->Poll(timeout_ms);
  if (AtBoundary() && clock_() - opened_at_ >= config_.max_batch_age) StartCommit();
  Advance(kStepSlice);
}

absl::Status TransactionalSink::Flush(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  if (AtBoundary()) {
    StartCommit();
  } else if (phase_ == Phase::kOpen) {
    StartAbort(absl::CancelledError("stopping inside a PostgreSQL transaction"));
  }
  while (true) {
    Advance(std::clamp(deadline - absl::Now(), absl::Milliseconds(1), kStepSlice));
    if (phase_ == Phase::kNone) return absl::OkStatus();
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) {
      return absl::DeadlineExceededError(absl::StrCat(
          "the Kafka transaction was not completed within ", absl::FormatDuration(timeout),
          "; nothing past the last committed checkpoint is confirmed"));
    }
    kafka_->Poll(static_cast<int>(absl::ToInt64Milliseconds(std::min(left, absl::Milliseconds(10)))));
  }
}

void TransactionalSink::StartCommit() {
  // The events first, the checkpoint after: a checkpoint record is only ever
  // sent for a batch whose events all reached Kafka, so even a reader that
  // sees aborted records (kafka-mock) never finds a checkpoint past them.
  v1::Checkpoint checkpoint;
  checkpoint.set_slot(config_.slot);
  checkpoint.set_end_lsn(batch_end_.value());
  checkpoint.set_end_lsn_text(batch_end_.ToString());
  checkpoint.set_system_identifier(config_.system_identifier);
  checkpoint_.topic = config_.checkpoint_topic;
  checkpoint_.key = config_.slot;
  checkpoint_.value = checkpoint.SerializeAsString();
  phase_ = Phase::kAwaitEvents;
  commit_started_ = clock_();
}

void TransactionalSink::StartAbort(absl::Status why) {
  abort_reason_ = std::move(why);
  phase_ = Phase::kAborting;
}

void TransactionalSink::Advance(absl::Duration slice) {
  while (true) {
    switch (phase_) {
      case Phase::kNone:
      case Phase::kOpen:
        return;
      case Phase::kAwaitEvents:
      case Phase::kAwaitCheckpoint: {
        absl::StatusOr<bool> delivered = kafka_->Delivered();
        if (!delivered.ok()) {
          FailCommit(delivered.status());
          continue;
        }
        if (!*delivered) return;
        phase_ = phase_ == Phase::kAwaitEvents ? Phase::kSendCheckpoint : Phase::kCommitting;
        continue;
      }
      case Phase::kSendCheckpoint: {
        absl::Status sent = kafka_->Send(checkpoint_);
        // A full queue drains as the broker acknowledges: try again on the next Poll().
        if (absl::IsResourceExhausted(sent)) return;
        if (!sent.ok()) {
          FailCommit(sent);
          continue;
        }
        phase_ = Phase::kAwaitCheckpoint;
        continue;
      }
      case Phase::kCommitting: {
        absl::StatusOr<bool> committed = kafka_->CommitTransaction(slice);
        if (!committed.ok()) {
          FailCommit(committed.status());
          continue;
        }
        if (*committed) Committed();
        return;
      }
      case Phase::kAborting: {
        absl::StatusOr<bool> aborted = kafka_->AbortTransaction(slice);
        if (!aborted.ok()) {
          LogWarning(absl::StrCat("aborting the Kafka transaction failed: ",
                                  aborted.status().message(), "; a new producer will fence it"));
        } else if (!*aborted) {
          return;
        }
        Aborted();
        return;
      }
    }
  }
}

void TransactionalSink::Committed() {
  phase_ = Phase::kNone;
  last_commit_took_ = clock_() - commit_started_;
  ++transactions_committed_;
  ReportBatch(absl::OkStatus());
}

void TransactionalSink::Aborted() {
  phase_ = Phase::kNone;
  inside_pg_transaction_ = false;
  ReportBatch(abort_reason_);
}

void TransactionalSink::ReportBatch(const absl::Status& status) {
  auto tickets = std::move(batch_tickets_);
  batch_tickets_.clear();
  batch_events_ = 0;
  for (const auto& [ticket, count] : tickets) {
    for (uint64_t i = 0; i < count; ++i) on_delivery_(ticket, status);
  }
}

void TransactionalSink::FailCommit(const absl::Status& committed) {
  if (absl::IsFailedPrecondition(committed)) {
    // The rejected record is not named in the error, so it cannot be parked
    // in the dead-letter topic, and retrying would fail the same way forever.
    StartAbort(SinkError(SinkFailure::kPoison, absl::FailedPreconditionError(absl::StrCat(
        "poison event: Kafka rejected a record of the transaction (", committed.message(),
        "); in exactly-once mode outboxd cannot tell which event, so it stops instead of "
        "retrying forever. Nothing past the last committed checkpoint is confirmed. Fix: raise "
        "message.max.bytes on the broker to at least the client's, or find the row with "
        "`outboxd peek` and correct it, then restart"))));
    return;
  }
  StartAbort(SinkError(SinkFailure::kRewind,
                       absl::UnavailableError(absl::StrCat("Kafka transaction not committed: ",
                                                           committed.message()))));
}

}  // namespace outboxd::sink
