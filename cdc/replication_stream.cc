#include "cdc/replication_stream.h"

#include <cstring>

#include "absl/memory/memory.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "cdc/setup.h"
#include "decoder/reader.h"
#include "outboxd/pg_time.h"
#include "outboxd/status_macros.h"

namespace outboxd::cdc {
namespace {

constexpr absl::string_view kSlotBusyMarker = "[slot busy]";

void PutInt64(uint8_t* out, uint64_t v) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

std::string ConnectionMessage(PGconn* conn) {
  std::string m(absl::StripTrailingAsciiWhitespace(PQerrorMessage(conn)));
  absl::StrReplaceAll({{"\n", " "}}, &m);
  return m;
}

}  // namespace

int PgOutputProtocolFor(int server_version_num) {
  if (server_version_num >= 160000) return 4;
  if (server_version_num >= 150000) return 3;
  if (server_version_num >= 140000) return 2;
  return 1;
}

bool IsSlotBusy(const absl::Status& status) {
  return absl::IsUnavailable(status) && absl::StrContains(status.message(), kSlotBusyMarker);
}

absl::StatusOr<std::unique_ptr<ReplicationStream>> PgReplicationStream::Connect(
    const StreamOptions& options) {
  ASSIGN_OR_RETURN(auto conn, cdc::Connect(options.conninfo, ConnectionKind::kReplication));
  auto stream = absl::WrapUnique(new PgReplicationStream(std::move(conn), options));
  PGconn* c = stream->conn_.get();
  stream->server_version_ = absl::StrCat(PQserverVersion(c) / 10000, ".", PQserverVersion(c) % 10000);

  auto system = Query(c, "IDENTIFY_SYSTEM", {}, "IDENTIFY_SYSTEM");
  if (!system.ok()) {
    return absl::UnavailableError(absl::StrCat(system.status().message(),
        ". Fix: the role needs REPLICATION and pg_hba.conf must allow its replication connection"));
  }
  // systemid, timeline, xlogpos, dbname: the system names whose WAL the
  // positions below are in (exactly-once checkpoints record it).
  stream->system_identifier_ = Value(system->get(), 0, 0).value_or("");
  if (options.temporary_slot) {
    auto created = Query(c, absl::StrCat("CREATE_REPLICATION_SLOT ", QuoteIdentifier(options.slot),
                                         " TEMPORARY LOGICAL pgoutput NOEXPORT_SNAPSHOT"),
                         {}, "creating a temporary replication slot");
    if (!created.ok()) return absl::UnavailableError(created.status().message());
  }
  // A missing or invalidated slot ends the relay, on a reconnect too: it is
  // never recreated here (only `outboxd init` creates slots).
  auto confirmed = SlotConfirmedLsn(c, options.slot);
  if (!confirmed.ok()) {
    if (absl::IsNotFound(confirmed.status()) || absl::IsFailedPrecondition(confirmed.status())) {
      return confirmed.status();
    }
    return absl::UnavailableError(confirmed.status().message());
  }
  stream->slot_confirmed_ = *confirmed;
  // For the status and the start-up warning; failing to read it stops nothing.
  if (auto failover = ReadSlotFailoverState(c, options.slot); failover.ok()) stream->failover_ = *failover;
  return stream;
}

absl::Status PgReplicationStream::StartReplication(Lsn start, int protocol_version) {
  // Publication names are an identifier list inside a string literal.
  const std::string publications = QuoteIdentifier(options_.publication);
  const std::string command = absl::StrCat(
      "START_REPLICATION SLOT ", QuoteIdentifier(options_.slot), " LOGICAL ", start.ToString(),
      " (proto_version ", QuoteLiteral(absl::StrCat(protocol_version)),
      ", publication_names ", QuoteLiteral(publications),
      // Older servers reject the option; the relay refuses --source=messages there.
      options_.messages && server_version_num() >= 140000 ? ", messages 'true'" : "", ")");
  PgResult result(PQexec(conn_.get(), command.c_str()));
  if (PQresultStatus(result.get()) != PGRES_COPY_BOTH) {
    std::string message(absl::StripTrailingAsciiWhitespace(PQresultErrorMessage(result.get())));
    const std::string state = SqlState(result.get());
    if (state == "55006") {  // object_in_use: another walsender has the slot.
      return absl::UnavailableError(absl::StrCat(kSlotBusyMarker, " ", message));
    }
    if (state == "42704") {  // undefined_object: dropped since Connect()
      return SlotMissingError(options_.slot, ServerName(conn_.get()));
    }
    // Invalidated since Connect() (the server says 55000 for that and for other
    // states): the slot's own state tells which.
    if (absl::StatusOr<Lsn> slot = SlotConfirmedLsn(conn_.get(), options_.slot);
        absl::IsFailedPrecondition(slot.status()) || absl::IsNotFound(slot.status())) {
      return slot.status();
    }
    return absl::UnavailableError(absl::StrCat("START_REPLICATION failed: ", message));
  }
  start_ = start;
  return absl::OkStatus();
}

absl::StatusOr<StreamItem> PgReplicationStream::Read() {
  buffer_.reset();
  char* raw = nullptr;
  const int len = PQgetCopyData(conn_.get(), &raw, /*async=*/1);
  if (len == 0) return StreamItem{};
  if (len == -1) {
    // The server ended the copy (shutdown, or the walsender was terminated).
    PgResult result(PQgetResult(conn_.get()));
    std::string why = result ? std::string(absl::StripTrailingAsciiWhitespace(
                                   PQresultErrorMessage(result.get())))
                             : "";
    return absl::UnavailableError(absl::StrCat(
        "the server ended replication", why.empty() ? "" : ": ", why));
  }
  if (len < 0) {
    return absl::UnavailableError(absl::StrCat("replication connection lost: ", ConnectionMessage(conn_.get())));
  }
  buffer_.reset(raw);
  decoder::Reader reader(absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw), len));
  const uint8_t kind = *reader.ReadByte();  // len > 0, so one byte is there.
  StreamItem item;
  if (kind == 'w') {
    auto start = reader.ReadInt<uint64_t>();
    auto end = reader.ReadInt<uint64_t>();
    auto sent = reader.ReadInt<int64_t>();
    if (!start.ok() || !end.ok() || !sent.ok()) {
      return absl::DataLossError("XLogData message shorter than its header");
    }
    item.kind = StreamItem::kData;
    item.lsn = Lsn(*start);
    item.wal_end = Lsn(*end);
    item.payload = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(raw) + reader.offset(),
                                             reader.remaining());
    return item;
  }
  if (kind == 'k') {
    auto end = reader.ReadInt<uint64_t>();
    auto sent = reader.ReadInt<int64_t>();
    auto reply = reader.ReadByte();
    if (!end.ok() || !sent.ok() || !reply.ok()) {
      return absl::DataLossError("keepalive message shorter than its layout");
    }
    item.kind = StreamItem::kKeepalive;
    item.lsn = Lsn(*end);
    item.wal_end = Lsn(*end);
    item.reply_requested = *reply != 0;
    return item;
  }
  return absl::DataLossError(absl::StrCat("unknown replication message type '",
                                          std::string(1, static_cast<char>(kind)), "'"));
}

absl::Status PgReplicationStream::ConsumeInput() {
  if (PQconsumeInput(conn_.get()) == 0) {
    return absl::UnavailableError(absl::StrCat("replication connection lost: ", ConnectionMessage(conn_.get())));
  }
  return absl::OkStatus();
}

absl::Status PgReplicationStream::SendStatus(Lsn received, Lsn flushed, bool reply_requested) {
  uint8_t message[1 + 8 * 4 + 1];
  message[0] = 'r';
  PutInt64(message + 1, received.value());
  PutInt64(message + 9, flushed.value());
  PutInt64(message + 17, flushed.value());  // applied: nothing is applied beyond what is flushed
  const int64_t now = UnixToPgMicros(absl::ToUnixMicros(absl::Now()));
  PutInt64(message + 25, static_cast<uint64_t>(now));
  message[33] = reply_requested ? 1 : 0;
  if (PQputCopyData(conn_.get(), reinterpret_cast<const char*>(message), sizeof(message)) != 1 ||
      PQflush(conn_.get()) != 0) {
    return absl::UnavailableError(absl::StrCat("sending a status update failed: ", ConnectionMessage(conn_.get())));
  }
  return absl::OkStatus();
}

void PgReplicationStream::Finish() {
  if (PQputCopyEnd(conn_.get(), nullptr) == 1) PQflush(conn_.get());
}

}  // namespace outboxd::cdc
