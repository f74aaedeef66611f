#include "checkpoint/ack_tracker.h"

#include <algorithm>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace outboxd::checkpoint {
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

}  // namespace
}  // namespace outboxd::checkpoint
