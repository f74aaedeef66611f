#include "sink/kafka_sink.h"

#include <fcntl.h>
#include <librdkafka/rdkafka.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "outboxd/log.h"
#include "outboxd/status_macros.h"
#include "sink/rdkafka_util.h"
#include "sink/record.h"

namespace outboxd::sink {
namespace {

// The opaque pointer of each message carries its ticket by value, so no
// per-message heap state exists that could leak when the sink is destroyed
// with records in flight.
static_assert(sizeof(void*) >= sizeof(Ticket), "a ticket must fit in librdkafka's msg_opaque");


// Kafka's own limit (kafka.common.internals.Topic.MAX_NAME_LENGTH).
constexpr size_t kMaxTopicNameLength = 249;

void* TicketToOpaque(Ticket ticket) {
  return reinterpret_cast<void*>(static_cast<uintptr_t>(ticket));
}
Ticket OpaqueToTicket(void* opaque) {
  return static_cast<Ticket>(reinterpret_cast<uintptr_t>(opaque));
}

std::string QuoteTopic(absl::string_view topic) {
  return absl::StrCat("\"", absl::CHexEscape(topic), "\"");
}

constexpr absl::string_view kPoisonPrefix = "poison event: ";

absl::Status PoisonError(absl::string_view event_id, absl::string_view reason) {
  return absl::FailedPreconditionError(absl::StrCat(
      kPoisonPrefix, "Kafka cannot take event id=", event_id, ": ", reason,
      ". Stopping because of --on_poison=stop; nothing past it is confirmed. Fix the row or the "
      "broker limit and restart, or run with --on_poison=dead-letter to park such events"));
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

// The librdkafka implementation of KafkaSink.
//
// Thread: the owning thread calls every public method; the delivery report
// callback runs on that thread inside rd_kafka_poll()/rd_kafka_flush(). The
// error callback also runs from rd_kafka_poll(), but the log callback runs on
// librdkafka's internal threads, so whatever the callbacks share with other
// threads (brokers_reachable_) is atomic.
class RdKafkaSink final : public KafkaSink {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaSink>> Create(const SinkConfig& config,
                                                           DeliveryCallback on_delivery);

  RdKafkaSink(const RdKafkaSink&) = delete;
  RdKafkaSink& operator=(const RdKafkaSink&) = delete;

  ~RdKafkaSink() override {
    if (const int in_flight = InFlight(); producer_.get() != nullptr && in_flight > 0) {
      LogInfo(absl::StrCat("closing the Kafka producer with ", in_flight,
                           " records unconfirmed; PostgreSQL sends them again on restart"));
    }
    // The handle goes first: after rd_kafka_destroy() returns no callback can
    // reach this object, and librdkafka no longer writes to the wakeup pipe.
    producer_.Reset();
  }

  absl::Status Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                       Ticket ticket) override;
  void Poll(int timeout_ms) override;
  int wakeup_fd() const override { return wakeup_.fd(); }
  absl::Status Flush(absl::Duration timeout) override;
  int InFlight() const override {
    return records_in_flight_ + static_cast<int>(pending_dead_letters_.size());
  }
  uint64_t DeadLettered() const override { return dead_lettered_; }
  bool BrokersReachable() const override {
    return brokers_reachable_.load(std::memory_order_relaxed);
  }

 private:
  RdKafkaSink(const SinkConfig& config, DeliveryCallback on_delivery)
      : config_(config), on_delivery_(std::move(on_delivery)) {}

  absl::Status Init();

  // Queues one record. Returns librdkafka's immediate error; nothing is
  // queued unless it is NO_ERROR.
  rd_kafka_resp_err_t ProduceRecord(const Record& record, Ticket ticket);

  // Sends a dead letter; on a full queue keeps it for later, on any other
  // immediate error fails its ticket.
  void SendDeadLetter(DeadLetter letter);
  // Queues what SendDeadLetter() had to keep, in order, until the queue fills.
  void RetryPendingDeadLetters();
  // Reads whatever librdkafka wrote to the wakeup pipe, so poll() on it blocks
  // again until the next report.

  void OnDelivery(const rd_kafka_message_t& message);
  void OnError(rd_kafka_t* rk, int err, const char* reason);

  static void DeliveryReportCallback(rd_kafka_t* rk, const rd_kafka_message_t* message,
                                     void* opaque);
  static void ErrorCallback(rd_kafka_t* rk, int err, const char* reason, void* opaque);

  const SinkConfig config_;
  const DeliveryCallback on_delivery_;
  int64_t message_max_bytes_ = 0;
  Record scratch_;  // the record of the event in Produce(), kept for its buffers
  std::deque<DeadLetter> pending_dead_letters_;
  uint64_t dead_lettered_ = 0;
  bool purged_ = false;  // after the first failed delivery: this producer is done
  // Records librdkafka accepted and has not reported yet. Counted here rather
  // than with rd_kafka_outq_len(), which also counts queued error events and
  // so overstates what is in flight while brokers are down.
  int records_in_flight_ = 0;
  std::atomic<bool> brokers_reachable_{true};
  WakeupPipe wakeup_;  // declared before producer_: the handle goes first
  // Last member: destroyed first (see the destructor).
  ProducerHandle producer_;
};

absl::StatusOr<std::unique_ptr<KafkaSink>> RdKafkaSink::Create(const SinkConfig& config,
                                                               DeliveryCallback on_delivery) {
  if (config.brokers.empty()) {
    return absl::InvalidArgumentError(
        "no Kafka brokers given: pass --brokers=HOST:PORT[,...] or set OUTBOXD_BROKERS");
  }
  if (!on_delivery) return absl::InvalidArgumentError("KafkaSink needs a delivery callback");
  if (absl::Status st = ValidateTopicName(config.dead_letter_topic); !st.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("the dead-letter topic is unusable: ", st.message()));
  }
  // Not make_unique: the constructor is private to force Create().
  std::unique_ptr<RdKafkaSink> sink(new RdKafkaSink(config, std::move(on_delivery)));
  RETURN_IF_ERROR(sink->Init());
  return std::unique_ptr<KafkaSink>(std::move(sink));
}

absl::Status RdKafkaSink::Init() {
  ConfPtr conf(rd_kafka_conf_new());
  RETURN_IF_ERROR(ApplyProducerProperties(conf.get(), config_, {}));
  std::array<char, 512> errstr{};
  std::array<char, 64> max_bytes{};
  size_t max_bytes_size = max_bytes.size();
  if (rd_kafka_conf_get(conf.get(), "message.max.bytes", max_bytes.data(), &max_bytes_size) ==
      RD_KAFKA_CONF_OK) {
    message_max_bytes_ = std::strtoll(max_bytes.data(), nullptr, 10);
  }

  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &RdKafkaSink::DeliveryReportCallback);
  rd_kafka_conf_set_error_cb(conf.get(), &RdKafkaSink::ErrorCallback);
  rd_kafka_conf_set_log_cb(conf.get(), &LogToOutboxd);

  rd_kafka_t* rk =
      rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr.data(), errstr.size());
  if (rk == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create the Kafka producer: ", errstr.data()));
  }
  conf.release();  // rd_kafka_new() owns it now.
  producer_ = ProducerHandle(rk);

  ASSIGN_OR_RETURN(auto wakeup, WakeupPipe::Attach(rk));
  wakeup_ = std::move(wakeup);
  return absl::OkStatus();
}

absl::Status RdKafkaSink::Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                                  Ticket ticket) {
  RetryPendingDeadLetters();
  Record& record = scratch_;
  BuildRecord(event, topic_override, config_, &record);
  if (!record.dead_letter_reason.empty()) {
    if (config_.stop_on_poison) return PoisonError(event.id(), record.dead_letter_reason);
    LogWarning(absl::StrCat("event ", event.id(), " goes to dead-letter topic ", record.topic,
                            ": ", record.dead_letter_reason));
  }
  rd_kafka_resp_err_t err = ProduceRecord(record, ticket);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR && !record.dead_letter_reason.empty()) ++dead_lettered_;
  if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && record.dead_letter_reason.empty()) {
    const std::string reason = absl::StrCat(
        "record of ", record.ByteSize(), " bytes exceeds message.max.bytes=", message_max_bytes_,
        "; raise it on the broker and in --kafka_property=message.max.bytes=...");
    if (config_.stop_on_poison) return PoisonError(event.id(), reason);
    LogWarning(absl::StrCat("event ", event.id(), " goes to dead-letter topic ",
                            config_.dead_letter_topic, " without its payload: ", reason));
    err = ProduceRecord(DeadLetterCopy(record, reason, /*strip_payload=*/true, config_), ticket);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) ++dead_lettered_;
  }
  switch (err) {
    case RD_KAFKA_RESP_ERR_NO_ERROR:
      return absl::OkStatus();
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return absl::ResourceExhaustedError("Kafka producer queue is full");
    default:
      return absl::UnavailableError(absl::StrCat("cannot queue event ", event.id(), " for topic ",
                                                 record.topic, ": ", rd_kafka_err2name(err), ": ",
                                                 rd_kafka_err2str(err)));
  }
}

rd_kafka_resp_err_t RdKafkaSink::ProduceRecord(const Record& record, Ticket ticket) {
  const Headers& headers = record.headers;
  const std::string& key = record.key;
  const std::string& value = record.value;
  HeadersPtr hdrs(rd_kafka_headers_new(headers.size()));
  for (const auto& [name, header_value] : headers) {
    rd_kafka_header_add(hdrs.get(), name.data(), static_cast<ssize_t>(name.size()),
                        header_value.data(), static_cast<ssize_t>(header_value.size()));
  }
  rd_kafka_topic_t* topic = producer_.Topic(record.topic);
  if (topic == nullptr) return rd_kafka_last_error();
  // Casts: librdkafka's varargs take non-const pointers, but with
  // RD_KAFKA_MSG_F_COPY it copies and never writes through them.
  rd_kafka_resp_err_t err = rd_kafka_producev(
      producer_.get(), RD_KAFKA_V_RKT(topic),
      RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
      RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()),
      RD_KAFKA_V_KEY(key.data(), key.size()), RD_KAFKA_V_HEADERS(hdrs.get()),
      RD_KAFKA_V_OPAQUE(TicketToOpaque(ticket)), RD_KAFKA_V_END);
  // On success librdkafka owns the headers; on failure they are still ours.
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    hdrs.release();
    ++records_in_flight_;
  }
  return err;
}

void RdKafkaSink::SendDeadLetter(DeadLetter letter) {
  if (!pending_dead_letters_.empty()) {
    // Keep dead letters in the order they failed.
    pending_dead_letters_.push_back(std::move(letter));
    return;
  }
  rd_kafka_resp_err_t err = ProduceRecord(letter.record, letter.ticket);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) return;
  if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
    pending_dead_letters_.push_back(std::move(letter));
    return;
  }
  on_delivery_(letter.ticket,
               absl::UnavailableError(absl::StrCat(
                   "cannot queue a record for dead-letter topic ", config_.dead_letter_topic, ": ",
                   rd_kafka_err2name(err), ": ", rd_kafka_err2str(err))));
}

void RdKafkaSink::RetryPendingDeadLetters() {
  while (!pending_dead_letters_.empty()) {
    DeadLetter& letter = pending_dead_letters_.front();
    rd_kafka_resp_err_t err = ProduceRecord(letter.record, letter.ticket);
    if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) return;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      on_delivery_(letter.ticket,
                   absl::UnavailableError(absl::StrCat(
                       "cannot queue a record for dead-letter topic ", config_.dead_letter_topic,
                       ": ", rd_kafka_err2name(err), ": ", rd_kafka_err2str(err))));
    }
    pending_dead_letters_.pop_front();
  }
}


void RdKafkaSink::Poll(int timeout_ms) {
  if (timeout_ms > 0) {
    rd_kafka_poll(producer_.get(), timeout_ms);
  }
  wakeup_.Drain();
  while (rd_kafka_poll(producer_.get(), 0) > 0) {
  }
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
    rd_kafka_flush(producer_.get(),
                   static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(slice))));
    if (InFlight() == 0) return absl::OkStatus();
    if (absl::Now() >= deadline) break;
  }
  return absl::DeadlineExceededError(absl::StrCat(
      InFlight(), " Kafka records still in flight after waiting ", absl::FormatDuration(timeout)));
}

// Not rd_kafka_message_errstr(): it "MUST NOT be used with the producer" —
// on a delivery report it returns the record's value as if it were a C
// string (read past the end) or treats our msg_opaque as an internal op.
std::string DeliveryError(const rd_kafka_message_t& message) {
  return absl::StrCat(rd_kafka_err2name(message.err), ": ", rd_kafka_err2str(message.err));
}

void RdKafkaSink::OnDelivery(const rd_kafka_message_t& message) {
  --records_in_flight_;
  const Ticket ticket = OpaqueToTicket(message._private);
  const rd_kafka_resp_err_t err = message.err;
  const char* topic_name = rd_kafka_topic_name(message.rkt);
  if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    if (!brokers_reachable_.exchange(true)) LogInfo("Kafka reachable again");
    on_delivery_(ticket, absl::OkStatus());
    return;
  }
  const bool is_dead_letter = config_.dead_letter_topic == topic_name;
  if (!IsPermanentRecordError(err) || is_dead_letter) {
    // The owner will rewind and send everything from this record on again.
    // Records still queued behind it must not reach Kafka first: drop them
    // now (a record already in flight cannot be called back).
    if (err != RD_KAFKA_RESP_ERR__PURGE_QUEUE && !purged_) {
      purged_ = true;
      rd_kafka_purge(producer_.get(), RD_KAFKA_PURGE_F_QUEUE);
    }
    on_delivery_(ticket, absl::UnavailableError(absl::StrCat(
                             "Kafka gave up on a record for topic ", topic_name, ": ",
                             DeliveryError(message))));
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
    on_delivery_(ticket, PoisonError(id, absl::StrCat("the broker rejected it (", DeliveryError(message), ")")));
    return;
  }

  // Kafka will never take this record; park it in the dead-letter topic so
  // the events behind it can be confirmed.
  Record rejected;
  rejected.topic = topic_name;
  if (message.key != nullptr) rejected.key.assign(static_cast<const char*>(message.key), message.key_len);
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
          name, value == nullptr ? std::string() : std::string(static_cast<const char*>(value), size));
    }
  }
  const std::string reason =
      IsSizeError(err)
          ? absl::StrCat("record of ", message.len,
                         " bytes exceeds the broker's limit (client message.max.bytes=",
                         message_max_bytes_,
                         "); raise message.max.bytes on the broker and in "
                         "--kafka_property=message.max.bytes=...")
          : absl::StrCat("Kafka rejected the record: ", DeliveryError(message));
  LogWarning(absl::StrCat("record for topic ", topic_name, " goes to dead-letter topic ",
                          config_.dead_letter_topic, ": ", reason));
  ++dead_lettered_;
  SendDeadLetter(DeadLetter{ticket, DeadLetterCopy(rejected, reason, IsSizeError(err), config_)});
}

void RdKafkaSink::OnError(rd_kafka_t* rk, int err, const char* reason) {
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    if (brokers_reachable_.exchange(false)) {
      LogWarning(absl::StrCat("all Kafka brokers are down (", reason,
                              "); events are kept and retried, nothing past them is confirmed"));
    }
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    std::array<char, 512> fatal{};
    rd_kafka_resp_err_t fatal_err = rd_kafka_fatal_error(rk, fatal.data(), fatal.size());
    LogError(absl::StrCat("fatal Kafka producer error ", rd_kafka_err2name(fatal_err), ": ",
                          fatal.data(),
                          "; every record in flight fails and nothing past them is confirmed"));
    return;
  }
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  // librdkafka already logged these connection failures through the log
  // callback (facility FAIL); a second line per failure is noise.
  const LogLevel level =
      code == RD_KAFKA_RESP_ERR__TRANSPORT || code == RD_KAFKA_RESP_ERR__RESOLVE
          ? LogLevel::kDebug
          : LogLevel::kWarning;
  Log(level, absl::StrCat("kafka: ", rd_kafka_err2name(code), ": ", reason));
}

void RdKafkaSink::DeliveryReportCallback(rd_kafka_t* rk, const rd_kafka_message_t* message,
                                         void* opaque) {
  static_cast<RdKafkaSink*>(opaque)->OnDelivery(*message);
}

void RdKafkaSink::ErrorCallback(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  static_cast<RdKafkaSink*>(opaque)->OnError(rk, err, reason);
}

}  // namespace

bool IsPoison(const absl::Status& status) {
  return absl::IsFailedPrecondition(status) && absl::StartsWith(status.message(), kPoisonPrefix);
}

absl::Status ValidateTopicName(absl::string_view topic) {
  if (topic.empty()) {
    return absl::InvalidArgumentError("topic name \"\" is empty; Kafka needs at least 1 character");
  }
  if (topic == "." || topic == "..") {
    return absl::InvalidArgumentError(
        absl::StrCat("topic name ", QuoteTopic(topic), " is reserved; Kafka rejects \".\" and \"..\""));
  }
  if (topic.size() > kMaxTopicNameLength) {
    return absl::InvalidArgumentError(absl::StrCat("topic name ", QuoteTopic(topic), " is ",
                                                   topic.size(),
                                                   " characters long; Kafka allows at most ",
                                                   kMaxTopicNameLength));
  }
  for (size_t i = 0; i < topic.size(); ++i) {
    const char c = topic[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(absl::StrCat(
          "topic name ", QuoteTopic(topic), " has '", absl::CHexEscape(absl::string_view(&c, 1)),
          "' at position ", i, "; Kafka allows only ASCII letters, digits, '.', '_' and '-'"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<KafkaSink>> KafkaSink::Create(const SinkConfig& config,
                                                             DeliveryCallback on_delivery) {
  return RdKafkaSink::Create(config, std::move(on_delivery));
}

}  // namespace outboxd::sink
