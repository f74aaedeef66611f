// A throwaway PostgreSQL 15 server for integration tests: its own data directory under /tmp, a
// port the OS picked, removed again by the destructor.
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
};

class PgServer {
 public:
  using Rows = std::vector<std::vector<std::optional<std::string>>>;  // NULL is nullopt

  // initdb + pg_ctl start; the error carries initdb's output or the server log's tail.
  static absl::StatusOr<std::unique_ptr<PgServer>> Start(PgServerOptions options = {});

  PgServer(const PgServer&) = delete;
  PgServer& operator=(const PgServer&) = delete;
  // Stops the server (-m immediate) if it runs, and removes the data directory.
  ~PgServer();

  int port() const { return port_; }
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

  // The last `lines` lines of the server log (for failure messages).
  std::string LogTail(int lines) const;

 private:
  PgServer(std::string data_dir, int port) : data_dir_(std::move(data_dir)), port_(port) {}
  std::string LogPath() const { return data_dir_ + "/postgres.log"; }
  // Runs pg_ctl with these arguments (as the postgres user when we are root).
  absl::Status PgCtl(std::vector<std::string> args);

  std::string data_dir_;
  int port_;
  bool running_ = false;
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_PG_SERVER_H_
