// The command line's own rules: every flag of outboxd is in a help group and
// has its OUTBOXD_* variable, and the variables reach the flags.
#include "cmd/outboxd/flags.h"

#include <stdlib.h>

#include "absl/flags/flag.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace outboxd::cmd {
namespace {

using ::testing::Contains;
using ::testing::IsEmpty;
using ::testing::Not;

TEST(FlagsTest, EveryFlagIsInAHelpGroup) {
  EXPECT_THAT(UngroupedFlags(), IsEmpty())
      << "add each of these to a group in FlagGroups() (cmd/outboxd/flags.cc)";
}

TEST(FlagsTest, RegistryHoldsTheFlagsOfThisBinaryOnly) {
  const std::vector<std::string> flags = OutboxdFlags();
  EXPECT_THAT(flags, Contains("postgres"));
  EXPECT_THAT(flags, Contains("shutdown_timeout"));
  EXPECT_THAT(flags, Not(Contains("flagfile")));  // absl's own
}

TEST(FlagsTest, GroupsNameOnlyExistingFlags) {
  const std::vector<std::string> flags = OutboxdFlags();
  for (const FlagGroup& group : FlagGroups()) {
    for (absl::string_view name : group.flags) {
      EXPECT_THAT(flags, Contains(std::string(name))) << "group " << group.title;
    }
  }
}

TEST(FlagsTest, EnvironmentSetsEveryFlag) {
  ASSERT_EQ(setenv("OUTBOXD_SLOT", "from_env", 1), 0);
  ASSERT_EQ(setenv("OUTBOXD_SHUTDOWN_TIMEOUT", "3s", 1), 0);
  ASSERT_TRUE(ApplyEnvironment().ok());
  EXPECT_EQ(absl::GetFlag(FLAGS_slot), "from_env");
  EXPECT_EQ(absl::GetFlag(FLAGS_shutdown_timeout), absl::Seconds(3));
  EXPECT_TRUE(FlagGiven("slot"));
  ASSERT_EQ(setenv("OUTBOXD_LINGER_MS", "soon", 1), 0);
  const absl::Status bad = ApplyEnvironment();
  EXPECT_TRUE(absl::IsInvalidArgument(bad));
  EXPECT_THAT(std::string(bad.message()), ::testing::HasSubstr("OUTBOXD_LINGER_MS='soon'"));
  unsetenv("OUTBOXD_SLOT");
  unsetenv("OUTBOXD_SHUTDOWN_TIMEOUT");
  unsetenv("OUTBOXD_LINGER_MS");
}

TEST(FlagsTest, UnknownFlagIsAUsageErrorNamingTheHelp) {
  std::vector<std::string> args = {"run", "--postgress=x"};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  const absl::Status s = CheckFlags(argv, "run");
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr("outboxd run --help"));
}

}  // namespace
}  // namespace outboxd::cmd
