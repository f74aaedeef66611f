#include "tests/cdc/fake_stream.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <utility>

#include "absl/memory/memory.h"
#include "absl/time/clock.h"

namespace outboxd::test {

// One session: reads the server's queue while it is the newest session.
class FakeStream final : public cdc::ReplicationStream {
 public:
  FakeStream(std::shared_ptr<FakeServer> server, int id, Lsn confirmed, std::string version)
      : server_(std::move(server)), id_(id), confirmed_(confirmed), version_(std::move(version)) {}

  absl::Status StartReplication(Lsn start, int protocol_version) override {
    absl::MutexLock lock(&server_->mu_);
    server_->start_positions_.push_back(start);
    return absl::OkStatus();
  }

  absl::StatusOr<cdc::StreamItem> Read() override {
    absl::MutexLock lock(&server_->mu_);
    if (broken_ || id_ != server_->sessions_) {
      return absl::UnavailableError("replication connection lost: dropped by the fake server");
    }
    if (server_->queue_.empty()) {
      server_->DrainWakeup();
      return cdc::StreamItem{};
    }
    FakeServer::Queued q = std::move(server_->queue_.front());
    server_->queue_.pop_front();
    if (q.kind == FakeServer::Queued::kDrop) {
      broken_ = true;
      return absl::UnavailableError("replication connection lost: dropped by the fake server");
    }
    cdc::StreamItem item;
    item.lsn = q.lsn;
    item.wal_end = server_->wal_end_;
    item.reply_requested = q.reply_requested;
    if (q.kind == FakeServer::Queued::kData) {
      ++server_->data_read_;
      item.kind = cdc::StreamItem::kData;
      payload_ = std::move(q.payload);  // valid until the next Read(), as the contract says
      item.payload = absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(payload_.data()),
                                               payload_.size());
    } else {
      item.kind = cdc::StreamItem::kKeepalive;
    }
    return item;
  }

  absl::Status ConsumeInput() override { return absl::OkStatus(); }
  int socket() const override { return server_->wakeup_fd_; }

  absl::Status SendStatus(Lsn received, Lsn flushed, bool reply_requested) override {
    absl::MutexLock lock(&server_->mu_);
    if (broken_) return absl::UnavailableError("sending a status update failed: connection lost");
    server_->statuses_.push_back({.session = id_,
                                  .received = received,
                                  .flushed = flushed,
                                  .reply_requested = reply_requested,
                                  .at = absl::Now()});
    server_->confirmed_ = std::max(server_->confirmed_, flushed);
    if (reply_requested && server_->answer_reply_requests_ && id_ == server_->sessions_) {
      server_->Push({.kind = FakeServer::Queued::kKeepalive, .lsn = server_->wal_end_});
    }
    return absl::OkStatus();
  }

  void Finish() override {
    absl::MutexLock lock(&server_->mu_);
    ++server_->finished_;
  }

  Lsn slot_confirmed() const override { return confirmed_; }
  const std::string& server_version() const override { return version_; }
  int server_version_num() const override { return 150000; }
  const std::string& system_identifier() const override { return system_identifier_; }

 private:
  std::shared_ptr<FakeServer> server_;
  const int id_;
  const Lsn confirmed_;
  const std::string version_;
  const std::string system_identifier_ = "7000000000000000001";
  bool broken_ = false;  // guarded by server_->mu_
  std::string payload_;
};

std::shared_ptr<FakeServer> FakeServer::Create(Lsn slot_confirmed) {
  return absl::WrapUnique(new FakeServer(slot_confirmed));
}

FakeServer::FakeServer(Lsn slot_confirmed)
    : wakeup_fd_(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)),
      wal_end_(slot_confirmed),
      confirmed_(slot_confirmed) {}

FakeServer::~FakeServer() {
  if (wakeup_fd_ >= 0) close(wakeup_fd_);
}

cdc::ReplicationStream::Factory FakeServer::Factory() {
  std::weak_ptr<FakeServer> weak = weak_from_this();
  return [weak](const cdc::StreamOptions&) -> absl::StatusOr<std::unique_ptr<cdc::ReplicationStream>> {
    std::shared_ptr<FakeServer> server = weak.lock();
    if (!server) return absl::UnavailableError("the fake server is gone");
    absl::MutexLock lock(&server->mu_);
    ++server->connects_started_;
    server->mu_.Await(absl::Condition(
        +[](bool* hold) { return !*hold; }, &server->hold_connects_));
    if (!server->connect_error_.ok()) return server->connect_error_;
    const int id = ++server->sessions_;
    return std::make_unique<FakeStream>(server, id, server->confirmed_, "15.0");
  };
}

void FakeServer::Push(Queued q) {
  if (q.kind != Queued::kDrop) wal_end_ = std::max(wal_end_, q.lsn);
  queue_.push_back(std::move(q));
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t n = write(wakeup_fd_, &one, sizeof one);
}

void FakeServer::DrainWakeup() {
  uint64_t count;
  [[maybe_unused]] ssize_t n = read(wakeup_fd_, &count, sizeof count);
}

void FakeServer::Data(Lsn lsn, std::string payload) {
  absl::MutexLock lock(&mu_);
  Push({.kind = Queued::kData, .lsn = lsn, .payload = std::move(payload)});
}

void FakeServer::Keepalive(Lsn wal_end, bool reply_requested) {
  absl::MutexLock lock(&mu_);
  Push({.kind = Queued::kKeepalive, .lsn = wal_end, .reply_requested = reply_requested});
}

void FakeServer::Drop() {
  absl::MutexLock lock(&mu_);
  Push({.kind = Queued::kDrop});
}

void FakeServer::FailConnects(absl::Status status) {
  absl::MutexLock lock(&mu_);
  connect_error_ = std::move(status);
}

void FakeServer::HoldConnects(bool hold) {
  absl::MutexLock lock(&mu_);
  hold_connects_ = hold;
}

int FakeServer::connects_started() const {
  absl::MutexLock lock(&mu_);
  return connects_started_;
}

void FakeServer::AnswerReplyRequests(bool answer) {
  absl::MutexLock lock(&mu_);
  answer_reply_requests_ = answer;
}

int FakeServer::sessions() const {
  absl::MutexLock lock(&mu_);
  return sessions_;
}

std::vector<Lsn> FakeServer::start_positions() const {
  absl::MutexLock lock(&mu_);
  return start_positions_;
}

std::vector<FakeServer::StatusUpdate> FakeServer::statuses() const {
  absl::MutexLock lock(&mu_);
  return statuses_;
}

Lsn FakeServer::confirmed_flush() const {
  absl::MutexLock lock(&mu_);
  return confirmed_;
}

int FakeServer::finished() const {
  absl::MutexLock lock(&mu_);
  return finished_;
}

size_t FakeServer::unread() const {
  absl::MutexLock lock(&mu_);
  return queue_.size();
}

int FakeServer::data_read() const {
  absl::MutexLock lock(&mu_);
  return data_read_;
}

}  // namespace outboxd::test
