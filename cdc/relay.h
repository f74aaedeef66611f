// Relay: the stream thread. Reads the slot, decodes outbox inserts, hands them
// to the sink, and confirms to PostgreSQL what the sink has acknowledged.
//
//   Relay relay(options, [&](const SourceSystem&, EventSink::DeliveryCallback cb) {
//     return MakeKafkaSink(cb);
//   });
//   std::thread stopper(...);  // or a signal handler calling relay.Stop()
//   absl::Status result = relay.Run();   // returns after Stop() or a fatal error
//
// One thread does everything: it polls the replication socket, the sink's
// wake-up fd and a stop pipe; delivery reports are served on it (through
// EventSink::Poll), so the AckTracker needs no lock. When the sink is full the
// loop stops reading the socket, TCP pushes back on the walsender, and memory
// stays bounded.
//
// Failures and what happens:
// - connection lost, PostgreSQL restarting: reconnect with capped exponential
//   backoff, resuming after the last transaction received whole;
// - the server silent for --replication_timeout and not answering a status
//   update that asks for a reply (a dead network path, a hung server):
//   reconnect as above;
// - the slot is active elsewhere: wait as a hot standby, retry every second;
// - the sink gives up on an event (delivery failed): rewind — drop the
//   producer, make a fresh one and restart replication from the confirmed
//   position, so the event is read and sent again (never skipped);
// - a poison event (unroutable row, record Kafka rejects) goes to the
//   dead-letter topic, or with --on_poison=stop ends Run() with the reason;
// - bytes that do not decode, a changed outbox table: return the error (exit
//   non-zero); nothing past the last confirmed position was confirmed.
//
// Thread: Run() on one thread; Stop() from any thread or a signal handler.
#ifndef OUTBOXD_CDC_RELAY_H_
#define OUTBOXD_CDC_RELAY_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "outboxd/event_sink.h"
#include "stats/relay_stats.h"
#include "cdc/replication_stream.h"
#include "cdc/setup.h"
#include "cdc/topic_tags.h"
#include "checkpoint/ack_tracker.h"
#include "decoder/outbox_decoder.h"
#include "decoder/pgoutput.h"

namespace outboxd::cdc {

struct RelayOptions {
  std::string conninfo;
  OutboxConfig outbox;
  std::string dead_letter_topic = "outbox.dead-letter";
  // The sink's topic prefix, only to name topics in logs (the sink routes).
  std::string topic_prefix = "outbox.event.";
  // --on_poison=stop: a row that cannot be routed stops the relay instead of
  // going to the dead-letter topic (the sink does the same for what Kafka rejects).
  bool stop_on_poison = false;
  // Make a fresh sink for every replication session, once this relay holds
  // the slot (exactly-once: creating the sink fences other producers of the
  // slot and reads its checkpoint, which a hot standby must not do while the
  // active relay still works). Each session then replays from the confirmed
  // position, as after a rewind.
  bool sink_per_session = false;
  std::string sink_description;  // For the start-up log line, e.g. "Kafka at host:9092".
  absl::Duration status_interval = absl::Seconds(1);
  // --confirm_interval: a confirmed position that moved is reported this soon
  // (at most one status update per interval while it moves), so the slot
  // holds little WAL and a restart repeats little. Zero: only every
  // status_interval.
  absl::Duration confirm_interval = absl::Milliseconds(10);
  absl::Duration initial_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(5);
  absl::Duration shutdown_flush_timeout = absl::Seconds(10);
  absl::Duration progress_interval = absl::Seconds(10);
  // --replication_timeout: after this long without a message from the server
  // while the relay reads, it sends a status update that asks for a reply;
  // without one within kReplyTimeout (or this, if shorter) the path or the
  // server is taken as dead and the relay reconnects. Zero: no check.
  absl::Duration replication_timeout = absl::Seconds(30);
  // Opens each replication session; empty: PgReplicationStream::Connect.
  // Unit tests pass a scripted stream here.
  ReplicationStream::Factory connect;
};

class Relay {
 public:
  // How long the server has to answer a status update that asks for a reply.
  static constexpr absl::Duration kReplyTimeout = absl::Seconds(10);

  // stats: where the relay publishes its counters (nullptr: kept internally).
  Relay(RelayOptions options, EventSink::Factory sink_factory, stats::RelayStats* stats = nullptr);
  ~Relay();
  Relay(const Relay&) = delete;
  Relay& operator=(const Relay&) = delete;

  // start: the slot's confirmed_flush_lsn as read at start-up.
  absl::Status Run(Lsn start);
  // Async-signal-safe.
  void Stop();
  // Stop / go on reading the stream; the replication connection stays up and
  // status updates keep flowing while paused. Any thread.
  void Pause() { stats_->paused.store(true); }
  void Resume() {
    stats_->paused.store(false);
    WakeLoop();
  }

  // For tests and status: what has been confirmed so far.
  Lsn ConfirmedLsn() const { return tracker_.SafeLsn(); }

 private:
  enum class SessionEnd { kStopped, kReconnect, kRewind };
  struct PendingEvent {
    decoder::DecodedEvent decoded;
    uint64_t ticket = 0;
  };

  // The sink for events from `source` (empty before any session).
  absl::Status MakeSink(const SourceSystem& source);
  absl::StatusOr<SessionEnd> RunSession();
  // Opens a replication session; nullptr when Stop() came first.
  absl::StatusOr<std::unique_ptr<ReplicationStream>> OpenStream(const StreamOptions& options);
  // Decodes one pgoutput message. Sets pending_ when the sink is full.
  absl::Status HandleData(const StreamItem& item);
  // Hands the pending event to the sink; false while the sink is full.
  absl::StatusOr<bool> ProducePending();
  SessionEnd Shutdown(ReplicationStream& stream, Lsn received);
  void OnDelivery(uint64_t generation, uint64_t ticket, const absl::Status& status);
  void MaybeLogProgress(absl::Time now, Lsn received);
  // Refreshes the gauges in stats_ (stream thread).
  void PublishGauges();
  // Makes the loop's poll() return at once (it then re-reads stop_ and the
  // pause flag). Async-signal-safe: one write(2) to the stop pipe.
  void WakeLoop();
  // Sleeps up to d; false if Stop() was called meanwhile.
  bool WaitUnlessStopped(absl::Duration d);

  RelayOptions options_;
  EventSink::Factory sink_factory_;
  std::unique_ptr<EventSink> sink_;
  uint64_t sink_generation_ = 0;
  absl::Status delivery_failure_;

  checkpoint::AckTracker tracker_;
  decoder::PgOutputParser parser_;
  decoder::OutboxDecoder decoder_;
  // The event being handed to the sink; kept from event to event for its
  // memory. pending_: it still waits for room in the sink.
  PendingEvent event_;
  bool pending_ = false;

  stats::RelayStats own_stats_;
  stats::RelayStats* stats_;
  uint64_t dead_lettered_ = 0;            // by the relay itself (unroutable rows)
  uint64_t dead_lettered_by_old_sinks_ = 0;  // by sinks dropped in a rewind
  // Which topic each transaction in flight went to, for stats_->oldest_unacked_topic().
  TopicTags topic_tags_;
  uint32_t published_topic_tag_ = 0;

  std::atomic<bool> stop_{false};
  int stop_pipe_[2] = {-1, -1};

  // Progress, for the periodic log line.
  uint64_t delivered_ = 0;
  uint64_t delivered_at_last_log_ = 0;
  uint64_t delivered_at_last_rewind_ = 0;
  absl::Time last_progress_log_ = absl::Now();
  bool logged_start_ = false;
  // The failover warning last logged ("" none): logged again only when it changes.
  std::string last_failover_warning_;
};

}  // namespace outboxd::cdc

#endif  // OUTBOXD_CDC_RELAY_H_
