// Bad input: one clear message with the fix, non-zero exit, within seconds.
//
// Each case runs the real outboxd binary against a throwaway PostgreSQL (and kafka-mock where
// `run` needs brokers) and checks the contract for mistakes an operator makes: exit code 2 for a
// usage error, 1 for a problem on the server; one ERROR line that names the problem and the fix;
// no secret from the connection string in the output; nothing created when a check fails.
// The only cases that keep running are the ones where that is the point: an unreachable broker
// is an outage to ride out, not a configuration error.
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <iostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/relay_env.h"

extern char** environ;

namespace outboxd::test {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using EnvVars = std::vector<std::pair<std::string, std::string>>;

constexpr int kExitFailure = 1;
constexpr int kExitUsage = 2;

// A TCP port on 127.0.0.1 that nothing listens on: the OS picks a free one and we close it again.
int ClosedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof addr;
  int port = -1;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

std::string UnreachablePostgres() {
  return absl::StrCat("host=127.0.0.1 port=", ClosedPort(), " dbname=postgres user=postgres");
}

std::vector<std::string> ErrorLines(absl::string_view output) {
  std::vector<std::string> out;
  for (absl::string_view line : absl::StrSplit(output, '\n')) {
    if (absl::StrContains(line, " ERROR ") || absl::StartsWith(line, "ERROR")) {
      out.emplace_back(line);
    }
  }
  return out;
}

struct Outcome {
  int code = -1;
  std::string output;
  absl::Duration took;
};

class BadInputTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // The child inherits our environment: an OUTBOXD_* variable from the shell running the tests
    // would change what the cases mean.
    std::vector<std::string> ours;
    for (char** e = environ; *e != nullptr; ++e) {
      absl::string_view entry = *e;
      if (absl::StartsWith(entry, "OUTBOXD_") || absl::StartsWith(entry, "PGPASSWORD=") ||
          absl::StartsWith(entry, "PGCONNECT_TIMEOUT=")) {
        ours.emplace_back(entry.substr(0, entry.find('=')));
      }
    }
    for (const std::string& name : ours) unsetenv(name.c_str());
  }

  Outcome Outboxd(std::vector<std::string> args, EnvVars env = {},
                  absl::Duration timeout = absl::Seconds(30)) {
    const absl::Time start = absl::Now();
    auto result = env_.RunOutboxd(args, std::move(env), timeout);
    Outcome o;
    o.took = absl::Now() - start;
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return o;
    o.code = result->first;
    o.output = result->second;
    std::cout << "[ timing   ] outboxd " << (args.empty() ? "" : args[0]) << " exited " << o.code
              << " after " << absl::FormatDuration(o.took) << "\n";
    return o;
  }

  // The contract for a failing command: this exit code, within `within`, exactly one ERROR line,
  // and that line holds every phrase (the problem and its fix).
  static void ExpectOneError(const Outcome& o, int code, const std::vector<std::string>& phrases,
                             absl::Duration within = absl::Seconds(5)) {
    EXPECT_EQ(o.code, code) << o.output;
    EXPECT_LT(o.took, within) << o.output;
    const std::vector<std::string> errors = ErrorLines(o.output);
    ASSERT_EQ(errors.size(), 1u) << "expected one ERROR line in:\n" << o.output;
    for (const std::string& p : phrases) EXPECT_THAT(errors[0], HasSubstr(p));
  }

  std::string Count(absl::string_view sql) {
    auto v = env_.pg().QueryValue(sql);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? *v : "?";
  }
  std::string Slots() { return Count("SELECT count(*) FROM pg_replication_slots"); }
  std::string Publications() { return Count("SELECT count(*) FROM pg_publication"); }
  std::string OutboxTables() {
    return Count("SELECT count(*) FROM pg_class WHERE relname = 'outbox_events'");
  }

  static bool WaitForOutput(Subprocess& p, absl::string_view text,
                            absl::Duration deadline = absl::Seconds(20)) {
    return WaitFor([&] { return absl::StrContains(p.Stderr(), text) || !p.Running(); }, deadline) &&
           absl::StrContains(p.Stderr(), text);
  }

  RelayEnv env_;
};

// --- server-side problems: exit 1 -----------------------------------------------------------

TEST_F(BadInputTest, RunWithoutOutboxTableSaysRunInit) {
  ASSERT_OK(env_.Start(/*init=*/false));
  Outcome o = Outboxd({"run", "--postgres=" + env_.pg().ConnInfo(), "--brokers=" + env_.Brokers()});
  ExpectOneError(o, kExitFailure, {"outbox table public.outbox_events does not exist",
                                   "outboxd init", "--table"});
  EXPECT_EQ(OutboxTables(), "0") << "run must not create the table";
  EXPECT_EQ(Publications(), "0");
  EXPECT_EQ(Slots(), "0");
}

TEST_F(BadInputTest, MissingRequiredColumnNamesColumnAndFlag) {
  ASSERT_OK(env_.Start(/*init=*/false));
  ASSERT_OK(env_.Sql(
      "CREATE TABLE outbox_events (id bigserial PRIMARY KEY, aggregate_type text NOT NULL, "
      "aggregate_id text NOT NULL, kind text NOT NULL, payload jsonb NOT NULL)"));
  Outcome o = Outboxd({"run", "--postgres=" + env_.pg().ConnInfo(), "--brokers=" + env_.Brokers()});
  ExpectOneError(o, kExitFailure, {"public.outbox_events has no column 'event_type'",
                                   "--event_type_column"});
  EXPECT_EQ(Publications(), "0");
  EXPECT_EQ(Slots(), "0");

  // The fix the message names works.
  Outcome fixed = Outboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--event_type_column=kind"});
  EXPECT_EQ(fixed.code, 0) << fixed.output;
  EXPECT_EQ(Slots(), "1");
}

TEST_F(BadInputTest, UnusableColumnTypeNamesTypeAndAlterTable) {
  ASSERT_OK(env_.Start(/*init=*/false));
  ASSERT_OK(env_.Sql(
      "CREATE TABLE outbox_events (id bigserial PRIMARY KEY, aggregate_type text NOT NULL, "
      "aggregate_id text NOT NULL, event_type text NOT NULL, payload integer NOT NULL)"));
  for (const char* command : {"init", "run"}) {
    SCOPED_TRACE(command);
    Outcome o = Outboxd({command, "--postgres=" + env_.pg().ConnInfo(), "--brokers=" + env_.Brokers()});
    ExpectOneError(o, kExitFailure,
                   {"column 'payload' of public.outbox_events has type integer",
                    "ALTER TABLE public.outbox_events ALTER COLUMN \"payload\" TYPE jsonb"});
  }
  EXPECT_EQ(Publications(), "0");
  EXPECT_EQ(Slots(), "0");
}

TEST_F(BadInputTest, WalLevelNotLogicalForInitAndRun) {
  ASSERT_OK(env_.Start(/*init=*/false, PgServerOptions{.wal_level = "replica"}));
  for (const char* command : {"init", "run"}) {
    SCOPED_TRACE(command);
    Outcome o = Outboxd({command, "--postgres=" + env_.pg().ConnInfo(), "--brokers=" + env_.Brokers()});
    ExpectOneError(o, kExitFailure,
                   {"wal_level is 'replica'", "wal_level = logical", "restart PostgreSQL"});
  }
  EXPECT_EQ(OutboxTables(), "0") << "init must check the server before creating anything";
  EXPECT_EQ(Publications(), "0");
  EXPECT_EQ(Slots(), "0");
}

TEST_F(BadInputTest, RoleWithoutReplicationSaysAlterRole) {
  ASSERT_OK(env_.Start());
  ASSERT_OK(env_.Sql("CREATE ROLE app LOGIN PASSWORD 'pw'; GRANT SELECT ON outbox_events TO app"));
  const std::string conninfo = env_.pg().ConnInfo("app") + " password=pw";
  const std::string confirmed_before = env_.ConfirmedLsn().ToString();
  std::string error;
  for (const char* command : {"init", "run"}) {
    SCOPED_TRACE(command);
    Outcome o = Outboxd({command, "--postgres=" + conninfo, "--brokers=" + env_.Brokers()});
    ExpectOneError(o, kExitFailure,
                   {"role \"app\"", "REPLICATION", "ALTER ROLE \"app\" WITH REPLICATION;"});
    error = o.output;
  }
  EXPECT_EQ(env_.ConfirmedLsn().ToString(), confirmed_before);

  // The statement in the message is the fix: run it as it stands, then init succeeds.
  const size_t from = error.find("ALTER ROLE");
  ASSERT_NE(from, std::string::npos);
  const std::string fix = error.substr(from, error.find(';', from) + 1 - from);
  ASSERT_OK(env_.Sql(fix));
  Outcome fixed = Outboxd({"init", "--postgres=" + conninfo});
  EXPECT_EQ(fixed.code, 0) << fixed.output;
}

TEST_F(BadInputTest, InitByRoleThatMayNotCreateTheTable) {
  ASSERT_OK(env_.Start(/*init=*/false));
  // PostgreSQL 15: nobody but the owner may create in schema public.
  ASSERT_OK(env_.Sql("CREATE ROLE relay LOGIN REPLICATION PASSWORD 'pw'"));
  const std::string conninfo = env_.pg().ConnInfo("relay") + " password=pw";
  Outcome o = Outboxd({"init", "--postgres=" + conninfo});
  ExpectOneError(o, kExitFailure, {"creating table public.outbox_events failed",
                                   "permission denied for schema public",
                                   "GRANT CREATE ON SCHEMA \"public\""});
  EXPECT_THAT(o.output, Not(HasSubstr("LINE 1")));
  EXPECT_EQ(Slots(), "0");

  // Once the DBA has made the table and publication, init as the relay's role only checks them
  // and creates the slot: CREATE TABLE IF NOT EXISTS would still need CREATE on the schema.
  Outcome dba = Outboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--slot=dba"});
  ASSERT_EQ(dba.code, 0) << dba.output;
  ASSERT_OK(env_.Sql("GRANT SELECT ON outbox_events TO relay"));
  Outcome fixed = Outboxd({"init", "--postgres=" + conninfo});
  EXPECT_EQ(fixed.code, 0) << fixed.output;
  EXPECT_EQ(Count("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'outboxd'"), "1");
}

TEST_F(BadInputTest, UnreachablePostgresNamesTheFlagQuickly) {
  auto kafka = KafkaMockProcess::Start(1);
  ASSERT_TRUE(kafka.ok()) << kafka.status();
  const std::string pg = UnreachablePostgres();
  const std::vector<std::string> phrases = {"cannot connect to PostgreSQL", "port=",
                                            "--postgres / OUTBOXD_POSTGRES"};
  ExpectOneError(Outboxd({"init", "--postgres=" + pg}), kExitFailure, phrases, absl::Seconds(12));
  ExpectOneError(Outboxd({"run", "--postgres=" + pg, "--brokers=" + (*kafka)->bootstrap()}),
                 kExitFailure, phrases, absl::Seconds(12));
  ExpectOneError(Outboxd({"run"}, {{"OUTBOXD_POSTGRES", pg}, {"OUTBOXD_BROKERS", (*kafka)->bootstrap()}}),
                 kExitFailure, phrases, absl::Seconds(12));
}

TEST_F(BadInputTest, WrongPasswordSaysHowToGiveItAndNeverPrintsIt) {
  ASSERT_OK(env_.Start());
  ASSERT_OK(env_.Sql("CREATE ROLE streamer LOGIN REPLICATION PASSWORD 'right-pw'; "
                     "GRANT SELECT ON outbox_events TO streamer"));
  const std::string secret = "wr0ng-s3cret";
  const std::string uri = absl::StrCat("postgresql://streamer:", secret, "@127.0.0.1:",
                                       env_.pg().port(), "/postgres");
  struct Case {
    std::string name;
    std::vector<std::string> args;
    EnvVars env;
  };
  const std::vector<Case> cases = {
      {"password= in conninfo",
       {"run", "--postgres=" + env_.pg().ConnInfo("streamer") + " password=" + secret,
        "--brokers=" + env_.Brokers()}},
      {"password in URI", {"run", "--postgres=" + uri, "--brokers=" + env_.Brokers()}},
      {"PGPASSWORD",
       {"init", "--postgres=" + env_.pg().ConnInfo("streamer")},
       {{"PGPASSWORD", secret}}},
      {"password= in OUTBOXD_POSTGRES",
       {"init"},
       {{"OUTBOXD_POSTGRES", env_.pg().ConnInfo("streamer") + " password=" + secret}}},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Outcome o = Outboxd(c.args, c.env);
    ExpectOneError(o, kExitFailure,
                   {"cannot log in to PostgreSQL", "password authentication failed",
                    "PGPASSWORD", ".pgpass", "--postgres / OUTBOXD_POSTGRES"});
    EXPECT_THAT(o.output, Not(HasSubstr(secret)));
  }

  // No password at all: the same fix.
  Outcome none = Outboxd({"init", "--postgres=" + env_.pg().ConnInfo("streamer")});
  ExpectOneError(none, kExitFailure, {"cannot log in to PostgreSQL", "PGPASSWORD", ".pgpass"});

  // And with the right one through PGPASSWORD, init works.
  Outcome fixed = Outboxd({"init", "--postgres=" + env_.pg().ConnInfo("streamer")},
                          {{"PGPASSWORD", "right-pw"}});
  EXPECT_EQ(fixed.code, 0) << fixed.output;
}

// --- usage errors: exit 2, before touching PostgreSQL or Kafka -----------------------------

TEST_F(BadInputTest, MissingBrokersOrPostgresIsUsageError) {
  // The PostgreSQL given is unreachable: had outboxd tried it, the error would be a different one.
  const std::string pg = UnreachablePostgres();
  ExpectOneError(Outboxd({"run", "--postgres=" + pg}), kExitUsage,
                 {"no Kafka brokers given", "--brokers=HOST:PORT", "OUTBOXD_BROKERS"});
  ExpectOneError(Outboxd({"run"}, {{"OUTBOXD_POSTGRES", pg}}), kExitUsage,
                 {"no Kafka brokers given", "OUTBOXD_BROKERS"});
  ExpectOneError(Outboxd({"run", "--brokers=127.0.0.1:9"}), kExitUsage,
                 {"no PostgreSQL connection given", "--postgres=", "OUTBOXD_POSTGRES"});
  ExpectOneError(Outboxd({"init"}), kExitUsage,
                 {"no PostgreSQL connection given", "--postgres=", "OUTBOXD_POSTGRES"});
  // An empty variable is no value either.
  ExpectOneError(Outboxd({"init"}, {{"OUTBOXD_POSTGRES", ""}}), kExitUsage, {"OUTBOXD_POSTGRES"});
}

TEST_F(BadInputTest, InvalidKafkaPropertyIsUsageError) {
  const std::string pg = "--postgres=" + UnreachablePostgres();
  const std::string brokers = absl::StrCat("--brokers=127.0.0.1:", ClosedPort());
  ExpectOneError(Outboxd({"run", pg, brokers, "--kafka_property=not.a.real.property=1"}), kExitUsage,
                 {"not.a.real.property"});
  ExpectOneError(Outboxd({"run", pg, brokers, "--kafka_property=novalue"}), kExitUsage,
                 {"--kafka_property='novalue' is not key=value", "compression.type=lz4"});
  ExpectOneError(Outboxd({"run", pg, brokers, "--kafka_property=compression.type=nonsense"}),
                 kExitUsage, {"compression.type", "nonsense"});
  ExpectOneError(Outboxd({"run", pg, brokers},
                         {{"OUTBOXD_KAFKA_PROPERTY", "compression.type=lz4;bogus.prop=1"}}),
                 kExitUsage, {"bogus.prop"});
}

TEST_F(BadInputTest, InvalidSlotNameAndUnknownCommandAreUsageErrors) {
  const std::string pg = "--postgres=" + UnreachablePostgres();
  const std::vector<std::string> slot_rules = {"--slot='Bad-Name'", "not a valid replication slot name",
                                               "lower-case letters, digits and underscores"};
  ExpectOneError(Outboxd({"init", pg, "--slot=Bad-Name"}), kExitUsage, slot_rules);
  ExpectOneError(Outboxd({"run", pg, "--brokers=127.0.0.1:9", "--slot=Bad-Name"}), kExitUsage,
                 slot_rules);
  ExpectOneError(Outboxd({"init", pg}, {{"OUTBOXD_SLOT", "Bad-Name"}}), kExitUsage, slot_rules);
  ExpectOneError(Outboxd({"init", pg, "--slot=" + std::string(64, 'a')}), kExitUsage,
                 {"at most 63 characters"});

  ExpectOneError(Outboxd({"frobnicate", pg}), kExitUsage,
                 {"unknown command 'frobnicate'", "outboxd --help"});
  ExpectOneError(Outboxd({"init", pg, "stray"}), kExitUsage,
                 {"unexpected argument 'stray'", "--name=value"});
  // Unknown flags and bad values are usage errors too (absl alone would exit 1).
  ExpectOneError(Outboxd({"run", pg, "--brokers=127.0.0.1:9", "--no_such_flag=1"}), kExitUsage,
                 {"unknown flag --no_such_flag", "outboxd run --help"});
  ExpectOneError(Outboxd({"run", pg, "--brokers=127.0.0.1:9", "--linger_ms=soon"}), kExitUsage,
                 {"--linger_ms='soon' is not valid"});
  ExpectOneError(Outboxd({"run", pg, "--brokers=127.0.0.1:9", "--shutdown_timeout", "forever"}),
                 kExitUsage, {"--shutdown_timeout='forever' is not valid"});
  ExpectOneError(Outboxd({"run", pg, "--brokers=127.0.0.1:9", "--linger_ms"}), kExitUsage,
                 {"--linger_ms needs a value"});
  // The "--name value" form is still accepted: this reaches the slot check.
  ExpectOneError(Outboxd({"init", "--postgres", UnreachablePostgres(), "--slot", "Bad-Name"}),
                 kExitUsage, slot_rules);

  Outcome bare = Outboxd({});
  EXPECT_EQ(bare.code, kExitUsage);
  EXPECT_THAT(bare.output, HasSubstr("usage: outboxd <command>"));
}

// --- environment variables ------------------------------------------------------------------

TEST_F(BadInputTest, EnvironmentVariablesConfigureInitAndRun) {
  ASSERT_OK(env_.Start(/*init=*/false));
  Outcome init = Outboxd({"init"}, {{"OUTBOXD_POSTGRES", env_.pg().ConnInfo()}});
  ASSERT_EQ(init.code, 0) << init.output;
  EXPECT_EQ(Count("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'outboxd' "
                  "AND plugin = 'pgoutput'"),
            "1");
  EXPECT_EQ(OutboxTables(), "1");

  auto relay = Subprocess::Start({BinaryPath("outboxd"), "run"},
                                 {{"OUTBOXD_POSTGRES", env_.pg().ConnInfo()},
                                  {"OUTBOXD_BROKERS", env_.Brokers()},
                                  {"OUTBOXD_LINGER_MS", "1"},
                                  {"OUTBOXD_ADMIN_LISTEN", "127.0.0.1:0"},
                                  {"OUTBOXD_METRICS_LISTEN", "127.0.0.1:0"}});
  ASSERT_TRUE(relay.ok()) << relay.status();
  ASSERT_TRUE(WaitForOutput(**relay, "streaming slot")) << (*relay)->Stderr();
  ASSERT_OK(env_.InsertEvent("order", "o-env", "FromEnv", "{}"));
  std::vector<Event> events = env_.ReadEvents("outbox.event.order", 1);
  ASSERT_EQ(events.size(), 1u) << (*relay)->Stderr();
  EXPECT_EQ(events[0].event.event_type(), "FromEnv");
  EXPECT_EQ((*relay)->Terminate(absl::Seconds(15)), 0) << (*relay)->Stderr();
}

TEST_F(BadInputTest, CommandLineWinsOverEnvironment) {
  ASSERT_OK(env_.Start(/*init=*/false));
  Outcome o = Outboxd({"init", "--postgres=" + env_.pg().ConnInfo(), "--slot=from_flag"},
                      {{"OUTBOXD_POSTGRES", UnreachablePostgres()}, {"OUTBOXD_SLOT", "from_env"}});
  ASSERT_EQ(o.code, 0) << o.output;
  EXPECT_EQ(Count("SELECT string_agg(slot_name, ',') FROM pg_replication_slots"), "from_flag");
}

// --- outages that are not fatal ---------------------------------------------------------------

TEST_F(BadInputTest, UnreachableBrokerIsRiddenOutNotFatal) {
  ASSERT_OK(env_.Start());
  const Lsn confirmed_at_start = env_.ConfirmedLsn();
  auto relay = Subprocess::Start({BinaryPath("outboxd"), "run", "--postgres=" + env_.pg().ConnInfo(),
                                  absl::StrCat("--brokers=127.0.0.1:", ClosedPort()),
                                  "--linger_ms=1", "--shutdown_timeout=2s",
                                  "--admin_listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"});
  ASSERT_TRUE(relay.ok()) << relay.status();
  Subprocess& p = **relay;
  ASSERT_TRUE(WaitForOutput(p, "streaming slot")) << p.Stderr();

  const Lsn before = env_.CurrentWalLsn();
  ASSERT_OK(env_.InsertEvent("order", "o-1", "Stuck", "{}"));
  // At or past the insert's commit record: confirming this far would mean the event was acked.
  const Lsn after_commit = env_.CurrentWalLsn();
  ASSERT_GT(after_commit, before);
  ASSERT_TRUE(WaitForOutput(p, "all Kafka brokers are down")) << p.Stderr();

  // For 3 s it must neither exit nor confirm the event (watched, not slept through).
  const bool gave_way = WaitFor([&] { return !p.Running() || env_.ConfirmedLsn() >= after_commit; },
                                absl::Seconds(3), absl::Milliseconds(100));
  EXPECT_FALSE(gave_way);
  EXPECT_TRUE(p.Running()) << p.Stderr();
  EXPECT_GE(env_.ConfirmedLsn(), confirmed_at_start);
  EXPECT_LT(env_.ConfirmedLsn(), after_commit) << "confirmed past an event Kafka never acknowledged";
  EXPECT_THAT(p.Stderr(), HasSubstr("nothing past them is confirmed"));

  const absl::Time t0 = absl::Now();
  p.Signal(SIGTERM);
  auto code = p.Wait(absl::Seconds(15));
  const absl::Duration took = absl::Now() - t0;
  std::cout << "[ timing   ] run with brokers down stopped after " << absl::FormatDuration(took)
            << "\n";
  ASSERT_TRUE(code.ok()) << code.status() << "\n" << p.Stderr();
  EXPECT_EQ(*code, 0) << p.Stderr();
  EXPECT_LT(took, absl::Seconds(2) + absl::Seconds(4)) << "--shutdown_timeout=2s plus margin";
  EXPECT_THAT(p.Stderr(), HasSubstr("not acknowledged in time"));
  EXPECT_LT(env_.ConfirmedLsn(), after_commit);
}

// --- secrets --------------------------------------------------------------------------------

TEST_F(BadInputTest, PasswordNeverAppearsInLogs) {
  ASSERT_OK(env_.Start());
  ASSERT_OK(env_.Sql("CREATE ROLE streamer REPLICATION LOGIN PASSWORD 's3cr3t-pw'; "
                     "GRANT SELECT ON outbox_events TO streamer"));
  auto relay = Subprocess::Start({BinaryPath("outboxd"), "run",
                                  "--postgres=" + env_.pg().ConnInfo("streamer") + " password=s3cr3t-pw",
                                  "--brokers=" + env_.Brokers(), "--linger_ms=1",
                                  "--admin_listen=127.0.0.1:0", "--metrics_listen=127.0.0.1:0"});
  ASSERT_TRUE(relay.ok()) << relay.status();
  Subprocess& p = **relay;
  ASSERT_TRUE(WaitForOutput(p, "streaming slot")) << p.Stderr();
  // It really streams as that role.
  ASSERT_OK(env_.InsertEvent("order", "o-1", "AsStreamer", "{}"));
  ASSERT_EQ(env_.ReadEvents("outbox.event.order", 1).size(), 1u) << p.Stderr();
  EXPECT_EQ(p.Terminate(absl::Seconds(15)), 0) << p.Stderr();
  const std::string logs = p.Stderr() + p.Stdout();
  EXPECT_THAT(logs, Not(HasSubstr("s3cr3t-pw")));
  EXPECT_THAT(logs, HasSubstr("password=********"));
}

}  // namespace
}  // namespace outboxd::test

namespace outboxd::test {
namespace {

TEST(CommandHelpTest, RunHelpGroupsEveryFlagWithItsDefault) {
  RelayEnv env;  // only for RunOutboxd: nothing is started
  auto result = env.RunOutboxd({"run", "--help"});
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->first, 0);
  for (const char* expected :
       {"PostgreSQL:", "Outbox:", "Routing and producer:", "Delivery:", "Admin API and metrics:",
        "--postgres", "--kafka_property", "--delivery  (default: at-least-once)",
        "--on_poison  (default: dead-letter)", "--linger_ms  (default: 1)", "OUTBOXD_<FLAG>"}) {
    EXPECT_THAT(result->second, ::testing::HasSubstr(expected));
  }
  // tail's help shows tail's flags, not the relay's.
  auto tail = env.RunOutboxd({"tail", "--help"});
  ASSERT_TRUE(tail.ok());
  EXPECT_THAT(tail->second, ::testing::HasSubstr("--from  (default: beginning)"));
  EXPECT_THAT(tail->second, ::testing::Not(::testing::HasSubstr("--delivery")));
}

}  // namespace
}  // namespace outboxd::test
