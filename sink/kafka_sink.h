// KafkaSink: at-least-once delivery. Produces outbox events to Kafka and
// reports each one's fate; an EventSink (outboxd/event_sink.h) for the relay.
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
// in the dead-letter topic); an error marked SinkFailure::kRewind when
// librdkafka gave up on it (timeout, fatal producer error) — the caller must
// not confirm past it; with stop_on_poison, a kPoison error (IsPoison) for a
// record Kafka will never take; kFatal when a dead letter itself cannot be
// written.
//
// Thread: one owning thread calls every method; the delivery callback runs on
// that thread inside Poll() or Flush(). Not thread-safe.
#ifndef OUTBOXD_SINK_KAFKA_SINK_H_
#define OUTBOXD_SINK_KAFKA_SINK_H_

#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "outboxd/event_sink.h"
#include "sink/record.h"
#include "sink/sink_config.h"

namespace outboxd::sink {

class KafkaSink : public EventSink {
 public:
  static absl::StatusOr<std::unique_ptr<KafkaSink>> Create(const SinkConfig& config,
                                                           DeliveryCallback on_delivery);
};

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_KAFKA_SINK_H_
