// A dead network path to PostgreSQL is noticed: the replication connection is
// black-holed (iptables DROP of the test server's port, both directions), and
// the relay must notice within 60 s, say not ready on /readyz from then until
// it streams again, resume when the path returns, and lose nothing.
//
// Each test runs in a network namespace of its own (unshare(CLONE_NEWNET)
// before the servers start, with only a loopback in it), so the DROP rules can
// never touch the host's or another test's traffic, and vanish with the test
// process however it ends. The rules are still removed by an RAII guard, by
// their exact specification with a comment unique to this process: the path
// comes back in the middle of the test.
//
// Needs root (CAP_SYS_ADMIN, CAP_NET_ADMIN) and iptables (scripts/install-deps.sh);
// skipped without the capabilities, failed without iptables.
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "cdc/pg_connection.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "outboxd/status_macros.h"
#include "pq/handles.h"
#include "tests/integration/relay_env.h"

namespace outboxd::test {
namespace {

constexpr char kTopic[] = "outbox.event.order";

// Moves this process (its only thread, before any other starts) into a new
// network namespace and brings its loopback up.
absl::Status EnterOwnNetworkNamespace() {
  if (unshare(CLONE_NEWNET) != 0) {
    return absl::PermissionDeniedError(absl::StrCat("unshare(CLONE_NEWNET): ", strerror(errno)));
  }
  const int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError(absl::StrCat("socket: ", strerror(errno)));
  ifreq ifr{};
  strncpy(ifr.ifr_name, "lo", IFNAMSIZ - 1);
  absl::Status result = absl::OkStatus();
  if (ioctl(fd, SIOCGIFFLAGS, &ifr) != 0) {
    result = absl::InternalError(absl::StrCat("SIOCGIFFLAGS lo: ", strerror(errno)));
  } else {
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd, SIOCSIFFLAGS, &ifr) != 0) {
      result = absl::InternalError(absl::StrCat("SIOCSIFFLAGS lo: ", strerror(errno)));
    }
  }
  close(fd);
  return result;
}

// Runs a command to completion: its exit code and output.
absl::StatusOr<std::pair<int, std::string>> Run(std::vector<std::string> argv) {
  ASSIGN_OR_RETURN(auto p, Subprocess::Start(std::move(argv)));
  ASSIGN_OR_RETURN(auto code, p->Wait(absl::Seconds(30)));
  return std::make_pair(code, p->Stderr() + p->Stdout());
}

// iptables DROP of TCP to and from one loopback port while it lives.
class BlackHole {
 public:
  static absl::StatusOr<std::unique_ptr<BlackHole>> Start(int port) {
    auto hole = std::unique_ptr<BlackHole>(new BlackHole(port));
    for (const char* direction : {"--dport", "--sport"}) {
      ASSIGN_OR_RETURN(auto r, Run(hole->Rule("-I", direction)));
      if (r.first != 0) {
        return absl::InternalError(absl::StrCat("iptables failed (", r.first, "): ", r.second,
                                                " (scripts/install-deps.sh installs iptables)"));
      }
      hole->added_.push_back(direction);
    }
    return hole;
  }
  ~BlackHole() { Remove(); }

  // Deletes exactly the rules this guard added (same specification, same comment).
  void Remove() {
    for (const std::string& direction : added_) {
      auto r = Run(Rule("-D", direction));
      EXPECT_TRUE(r.ok() && r->first == 0) << "removing the DROP rule: "
                                           << (r.ok() ? r->second : r.status().ToString());
    }
    added_.clear();
  }

 private:
  explicit BlackHole(int port)
      : port_(port), comment_(absl::StrCat("outboxd-dead-path-test-", getpid(), "-", port)) {}

  std::vector<std::string> Rule(const std::string& op, const std::string& direction) const {
    return {"iptables", "-w", op, "INPUT", "-i", "lo", "-p", "tcp", direction,
            absl::StrCat(port_), "-m", "comment", "--comment", comment_, "-j", "DROP"};
  }

  const int port_;
  const std::string comment_;
  std::vector<std::string> added_;
};

std::string AddressAfter(const std::string& log, const std::string& prefix) {
  const size_t at = log.find(prefix);
  if (at == std::string::npos) return "";
  const size_t begin = at + prefix.size();
  const size_t end = log.find_first_of(" \"\n/", begin);
  return log.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

// Whether a TCP connect to 127.0.0.1:port waits for its SYN to be answered
// (a socket in state SYN_SENT in /proc/net/tcp; this namespace has only ours).
bool ConnectingTo(int port) {
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // header
  const std::string remote = absl::StrCat(":", absl::AsciiStrToUpper(absl::StrFormat("%04x", port)));
  while (std::getline(tcp, line)) {
    std::vector<std::string> f = absl::StrSplit(line, ' ', absl::SkipEmpty());
    // sl local_address rem_address st ...; st 02 is SYN_SENT.
    if (f.size() > 3 && absl::EndsWith(f[2], remote) && f[3] == "02") return true;
  }
  return false;
}

class DeadPathTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { netns_ = new absl::Status(EnterOwnNetworkNamespace()); }
  static void TearDownTestSuite() {
    delete netns_;
    netns_ = nullptr;
  }

  void SetUp() override {
    if (absl::IsPermissionDenied(*netns_)) GTEST_SKIP() << "needs root: " << *netns_;
    // An external Kafka is outside this namespace, unreachable from it.
    if (RelayEnv::ExternalKafkaMode()) GTEST_SKIP() << "runs on kafka-mock only";
    ASSERT_OK(*netns_);
    // The server gives up on the silent walsender after 20 s (default 60 s),
    // which frees the slot for the relay's new session sooner.
    PgServerOptions pg;
    pg.extra_config = {"wal_sender_timeout = 20s"};
    ASSERT_OK(env_.Start(/*init=*/true, pg, /*brokers=*/1));
  }

  void StartRelay(std::vector<std::string> extra) {
    extra.push_back("--admin_listen=");
    extra.push_back("--metrics_listen=127.0.0.1:0");
    extra.push_back("--max_backoff=1s");
    auto relay = env_.StartRelay(extra);
    ASSERT_TRUE(relay.ok()) << relay.status();
    relay_ = std::move(*relay);
    ASSERT_TRUE(WaitFor(
        [&] {
          metrics_ = AddressAfter(relay_->Stderr(), "metrics listening on http://");
          return !metrics_.empty();
        },
        absl::Seconds(20)))
        << relay_->Stderr();
    ASSERT_TRUE(RelayEnv::WaitStreaming(*relay_)) << relay_->Stderr();
  }

  int Readyz() {
    std::vector<std::string> parts = absl::StrSplit(metrics_, ':');
    httplib::Client client(parts[0], std::stoi(parts[1]));
    client.set_connection_timeout(2);
    client.set_read_timeout(2);
    auto res = client.Get("/readyz");
    return res ? res->status : -1;
  }

  // SQL over the server's Unix-domain socket, which the black hole does not reach.
  absl::StatusOr<std::string> SocketQuery(const std::string& sql) {
    pq::PgConn conn(PQconnectdb(absl::StrCat("host=", env_.pg().data_dir(), " port=", env_.pg().port(),
                                             " user=postgres dbname=postgres connect_timeout=10")
                                    .c_str()));
    if (PQstatus(conn.get()) != CONNECTION_OK) return absl::UnavailableError(PQerrorMessage(conn.get()));
    pq::PgResult r(PQexec(conn.get(), sql.c_str()));
    const ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK) {
      return absl::InternalError(absl::StrCat(sql, ": ", PQerrorMessage(conn.get())));
    }
    return st == PGRES_TUPLES_OK && PQntuples(r.get()) > 0 ? std::string(PQgetvalue(r.get(), 0, 0)) : "";
  }
  absl::Status InsertEvents(int n) {
    return SocketQuery(absl::StrCat(
                           "INSERT INTO outbox_events (aggregate_type, aggregate_id, event_type, payload) "
                           "SELECT 'order', 'o-' || g, 'OrderPlaced', '{}' FROM generate_series(1, ", n, ") g"))
        .status();
  }
  Lsn SocketLsn(const std::string& sql) {
    auto v = SocketQuery(sql);
    EXPECT_TRUE(v.ok()) << v.status();
    return v.ok() ? Lsn::Parse(*v).value_or(Lsn()) : Lsn();
  }
  Lsn SlotConfirmed() {
    return SocketLsn("SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = 'outboxd'");
  }
  Lsn WalLsn() { return SocketLsn("SELECT pg_current_wal_lsn()"); }

  // The black hole, end to end. Returns how long the relay took to say not ready.
  void BlackHoleAndBack(absl::string_view expect_in_log, absl::Duration notice_within) {
    ASSERT_OK(InsertEvents(10));
    ASSERT_EQ(env_.ReadEvents(kTopic, 10).size(), 10u);
    const Lsn before = WalLsn();
    ASSERT_TRUE(WaitFor([&] { return SlotConfirmed() >= before; }, absl::Seconds(20)));
    ASSERT_EQ(Readyz(), 200);

    auto hole = BlackHole::Start(env_.pg().port());
    ASSERT_TRUE(hole.ok()) << hole.status();
    const absl::Time dropped = absl::Now();
    ASSERT_OK(InsertEvents(10));  // committed while the relay cannot see them
    const Lsn during = WalLsn();

    ASSERT_TRUE(WaitFor([&] { return Readyz() == 503; }, absl::Seconds(90), absl::Milliseconds(100)))
        << relay_->Stderr();
    const absl::Duration noticed = absl::Now() - dropped;
    std::cerr << "black-holed path noticed after " << absl::FormatDuration(noticed) << "\n";
    EXPECT_LT(noticed, notice_within) << relay_->Stderr();
    EXPECT_GT(CountOf(relay_->Stderr(), expect_in_log), 0) << relay_->Stderr();

    // Not ready for as long as the path is dead (reconnects time out meanwhile);
    // and nothing committed during the outage is confirmed.
    const absl::Time until = absl::Now() + absl::Seconds(5);
    while (absl::Now() < until) {
      ASSERT_EQ(Readyz(), 503) << relay_->Stderr();
      absl::SleepFor(absl::Milliseconds(200));  // sampling the state, not waiting for it
    }
    EXPECT_LT(SlotConfirmed(), during);

    (*hole)->Remove();
    const absl::Time restored = absl::Now();
    ASSERT_TRUE(WaitFor([&] { return Readyz() == 200; }, absl::Seconds(90), absl::Milliseconds(100)))
        << relay_->Stderr();
    std::cerr << "streaming again " << absl::FormatDuration(absl::Now() - restored)
              << " after the path returned\n";

    ASSERT_OK(InsertEvents(10));
    std::vector<Event> events = env_.ReadAllCommitted(kTopic, 40);
    std::set<std::string> ids;
    for (const Event& e : events) ids.insert(e.event.id());
    std::set<std::string> want;
    for (int i = 1; i <= 30; ++i) want.insert(absl::StrCat(i));
    EXPECT_EQ(ids, want) << relay_->Stderr();
    EXPECT_GE(SlotConfirmed(), during);
    EXPECT_EQ(relay_->Terminate(), 0) << relay_->Stderr();
  }

  static absl::Status* netns_;
  RelayEnv env_;
  std::unique_ptr<Subprocess> relay_;
  std::string metrics_;
};

absl::Status* DeadPathTest::netns_ = nullptr;

// outboxd's TCP defaults (keepalives, tcp_user_timeout) are on the sockets,
// and a user's conninfo wins over them.
TEST_F(DeadPathTest, ConnectionsCarryTheTcpDefaultsUnlessTheConnInfoSetsThem) {
  auto get = [](int fd, int level, int name) {
    int v = -1;
    socklen_t len = sizeof v;
    EXPECT_EQ(getsockopt(fd, level, name, &v, &len), 0) << strerror(errno);
    return v;
  };
  for (auto kind : {cdc::ConnectionKind::kReplication, cdc::ConnectionKind::kSql}) {
    auto conn = cdc::Connect(env_.pg().ConnInfo(), kind);
    ASSERT_TRUE(conn.ok()) << conn.status();
    const int fd = PQsocket(conn->get());
    EXPECT_EQ(get(fd, SOL_SOCKET, SO_KEEPALIVE), 1);
    EXPECT_EQ(get(fd, IPPROTO_TCP, TCP_KEEPIDLE), 10);
    EXPECT_EQ(get(fd, IPPROTO_TCP, TCP_KEEPINTVL), 5);
    EXPECT_EQ(get(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
    EXPECT_EQ(get(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 30000);
  }
  auto mine = cdc::Connect(
      absl::StrCat("postgresql://postgres@127.0.0.1:", env_.pg().port(),
                   "/postgres?keepalives_idle=77&tcp_user_timeout=1234"),
      cdc::ConnectionKind::kReplication);
  ASSERT_TRUE(mine.ok()) << mine.status();
  const int fd = PQsocket(mine->get());
  EXPECT_EQ(get(fd, IPPROTO_TCP, TCP_KEEPIDLE), 77);
  EXPECT_EQ(get(fd, IPPROTO_TCP, TCP_USER_TIMEOUT), 1234);
  EXPECT_EQ(get(fd, IPPROTO_TCP, TCP_KEEPCNT), 3);
}

// Defaults: the TCP settings notice it (tcp_user_timeout on the status
// updates the relay sends every second).
TEST_F(DeadPathTest, BlackHoledPathIsNoticedAndRelayingResumes) {
  StartRelay({});
  BlackHoleAndBack("; reconnecting", absl::Seconds(60));
}

// Without the TCP settings (the user turned them off), the protocol check
// notices it: silence, a status update asking for a reply, no answer.
TEST_F(DeadPathTest, ReplicationTimeoutNoticesWhatTcpDoesNot) {
  StartRelay({absl::StrCat("--postgres=", env_.pg().ConnInfo(), " keepalives=0 tcp_user_timeout=0"),
              "--replication_timeout=5s"});
  BlackHoleAndBack("did not answer a status update asking for a reply", absl::Seconds(20));
}

// SIGTERM while the path is dead and the relay is reconnecting (each attempt
// would block for the 10 s connect timeout): it exits at once, confirming
// nothing it has not delivered.
TEST_F(DeadPathTest, SigtermWhileThePathIsDeadExitsPromptly) {
  StartRelay({absl::StrCat("--postgres=", env_.pg().ConnInfo(), " keepalives=0 tcp_user_timeout=0"),
              "--replication_timeout=2s", "--shutdown_timeout=2s"});
  ASSERT_OK(InsertEvents(5));
  ASSERT_EQ(env_.ReadEvents(kTopic, 5).size(), 5u);
  auto hole = BlackHole::Start(env_.pg().port());
  ASSERT_TRUE(hole.ok()) << hole.status();
  ASSERT_TRUE(WaitFor([&] { return Readyz() == 503; }, absl::Seconds(30), absl::Milliseconds(100)))
      << relay_->Stderr();
  // Inside a reconnect attempt: its SYN goes unanswered.
  ASSERT_TRUE(WaitFor([&] { return ConnectingTo(env_.pg().port()); }, absl::Seconds(10)))
      << relay_->Stderr();
  const absl::Time term = absl::Now();
  EXPECT_EQ(relay_->Terminate(absl::Seconds(15)), 0) << relay_->Stderr();
  const absl::Duration took = absl::Now() - term;
  std::cerr << "exit " << absl::FormatDuration(took) << " after SIGTERM on a dead path\n";
  EXPECT_LT(took, absl::Seconds(3)) << relay_->Stderr();
}

}  // namespace
}  // namespace outboxd::test
