#include "tests/support/pg_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <tuple>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
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

std::string PgBin(int version) { return absl::StrCat("/usr/lib/postgresql/", version, "/bin"); }

// Mounts what PostgreSQL needs inside the root, in the private mount namespace `unshare -m` made
// for this one program (and, for pg_ctl start, the postmaster it leaves running), then runs the
// program chrooted as the root's postgres user. $1 root, $2 data directory, $3 uid:gid, $4...
// the program and its arguments.
constexpr char kChrootScript[] = R"sh(set -eu
root=$1 data=$2 user=$3
shift 3
mount -t proc proc "$root/proc"
mount -t tmpfs -o mode=1777,size=256m shm "$root/dev/shm"
for node in null zero full random urandom; do
  mount --bind "/dev/$node" "$root/dev/$node"
done
mount --bind "$data" "$root$data"
exec chroot --userspec="$user" "$root" "$@"
)sh";

// "uid:gid" of the `postgres` user in the root's /etc/passwd (not the host's: they may differ).
absl::StatusOr<std::pair<uid_t, gid_t>> RootPostgresUser(const std::string& root) {
  std::ifstream in(root + "/etc/passwd");
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> fields = absl::StrSplit(line, ':');
    int uid = 0, gid = 0;
    if (fields.size() >= 4 && fields[0] == "postgres" && absl::SimpleAtoi(fields[2], &uid) &&
        absl::SimpleAtoi(fields[3], &gid)) {
      return std::make_pair(static_cast<uid_t>(uid), static_cast<gid_t>(gid));
    }
  }
  return absl::FailedPreconditionError(absl::StrCat("no postgres user in ", root, "/etc/passwd"));
}

// The PostgreSQL 17 root, or why it cannot be used.
absl::StatusOr<std::string> Pg17Root() {
  std::string root;
  if (const char* env = std::getenv("OUTBOXD_PG17_ROOT"); env != nullptr && *env != '\0') {
    root = env;
  } else {
    const char* home = std::getenv("HOME");
    root = absl::StrCat(home != nullptr ? home : "/root", "/.cache/outboxd/pg17-root");
  }
  if (!std::filesystem::exists(root + "/.outboxd-pg17-ready")) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the PostgreSQL 17 root filesystem is not prepared at ", root,
        ": run tests/pg17/prepare-rootfs.sh (or `make pg17-root`) as root"));
  }
  if (!RunningAsRoot()) {
    return absl::FailedPreconditionError("PostgreSQL 17 servers (chroot) need the tests to run as root");
  }
  return root;
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

int PgServer::DefaultVersion() {
  const char* env = std::getenv("OUTBOXD_TEST_PG_VERSION");
  int version = 0;
  if (env != nullptr && absl::SimpleAtoi(env, &version)) return version;
  return 15;
}

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::Create(int version) {
  if (version == 0) version = DefaultVersion();
  if (version != 15 && version != 17) {
    return absl::InvalidArgumentError(
        absl::StrCat("PostgreSQL ", version, " is not available to the tests (15 or 17)"));
  }
  std::string root;
  if (version == 17) {
    ASSIGN_OR_RETURN(root, Pg17Root());
  }
  std::string dir = "/tmp/outboxd-pg-XXXXXX";
  if (mkdtemp(dir.data()) == nullptr) return ErrnoError("mkdtemp");
  absl::StatusOr<int> port = PickFreePort();
  if (!port.ok()) {
    std::filesystem::remove_all(dir);
    return port.status();
  }
  // From here the destructor removes the directory whatever fails.
  std::unique_ptr<PgServer> server(new PgServer(dir, *port, version, root));

  uid_t uid = 0;
  gid_t gid = 0;
  if (!root.empty()) {
    ASSIGN_OR_RETURN(std::tie(uid, gid), RootPostgresUser(root));
    // The mount point the data directory is bound to inside the root, at the same path.
    if (mkdir((root + dir).c_str(), 0700) != 0) return ErrnoError("mkdir " + root + dir);
  } else if (RunningAsRoot()) {
    const passwd* pw = getpwnam("postgres");
    if (pw == nullptr) {
      return absl::FailedPreconditionError("running as root but there is no `postgres` user");
    }
    uid = pw->pw_uid;
    gid = pw->pw_gid;
  }
  if (RunningAsRoot() && chown(dir.c_str(), uid, gid) != 0) return ErrnoError("chown " + dir);
  return server;
}

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::Start(PgServerOptions options) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgServer> server, Create(options.version));
  RETURN_IF_ERROR(server->RunPgProgram(
      "initdb",
      {"-D", server->data_dir_, "-U", "postgres", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync"}));

  std::vector<std::string> conf = {
      absl::StrCat("wal_level = ", options.wal_level),
      "max_wal_senders = 10",
      "max_replication_slots = 10",
  };
  conf.insert(conf.end(), options.extra_config.begin(), options.extra_config.end());

  // Replaces the default (trust for everyone): only the superuser is trusted, so tests can give
  // other roles passwords and see them checked.
  std::ofstream hba(server->data_dir_ + "/pg_hba.conf", std::ios::trunc);
  hba << "local all all trust\n"
         "host all postgres 127.0.0.1/32 trust\n"
         "host replication postgres 127.0.0.1/32 trust\n"
         "host all all 127.0.0.1/32 scram-sha-256\n"
         "host replication all 127.0.0.1/32 scram-sha-256\n";
  hba.close();
  if (!hba) return absl::InternalError("cannot write pg_hba.conf");

  RETURN_IF_ERROR(server->ConfigureAndStart(conf));
  return server;
}

absl::StatusOr<std::unique_ptr<PgServer>> PgServer::StartStandby(const PgServer& primary,
                                                                 PgServerOptions options,
                                                                 absl::string_view physical_slot) {
  ASSIGN_OR_RETURN(std::unique_ptr<PgServer> server, Create(primary.version_));
  std::vector<std::string> args = {
      "-D", server->data_dir_, "-d", primary.ConnInfo(), "-X", "stream", "-R", "--no-sync",
      "-c", "fast"};
  if (!physical_slot.empty()) {
    args.insert(args.end(), {"-C", "-S", std::string(physical_slot)});
  }
  RETURN_IF_ERROR(server->RunPgProgram("pg_basebackup", args));
  // The copy carries the primary's log; start this one's afresh.
  std::error_code ignored;
  std::filesystem::remove(server->LogPath(), ignored);
  std::vector<std::string> conf = {"hot_standby = on"};
  conf.insert(conf.end(), options.extra_config.begin(), options.extra_config.end());
  RETURN_IF_ERROR(server->ConfigureAndStart(conf));
  return server;
}

absl::Status PgServer::ConfigureAndStart(const std::vector<std::string>& extra) {
  std::vector<std::string> conf = {
      "listen_addresses = '127.0.0.1'",
      absl::StrCat("port = ", port_),
      absl::StrCat("unix_socket_directories = '", data_dir_, "'"),
      "fsync = off",
      "logging_collector = off",
  };
  conf.insert(conf.end(), extra.begin(), extra.end());
  RETURN_IF_ERROR(
      AppendToFile(data_dir_ + "/postgresql.conf", absl::StrCat(absl::StrJoin(conf, "\n"), "\n")));
  for (int attempt = 1;; ++attempt) {
    absl::Status status = StartAgain();
    if (status.ok()) return status;
    const bool port_taken = absl::StrContains(LogTail(20), "could not bind");
    if (!port_taken || attempt == kStartAttempts) return status;
    ASSIGN_OR_RETURN(port_, PickFreePort());
    // The last setting in postgresql.conf wins.
    RETURN_IF_ERROR(AppendToFile(data_dir_ + "/postgresql.conf", absl::StrCat("port = ", port_, "\n")));
  }
}

absl::Status PgServer::RunPgProgram(absl::string_view program,
                                    std::vector<std::string> args) const {
  std::vector<std::string> argv;
  if (!root_.empty()) {
    ASSIGN_OR_RETURN(auto user, RootPostgresUser(root_));
    argv = {"/usr/bin/unshare", "-m", "--propagation", "private", "/bin/sh", "-c", kChrootScript,
            "sh", root_, data_dir_, absl::StrCat(user.first, ":", user.second)};
  } else if (RunningAsRoot()) {
    argv = {"/usr/sbin/runuser", "-u", "postgres", "--"};
  }
  argv.push_back(absl::StrCat(PgBin(version_), "/", program));
  argv.insert(argv.end(), args.begin(), args.end());
  // initdb needs a locale; the test machine may not have the caller's.
  ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> process,
      Subprocess::Start(argv, {{"LC_ALL", "C.UTF-8"}, {"LANG", "C.UTF-8"}}));
  absl::StatusOr<int> exit_code = process->Wait(absl::Seconds(120));
  if (!exit_code.ok() || *exit_code != 0) {
    return absl::InternalError(absl::StrCat(
        program, " ", absl::StrJoin(args, " "), " (PostgreSQL ", version_, ") failed (",
        exit_code.ok() ? absl::StrCat("exit code ", *exit_code) : exit_code.status().ToString(),
        "): ", process->Stdout(), process->Stderr()));
  }
  return absl::OkStatus();
}

PgServer::~PgServer() {
  if (running_) PgCtl({"-m", "immediate", "stop"}).IgnoreError();
  std::error_code ignored;
  std::filesystem::remove_all(data_dir_, ignored);
  // Only the empty mount point: the bind mount lived in the server's own namespace.
  if (!root_.empty()) std::filesystem::remove(root_ + data_dir_, ignored);
}

absl::Status PgServer::PgCtl(std::vector<std::string> args) {
  std::vector<std::string> full = {"-w", "-D", data_dir_};
  full.insert(full.end(), args.begin(), args.end());
  return RunPgProgram("pg_ctl", std::move(full));
}

absl::Status PgServer::Promote() { return PgCtl({"promote"}); }

absl::Status PgServer::Kill9() {
  if (!running_) return absl::FailedPreconditionError("PostgreSQL is not running");
  // The first line of postmaster.pid is the postmaster's pid; pg_ctl made it a process group
  // leader (setsid), and every backend is in its group.
  std::ifstream pidfile(data_dir_ + "/postmaster.pid");
  std::string line;
  int pid = 0;
  if (!std::getline(pidfile, line) || !absl::SimpleAtoi(line, &pid) || pid <= 1) {
    return absl::InternalError(absl::StrCat("no postmaster pid in ", data_dir_, "/postmaster.pid"));
  }
  if (kill(-pid, SIGKILL) != 0 && kill(pid, SIGKILL) != 0) return ErrnoError("kill -9");
  running_ = false;
  // Gone when no process of the group is left, zombies aside (their parent reaps them).
  const absl::Time deadline = absl::Now() + absl::Seconds(10);
  while (absl::Now() < deadline) {
    bool alive = false;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      int entry_pid = 0;
      if (!absl::SimpleAtoi(entry.path().filename().string(), &entry_pid)) continue;
      std::ifstream stat(entry.path() / "stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      // pid (comm) state ppid pgrp ...: comm may hold spaces, so parse after the last ')'.
      const size_t paren = text.rfind(')');
      if (paren == std::string::npos) continue;
      std::vector<std::string> fields =
          absl::StrSplit(text.substr(paren + 2), ' ', absl::SkipEmpty());
      int pgrp = 0;
      if (fields.size() > 2 && fields[0] != "Z" && absl::SimpleAtoi(fields[2], &pgrp) &&
          pgrp == pid) {
        alive = true;
        break;
      }
    }
    if (!alive) {
      // A dead postmaster's pid stays a zombie until whoever adopted it reaps it (this machine's
      // pid 1 takes seconds), and PostgreSQL refuses to start while postmaster.pid names a pid
      // that exists (so does its socket's lock file, .s.PGSQL.<port>.lock, in the data
      // directory). After a real crash nothing holds that pid any more: remove both, as a reboot
      // would make them stale.
      std::error_code ignored;
      std::filesystem::remove(data_dir_ + "/postmaster.pid", ignored);
      std::filesystem::remove(absl::StrCat(data_dir_, "/.s.PGSQL.", port_, ".lock"), ignored);
      std::filesystem::remove(absl::StrCat(data_dir_, "/.s.PGSQL.", port_), ignored);
      return absl::OkStatus();
    }
    absl::SleepFor(absl::Milliseconds(20));
  }
  return absl::DeadlineExceededError(
      absl::StrCat("PostgreSQL processes of group ", pid, " still alive 10 s after SIGKILL"));
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
