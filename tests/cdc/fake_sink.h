// FakeKafka: the broker side of the sinks a Relay makes (one at start, a
// fresh one after each rewind), for driving a cdc::Relay in-process.
//
//   FakeKafka kafka;
//   kafka.SetCapacity(2);                 // a third Produce() is ResourceExhausted
//   Relay relay(options, kafka.Factory());
//   ... kafka.produced_ids(), kafka.in_flight()
//   kafka.Ack(0);                         // the first record produced is acknowledged
//   kafka.AckAll();
//
// Acknowledgements are queued by the test thread and handed to the relay's
// delivery callback on the relay's thread, inside Poll() or Flush(), as
// librdkafka does; wakeup_fd() is readable while some wait.
//
// Thread: the test thread scripts and inspects; the relay's stream thread
// calls the sinks. Everything is under one mutex.
#ifndef OUTBOXD_TESTS_CDC_FAKE_SINK_H_
#define OUTBOXD_TESTS_CDC_FAKE_SINK_H_

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "outboxd/event_sink.h"

namespace outboxd::test {

class FakeKafka : public std::enable_shared_from_this<FakeKafka> {
 public:
  struct Record {
    int sink = 0;  // which sink (1 = the first the relay made)
    uint64_t ticket = 0;
    std::string id;
    bool acked = false;
    bool ack_queued = false;
  };

  static std::shared_ptr<FakeKafka> Create() { return std::shared_ptr<FakeKafka>(new FakeKafka()); }
  ~FakeKafka() {
    if (wakeup_fd_ >= 0) close(wakeup_fd_);
  }

  EventSink::Factory Factory();

  // Records in flight one sink accepts before Produce() says it is full.
  void SetCapacity(int records) {
    absl::MutexLock lock(&mu_);
    capacity_ = records;
  }
  // The next Produce() (of any sink) returns `status` and queues nothing,
  // as librdkafka refusing a record at once.
  void FailNextProduce(absl::Status status) {
    absl::MutexLock lock(&mu_);
    fail_next_produce_ = std::move(status);
  }
  // Acknowledge every record as soon as it is produced.
  void SetAutoAck(bool on) {
    absl::MutexLock lock(&mu_);
    auto_ack_ = on;
  }
  // Acknowledges the index-th record produced (0 = the first).
  void Ack(size_t index) {
    absl::MutexLock lock(&mu_);
    QueueAck(index);
  }
  void AckAll() {
    absl::MutexLock lock(&mu_);
    for (size_t i = 0; i < records_.size(); ++i) QueueAck(i);
  }

  std::vector<std::string> produced_ids() const {
    absl::MutexLock lock(&mu_);
    std::vector<std::string> out;
    for (const Record& r : records_) out.push_back(r.id);
    return out;
  }
  // Produced and not yet acknowledged (by any sink).
  int in_flight() const {
    absl::MutexLock lock(&mu_);
    int n = 0;
    for (const Record& r : records_) n += r.acked ? 0 : 1;
    return n;
  }
  int refused() const {
    absl::MutexLock lock(&mu_);
    return refused_;
  }
  int sinks_made() const {
    absl::MutexLock lock(&mu_);
    return sinks_;
  }

 private:
  class Sink;

  FakeKafka() : wakeup_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) {}

  void QueueAck(size_t index) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (index >= records_.size() || records_[index].acked || records_[index].ack_queued) return;
    records_[index].ack_queued = true;
    const uint64_t one = 1;
    [[maybe_unused]] ssize_t n = write(wakeup_fd_, &one, sizeof one);
  }

  mutable absl::Mutex mu_;
  const int wakeup_fd_;
  std::vector<Record> records_ ABSL_GUARDED_BY(mu_);
  int capacity_ ABSL_GUARDED_BY(mu_) = 1000;
  bool auto_ack_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status fail_next_produce_ ABSL_GUARDED_BY(mu_);
  int refused_ ABSL_GUARDED_BY(mu_) = 0;
  int sinks_ ABSL_GUARDED_BY(mu_) = 0;
};

class FakeKafka::Sink final : public EventSink {
 public:
  Sink(std::shared_ptr<FakeKafka> kafka, int id, DeliveryCallback callback)
      : kafka_(std::move(kafka)), id_(id), callback_(std::move(callback)) {}

  absl::Status Produce(const v1::OutboxEvent& event, absl::string_view topic_override,
                       uint64_t ticket) override {
    absl::MutexLock lock(&kafka_->mu_);
    if (!kafka_->fail_next_produce_.ok()) return std::exchange(kafka_->fail_next_produce_, absl::OkStatus());
    if (InFlightLocked() >= kafka_->capacity_) {
      ++kafka_->refused_;
      return absl::ResourceExhaustedError("fake producer queue full");
    }
    kafka_->records_.push_back({.sink = id_, .ticket = ticket, .id = event.id()});
    if (kafka_->auto_ack_) kafka_->QueueAck(kafka_->records_.size() - 1);
    return absl::OkStatus();
  }

  // Serves queued acknowledgements of this sink on the calling (relay's) thread.
  void Poll(int timeout_ms) override {
    std::vector<uint64_t> tickets;
    {
      absl::MutexLock lock(&kafka_->mu_);
      uint64_t count;
      [[maybe_unused]] ssize_t n = read(kafka_->wakeup_fd_, &count, sizeof count);
      for (Record& r : kafka_->records_) {
        if (r.sink == id_ && r.ack_queued && !r.acked) {
          r.acked = true;
          tickets.push_back(r.ticket);
        }
      }
    }
    for (uint64_t t : tickets) callback_(t, absl::OkStatus());
  }

  int wakeup_fd() const override { return kafka_->wakeup_fd_; }

  absl::Status Flush(absl::Duration timeout) override {
    const absl::Time deadline = absl::Now() + timeout;
    while (true) {
      Poll(0);
      if (InFlight() == 0) return absl::OkStatus();
      const absl::Duration left = deadline - absl::Now();
      if (left <= absl::ZeroDuration()) return absl::DeadlineExceededError("fake flush timed out");
      // Woken by the test queueing an acknowledgement.
      pollfd fd{kafka_->wakeup_fd_, POLLIN, 0};
      poll(&fd, 1, static_cast<int>(std::min<int64_t>(10, absl::ToInt64Milliseconds(left) + 1)));
    }
  }

  int InFlight() const override {
    absl::MutexLock lock(&kafka_->mu_);
    return InFlightLocked();
  }

 private:
  int InFlightLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(kafka_->mu_) {
    int n = 0;
    for (const Record& r : kafka_->records_) n += (r.sink == id_ && !r.acked) ? 1 : 0;
    return n;
  }

  std::shared_ptr<FakeKafka> kafka_;
  const int id_;
  DeliveryCallback callback_;
};

inline EventSink::Factory FakeKafka::Factory() {
  std::shared_ptr<FakeKafka> self = shared_from_this();
  return [self](const SourceSystem&, EventSink::DeliveryCallback callback)
             -> absl::StatusOr<std::unique_ptr<EventSink>> {
    int id;
    {
      absl::MutexLock lock(&self->mu_);
      id = ++self->sinks_;
    }
    return std::make_unique<Sink>(self, id, std::move(callback));
  };
}

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_CDC_FAKE_SINK_H_
