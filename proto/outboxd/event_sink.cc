#include "outboxd/event_sink.h"

#include <optional>
#include <utility>

#include "absl/strings/cord.h"

namespace outboxd {
namespace {

// The payload's type URL; its value is the kind's name.
constexpr absl::string_view kSinkFailureUrl = "type.outboxd/outboxd.SinkFailure";

absl::string_view Name(SinkFailure kind) {
  switch (kind) {
    case SinkFailure::kRewind:
      return "rewind";
    case SinkFailure::kPoison:
      return "poison";
    case SinkFailure::kFatal:
      return "fatal";
    case SinkFailure::kNone:
      break;
  }
  return "";
}

}  // namespace

absl::Status SinkError(SinkFailure kind, absl::Status status) {
  if (status.ok() || kind == SinkFailure::kNone) return status;
  status.SetPayload(kSinkFailureUrl, absl::Cord(Name(kind)));
  return status;
}

SinkFailure SinkFailureOf(const absl::Status& status) {
  if (status.ok()) return SinkFailure::kNone;
  const auto payload = status.GetPayload(kSinkFailureUrl);
  if (!payload.has_value()) return SinkFailure::kNone;
  for (SinkFailure kind : {SinkFailure::kRewind, SinkFailure::kPoison, SinkFailure::kFatal}) {
    if (*payload == Name(kind)) return kind;
  }
  return SinkFailure::kNone;
}

}  // namespace outboxd
