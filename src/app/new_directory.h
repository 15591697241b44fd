// Directories that appear all at once: import, materialize and backup
// restore build a whole registry in a staging directory and publish it by
// rename only once it is complete, verified and fsynced. Killed or failed
// midway, the target is never half a registry.
#pragma once

#include <filesystem>
#include <functional>
#include <string>

#include "common/status.h"

namespace modelreg::app {

// `path` without trailing separators: "new/" is the directory "new".
std::filesystem::path WithoutTrailingSlash(const std::string& path);

// AlreadyExists ("<target> exists and is not an empty directory; <hint>")
// unless `target` is absent or an empty directory.
Status CheckNewDirectory(const std::string& target, const std::string& hint);

// Creates `target` (absent, or an existing empty directory such as a mount
// point) with what `build` writes into the directory it is given: a
// staging directory beside `target` (inside it when it exists). After a
// successful build the staging tree is fsynced and renamed into place
// (RENAME_NOREPLACE: someone else's directory that appeared meanwhile is
// never replaced). On any failure the staging directory is removed and
// `target` is left as it was. `doing` names the operation in messages
// ("importing").
Status CreateAtomically(const std::string& target, const std::string& hint,
                        const std::string& doing,
                        const std::function<Status(const std::string& staging)>& build);

}  // namespace modelreg::app
