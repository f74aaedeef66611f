// ReplicationStream: one replication session streaming a logical slot, as
// the relay and peek see it; PgReplicationStream is the libpq implementation.
//
//   auto stream = PgReplicationStream::Connect({.conninfo = ..., .slot = "outboxd",
//                                               .publication = "outboxd"});
//   Lsn confirmed = (*stream)->slot_confirmed();
//   absl::Status s = (*stream)->StartReplication(start, /*protocol_version=*/1);
//   for (;;) {
//     absl::StatusOr<StreamItem> item = (*stream)->Read();   // never blocks
//     if (!item.ok()) -> connection lost: reconnect
//     if (item->kind == StreamItem::kNone) -> poll() on socket(), then ConsumeInput()
//   }
//   (*stream)->SendStatus(received, flushed, /*reply_requested=*/false);
//
// The interface is the seam that lets unit tests drive a Relay with a
// scripted stream (tests/cdc/); everything else talks to a real server.
//
// The Streaming Replication Protocol: after START_REPLICATION the server sends
// CopyData messages, XLogData ('w': start LSN, server WAL end, send time,
// payload) and primary keepalives ('k': server WAL end, send time, reply
// flag); the client sends standby status updates ('r': written, flushed,
// applied, client time, reply flag). Only the flushed position moves the slot.
//
// Errors: a slot in use by another connection is kUnavailable with
// IsSlotBusy() true from StartReplication() (a hot standby waits and retries); other failures are
// kUnavailable (retry with backoff) or the setup errors of cdc/setup.h.
//
// Thread: owned by the stream thread; not thread-safe.
#ifndef OUTBOXD_CDC_REPLICATION_STREAM_H_
#define OUTBOXD_CDC_REPLICATION_STREAM_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "cdc/pg_connection.h"
#include "cdc/setup.h"
#include "outboxd/lsn.h"

namespace outboxd::cdc {

struct StreamOptions {
  std::string conninfo;
  std::string slot = "outboxd";
  std::string publication = "outboxd";
  // Also stream logical decoding messages (pg_logical_emit_message), where the
  // server can (PostgreSQL 14+).
  bool messages = false;
  // Create `slot` as a temporary slot (gone when the connection closes).
  bool temporary_slot = false;
};

// The newest pgoutput protocol version a server speaks: 14 → 2, 15 → 3,
// 16+ → 4, older → 1. Without streaming or two-phase options the later
// versions send the same messages as version 1.
int PgOutputProtocolFor(int server_version_num);

struct StreamItem {
  enum Kind { kNone, kData, kKeepalive };
  Kind kind = kNone;
  Lsn lsn;              // kData: WAL start of the message; kKeepalive: server WAL end.
  Lsn wal_end;          // The server's WAL end when it sent this (for lag).
  bool reply_requested = false;
  absl::Span<const uint8_t> payload;  // kData: one pgoutput message; valid until the next Read().
};

// True for the error StartReplication() returns when another connection holds the slot.
bool IsSlotBusy(const absl::Status& status);

class ReplicationStream {
 public:
  // Opens a session (the relay calls it for every reconnect).
  using Factory =
      std::function<absl::StatusOr<std::unique_ptr<ReplicationStream>>(const StreamOptions&)>;

  virtual ~ReplicationStream() = default;

  // START_REPLICATION. start 0/0 resumes at the slot's confirmed_flush_lsn; a
  // later position skips transactions that committed at or before it.
  virtual absl::Status StartReplication(Lsn start, int protocol_version) = 0;

  // The next message if one is buffered; kNone when the socket must be polled.
  virtual absl::StatusOr<StreamItem> Read() = 0;
  // After poll() reported the socket readable.
  virtual absl::Status ConsumeInput() = 0;
  // The descriptor to poll() for input.
  virtual int socket() const = 0;

  // Standby status update. received: highest position seen; flushed: what is
  // safe to forget (the slot's confirmed_flush_lsn follows it). reply_requested
  // asks the server to answer at once (with a keepalive): the relay's check
  // that the path to the server is alive.
  virtual absl::Status SendStatus(Lsn received, Lsn flushed, bool reply_requested = false) = 0;

  // Ends the copy cleanly (best effort) before the connection closes.
  virtual void Finish() = 0;

  // The slot's confirmed position when the session was opened.
  virtual Lsn slot_confirmed() const = 0;
  // "15.4"; and PQserverVersion()'s form, 150004.
  virtual const std::string& server_version() const = 0;
  virtual int server_version_num() const = 0;
  // The server's system identifier (IDENTIFY_SYSTEM's systemid, decimal): the
  // same on a physical replica, different on another cluster or after initdb.
  virtual const std::string& system_identifier() const = 0;
  // "host:port" of the server reached (with a multi-host conninfo, the one that
  // answered); "" when unknown.
  virtual std::string server_name() const { return ""; }
  // The slot's failover state read when the session was opened; nullopt when
  // unknown (not read, or reading it failed: that stops nothing).
  virtual std::optional<SlotFailoverState> failover_state() const { return std::nullopt; }
};

class PgReplicationStream final : public ReplicationStream {
 public:
  // Connects (replication=database), runs IDENTIFY_SYSTEM and reads the
  // slot's confirmed position. NotFound if the slot does not exist.
  static absl::StatusOr<std::unique_ptr<ReplicationStream>> Connect(const StreamOptions& options);

  absl::Status StartReplication(Lsn start, int protocol_version) override;
  absl::StatusOr<StreamItem> Read() override;
  absl::Status ConsumeInput() override;
  int socket() const override { return PQsocket(conn_.get()); }
  absl::Status SendStatus(Lsn received, Lsn flushed, bool reply_requested = false) override;
  void Finish() override;

  Lsn slot_confirmed() const override { return slot_confirmed_; }
  Lsn start_lsn() const { return start_; }
  const std::string& server_version() const override { return server_version_; }
  int server_version_num() const override { return PQserverVersion(conn_.get()); }
  const std::string& system_identifier() const override { return system_identifier_; }
  std::string server_name() const override { return ServerName(conn_.get()); }
  std::optional<SlotFailoverState> failover_state() const override { return failover_; }

 private:
  PgReplicationStream(PgConn conn, StreamOptions options)
      : conn_(std::move(conn)), options_(std::move(options)) {}

  PgConn conn_;
  StreamOptions options_;
  Lsn slot_confirmed_;
  PgBuffer buffer_;  // Backs the payload of the last item returned by Read().
  Lsn start_;
  std::string server_version_;
  std::string system_identifier_;
  std::optional<SlotFailoverState> failover_;
};

}  // namespace outboxd::cdc

#endif  // OUTBOXD_CDC_REPLICATION_STREAM_H_
