// bench-repl-reader: the source's limit. Streams a logical slot's pgoutput changes and discards
// them, acknowledging everything received at once, so the drain rate it reaches is what the
// walsender can send, not what a consumer does with it.
//
//   $ bench-repl-reader --postgres='host=... dbname=...' --slot=bench_reader
//       --publication=outboxd --end_lsn=0/5A3C1F0    (one command line)
//   bench-repl-reader: bytes=7631232 messages=60002 commits=20000 seconds=0.412
//
// It replaces pg_recvlogical as the drain's reference: pg_recvlogical writes every change as
// text to a file and confirms on its fsync interval, and outboxd drains faster than it, so it
// was no limit. Exits 0 once it has received WAL up to --end_lsn (an XLogData starting at or
// past it, or a keepalive whose server WAL end is past it: the walsender has nothing more
// below that position) and the walsender has taken its last acknowledgement (CopyDone answered:
// the slot's confirmed_flush_lsn is then at least --end_lsn), 1 on an error, 2 after --timeout_s.
//
// One thread; libpq's non-blocking copy reads with a 100 ms wait so the deadline holds.

#include <libpq-fe.h>
#include <sys/select.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <iostream>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "outboxd/lsn.h"
#include "pq/handles.h"

ABSL_FLAG(std::string, postgres, "", "libpq connection string (replication=database is added)");
ABSL_FLAG(std::string, slot, "", "logical replication slot (pgoutput) to stream");
ABSL_FLAG(std::string, publication, "outboxd", "publication_names for pgoutput");
ABSL_FLAG(std::string, end_lsn, "", "stop once WAL up to this position (X/Y) has been received");
ABSL_FLAG(int, proto_version, 1, "pgoutput proto_version");
ABSL_FLAG(double, timeout_s, 300, "give up (exit 2) after this many seconds");

namespace outboxd::bench {
namespace {

// PostgreSQL's epoch for replication timestamps: 2000-01-01 00:00:00 UTC.
constexpr int64_t kPgEpochUnixUs = 946684800LL * 1000000;

uint64_t ReadU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | static_cast<uint8_t>(p[i]);
  return v;
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

// Standby status update: everything received is written, flushed and applied.
bool Ack(PGconn* conn, uint64_t lsn) {
  std::string msg = "r";
  PutU64(&msg, lsn);
  PutU64(&msg, lsn);
  PutU64(&msg, lsn);
  PutU64(&msg, static_cast<uint64_t>(absl::GetCurrentTimeNanos() / 1000 - kPgEpochUnixUs));
  msg.push_back(0);
  return PQputCopyData(conn, msg.data(), static_cast<int>(msg.size())) == 1 && PQflush(conn) == 0;
}

// Waits up to 100 ms for the connection's socket to become readable, then reads what arrived.
bool WaitReadable(PGconn* conn) {
  const int fd = PQsocket(conn);
  fd_set fds;
  FD_ZERO(&fds);
  FD_SET(fd, &fds);
  timeval tv{0, 100000};
  if (select(fd + 1, &fds, nullptr, nullptr, &tv) < 0) return false;
  return PQconsumeInput(conn) != 0;
}

// Sends CopyDone, discards what the walsender still sends until its CopyDone, and reads the
// command's results: the walsender has then processed every acknowledgement sent before.
bool EndStream(PGconn* conn, absl::Time deadline) {
  if (PQputCopyEnd(conn, nullptr) != 1 || PQflush(conn) != 0) return false;
  for (;;) {
    char* raw = nullptr;
    const int len = PQgetCopyData(conn, &raw, /*async=*/1);
    pq::PgBuffer buf(raw);
    if (len == -1) break;  // the server's CopyDone
    if (len == -2 || absl::Now() > deadline) return false;
    if (len == 0 && !WaitReadable(conn)) return false;
  }
  bool ok = true;
  for (;;) {
    while (PQisBusy(conn)) {
      if (absl::Now() > deadline || !WaitReadable(conn)) return false;
    }
    pq::PgResult r(PQgetResult(conn));
    if (r == nullptr) break;
    const ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) ok = false;
  }
  return ok;
}

int Run() {
  absl::StatusOr<Lsn> end = Lsn::Parse(absl::GetFlag(FLAGS_end_lsn));
  if (absl::GetFlag(FLAGS_slot).empty() || !end.ok()) {
    std::cerr << "bench-repl-reader: --slot and --end_lsn=X/Y are required\n";
    return 1;
  }
  const std::string conninfo = absl::StrCat(absl::GetFlag(FLAGS_postgres), " replication=database");
  pq::PgConn conn(PQconnectdb(conninfo.c_str()));
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    std::cerr << "bench-repl-reader: " << PQerrorMessage(conn.get());
    return 1;
  }
  const absl::Time start = absl::Now();
  const std::string query = absl::StrFormat(
      "START_REPLICATION SLOT \"%s\" LOGICAL 0/0 (proto_version '%d', publication_names '%s')",
      absl::GetFlag(FLAGS_slot), absl::GetFlag(FLAGS_proto_version),
      absl::GetFlag(FLAGS_publication));
  {
    pq::PgResult r(PQexec(conn.get(), query.c_str()));
    if (PQresultStatus(r.get()) != PGRES_COPY_BOTH) {
      std::cerr << "bench-repl-reader: " << PQerrorMessage(conn.get());
      return 1;
    }
  }
  const absl::Time deadline = start + absl::Seconds(absl::GetFlag(FLAGS_timeout_s));
  const uint64_t end_lsn = end->value();
  uint64_t received = 0, acked = 0, bytes = 0, messages = 0, commits = 0;
  bool done = false;
  while (!done) {
    char* raw = nullptr;
    const int len = PQgetCopyData(conn.get(), &raw, /*async=*/1);
    pq::PgBuffer buf(raw);
    if (len == 0) {
      // Nothing buffered: acknowledge what arrived, then wait for the socket.
      if (received > acked) {
        if (!Ack(conn.get(), received)) break;
        acked = received;
      }
      if (absl::Now() > deadline) {
        std::cerr << "bench-repl-reader: timed out at " << Lsn(received).ToString() << "\n";
        return 2;
      }
      if (!WaitReadable(conn.get())) break;
      continue;
    }
    if (len < 0) break;  // -1: the stream ended; -2: an error
    if (buf.get()[0] == 'w' && len >= 25) {
      const uint64_t data_start = ReadU64(buf.get() + 1);
      ++messages;
      bytes += len - 25;
      if (buf.get()[25] == 'C') ++commits;
      received = std::max(received, data_start);
      if (data_start >= end_lsn) done = true;
    } else if (buf.get()[0] == 'k' && len >= 18) {
      const uint64_t wal_end = ReadU64(buf.get() + 1);
      const bool reply = buf.get()[17] != 0;
      // Past the end and nothing more below it: everything up to --end_lsn has been sent.
      if (wal_end >= end_lsn) {
        received = std::max(received, wal_end);
        done = true;
      }
      if (reply) {
        if (!Ack(conn.get(), received)) break;
        acked = received;
      }
    }
  }
  if (!done) {
    std::cerr << "bench-repl-reader: stream ended early: " << PQerrorMessage(conn.get());
    return 1;
  }
  // The last acknowledgement, then CopyDone: the walsender handles its input in order, so once it
  // has answered CopyDone (and ended the command) the slot's confirmed_flush_lsn is `received`.
  if (!Ack(conn.get(), received) || !EndStream(conn.get(), absl::Now() + absl::Seconds(10))) {
    std::cerr << "bench-repl-reader: could not end the stream: " << PQerrorMessage(conn.get());
    return 1;
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  std::cout << absl::StrFormat("bench-repl-reader: bytes=%d messages=%d commits=%d seconds=%.3f\n",
                               bytes, messages, commits, seconds)
            << std::flush;
  return 0;
}

}  // namespace
}  // namespace outboxd::bench

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return outboxd::bench::Run();
}
