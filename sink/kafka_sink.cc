#include "sink/kafka_sink.h"

#include <librdkafka/rdkafka.h>

#include <algorithm>
#include <deque>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "outboxd/log.h"
#include "sink/producer.h"
#include "sink/rdkafka_util.h"
#include "sink/record.h"

namespace outboxd::sink {
namespace {

// The opaque pointer of each message carries its ticket by value, so no
// per-message heap state exists that could leak when the sink is destroyed
// with records in flight.
static_assert(sizeof(void*) >= sizeof(Ticket), "a ticket must fit in librdkafka's msg_opaque");

void* TicketToOpaque(Ticket ticket) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(ticket));
}
Ticket OpaqueToTicket(void* opaque) {
  return static_cast<Ticket>(reinterpret_cast<uintptr_t>(opaque));
}

bool IsSizeError(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE ||
         err == RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE;
}

// A record headed for the dead-letter topic that could not be queued yet
// (the producer queue was full inside a delivery callback, where we cannot
// wait). Kept by the sink and queued again from Poll() and Flush().
struct DeadLetter {
  Ticket ticket = 0;
  Record record;
};

// The librdkafka implementation of KafkaSink, on the shared Producer core.
//
// Thread: the owning thread calls every public method; the delivery report
// handler runs on that thread inside Poll()/Flush().
class RdKafkaSink final : public KafkaSink {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaSink>> Create(const SinkConfig& config,
                                                           DeliveryCallback on_delivery);

  RdKafkaSink(const RdKafkaSink&) = delete;
  RdKafkaSink& operator=(const RdKafkaSink&) = delete;

  ~RdKafkaSink() override {
    if (producer_ == nullptr) return;  // Create() failed
    if (const int in_flight = InFlight(); in_flight > 0) {
      LogInfo(absl::StrCat("closing the Kafka producer with ", in_flight,
                           " records unconfirmed; PostgreSQL sends them again on restart"));
    }
    // The producer goes first: after it is destroyed no callback can reach this object.
    producer_.reset();
  }

  absl::Status Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                       Ticket ticket) override;
  void Poll(int timeout_ms) override;
  int wakeup_fd() const override { return producer_->fd(); }
  absl::Status Flush(absl::Duration timeout) override;
  int InFlight() const override {
    return producer_->in_flight() + static_cast<int>(pending_dead_letters_.size());
  }
  uint64_t DeadLettered() const override { return dead_lettered_; }
  bool Reachable() const override { return producer_->reachable(); }
  absl::Status Failure() const override { return producer_->failure(); }

 private:
  RdKafkaSink(const SinkConfig& config, DeliveryCallback on_delivery)
      : config_(config), on_delivery_(std::move(on_delivery)) {}

  // Sends a dead letter; on a full queue keeps it for later, on any other
  // immediate error fails its ticket.
  void SendDeadLetter(DeadLetter letter);
  // Queues what SendDeadLetter() had to keep, in order, until the queue fills.
  void RetryPendingDeadLetters();
  // A dead letter that cannot be queued: nothing can park the event, so the
  // relay must stop rather than rewind into the same failure.
  void FailDeadLetter(Ticket ticket, const absl::Status& why);
  void OnDelivery(const rd_kafka_message_t& message);

  const SinkConfig config_;
  const DeliveryCallback on_delivery_;
  Record scratch_;  // the record of the event in Produce(), kept for its buffers
  std::deque<DeadLetter> pending_dead_letters_;
  uint64_t dead_lettered_ = 0;
  bool purged_ = false;  // after the first failed delivery: this producer is done
  // Last member: destroyed first (see the destructor).
  std::unique_ptr<Producer> producer_;
};

absl::StatusOr<std::unique_ptr<KafkaSink>> RdKafkaSink::Create(const SinkConfig& config,
                                                               DeliveryCallback on_delivery) {
  if (!on_delivery) return absl::InvalidArgumentError("KafkaSink needs a delivery callback");
  if (absl::Status st = ValidateTopicName(config.dead_letter_topic); !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the dead-letter topic is unusable: ", st.message()));
  }
  // Not make_unique: the constructor is private to force Create().
  std::unique_ptr<RdKafkaSink> sink(new RdKafkaSink(config, std::move(on_delivery)));
  RdKafkaSink* self = sink.get();
  auto producer = Producer::Create(config, {}, [self](const rd_kafka_message_t& message) {
    self->OnDelivery(message);
  });
  if (!producer.ok()) return producer.status();
  sink->producer_ = std::move(*producer);
  return std::unique_ptr<KafkaSink>(std::move(sink));
}

absl::Status RdKafkaSink::Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                                  Ticket ticket) {
  RetryPendingDeadLetters();
  bool dead_lettered = false;
  absl::Status sent = SendEvent(
      event, topic_override, config_, producer_->message_max_bytes(), &scratch_,
      [&](const Record& record) { return producer_->Send(record, TicketToOpaque(ticket)); },
      &dead_lettered);
  if (sent.ok()) {
    if (dead_lettered) ++dead_lettered_;
    return sent;
  }
  if (absl::IsResourceExhausted(sent) || SinkFailureOf(sent) != SinkFailure::kNone) return sent;
  // Refused at once by this producer: a fresh one (a rewind) is the remedy.
  return SinkError(SinkFailure::kRewind,
                   absl::UnavailableError(absl::StrCat("cannot queue event ", event.id(), ": ",
                                                       sent.message())));
}

void RdKafkaSink::FailDeadLetter(Ticket ticket, const absl::Status& why) {
  on_delivery_(ticket, DeadLetterSendResult(why, config_));
}

void RdKafkaSink::SendDeadLetter(DeadLetter letter) {
  if (!pending_dead_letters_.empty()) {
    // Keep dead letters in the order they failed.
    pending_dead_letters_.push_back(std::move(letter));
    return;
  }
  absl::Status sent = producer_->Send(letter.record, TicketToOpaque(letter.ticket));
  if (sent.ok()) return;
  if (absl::IsResourceExhausted(sent)) {
    pending_dead_letters_.push_back(std::move(letter));
    return;
  }
  FailDeadLetter(letter.ticket, sent);
}

void RdKafkaSink::RetryPendingDeadLetters() {
  while (!pending_dead_letters_.empty()) {
    DeadLetter& letter = pending_dead_letters_.front();
    absl::Status sent = producer_->Send(letter.record, TicketToOpaque(letter.ticket));
    if (absl::IsResourceExhausted(sent)) return;
    if (!sent.ok()) FailDeadLetter(letter.ticket, sent);
    pending_dead_letters_.pop_front();
  }
}

void RdKafkaSink::Poll(int timeout_ms) {
  producer_->Poll(timeout_ms);
  RetryPendingDeadLetters();
}

absl::Status RdKafkaSink::Flush(absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  while (true) {
    RetryPendingDeadLetters();
    const absl::Duration left = deadline - absl::Now();
    // Short slices while dead letters wait for room, so they are queued as
    // soon as the queue drains; otherwise one flush for the whole time.
    absl::Duration slice = left;
    if (!pending_dead_letters_.empty()) slice = std::min(slice, absl::Milliseconds(50));
    producer_->Flush(static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(slice))));
    if (InFlight() == 0) return absl::OkStatus();
    if (absl::Now() >= deadline) break;
  }
  return absl::DeadlineExceededError(absl::StrCat(
      InFlight(), " Kafka records still in flight after waiting ", absl::FormatDuration(timeout)));
}

void RdKafkaSink::OnDelivery(const rd_kafka_message_t& message) {
  const Ticket ticket = OpaqueToTicket(message._private);
  const rd_kafka_resp_err_t err = message.err;
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    on_delivery_(ticket, absl::OkStatus());
    return;
  }
  const char* topic_name = rd_kafka_topic_name(message.rkt);
  const bool is_dead_letter = config_.dead_letter_topic == topic_name;
  if (is_dead_letter && IsPermanentRecordError(err)) {
    // The dead-letter topic refuses it too: nothing is left to park it in.
    FailDeadLetter(ticket, absl::UnavailableError(absl::StrCat("Kafka rejected it: ",
                                                               DeliveryError(message))));
    return;
  }
  if (!IsPermanentRecordError(err)) {
    // The owner will rewind and send everything from this record on again.
    // Records still queued behind it must not reach Kafka first: drop them
    // now (a record already in flight cannot be called back).
    if (err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && !purged_) {
      purged_ = true;
      producer_->PurgeQueued();
    }
    on_delivery_(ticket, SinkError(SinkFailure::kRewind,
                                   absl::UnavailableError(absl::StrCat(
                                       "Kafka gave up on a record for topic ", topic_name, ": ",
                                       DeliveryError(message)))));
    return;
  }

  if (config_.stop_on_poison) {
    std::string id = "?";
    rd_kafka_headers_t* hdrs = nullptr;  // owned by the message
    const void* value = nullptr;
    size_t size = 0;
    if (rd_kafka_message_headers(&message, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_header_get_last(hdrs, "id", &value, &size) == RD_KAFKA_RESP_ERR_NO_ERROR &&
        value != nullptr) {
      id.assign(static_cast<const char*>(value), size);
    }
    on_delivery_(ticket, PoisonError(id, absl::StrCat("the broker rejected it (",
                                                      DeliveryError(message), ")")));
    return;
  }

  // Kafka will never take this record; park it in the dead-letter topic so
  // the events behind it can be confirmed.
  Record rejected;
  rejected.topic = topic_name;
  if (message.key != nullptr) {
    rejected.key.assign(static_cast<const char*>(message.key), message.key_len);
  }
  if (message.payload != nullptr) {
    rejected.value.assign(static_cast<const char*>(message.payload), message.len);
  }
  rd_kafka_headers_t* original_headers = nullptr;  // owned by the message
  if (rd_kafka_message_headers(&message, &original_headers) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    const char* name = nullptr;
    const void* value = nullptr;
    size_t size = 0;
    for (size_t i = 0; rd_kafka_header_get_all(original_headers, i, &name, &value, &size) ==
                       RD_KAFKA_RESP_ERR_NO_ERROR;
         ++i) {
      rejected.headers.emplace_back(
          name, value == nullptr ? std::string()
                                 : std::string(static_cast<const char*>(value), size));
    }
  }
  const std::string reason =
      IsSizeError(err)
          ? absl::StrCat("record of ", message.len,
                         " bytes exceeds the broker's limit (client message.max.bytes=",
                         producer_->message_max_bytes(),
                         "); raise message.max.bytes on the broker and in "
                         "--kafka_property=message.max.bytes=...")
          : absl::StrCat("Kafka rejected the record: ", DeliveryError(message));
  LogWarning(absl::StrCat("record for topic ", topic_name, " goes to dead-letter topic ",
                          config_.dead_letter_topic, ": ", reason));
  ++dead_lettered_;
  SendDeadLetter(DeadLetter{ticket, DeadLetterCopy(rejected, reason, IsSizeError(err), config_)});
}

}  // namespace

absl::StatusOr<std::unique_ptr<KafkaSink>> KafkaSink::Create(const SinkConfig& config,
                                                             DeliveryCallback on_delivery) {
  return RdKafkaSink::Create(config, std::move(on_delivery));
}

}  // namespace outboxd::sink
