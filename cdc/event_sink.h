// EventSink: where the relay hands decoded events, as cdc/ sees it.
//
// cdc/ does not know Kafka; main wires sink::KafkaSink in behind this
// interface (and tests can put any sink there). Same contract as KafkaSink:
// Produce() returns ResourceExhausted when full; delivery results come back
// through the callback given at creation, on the thread that calls Poll() or
// Flush(). A delivery failure with code FailedPrecondition means the event
// can never be delivered (a poison event under --on_poison=stop): the relay
// stops. Any other failure is transient: the relay rewinds and sends again.
#ifndef OUTBOXD_CDC_EVENT_SINK_H_
#define OUTBOXD_CDC_EVENT_SINK_H_

#include <cstdint>
#include <functional>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "outboxd/lsn.h"
#include "outboxd/v1/event.pb.h"

namespace outboxd::cdc {

class EventSink {
 public:
  using DeliveryCallback = std::function<void(uint64_t ticket, const absl::Status& status)>;
  // Makes a fresh sink; the relay calls it at start and after a rewind.
  using Factory = std::function<absl::StatusOr<std::unique_ptr<EventSink>>(DeliveryCallback)>;

  virtual ~EventSink() = default;
  virtual absl::Status Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                               uint64_t ticket) = 0;
  virtual void Poll(int timeout_ms) = 0;
  virtual int wakeup_fd() const = 0;
  virtual absl::Status Flush(absl::Duration timeout) = 0;
  virtual int InFlight() const = 0;

  // Transaction-aware sinks (exactly-once) use these; others ignore them.
  // A PostgreSQL transaction ended at end_lsn (called for every commit).
  virtual void EndOfTransaction(Lsn end_lsn) {}
  // The replication stream has nothing more buffered right now.
  virtual void StreamIdle() {}
  // A position the sink itself knows to be delivered (its own checkpoint),
  // read when it was created; replication resumes after it. 0/0 if none.
  virtual Lsn RecoveredPosition() const { return Lsn(); }

  // For status and metrics.
  virtual uint64_t DeadLettered() const { return 0; }  // events routed to the dead-letter topic
  virtual bool Reachable() const { return true; }       // false while every broker is down
};

}  // namespace outboxd::cdc

#endif  // OUTBOXD_CDC_EVENT_SINK_H_
