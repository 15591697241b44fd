#include "cache/key_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace modelreg::cache {

namespace {

// Does the open descriptor still name the file at `path`?
bool StillAtPath(int fd, const std::string& path) {
  struct stat by_fd {
  }, by_path{};
  if (::fstat(fd, &by_fd) != 0 || ::stat(path.c_str(), &by_path) != 0) return false;
  return by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

int Flock(int fd, int op) {
  int rc;
  do {
    rc = ::flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

}  // namespace

Result<std::unique_ptr<KeyLock>> KeyLock::Acquire(const std::string& path) {
  for (;;) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) {
      return Err(Status::IOError("cannot create lock file " + path + ": " + std::strerror(errno)));
    }
    if (Flock(fd, LOCK_EX) != 0) {
      const int e = errno;
      ::close(fd);
      return Err(Status::IOError("cannot lock " + path + ": " + std::strerror(e)));
    }
    if (StillAtPath(fd, path)) return std::unique_ptr<KeyLock>(new KeyLock(path, fd));
    ::close(fd);  // its holder removed it while we waited: take the new one
  }
}

Result<std::unique_ptr<KeyLock>> KeyLock::TryAcquire(const std::string& path, bool create) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | (create ? O_CREAT : 0), 0644);
  if (fd < 0) {
    if (errno == ENOENT) return Err(Status::NotFound("no lock file " + path));
    return Err(Status::IOError("cannot open lock file " + path + ": " + std::strerror(errno)));
  }
  if (Flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK) return Err(Status::Busy("lock " + path + " is held"));
    return Err(Status::IOError("cannot lock " + path + ": " + std::strerror(e)));
  }
  if (!StillAtPath(fd, path)) {
    ::close(fd);
    return Err(Status::NotFound("lock file " + path + " was replaced or removed"));
  }
  return std::unique_ptr<KeyLock>(new KeyLock(path, fd));
}

KeyLock::~KeyLock() {
  // Unlink while holding: a waiter on this file will see it is gone.
  ::unlink(path_.c_str());
  ::close(fd_);
}

}  // namespace modelreg::cache
