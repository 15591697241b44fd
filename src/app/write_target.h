// Where a command that changes the registry runs: in this process (it
// opens the registry), or in the `modelreg serve` that holds it (RocksDB
// admits one writing process), reached over the HTTP API with the bearer
// token in MODELREG_TOKEN (docs/api.md, "Writes while a server runs").
#pragma once

#include <optional>
#include <string_view>

#include "app/registry_commands.h"
#include "client/remote.h"
#include "common/status.h"

namespace modelreg::app {

// nullopt = this process opens the registry; a remote when --url is given
// or a live `modelreg serve` holds the registry; Busy when a server holds
// it and there is no token (the message says how to get one with `scope`).
// When the write goes to a server and the actor given with --actor or
// MODELREG_ACTOR differs from the token's subject, a note on stderr says
// that the server records the subject instead.
Result<std::optional<client::RemoteRegistry>> WriteTarget(const Globals& g,
                                                          std::string_view scope = "model:write");

}  // namespace modelreg::app
