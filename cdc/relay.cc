#include "cdc/relay.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <memory>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "outboxd/log.h"
#include "outboxd/pg_time.h"
#include "outboxd/status_macros.h"

namespace outboxd::cdc {
namespace {

// Messages read per loop turn before delivery reports are served again.
constexpr int kMaxReadBatch = 1024;

int ToPollTimeout(absl::Duration d) {
  return static_cast<int>(std::clamp<int64_t>(absl::ToInt64Milliseconds(absl::Ceil(d, absl::Milliseconds(1))), 0, 1000));
}

}  // namespace

Relay::Relay(RelayOptions options, EventSink::Factory sink_factory, stats::RelayStats* stats)
    : options_(std::move(options)),
      sink_factory_(std::move(sink_factory)),
      decoder_(options_.outbox.table, options_.outbox.columns, options_.outbox.source),
      stats_(stats != nullptr ? stats : &own_stats_),
      topic_tags_(options_.topic_prefix) {
  if (pipe2(stop_pipe_, O_CLOEXEC | O_NONBLOCK) != 0) {
    stop_pipe_[0] = stop_pipe_[1] = -1;  // Stop() still sets the flag; waits end within a second.
  }
}

Relay::~Relay() {
  sink_.reset();  // No delivery callback may run into a half-destroyed relay.
  for (int fd : stop_pipe_) {
    if (fd >= 0) close(fd);
  }
}

void Relay::Stop() {
  stop_.store(true);
  WakeLoop();
}

void Relay::WakeLoop() {
  if (stop_pipe_[1] >= 0) {
    const char byte = 1;
    [[maybe_unused]] ssize_t n = write(stop_pipe_[1], &byte, 1);
  }
}

bool Relay::WaitUnlessStopped(absl::Duration d) {
  const absl::Time deadline = absl::Now() + d;
  while (!stop_.load()) {
    // The sink goes on meanwhile: delivery reports, and an exactly-once sink
    // ending the Kafka transaction the lost stream left open.
    if (sink_) sink_->Poll(0);
    const absl::Duration left = deadline - absl::Now();
    if (left <= absl::ZeroDuration()) return true;
    pollfd fds[2] = {{stop_pipe_[0], POLLIN, 0}, {sink_ ? sink_->wakeup_fd() : -1, POLLIN, 0}};
    if (poll(fds, 2, ToPollTimeout(std::min(left, absl::Milliseconds(100)))) > 0 &&
        (fds[0].revents & POLLIN)) {
      char drain[16];  // a wake-up (Resume) must not turn this wait into a spin
      while (read(stop_pipe_[0], drain, sizeof drain) > 0) {
      }
    }
  }
  return false;
}

absl::Status Relay::MakeSink(const SourceSystem& source) {
  if (sink_) dead_lettered_by_old_sinks_ += sink_->DeadLettered();
  sink_.reset();
  const uint64_t generation = ++sink_generation_;
  auto sink = sink_factory_(source, [this, generation](uint64_t ticket, const absl::Status& status) {
    OnDelivery(generation, ticket, status);
  });
  if (!sink.ok()) return sink.status();
  sink_ = std::move(*sink);
  delivery_failure_ = absl::OkStatus();
  return absl::OkStatus();
}

void Relay::OnDelivery(uint64_t generation, uint64_t ticket, const absl::Status& status) {
  if (generation != sink_generation_) return;  // a report from a producer we dropped
  if (status.ok()) {
    if (const int64_t committed = tracker_.CommitTimeOf(ticket); committed > 0) {
      stats_->ObserveCommitToAck(std::max(0.0, (absl::ToUnixMicros(absl::Now()) - committed) / 1e6));
    }
    tracker_.Ack(ticket);
    ++delivered_;
    stats_->events_delivered.fetch_add(1, std::memory_order_relaxed);
  } else if (delivery_failure_.ok()) {
    delivery_failure_ = status;
  }
}

absl::Status Relay::Run(Lsn start) {
  tracker_.AdvanceConfirmed(start);
  if (!options_.sink_per_session) {
    RETURN_IF_ERROR(MakeSink({}));
  }
  absl::Duration backoff = options_.initial_backoff;
  absl::Duration rewind_backoff = options_.initial_backoff;
  bool waiting_as_standby = false;
  while (!stop_.load()) {
    absl::StatusOr<SessionEnd> end = RunSession();
    if (end.ok() && *end == SessionEnd::kStopped) break;
    if (end.ok() && *end == SessionEnd::kRewind) {
      LogWarning(absl::StrCat("rewinding: ", delivery_failure_.message(),
                              "; restarting replication from the confirmed position ",
                              tracker_.SafeLsn().ToString(), " with a fresh producer"));
      stats_->rewinds.fetch_add(1);
      tracker_.Reset();
      pending_ = false;
      // Rewinds that deliver nothing in between (Kafka refusing every
      // producer at once) back off like reconnects, instead of spinning.
      if (delivered_ == delivered_at_last_rewind_) {
        if (!WaitUnlessStopped(rewind_backoff)) break;
        rewind_backoff = std::min(rewind_backoff * 2, options_.max_backoff);
      } else {
        rewind_backoff = options_.initial_backoff;
      }
      delivered_at_last_rewind_ = delivered_;
      if (!options_.sink_per_session) {  // otherwise the next session makes it
        RETURN_IF_ERROR(MakeSink({}));
      }
      backoff = options_.initial_backoff;
      continue;
    }
    stats_->postgres_connected.store(false);
    if (end.ok()) {  // kReconnect: the session was up, start the backoff afresh
      stats_->reconnects.fetch_add(1);
      backoff = options_.initial_backoff;
    } else if (IsSlotBusy(end.status())) {
      if (!waiting_as_standby) {
        LogInfo(absl::StrCat("replication slot ", options_.outbox.slot,
                             " is in use by another connection; waiting as a hot standby and "
                             "retrying every second (",
                             end.status().message(), ")"));
      }
      waiting_as_standby = true;
      if (!WaitUnlessStopped(absl::Seconds(1))) break;
      continue;
    } else if (!absl::IsUnavailable(end.status()) || StopsTheRelay(end.status())) {
      return end.status();
    } else {
      LogWarning(absl::StrCat(end.status().message(), "; retrying in ", absl::FormatDuration(backoff)));
    }
    waiting_as_standby = false;
    if (!WaitUnlessStopped(backoff)) break;
    backoff = std::min(backoff * 2, options_.max_backoff);
  }
  LogInfo(absl::StrCat("stopped; confirmed LSN ", tracker_.SafeLsn().ToString(), ", ", delivered_,
                       " events delivered"));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<ReplicationStream>> Relay::OpenStream(const StreamOptions& options) {
  // The connect runs on a thread of its own: to a black-holed server it
  // blocks until the connect timeout (PGCONNECT_TIMEOUT, 10 s by default;
  // libpq's own per-host timeout and multi-host fallback work only in its
  // blocking connect), and Stop() must not wait for that. The thread shares
  // nothing with the relay but this attempt: when the relay stops first, it
  // closes what it opened and ends by itself.
  struct Attempt {
    absl::Mutex mu;
    bool done ABSL_GUARDED_BY(mu) = false;
    absl::StatusOr<std::unique_ptr<ReplicationStream>> result ABSL_GUARDED_BY(mu);
  };
  auto attempt = std::make_shared<Attempt>();
  ReplicationStream::Factory connect = options_.connect ? options_.connect : PgReplicationStream::Connect;
  std::thread([attempt, connect = std::move(connect), options] {
    auto result = connect(options);
    absl::MutexLock lock(&attempt->mu);
    attempt->result = std::move(result);
    attempt->done = true;
  }).detach();
  absl::MutexLock lock(&attempt->mu);
  while (!attempt->done) {
    if (stop_.load()) return nullptr;  // the attempt's stream, if any, closes on its thread
    attempt->mu.AwaitWithTimeout(absl::Condition(&attempt->done), absl::Milliseconds(50));
  }
  return std::move(attempt->result);
}

absl::StatusOr<Relay::SessionEnd> Relay::RunSession() {
  // A pending event belongs to a transaction the server will send again whole.
  if (pending_) {
    tracker_.Ack(event_.ticket);
    pending_ = false;
  }
  const StreamOptions stream_options{.conninfo = options_.conninfo,
                                     .slot = options_.outbox.slot,
                                     .publication = options_.outbox.publication,
                                     .messages = options_.outbox.source.messages};
  ASSIGN_OR_RETURN(auto connected, OpenStream(stream_options));
  if (connected == nullptr) return SessionEnd::kStopped;
  ReplicationStream& stream = *connected;
  // Another relay may have confirmed more while this one waited as a standby.
  tracker_.AdvanceConfirmed(stream.slot_confirmed());
  if (options_.sink_per_session) {
    // The previous session's sink (replaced below) aborts what it had open:
    // replay from the confirmed position.
    tracker_.Reset();
  }
  const Lsn start = tracker_.LastReceivedLsn();
  parser_ = decoder::PgOutputParser(PgOutputProtocolFor(stream.server_version_num()));
  RETURN_IF_ERROR(stream.StartReplication(start, parser_.protocol_version()));
  if (options_.sink_per_session) {
    // Only now that this relay holds the slot: fence, read the checkpoint
    // (and check it was written for this server's system). That waits for
    // Kafka, in short steps: between two, PostgreSQL hears from us (no
    // wal_sender_timeout) and a stop is honoured.
    absl::Status answering;
    absl::Time next_status = absl::Now() + options_.status_interval;
    auto keep_waiting = [&] {
      if (stop_.load() || !answering.ok()) return false;
      if (absl::Now() >= next_status) {
        answering = stream.SendStatus(start, tracker_.SafeLsn(), false);
        next_status = absl::Now() + options_.status_interval;
      }
      return answering.ok();
    };
    absl::Status made = MakeSink({.system_identifier = stream.system_identifier(),
                                  .keep_waiting = keep_waiting});
    if (absl::IsCancelled(made) && stop_.load()) return SessionEnd::kStopped;
    if (!answering.ok()) {  // reconnect
      return absl::UnavailableError(absl::StrCat(
          "the replication connection broke while waiting for Kafka: ", answering.message()));
    }
    RETURN_IF_ERROR(made);
  }
  // An exactly-once sink knows from its checkpoint what Kafka already has;
  // what the server sends below it, the sink acknowledges without sending.
  tracker_.AdvanceConfirmed(sink_->RecoveredPosition());
  stats_->postgres_connected.store(true);
  stats_->set_server_version(stream.server_version());
  const std::optional<SlotFailoverState> failover = stream.failover_state();
  if (failover) {
    stats_->slot_failover.store(failover->failover);
    stats_->standbys.store(static_cast<uint32_t>(failover->standbys));
    stats_->standbys_synchronizing.store(static_cast<uint32_t>(failover->synchronizing));
    stats_->failover_ready.store(failover->Ready());
  }
  decoder_.Reset();

  LogInfo(absl::StrCat(logged_start_ ? "reconnected: " : "", "streaming slot ", options_.outbox.slot,
                       " (publication ", options_.outbox.publication, ", table ",
                       options_.outbox.table.QualifiedName(), ") from PostgreSQL ",
                       stream.server_version(), " (pgoutput protocol ", parser_.protocol_version(),
                       ") at ", stream.server_name().empty() ? "" : absl::StrCat(stream.server_name(), " of "),
                       RedactConnInfo(options_.conninfo),
                       ", starting after ", start.ToString(), ", confirmed ",
                       tracker_.SafeLsn().ToString(),
                       failover ? absl::StrCat(", slot failover ", failover->Describe()) : "",
                       "; events go to ", options_.sink_description));
  logged_start_ = true;
  if (failover) {
    // Warned at start and whenever it changes (a failover, a standby set up or gone).
    const std::string warning = failover->Warning(options_.outbox.slot);
    if (!warning.empty() && warning != last_failover_warning_) LogWarning(warning);
    last_failover_warning_ = warning;
  }

  Lsn received = start;
  absl::Time next_status = absl::Now();
  absl::Time last_status = absl::InfinitePast();
  Lsn reported;  // the confirmed position of the last status update
  // The liveness check: when the server last sent anything while we were
  // reading, and when we asked it for a reply (InfinitePast: not asking).
  absl::Time last_heard = absl::Now();
  absl::Time reply_asked = absl::InfinitePast();
  const absl::Duration reply_timeout = std::min(options_.replication_timeout, kReplyTimeout);
  auto reconnect = [&](const absl::Status& why) {
    LogWarning(absl::StrCat(why.message(), "; reconnecting"));
    tracker_.AbandonOpenTransaction();
    sink_->StreamLost();
    return SessionEnd::kReconnect;
  };

  while (true) {
    if (stop_.load()) return Shutdown(stream, received);
    sink_->Poll(0);
    if (StopsTheRelay(delivery_failure_)) return delivery_failure_;  // poison, dead letters fail: stop
    if (absl::Status failed = sink_->Failure(); !failed.ok()) return failed;  // e.g. credentials refused
    if (!delivery_failure_.ok()) return SessionEnd::kRewind;

    bool blocked = false;
    if (pending_) {
      ASSIGN_OR_RETURN(bool produced, ProducePending());
      blocked = !produced;
    }

    // Paused: hold the stream like a full sink would, everything else goes on.
    if (stats_->paused.load()) blocked = true;
    bool drained = false;
    bool heard = false;
    for (int n = 0; !blocked && n < kMaxReadBatch; ++n) {
      absl::StatusOr<StreamItem> item = stream.Read();
      if (!item.ok()) return reconnect(item.status());
      if (item->kind == StreamItem::kNone) {
        drained = true;
        break;
      }
      heard = true;
      received = std::max(received, item->lsn);
      stats_->server_wal_end.store(std::max(stats_->server_wal_end.load(), item->wal_end.value()));
      if (item->kind == StreamItem::kKeepalive) {
        tracker_.ObserveServerPosition(item->lsn);
        // The walsender asks when it needs an answer (timeouts, shutdown): at once.
        if (item->reply_requested) next_status = absl::InfinitePast();
        continue;
      }
      RETURN_IF_ERROR(HandleData(*item));
      blocked = pending_;
    }
    // Complete messages may wait in libpq's buffer with nothing on the socket.
    const bool more_buffered = !blocked && !drained;
    if (drained) sink_->StreamIdle();

    absl::Time now = absl::Now();
    // While the loop does not read (a full sink, paused) the server's silence
    // says nothing about the path: the clock starts again when reading does.
    if (heard || blocked) {
      last_heard = now;
      reply_asked = absl::InfinitePast();
    }
    bool ask_reply = false;
    if (options_.replication_timeout > absl::ZeroDuration() &&
        now - last_heard >= options_.replication_timeout) {
      if (reply_asked == absl::InfinitePast()) {
        ask_reply = true;
        reply_asked = now;
        next_status = now;
        LogDebug(absl::StrCat("nothing from PostgreSQL for ", absl::FormatDuration(now - last_heard),
                              "; asking it for a reply"));
      } else if (now - reply_asked >= reply_timeout) {
        stats_->postgres_connected.store(false);  // /readyz: not ready from here on
        return reconnect(absl::UnavailableError(absl::StrCat(
            "PostgreSQL sent nothing for ", absl::FormatDuration(now - last_heard),
            " and did not answer a status update asking for a reply within ",
            absl::FormatDuration(reply_timeout),
            ": the network path to the server (or the server) is dead (--replication_timeout=",
            absl::FormatDuration(options_.replication_timeout), ")")));
      }
    }
    // Due every status_interval, and confirm_interval after the confirmed position moved.
    const Lsn safe = tracker_.SafeLsn();
    absl::Time status_due =
        options_.confirm_interval > absl::ZeroDuration() && safe > reported
            ? std::min(next_status, last_status + options_.confirm_interval)
            : next_status;
    if (now >= status_due) {
      if (absl::Status s = stream.SendStatus(received, safe, ask_reply); !s.ok()) return reconnect(s);
      next_status = now + options_.status_interval;
      last_status = now;
      reported = safe;
      status_due = next_status;
      stats_->confirmed_lsn.store(safe.value());
      stats_->received_lsn.store(received.value());
      PublishGauges();
    }
    MaybeLogProgress(now, received);

    pollfd fds[3] = {{sink_->wakeup_fd(), POLLIN, 0},
                     {stop_pipe_[0], POLLIN, 0},
                     {stream.socket(), static_cast<short>(blocked ? 0 : POLLIN), 0}};
    const int timeout =
        more_buffered ? 0
                      : ToPollTimeout(std::min({status_due - now, absl::Milliseconds(100),
                                                 std::max(sink_->WorkDueIn(), absl::Milliseconds(1))}));
    if (poll(fds, 3, timeout) < 0 && errno != EINTR) {
      return absl::InternalError(absl::StrCat("poll failed: ", strerror(errno)));
    }
    if (fds[1].revents & POLLIN) {
      char drain[16];
      while (read(stop_pipe_[0], drain, sizeof drain) > 0) {
      }
    }
    if (fds[2].revents & (POLLIN | POLLERR | POLLHUP)) {
      if (absl::Status s = stream.ConsumeInput(); !s.ok()) return reconnect(s);
    }
  }
}

absl::Status Relay::HandleData(const StreamItem& item) {
  absl::StatusOr<decoder::Message> message = parser_.Parse(item.payload);
  if (!message.ok()) {
    return absl::DataLossError(absl::StrCat("cannot decode the pgoutput message at ", item.lsn.ToString(),
                                            ": ", message.status().message(),
                                            "; nothing past it was confirmed. Please report this "
                                            "with `outboxd peek` output around that position"));
  }
  if (const auto* begin = std::get_if<decoder::pgoutput::Begin>(&*message)) {
    tracker_.BeginTransaction(PgToUnixMicros(begin->commit_time));
  }
  if (const auto* commit = std::get_if<decoder::pgoutput::Commit>(&*message)) {
    if (!tracker_.InTransaction()) return absl::DataLossError("Commit without Begin in the stream");
    tracker_.CommitTransaction(commit->end_lsn);
    sink_->EndOfTransaction(commit->end_lsn);
    return absl::OkStatus();
  }
  ASSIGN_OR_RETURN(bool decoded, decoder_.Decode(*message, item.lsn, &event_.decoded));
  if (!decoded) return absl::OkStatus();
  if (!tracker_.InTransaction()) {
    return absl::DataLossError(absl::StrCat("INSERT at ", item.lsn.ToString(), " outside a transaction"));
  }
  decoder::DecodedEvent& ev = event_.decoded;
  // Only a transaction's first event names its topic: nothing more per event.
  event_.ticket = tracker_.AddEvent(tracker_.OpenTransactionHasEvents()
                                        ? 0
                                        : topic_tags_.Tag(ev.topic_override, ev.event.aggregate_type()));
  pending_ = true;
  if (!ev.dead_letter_reason.empty()) {
    if (options_.stop_on_poison) {
      return absl::FailedPreconditionError(absl::StrCat(
          "poison event: outbox row id=", ev.event.id(), " at ", item.lsn.ToString(), " cannot be "
          "routed: ", ev.dead_letter_reason, ". Stopping because of --on_poison=stop; nothing "
          "past it is confirmed. Fix the row, or run with --on_poison=dead-letter to park it"));
    }
    LogWarning(absl::StrCat("outbox row id=", ev.event.id(), " at ", item.lsn.ToString(),
                            " goes to the dead-letter topic ", options_.dead_letter_topic, ": ",
                            ev.dead_letter_reason));
    (*ev.event.mutable_headers())["outboxd.dead_letter.reason"] = ev.dead_letter_reason;
    ++dead_lettered_;
    ev.topic_override = options_.dead_letter_topic;
  }
  return ProducePending().status();
}

absl::StatusOr<bool> Relay::ProducePending() {
  absl::Status s = sink_->Produce(event_.decoded.event, event_.decoded.topic_override, event_.ticket);
  if (absl::IsResourceExhausted(s)) return false;
  if (StopsTheRelay(s)) return s;
  if (!s.ok()) {
    // Kafka refused it at once: the Kafka remedy (a rewind with a fresh
    // producer, at the top of the loop), never a PostgreSQL reconnect.
    if (delivery_failure_.ok()) delivery_failure_ = s;
    return false;
  }
  pending_ = false;
  return true;
}

Relay::SessionEnd Relay::Shutdown(ReplicationStream& stream, Lsn received) {
  if (const int in_flight = sink_->InFlight(); in_flight > 0) {
    LogInfo(absl::StrCat("stopping: waiting up to ", absl::FormatDuration(options_.shutdown_flush_timeout),
                         " for ", in_flight, " events in flight to Kafka"));
  }
  // Delivery reports are served inside Flush(), so the tracker is up to date
  // after it. In slices, with a status update after each, so the walsender
  // does not give up on a silent client (wal_sender_timeout) while Kafka is away.
  const absl::Time deadline = absl::Now() + options_.shutdown_flush_timeout;
  while (true) {
    const absl::Duration left = std::max(deadline - absl::Now(), absl::ZeroDuration());
    absl::Status s = sink_->Flush(std::min(left, absl::Milliseconds(100)));
    if (s.ok()) break;
    if (left <= absl::ZeroDuration()) {
      LogWarning(absl::StrCat(sink_->InFlight(), " events were not acknowledged in time (",
                              s.message(), "); they are not confirmed and will be sent again on "
                              "the next start"));
      break;
    }
    if (absl::Status sent = stream.SendStatus(received, tracker_.SafeLsn()); !sent.ok()) break;
  }
  if (absl::Status s = stream.SendStatus(received, tracker_.SafeLsn()); !s.ok()) {
    LogWarning(absl::StrCat("final status update not sent: ", s.message()));
  }
  stream.Finish();
  return SessionEnd::kStopped;
}

}  // namespace outboxd::cdc
