// A per-key lock across threads and processes: flock(2) on a lock file.
//
// flock locks belong to an open file description, so two threads of one
// process that each open the file exclude each other just as two processes
// do, and the kernel releases the lock when its holder dies (even by
// SIGKILL). Lock files do not accumulate: the holder unlinks the file while
// still holding it, just before releasing. A waiter that then gets the lock
// finds that its descriptor no longer names the file at the path (device
// and inode differ, or the path is gone) and starts over on a fresh file, so
// at most one process holds the lock of the file currently at the path.
// Files left by killed holders are removed the same way by TryLock + Unlink
// (the cache's Gc, TryAcquire with create = false). Thread-safety: a KeyLock is owned by one
// thread.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace modelreg::cache {

class KeyLock {
 public:
  // Blocks until the lock of `path` is held. IOError when the lock file
  // cannot be created (missing or unwritable directory).
  static Result<std::unique_ptr<KeyLock>> Acquire(const std::string& path);
  // Like Acquire but never waits: Busy when another holder has it. With
  // create = false, NotFound when there is no lock file at `path` (none is
  // created): how stale lock files are removed.
  static Result<std::unique_ptr<KeyLock>> TryAcquire(const std::string& path, bool create);

  // Releases the lock, removing the lock file first.
  ~KeyLock();
  KeyLock(const KeyLock&) = delete;
  KeyLock& operator=(const KeyLock&) = delete;

 private:
  KeyLock(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  std::string path_;
  int fd_;
};

}  // namespace modelreg::cache
