#include "common/rw_file_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <thread>

namespace modelreg {

namespace {

using Steady = std::chrono::steady_clock;

// Opens a lock file: read-write (created if allowed), else read-only.
// -1 with errno set on failure.
int OpenLockFile(const std::string& path, bool create) {
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0 && (errno == EACCES || errno == EROFS || errno == EPERM || errno == ENOENT)) {
    fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  }
  return fd;
}

// flock(fd, op | LOCK_NB) until it succeeds or `deadline` passes: 0, or
// EWOULDBLOCK when the time ran out, or another errno.
int FlockBy(int fd, int op, Steady::time_point deadline) {
  auto pause = std::chrono::microseconds(50);
  for (;;) {
    if (::flock(fd, op | LOCK_NB) == 0) return 0;
    if (errno == EINTR) continue;
    if (errno != EWOULDBLOCK) return errno;
    const auto now = Steady::now();
    if (now >= deadline) return EWOULDBLOCK;
    std::this_thread::sleep_for(
        std::min<Steady::duration>(pause, deadline - now));
    pause = std::min<std::chrono::microseconds>(pause * 2, std::chrono::milliseconds(2));
  }
}

}  // namespace

RwFileLock::RwFileLock(std::string path, int lock_fd, int gate_fd)
    : path_(std::move(path)), lock_(lock_fd), gate_(gate_fd) {}

Result<std::unique_ptr<RwFileLock>> RwFileLock::Open(const std::string& path, bool create) {
  const std::string gate_path = path + ".gate";
  UniqueFd lock(OpenLockFile(path, create));
  if (lock.get() < 0) {
    if (errno == ENOENT) return Err(Status::NotFound("no lock file " + path));
    return Err(Status::IOError(ErrnoMessage("cannot open lock file", path)));
  }
  UniqueFd gate(OpenLockFile(gate_path, create));
  if (gate.get() < 0) {
    if (errno == ENOENT) return Err(Status::NotFound("no lock file " + gate_path));
    return Err(Status::IOError(ErrnoMessage("cannot open lock file", gate_path)));
  }
  return std::unique_ptr<RwFileLock>(new RwFileLock(path, lock.release(), gate.release()));
}

Status RwFileLock::LockShared(std::chrono::milliseconds wait) { return Lock(LOCK_SH, wait); }

Status RwFileLock::LockExclusive(std::chrono::milliseconds wait) { return Lock(LOCK_EX, wait); }

Status RwFileLock::Lock(int op, std::chrono::milliseconds wait) {
  if (held_) return Status::Internal("lock " + path_ + " is already held by this object");
  const auto deadline = Steady::now() + wait;
  // Through the gate: a writer waiting for the readers inside holds it.
  int e = FlockBy(gate_.get(), LOCK_EX, deadline);
  if (e == 0) {
    e = FlockBy(lock_.get(), op, deadline);
    // A writer keeps new readers out from here on by its own exclusive
    // hold; the gate is only needed while it waits.
    while (::flock(gate_.get(), LOCK_UN) != 0 && errno == EINTR) {
    }
  }
  if (e == EWOULDBLOCK) {
    return Status::Busy("lock " + path_ + " was not available within " +
                        std::to_string(wait.count()) + " ms");
  }
  if (e != 0) {
    errno = e;
    return Status::IOError(ErrnoMessage("cannot lock", path_));
  }
  held_ = true;
  return Status::OK();
}

std::optional<std::chrono::system_clock::time_point> RwFileLock::SharedStamp() const {
  std::int64_t ns = 0;
  if (::pread(gate_.get(), &ns, sizeof ns, 0) != static_cast<ssize_t>(sizeof ns)) {
    return std::nullopt;
  }
  return std::chrono::system_clock::time_point(
      std::chrono::duration_cast<std::chrono::system_clock::duration>(
          std::chrono::nanoseconds(ns)));
}

void RwFileLock::SetSharedStamp(std::chrono::system_clock::time_point t) {
  const std::int64_t ns =
      std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
  // Best effort: a reader's read-only descriptor cannot write, and a lost
  // stamp only means another writer waits once more.
  [[maybe_unused]] const ssize_t n = ::pwrite(gate_.get(), &ns, sizeof ns, 0);
}

void RwFileLock::Unlock() {
  if (!held_) return;
  while (::flock(lock_.get(), LOCK_UN) != 0 && errno == EINTR) {
  }
  held_ = false;
}

}  // namespace modelreg
