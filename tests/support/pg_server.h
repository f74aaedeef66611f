// A throwaway PostgreSQL server for integration tests: its own data directory under /tmp, a
// port the OS picked, removed again by the destructor. PostgreSQL 15 is this machine's; 17 runs
// from the Debian stable root filesystem tests/pg17/prepare-rootfs.sh builds (see "PostgreSQL
// 17" below).
//
//   absl::StatusOr<std::unique_ptr<PgServer>> pg = PgServer::Start();
//   ASSERT_TRUE(pg.ok()) << pg.status();
//   ASSERT_TRUE((*pg)->Exec("CREATE TABLE t (id int)").ok());
//   absl::StatusOr<std::string> level = (*pg)->QueryValue("SHOW wal_level");  // "logical"
//   Relay relay((*pg)->ConnInfo());
//
// Authentication (pg_hba.conf): the superuser `postgres` is trusted; every other role must give
// its password (scram-sha-256) over TCP, so tests can check "wrong password" and "no REPLICATION
// privilege" with roles they create.
//
// Tests run as root and PostgreSQL refuses to run as root, so when euid is 0 the data directory
// is given to the `postgres` OS user and initdb/pg_ctl run as that user.
//
// PostgreSQL 17. PgServerOptions::version = 17, or OUTBOXD_TEST_PG_VERSION=17 in the environment
// for every server whose options leave the version at 0 (so existing tests run on 17 unchanged).
// The root is ${OUTBOXD_PG17_ROOT:-$HOME/.cache/outboxd/pg17-root}; Start() fails with
// FailedPrecondition, naming the script, when it is not prepared (`make pg17-root`; ctest's
// pg17 label prepares it as a fixture). Every PostgreSQL program (initdb, pg_ctl, pg_basebackup)
// runs through `unshare -m` in a private mount namespace that mounts the root's /proc, a tmpfs
// /dev/shm, and bind-mounts the data directory at the same path inside the root, then chroots
// into the root as its `postgres` user. The postmaster keeps that namespace alive while it runs;
// when it exits (stop, kill -9, a killed test's orphan finally stopped) the mounts go with it, so
// nothing is ever mounted in the host's namespace. The data directory has the same path on the
// host and inside the root: data_dir(), its log and its Unix socket work as on 15. Tests and
// outboxd stay on the host and connect over 127.0.0.1.
//
// Replication (for failover tests), both versions:
//
//   PgServerOptions primary_options{.extra_config = {"wal_keep_size = 64MB"}, .version = 17};
//   auto primary = PgServer::Start(primary_options);
//   auto standby = PgServer::StartStandby(**primary,
//       {.extra_config = {"hot_standby_feedback = on", "sync_replication_slots = on"}},
//       /*physical_slot=*/"standby1");
//   (*primary)->Kill9();                 // SIGKILL to the postmaster's whole process group
//   ASSERT_OK((*standby)->Promote());    // pg_ctl promote -w
//
// Used from the test thread; not thread-safe. The server itself is a separate process tree.
#ifndef OUTBOXD_TESTS_SUPPORT_PG_SERVER_H_
#define OUTBOXD_TESTS_SUPPORT_PG_SERVER_H_

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace outboxd::test {

struct PgServerOptions {
  std::string wal_level = "logical";
  // Lines appended to postgresql.conf, e.g. "max_slot_wal_keep_size = 64MB".
  std::vector<std::string> extra_config;
  // PostgreSQL major version: 15 (this machine's) or 17 (the prepared root). 0 means
  // $OUTBOXD_TEST_PG_VERSION if set, else 15. StartStandby() always uses the primary's.
  int version = 0;
};

class PgServer {
 public:
  using Rows = std::vector<std::vector<std::optional<std::string>>>;  // NULL is nullopt

  // initdb + pg_ctl start; the error carries initdb's output or the server log's tail.
  static absl::StatusOr<std::unique_ptr<PgServer>> Start(PgServerOptions options = {});
  // A streaming standby of `primary`: pg_basebackup -R -X stream over TCP as `postgres` (run
  // inside the root on 17), its own port and socket directory, `options.extra_config` appended
  // to postgresql.conf, then started (hot standby: queries work, Exec of writes fails).
  // primary_conninfo names dbname=postgres (needed by 17's sync_replication_slots). With
  // `physical_slot`, pg_basebackup creates that physical slot on the primary (-C -S) and the
  // standby streams from it (primary_slot_name).
  static absl::StatusOr<std::unique_ptr<PgServer>> StartStandby(
      const PgServer& primary, PgServerOptions options = {}, absl::string_view physical_slot = "");

  // The version OUTBOXD_TEST_PG_VERSION selects (15 when unset).
  static int DefaultVersion();

  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;
  // Stops the server (-m immediate) if it runs, and removes the data directory.
  ~PgServer();

  int port() const { return port_; }
  int version() const { return version_; }
  std::string data_dir() const { return data_dir_; }
  // "host=127.0.0.1 port=N user=U dbname=D"; append "password=..." for non-superusers.
  std::string ConnInfo(absl::string_view user = "postgres",
                       absl::string_view dbname = "postgres") const;

  // As superuser on database `postgres`, a new connection per call. `sql` may hold several
  // statements. Errors carry the server's message.
  absl::Status Exec(absl::string_view sql);
  absl::StatusOr<Rows> Query(absl::string_view sql);
  // First column of the first row; an error when there is no row or the value is NULL.
  absl::StatusOr<std::string> QueryValue(absl::string_view sql);

  // pg_ctl -w -m <smart|fast|immediate> stop.
  absl::Status Stop(absl::string_view mode = "fast");
  // Starts the stopped server again on the same data directory and port.
  absl::Status StartAgain();
  // A crash: SIGKILL to the postmaster and every backend (its process group) at once, then waits
  // (10 s deadline) until they are gone. StartAgain() then runs crash recovery.
  absl::Status Kill9();
  // pg_ctl promote -w: the standby leaves recovery and accepts writes.
  absl::Status Promote();

  // The last `lines` lines of the server log (for failure messages).
  std::string LogTail(int lines) const;

 private:
  PgServer(std::string data_dir, int port, int version, std::string root)
      : data_dir_(std::move(data_dir)), port_(port), version_(version), root_(std::move(root)) {}
  // Creates the data directory (and its mount point inside the root) and the server object.
  static absl::StatusOr<std::unique_ptr<PgServer>> Create(int version);
  // Writes the settings every server gets and `extra` to postgresql.conf, then starts, picking
  // another port when the chosen one was taken meanwhile.
  absl::Status ConfigureAndStart(const std::vector<std::string>& extra);
  std::string LogPath() const { return data_dir_ + "/postgres.log"; }
  // Runs pg_ctl with these arguments (as the postgres user when we are root).
  absl::Status PgCtl(std::vector<std::string> args);
  // Runs a PostgreSQL program of this server's version to completion (see "PostgreSQL 17").
  absl::Status RunPgProgram(absl::string_view program, std::vector<std::string> args) const;

  std::string data_dir_;
  int port_;
  int version_;
  std::string root_;  // the PostgreSQL 17 root filesystem; empty for 15
  bool running_ = false;
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_PG_SERVER_H_
