#include "cdc/peek.h"

#include <poll.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "cdc/replication_stream.h"
#include "decoder/peek_json.h"
#include "decoder/pgoutput.h"
#include "outboxd/status_macros.h"

namespace outboxd::cdc {

absl::Status Peek(const PeekOptions& options, std::ostream& out, const std::atomic<bool>& stop) {
  // Messages too, where the server can send them: peek shows everything.
  StreamOptions stream_options{.conninfo = options.conninfo,
                               .slot = options.slot,
                               .publication = options.publication,
                               .messages = true};
  if (stream_options.slot.empty()) {
    stream_options.slot = absl::StrCat("outboxd_peek_", getpid());
    stream_options.temporary_slot = true;
  }
  ASSIGN_OR_RETURN(auto connected, PgReplicationStream::Connect(stream_options));
  ReplicationStream& stream = *connected;
  decoder::PgOutputParser parser(PgOutputProtocolFor(stream.server_version_num()));
  if (absl::Status s = stream.StartReplication(Lsn(), parser.protocol_version()); !s.ok()) {
    return s;
  }
  decoder::PeekJson json;
  int64_t printed = 0;
  Lsn received;
  absl::Time next_status = absl::Now();
  while (!stop.load()) {
    ASSIGN_OR_RETURN(StreamItem item, stream.Read());
    if (item.kind == StreamItem::kNone) {
      pollfd fd{stream.socket(), POLLIN, 0};
      poll(&fd, 1, 100);
      RETURN_IF_ERROR(stream.ConsumeInput());
    } else {
      received = std::max(received, item.lsn);
      if (item.kind == StreamItem::kData) {
        ASSIGN_OR_RETURN(decoder::Message message, parser.Parse(item.payload, item.lsn));
        out << json.Format(message, item.lsn) << '\n';
        out.flush();
        if (options.limit > 0 && ++printed >= options.limit) break;
      } else if (item.reply_requested) {
        next_status = absl::InfinitePast();
      }
      if (options.end_lsn.valid() && item.lsn >= options.end_lsn) break;
    }
    if (absl::Now() >= next_status) {
      // No flush position (0/0): the server ignores it, the slot stays where it is.
      RETURN_IF_ERROR(stream.SendStatus(received, Lsn()));
      next_status = absl::Now() + absl::Seconds(10);
    }
  }
  stream.Finish();
  return absl::OkStatus();
}

}  // namespace outboxd::cdc
