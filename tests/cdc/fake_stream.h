// FakeServer: the walsender side of scripted replication sessions, for
// driving a cdc::Relay in-process (RelayOptions::connect = server.Factory()).
//
//   FakeServer server;
//   server.Data(Lsn(0x100), pgoutput_bytes::Begin(0x1F0, 1));
//   server.Keepalive(Lsn(0x200), /*reply_requested=*/true);
//   server.Drop();                       // the session's next Read() fails
//   ... server.sessions(), server.statuses(), server.confirmed_flush()
//
// Messages queue in order; a session reads them until it reaches a Drop(),
// which ends it (as a broken connection would), and whatever is queued after
// is read by the next session. Like a real server's slot, confirmed_flush()
// follows the flushed position of the status updates, and a new session
// reports it as slot_confirmed(). A status update asking for a reply is
// answered with a keepalive unless AnswerReplyRequests(false) (a dead path).
//
// socket() is an eventfd that is readable while messages wait, so the relay's
// poll() loop wakes as it would on a real socket.
//
// Thread: the test thread scripts and inspects; the relay's stream thread
// calls the sessions. Everything is under one mutex.
#ifndef OUTBOXD_TESTS_CDC_FAKE_STREAM_H_
#define OUTBOXD_TESTS_CDC_FAKE_STREAM_H_

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "cdc/replication_stream.h"
#include "outboxd/lsn.h"

namespace outboxd::test {

class FakeServer : public std::enable_shared_from_this<FakeServer> {
 public:
  struct StatusUpdate {
    int session = 0;
    Lsn received;
    Lsn flushed;
    bool reply_requested = false;
    absl::Time at;
  };

  static std::shared_ptr<FakeServer> Create(Lsn slot_confirmed = Lsn());
  ~FakeServer();

  // For RelayOptions::connect.
  cdc::ReplicationStream::Factory Factory();

  // XLogData carrying one pgoutput message at WAL position lsn.
  void Data(Lsn lsn, std::string payload);
  void Keepalive(Lsn wal_end, bool reply_requested = false);
  // The session reading when it gets here breaks: Read() fails from then on.
  void Drop();
  // Connect attempts fail with `status` until it is OK again.
  void FailConnects(absl::Status status);
  // While held, a connect attempt blocks (as one to a black-holed server
  // does until its connect timeout) until released.
  void HoldConnects(bool hold);
  int connects_started() const;
  void AnswerReplyRequests(bool answer);

  int sessions() const;                 // sessions opened
  std::vector<Lsn> start_positions() const;  // START_REPLICATION position of each
  std::vector<StatusUpdate> statuses() const;
  Lsn confirmed_flush() const;
  int finished() const;                 // Finish() calls
  size_t unread() const;                // messages queued and not yet read
  // Data messages read so far (all sessions).
  int data_read() const;

 private:
  friend class FakeStream;
  struct Queued {
    enum Kind { kData, kKeepalive, kDrop } kind;
    Lsn lsn;
    std::string payload;
    bool reply_requested = false;
  };

  explicit FakeServer(Lsn slot_confirmed);
  void Push(Queued q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void DrainWakeup() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  mutable absl::Mutex mu_;
  int wakeup_fd_ = -1;
  std::deque<Queued> queue_ ABSL_GUARDED_BY(mu_);
  Lsn wal_end_ ABSL_GUARDED_BY(mu_);
  Lsn confirmed_ ABSL_GUARDED_BY(mu_);
  absl::Status connect_error_ ABSL_GUARDED_BY(mu_);
  bool hold_connects_ ABSL_GUARDED_BY(mu_) = false;
  int connects_started_ ABSL_GUARDED_BY(mu_) = 0;
  bool answer_reply_requests_ ABSL_GUARDED_BY(mu_) = true;
  int sessions_ ABSL_GUARDED_BY(mu_) = 0;
  std::vector<Lsn> start_positions_ ABSL_GUARDED_BY(mu_);
  std::vector<StatusUpdate> statuses_ ABSL_GUARDED_BY(mu_);
  int finished_ ABSL_GUARDED_BY(mu_) = 0;
  int data_read_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace outboxd::test

#endif  // OUTBOXD_TESTS_CDC_FAKE_STREAM_H_
