// One way to pass an error up: return it unchanged, or unwrap a value.
//
//   absl::Status Prepare(PGconn* conn) {
//     RETURN_IF_ERROR(CheckServer(conn, config));
//     ASSIGN_OR_RETURN(Lsn confirmed, SlotConfirmedLsn(conn, slot));
//     ASSIGN_OR_RETURN(auto conn, Connect(conninfo));   // auto works too
//     ...
//   }
//
// Both work in functions returning absl::Status or absl::StatusOr<T>: the
// error converts to either. Where an error needs more words than the callee
// gave it, write the `if (!s.ok())` out and say them; these macros are only
// for passing an error on as it is.
#ifndef OUTBOXD_PROTO_OUTBOXD_STATUS_MACROS_H_
#define OUTBOXD_PROTO_OUTBOXD_STATUS_MACROS_H_

#include <utility>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define OUTBOXD_STATUS_CONCAT_INNER_(a, b) a##b
#define OUTBOXD_STATUS_CONCAT_(a, b) OUTBOXD_STATUS_CONCAT_INNER_(a, b)

// Evaluates expr (an absl::Status) once; returns it from the enclosing
// function if it is not OK.
#define RETURN_IF_ERROR(expr)                                                   \
  do {                                                                          \
    if (::absl::Status outboxd_status_ = (expr); !outboxd_status_.ok()) {       \
      return outboxd_status_;                                                   \
    }                                                                           \
  } while (false)

// Evaluates rexpr (an absl::StatusOr<T>) once; returns its status if it is
// not OK, else moves the value into lhs (a declaration or an lvalue).
#define ASSIGN_OR_RETURN(lhs, rexpr) \
  OUTBOXD_ASSIGN_OR_RETURN_IMPL_(OUTBOXD_STATUS_CONCAT_(outboxd_statusor_, __LINE__), lhs, rexpr)

#define OUTBOXD_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                                   \
  if (!statusor.ok()) return std::move(statusor).status();   \
  lhs = *std::move(statusor)

#endif  // OUTBOXD_PROTO_OUTBOXD_STATUS_MACROS_H_
