#include "cache/key_lock.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace modelreg::cache {

namespace {

// Does the open descriptor still name the file `name` in `dir_fd`?
bool StillAtPath(int fd, int dir_fd, const std::string& name) {
  struct stat by_fd {
  }, by_path{};
  if (::fstat(fd, &by_fd) != 0 ||
      ::fstatat(dir_fd, name.c_str(), &by_path, AT_SYMLINK_NOFOLLOW) != 0) {
    return false;
  }
  return by_fd.st_dev == by_path.st_dev && by_fd.st_ino == by_path.st_ino;
}

int Flock(int fd, int op) {
  int rc;
  do {
    rc = ::flock(fd, op);
  } while (rc != 0 && errno == EINTR);
  return rc;
}

Status OpenError(const std::string& what, const std::string& path, int e) {
  if (e == ELOOP) {
    return Status::FailedPrecondition("lock file " + path + " is a symbolic link: not followed");
  }
  if (e == ENOENT) return Status::NotFound("no lock file " + path);
  return Status::IOError(what + " " + path + ": " + std::strerror(e));
}

}  // namespace

Result<std::unique_ptr<KeyLock>> KeyLock::Acquire(int dir_fd, const std::string& name,
                                                  const std::string& path) {
  for (;;) {
    const int fd =
        ::openat(dir_fd, name.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) {
      const int e = errno;
      return Err(e == ELOOP || e == ENOENT ? OpenError("", path, e)
                                           : OpenError("cannot create lock file", path, e));
    }
    if (Flock(fd, LOCK_EX) != 0) {
      const int e = errno;
      ::close(fd);
      return Err(Status::IOError("cannot lock " + path + ": " + std::strerror(e)));
    }
    if (StillAtPath(fd, dir_fd, name)) return KeyLock::Adopt(dir_fd, name, path, fd);
    ::close(fd);  // its holder removed it while we waited: take the new one
  }
}

Result<std::unique_ptr<KeyLock>> KeyLock::TryAcquire(int dir_fd, const std::string& name,
                                                     const std::string& path, bool create) {
  const int fd = ::openat(dir_fd, name.c_str(),
                          O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0644);
  if (fd < 0) return Err(OpenError("cannot open lock file", path, errno));
  if (Flock(fd, LOCK_EX | LOCK_NB) != 0) {
    const int e = errno;
    ::close(fd);
    if (e == EWOULDBLOCK) return Err(Status::Busy("lock " + path + " is held"));
    return Err(Status::IOError("cannot lock " + path + ": " + std::strerror(e)));
  }
  if (!StillAtPath(fd, dir_fd, name)) {
    ::close(fd);
    return Err(Status::NotFound("lock file " + path + " was replaced or removed"));
  }
  return Adopt(dir_fd, name, path, fd);
}

Result<std::unique_ptr<KeyLock>> KeyLock::Adopt(int dir_fd, const std::string& name,
                                                const std::string& path, int fd) {
  const int dup = ::fcntl(dir_fd, F_DUPFD_CLOEXEC, 0);
  if (dup < 0) {
    const int e = errno;
    ::close(fd);
    return Err(Status::IOError("cannot lock " + path + ": " + std::strerror(e)));
  }
  return std::unique_ptr<KeyLock>(new KeyLock(dup, name, fd));
}

KeyLock::~KeyLock() {
  // Unlink while holding: a waiter on this file will see it is gone.
  ::unlinkat(dir_fd_, name_.c_str(), 0);
  ::close(fd_);
  ::close(dir_fd_);
}

}  // namespace modelreg::cache
