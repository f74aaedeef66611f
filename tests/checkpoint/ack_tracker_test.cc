#include "checkpoint/ack_tracker.h"

#include <algorithm>
#include <ostream>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace outboxd {
// gtest prints positions as PostgreSQL does.
inline void PrintTo(const Lsn& lsn, std::ostream* os) { *os << lsn.ToString(); }

namespace checkpoint {
namespace {

using Ticket = AckTracker::Ticket;

TEST(AckTrackerTest, StartsAtConfirmedPosition) {
  AckTracker tracker(Lsn(100));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(100));
}

TEST(AckTrackerTest, CommittedTransactionConfirmsOnlyAfterAllEventsAcked) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket a = tracker.AddEvent();
  Ticket b = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(200));
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.Ack(a);
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.Ack(b);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(200));
  EXPECT_EQ(tracker.EventsInFlight(), 0u);
}

TEST(AckTrackerTest, OldestUnackedTagIsTheFirstEventsOfTheOldestTransactionInFlight) {
  AckTracker tracker;
  EXPECT_EQ(tracker.OldestUnackedTag(), 0u);
  tracker.BeginTransaction();
  EXPECT_FALSE(tracker.OpenTransactionHasEvents());
  Ticket a = tracker.AddEvent(/*tag=*/7);
  EXPECT_TRUE(tracker.OpenTransactionHasEvents());
  tracker.AddEvent(/*tag=*/8);  // not the transaction's first event: ignored
  tracker.CommitTransaction(Lsn(200));
  tracker.BeginTransaction();
  Ticket b = tracker.AddEvent(/*tag=*/9);
  tracker.CommitTransaction(Lsn(300));
  EXPECT_EQ(tracker.OldestUnackedTag(), 7u);
  tracker.Ack(a);  // a ticket names the transaction: one Ack per event
  EXPECT_EQ(tracker.OldestUnackedTag(), 7u);  // one of its events is still in flight
  tracker.Ack(a);
  EXPECT_EQ(tracker.OldestUnackedTag(), 9u);
  tracker.Ack(b);
  EXPECT_EQ(tracker.OldestUnackedTag(), 0u);
}

TEST(AckTrackerTest, AckBeforeCommitStillWaitsForCommit) {
  AckTracker tracker;
  tracker.BeginTransaction();
  tracker.Ack(tracker.AddEvent());
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.CommitTransaction(Lsn(300));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(300));
}

TEST(AckTrackerTest, LaterTransactionAckedFirstDoesNotPassEarlierOne) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket first = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(100));
  tracker.BeginTransaction();
  Ticket second = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(200));
  tracker.Ack(second);
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.Ack(first);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(200));
}

TEST(AckTrackerTest, EmptyTransactionsAdvanceWhenNothingInFlight) {
  AckTracker tracker;
  tracker.BeginTransaction();
  tracker.CommitTransaction(Lsn(50));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(50));
  EXPECT_EQ(tracker.TransactionsInFlight(), 0u);
}

TEST(AckTrackerTest, EmptyTransactionFoldsIntoPendingOne) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket t = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(100));
  for (int i = 1; i <= 1000; ++i) {
    tracker.BeginTransaction();
    tracker.CommitTransaction(Lsn(100 + i));
  }
  EXPECT_EQ(tracker.TransactionsInFlight(), 1u);  // bounded: no entry per empty transaction
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.Ack(t);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(1100));
}

TEST(AckTrackerTest, KeepaliveAdvancesIdleStream) {
  AckTracker tracker(Lsn(10));
  tracker.ObserveServerPosition(Lsn(5000));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(5000));
}

TEST(AckTrackerTest, KeepaliveWaitsForInFlightEvents) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket t = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(100));
  tracker.ObserveServerPosition(Lsn(900));
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.Ack(t);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(900));
}

TEST(AckTrackerTest, KeepaliveInsideTransactionIsIgnored) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket t = tracker.AddEvent();
  tracker.ObserveServerPosition(Lsn(900));
  tracker.Ack(t);
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.CommitTransaction(Lsn(100));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(100));
}

TEST(AckTrackerTest, NeverDecreasesWhenTransactionOpensAfterKeepalive) {
  AckTracker tracker;
  tracker.ObserveServerPosition(Lsn(900));
  tracker.BeginTransaction();
  tracker.AddEvent();
  EXPECT_EQ(tracker.SafeLsn(), Lsn(900));
}

TEST(AckTrackerTest, AbandonedTransactionBlocksButConfirmsNothing) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket done = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(100));
  tracker.BeginTransaction();
  Ticket partial = tracker.AddEvent();
  tracker.AbandonOpenTransaction();  // stream broke mid-transaction
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn(100));
  // The server resends the transaction whole.
  tracker.BeginTransaction();
  Ticket resent = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(200));
  tracker.Ack(done);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(100));
  tracker.Ack(resent);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(100));  // the abandoned copy is still in flight
  tracker.Ack(partial);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(200));
}

TEST(AckTrackerTest, ResetIgnoresStaleTickets) {
  AckTracker tracker(Lsn(10));
  tracker.BeginTransaction();
  Ticket stale = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(100));
  tracker.Reset();
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn(10));
  tracker.BeginTransaction();
  Ticket fresh = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(100));
  tracker.Ack(stale);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(10));
  tracker.Ack(fresh);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(100));
}

// Reference model: the stream as a list of transactions and keepalives in
// order; the safe position is the largest position of an item such that every
// transaction up to it is committed and fully acknowledged.
class Model {
 public:
  struct Item {
    bool is_keepalive = false;
    Lsn lsn;
    int unacked = 0;
    bool committed = true;
  };
  std::vector<Item> items;

  Lsn Safe() const {
    Lsn safe;
    for (const Item& item : items) {
      if (!item.is_keepalive && (!item.committed || item.unacked > 0)) break;
      safe = std::max(safe, item.lsn);
    }
    return safe;
  }
};

class AckTrackerModelTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(AckTrackerModelTest, MatchesReferenceUnderRandomAckOrder) {
  std::mt19937 rng(GetParam());
  AckTracker tracker;
  Model model;
  struct Outstanding {
    Ticket ticket;
    size_t item;
  };
  std::vector<Outstanding> outstanding;
  uint64_t lsn = 1000;
  Lsn last_safe;

  auto ack_some = [&](int max) {
    std::uniform_int_distribution<int> count(0, max);
    for (int n = count(rng); n > 0 && !outstanding.empty(); --n) {
      std::uniform_int_distribution<size_t> pick(0, outstanding.size() - 1);
      const size_t i = pick(rng);
      tracker.Ack(outstanding[i].ticket);
      --model.items[outstanding[i].item].unacked;
      outstanding.erase(outstanding.begin() + i);
    }
  };
  auto check = [&] {
    ASSERT_EQ(tracker.SafeLsn(), model.Safe());
    ASSERT_GE(tracker.SafeLsn(), last_safe);
    last_safe = tracker.SafeLsn();
  };

  for (int step = 0; step < 2000; ++step) {
    const int kind = std::uniform_int_distribution<int>(0, 9)(rng);
    if (kind == 0) {
      lsn += 10;
      model.items.push_back({.is_keepalive = true, .lsn = Lsn(lsn), .unacked = 0, .committed = true});
      tracker.ObserveServerPosition(Lsn(lsn));
    } else {
      tracker.BeginTransaction();
      model.items.push_back({.is_keepalive = false, .lsn = Lsn(), .unacked = 0, .committed = false});
      const size_t item = model.items.size() - 1;
      const int events = std::uniform_int_distribution<int>(0, 4)(rng);
      for (int e = 0; e < events; ++e) {
        outstanding.push_back({tracker.AddEvent(), item});
        ++model.items[item].unacked;
        ack_some(1);  // acks may arrive before the commit
        check();
      }
      lsn += 100;
      tracker.CommitTransaction(Lsn(lsn));
      model.items[item].committed = true;
      model.items[item].lsn = Lsn(lsn);
    }
    check();
    ack_some(3);
    check();
  }
  while (!outstanding.empty()) ack_some(5);
  check();
  EXPECT_EQ(tracker.SafeLsn(), Lsn(lsn));
  EXPECT_EQ(tracker.EventsInFlight(), 0u);
  EXPECT_EQ(tracker.TransactionsInFlight(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Seeds, AckTrackerModelTest, ::testing::Range<uint32_t>(1, 21));

// --- The reconnect and rewind paths --------------------------------------
// How cdc/relay.cc drives the tracker when the stream breaks:
//   reconnect: AbandonOpenTransaction(); the next session starts with
//              AdvanceConfirmed(slot's confirmed_flush_lsn) and reads from
//              LastReceivedLsn();
//   rewind:    Reset() (a fresh producer; the old one's reports are dropped),
//              then the same session start, reading from SafeLsn();
//   a Begin while a transaction is open: the server sent it again;
//   exactly-once: AdvanceConfirmed(what the checkpoint says Kafka has).

TEST(AckTrackerTest, StartsReadingAtConfirmedPosition) {
  AckTracker tracker(Lsn(100));
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn(100));
}

TEST(AckTrackerTest, KeepaliveInsideOpenTransactionIgnoredAfterAbandon) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket partial = tracker.AddEvent();
  tracker.ObserveServerPosition(Lsn(5000));  // past events not yet received
  tracker.AbandonOpenTransaction();
  tracker.Ack(partial);
  EXPECT_EQ(tracker.SafeLsn(), Lsn());  // the in-transaction keepalive confirmed nothing
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn());
  EXPECT_EQ(tracker.TransactionsInFlight(), 0u);
}

TEST(AckTrackerTest, AbandonedTransactionWithoutEventsBlocksNothing) {
  AckTracker tracker;
  tracker.BeginTransaction();
  tracker.AbandonOpenTransaction();
  EXPECT_FALSE(tracker.InTransaction());
  EXPECT_EQ(tracker.TransactionsInFlight(), 0u);
  tracker.ObserveServerPosition(Lsn(300));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(300));
}

TEST(AckTrackerTest, KeepaliveAfterAbandonWaitsForTheAbandonedEvents) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket partial = tracker.AddEvent();
  tracker.AbandonOpenTransaction();
  // New session: the server's position before it resends the transaction.
  tracker.ObserveServerPosition(Lsn(150));
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.BeginTransaction();
  Ticket resent = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(200));
  tracker.Ack(resent);
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  tracker.Ack(partial);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(200));
}

TEST(AckTrackerTest, BeginWhileOpenAbandonsTheOpenCopy) {
  AckTracker tracker;
  tracker.BeginTransaction(/*commit_time_micros=*/7);
  Ticket first_copy = tracker.AddEvent();
  tracker.BeginTransaction(/*commit_time_micros=*/7);  // sent again
  Ticket second_copy = tracker.AddEvent();
  EXPECT_NE(first_copy, second_copy);
  tracker.CommitTransaction(Lsn(100));
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn(100));
  tracker.Ack(second_copy);
  EXPECT_EQ(tracker.SafeLsn(), Lsn());
  EXPECT_EQ(tracker.CommitTimeOf(first_copy), 7);
  tracker.Ack(first_copy);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(100));
  EXPECT_EQ(tracker.EventsInFlight(), 0u);
}

TEST(AckTrackerTest, ResetInsideOpenTransactionForgetsItsTickets) {
  AckTracker tracker(Lsn(50));
  tracker.BeginTransaction();
  tracker.Ack(tracker.AddEvent());
  tracker.CommitTransaction(Lsn(100));
  tracker.BeginTransaction();
  Ticket stale = tracker.AddEvent();
  tracker.Reset();
  EXPECT_FALSE(tracker.InTransaction());
  EXPECT_EQ(tracker.EventsInFlight(), 0u);
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn(100));  // replay from the confirmed position
  EXPECT_EQ(tracker.CommitTimeOf(stale), 0);
  // The replayed transaction; the stale ticket's report changes nothing.
  tracker.BeginTransaction();
  Ticket fresh = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(200));
  tracker.Ack(stale);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(100));
  EXPECT_EQ(tracker.EventsInFlight(), 1u);
  tracker.Ack(fresh);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(200));
}

TEST(AckTrackerTest, ResetKeepsKeepalivePositionAsReplayStart) {
  AckTracker tracker;
  tracker.ObserveServerPosition(Lsn(700));
  tracker.BeginTransaction();
  tracker.AddEvent();
  tracker.CommitTransaction(Lsn(800));
  tracker.Reset();
  EXPECT_EQ(tracker.SafeLsn(), Lsn(700));
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn(700));
}

TEST(AckTrackerTest, AdvanceConfirmedPastEventsInFlight) {
  AckTracker tracker;
  tracker.BeginTransaction();
  Ticket t = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(100));
  // Another relay (or the exactly-once checkpoint) has everything to 300.
  tracker.AdvanceConfirmed(Lsn(300));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(300));
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn(300));
  // A keepalive below it and the old event's ack move nothing back.
  tracker.ObserveServerPosition(Lsn(250));
  tracker.Ack(t);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(300));
  EXPECT_EQ(tracker.TransactionsInFlight(), 0u);
  // Reading goes on after 300.
  tracker.BeginTransaction();
  Ticket next = tracker.AddEvent();
  tracker.CommitTransaction(Lsn(400));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(300));
  tracker.Ack(next);
  EXPECT_EQ(tracker.SafeLsn(), Lsn(400));
}

TEST(AckTrackerTest, AdvanceConfirmedBelowSafeChangesNothing) {
  AckTracker tracker(Lsn(500));
  tracker.AdvanceConfirmed(Lsn(100));
  EXPECT_EQ(tracker.SafeLsn(), Lsn(500));
  EXPECT_EQ(tracker.LastReceivedLsn(), Lsn(500));
}

// A seeded random stream over every entry point, checked at each step
// against a reference model and against what the server really sent.
//
// The server is a list of committed transactions (end LSN, event count,
// commit time) in commit order; the relay reads it from a cursor. Keepalives
// between transactions carry a position before the next transaction's end
// (the walsender's sent position); inside a transaction, any position, even
// past later transactions.
//
// Reference model: the items the tracker was shown since its last Reset, in
// order. The safe position is the largest of (a) the floor: the constructor's
// position, AdvanceConfirmed's and SafeLsn() at each Reset, and (b) the
// position of any item in the prefix of items before the first open or not
// fully acknowledged transaction, where a committed transaction's position
// is its end LSN, a keepalive's its position, and an abandoned transaction
// has none.
//
// Ground truth, independent of the model: SafeLsn() never decreases, never
// passes what the server has said, and never reaches the end of a
// transaction with events unless each of its events has been acknowledged in
// some copy (or another party confirmed past it).
class ReconnectModel {
 public:
  struct Item {
    enum Kind { kTransaction, kKeepalive } kind = kTransaction;
    enum State { kOpen, kCommitted, kAbandoned } state = kOpen;
    Lsn lsn;
    int unacked = 0;
    int64_t commit_time = 0;
  };

  Lsn Safe() const {
    Lsn safe = floor_;
    for (const Item& item : items_) {
      if (item.kind == Item::kKeepalive) {
        safe = std::max(safe, item.lsn);
        continue;
      }
      if (item.state == Item::kOpen || item.unacked > 0) break;
      if (item.state == Item::kCommitted) safe = std::max(safe, item.lsn);
    }
    return safe;
  }
  Lsn LastReceived() const {
    Lsn last = received_floor_;
    for (const Item& item : items_) {
      if (item.kind == Item::kTransaction && item.state == Item::kCommitted) {
        last = std::max(last, item.lsn);
      }
    }
    return last;
  }
  uint64_t EventsInFlight() const {
    uint64_t n = 0;
    for (const Item& item : items_) n += item.unacked;
    return n;
  }
  int64_t OldestUnackedCommitTime() const {
    for (const Item& item : items_) {
      if (item.unacked > 0) return item.commit_time;
    }
    return 0;
  }
  bool Open() const {
    return !items_.empty() && items_.back().kind == Item::kTransaction &&
           items_.back().state == Item::kOpen;
  }

  size_t Begin(int64_t commit_time) {
    Abandon();
    items_.push_back({.kind = Item::kTransaction, .commit_time = commit_time});
    return items_.size() - 1;
  }
  void Commit(Lsn end) {
    items_.back().state = Item::kCommitted;
    items_.back().lsn = end;
  }
  void Abandon() {
    if (Open()) items_.back().state = Item::kAbandoned;
  }
  void Keepalive(Lsn lsn) {
    if (!Open()) items_.push_back({.kind = Item::kKeepalive, .state = Item::kCommitted, .lsn = lsn});
  }
  void Ack(size_t item) { --items_[item].unacked; }
  void AddEvent(size_t item) { ++items_[item].unacked; }
  void AdvanceConfirmed(Lsn lsn) {
    floor_ = std::max(floor_, lsn);
    received_floor_ = std::max(received_floor_, lsn);
  }
  void Reset() {
    floor_ = Safe();
    received_floor_ = floor_;
    items_.clear();
  }

 private:
  std::vector<Item> items_;
  Lsn floor_;
  Lsn received_floor_;
};

class AckTrackerReconnectModelTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(AckTrackerReconnectModelTest, MatchesReferenceThroughReconnectsAndRewinds) {
  std::mt19937 rng(GetParam());
  auto chance = [&](int percent) { return std::uniform_int_distribution<int>(0, 99)(rng) < percent; };

  struct ServerTxn {
    Lsn end;
    int events = 0;
    int64_t commit_time = 0;
    std::vector<bool> delivered;  // per event, acknowledged in some copy
  };
  std::vector<ServerTxn> wal;
  for (int i = 0; i < 1500; ++i) {
    ServerTxn t;
    t.end = Lsn(1000 + 100 * (i + 1));
    t.events = std::uniform_int_distribution<int>(0, 3)(rng);
    t.commit_time = 1000000 + i;
    t.delivered.assign(t.events, false);
    wal.push_back(std::move(t));
  }

  AckTracker tracker(Lsn(1000));
  ReconnectModel model;
  model.AdvanceConfirmed(Lsn(1000));
  struct Outstanding {
    Ticket ticket;
    size_t item;  // in the model; meaningless once stale
    size_t txn;
    int event;
    bool stale = false;  // from before a Reset: its reports are not the tracker's any more
  };
  std::vector<Outstanding> outstanding;
  size_t cursor = 0;          // next transaction the server sends
  Lsn external;               // confirmed by someone else (another relay, the checkpoint)
  Lsn said = Lsn(1000);       // the highest position the server (or the floor) has given
  Lsn last_safe = tracker.SafeLsn();
  std::vector<Lsn> reported;  // SafeLsn() values sent in status updates
  int reconnects = 0, rewinds = 0, begins_while_open = 0, handovers = 0;

  auto check = [&](const char* where) {
    SCOPED_TRACE(where);
    ASSERT_EQ(tracker.SafeLsn(), model.Safe());
    ASSERT_EQ(tracker.LastReceivedLsn(), model.LastReceived());
    ASSERT_EQ(tracker.EventsInFlight(), model.EventsInFlight());
    ASSERT_EQ(tracker.OldestUnackedCommitTime(), model.OldestUnackedCommitTime());
    ASSERT_EQ(tracker.InTransaction(), model.Open());
    ASSERT_GE(tracker.SafeLsn(), last_safe);
    ASSERT_LE(tracker.SafeLsn(), said);
    for (const ServerTxn& t : wal) {
      if (t.end > tracker.SafeLsn()) break;
      if (t.end <= external) continue;
      for (int e = 0; e < t.events; ++e) {
        ASSERT_TRUE(t.delivered[e]) << "confirmed " << tracker.SafeLsn().ToString() << " past "
                                    << t.end.ToString() << " whose event " << e << " is unacknowledged";
      }
    }
    for (const Outstanding& o : outstanding) {
      ASSERT_EQ(tracker.CommitTimeOf(o.ticket), o.stale ? 0 : wal[o.txn].commit_time);
    }
    last_safe = tracker.SafeLsn();
  };
  auto ack_some = [&](int max) {
    for (int n = std::uniform_int_distribution<int>(0, max)(rng); n > 0 && !outstanding.empty(); --n) {
      const size_t i = std::uniform_int_distribution<size_t>(0, outstanding.size() - 1)(rng);
      const Outstanding o = outstanding[i];
      outstanding.erase(outstanding.begin() + i);
      tracker.Ack(o.ticket);
      if (!o.stale) {
        model.Ack(o.item);
        wal[o.txn].delivered[o.event] = true;
      }
    }
  };
  // Where the server starts a session: after the client's start position and
  // after what the slot has confirmed.
  auto start_session = [&](Lsn slot_confirmed) {
    tracker.AdvanceConfirmed(slot_confirmed);
    model.AdvanceConfirmed(slot_confirmed);
    const Lsn from = tracker.LastReceivedLsn();
    cursor = 0;
    while (cursor < wal.size() && wal[cursor].end <= from) ++cursor;
  };
  // What the slot says at a session start: the last reported position, an
  // older one (a status update lost), or more (another relay held the slot
  // meanwhile and delivered further).
  auto slot_confirmed = [&]() -> Lsn {
    if (reported.empty() || chance(10)) return Lsn(1000);
    if (chance(8) && cursor + 3 < wal.size()) {
      ++handovers;
      const size_t upto = cursor + std::uniform_int_distribution<size_t>(0, 3)(rng);
      external = std::max(external, wal[upto].end);
      said = std::max(said, wal[upto].end);
      return wal[upto].end;
    }
    if (chance(30)) return reported[std::uniform_int_distribution<size_t>(0, reported.size() - 1)(rng)];
    return reported.back();
  };
  // Transaction `cursor` sent from Begin; stops after `events_before_break`
  // events without its Commit when that is below its event count + 1.
  auto receive = [&](int events_before_break) {
    ServerTxn& t = wal[cursor];
    tracker.BeginTransaction(t.commit_time);
    const size_t item = model.Begin(t.commit_time);
    for (int e = 0; e < t.events && e < events_before_break; ++e) {
      outstanding.push_back({tracker.AddEvent(), item, cursor, e});
      model.AddEvent(item);
      if (chance(20)) {  // a keepalive mid-transaction: any position, even far ahead
        const Lsn ahead(t.end.value() + std::uniform_int_distribution<uint64_t>(0, 1000)(rng));
        said = std::max(said, ahead);
        tracker.ObserveServerPosition(ahead);
        model.Keepalive(ahead);
      }
      ack_some(1);  // reports arrive before the commit too
      check("inside a transaction");
    }
    if (events_before_break <= t.events) return false;
    tracker.CommitTransaction(t.end);
    model.Commit(t.end);
    said = std::max(said, t.end);
    ++cursor;
    return true;
  };

  for (int step = 0; step < 3000 && cursor < wal.size(); ++step) {
    const int kind = std::uniform_int_distribution<int>(0, 99)(rng);
    if (kind < 60) {
      receive(/*events_before_break=*/1 << 20);
      check("after a commit");
    } else if (kind < 70) {
      // Between transactions, the sent position lies from the previous
      // transaction's end to before the next one's.
      const uint64_t next_end = wal[cursor].end.value();
      const Lsn at(std::uniform_int_distribution<uint64_t>(next_end - 100, next_end - 1)(rng));
      said = std::max(said, at);
      tracker.ObserveServerPosition(at);
      model.Keepalive(at);
      check("after a keepalive");
    } else if (kind < 78) {
      // The stream breaks inside a transaction: reconnect.
      receive(std::uniform_int_distribution<int>(0, wal[cursor].events)(rng));
      if (chance(25)) {
        ++begins_while_open;  // the server sends the Begin again on this stream
      } else {
        ++reconnects;
        tracker.AbandonOpenTransaction();
        model.Abandon();
        check("after abandoning");
        ack_some(2);
        start_session(slot_confirmed());
      }
      check("after a reconnect");
    } else if (kind < 82) {
      // A delivery failed for good: rewind with a fresh producer.
      ++rewinds;
      if (chance(50) && cursor < wal.size()) receive(std::uniform_int_distribution<int>(0, 3)(rng));
      tracker.Reset();
      model.Reset();
      for (Outstanding& o : outstanding) o.stale = true;
      check("after a reset");
      start_session(slot_confirmed());
      check("after a rewind");
    } else if (kind < 84 && !tracker.InTransaction() && !reported.empty()) {
      // Exactly-once: the checkpoint says Kafka has everything to a position
      // the relay has received.
      const Lsn checkpoint = std::min(tracker.LastReceivedLsn(), said);
      external = std::max(external, checkpoint);
      tracker.AdvanceConfirmed(checkpoint);
      model.AdvanceConfirmed(checkpoint);
      check("after a checkpoint");
    } else {
      ack_some(4);
      check("after acks");
    }
    if (chance(30)) reported.push_back(tracker.SafeLsn());  // a status update
  }
  if (tracker.InTransaction()) {
    tracker.AbandonOpenTransaction();
    model.Abandon();
  }
  while (!outstanding.empty()) ack_some(8);
  check("at the end");
  EXPECT_EQ(tracker.EventsInFlight(), 0u);
  EXPECT_EQ(tracker.TransactionsInFlight(), 0u);
  // The random walk reached every path.
  EXPECT_GT(reconnects, 10);
  EXPECT_GT(rewinds, 10);
  EXPECT_GT(begins_while_open, 2);
  EXPECT_GT(handovers, 0);
}

INSTANTIATE_TEST_SUITE_P(Seeds, AckTrackerReconnectModelTest, ::testing::Range<uint32_t>(1, 31));

}  // namespace
}  // namespace checkpoint
}  // namespace outboxd
