// RwFileLock: a readers/writer lock between processes, on two lock files
// (flock(2)), that does not starve the writer.
//
// flock alone lets new shared holders in while an exclusive waiter waits,
// so a steady stream of overlapping readers would keep a writer out
// forever. A second file, the gate, fixes that: every locker takes the gate
// exclusively for a moment on the way in; a writer keeps it while it waits
// for the readers already inside to leave, so new readers queue behind it.
//
// Each object has its own open file descriptions: two objects on the same
// files exclude each other even within one process. Waits poll (a blocking
// flock has no timeout) with a back-off of at most 2 ms, and are bounded:
// a lock that is not available within the wait is Busy. The lock is
// released by Unlock, by destroying the object, or by the process's death.
//
// Thread-safety: one holder per object; lock and unlock from one thread at
// a time.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include "common/fd.h"
#include "common/status.h"

namespace modelreg {

class RwFileLock {
 public:
  // Opens `path` and `path + ".gate"`, creating them (mode 0644 less the
  // umask) when `create` and the directory allows it; a reader that may not
  // create them opens existing ones read-only (enough for flock). NotFound
  // when they do not exist and cannot be created; IOError otherwise.
  static Result<std::unique_ptr<RwFileLock>> Open(const std::string& path, bool create);

  ~RwFileLock() = default;
  RwFileLock(const RwFileLock&) = delete;
  RwFileLock& operator=(const RwFileLock&) = delete;

  // Takes the lock shared (readers) or exclusive (the writer), waiting at
  // most `wait` (zero: one attempt). Busy when it is not available in time.
  Status LockShared(std::chrono::milliseconds wait);
  Status LockExclusive(std::chrono::milliseconds wait);
  void Unlock();

  // A time shared by every process using the lock, stored in the gate file
  // (nullopt until first set, or unreadable): a writer notes when waiting
  // for the readers timed out, so that writer processes back off together.
  std::optional<std::chrono::system_clock::time_point> SharedStamp() const;
  void SetSharedStamp(std::chrono::system_clock::time_point t);

  bool held() const { return held_; }
  const std::string& path() const { return path_; }

 private:
  RwFileLock(std::string path, int lock_fd, int gate_fd);
  Status Lock(int op, std::chrono::milliseconds wait);

  std::string path_;
  UniqueFd lock_;
  UniqueFd gate_;
  bool held_ = false;
};

}  // namespace modelreg
