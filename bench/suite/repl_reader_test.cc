// bench-repl-reader against a real PostgreSQL: it reads the whole range, acknowledges all of it,
// does not stop early, and says when it cannot stream.

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/support/pg_server.h"
#include "tests/support/subprocess.h"

namespace outboxd::bench {
namespace {

using test::PgServer;
using test::Subprocess;
using ::testing::HasSubstr;

// One PostgreSQL per test process (ctest runs each test alone; a plain run of the binary shares
// it), each test its own slot.
class ReplReaderTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    auto pg = PgServer::Start();
    ASSERT_TRUE(pg.ok()) << pg.status();
    pg_ = pg->release();
    absl::Status s = pg_->Exec(
        "CREATE TABLE t (id bigserial PRIMARY KEY, v text); CREATE PUBLICATION outboxd FOR TABLE t;");
    ASSERT_TRUE(s.ok()) << s;
  }
  static void TearDownTestSuite() {
    delete pg_;
    pg_ = nullptr;
  }

  // A fresh pgoutput slot (a slot cannot be created in a transaction that has written).
  static void CreateSlot(const std::string& slot) {
    absl::Status s =
        pg_->Exec(absl::StrCat("SELECT pg_create_logical_replication_slot('", slot, "', 'pgoutput')"));
    ASSERT_TRUE(s.ok()) << s;
  }

  std::unique_ptr<Subprocess> Reader(const std::string& end_lsn, const std::string& slot,
                                     const std::string& timeout_s = "60") {
    auto p = Subprocess::Start({test::BinaryPath("bench-repl-reader"),
                                "--postgres=" + pg_->ConnInfo(), "--slot=" + slot,
                                "--publication=outboxd", "--end_lsn=" + end_lsn,
                                "--timeout_s=" + timeout_s});
    EXPECT_TRUE(p.ok()) << p.status();
    return p.ok() ? std::move(*p) : nullptr;
  }

  static PgServer* pg_;
};

PgServer* ReplReaderTest::pg_ = nullptr;

TEST_F(ReplReaderTest, ReadsEveryTransactionUpToTheEndAndConfirmsIt) {
  CreateSlot("drain");
  ASSERT_TRUE(pg_->Exec("DO $$ BEGIN FOR i IN 1..500 LOOP "
                        "INSERT INTO t (v) SELECT 'x' FROM generate_series(1, 3); COMMIT; "
                        "END LOOP; END $$")
                  .ok());
  absl::StatusOr<std::string> end = pg_->QueryValue("SELECT pg_current_wal_lsn()");
  ASSERT_TRUE(end.ok()) << end.status();
  auto reader = Reader(*end, "drain");
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<int> rc = reader->Wait(absl::Seconds(60));
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 0) << reader->Stderr();
  // Begin, 3 inserts and a commit per transaction, plus one Relation message.
  EXPECT_THAT(reader->Stdout(), HasSubstr("messages=2501 commits=500 "));
  absl::StatusOr<std::string> confirmed = pg_->QueryValue(absl::StrCat(
      "SELECT confirmed_flush_lsn >= '", *end, "' FROM pg_replication_slots WHERE slot_name = 'drain'"));
  ASSERT_TRUE(confirmed.ok()) << confirmed.status();
  // Checked at once, with no wait: the reader exits only after the walsender took its last ack.
  EXPECT_EQ(*confirmed, "t") << "the reader acknowledges everything it received before it exits";
}

TEST_F(ReplReaderTest, WaitsForAnEndNotYetWrittenUntilItsTimeout) {
  CreateSlot("later");
  absl::StatusOr<std::string> later = pg_->QueryValue("SELECT pg_current_wal_lsn() + 100000000");
  ASSERT_TRUE(later.ok()) << later.status();
  auto reader = Reader(*later, "later", "1");
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<int> rc = reader->Wait(absl::Seconds(60));
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 2) << reader->Stderr();
  EXPECT_THAT(reader->Stderr(), HasSubstr("timed out"));
}

TEST_F(ReplReaderTest, AMissingSlotIsAnError) {
  auto reader = Reader("0/1000000", "no_such_slot");
  ASSERT_NE(reader, nullptr);
  absl::StatusOr<int> rc = reader->Wait(absl::Seconds(60));
  ASSERT_TRUE(rc.ok()) << rc.status();
  EXPECT_EQ(*rc, 1);
  EXPECT_THAT(reader->Stderr(), HasSubstr("no_such_slot"));
}

}  // namespace
}  // namespace outboxd::bench
