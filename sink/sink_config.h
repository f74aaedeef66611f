// SinkConfig: what both delivery modes need to know about Kafka and routing.
#ifndef OUTBOXD_SINK_SINK_CONFIG_H_
#define OUTBOXD_SINK_SINK_CONFIG_H_

#include <string>
#include <utility>
#include <vector>

#include "sink/format.h"

namespace outboxd::sink {

struct SinkConfig {
  std::string brokers;  // bootstrap.servers
  // Any librdkafka property, applied after outboxd's defaults so it wins.
  std::vector<std::pair<std::string, std::string>> kafka_properties;
  int linger_ms = 1;
  std::string topic_prefix = "outbox.event.";
  std::string dead_letter_topic = "outbox.dead-letter";
  // --on_poison=stop: instead of dead-lettering an event Kafka cannot take
  // (invalid topic, rejected record), report it as a poison error
  // (SinkFailure::kPoison, code FailedPrecondition), naming the event and the
  // reason, so the relay stops before confirming past it.
  bool stop_on_poison = false;
  // What each event becomes in Kafka (--format; sink/format.h), dead letters included.
  FormatOptions format;
};

}  // namespace outboxd::sink

#endif  // OUTBOXD_SINK_SINK_CONFIG_H_
