// Peek: the decoded replication stream as JSON lines (`outboxd peek`).
//
//   PeekOptions options{.conninfo = ..., .publication = "outboxd"};  // no slot: a temporary one
//   absl::Status s = Peek(options, std::cout, stop_flag);
//
// One line per pgoutput message (see decoder/peek_json.h). Peek never
// confirms anything: its status updates carry no flush position, so a slot it
// reads does not move. Without a slot it creates a temporary one, which starts
// now and disappears when peek exits. It stops after `limit` messages, once
// the stream reaches `end_lsn`, or when stop is set.
//
// Thread: runs on the caller's thread.
#ifndef OUTBOXD_CDC_PEEK_H_
#define OUTBOXD_CDC_PEEK_H_

#include <atomic>
#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "outboxd/lsn.h"

namespace outboxd::cdc {

struct PeekOptions {
  std::string conninfo;
  std::string slot;  // empty: a temporary slot
  std::string publication = "outboxd";
  Lsn end_lsn;        // 0/0: no end
  int64_t limit = 0;  // 0: no limit
};

absl::Status Peek(const PeekOptions& options, std::ostream& out, const std::atomic<bool>& stop);

}  // namespace outboxd::cdc

#endif  // OUTBOXD_CDC_PEEK_H_
