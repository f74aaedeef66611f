// The few connection helpers every cdc/ piece needs (the handle owners are pq/handles.h).
//
//   absl::StatusOr<PgConn> conn = Connect(conninfo, ConnectionKind::kReplication);
//   absl::StatusOr<PgResult> rows = Query(*conn, "SELECT $1::text", {"x"});
//
// Errors carry the server's words plus what to do about them: a wrong password
// points at PGPASSWORD/.pgpass, an unreachable server at --postgres.
#ifndef OUTBOXD_CDC_PG_CONNECTION_H_
#define OUTBOXD_CDC_PG_CONNECTION_H_

#include <libpq-fe.h>

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "pq/handles.h"

namespace outboxd::cdc {

using pq::PgBuffer;
using pq::PgConn;
using pq::PgResult;

enum class ConnectionKind { kSql, kReplication };

// Connects with the TCP settings of NetworkDefaults() added where conninfo
// does not set them.
absl::StatusOr<PgConn> Connect(absl::string_view conninfo, ConnectionKind kind);

// The keepalive and tcp_user_timeout settings outboxd adds to a connection,
// minus those conninfo (key=value or URI form, one host or several) sets
// itself: the user's conninfo wins. Without them a silently dropped path (a
// partition, a dead NAT entry, a failed host) is noticed only when the kernel
// gives up retransmitting, after about 15 minutes; with them in about 30 s:
// keepalive probes after 10 s of quiet, 3 unanswered probes 5 s apart end the
// connection, and so does data of ours unacknowledged for 30 s (the relay's
// status updates, sent every second, are such data). libpq ignores them on
// Unix-domain sockets. A service file's keepalive settings are overridden.
std::vector<std::pair<std::string, std::string>> NetworkDefaults(absl::string_view conninfo);

// With several hosts in conninfo (host=a,b or postgresql://a,b/...), libpq
// takes the first that accepts the connection, which may be a standby, unless
// target_session_attrs (or PGTARGETSESSIONATTRS) is primary or read-write.
// Returns the warning for that case, "" otherwise.
std::string MultiHostWarning(absl::string_view conninfo);

// Runs one statement (text parameters, NULL as nullopt) and returns its result.
// Without parameters it uses the simple query protocol, so it also serves
// replication commands (IDENTIFY_SYSTEM) and SQL on replication connections.
// Errors name the statement's purpose via `what` and keep the server's message.
absl::StatusOr<PgResult> Query(PGconn* conn, absl::string_view sql,
                               const std::vector<std::optional<std::string>>& params = {},
                               absl::string_view what = "");

// The value at (row, col) or nullopt for NULL or out of range.
std::optional<std::string> Value(const PGresult* result, int row, int col);

// The SQLSTATE of a failed result ("" if none).
std::string SqlState(const PGresult* result);

// conninfo with any password replaced by "********", safe to log.
std::string RedactConnInfo(absl::string_view conninfo);

// Quotes an identifier for SQL text (PQescapeIdentifier without a connection).
std::string QuoteIdentifier(absl::string_view name);

// Quotes a string literal for SQL text, for statements that cannot take
// parameters (replication connections). standard_conforming_strings is on in
// every supported server, so doubling quotes is enough.
std::string QuoteLiteral(absl::string_view value);

}  // namespace outboxd::cdc

#endif  // OUTBOXD_CDC_PG_CONNECTION_H_
