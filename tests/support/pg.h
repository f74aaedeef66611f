// Move-only owners for libpq handles, for the test support code.
//
//   PgConn conn(PQconnectdb(conninfo.c_str()));
//   PgResult result(PQexec(conn.get(), "SELECT 1"));
#ifndef OUTBOXD_TESTS_SUPPORT_PG_H_
#define OUTBOXD_TESTS_SUPPORT_PG_H_

#include <libpq-fe.h>

#include <memory>

namespace outboxd::test {

struct PgConnDeleter {
  void operator()(PGconn* conn) const { PQfinish(conn); }
};
struct PgResultDeleter {
  void operator()(PGresult* result) const { PQclear(result); }
};

// unique_ptr gives exactly the semantics wanted: movable, copy deleted (a copied PGresult owner
// would PQclear twice), and the destructor frees.
using PgConn = std::unique_ptr<PGconn, PgConnDeleter>;
using PgResult = std::unique_ptr<PGresult, PgResultDeleter>;

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_SUPPORT_PG_H_
