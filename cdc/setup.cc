#include "cdc/setup.h"

#include <array>
#include <cstdlib>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cdc/pg_connection.h"
#include "outboxd/status_macros.h"

namespace outboxd::cdc {
namespace {

std::string QualifiedTable(const OutboxConfig& config) {
  return absl::StrCat(QuoteIdentifier(config.table.schema), ".", QuoteIdentifier(config.table.name));
}

// Types each column may have; the value goes into Kafka as PostgreSQL prints it.
constexpr std::array<absl::string_view, 5> kTextTypes = {"text", "character varying", "character",
                                                         "name", "uuid"};
constexpr std::array<absl::string_view, 5> kPayloadTypes = {"jsonb", "json", "text",
                                                            "character varying", "bytea"};
constexpr std::array<absl::string_view, 2> kHeaderTypes = {"jsonb", "json"};

template <size_t N>
bool OneOf(absl::string_view type, const std::array<absl::string_view, N>& allowed) {
  for (absl::string_view a : allowed) {
    if (type == a) return true;
  }
  return false;
}

}  // namespace

absl::Status ValidateSlotName(absl::string_view slot) {
  const bool ok = !slot.empty() && slot.size() <= 63 &&
                  std::all_of(slot.begin(), slot.end(), [](char c) {
                    return absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '_';
                  });
  if (ok) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(
      "--slot='", slot, "' is not a valid replication slot name; use lower-case letters, digits "
      "and underscores, at most 63 characters (e.g. outboxd)"));
}

absl::Status CheckServer(PGconn* conn, const OutboxConfig& config) {
  const int version = PQserverVersion(conn);
  if (version < 100000) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL server version ", version, " is too old; outboxd needs 10 or newer "
        "(logical replication with pgoutput)"));
  }
  if (config.source.messages && version < 140000) {
    return absl::FailedPreconditionError(absl::StrCat(
        "PostgreSQL server version ", version, " cannot stream logical decoding messages through "
        "pgoutput (that needs 14 or newer). Fix: use --source=table, or upgrade PostgreSQL"));
  }
  ASSIGN_OR_RETURN(auto wal, Query(conn, "SELECT current_setting('wal_level')", {}, "reading wal_level"));
  const std::string wal_level = Value(wal.get(), 0, 0).value_or("");
  if (wal_level != "logical") {
    return absl::FailedPreconditionError(absl::StrCat(
        "wal_level is '", wal_level, "'; outboxd reads the WAL through logical decoding. Fix: set "
        "wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and "
        "restart PostgreSQL"));
  }
  ASSIGN_OR_RETURN(auto role, Query(conn,
                    "SELECT current_user, rolreplication OR rolsuper FROM pg_roles "
                    "WHERE rolname = current_user",
                    {}, "reading the role's privileges"));
  if (Value(role.get(), 0, 1).value_or("f") != "t") {
    const std::string user = Value(role.get(), 0, 0).value_or("?");
    return absl::PermissionDeniedError(absl::StrCat(
        "role \"", user, "\" may not stream changes: it has neither REPLICATION nor superuser. "
        "Fix: as a superuser run ALTER ROLE ", QuoteIdentifier(user), " WITH REPLICATION;"));
  }
  return ValidateSlotName(config.slot);
}

absl::Status CheckTable(PGconn* conn, const OutboxConfig& config) {
  const std::string table = config.table.QualifiedName();
  ASSIGN_OR_RETURN(auto columns, Query(conn,
                       "SELECT a.attname, format_type(a.atttypid, NULL) FROM pg_attribute a "
                       "JOIN pg_class c ON c.oid = a.attrelid "
                       "JOIN pg_namespace n ON n.oid = c.relnamespace "
                       "WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p') "
                       "AND a.attnum > 0 AND NOT a.attisdropped",
                       {config.table.schema, config.table.name}, "reading the outbox table"));
  if (PQntuples(columns.get()) == 0) {
    return absl::NotFoundError(absl::StrCat(
        "outbox table ", table, " does not exist. Fix: run `outboxd init --postgres=...` to "
        "create it (with the publication and slot), or point --table at your outbox table"));
  }
  auto type_of = [&](absl::string_view name) -> std::optional<std::string> {
    for (int i = 0; i < PQntuples(columns.get()); ++i) {
      if (Value(columns.get(), i, 0) == name) return Value(columns.get(), i, 1);
    }
    return std::nullopt;
  };
  struct Rule {
    const std::string& column;
    const char* flag;
    bool required;
    const absl::string_view* allowed;
    size_t allowed_count;
  };
  const Rule rules[] = {
      {config.columns.id, "id_column", true, nullptr, 0},
      {config.columns.aggregate_type, "aggregate_type_column", true, kTextTypes.data(), kTextTypes.size()},
      {config.columns.aggregate_id, "aggregate_id_column", true, nullptr, 0},
      {config.columns.event_type, "event_type_column", true, kTextTypes.data(), kTextTypes.size()},
      {config.columns.payload, "payload_column", true, kPayloadTypes.data(), kPayloadTypes.size()},
      {config.columns.headers, "headers_column", false, kHeaderTypes.data(), kHeaderTypes.size()},
      {config.columns.topic, "topic_column", false, kTextTypes.data(), kTextTypes.size()},
  };
  for (const Rule& rule : rules) {
    const std::optional<std::string> type = type_of(rule.column);
    if (!type) {
      if (!rule.required) continue;
      return absl::FailedPreconditionError(absl::StrCat(
          "outbox table ", table, " has no column '", rule.column, "'. Fix: add it (see the "
          "table in README.md) or name the column that holds it with --", rule.flag));
    }
    if (rule.allowed == nullptr) continue;
    bool ok = false;
    for (size_t i = 0; i < rule.allowed_count; ++i) ok = ok || *type == rule.allowed[i];
    if (!ok) {
      std::vector<absl::string_view> allowed(rule.allowed, rule.allowed + rule.allowed_count);
      return absl::FailedPreconditionError(absl::StrCat(
          "column '", rule.column, "' of ", table, " has type ", *type, ", which outboxd cannot "
          "use there. Fix: ALTER TABLE ", table, " ALTER COLUMN ", QuoteIdentifier(rule.column),
          " TYPE ", allowed.front(), " (allowed: ", absl::StrJoin(allowed, ", "), ")"));
    }
  }
  return absl::OkStatus();
}

absl::Status CreateTableIfMissing(PGconn* conn, const OutboxConfig& config) {
  // CREATE TABLE IF NOT EXISTS still needs CREATE on the schema; a relay role
  // that only reads a table its DBA made must be able to run init too.
  ASSIGN_OR_RETURN(auto exists, Query(conn, "SELECT to_regclass($1) IS NOT NULL", {QualifiedTable(config)},
                      "looking up the outbox table"));
  if (Value(exists.get(), 0, 0) == "t") return absl::OkStatus();
  const decoder::OutboxColumns& c = config.columns;
  const bool debezium = config.layout == TableLayout::kDebezium;
  // Debezium's table as its documentation gives it; the application usually
  // sets the uuid, the default (13+) only helps hand-written inserts.
  const char* id_type = !debezium ? " bigserial PRIMARY KEY, "
                        : PQserverVersion(conn) >= 130000 ? " uuid PRIMARY KEY DEFAULT gen_random_uuid(), "
                                                          : " uuid PRIMARY KEY, ";
  const char* text_type = debezium ? " character varying(255) NOT NULL, " : " text NOT NULL, ";
  std::string sql = absl::StrCat(
      "CREATE TABLE IF NOT EXISTS ", QualifiedTable(config), " (",
      QuoteIdentifier(c.id), id_type,
      QuoteIdentifier(c.aggregate_type), text_type,
      QuoteIdentifier(c.aggregate_id), text_type,
      QuoteIdentifier(c.event_type), text_type,
      QuoteIdentifier(c.payload), debezium ? " jsonb" : " jsonb NOT NULL");
  if (!c.headers.empty()) absl::StrAppend(&sql, ", ", QuoteIdentifier(c.headers), " jsonb");
  if (!c.topic.empty()) absl::StrAppend(&sql, ", ", QuoteIdentifier(c.topic), " text");
  if (!debezium) sql += ", created_at timestamptz NOT NULL DEFAULT now()";
  sql += ")";
  auto created = Query(conn, sql, {}, absl::StrCat("creating table ", config.table.QualifiedName()));
  if (!created.ok()) {
    // Only the first line: the rest is the server's echo of the statement.
    const absl::string_view message = created.status().message();
    return absl::Status(created.status().code(), absl::StrCat(
        message.substr(0, message.find('\n')), ". Fix: run `outboxd init` once as the schema's owner or a "
        "superuser, or GRANT CREATE ON SCHEMA ", QuoteIdentifier(config.table.schema),
        " to this role"));
  }
  return absl::OkStatus();
}

absl::Status EnsurePublication(PGconn* conn, const OutboxConfig& config) {
  const bool via_root_known = PQserverVersion(conn) >= 130000;  // pubviaroot is new in 13
  ASSIGN_OR_RETURN(auto pub, Query(conn, "SELECT 1 FROM pg_publication WHERE pubname = $1", {config.publication},
                   "reading publications"));
  if (PQntuples(pub.get()) == 0) {
    // Messages need no table: a publication without one still carries them.
    // Through the root, inserts into any partition of a partitioned outbox
    // (also ones attached later) arrive as inserts into the table outboxd was
    // told about, with its columns in its order; for a plain table the option
    // changes nothing.
    const std::string sql =
        config.source.table
            ? absl::StrCat("CREATE PUBLICATION ", QuoteIdentifier(config.publication),
                           " FOR TABLE ", QualifiedTable(config), " WITH (publish = 'insert'",
                           via_root_known ? ", publish_via_partition_root = true" : "", ")")
            : absl::StrCat("CREATE PUBLICATION ", QuoteIdentifier(config.publication),
                           " WITH (publish = 'insert')");
    auto created = Query(conn, sql, {}, absl::StrCat("creating publication ", config.publication));
    if (!created.ok()) {
      return absl::PermissionDeniedError(absl::StrCat(
          created.status().message(), ". Fix: have the table owner or a superuser run: ", sql));
    }
  }
  return CheckPublication(conn, config);
}

absl::Status CheckPublication(PGconn* conn, const OutboxConfig& config) {
  const bool via_root_known = PQserverVersion(conn) >= 130000;  // pubviaroot is new in 13
  ASSIGN_OR_RETURN(auto pub, Query(conn,
                   via_root_known
                       ? "SELECT pubinsert, pubviaroot FROM pg_publication WHERE pubname = $1"
                       : "SELECT pubinsert, false FROM pg_publication WHERE pubname = $1",
                   {config.publication}, "reading publications"));
  const std::string table = config.table.QualifiedName();
  bool partitioned = false;
  if (config.source.table) {
    ASSIGN_OR_RETURN(auto kind, Query(conn, "SELECT relkind = 'p' FROM pg_class WHERE oid = to_regclass($1)",
                      {QualifiedTable(config)}, "reading the outbox table's kind"));
    partitioned = PQntuples(kind.get()) == 1 && Value(kind.get(), 0, 0) == "t";
    if (partitioned && !via_root_known) {
      return absl::FailedPreconditionError(absl::StrCat(
          "outbox table ", table, " is partitioned; PostgreSQL ", PQserverVersion(conn),
          " cannot publish a partitioned table's inserts under its own name (that needs 13 or "
          "newer). Fix: upgrade PostgreSQL, or use an unpartitioned outbox table"));
    }
  }
  if (PQntuples(pub.get()) == 0) {
    // `run` never creates it: a missing publication on a database that has a
    // slot means someone dropped it or this is not the database init prepared.
    return absl::NotFoundError(absl::StrCat(
        "publication \"", config.publication, "\" does not exist on ", ServerName(conn),
        ". Fix: run 'outboxd init' with the same --postgres, --publication and --table (it creates "
        "the publication and keeps an existing slot), or check --publication"));
  }
  if (!config.source.table) return absl::OkStatus();
  if (Value(pub.get(), 0, 0) != "t") {
    return absl::FailedPreconditionError(absl::StrCat(
        "publication ", config.publication, " does not publish inserts. Fix: ALTER PUBLICATION ",
        QuoteIdentifier(config.publication), " SET (publish = 'insert')"));
  }
  // Without it pgoutput names each partition, which outboxd would take for
  // other tables (and pg_publication_tables below lists only the partitions).
  if (partitioned && Value(pub.get(), 0, 1) != "t") {
    return absl::FailedPreconditionError(absl::StrCat(
        "publication ", config.publication, " does not publish through the root table, so inserts "
        "into the partitions of the partitioned table ", table, " would not arrive as its events. "
        "Fix: ALTER PUBLICATION ", QuoteIdentifier(config.publication),
        " SET (publish_via_partition_root = true)"));
  }
  ASSIGN_OR_RETURN(auto member, Query(conn,
                      "SELECT 1 FROM pg_publication_tables WHERE pubname = $1 "
                      "AND schemaname = $2 AND tablename = $3",
                      {config.publication, config.table.schema, config.table.name},
                      "reading the publication's tables"));
  if (PQntuples(member.get()) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "publication ", config.publication, " does not include ", table, ". Fix: ALTER PUBLICATION ",
        QuoteIdentifier(config.publication), " ADD TABLE ", QualifiedTable(config),
        "; or choose another --publication"));
  }
  return absl::OkStatus();
}

std::string ServerName(PGconn* conn) {
  const char* host = PQhost(conn);
  const char* port = PQport(conn);
  return absl::StrCat(host != nullptr && *host != '\0' ? host : "localhost", ":",
                      port != nullptr && *port != '\0' ? port : "5432");
}

absl::Status SlotMissingError(absl::string_view slot, absl::string_view server) {
  return absl::NotFoundError(absl::StrCat(
      "replication slot \"", slot, "\" does not exist on ", server,
      "; events committed since it was lost cannot be recovered by outboxd. If this is a new "
      "database run 'outboxd init'; after a failover, see README \"Failover\""));
}

absl::StatusOr<Lsn> SlotConfirmedLsn(PGconn* conn, absl::string_view slot) {
  // wal_status (13+) says whether the slot still has its WAL; 16 marks logical
  // slots on a standby that lost rows they need as conflicting; 17 names the
  // reason of any invalidation.
  const int version = PQserverVersion(conn);
  const char* state_columns =
      version >= 170000   ? "wal_status, invalidation_reason"
      : version >= 160000 ? "wal_status, CASE WHEN conflicting THEN 'conflict with recovery' END"
      : version >= 130000 ? "wal_status, NULL"
                          : "NULL, NULL";
  // A literal, not a parameter: this also runs on replication connections.
  ASSIGN_OR_RETURN(auto row, Query(conn,
                   absl::StrCat("SELECT confirmed_flush_lsn, ", state_columns,
                                " FROM pg_replication_slots WHERE slot_name = ", QuoteLiteral(slot)),
                   {}, "reading the replication slot"));
  if (PQntuples(row.get()) == 0) return SlotMissingError(slot, ServerName(conn));
  const std::optional<std::string> text = Value(row.get(), 0, 0);
  const std::optional<std::string> wal_status = Value(row.get(), 0, 1);
  const std::optional<std::string> reason = Value(row.get(), 0, 2);
  if (wal_status == "lost" || reason.has_value()) {
    const bool wal_removed = !reason.has_value() || *reason == "wal_removed";
    return absl::FailedPreconditionError(absl::StrCat(
        "replication slot \"", slot, "\" on ", ServerName(conn),
        " was invalidated by PostgreSQL (wal_status '", wal_status.value_or("?"), "'",
        reason ? absl::StrCat(", reason ", *reason) : "", "): ",
        wal_removed ? "it fell further behind than max_slot_wal_keep_size allows and the WAL it "
                      "needed was removed"
                    : "the server can no longer decode from it",
        ", so events committed after its confirmed position ", text.value_or("?"),
        " cannot be recovered by outboxd. Fix: find those events in the outbox table (see README "
        "\"Failover\"), then drop the slot (SELECT pg_drop_replication_slot('", slot, "')) and run "
        "'outboxd init' to start a new one from now; to keep it from happening again, raise "
        "max_slot_wal_keep_size and alert on outboxd_replication_lag_bytes"));
  }
  return text ? Lsn::Parse(*text) : Lsn();
}

absl::StatusOr<Lsn> EnsureSlot(PGconn* conn, const OutboxConfig& config) {
  ASSIGN_OR_RETURN(auto slot, Query(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1", {config.slot},
                    "reading replication slots"));
  if (PQntuples(slot.get()) == 0) {
    // (slot_name, plugin, temporary, twophase, failover): failover is new in 17.
    const bool failover = config.slot_failover && PQserverVersion(conn) >= 170000;
    auto created = Query(conn,
                         failover ? "SELECT pg_create_logical_replication_slot($1, 'pgoutput', false, false, true)"
                                  : "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
                         {config.slot}, absl::StrCat("creating replication slot ", config.slot));
    // A second init may have created it at the same moment: then it exists
    // and the failure of our attempt does not matter.
    if (!created.ok()) {
      auto exists = Query(conn, "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1",
                          {config.slot}, "reading replication slots");
      if (!exists.ok() || PQntuples(exists->get()) == 0) return created.status();
    }
  }
  return CheckSlot(conn, config);
}

absl::StatusOr<Lsn> CheckSlot(PGconn* conn, const OutboxConfig& config) {
  ASSIGN_OR_RETURN(auto slot, Query(conn,
                    "SELECT plugin, slot_type, database = current_database() "
                    "FROM pg_replication_slots WHERE slot_name = $1",
                    {config.slot}, "reading replication slots"));
  if (PQntuples(slot.get()) == 0) return SlotMissingError(config.slot, ServerName(conn));
  if (Value(slot.get(), 0, 1) != "logical" || Value(slot.get(), 0, 0) != "pgoutput") {
    return absl::FailedPreconditionError(absl::StrCat(
        "replication slot ", config.slot, " exists but is not a logical pgoutput slot (plugin: ",
        Value(slot.get(), 0, 0).value_or("none"), "). Fix: choose another --slot, or drop it "
        "with SELECT pg_drop_replication_slot('", config.slot, "') if nothing else uses it"));
  }
  if (Value(slot.get(), 0, 2) != "t") {
    return absl::FailedPreconditionError(absl::StrCat(
        "replication slot ", config.slot, " belongs to another database. Fix: connect to that "
        "database in --postgres, or choose another --slot"));
  }
  return SlotConfirmedLsn(conn, config.slot);
}

absl::Status SetSlotFailover(PGconn* replication_conn, absl::string_view slot, bool on) {
  const std::string command = absl::StrCat("ALTER_REPLICATION_SLOT ", QuoteIdentifier(slot),
                                           " ( FAILOVER ", on ? "true" : "false", " )");
  auto altered = Query(replication_conn, command, {}, absl::StrCat("setting failover on replication slot ", slot));
  if (!altered.ok()) {
    return absl::Status(altered.status().code(), absl::StrCat(
        altered.status().message(), ". Fix: stop the relay streaming slot \"", slot,
        "\" and run 'outboxd init' again, or run ", command, " on a replication connection"));
  }
  return absl::OkStatus();
}

bool SlotFailoverState::Ready() const {
  // A standby without a physical slot cannot synchronise slots (17 needs
  // primary_slot_name), so a failover to it would lose the slot.
  return Supported() && failover && synchronizing > 0 && standby_slots > 0 &&
         standby_slots >= standbys && standby_slots_listed == standby_slots;
}

std::string SlotFailoverState::Describe() const {
  if (!Supported()) {
    return absl::StrCat("off (PostgreSQL ", server_version / 10000,
                        " has no failover slots; 17+ has), ", standbys, " standby(s)");
  }
  return absl::StrCat(failover ? "on" : "off", ", ", standbys, " standby(s), ", synchronizing,
                      " synchronising slots", Ready() ? "" : standbys > 0 ? " (would not survive a failover)" : "");
}

std::string SlotFailoverState::Warning(absl::string_view slot) const {
  if (standbys == 0 || Ready()) return "";
  const std::string head = absl::StrCat("replication slot \"", slot, "\" would not survive a failover to the ",
                                        standbys, " standby(s) of this primary: ");
  if (!Supported()) {
    return absl::StrCat(head, "PostgreSQL ", server_version / 10000, " keeps logical slots on the primary only. "
                        "After a failover outboxd stops with the slot-missing error; upgrade to 17 for "
                        "failover slots, see README \"Failover\"");
  }
  std::vector<std::string> fixes;
  if (!failover) {
    fixes.push_back("the slot has failover = false: run 'outboxd init' again while no relay streams it "
                    "(it sets failover = true; --slot_failover)");
  }
  if (synchronizing == 0) {
    fixes.push_back("no standby synchronises slots: on the standby set sync_replication_slots = on, "
                    "hot_standby_feedback = on, primary_slot_name, and a dbname in primary_conninfo, "
                    "then reload it");
  } else if (standby_slots < standbys) {
    fixes.push_back("a standby streams without a physical slot: set primary_slot_name on it");
  }
  if (standby_slots_listed < standby_slots) {
    fixes.push_back(absl::StrCat("on the primary set synchronized_standby_slots = '", unlisted_slots,
                                 "' (the standbys' physical slots) and reload, so no change reaches "
                                 "outboxd before the standby has it"));
  }
  return absl::StrCat(head, absl::StrJoin(fixes, "; "), ". See README \"Failover\"");
}

absl::StatusOr<SlotFailoverState> ReadSlotFailoverState(PGconn* conn, absl::string_view slot) {
  SlotFailoverState state;
  state.server_version = PQserverVersion(conn);
  // Physical walsenders have no database; logical ones (outboxd's own) do.
  constexpr absl::string_view kStandbys =
      "(SELECT count(*) FROM pg_stat_replication r JOIN pg_stat_activity a ON a.pid = r.pid "
      "WHERE a.datid IS NULL)";
  if (!state.Supported()) {
    ASSIGN_OR_RETURN(auto row, Query(conn, absl::StrCat("SELECT ", kStandbys), {}, "counting standbys"));
    state.standbys = std::atoi(Value(row.get(), 0, 0).value_or("0").c_str());
    return state;
  }
  // A standby's slot-sync worker (17) connects as an ordinary session named
  // "[cluster_name_]slotsync worker"; it runs only with sync_replication_slots,
  // hot_standby_feedback, primary_slot_name and a dbname in primary_conninfo.
  ASSIGN_OR_RETURN(auto row, Query(conn, absl::StrCat(
      "SELECT coalesce((SELECT failover FROM pg_replication_slots WHERE slot_name = ", QuoteLiteral(slot), "), false), ",
      kStandbys, ", "
      "(SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE '%slotsync worker'), "
      "(SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'physical' AND active), "
      "(SELECT count(*) FROM pg_replication_slots WHERE slot_type = 'physical' AND active AND slot_name = ANY "
      "(string_to_array(replace(current_setting('synchronized_standby_slots'), ' ', ''), ','))), "
      "(SELECT string_agg(slot_name, ',' ORDER BY slot_name) FROM pg_replication_slots WHERE slot_type = 'physical' "
      "AND active AND slot_name <> ALL "
      "(string_to_array(replace(current_setting('synchronized_standby_slots'), ' ', ''), ',')))"),
      {}, "reading the slot's failover state"));
  auto count = [&](int col) { return std::atoi(Value(row.get(), 0, col).value_or("0").c_str()); };
  state.failover = Value(row.get(), 0, 0) == "t";
  state.standbys = count(1);
  state.synchronizing = count(2);
  state.standby_slots = count(3);
  state.standby_slots_listed = count(4);
  state.unlisted_slots = Value(row.get(), 0, 5).value_or("");
  return state;
}

}  // namespace outboxd::cdc
