// libFuzzer target: PgOutputParser over a sequence of messages, each parsed
// message fed to OutboxDecoder (the outbox mapping), the way cdc/relay.cc
// drives them.
//
// Input layout (fuzz/run.sh builds the seeds from tests/fixtures in it):
//   byte 0      configuration: bits 0-1 = protocol version - 1, bit 2 =
//               parallel streaming (version 4 Stream Abort layout), bit 3 =
//               logical decoding messages with prefix "outboxd" (the
//               fixtures' prefix) are events too (--source=both)
//   then        repeated [Int16 big-endian length][that many bytes], one
//               pgoutput message each; a short last one is kept as it is.
// A sequence lets the fuzzer reach stream state (Stream Start .. Stop) and
// the decoder's relation cache, not only single messages.
//
// Beyond the sanitizers it checks the parser's contract: every error is
// "truncated" or "malformed", and a failed Parse leaves the stream state alone.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "decoder/outbox_decoder.h"
#include "decoder/pgoutput.h"
#include "decoder/reader.h"

namespace {

using outboxd::Lsn;
using outboxd::decoder::IsMalformed;
using outboxd::decoder::IsTruncated;
using outboxd::decoder::Message;
using outboxd::decoder::MessageTypeName;
using outboxd::decoder::OutboxColumns;
using outboxd::decoder::OutboxDecoder;
using outboxd::decoder::OutboxSource;
using outboxd::decoder::OutboxTable;
using outboxd::decoder::PgOutputParser;

[[noreturn]] void Fail(const char* what, const absl::Status& s) {
  std::fprintf(stderr, "contract broken: %s: %s\n", what, s.ToString().c_str());
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int version = 1 + (data[0] & 3);
  const bool parallel = (data[0] & 4) != 0;
  PgOutputParser parser(version, parallel);
  OutboxSource source;
  source.messages = (data[0] & 8) != 0;
  source.message_prefix = "outboxd";
  OutboxDecoder decoder(OutboxTable{}, OutboxColumns{}, source);
  absl::Span<const uint8_t> rest(data + 1, size - 1);
  uint64_t position = 0x1000000;
  while (!rest.empty()) {
    size_t len = rest.size();
    if (rest.size() >= 2) {
      len = (size_t{rest[0]} << 8) | rest[1];
      rest.remove_prefix(2);
      if (len > rest.size()) len = rest.size();
    }
    absl::Span<const uint8_t> bytes = rest.first(len);
    rest.remove_prefix(len);
    position += len + 1;

    const bool in_stream = parser.in_stream();
    absl::StatusOr<Message> message = parser.Parse(bytes, Lsn(position));
    if (!message.ok()) {
      if (!IsTruncated(message.status()) && !IsMalformed(message.status())) {
        Fail("error neither truncated nor malformed", message.status());
      }
      if (parser.in_stream() != in_stream)
        Fail("failed Parse moved stream state", message.status());
      continue;
    }
    if (MessageTypeName(*message).empty()) Fail("unnamed message", absl::OkStatus());
    // Errors here are the decoder's to report (a protocol order it cannot
    // follow); the point is that it never crashes on what the parser accepts.
    absl::StatusOr<std::optional<outboxd::decoder::DecodedEvent>> event =
        decoder.Decode(*message, Lsn(position));
    if (event.ok() && event->has_value()) {
      // Touch the serialized form, as the sink would.
      (void)(*event)->event.ByteSizeLong();
    }
  }
  return 0;
}
