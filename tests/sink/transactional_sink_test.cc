// Exactly-once recovery logic against an in-process model of Kafka
// transactions: commit makes records visible to read_committed readers, abort
// discards them, and a new producer with the same transactional id aborts the
// old one's open transaction and fences it.
#include "outboxd/status_macros.h"
#include "sink/transactional_sink.h"

#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "checkpoint/ack_tracker.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "outboxd/v1/checkpoint.pb.h"

namespace outboxd::sink {
namespace {

class KafkaModel {
 public:
  enum class State { kOpen, kCommitted, kAborted };
  struct Stored {
    Record record;
    std::string producer;
    uint64_t transaction = 0;
    State state = State::kOpen;
  };

  std::vector<Record> ReadCommitted(absl::string_view topic) const {
    std::vector<Record> out;
    for (const Stored& s : log) {
      if (s.record.topic == topic && s.state == State::kCommitted) out.push_back(s.record);
    }
    return out;
  }
  void Resolve(const std::string& producer, uint64_t transaction, State state) {
    for (Stored& s : log) {
      if (s.producer == producer && s.transaction == transaction && s.state == State::kOpen) s.state = state;
    }
  }

  std::vector<Stored> log;
  std::map<std::string, int> epochs;              // transactional id → current epoch
  std::map<std::string, uint64_t> open_transaction;  // transactional id → open transaction
  uint64_t next_transaction = 1;
  int fail_next_commits = 0;
  bool reject_next_commit = false;  // a record the broker will never take
  bool fail_next_flush = false;     // a record of the transaction was not delivered
  size_t queue_limit = 1000000;  // records of one open transaction before "queue full"
  // Completion steps (Delivered, commit, abort) that answer "not yet" before
  // any goes on: Kafka unreachable for that long.
  int stalled_steps = 0;
};

// One producer instance. `crashed` models kill -9: it does nothing any more.
class ModelProducer : public TransactionalKafka {
 public:
  ModelProducer(KafkaModel* model, std::string id) : model_(model), id_(std::move(id)) {}
  bool crashed = false;

  absl::StatusOr<bool> InitTransactions(absl::Duration) override {
    if (crashed) return true;
    if (model_->stalled_steps > 0) {
      --model_->stalled_steps;
      return false;
    }
    epoch_ = ++model_->epochs[id_];
    // Fencing: the previous epoch's open transaction is aborted.
    if (auto it = model_->open_transaction.find(id_); it != model_->open_transaction.end()) {
      model_->Resolve(id_, it->second, KafkaModel::State::kAborted);
      model_->open_transaction.erase(it);
    }
    return true;
  }
  absl::StatusOr<std::optional<std::string>> ReadLastCommitted(
      absl::string_view topic, absl::string_view key, const std::function<bool()>&) override {
    std::optional<std::string> last;
    for (const Record& r : model_->ReadCommitted(topic)) {
      if (r.key == key) last = r.value;
    }
    return last;
  }
  absl::Status BeginTransaction() override {
    if (crashed) return absl::OkStatus();
    RETURN_IF_ERROR(CheckEpoch());
    transaction_ = model_->next_transaction++;
    model_->open_transaction[id_] = transaction_;
    sent_in_transaction_ = 0;
    return absl::OkStatus();
  }
  absl::Status Send(const Record& record) override {
    if (crashed) return absl::OkStatus();
    RETURN_IF_ERROR(CheckEpoch());
    if (sent_in_transaction_ >= model_->queue_limit) return absl::ResourceExhaustedError("full");
    ++sent_in_transaction_;
    model_->log.push_back({record, id_, transaction_, KafkaModel::State::kOpen});
    return absl::OkStatus();
  }
  absl::StatusOr<bool> Delivered() override {
    if (crashed) return true;
    if (model_->fail_next_flush) {
      model_->fail_next_flush = false;
      return absl::AbortedError("injected: a record timed out");
    }
    if (model_->stalled_steps > 0) {
      --model_->stalled_steps;
      return false;
    }
    RETURN_IF_ERROR(CheckEpoch());
    return true;
  }
  absl::StatusOr<bool> CommitTransaction(absl::Duration) override {
    if (crashed) return true;
    if (model_->stalled_steps > 0) {
      --model_->stalled_steps;
      return false;
    }
    RETURN_IF_ERROR(CheckEpoch());
    if (model_->reject_next_commit) {
      model_->reject_next_commit = false;
      return absl::FailedPreconditionError("MSG_SIZE_TOO_LARGE: injected");
    }
    if (model_->fail_next_commits > 0) {
      --model_->fail_next_commits;
      return absl::AbortedError("injected: commit failed, abort required");
    }
    model_->Resolve(id_, transaction_, KafkaModel::State::kCommitted);
    model_->open_transaction.erase(id_);
    return true;
  }
  absl::StatusOr<bool> AbortTransaction(absl::Duration) override {
    if (crashed) return true;
    if (model_->stalled_steps > 0) {
      --model_->stalled_steps;
      return false;
    }
    model_->Resolve(id_, transaction_, KafkaModel::State::kAborted);
    model_->open_transaction.erase(id_);
    return true;
  }
  void Poll(int) override {}
  int wakeup_fd() const override { return -1; }
  int64_t message_max_bytes() const override { return 1048588; }

 private:
  absl::Status CheckEpoch() const {
    if (model_->epochs[id_] != epoch_) return absl::InternalError("fenced by a newer producer");
    return absl::OkStatus();
  }
  KafkaModel* model_;
  std::string id_;
  int epoch_ = 0;
  uint64_t transaction_ = 0;
  size_t sent_in_transaction_ = 0;
};

v1::OutboxEvent MakeEvent(int id, Lsn commit_lsn) {
  v1::OutboxEvent e;
  e.set_id(absl::StrCat(id));
  e.set_aggregate_type("order");
  e.set_aggregate_id(absl::StrCat("o-", id % 7));
  e.set_event_type("Placed");
  e.mutable_source()->set_commit_lsn(commit_lsn.value());
  return e;
}

struct Acks {
  std::vector<std::pair<Ticket, absl::Status>> reports;
  DeliveryCallback Callback() {
    return [this](Ticket t, const absl::Status& s) { reports.emplace_back(t, s); };
  }
  size_t ok() const {
    size_t n = 0;
    for (const auto& [t, s] : reports) n += s.ok();
    return n;
  }
};

TransactionalConfig Config() {
  TransactionalConfig config;
  config.sink.brokers = "model";
  config.slot = "shop";
  config.max_batch_events = 1000;
  config.max_batch_age = absl::Milliseconds(100);
  return config;
}

std::unique_ptr<TransactionalSink> MakeSink(KafkaModel& model, Acks& acks,
                                            TransactionalConfig config = Config(),
                                            TransactionalSink::Clock clock = absl::Now,
                                            ModelProducer** producer = nullptr) {
  auto kafka = std::make_unique<ModelProducer>(&model, "outboxd-shop");
  if (producer) *producer = kafka.get();
  auto sink = TransactionalSink::Create(std::move(config), std::move(kafka), acks.Callback(), clock);
  EXPECT_TRUE(sink.ok()) << sink.status();
  return sink.ok() ? std::move(*sink) : nullptr;
}

Lsn CheckpointIn(const KafkaModel& model) {
  std::vector<Record> records = model.ReadCommitted("outboxd.checkpoints");
  if (records.empty()) return Lsn();
  v1::Checkpoint c;
  EXPECT_TRUE(c.ParseFromString(records.back().value));
  EXPECT_EQ(c.slot(), "shop");
  EXPECT_EQ(c.end_lsn_text(), Lsn(c.end_lsn()).ToString());
  return Lsn(c.end_lsn());
}

TEST(TransactionalSinkTest, CommitsOnlyAtTransactionBoundaryAndAcksAfterCommit) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  ASSERT_TRUE(sink);
  EXPECT_EQ(sink->RecoveredPosition(), Lsn());
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 7).ok());
  ASSERT_TRUE(sink->Produce(MakeEvent(2, Lsn(100)), "", 7).ok());
  sink->StreamIdle();  // inside the PostgreSQL transaction: no commit
  EXPECT_TRUE(model.ReadCommitted("outbox.event.order").empty());
  EXPECT_EQ(acks.reports.size(), 0u);
  sink->EndOfTransaction(Lsn(150));
  EXPECT_TRUE(model.ReadCommitted("outbox.event.order").empty());  // batch may still grow
  sink->StreamIdle();
  EXPECT_EQ(model.ReadCommitted("outbox.event.order").size(), 2u);
  EXPECT_EQ(acks.ok(), 2u);
  EXPECT_EQ(CheckpointIn(model), Lsn(150));
  EXPECT_EQ(sink->transactions_committed(), 1u);
}

TEST(TransactionalSinkTest, BatchBoundsCommitUnderLoad) {
  KafkaModel model;
  Acks acks;
  absl::Time now = absl::UnixEpoch();
  TransactionalConfig config = Config();
  config.max_batch_events = 3;
  auto sink = MakeSink(model, acks, config, [&] { return now; });
  ASSERT_TRUE(sink);
  for (int i = 1; i <= 3; ++i) {
    ASSERT_TRUE(sink->Produce(MakeEvent(i, Lsn(100 * i)), "", i).ok());
    sink->EndOfTransaction(Lsn(100 * i + 50));
  }
  EXPECT_EQ(sink->transactions_committed(), 1u) << "max_batch_events reached";
  ASSERT_TRUE(sink->Produce(MakeEvent(4, Lsn(400)), "", 4).ok());
  sink->EndOfTransaction(Lsn(450));
  sink->Poll(0);
  EXPECT_EQ(sink->transactions_committed(), 1u);
  now += absl::Milliseconds(150);
  sink->Poll(0);
  EXPECT_EQ(sink->transactions_committed(), 2u) << "max_batch_age reached";
  EXPECT_EQ(CheckpointIn(model), Lsn(450));
}

TEST(TransactionalSinkTest, FailedCommitAbortsAndReportsEveryEvent) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  ASSERT_TRUE(sink);
  model.fail_next_commits = 1;
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  ASSERT_TRUE(sink->Produce(MakeEvent(2, Lsn(100)), "", 1).ok());
  sink->EndOfTransaction(Lsn(150));
  sink->StreamIdle();
  ASSERT_EQ(acks.reports.size(), 2u);
  for (const auto& [t, s] : acks.reports) EXPECT_TRUE(absl::IsUnavailable(s)) << s;
  EXPECT_TRUE(model.ReadCommitted("outbox.event.order").empty());
  EXPECT_EQ(CheckpointIn(model), Lsn());
}

TEST(TransactionalSinkTest, UndeliveredRecordAbortsBeforeTheCheckpointIsWritten) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  model.fail_next_flush = true;
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  sink->EndOfTransaction(Lsn(150));
  sink->StreamIdle();
  ASSERT_EQ(acks.reports.size(), 1u);
  EXPECT_TRUE(absl::IsUnavailable(acks.reports[0].second)) << acks.reports[0].second;
  // Not even an aborted checkpoint record exists: nothing a reader could mistake.
  for (const KafkaModel::Stored& stored : model.log) EXPECT_NE(stored.record.topic, "outboxd.checkpoints");
}

TEST(TransactionalSinkTest, RecordRejectedForGoodIsPoisonNotAnEndlessRetry) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  model.reject_next_commit = true;
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  sink->EndOfTransaction(Lsn(150));
  sink->StreamIdle();
  ASSERT_EQ(acks.reports.size(), 1u);
  // FailedPrecondition: the relay stops instead of rewinding into the same rejection.
  EXPECT_TRUE(absl::IsFailedPrecondition(acks.reports[0].second)) << acks.reports[0].second;
  EXPECT_TRUE(absl::StrContains(acks.reports[0].second.message(), "poison event"));
  EXPECT_TRUE(model.ReadCommitted("outbox.event.order").empty());
}

TEST(TransactionalSinkTest, NewProducerFencesZombieAndAbortsItsOpenTransaction) {
  KafkaModel model;
  Acks old_acks, new_acks;
  auto zombie = MakeSink(model, old_acks);
  ASSERT_TRUE(zombie->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  zombie->EndOfTransaction(Lsn(150));
  auto successor = MakeSink(model, new_acks);  // e.g. a restarted relay
  ASSERT_TRUE(successor);
  zombie->StreamIdle();  // the zombie tries to commit: fenced
  ASSERT_EQ(old_acks.reports.size(), 1u);
  EXPECT_FALSE(old_acks.reports[0].second.ok());
  EXPECT_TRUE(model.ReadCommitted("outbox.event.order").empty());
  EXPECT_EQ(successor->RecoveredPosition(), Lsn());
}

TEST(TransactionalSinkTest, SkipsEventsAlreadyCommittedBeforeRecovery) {
  KafkaModel model;
  Acks acks;
  {
    auto first = MakeSink(model, acks);
    ASSERT_TRUE(first->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
    first->EndOfTransaction(Lsn(150));
    first->StreamIdle();
  }
  Acks acks2;
  auto second = MakeSink(model, acks2);
  EXPECT_EQ(second->RecoveredPosition(), Lsn(150));
  // The server resends the committed transaction (say the slot was not yet
  // confirmed): acknowledged at once, not sent again.
  ASSERT_TRUE(second->Produce(MakeEvent(1, Lsn(100)), "", 9).ok());
  ASSERT_EQ(acks2.reports.size(), 1u);
  EXPECT_TRUE(acks2.reports[0].second.ok());
  EXPECT_EQ(second->events_skipped(), 1u);
  second->EndOfTransaction(Lsn(150));
  second->StreamIdle();
  EXPECT_EQ(model.ReadCommitted("outbox.event.order").size(), 1u);
}

// A checkpoint holds a position in one PostgreSQL system's WAL: another
// system's is refused, or (accepted) its position dropped; one without a
// system (an older outboxd) is accepted, and the system recorded from then on.
TEST(TransactionalSinkTest, CheckpointOfAnotherSystemIsRefusedUnlessAccepted) {
  KafkaModel model;
  Acks acks;
  TransactionalConfig a = Config();
  a.system_identifier = "111";
  {
    auto first = MakeSink(model, acks, a);
    ASSERT_TRUE(first->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
    first->EndOfTransaction(Lsn(150));
    first->StreamIdle();
  }
  v1::Checkpoint written;
  ASSERT_TRUE(written.ParseFromString(model.ReadCommitted("outboxd.checkpoints").back().value));
  EXPECT_EQ(written.system_identifier(), "111");

  TransactionalConfig b = Config();
  b.system_identifier = "222";
  Acks acks2;
  auto refused = TransactionalSink::Create(
      b, std::make_unique<ModelProducer>(&model, "outboxd-shop"), acks2.Callback());
  ASSERT_FALSE(refused.ok());
  EXPECT_TRUE(absl::IsFailedPrecondition(refused.status())) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "system 111")) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "system 222")) << refused.status();
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "--accept_checkpoint_system_id_change")) << refused.status();

  b.accept_system_id_change = true;
  auto accepted = MakeSink(model, acks2, b);
  ASSERT_TRUE(accepted);
  EXPECT_EQ(accepted->RecoveredPosition(), Lsn()) << "another system's position must not be used";
  // B's WAL may well have an event below A's checkpoint: it is sent.
  ASSERT_TRUE(accepted->Produce(MakeEvent(2, Lsn(120)), "", 2).ok());
  accepted->EndOfTransaction(Lsn(130));
  accepted->StreamIdle();
  EXPECT_EQ(accepted->events_skipped(), 0u);
  ASSERT_TRUE(written.ParseFromString(model.ReadCommitted("outboxd.checkpoints").back().value));
  EXPECT_EQ(written.system_identifier(), "222");
}

TEST(TransactionalSinkTest, CheckpointWithoutSystemIsAcceptedAndTheSystemRecordedFromThenOn) {
  KafkaModel model;
  Acks acks;
  {
    auto old = MakeSink(model, acks);  // an outboxd that did not record the system
    ASSERT_TRUE(old->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
    old->EndOfTransaction(Lsn(150));
    old->StreamIdle();
  }
  TransactionalConfig config = Config();
  config.system_identifier = "333";
  Acks acks2;
  auto sink = MakeSink(model, acks2, config);
  ASSERT_TRUE(sink);
  EXPECT_EQ(sink->RecoveredPosition(), Lsn(150));
  ASSERT_TRUE(sink->Produce(MakeEvent(2, Lsn(200)), "", 2).ok());
  sink->EndOfTransaction(Lsn(250));
  sink->StreamIdle();
  v1::Checkpoint written;
  ASSERT_TRUE(written.ParseFromString(model.ReadCommitted("outboxd.checkpoints").back().value));
  EXPECT_EQ(written.system_identifier(), "333");
}

TEST(TransactionalSinkTest, FlushInsideTransactionAbortsIt) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  EXPECT_TRUE(sink->Flush(absl::Seconds(1)).ok());
  EXPECT_TRUE(model.ReadCommitted("outbox.event.order").empty());
  ASSERT_EQ(acks.reports.size(), 1u);
  EXPECT_FALSE(acks.reports[0].second.ok());
  EXPECT_EQ(sink->InFlight(), 0);
}

TEST(TransactionalSinkTest, InvalidTopicGoesToDeadLetterInsideTheTransaction) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "bad topic!", 1).ok());
  sink->EndOfTransaction(Lsn(150));
  sink->StreamIdle();
  std::vector<Record> dead = model.ReadCommitted("outbox.dead-letter");
  ASSERT_EQ(dead.size(), 1u);
  EXPECT_EQ(acks.ok(), 1u);
}

// Kafka unreachable while a batch commits: no call waits for it (the relay's
// thread must go on answering PostgreSQL); new events are held back like a
// full queue, and the commit completes on later Polls once Kafka answers.
TEST(TransactionalSinkTest, CommitDuringAnOutageProgressesInPollsAndHoldsNewEvents) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  sink->EndOfTransaction(Lsn(150));
  model.stalled_steps = 5;
  sink->StreamIdle();
  EXPECT_TRUE(acks.reports.empty());
  EXPECT_TRUE(absl::IsResourceExhausted(sink->Produce(MakeEvent(2, Lsn(200)), "", 2)));
  for (int i = 0; i < 10 && acks.reports.empty(); ++i) sink->Poll(0);
  ASSERT_EQ(acks.reports.size(), 1u);
  EXPECT_TRUE(acks.reports[0].second.ok()) << acks.reports[0].second;
  EXPECT_EQ(CheckpointIn(model), Lsn(150));
  EXPECT_TRUE(sink->Produce(MakeEvent(2, Lsn(200)), "", 2).ok());
}

// Under a backlog the stream runs dry after every read (the socket holds only
// what arrived while the relay waited for the last commit): committing at each
// of those pauses makes batches as small as a socket buffer and caps
// throughput at buffer / commit latency. Events that had to wait for a commit
// make the next batch wait, at an idle moment, until it is as old as that
// commit took (at most max_batch_age); with no backlog an idle stream commits
// at once.
TEST(TransactionalSinkTest, EventsThatWaitedForACommitGrowTheNextBatch) {
  KafkaModel model;
  Acks acks;
  absl::Time now = absl::UnixEpoch();
  auto sink = MakeSink(model, acks, Config(), [&] { return now; });
  ASSERT_TRUE(sink);
  EXPECT_EQ(sink->WorkDueIn(), absl::InfiniteDuration()) << "nothing open";
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  sink->EndOfTransaction(Lsn(150));
  model.stalled_steps = 2;
  sink->StreamIdle();  // the commit starts and takes 40 ms
  now += absl::Milliseconds(40);
  EXPECT_TRUE(absl::IsResourceExhausted(sink->Produce(MakeEvent(2, Lsn(200)), "", 2)));
  for (int i = 0; i < 10 && sink->transactions_committed() < 1; ++i) sink->Poll(0);
  ASSERT_EQ(sink->transactions_committed(), 1u);

  // The event that waited opens a batch that an idle moment does not commit yet.
  ASSERT_TRUE(sink->Produce(MakeEvent(2, Lsn(200)), "", 2).ok());
  sink->EndOfTransaction(Lsn(250));
  sink->StreamIdle();
  EXPECT_EQ(sink->transactions_committed(), 1u) << "backlogged: the batch may grow";
  EXPECT_EQ(sink->WorkDueIn(), absl::Milliseconds(40));
  now += absl::Milliseconds(25);
  ASSERT_TRUE(sink->Produce(MakeEvent(3, Lsn(300)), "", 3).ok());
  sink->EndOfTransaction(Lsn(350));
  sink->StreamIdle();
  EXPECT_EQ(sink->transactions_committed(), 1u);
  EXPECT_EQ(sink->WorkDueIn(), absl::Milliseconds(15));
  now += absl::Milliseconds(15);
  sink->StreamIdle();
  EXPECT_EQ(sink->transactions_committed(), 2u) << "as old as the last commit took";
  EXPECT_EQ(CheckpointIn(model), Lsn(350));

  // Nothing waited for that commit: the next idle moment commits at once.
  ASSERT_TRUE(sink->Produce(MakeEvent(4, Lsn(400)), "", 4).ok());
  sink->EndOfTransaction(Lsn(450));
  sink->StreamIdle();
  EXPECT_EQ(sink->transactions_committed(), 3u);
  EXPECT_EQ(acks.ok(), 4u);
}

// The age limit, too, is work the relay's loop must wake for.
TEST(TransactionalSinkTest, WorkDueInNamesTheBatchAgeLimit) {
  KafkaModel model;
  Acks acks;
  absl::Time now = absl::UnixEpoch();
  auto sink = MakeSink(model, acks, Config(), [&] { return now; });
  ASSERT_TRUE(sink);
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  EXPECT_EQ(sink->WorkDueIn(), absl::InfiniteDuration()) << "inside a PostgreSQL transaction";
  sink->EndOfTransaction(Lsn(150));
  now += absl::Milliseconds(30);
  EXPECT_EQ(sink->WorkDueIn(), absl::Milliseconds(70));
  now += absl::Milliseconds(80);
  EXPECT_EQ(sink->WorkDueIn(), absl::ZeroDuration());
}

// Recovery waits for Kafka in bounded steps and asks between two whether to
// go on (the relay answers PostgreSQL there and says no on stop).
TEST(TransactionalSinkTest, RecoveryWaitsInStepsAndStopsWhenToldTo) {
  KafkaModel model;
  Acks acks;
  model.stalled_steps = 1000;  // the coordinator never answers
  int asked = 0;
  TransactionalConfig config = Config();
  config.keep_waiting = [&] { return ++asked < 5; };
  auto sink = TransactionalSink::Create(config, std::make_unique<ModelProducer>(&model, "outboxd-shop"),
                                        acks.Callback());
  ASSERT_FALSE(sink.ok());
  EXPECT_TRUE(absl::IsCancelled(sink.status())) << sink.status();
  EXPECT_EQ(asked, 5);

  // Told to go on, it gives up at its deadline with a reason.
  model.stalled_steps = 1000000;
  config.keep_waiting = [] { return true; };
  config.recovery_timeout = absl::Milliseconds(1);
  sink = TransactionalSink::Create(config, std::make_unique<ModelProducer>(&model, "outboxd-shop"),
                                   acks.Callback());
  ASSERT_FALSE(sink.ok());
  EXPECT_TRUE(absl::IsUnavailable(sink.status())) << sink.status();
  EXPECT_THAT(std::string(sink.status().message()), ::testing::HasSubstr("did not complete within"));

  model.stalled_steps = 3;  // answers after three steps
  config.recovery_timeout = absl::Seconds(30);
  sink = TransactionalSink::Create(config, std::make_unique<ModelProducer>(&model, "outboxd-shop"),
                                   acks.Callback());
  EXPECT_TRUE(sink.ok()) << sink.status();
}

TEST(TransactionalSinkTest, FlushGivesUpAtItsDeadlineWhileKafkaIsAway) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  sink->EndOfTransaction(Lsn(150));
  model.stalled_steps = 1 << 30;
  const absl::Time start = absl::Now();
  EXPECT_TRUE(absl::IsDeadlineExceeded(sink->Flush(absl::Milliseconds(200))));
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  EXPECT_TRUE(acks.reports.empty()) << "nothing may be acknowledged that Kafka did not commit";
  EXPECT_TRUE(model.ReadCommitted("outbox.event.order").empty());
}

TEST(TransactionalSinkTest, StreamLostCommitsWholeTransactionsAndAbortsAPartOne) {
  KafkaModel model;
  Acks acks;
  auto sink = MakeSink(model, acks);
  ASSERT_TRUE(sink->Produce(MakeEvent(1, Lsn(100)), "", 1).ok());
  sink->EndOfTransaction(Lsn(150));
  sink->StreamLost();  // at a boundary: commit now
  EXPECT_EQ(acks.ok(), 1u);
  EXPECT_EQ(CheckpointIn(model), Lsn(150));

  ASSERT_TRUE(sink->Produce(MakeEvent(2, Lsn(200)), "", 2).ok());
  sink->StreamLost();  // inside a PostgreSQL transaction: abort now, not at the broker's timeout
  ASSERT_EQ(acks.reports.size(), 2u);
  EXPECT_EQ(SinkFailureOf(acks.reports[1].second), SinkFailure::kRewind) << acks.reports[1].second;
  EXPECT_TRUE(model.open_transaction.empty());
  EXPECT_EQ(model.ReadCommitted("outbox.event.order").size(), 1u);
}

// The whole recovery story: a stream of PostgreSQL transactions relayed by a
// relay that crashes (kill -9: nothing more reaches Kafka, status updates
// stop) or whose commits fail, again and again; each restart fences the old
// producer, reads the checkpoint and resumes. A read_committed reader must see
// every event exactly once.
class RecoverySimulation : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RecoverySimulation, EveryEventExactlyOnceForReadCommitted) {
  std::mt19937 rng(GetParam());
  struct PgTransaction {
    Lsn commit_lsn, end_lsn;
    std::vector<int> events;
  };
  std::vector<PgTransaction> stream;
  int next_id = 1;
  uint64_t lsn = 1000;
  for (int i = 0; i < 300; ++i) {
    PgTransaction t;
    t.commit_lsn = Lsn(lsn += 100);
    t.end_lsn = Lsn(lsn += 40);
    const int n = std::uniform_int_distribution<int>(0, 4)(rng);  // 0: writes to other tables only
    for (int e = 0; e < n; ++e) t.events.push_back(next_id++);
    stream.push_back(t);
  }
  const int total_events = next_id - 1;

  KafkaModel model;
  Lsn slot_confirmed;  // what PostgreSQL has in pg_replication_slots
  int restarts = 0;
  absl::Time now = absl::UnixEpoch();
  bool done = false;
  while (!done && restarts < 200) {
    ++restarts;
    checkpoint::AckTracker tracker;
    bool failed = false;
    auto kafka = std::make_unique<ModelProducer>(&model, "outboxd-shop");
    ModelProducer* producer = kafka.get();
    TransactionalConfig config = Config();
    config.max_batch_events = std::uniform_int_distribution<uint64_t>(1, 20)(rng);
    auto created = TransactionalSink::Create(
        config, std::move(kafka),
        [&](Ticket t, const absl::Status& s) {
          if (s.ok()) {
            tracker.Ack(t);
          } else {
            failed = true;
          }
        },
        [&] { return now; });
    ASSERT_TRUE(created.ok()) << created.status();
    std::unique_ptr<TransactionalSink> sink = std::move(*created);
    // The relay's rule: resume after the slot's or the checkpoint's position,
    // whichever is later. Sometimes pretend the server resent from the slot
    // position anyway, so the sink's own skip is exercised too.
    const Lsn resume = std::max(slot_confirmed, sink->RecoveredPosition());
    tracker.AdvanceConfirmed(resume);
    const Lsn server_start = std::bernoulli_distribution(0.3)(rng) ? slot_confirmed : resume;

    bool crashed = false;
    for (const PgTransaction& t : stream) {
      if (t.commit_lsn < server_start) continue;  // PostgreSQL does not send it
      tracker.BeginTransaction();
      for (int id : t.events) {
        const Ticket ticket = tracker.AddEvent();
        ASSERT_TRUE(sink->Produce(MakeEvent(id, t.commit_lsn), "", ticket).ok());
      }
      tracker.CommitTransaction(t.end_lsn);
      sink->EndOfTransaction(t.end_lsn);
      if (std::bernoulli_distribution(0.02)(rng)) model.fail_next_commits = 1;
      if (std::bernoulli_distribution(0.3)(rng)) sink->StreamIdle();
      now += absl::Milliseconds(std::uniform_int_distribution<int>(0, 60)(rng));
      sink->Poll(0);
      if (failed) break;  // the relay rewinds: a fresh sink, from the confirmed position
      if (std::bernoulli_distribution(0.5)(rng)) slot_confirmed = std::max(slot_confirmed, tracker.SafeLsn());
      if (std::bernoulli_distribution(0.03)(rng)) {
        producer->crashed = true;  // kill -9, at any point
        crashed = true;
        break;
      }
    }
    if (!crashed && !failed) {
      ASSERT_TRUE(sink->Flush(absl::Seconds(1)).ok());  // a clean stop
      if (!failed) {  // the final commit itself may have failed
        slot_confirmed = std::max(slot_confirmed, tracker.SafeLsn());
        done = true;
      }
    }
  }
  ASSERT_TRUE(done) << "did not finish in 200 restarts";

  std::map<std::string, int> seen;
  for (const Record& r : model.ReadCommitted("outbox.event.order")) {
    v1::OutboxEvent e;
    ASSERT_TRUE(e.ParseFromString(r.value));
    ++seen[e.id()];
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(total_events)) << "lost events";
  for (const auto& [id, count] : seen) EXPECT_EQ(count, 1) << "event " << id << " after " << restarts << " restarts";
  Lsn last_with_events;
  for (const PgTransaction& t : stream) {
    if (!t.events.empty()) last_with_events = t.end_lsn;
  }
  // Trailing transactions without events need no Kafka transaction.
  EXPECT_GE(CheckpointIn(model), last_with_events);
  EXPECT_EQ(slot_confirmed, stream.back().end_lsn);
  RecordProperty("restarts", restarts);
}

INSTANTIATE_TEST_SUITE_P(Seeds, RecoverySimulation, ::testing::Range<uint32_t>(1, 41));

}  // namespace
}  // namespace outboxd::sink
