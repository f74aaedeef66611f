// Move-only owners of libpq handles, for every piece of outboxd that talks to
// PostgreSQL through libpq (cdc/, the test harness, the bench).
//
//   PgConn conn(PQconnectdb(conninfo.c_str()));
//   PgResult result(PQexec(conn.get(), "SELECT 1"));
//   PgBuffer copy_data;  // what PQgetCopyData hands out
//
// unique_ptr gives exactly the semantics wanted: movable, copy deleted (a
// copied PGresult owner would PQclear twice), and the destructor frees.
#ifndef OUTBOXD_PQ_HANDLES_H_
#define OUTBOXD_PQ_HANDLES_H_

#include <libpq-fe.h>

#include <memory>

namespace outboxd::pq {

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};
struct PgFreeDeleter {
  void operator()(void* p) const { PQfreemem(p); }
};

using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;
using PgBuffer = std::unique_ptr<char, PgFreeDeleter>;

}  // namespace outboxd::pq

#endif  // OUTBOXD_PQ_HANDLES_H_
