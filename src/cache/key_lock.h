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
// (the cache's Gc, TryAcquire with create = false).
//
// The lock file is `name` inside an open directory (openat, O_NOFOLLOW,
// unlinkat): a symbolic link where the lock file should be is refused
// (FailedPrecondition), never followed, never removed.
// Thread-safety: a KeyLock is owned by one thread.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"

namespace modelreg::cache {

class KeyLock {
 public:
  // Blocks until the lock file `name` in the directory `dir_fd` is held
  // (the descriptor is duplicated; the caller keeps its own). `path` names
  // the file in messages. IOError when the lock file cannot be created
  // (unwritable directory), FailedPrecondition when it is a symbolic link.
  static Result<std::unique_ptr<KeyLock>> Acquire(int dir_fd, const std::string& name,
                                                  const std::string& path);
  // Like Acquire but never waits: Busy when another holder has it. With
  // create = false, NotFound when there is no lock file (none is created):
  // how stale lock files are removed.
  static Result<std::unique_ptr<KeyLock>> TryAcquire(int dir_fd, const std::string& name,
                                                     const std::string& path, bool create);

  // Releases the lock, removing the lock file first.
  ~KeyLock();
  KeyLock(const KeyLock&) = delete;
  KeyLock& operator=(const KeyLock&) = delete;

 private:
  // Wraps a locked fd still at dir_fd/name (takes it; closed on error).
  static Result<std::unique_ptr<KeyLock>> Adopt(int dir_fd, const std::string& name,
                                                const std::string& path, int fd);
  KeyLock(int dir_fd, std::string name, int fd)
      : dir_fd_(dir_fd), name_(std::move(name)), fd_(fd) {}
  int dir_fd_;  // a duplicate, owned
  std::string name_;
  int fd_;
};

}  // namespace modelreg::cache
