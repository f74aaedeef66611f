// Start-up checks and one-time setup on the PostgreSQL side.
//
//   OutboxConfig config{.table = ..., .publication = "outboxd", .slot = "outboxd"};
//   absl::Status ok = CheckServer(conn, config);   // version, wal_level, REPLICATION
//   ok = CheckTable(conn, config);                 // table, columns, column types
//   ok = EnsurePublication(conn, config);          // `outboxd init`: creates it if missing
//   absl::StatusOr<Lsn> confirmed = EnsureSlot(conn, config);    // init: creates it if missing
//   ok = CheckPublication(conn, config);           // `outboxd run`: never creates anything
//   absl::StatusOr<Lsn> confirmed = CheckSlot(conn, config);     // run: missing is an error
//   absl::StatusOr<SlotFailoverState> f = ReadSlotFailoverState(conn, config.slot);
//   if (!f->Warning(config.slot).empty()) LogWarning(...);       // a standby, but no failover
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
  // PostgreSQL 17+: init creates the slot with failover = true (and sets it on
  // an existing slot), so standbys set up for it keep a copy in step. Ignored
  // by older servers, which have no failover slots.
  bool slot_failover = true;
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

// Creates the logical slot (pgoutput) if missing (`outboxd init`), with failover
// = config.slot_failover on PostgreSQL 17+; then CheckSlot.
absl::StatusOr<Lsn> EnsureSlot(PGconn* conn, const OutboxConfig& config);

// PostgreSQL 17+: ALTER_REPLICATION_SLOT ... (FAILOVER on) for an existing slot,
// on a replication connection (the only place the server offers it). Fails while
// another connection streams the slot.
absl::Status SetSlotFailover(PGconn* replication_conn, absl::string_view slot, bool on);

// What a failover of the primary would do to the slot. PostgreSQL 17 keeps a
// logical slot created with failover = true in step on a standby that
// synchronises slots (sync_replication_slots = on, hot_standby_feedback = on,
// primary_slot_name, a dbname in primary_conninfo); with the standby's physical
// slot in the primary's synchronized_standby_slots, no change reaches outboxd
// before that standby has it, so the copy is never ahead of the WAL the standby
// can serve. Before 17 no logical slot survives a failover.
//
// Read on the primary, from what it can see: its standbys' walsenders and
// physical slots, the slot-sync workers connected from standbys (sessions named
// "... slotsync worker"), and its own settings.
struct SlotFailoverState {
  int server_version = 0;         // PQserverVersion()
  bool failover = false;          // the slot has failover = true (17+)
  int standbys = 0;               // physical standbys streaming from this server
  int synchronizing = 0;          // slot-sync workers connected from standbys
  int standby_slots = 0;          // physical slots in use by standbys
  int standby_slots_listed = 0;   // ... of those, named in synchronized_standby_slots
  std::string unlisted_slots;     // the others, comma-separated

  bool Supported() const { return server_version >= 170000; }
  // Any standby could take over with the slot: failover on, a standby
  // synchronising it, every standby on a physical slot and every such slot in
  // synchronized_standby_slots.
  bool Ready() const;
  // One line for the start-up log: "on, 1 of 1 standbys synchronising it".
  std::string Describe() const;
  // Empty when there is no standby or the slot would survive; otherwise the
  // warning that names every setting to change.
  std::string Warning(absl::string_view slot) const;
};

// Works on a replication=database connection too (literal SQL only).
absl::StatusOr<SlotFailoverState> ReadSlotFailoverState(PGconn* conn, absl::string_view slot);

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
