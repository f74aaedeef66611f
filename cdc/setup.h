// Start-up checks and one-time setup on the PostgreSQL side.
//
//   OutboxConfig config{.table = ..., .publication = "outboxd", .slot = "outboxd"};
//   absl::Status ok = CheckServer(conn, config);   // version, wal_level, REPLICATION
//   ok = CheckTable(conn, config);                 // table, columns, column types
//   ok = EnsurePublication(conn, config);          // `outboxd init`: creates it if missing
//   absl::StatusOr<Lsn> confirmed = EnsureSlot(conn, config);    // init: creates it if missing
//   ok = CheckPublication(conn, config);           // `outboxd run`: never creates anything
//   absl::StatusOr<Lsn> confirmed = CheckSlot(conn, config);     // run: missing is an error
//
// Only init creates the slot. A slot missing when run starts (dropped, or absent on the server a
// failover promoted) or invalidated by PostgreSQL means the WAL of the events committed since its
// position is out of reach: a new slot would start at the current WAL position and skip them
// silently. So run stops with the reason instead, and the operator decides.
//
// Every failure names the problem and the fix ("wal_level is 'replica'; set
// wal_level = logical in postgresql.conf and restart PostgreSQL"), so a user
// can act on the one line outboxd prints before it exits.
#ifndef OUTBOXD_CDC_SETUP_H_
#define OUTBOXD_CDC_SETUP_H_

#include <libpq-fe.h>

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "decoder/outbox_decoder.h"
#include "outboxd/lsn.h"

namespace outboxd::cdc {

// The table `outboxd init` creates: outboxd's (README) or Debezium's default
// outbox table (id uuid, aggregatetype, aggregateid, type, payload jsonb).
enum class TableLayout { kOutboxd, kDebezium };

struct OutboxConfig {
  decoder::OutboxTable table;
  decoder::OutboxColumns columns;
  TableLayout layout = TableLayout::kOutboxd;
  std::string publication = "outboxd";
  std::string slot = "outboxd";
  decoder::OutboxSource source;
};

// Slot names are restricted by PostgreSQL to [a-z0-9_], at most 63 bytes.
absl::Status ValidateSlotName(absl::string_view slot);

// Server version (10+ for pgoutput, 14+ for the messages source), wal_level =
// logical, and a role that may stream (REPLICATION or superuser).
absl::Status CheckServer(PGconn* conn, const OutboxConfig& config);

// The outbox table exists and has every required column with a usable type.
absl::Status CheckTable(PGconn* conn, const OutboxConfig& config);

// Creates the table of config.layout with the configured column names if it
// is missing (`outboxd init`); an existing table is left as it is. Optional
// columns (headers, topic) named "" are left out.
absl::Status CreateTableIfMissing(PGconn* conn, const OutboxConfig& config);

// Creates the publication (inserts of the outbox table only, published through
// the root of a partitioned table; no table when the source is messages only)
// if missing (`outboxd init`); then CheckPublication.
absl::Status EnsurePublication(PGconn* conn, const OutboxConfig& config);

// The publication exists (NotFound naming `outboxd init` if not) and, when the
// table is a source, publishes inserts of the table, through the root when the
// table is partitioned.
absl::Status CheckPublication(PGconn* conn, const OutboxConfig& config);

// Creates the logical slot (pgoutput) if missing (`outboxd init`); then CheckSlot.
absl::StatusOr<Lsn> EnsureSlot(PGconn* conn, const OutboxConfig& config);

// The slot exists, is a logical pgoutput slot of this database and still has
// its WAL. Returns its confirmed_flush_lsn. Missing: NotFound (SlotMissingError);
// invalidated: FailedPrecondition.
absl::StatusOr<Lsn> CheckSlot(PGconn* conn, const OutboxConfig& config);

// The slot's confirmed_flush_lsn (works on a replication=database connection
// too), with CheckSlot's errors for a missing or invalidated slot.
absl::StatusOr<Lsn> SlotConfirmedLsn(PGconn* conn, absl::string_view slot);

// "host:port" of the server `conn` reached (with a multi-host --postgres, the
// one that answered): error messages say which server lacks the slot.
std::string ServerName(PGconn* conn);

// The error for a slot that does not exist on `server`, at start or on a
// reconnect: events committed since it was lost are out of outboxd's reach.
absl::Status SlotMissingError(absl::string_view slot, absl::string_view server);

}  // namespace outboxd::cdc

#endif  // OUTBOXD_CDC_SETUP_H_
