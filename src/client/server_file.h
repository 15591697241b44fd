// <root>/server.json: where a running `modelreg serve` announces itself
// (docs/api.md, "Writes while a server runs"). Files and a pid check only,
// no HTTP: the lean `modelreg` (docs/performance.md, "Cold process") reads
// it to decide whether a command needs the HTTP layer (`modelreg-net`).
#pragma once

#include <optional>
#include <string>

#include "common/status.h"

namespace modelreg::client {

// What <root>/server.json says about a running server.
struct ServerInfo {
  std::string url;
  long pid = 0;
};

// The file's url and pid when it exists, holds both and that pid is alive;
// otherwise nullopt, with `stale` (if given) saying why when the file
// exists. Whether a modelreg server answers at the url is FindServer's
// question (client/remote.h).
std::optional<ServerInfo> ReadServerFile(const std::string& root, std::string* stale = nullptr);
// "<root>/server.json is stale (WHY)".
std::string StaleServerFile(const std::string& root, const std::string& why);
// Writes / removes <root>/server.json (the server does this).
Status AnnounceServer(const std::string& root, const ServerInfo& info);
void WithdrawServer(const std::string& root);

}  // namespace modelreg::client
