// Durability helpers for files and directories: fsync a path, create
// directories so that they survive a crash, fsync a whole tree. Used by
// whatever publishes files by rename (the artifact store, import, restore,
// materialize, export). Thread-safety: free functions.
#pragma once

#include <sys/types.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "common/status.h"

namespace modelreg {

// "<message>: <ec.message()>" as an IOError, or DiskFull when `ec` is
// ENOSPC or EDQUOT (std::filesystem calls).
Status ErrorCodeStatus(const std::string& message, const std::error_code& ec);

// fsyncs one file or directory. IOError names the path (DiskFull for a
// full filesystem).
Status SyncPath(const std::string& path);
// Creates `dir` and its missing parents (like create_directories), then
// fsyncs each directory that gained an entry, so the new directories
// survive a crash. Nothing to do when `dir` exists.
Status CreateDirectoriesSynced(const std::string& dir);
// fsyncs every regular file and directory under `dir` (children before the
// directory holding them), then `dir` itself; symlinks are not followed.
// Not the directory holding `dir`: sync that after publishing `dir`
// (rename) or creating it.
Status SyncTree(const std::string& dir);
// The directory holding `p` ("." for a bare name): the one to fsync after
// renaming `p` into place.
std::filesystem::path ParentOf(const std::filesystem::path& p);

// The contents of a regular file of at most `limit` bytes (opened without
// blocking: a FIFO or device is refused, not waited on); its st_mode in
// `*mode` when given. NotFound, PermissionDenied, IOError, or
// InvalidArgument for a file that is not regular or is too large.
Result<std::string> ReadRegularFile(const std::string& path, std::size_t limit,
                                    mode_t* mode = nullptr);

}  // namespace modelreg
