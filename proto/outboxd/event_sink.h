// EventSink: where the relay hands decoded events. The one interface between
// cdc/ (PostgreSQL) and sink/ (Kafka), declared here, below both, so that
// neither knows the other and main needs no adapter: sink::KafkaSink
// (at-least-once) and sink::TransactionalSink (exactly-once) implement it.
//
//   EventSink::Factory factory = [&](const SourceSystem&, DeliveryCallback cb) {
//     return KafkaSink::Create(config, cb);
//   };
//   std::unique_ptr<EventSink> sink = *factory(on_delivery);
//   absl::Status s = sink->Produce(event, /*topic_override=*/"", ticket);
//   if (absl::IsResourceExhausted(s)) { /* full: poll(wakeup_fd()), Poll(0), try again */ }
//   sink->Poll(0);   // delivery results arrive through on_delivery, here
//
// Contract: Produce() returns ResourceExhausted when the sink cannot take the
// event now (nothing was queued; offer the same event again later). Delivery
// results come back through the callback given at creation, on the thread
// that calls Poll() or Flush(). A failure, returned by Produce() or reported
// for a ticket, says what the relay must do through its SinkFailure (below),
// never through its message text.
//
// Thread: one owning thread calls every method. Not thread-safe.
#ifndef OUTBOXD_PROTO_OUTBOXD_EVENT_SINK_H_
#define OUTBOXD_PROTO_OUTBOXD_EVENT_SINK_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "outboxd/lsn.h"
#include "outboxd/v1/event.pb.h"

namespace outboxd {

// Identifies an event (or a PostgreSQL transaction's events) to the relay's
// AckTracker; handed back with the event's delivery result.
using Ticket = uint64_t;
using DeliveryCallback = std::function<void(Ticket ticket, const absl::Status& status)>;

// What a failed delivery or a failed Produce() asks of the relay. It travels
// with the absl::Status as a payload (SinkError), so the decision is made on
// a type, once, and a reworded message cannot change it.
enum class SinkFailure {
  kNone,    // OK, or a status that carries no kind (treated like kRewind)
  // Kafka failed for now (a record timed out, the producer failed, a Kafka
  // transaction aborted): drop this sink, make a fresh one and replay from
  // the confirmed position. Nothing is lost; PostgreSQL still has it.
  kRewind,
  // The event can never be delivered and --on_poison=stop: stop without
  // confirming past it.
  kPoison,
  // The sink cannot go on at all (the dead-letter topic cannot be written):
  // stop with the reason instead of rewinding into the same failure forever.
  kFatal,
};

// `status` (not OK) marked with `kind`.
absl::Status SinkError(SinkFailure kind, absl::Status status);
// The kind SinkError() attached; kNone for OK or unmarked statuses.
SinkFailure SinkFailureOf(const absl::Status& status);
inline bool IsPoison(const absl::Status& status) {
  return SinkFailureOf(status) == SinkFailure::kPoison;
}
// Poison and fatal failures end the relay; everything else rewinds.
inline bool StopsTheRelay(const absl::Status& status) {
  const SinkFailure kind = SinkFailureOf(status);
  return kind == SinkFailure::kPoison || kind == SinkFailure::kFatal;
}

// What a sink is told of the PostgreSQL server its events come from.
struct SourceSystem {
  // IDENTIFY_SYSTEM's systemid of the session's server; empty for a sink made
  // before any session (one sink for the relay's life, at-least-once).
  std::string system_identifier;
  // A sink that waits for its broker while it is made (exactly-once
  // recovery) calls this between two waits of at most ~100 ms: the relay
  // answers PostgreSQL in it; false (stop, or the connection broke) means
  // give up (Cancelled). Unset: no one to ask.
  std::function<bool()> keep_waiting;
};

class EventSink {
 public:
  using DeliveryCallback = ::outboxd::DeliveryCallback;
  // Makes a fresh sink; the relay calls it at start and after a rewind (or,
  // per session, once the session holds the slot).
  using Factory =
      std::function<absl::StatusOr<std::unique_ptr<EventSink>>(const SourceSystem&, DeliveryCallback)>;

  virtual ~EventSink() = default;

  // Queues one event. ResourceExhausted: nothing was queued — serve Poll()
  // and offer the same event again.
  virtual absl::Status Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                               Ticket ticket) = 0;
  // Serves delivery reports (and any work the sink does in the background),
  // waiting up to timeout_ms (0: do not wait).
  virtual void Poll(int timeout_ms) = 0;
  // Turns readable when Poll() has something to serve, so an event loop can
  // poll() it beside other sockets and then call Poll(0). -1: none.
  virtual int wakeup_fd() const = 0;
  // Waits until every queued event is delivered or failed (exactly-once: the
  // open Kafka transaction is committed or aborted), up to timeout.
  // DeadlineExceeded if some are still in flight. Blocks: for shutdown only.
  virtual absl::Status Flush(absl::Duration timeout) = 0;
  // Events queued or in flight, not reported yet.
  virtual int InFlight() const = 0;

  // Transaction-aware sinks (exactly-once) use these; others ignore them.
  // A PostgreSQL transaction ended at end_lsn (called for every commit).
  virtual void EndOfTransaction(Lsn end_lsn) {}
  // The replication stream has nothing more buffered right now.
  virtual void StreamIdle() {}
  // The replication connection dropped; the server will send the open
  // PostgreSQL transaction again. A sink that holds something open for it
  // (a Kafka transaction) ends it now, progressing in Poll().
  virtual void StreamLost() {}
  // A position the sink itself knows to be delivered (its own checkpoint),
  // read when it was created; replication resumes after it. 0/0 if none.
  virtual Lsn RecoveredPosition() const { return Lsn(); }
  // How soon the sink has work of its own to do in Poll() or StreamIdle()
  // even if nothing else happens (exactly-once: a batch to commit at its age
  // limit); the relay's loop wakes by then. InfiniteDuration: none.
  virtual absl::Duration WorkDueIn() const { return absl::InfiniteDuration(); }

  // For status and metrics.
  virtual uint64_t DeadLettered() const { return 0; }  // events routed to the dead-letter topic
  virtual bool Reachable() const { return true; }       // false while every broker is down

  // A failure of the sink as a whole, seen in Poll() and kept from then on:
  // OK, or a SinkFailure::kFatal error the relay stops with (Kafka refused
  // the credentials: retrying the same ones cannot help).
  virtual absl::Status Failure() const { return absl::OkStatus(); }
};

}  // namespace outboxd

#endif  // OUTBOXD_PROTO_OUTBOXD_EVENT_SINK_H_
