// Relay in-process: a scripted replication stream (fake_stream.h) and a fake
// sink (fake_sink.h) around the real decoder and AckTracker, on the paths a
// real server and broker reach only by luck: a connection that breaks inside
// a transaction, a full producer, a stop while blocked on it, keepalives
// inside open transactions, a server that goes silent. Every case checks the
// flushed position the relay reports to the server.
#include "cdc/relay.h"

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/status/status.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "stats/relay_stats.h"
#include "tests/cdc/fake_sink.h"
#include "tests/cdc/fake_stream.h"
#include "tests/cdc/pgoutput_bytes.h"
#include "tests/support/wait.h"

namespace outboxd::cdc {
namespace {

namespace bytes = test::pgoutput_bytes;
using test::FakeKafka;
using test::FakeServer;
using test::WaitFor;
using ::testing::ElementsAre;

constexpr Lsn kStart(0x100);
constexpr absl::Duration kDeadline = absl::Seconds(10);

class RelayTest : public ::testing::Test {
 protected:
  void TearDown() override {
    if (thread_.joinable()) {
      relay_->Stop();
      thread_.join();
    }
  }

  RelayOptions Options() {
    RelayOptions o;
    o.conninfo = "host=fake";
    o.status_interval = absl::Milliseconds(20);
    o.initial_backoff = absl::Milliseconds(10);
    o.max_backoff = absl::Milliseconds(50);
    o.shutdown_flush_timeout = absl::Milliseconds(500);
    o.progress_interval = absl::Hours(1);
    o.replication_timeout = absl::ZeroDuration();  // the tests of the check turn it on
    o.connect = server_->Factory();
    return o;
  }

  void Start(RelayOptions options) {
    relay_ = std::make_unique<Relay>(std::move(options), kafka_->Factory(), &stats_);
    thread_ = std::thread([this] {
      result_ = relay_->Run(kStart);
      done_.store(true);
    });
  }

  // Stops the relay and waits for Run() to return; false if it did not within deadline.
  bool StopRelay(absl::Duration deadline = kDeadline) {
    relay_->Stop();
    if (!WaitFor([&] { return done_.load(); }, deadline, absl::Milliseconds(5))) return false;
    thread_.join();
    return true;
  }

  // One transaction: Begin at `at`, the Relation (once per session), one
  // insert per id, Commit ending at end_lsn.
  void Transaction(uint64_t at, const std::vector<std::string>& ids, uint64_t end_lsn,
                   bool relation = true, bool commit = true) {
    server_->Data(Lsn(at), bytes::Begin(end_lsn - 0x10, static_cast<uint32_t>(at)));
    if (relation) server_->Data(Lsn(at + 1), bytes::OutboxRelation());
    uint64_t lsn = at + 2;
    for (const std::string& id : ids) server_->Data(Lsn(lsn++), bytes::OutboxInsert(id, "order", "o-" + id));
    if (commit) server_->Data(Lsn(end_lsn - 0x10), bytes::Commit(end_lsn - 0x10, end_lsn));
  }

  size_t StatusCount() const { return server_->statuses().size(); }
  Lsn LastFlushed() const {
    auto s = server_->statuses();
    return s.empty() ? Lsn() : s.back().flushed;
  }
  // Waits until `n` more status updates have arrived: everything the relay
  // had seen before is reflected in the last one.
  bool WaitStatuses(size_t n) {
    const size_t target = StatusCount() + n;
    return WaitFor([&] { return StatusCount() >= target; }, kDeadline, absl::Milliseconds(2));
  }
  int ReplyRequests(int session) const {
    int n = 0;
    for (const auto& s : server_->statuses()) n += (s.session == session && s.reply_requested) ? 1 : 0;
    return n;
  }

  std::shared_ptr<FakeServer> server_ = FakeServer::Create(kStart);
  std::shared_ptr<FakeKafka> kafka_ = FakeKafka::Create();
  stats::RelayStats stats_;
  std::unique_ptr<Relay> relay_;
  std::thread thread_;
  std::atomic<bool> done_{false};
  absl::Status result_;
};

TEST_F(RelayTest, ReconnectInsideATransactionConfirmsNothingOfIt) {
  Start(Options());
  Transaction(0x110, {"1"}, 0x200);
  Transaction(0x210, {"2"}, 0x300, /*relation=*/false, /*commit=*/false);
  server_->Drop();
  ASSERT_TRUE(WaitFor([&] { return server_->sessions() == 2; }, kDeadline));
  ASSERT_TRUE(WaitFor([&] { return server_->start_positions().size() == 2; }, kDeadline));
  // Resumes after the last transaction received whole, not inside the broken one.
  EXPECT_THAT(server_->start_positions(), ElementsAre(kStart, Lsn(0x200)));

  kafka_->Ack(0);
  ASSERT_TRUE(WaitFor([&] { return server_->confirmed_flush() == Lsn(0x200); }, kDeadline));

  // The server sends the broken transaction again, whole.
  Transaction(0x210, {"2"}, 0x300);
  ASSERT_TRUE(WaitFor([&] { return kafka_->produced_ids().size() == 3; }, kDeadline));
  EXPECT_THAT(kafka_->produced_ids(), ElementsAre("1", "2", "2"));  // at least once

  // The resent copy is acknowledged, the first copy of "2" is not: that one
  // was handed to the producer, so nothing after it may be confirmed yet.
  kafka_->Ack(2);
  ASSERT_TRUE(WaitFor([&] { return kafka_->in_flight() == 1; }, kDeadline));
  ASSERT_TRUE(WaitStatuses(3));
  EXPECT_EQ(LastFlushed(), Lsn(0x200));

  kafka_->Ack(1);
  ASSERT_TRUE(WaitFor([&] { return server_->confirmed_flush() == Lsn(0x300); }, kDeadline));
  ASSERT_TRUE(StopRelay());
  EXPECT_TRUE(result_.ok()) << result_;
  EXPECT_EQ(stats_.confirmed_lsn.load(), 0x300u);
  EXPECT_EQ(stats_.reconnects.load(), 1u);
  for (const auto& s : server_->statuses()) {
    EXPECT_TRUE(s.flushed <= Lsn(0x200) || s.flushed == Lsn(0x300)) << s.flushed.ToString();
  }
}

// A record Kafka refuses at once (librdkafka's immediate error) is a Kafka
// failure: a rewind with a fresh producer, counted as a rewind, never a
// PostgreSQL reconnect with the same producer.
TEST_F(RelayTest, ImmediateProduceErrorRewindsWithAFreshProducer) {
  kafka_->FailNextProduce(absl::UnavailableError("Local: Fatal error (injected)"));
  kafka_->SetAutoAck(true);
  Start(Options());
  // (The fake server does not replay: the rest of the transaction is queued
  // only once the replay session has started, as a real server sends it.)
  Transaction(0x110, {"1"}, 0x200, /*relation=*/true, /*commit=*/false);
  ASSERT_TRUE(WaitFor([&] { return kafka_->sinks_made() == 2; }, kDeadline));
  ASSERT_TRUE(WaitFor([&] { return server_->sessions() == 2; }, kDeadline));
  EXPECT_THAT(server_->start_positions(), ElementsAre(kStart, kStart));
  Transaction(0x110, {"1"}, 0x200);  // the server sends it again from the confirmed position
  ASSERT_TRUE(WaitFor([&] { return server_->confirmed_flush() == Lsn(0x200); }, kDeadline));
  ASSERT_TRUE(StopRelay());
  EXPECT_TRUE(result_.ok()) << result_;
  EXPECT_EQ(stats_.rewinds.load(), 1u);
  EXPECT_EQ(stats_.reconnects.load(), 0u);
  ASSERT_FALSE(kafka_->produced_ids().empty());
  EXPECT_EQ(kafka_->produced_ids().front(), "1");
}

// A sink failure that stops the relay (the dead-letter topic cannot be
// written) ends Run() with it, whatever its status code.
TEST_F(RelayTest, FatalSinkErrorStopsTheRelay) {
  kafka_->FailNextProduce(SinkError(SinkFailure::kFatal,
                                    absl::UnavailableError("cannot write to the dead-letter topic")));
  Start(Options());
  Transaction(0x110, {"1"}, 0x200);
  ASSERT_TRUE(WaitFor([&] { return done_.load(); }, kDeadline));
  ASSERT_TRUE(StopRelay());
  EXPECT_TRUE(absl::StrContains(result_.message(), "dead-letter topic")) << result_;
  EXPECT_EQ(kafka_->sinks_made(), 1);
  EXPECT_EQ(server_->confirmed_flush(), kStart);
}

TEST_F(RelayTest, FullProducerStopsReadingAndStatusUpdatesGoOn) {
  kafka_->SetCapacity(2);
  Start(Options());
  Transaction(0x110, {"1", "2", "3", "4", "5"}, 0x300);
  server_->Keepalive(Lsn(0x400));
  ASSERT_TRUE(WaitFor([&] { return kafka_->refused() > 0; }, kDeadline));
  EXPECT_THAT(kafka_->produced_ids(), ElementsAre("1", "2"));
  const int read = server_->data_read();
  const size_t unread = server_->unread();
  EXPECT_GT(unread, 0u);

  // Blocked: the stream is not read (TCP would push back on the walsender),
  // the server still hears from the relay, and nothing is confirmed.
  ASSERT_TRUE(WaitStatuses(10));
  EXPECT_EQ(server_->data_read(), read);
  EXPECT_EQ(server_->unread(), unread);
  EXPECT_EQ(LastFlushed(), kStart);
  EXPECT_EQ(server_->sessions(), 1);

  kafka_->SetAutoAck(true);
  kafka_->AckAll();
  // Commit at 0x300, then a keepalive with nothing in flight: 0x400.
  ASSERT_TRUE(WaitFor([&] { return server_->confirmed_flush() == Lsn(0x400); }, kDeadline));
  EXPECT_THAT(kafka_->produced_ids(), ElementsAre("1", "2", "3", "4", "5"));
  ASSERT_TRUE(StopRelay());
  EXPECT_TRUE(result_.ok()) << result_;
}

TEST_F(RelayTest, StopWhileBlockedOnAFullProducerEndsWithinTheShutdownTimeout) {
  kafka_->SetCapacity(1);
  RelayOptions options = Options();
  Start(options);
  Transaction(0x110, {"1", "2", "3"}, 0x300);
  ASSERT_TRUE(WaitFor([&] { return kafka_->refused() > 0; }, kDeadline));

  const absl::Time stop = absl::Now();
  ASSERT_TRUE(StopRelay(options.shutdown_flush_timeout + absl::Seconds(2)));
  const absl::Duration took = absl::Now() - stop;
  EXPECT_LT(took, options.shutdown_flush_timeout + absl::Seconds(1));
  EXPECT_TRUE(result_.ok()) << result_;
  EXPECT_EQ(server_->finished(), 1);  // the copy ended cleanly
  // Nothing was acknowledged: the final status update confirms nothing new.
  EXPECT_EQ(LastFlushed(), kStart);
  EXPECT_EQ(server_->confirmed_flush(), kStart);
  EXPECT_EQ(stats_.confirmed_lsn.load(), kStart.value());
}

TEST_F(RelayTest, KeepalivesInsideAnOpenTransactionConfirmNothingOfIt) {
  RelayOptions options = Options();
  // Status updates only when the server asks: each ask shows what the relay
  // would confirm at that moment (and that it answers at once).
  options.status_interval = absl::Hours(1);
  options.confirm_interval = absl::ZeroDuration();  // not when the position moves either
  kafka_->SetAutoAck(true);
  Start(options);
  ASSERT_TRUE(WaitFor([&] { return StatusCount() == 1; }, kDeadline));  // the first, at start

  Transaction(0x110, {"1"}, 0x200, /*relation=*/true, /*commit=*/false);
  ASSERT_TRUE(WaitFor([&] { return kafka_->produced_ids().size() == 1 && kafka_->in_flight() == 0; },
                      kDeadline));
  // The server's WAL end lies far past the open transaction.
  server_->Keepalive(Lsn(0x900), /*reply_requested=*/true);
  ASSERT_TRUE(WaitFor([&] { return StatusCount() == 2; }, kDeadline));
  EXPECT_EQ(LastFlushed(), kStart);

  server_->Data(Lsn(0x1F0), bytes::Commit(0x1F0, 0x200));
  server_->Keepalive(Lsn(0x200), /*reply_requested=*/true);
  ASSERT_TRUE(WaitFor([&] { return StatusCount() == 3; }, kDeadline));
  EXPECT_EQ(LastFlushed(), Lsn(0x200));  // not 0x900: that keepalive came inside the transaction

  // Idle, nothing in flight: the keepalive position is confirmed (no pinned WAL).
  server_->Keepalive(Lsn(0x1000), /*reply_requested=*/true);
  ASSERT_TRUE(WaitFor([&] { return StatusCount() == 4; }, kDeadline));
  EXPECT_EQ(LastFlushed(), Lsn(0x1000));

  // Committed but not acknowledged: keepalives past it confirm nothing.
  kafka_->SetAutoAck(false);
  Transaction(0x1010, {"2"}, 0x1100, /*relation=*/false);
  server_->Keepalive(Lsn(0x1200), /*reply_requested=*/true);
  ASSERT_TRUE(WaitFor([&] { return StatusCount() == 5; }, kDeadline));
  EXPECT_EQ(LastFlushed(), Lsn(0x1000));
  EXPECT_EQ(kafka_->in_flight(), 1);

  kafka_->AckAll();
  ASSERT_TRUE(WaitFor([&] { return kafka_->in_flight() == 0; }, kDeadline));
  server_->Keepalive(Lsn(0x1300), /*reply_requested=*/true);
  ASSERT_TRUE(WaitFor([&] { return StatusCount() == 6; }, kDeadline));
  EXPECT_EQ(LastFlushed(), Lsn(0x1300));
  EXPECT_EQ(server_->sessions(), 1);
}

TEST_F(RelayTest, AcknowledgedPositionIsReportedWithoutWaitingForTheStatusInterval) {
  RelayOptions options = Options();
  options.status_interval = absl::Hours(1);  // only the confirm_interval (default) reports
  Start(options);
  ASSERT_TRUE(WaitFor([&] { return StatusCount() == 1; }, kDeadline));  // the first, at start
  EXPECT_EQ(LastFlushed(), kStart);

  Transaction(0x110, {"1"}, 0x200);
  Transaction(0x210, {"2"}, 0x300);
  ASSERT_TRUE(WaitFor([&] { return kafka_->in_flight() == 2; }, kDeadline));
  kafka_->Ack(0);
  ASSERT_TRUE(WaitFor([&] { return server_->confirmed_flush() == Lsn(0x200); }, kDeadline));
  EXPECT_EQ(StatusCount(), 2u);
  // Never past what Kafka has not acknowledged, however soon it reports.
  EXPECT_EQ(LastFlushed(), Lsn(0x200));
  kafka_->Ack(1);
  ASSERT_TRUE(WaitFor([&] { return server_->confirmed_flush() == Lsn(0x300); }, kDeadline));
  EXPECT_EQ(StatusCount(), 3u);
}

TEST_F(RelayTest, SilentServerIsAskedForAReplyAndLeftWithoutOne) {
  RelayOptions options = Options();
  options.replication_timeout = absl::Milliseconds(300);
  server_->AnswerReplyRequests(false);  // a dead path: nothing comes back
  Start(options);
  ASSERT_TRUE(WaitFor([&] { return stats_.postgres_connected.load(); }, kDeadline));
  const absl::Time up = absl::Now();
  // Reconnects fail for now (a black-holed server): not ready all along.
  server_->FailConnects(absl::UnavailableError("cannot connect to PostgreSQL: timeout expired"));

  ASSERT_TRUE(WaitFor([&] { return !stats_.postgres_connected.load(); }, kDeadline, absl::Milliseconds(2)));
  const absl::Duration detected = absl::Now() - up;
  // Silence for the timeout, then the same again (the reply bound is the
  // timeout when shorter than 10 s) for the answer that never came.
  EXPECT_LT(detected, absl::Seconds(3));
  const std::vector<FakeServer::StatusUpdate> statuses = server_->statuses();
  ASSERT_FALSE(statuses.empty());
  for (const auto& s : statuses) {
    // Times on the relay's own clock: the first update goes out as the session starts.
    if (s.reply_requested) {
      EXPECT_GE(s.at - statuses.front().at, absl::Milliseconds(280));
    }
  }
  EXPECT_EQ(ReplyRequests(1), 1);  // asked once, not on every status update
  EXPECT_EQ(server_->sessions(), 1);
  // The loop marks PostgreSQL disconnected as it detects the dead path and
  // counts the reconnect a moment later, on its way to the next attempt.
  EXPECT_TRUE(WaitFor([&] { return stats_.reconnects.load() == 1u; }, kDeadline));
  EXPECT_FALSE(stats_.postgres_connected.load());

  server_->FailConnects(absl::OkStatus());
  ASSERT_TRUE(WaitFor([&] { return server_->sessions() == 2 && stats_.postgres_connected.load(); },
                      kDeadline));
  ASSERT_TRUE(StopRelay());
  EXPECT_TRUE(result_.ok()) << result_;
}

TEST_F(RelayTest, AnsweredReplyRequestsKeepTheSession) {
  RelayOptions options = Options();
  options.replication_timeout = absl::Milliseconds(200);
  Start(options);
  ASSERT_TRUE(WaitFor([&] { return ReplyRequests(1) >= 3; }, kDeadline));
  EXPECT_EQ(server_->sessions(), 1);
  EXPECT_EQ(stats_.reconnects.load(), 0u);
  EXPECT_TRUE(stats_.postgres_connected.load());
}

TEST_F(RelayTest, FullProducerIsNotTakenForADeadPath) {
  RelayOptions options = Options();
  options.replication_timeout = absl::Milliseconds(200);
  server_->AnswerReplyRequests(false);
  kafka_->SetCapacity(1);
  // Queued before the session starts, so it never idles before it blocks.
  Transaction(0x110, {"1", "2"}, 0x300);
  Start(options);
  ASSERT_TRUE(WaitFor([&] { return kafka_->refused() > 0; }, kDeadline));
  // Blocked for over a second (several timeouts and reply bounds): the relay
  // does not read, so the server's silence proves nothing.
  ASSERT_TRUE(WaitStatuses(50));
  EXPECT_EQ(server_->sessions(), 1);
  EXPECT_EQ(ReplyRequests(1), 0);

  kafka_->SetAutoAck(true);
  kafka_->AckAll();
  ASSERT_TRUE(WaitFor([&] { return server_->confirmed_flush() == Lsn(0x300); }, kDeadline));
  // Reading again, and the server stays silent: now it is a dead path.
  ASSERT_TRUE(WaitFor([&] { return server_->sessions() == 2; }, kDeadline));
  EXPECT_EQ(ReplyRequests(1), 1);
}

TEST_F(RelayTest, StopDuringAConnectThatHangsEndsAtOnce) {
  // A reconnect to a black-holed server blocks until PGCONNECT_TIMEOUT (10 s);
  // SIGTERM must not wait for it.
  server_->HoldConnects(true);
  Start(Options());
  ASSERT_TRUE(WaitFor([&] { return server_->connects_started() == 1; }, kDeadline));
  const absl::Time stop = absl::Now();
  const bool stopped = StopRelay(absl::Seconds(5));
  server_->HoldConnects(false);  // let the attempt end either way
  ASSERT_TRUE(stopped);
  EXPECT_LT(absl::Now() - stop, absl::Seconds(1));
  EXPECT_TRUE(result_.ok()) << result_;
  // The attempt finishes after all (its session is closed unused).
  EXPECT_TRUE(WaitFor([&] { return server_->sessions() == 1; }, kDeadline));
}

}  // namespace
}  // namespace outboxd::cdc
