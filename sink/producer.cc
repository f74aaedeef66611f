#include "sink/producer.h"

#include <array>
#include <cstdlib>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "outboxd/event_sink.h"
#include "outboxd/log.h"
#include "outboxd/status_macros.h"

namespace outboxd::sink {

absl::StatusOr<std::unique_ptr<Producer>> Producer::Create(
    const SinkConfig& config, const std::vector<std::pair<std::string, std::string>>& extra,
    ReportHandler on_report) {
  if (config.brokers.empty()) {
    return absl::InvalidArgumentError(
        "no Kafka brokers given: pass --brokers=HOST:PORT[,...] or set OUTBOXD_BROKERS");
  }
  // Not make_unique: the constructor is private to force Create().
  std::unique_ptr<Producer> producer(new Producer(std::move(on_report)));
  RETURN_IF_ERROR(producer->Init(config, extra));
  return producer;
}

Producer::~Producer() { handle_.Reset(); }

absl::Status Producer::Init(const SinkConfig& config,
                            const std::vector<std::pair<std::string, std::string>>& extra) {
  ConfPtr conf(rd_kafka_conf_new());
  RETURN_IF_ERROR(ApplyProducerProperties(conf.get(), config, extra));
  std::array<char, 64> max_bytes{};
  size_t max_bytes_size = max_bytes.size();
  if (rd_kafka_conf_get(conf.get(), "message.max.bytes", max_bytes.data(), &max_bytes_size) ==
      RD_KAFKA_CONF_OK) {
    message_max_bytes_ = std::strtoll(max_bytes.data(), nullptr, 10);
  }
  scram_ = UsesScram(conf.get());
  rd_kafka_conf_set_opaque(conf.get(), this);
  rd_kafka_conf_set_dr_msg_cb(conf.get(), &Producer::ReportCallback);
  rd_kafka_conf_set_error_cb(conf.get(), &Producer::ErrorCallback);
  rd_kafka_conf_set_log_cb(conf.get(), &LogToOutboxd);

  std::array<char, 512> errstr{};
  rd_kafka_t* rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf.get(), errstr.data(), errstr.size());
  if (rk == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot create the Kafka producer: ", errstr.data()));
  }
  conf.release();  // rd_kafka_new() owns it now.
  handle_ = ProducerHandle(rk);
  ASSIGN_OR_RETURN(auto wakeup, WakeupPipe::Attach(rk));
  wakeup_ = std::move(wakeup);
  return absl::OkStatus();
}

absl::Status Producer::Send(const Record& record, void* opaque) {
  rd_kafka_topic_t* topic = handle_.Topic(record.topic);
  rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
  if (topic == nullptr) {
    err = rd_kafka_last_error();
  } else {
    HeadersPtr hdrs(rd_kafka_headers_new(record.headers.size()));
    for (const auto& [name, value] : record.headers) {
      rd_kafka_header_add(hdrs.get(), name.data(), static_cast<ssize_t>(name.size()), value.data(),
                          static_cast<ssize_t>(value.size()));
    }
    // Casts: librdkafka's varargs take non-const pointers, but with
    // RD_KAFKA_MSG_F_COPY it copies and never writes through them.
    err = rd_kafka_producev(
        handle_.get(), RD_KAFKA_V_RKT(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE(const_cast<char*>(record.value.data()), record.value.size()),
        RD_KAFKA_V_KEY(record.key.data(), record.key.size()), RD_KAFKA_V_HEADERS(hdrs.get()),
        RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      hdrs.release();  // librdkafka owns them now; on failure they are still ours
      ++in_flight_;
      return absl::OkStatus();
    }
  }
  last_send_error_ = err;
  switch (err) {
    case RD_KAFKA_RESP_ERR__QUEUE_FULL:
      return absl::ResourceExhaustedError("Kafka producer queue is full");
    case RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE:
      return absl::OutOfRangeError("record larger than message.max.bytes");
    default:
      if (IsPermanentRecordError(err)) {
        // Kafka will refuse this record however often it is sent.
        return absl::FailedPreconditionError(absl::StrCat(
            "Kafka refused the record for topic ", record.topic, ": ", rd_kafka_err2name(err),
            ": ", rd_kafka_err2str(err)));
      }
      return absl::UnavailableError(absl::StrCat("cannot queue a record for topic ", record.topic,
                                                 ": ", rd_kafka_err2name(err), ": ",
                                                 rd_kafka_err2str(err)));
  }
}

void Producer::Poll(int timeout_ms) {
  // Drain first: reports that arrive after it write to the pipe again.
  wakeup_.Drain();
  if (timeout_ms > 0) rd_kafka_poll(handle_.get(), timeout_ms);
  while (rd_kafka_poll(handle_.get(), 0) > 0) {
  }
}

void Producer::Flush(int timeout_ms) { rd_kafka_flush(handle_.get(), timeout_ms); }

void Producer::PurgeQueued() { rd_kafka_purge(handle_.get(), RD_KAFKA_PURGE_F_QUEUE); }

void Producer::OnReport(const rd_kafka_message_t& message) {
  --in_flight_;
  if (message.err == RD_KAFKA_RESP_ERR_NO_ERROR && !reachable_.exchange(true)) {
    LogInfo("Kafka reachable again");
  }
  on_report_(message);
}

void Producer::OnError(rd_kafka_t* rk, int err, const char* reason) {
  if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
    // After refused credentials they are "down" because of it: not an outage to ride out.
    if (reachable_.exchange(false) && failure_.ok()) {
      LogWarning(absl::StrCat("all Kafka brokers are down (", reason,
                              "); events are kept and retried, nothing past them is confirmed"));
    }
    return;
  }
  if (err == RD_KAFKA_RESP_ERR__FATAL) {
    std::array<char, 512> fatal{};
    rd_kafka_resp_err_t fatal_err = rd_kafka_fatal_error(rk, fatal.data(), fatal.size());
    LogError(absl::StrCat("fatal Kafka producer error ", rd_kafka_err2name(fatal_err), ": ",
                          fatal.data(),
                          "; every record in flight fails and nothing past them is confirmed"));
    return;
  }
  const auto code = static_cast<rd_kafka_resp_err_t>(err);
  if (code == RD_KAFKA_RESP_ERR__AUTHENTICATION) {
    // librdkafka retries it like a broken connection, forever; the same
    // credentials will be refused every time, so this is the end.
    if (failure_.ok()) failure_ = CredentialsRefused(reason, scram_);
    return;
  }
  // librdkafka already logged these connection failures through the log
  // callback (facility FAIL); a second line per failure is noise.
  const LogLevel level =
      code == RD_KAFKA_RESP_ERR__TRANSPORT || code == RD_KAFKA_RESP_ERR__RESOLVE
          ? LogLevel::kDebug
          : LogLevel::kWarning;
  Log(level, absl::StrCat("kafka: ", rd_kafka_err2name(code), ": ", reason));
}

void Producer::ReportCallback(rd_kafka_t*, const rd_kafka_message_t* message, void* opaque) {
  static_cast<Producer*>(opaque)->OnReport(*message);
}

void Producer::ErrorCallback(rd_kafka_t* rk, int err, const char* reason, void* opaque) {
  static_cast<Producer*>(opaque)->OnError(rk, err, reason);
}

std::string DeliveryError(const rd_kafka_message_t& message) {
  return absl::StrCat(rd_kafka_err2name(message.err), ": ", rd_kafka_err2str(message.err));
}

}  // namespace outboxd::sink
