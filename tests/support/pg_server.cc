#include "tests/support/pg_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/time.h"
#include "outboxd/status_macros.h"
#include "pq/handles.h"
#include "tests/support/subprocess.h"

namespace outboxd::test {
namespace {

using pq::PgConn;
using pq::PgResult;

constexpr char kPgBin[] = "/usr/lib/postgresql/15/bin";
// Attempts at starting the server: the port we pick may be taken by someone else before the
// postmaster binds it.
constexpr int kStartAttempts = 3;

absl::Status ErrnoError(absl::string_view what) {
  return absl::InternalError(absl::StrCat(what, ": ", std::strerror(errno)));
}

// A port the OS considers free right now: bind 127.0.0.1:0 and read back what it chose.
absl::StatusOr<int> PickFreePort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return ErrnoError("socket");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    absl::Status status = ErrnoError("bind 127.0.0.1:0");
    close(fd);
    return status;
  }
  close(fd);
  return ntohs(addr.sin_port);
}

bool RunningAsRoot() { return geteuid() == 0; }

// Runs a PostgreSQL program to completion, as the `postgres` OS user when we are root.
absl::Status RunPgProgram(absl::string_view program, std::vector<std::string> args) {
  std::vector<std::string> argv;
  if (RunningAsRoot()) argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  argv.push_back(absl::StrCat(kPgBin, "/", program));
  argv.insert(argv.end(), args.begin(), args.end());
  // initdb needs a locale; the test machine may not have the caller's.
  ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> process,
      Subprocess::Start(argv, {{"LC_ALL", "C.UTF-8"}, {"LANG", "C.UTF-8"}}));
  absl::StatusOr<int> exit_code = process->Wait(absl::Seconds(120));
  if (!exit_code.ok() || *exit_code != 0) {
    return absl::InternalError(absl::StrCat(
        absl::StrJoin(argv, " "), " failed (",
        exit_code.ok() ? absl::StrCat("exit code ", *exit_code) : exit_code.status().ToString(),
        "): ", process->Stdout(), process->Stderr()));
  }
  return absl::OkStatus();
}

absl::Status AppendToFile(const std::string& path, absl::string_view text) {
  std::ofstream out(path, std::ios::app);
  out << text;
  out.close();
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

absl::StatusOr<PgResult> Run(const std::string& conninfo, absl::string_view sql) {
  PgConn conn(PQconnectdb(absl::StrCat(conninfo, " connect_timeout=10").c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return absl::UnavailableError(
        absl::StrCat("connect (", conninfo, "): ", PQerrorMessage(conn.get())));
  }
  PgResult result(PQexec(conn.get(), std::string(sql).c_str()));
  const ExecStatusType status = PQresultStatus(result.get());
  if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
    return absl::InternalError(
        absl::StrCat("\"", sql, "\": ", PQresStatus(status), ": ", PQerrorMessage(conn.get())));
  }
  return result;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::Start(PgServerOptions options) {
  std::string dir = "/tmp/outboxd-pg-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) return ErrnoError("mkdtemp");
  absl::StatusOr<int> port = PickFreePort();
  if (!port.ok()) {
    std::filesystem::remove_all(dir);
    return port.status();
  }
  // From here the destructor removes the directory whatever fails.
  std::unique_ptr<PgServer> server(new PgServer(dir, *port));

  if (RunningAsRoot()) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError("running as root but there is no `postgres` user");
    }
    if (chown(dir.c_str(), pw->pw_uid, pw->pw_gid) != 0) return ErrnoError("chown " + dir);
  }
  absl::Status status = RunPgProgram(
      "initdb", {"-D", dir, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"});
  if (!status.ok()) return status;

  std::vector<std::string> conf = {
      "listen_addresses = '127.0.0.1'",
      absl::StrCat("port = ", server->port_),
      absl::StrCat("unix_socket_directories = '", dir, "'"),
      absl::StrCat("wal_level = ", options.wal_level),
      "max_wal_senders = 10",
      "max_replication_slots = 10",
      "fsync = off",
      "logging_collector = off",
  };
  conf.insert(conf.end(), options.extra_config.begin(), options.extra_config.end());
  status = AppendToFile(dir + "/postgresql.conf", absl::StrCat(absl::StrJoin(conf, "\n"), "\n"));
  if (!status.ok()) return status;

  // Replaces the default (trust for everyone): only the superuser is trusted, so tests can give
  // other roles passwords and see them checked.
  std::ofstream hba(dir + "/pg_hba.conf", std::ios::trunc);
  hba << "local all all trust\n"
         "host all postgres 127.0.0.1/32 trust\n"
         "host replication postgres 127.0.0.1/32 trust\n"
         "host all all 127.0.0.1/32 scram-sha-256\n"
         "host replication all 127.0.0.1/32 scram-sha-256\n";
  hba.close();
  if (!hba) return absl::InternalError("cannot write pg_hba.conf");

  for (int attempt = 1;; ++attempt) {
    status = server->StartAgain();
    if (status.ok()) return server;
    const bool port_taken = absl::StrContains(server->LogTail(20), "could not bind");
    if (!port_taken || attempt == kStartAttempts) return status;
    port = PickFreePort();
    if (!port.ok()) return port.status();
    server->port_ = *port;
    // The last setting in postgresql.conf wins.
    status = AppendToFile(dir + "/postgresql.conf", absl::StrCat("port = ", *port, "\n"));
    if (!status.ok()) return status;
  }
}

PgServer::~PgServer() {
  if (running_) PgCtl({"-m", "immediate", "stop"}).IgnoreError();
  std::error_code ignored;
  std::filesystem::remove_all(data_dir_, ignored);
}

absl::Status PgServer::PgCtl(std::vector<std::string> args) {
  std::vector<std::string> full = {"-w", "-D", data_dir_};
  full.insert(full.end(), args.begin(), args.end());
  return RunPgProgram("pg_ctl", std::move(full));
}

absl::Status PgServer::StartAgain() {
  if (running_) return absl::FailedPreconditionError("PostgreSQL is already running");
  absl::Status status = PgCtl({"-l", LogPath(), "start"});
  if (!status.ok()) {
    return absl::Status(status.code(),
                        absl::StrCat(status.message(), "\nserver log:\n", LogTail(20)));
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status PgServer::Stop(absl::string_view mode) {
  if (!running_) return absl::FailedPreconditionError("PostgreSQL is not running");
  absl::Status status = PgCtl({"-m", std::string(mode), "stop"});
  if (status.ok()) running_ = false;
  return status;
}

std::string PgServer::ConnInfo(absl::string_view user, absl::string_view dbname) const {
  return absl::StrCat("host=127.0.0.1 port=", port_, " user=", user, " dbname=", dbname);
}

absl::Status PgServer::Exec(absl::string_view sql) { return Run(ConnInfo(), sql).status(); }

absl::StatusOr<PgServer::Rows> PgServer::Query(absl::string_view sql) {
  ASSIGN_OR_RETURN(PgResult result, Run(ConnInfo(), sql));
  const PGresult* res = result.get();
  Rows rows(PQntuples(res));
  for (int r = 0; r < PQntuples(res); ++r) {
    for (int c = 0; c < PQnfields(res); ++c) {
      if (PQgetisnull(res, r, c)) {
        rows[r].push_back(std::nullopt);
      } else {
        rows[r].emplace_back(std::string(PQgetvalue(res, r, c), PQgetlength(res, r, c)));
      }
    }
  }
  return rows;
}

absl::StatusOr<std::string> PgServer::QueryValue(absl::string_view sql) {
  ASSIGN_OR_RETURN(Rows rows, Query(sql));
  if (rows.empty() || rows.front().empty()) {
    return absl::NotFoundError(absl::StrCat("\"", sql, "\" returned no value"));
  }
  if (!rows.front().front().has_value()) {
    return absl::NotFoundError(absl::StrCat("\"", sql, "\" returned NULL"));
  }
  return *rows.front().front();
}

std::string PgServer::LogTail(int lines) const {
  std::ifstream in(LogPath());
  std::stringstream content;
  content << in.rdbuf();
  const std::string text = content.str();
  std::vector<absl::string_view> all = absl::StrSplit(text, '\n');
  // Leave out the empty piece after the final newline.
  if (!all.empty() && all.back().empty()) all.pop_back();
  const size_t first = all.size() > static_cast<size_t>(lines) ? all.size() - lines : 0;
  std::string tail;
  for (size_t i = first; i < all.size(); ++i) absl::StrAppend(&tail, all[i], "\n");
  return tail;
}

}  // namespace outboxd::test
