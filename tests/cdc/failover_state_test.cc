// SlotFailoverState: what `run` and `init` say about surviving a failover, from
// what the primary shows; and MultiHostWarning() for a multi-host --postgres
// that could land on a standby.
#include <stdlib.h>

#include <string>

#include "cdc/pg_connection.h"
#include "cdc/setup.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace outboxd::cdc {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

SlotFailoverState ReadyOn17() {
  return {.server_version = 170002, .failover = true, .standbys = 1, .synchronizing = 1,
          .standby_slots = 1, .standby_slots_listed = 1};
}

TEST(SlotFailoverState, NoStandbyNoWarning) {
  EXPECT_THAT(SlotFailoverState{.server_version = 150004}.Warning("outboxd"), IsEmpty());
  EXPECT_THAT(SlotFailoverState{.server_version = 170002}.Warning("outboxd"), IsEmpty());
  EXPECT_EQ(SlotFailoverState{.server_version = 150004}.Describe(),
            "off (PostgreSQL 15 has no failover slots; 17+ has), 0 standby(s)");
}

TEST(SlotFailoverState, ReadyWhenEverySettingIsThere) {
  EXPECT_TRUE(ReadyOn17().Ready());
  EXPECT_THAT(ReadyOn17().Warning("outboxd"), IsEmpty());
  EXPECT_EQ(ReadyOn17().Describe(), "on, 1 standby(s), 1 synchronising slots");
}

TEST(SlotFailoverState, FifteenWithAStandbyWarnsThatNothingSurvives) {
  const SlotFailoverState s{.server_version = 150004, .standbys = 1};
  EXPECT_FALSE(s.Ready());
  EXPECT_THAT(s.Warning("outboxd"),
              AllOf(HasSubstr("replication slot \"outboxd\" would not survive a failover"),
                    HasSubstr("PostgreSQL 15 keeps logical slots on the primary only"),
                    HasSubstr("README \"Failover\"")));
}

TEST(SlotFailoverState, EachMissingSettingIsNamed) {
  SlotFailoverState s = ReadyOn17();
  s.failover = false;
  EXPECT_THAT(s.Warning("outboxd"), AllOf(HasSubstr("failover = false"), HasSubstr("outboxd init")));

  s = ReadyOn17();
  s.synchronizing = 0;
  EXPECT_THAT(s.Warning("outboxd"),
              AllOf(HasSubstr("sync_replication_slots = on"), HasSubstr("hot_standby_feedback = on"),
                    HasSubstr("a dbname in primary_conninfo"), Not(HasSubstr("synchronized_standby_slots"))));

  s = ReadyOn17();
  s.standby_slots_listed = 0;
  s.unlisted_slots = "standby1";
  EXPECT_THAT(s.Warning("outboxd"),
              AllOf(HasSubstr("on the primary set synchronized_standby_slots = 'standby1'"),
                    Not(HasSubstr("sync_replication_slots"))));

  s = ReadyOn17();
  s.standbys = 2;
  EXPECT_THAT(s.Warning("outboxd"), HasSubstr("primary_slot_name"));
  EXPECT_EQ(s.Describe(), "on, 2 standby(s), 1 synchronising slots (would not survive a failover)");
}

TEST(MultiHostWarning, OnlyForSeveralHostsThatMayPickAStandby) {
  unsetenv("PGTARGETSESSIONATTRS");
  EXPECT_THAT(MultiHostWarning("host=db dbname=shop"), IsEmpty());
  EXPECT_THAT(MultiHostWarning("host=a,b dbname=shop target_session_attrs=primary"), IsEmpty());
  EXPECT_THAT(MultiHostWarning("host=a,b dbname=shop target_session_attrs=read-write"), IsEmpty());
  EXPECT_THAT(MultiHostWarning("postgresql://a,b/shop?target_session_attrs=primary"), IsEmpty());
  EXPECT_THAT(MultiHostWarning("host=a,b dbname=shop password=secret"),
              AllOf(HasSubstr("target_session_attrs=primary"), Not(HasSubstr("secret"))));
  EXPECT_THAT(MultiHostWarning("postgresql://a,b/shop"), HasSubstr("several hosts"));
  EXPECT_THAT(MultiHostWarning("host=a,b target_session_attrs=any"), HasSubstr("several hosts"));
  setenv("PGTARGETSESSIONATTRS", "read-write", 1);
  EXPECT_THAT(MultiHostWarning("host=a,b dbname=shop"), IsEmpty());
  unsetenv("PGTARGETSESSIONATTRS");
}

}  // namespace
}  // namespace outboxd::cdc
