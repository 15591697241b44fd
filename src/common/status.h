// Status and Result<T>: errors as values across every library boundary.
//
// A Status is OK or carries a Code and a message that names the offending
// input. Result<T> is tl::expected<T, Status>. Exceptions never cross a
// module's public API. Thread-safety: plain values.
//
// A full disk (ENOSPC or EDQUOT from a file write, RocksDB's NoSpace) is an
// IOError (exit 6) marked disk_full(), whose message says "disk full: "
// (Status::DiskFull puts it first; WithContext adds context before it and
// keeps the mark); the HTTP API answers it with 507 Insufficient Storage
// instead of 500.
#pragma once

#include <string>
#include <string_view>
#include <utility>

#include <tl/expected.hpp>

namespace modelreg {

enum class Code {
  kOk = 0,
  kInvalidArgument,     // bad input from the user or a caller
  kNotFound,            // no such event / model / file
  kAlreadyExists,       // creating something that exists
  kConflict,            // optimistic-concurrency or idempotency conflict
  kFailedPrecondition,  // illegal state transition, store poisoned, ...
  kCorruption,          // bytes on disk fail verification
  kIOError,             // the OS or RocksDB failed
  kBusy,                // the registry is locked by another process
  kRejected,            // evaluated and refused by policy (promotion gates, compatibility)
  kInternal,            // a bug
  kPermissionDenied,    // the server refused the token (missing, invalid, or lacking the scope)
};

// Stable lower-case name of a code ("invalid_argument", ...).
std::string_view CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message)
      : code_(code), message_(std::move(message)) {}

  // Lets `return Err(st);` serve functions returning Status as well.
  Status(tl::unexpected<Status> u) : Status(std::move(u.value())) {}  // NOLINT

  static Status OK() { return {}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status Conflict(std::string m) { return {Code::kConflict, std::move(m)}; }
  static Status FailedPrecondition(std::string m) { return {Code::kFailedPrecondition, std::move(m)}; }
  static Status Corruption(std::string m) { return {Code::kCorruption, std::move(m)}; }
  static Status IOError(std::string m) { return {Code::kIOError, std::move(m)}; }
  // An IOError because the filesystem is full; "disk full: " is put in
  // front of `m` unless it already starts with it.
  static Status DiskFull(std::string m);
  static Status Busy(std::string m) { return {Code::kBusy, std::move(m)}; }
  static Status Rejected(std::string m) { return {Code::kRejected, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // An IOError caused by a full disk (see above).
  bool disk_full() const { return disk_full_; }

  // "conflict: expected head 4, store is at 5"
  std::string ToString() const;

  // Returns a copy whose message is "<context>: <message>".
  Status WithContext(std::string_view context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
  bool disk_full_ = false;
};

template <typename T>
using Result = tl::expected<T, Status>;

// `return Err(Status::NotFound(...));` from a function returning Result<T>.
inline tl::unexpected<Status> Err(Status s) { return tl::unexpected<Status>(std::move(s)); }

}  // namespace modelreg

// Propagates a non-OK Status from an expression returning Status.
// Works in functions returning Status or Result<T>.
#define MODELREG_RETURN_IF_ERROR(expr)                       \
  do {                                                       \
    ::modelreg::Status _st = (expr);                         \
    if (!_st.ok()) return ::modelreg::Err(std::move(_st));   \
  } while (0)
