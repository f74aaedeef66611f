// StatusReporter::CheckProgress: when a relay counts as stalled (/healthz 503,
// outboxd_stalled 1), on a RelayStats driven by hand and a clock of the test's own.
#include <string>

#include "absl/time/time.h"
#include "admin/relay_info.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stats/relay_stats.h"

namespace outboxd::admin {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

constexpr absl::Duration kTimeout = absl::Minutes(5);

class ProgressTest : public ::testing::Test {
 protected:
  ProgressTest() : reporter_(&stats_, {.slot = "outboxd", .stall_timeout = kTimeout}) {
    stats_.postgres_connected.store(true);
    stats_.confirmed_lsn.store(1000);
    stats_.received_lsn.store(1000);
  }
  // The reporter asked at start + offset.
  Progress At(absl::Duration offset) { return reporter_.CheckProgress(start_ + offset); }
  // One event sent to Kafka and not acknowledged, committed at start + committed.
  void OneInFlight(absl::Duration committed = absl::ZeroDuration()) {
    stats_.events_in_flight.store(1);
    stats_.oldest_unacked_commit_unix_micros.store(absl::ToUnixMicros(start_ + committed));
    stats_.set_oldest_unacked_topic("outbox.event.order");
  }
  void Acknowledge() {
    stats_.events_delivered.fetch_add(1);
    stats_.events_in_flight.store(0);
    stats_.oldest_unacked_commit_unix_micros.store(0);
  }

  const absl::Time start_ = absl::FromUnixSeconds(1800000000);
  stats::RelayStats stats_;
  StatusReporter reporter_;
};

TEST_F(ProgressTest, IdleRelayIsNeverStalled) {
  for (absl::Duration t = absl::ZeroDuration(); t < absl::Hours(1); t += absl::Seconds(10)) {
    ASSERT_FALSE(At(t).stalled) << t;
  }
}

TEST_F(ProgressTest, UnacknowledgedEventStallsExactlyAfterTheTimeout) {
  At(absl::ZeroDuration());
  OneInFlight();
  EXPECT_FALSE(At(absl::Seconds(1)).stalled);  // the clock starts here, when work is first seen
  EXPECT_FALSE(At(absl::Seconds(1) + kTimeout - absl::Milliseconds(1)).stalled);
  const Progress p = At(absl::Seconds(1) + kTimeout);
  EXPECT_TRUE(p.stalled);
  EXPECT_THAT(p.reason, AllOf(HasSubstr("Kafka has acknowledged none of the 1 events in flight since "
                                        "2027-01-15T08:00:01Z (5m)"),
                              HasSubstr("to topic outbox.event.order"), HasSubstr("committed 5m1s ago"),
                              HasSubstr("Kafka is reachable")));
}

TEST_F(ProgressTest, RecoversByItselfWhenAcknowledgementsResume) {
  At(absl::ZeroDuration());
  OneInFlight();
  At(absl::Seconds(1));
  ASSERT_TRUE(At(absl::Minutes(6)).stalled);
  Acknowledge();
  const Progress p = At(absl::Minutes(6) + absl::Seconds(1));
  EXPECT_FALSE(p.stalled);
  EXPECT_THAT(p.reason, IsEmpty());
}

TEST_F(ProgressTest, AcknowledgementsWhileEventsStayInFlightAreProgress) {
  // A big transaction: events keep being acknowledged, more keep being sent.
  At(absl::ZeroDuration());
  OneInFlight();
  for (absl::Duration t = absl::Seconds(1); t < absl::Hours(1); t += absl::Minutes(4)) {
    stats_.events_delivered.fetch_add(100);
    ASSERT_FALSE(At(t).stalled) << t;
  }
}

TEST_F(ProgressTest, ConfirmationsAreProgress) {
  At(absl::ZeroDuration());
  OneInFlight();
  for (absl::Duration t = absl::Seconds(1); t < absl::Hours(1); t += absl::Minutes(4)) {
    stats_.confirmed_lsn.fetch_add(100);
    ASSERT_FALSE(At(t).stalled) << t;
  }
}

TEST_F(ProgressTest, PausedIsNotStalledAndResumingStartsTheClockAgain) {
  At(absl::ZeroDuration());
  OneInFlight();
  stats_.paused.store(true);
  for (absl::Duration t = absl::Seconds(1); t <= absl::Hours(1); t += absl::Minutes(1)) {
    ASSERT_FALSE(At(t).stalled) << t;
  }
  stats_.paused.store(false);
  At(absl::Hours(1));  // the resume is seen here
  EXPECT_FALSE(At(absl::Hours(1) + kTimeout - absl::Seconds(1)).stalled);
  EXPECT_TRUE(At(absl::Hours(1) + kTimeout).stalled);
}

TEST_F(ProgressTest, WalReceivedButNotConfirmedStallsOnThePostgresSide) {
  At(absl::ZeroDuration());
  stats_.received_lsn.store(5000);
  At(absl::Seconds(1));
  const Progress p = At(absl::Seconds(1) + kTimeout);
  EXPECT_TRUE(p.stalled);
  EXPECT_THAT(p.reason, AllOf(HasSubstr("nothing confirmed to PostgreSQL past 0/3E8"),
                              HasSubstr("WAL up to 0/1388 was received"), HasSubstr("nothing is in flight")));
}

TEST_F(ProgressTest, DisconnectedWithNothingInFlightIsNotStalled) {
  // Readiness covers a lost connection; liveness must not restart a relay that waits for
  // its server (or, as a hot standby, for the slot).
  stats_.received_lsn.store(5000);
  stats_.postgres_connected.store(false);
  for (absl::Duration t = absl::ZeroDuration(); t < absl::Hours(1); t += absl::Minutes(1)) {
    ASSERT_FALSE(At(t).stalled) << t;
  }
}

TEST_F(ProgressTest, ZeroTimeoutDisablesIt) {
  StatusReporter never(&stats_, {.slot = "outboxd", .stall_timeout = absl::ZeroDuration()});
  never.CheckProgress(start_);
  OneInFlight();
  for (absl::Duration t = absl::ZeroDuration(); t < absl::Hours(1); t += absl::Minutes(1)) {
    ASSERT_FALSE(never.CheckProgress(start_ + t).stalled) << t;
  }
}

TEST_F(ProgressTest, ClockNeverRunsBackwardsAcrossCallerThreads) {
  At(absl::ZeroDuration());
  OneInFlight();
  At(absl::Seconds(1));
  ASSERT_TRUE(At(absl::Minutes(7)).stalled);
  // A caller whose `now` was read a little earlier still sees the stall.
  EXPECT_TRUE(At(absl::Minutes(7) - absl::Milliseconds(5)).stalled);
}

}  // namespace
}  // namespace outboxd::admin
