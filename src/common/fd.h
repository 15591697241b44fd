// A file descriptor owned by one scope, and the "what path: strerror"
// message (and Status) every POSIX call site reports.
#pragma once

#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "common/status.h"

namespace modelreg {

class UniqueFd {
 public:
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) ::close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const { return fd_; }
  // Gives the descriptor up without closing it.
  int release() {
    const int f = fd_;
    fd_ = -1;
    return f;
  }
  // Closes now and returns close()'s result (it can report a failed
  // write-back, which the destructor would lose).
  int Close() {
    const int rc = ::close(fd_);
    fd_ = -1;
    return rc;
  }

 private:
  int fd_;
};

// "<what> <path>: <strerror(errno)>", read at the call.
inline std::string ErrnoMessage(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

// The Status of a failed POSIX call, read at the call: DiskFull when errno
// is ENOSPC or EDQUOT (a full filesystem or quota), else IOError; the
// message is ErrnoMessage's.
inline Status ErrnoStatus(const std::string& what, const std::string& path) {
  const int err = errno;
  std::string message = ErrnoMessage(what, path);
  if (err == ENOSPC || err == EDQUOT) return Status::DiskFull(std::move(message));
  return Status::IOError(std::move(message));
}

}  // namespace modelreg
