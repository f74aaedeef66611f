// KafkaSink: produces outbox events to Kafka and reports each one's fate.
//
//   SinkConfig config{.brokers = "127.0.0.1:9092"};
//   auto sink = KafkaSink::Create(config, [&](Ticket t, absl::Status s) { ... });
//   absl::Status st = (*sink)->Produce(event, /*topic_override=*/"", ticket);
//   if (absl::IsResourceExhausted(st)) { /* queue full: Poll() and retry */ }
//   (*sink)->Poll(0);  // runs the delivery callback for finished messages
//
// The producer is idempotent with acks=all, so retries inside librdkafka never
// reorder or duplicate a partition's records. Topic = topic_override when set,
// else "<topic_prefix><aggregate_type>" (default prefix "outbox.event.");
// key = aggregate_id; headers: "id", "event_type", then every entry of
// event.headers(). An event whose topic name Kafka would reject (empty, "." or
// "..", longer than 249 characters, a character outside [A-Za-z0-9._-]) is
// produced to the dead-letter topic instead, with the reason and the original
// topic in headers; the delivery callback then reports OK for its ticket.
//
// Delivery callback: OK when Kafka acknowledged the record (in its own topic or
// in the dead-letter topic); an error status when librdkafka gave up on it
// (timeout, fatal producer error) — the caller must not confirm past it; with
// stop_on_poison, IsPoison(status) for a record Kafka will never take.
//
// Thread: one owning thread calls every method; the delivery callback runs on
// that thread inside Poll() or Flush(). Not thread-safe.
#ifndef OUTBOXD_SINK_KAFKA_SINK_H_
#define OUTBOXD_SINK_KAFKA_SINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "outboxd/v1/event.pb.h"

namespace outboxd::sink {

using Ticket = uint64_t;
using DeliveryCallback = std::function<void(Ticket ticket, const absl::Status& status)>;

struct SinkConfig {
  std::string brokers;  // bootstrap.servers
  // Any librdkafka property, applied after outboxd's defaults so it wins.
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  int linger_ms = 1;
  std::string topic_prefix = "outbox.event.";
  std::string dead_letter_topic = "outbox.dead-letter";
  // --on_poison=stop: instead of dead-lettering an event Kafka cannot take
  // (invalid topic, rejected record), report it as FailedPrecondition, naming
  // the event and the reason, so the relay stops before confirming past it.
  bool stop_on_poison = false;
};

// The error a poison event is reported with when stop_on_poison is set.
bool IsPoison(const absl::Status& status);

// Why a topic name is unusable, or OK.
absl::Status ValidateTopicName(absl::string_view topic);

class KafkaSink {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaSink>> Create(const SinkConfig& config,
                                                           DeliveryCallback on_delivery);
  virtual ~KafkaSink() = default;

  // Queues one event. ResourceExhausted: the producer queue is full; nothing
  // was queued — serve Poll() and try the same event again.
  virtual absl::Status Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                               Ticket ticket) = 0;

  // Serves delivery reports, waiting up to timeout_ms (0: do not wait).
  virtual void Poll(int timeout_ms) = 0;

  // A file descriptor that turns readable when delivery reports are waiting,
  // so an event loop can poll() it beside other sockets and then call Poll(0).
  virtual int wakeup_fd() const = 0;

  // Waits until every queued event is delivered or failed, up to timeout.
  // DeadlineExceeded if some are still in flight.
  virtual absl::Status Flush(absl::Duration timeout) = 0;

  // Records queued or in flight, not yet reported.
  virtual int InFlight() const = 0;

  // Events routed to the dead-letter topic so far.
  virtual uint64_t DeadLettered() const = 0;

  // False once librdkafka reported every broker down; true again after the
  // next successful delivery (and before the first failure).
  virtual bool BrokersReachable() const = 0;
};

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_KAFKA_SINK_H_
