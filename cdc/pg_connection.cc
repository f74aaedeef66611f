#include "cdc/pg_connection.h"

#include <stdlib.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"

namespace outboxd::cdc {
namespace {

// Turns libpq's connection failure into one message with the fix in it.
absl::Status ConnectError(absl::string_view conninfo, absl::string_view libpq_message) {
  // libpq's message spans lines ("...failed: Connection refused\n\tIs the
  // server running...?"); make it one sentence-separated line.
  std::string message(absl::StripTrailingAsciiWhitespace(libpq_message));
  absl::StrReplaceAll({{"\n\t", "; "}, {"\n", "; "}, {"\t", " "}}, &message);
  while (!message.empty() && (message.back() == '.' || message.back() == '?')) message.pop_back();
  const std::string where = RedactConnInfo(conninfo);
  if (absl::StrContains(message, "password authentication failed") ||
      absl::StrContains(message, "no password supplied")) {
    return absl::UnauthenticatedError(absl::StrCat(
        "cannot log in to PostgreSQL (", where, "): ", message,
        ". Fix: give the right password through PGPASSWORD, a ~/.pgpass file (PGPASSFILE) or "
        "the password= field of --postgres / OUTBOXD_POSTGRES"));
  }
  if (absl::StrContains(message, "pg_hba.conf")) {
    return absl::PermissionDeniedError(absl::StrCat(
        "PostgreSQL refused the connection (", where, "): ", message,
        ". Fix: allow this host, user and database in pg_hba.conf (a 'replication' line is "
        "needed too for the streaming connection) and reload PostgreSQL"));
  }
  return absl::UnavailableError(absl::StrCat(
      "cannot connect to PostgreSQL (", where, "): ", message,
      ". Fix: check host, port and dbname in --postgres / OUTBOXD_POSTGRES and that the server "
      "is running and reachable"));
}

// See NetworkDefaults() in the header for why these values.
constexpr std::pair<const char*, const char*> kNetworkDefaults[] = {
    {"keepalives", "1"},
    {"keepalives_idle", "10"},
    {"keepalives_interval", "5"},
    {"keepalives_count", "3"},
    {"tcp_user_timeout", "30000"},  // milliseconds
};

// Whether this libpq knows the connection keyword (tcp_user_timeout is 12+),
// so an older runtime libpq does not refuse every connection.
bool LibpqKnows(const PQconninfoOption* defaults, absl::string_view keyword) {
  for (const PQconninfoOption* o = defaults; o != nullptr && o->keyword != nullptr; ++o) {
    if (keyword == o->keyword) return true;
  }
  return false;
}

}  // namespace

std::vector<std::pair<std::string, std::string>> NetworkDefaults(absl::string_view conninfo) {
  const std::string info(conninfo);
  char* error = nullptr;
  // PQconninfoParse reads both forms and multi-host lists; what it cannot
  // parse (a bare database name, or a malformed string libpq will reject
  // with its own message) sets nothing.
  PQconninfoOption* given = PQconninfoParse(info.c_str(), &error);
  PQfreemem(error);
  PQconninfoOption* known = PQconndefaults();
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& [keyword, value] : kNetworkDefaults) {
    if (!LibpqKnows(known, keyword)) continue;
    bool set = false;
    for (const PQconninfoOption* o = given; o != nullptr && o->keyword != nullptr; ++o) {
      if (absl::string_view(o->keyword) == keyword && o->val != nullptr) set = true;
    }
    if (!set) out.emplace_back(keyword, value);
  }
  if (given != nullptr) PQconninfoFree(given);
  if (known != nullptr) PQconninfoFree(known);
  return out;
}

std::string MultiHostWarning(absl::string_view conninfo) {
  const std::string info(conninfo);
  char* error = nullptr;
  PQconninfoOption* given = PQconninfoParse(info.c_str(), &error);
  PQfreemem(error);
  if (given == nullptr) return "";
  std::string hosts, hostaddrs, attrs;
  for (const PQconninfoOption* o = given; o->keyword != nullptr; ++o) {
    if (o->val == nullptr) continue;
    const absl::string_view keyword = o->keyword;
    if (keyword == "host") hosts = o->val;
    if (keyword == "hostaddr") hostaddrs = o->val;
    if (keyword == "target_session_attrs") attrs = o->val;
  }
  PQconninfoFree(given);
  if (attrs.empty()) {
    if (const char* env = getenv("PGTARGETSESSIONATTRS")) attrs = env;
  }
  const bool several = absl::StrContains(hosts, ',') || absl::StrContains(hostaddrs, ',');
  if (!several || attrs == "primary" || attrs == "read-write") return "";
  return absl::StrCat("--postgres names several hosts (", RedactConnInfo(conninfo),
                      ") without target_session_attrs=primary or read-write: libpq takes the first "
                      "that answers, a standby too, where the slot cannot be streamed. Fix: add "
                      "target_session_attrs=primary");
}

absl::StatusOr<PgConn> Connect(absl::string_view conninfo, ConnectionKind kind) {
  const std::string info(conninfo);
  // expand_dbname=1 lets conninfo be a key=value string or a URI; keywords
  // after it override what it says.
  // (A default connect timeout comes from PGCONNECT_TIMEOUT, set by main
  // unless the user set it, so a connect_timeout in conninfo still wins.)
  std::vector<const char*> keywords = {"dbname", "fallback_application_name"};
  std::vector<const char*> values = {info.c_str(), "outboxd"};
  if (kind == ConnectionKind::kReplication) {
    keywords.push_back("replication");
    values.push_back("database");
  }
  const std::vector<std::pair<std::string, std::string>> defaults = NetworkDefaults(conninfo);
  for (const auto& [keyword, value] : defaults) {
    keywords.push_back(keyword.c_str());
    values.push_back(value.c_str());
  }
  keywords.push_back(nullptr);
  values.push_back(nullptr);
  PgConn conn(PQconnectdbParams(keywords.data(), values.data(), /*expand_dbname=*/1));
  if (conn == nullptr) return absl::ResourceExhaustedError("libpq could not allocate a connection");
  if (PQstatus(conn.get()) != CONNECTION_OK) {
    return ConnectError(conninfo, PQerrorMessage(conn.get()));
  }
  return conn;
}

absl::StatusOr<PgResult> Query(PGconn* conn, absl::string_view sql,
                               const std::vector<std::optional<std::string>>& params,
                               absl::string_view what) {
  std::vector<const char*> values;
  values.reserve(params.size());
  for (const auto& p : params) values.push_back(p ? p->c_str() : nullptr);
  const std::string text(sql);
  // Without parameters use the simple query protocol: replication connections
  // accept nothing else.
  PgResult result(params.empty()
                      ? PQexec(conn, text.c_str())
                      : PQexecParams(conn, text.c_str(), static_cast<int>(values.size()), nullptr,
                                     values.data(), nullptr, nullptr, 0));
  const ExecStatusType st = result ? PQresultStatus(result.get()) : PGRES_FATAL_ERROR;
  if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) return result;
  std::string message(absl::StripTrailingAsciiWhitespace(
      result ? PQresultErrorMessage(result.get()) : PQerrorMessage(conn)));
  if (message.empty()) message = PQerrorMessage(conn);
  return absl::InternalError(
      absl::StrCat(what.empty() ? absl::string_view(sql) : what, " failed: ", message));
}

std::optional<std::string> Value(const PGresult* result, int row, int col) {
  if (row >= PQntuples(result) || col >= PQnfields(result) || PQgetisnull(result, row, col)) {
    return std::nullopt;
  }
  return std::string(PQgetvalue(result, row, col), PQgetlength(result, row, col));
}

std::string SqlState(const PGresult* result) {
  const char* state = result ? PQresultErrorField(result, PG_DIAG_SQLSTATE) : nullptr;
  return state ? state : "";
}

std::string RedactConnInfo(absl::string_view conninfo) {
  char* error = nullptr;
  const std::string info(conninfo);
  PQconninfoOption* options = PQconninfoParse(info.c_str(), &error);
  if (options == nullptr) {
    PQfreemem(error);
    return "<unparsable conninfo>";
  }
  std::string out;
  for (PQconninfoOption* o = options; o->keyword != nullptr; ++o) {
    if (o->val == nullptr || *o->val == '\0') continue;
    const bool secret = absl::string_view(o->keyword) == "password";
    absl::StrAppend(&out, out.empty() ? "" : " ", o->keyword, "=", secret ? "********" : o->val);
  }
  PQconninfoFree(options);
  return out;
}

std::string QuoteIdentifier(absl::string_view name) {
  return absl::StrCat("\"", absl::StrReplaceAll(name, {{"\"", "\"\""}}), "\"");
}

std::string QuoteLiteral(absl::string_view value) {
  return absl::StrCat("'", absl::StrReplaceAll(value, {{"'", "''"}}), "'");
}

}  // namespace outboxd::cdc
