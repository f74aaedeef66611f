#include "checkpoint/ack_tracker.h"

#include <algorithm>
#include <cassert>

namespace outboxd::checkpoint {

void AckTracker::BeginTransaction(int64_t commit_time_micros) {
  if (open_) AbandonOpenTransaction();
  open_ = true;
  open_has_entry_ = false;
  open_commit_time_ = commit_time_micros;
}

int64_t AckTracker::CommitTimeOf(Ticket ticket) const {
  if (ticket < front_ticket_ || ticket - front_ticket_ >= entries_.size()) return 0;
  return entries_[ticket - front_ticket_].commit_time_micros;
}

int64_t AckTracker::OldestUnackedCommitTime() const {
  for (const Entry& e : entries_) {
    if (e.pending > 0) return e.commit_time_micros;
  }
  return 0;
}

uint32_t AckTracker::OldestUnackedTag() const {
  for (const Entry& e : entries_) {
    if (e.pending > 0) return e.tag;
  }
  return 0;
}

AckTracker::Ticket AckTracker::AddEvent(uint32_t tag) {
  assert(open_ && "AddEvent outside a transaction");
  if (!open_has_entry_) {
    entries_.push_back(Entry{.commit_time_micros = open_commit_time_, .tag = tag});
    open_has_entry_ = true;
  }
  ++entries_.back().pending;
  ++events_in_flight_;
  return front_ticket_ + entries_.size() - 1;
}

void AckTracker::CommitTransaction(Lsn end_lsn) {
  assert(open_ && "Commit outside a transaction");
  open_ = false;
  last_received_ = std::max(last_received_, end_lsn);
  if (open_has_entry_) {
    entries_.back().committed = true;
    entries_.back().end_lsn = std::max(entries_.back().end_lsn, end_lsn);
    open_has_entry_ = false;
    Drain();
  } else {
    // No events of its own: confirmed together with the transaction before it.
    FoldPosition(end_lsn);
  }
}

void AckTracker::FoldPosition(Lsn lsn) {
  if (entries_.empty()) {
    safe_ = std::max(safe_, lsn);
  } else {
    entries_.back().end_lsn = std::max(entries_.back().end_lsn, lsn);
  }
}

void AckTracker::AbandonOpenTransaction() {
  if (!open_) return;
  open_ = false;
  if (open_has_entry_) {
    // end_lsn stays invalid: once its events are acknowledged it only unblocks
    // what follows, it confirms nothing of its own.
    entries_.back().committed = true;
    open_has_entry_ = false;
    Drain();
  }
}

void AckTracker::Ack(Ticket ticket) {
  if (ticket < front_ticket_ || ticket - front_ticket_ >= entries_.size()) return;
  Entry& entry = entries_[ticket - front_ticket_];
  if (entry.pending == 0) return;
  --entry.pending;
  --events_in_flight_;
  Drain();
}

void AckTracker::ObserveServerPosition(Lsn lsn) {
  // Inside a transaction the keepalive position may lie past events not yet
  // received; between transactions it bounds what was sent, so it becomes safe
  // together with the last transaction before it.
  if (!open_) FoldPosition(lsn);
}

void AckTracker::AdvanceConfirmed(Lsn lsn) {
  safe_ = std::max(safe_, lsn);
  last_received_ = std::max(last_received_, lsn);
}

void AckTracker::Reset() {
  front_ticket_ += entries_.size();
  entries_.clear();
  open_ = false;
  open_has_entry_ = false;
  events_in_flight_ = 0;
  last_received_ = safe_;
}

void AckTracker::Drain() {
  while (!entries_.empty() && entries_.front().committed && entries_.front().pending == 0) {
    safe_ = std::max(safe_, entries_.front().end_lsn);
    entries_.pop_front();
    ++front_ticket_;
  }
}


}  // namespace outboxd::checkpoint
