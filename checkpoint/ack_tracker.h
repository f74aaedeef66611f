// AckTracker: which WAL position is safe to confirm to PostgreSQL.
//
//   AckTracker tracker(/*confirmed=*/slot_confirmed_flush_lsn);
//   tracker.BeginTransaction();
//   AckTracker::Ticket t = tracker.AddEvent();   // one per event handed to Kafka
//   tracker.CommitTransaction(commit.end_lsn);
//   ...
//   tracker.Ack(t);                               // Kafka acknowledged the event
//   Lsn flush = tracker.SafeLsn();                // report in the standby status update
//
// The rule: SafeLsn() is the end LSN of the longest prefix of committed
// transactions (in commit order, which is the order pgoutput sends them) whose
// events are all acknowledged. Transactions without events (writes to other
// tables, outbox rows filtered out) cost nothing: they fold into the transaction
// before them, or advance the position at once when nothing is in flight.
// When nothing is in flight and no transaction is open, SafeLsn() also follows
// the server's keepalive position, so an idle outbox never pins WAL and a
// PostgreSQL fast shutdown (which waits for the client to confirm everything it
// was sent) is never held up.
//
// SafeLsn() never decreases and never passes an unacknowledged event.
// Memory: one small entry per transaction that has events in flight; a
// transaction's events share one counter, whatever their number.
//
// Thread: single-threaded. outboxd's stream thread owns it: it decodes, hands
// events to the sink and serves the sink's delivery reports on the same thread,
// so no lock is needed.
#ifndef OUTBOXD_CHECKPOINT_ACK_TRACKER_H_
#define OUTBOXD_CHECKPOINT_ACK_TRACKER_H_

#include <cstdint>
#include <deque>

#include "outboxd/lsn.h"

namespace outboxd::checkpoint {

class AckTracker {
 public:
  // Identifies the transaction an event belongs to.
  using Ticket = uint64_t;

  // confirmed: what the slot has confirmed; reading starts there too.
  explicit AckTracker(Lsn confirmed = Lsn()) : safe_(confirmed), last_received_(confirmed) {}

  // A Begin arrived. A Begin while a transaction is open means the server
  // resent it (a reconnect): the open one is abandoned first. commit_time is
  // the transaction's commit time (µs since the Unix epoch), kept for metrics.
  void BeginTransaction(int64_t commit_time_micros = 0);
  // An event of the open transaction goes to Kafka; Ack(ticket) when acknowledged.
  // tag: a small number the caller gives the transaction with its first event (the relay's
  // topic of that event, for the "stalled" log line); later events' tags are ignored.
  Ticket AddEvent(uint32_t tag = 0);
  // The open transaction's Commit arrived; end_lsn is the position to confirm.
  void CommitTransaction(Lsn end_lsn);
  // The stream broke inside a transaction: its events already handed out
  // still have to be acknowledged before anything later is confirmed, but the
  // transaction itself confirms nothing (the server will send it again).
  void AbandonOpenTransaction();
  // Kafka acknowledged one event. Tickets from before Reset() are ignored.
  void Ack(Ticket ticket);
  // The server's position from a keepalive: everything before it was sent.
  void ObserveServerPosition(Lsn lsn);
  // The slot is already confirmed up to lsn (read from the server when a
  // session starts, e.g. after another relay held the slot): nothing before it
  // needs delivering again.
  void AdvanceConfirmed(Lsn lsn);
  // Forgets everything in flight (the caller replays from SafeLsn()).
  void Reset();

  Lsn SafeLsn() const { return safe_; }
  // Commit end of the last transaction received whole: where a reconnect can
  // resume reading without resending what is already in the producer.
  Lsn LastReceivedLsn() const { return last_received_; }
  bool InTransaction() const { return open_; }
  // The open transaction already has an event (so AddEvent ignores the tag).
  bool OpenTransactionHasEvents() const { return open_has_entry_; }
  uint64_t EventsInFlight() const { return events_in_flight_; }
  // Commit time of the transaction a ticket belongs to (0 if unknown or done).
  int64_t CommitTimeOf(Ticket ticket) const;
  // Commit time of the oldest transaction with unacknowledged events (0: none).
  int64_t OldestUnackedCommitTime() const;
  // Tag of that transaction (0: none in flight).
  uint32_t OldestUnackedTag() const;
  size_t TransactionsInFlight() const { return entries_.size(); }

 private:
  struct Entry {
    uint64_t pending = 0;  // Events handed out and not yet acknowledged.
    int64_t commit_time_micros = 0;
    Lsn end_lsn;           // Position this transaction (and folded ones) confirms.
    bool committed = false;
    uint32_t tag = 0;  // Fits beside `committed`: entries stay 32 bytes.
  };

  // Pops acknowledged committed transactions off the front, advancing safe_.
  void Drain();
  // A position that needs no acknowledgement of its own (an empty transaction,
  // a keepalive): safe at once, or together with the last entry.
  void FoldPosition(Lsn lsn);

  std::deque<Entry> entries_;  // In commit order; entries_[i] has ticket front_ticket_ + i.
  Ticket front_ticket_ = 0;
  bool open_ = false;
  bool open_has_entry_ = false;
  int64_t open_commit_time_ = 0;
  Lsn safe_;
  Lsn last_received_;
  uint64_t events_in_flight_ = 0;
};

}  // namespace outboxd::checkpoint

#endif  // OUTBOXD_CHECKPOINT_ACK_TRACKER_H_
