// A client of the HTTP API (docs/api.md) for the CLI: while `modelreg
// serve` holds a registry (RocksDB admits one writing process), write
// commands are sent to it instead.
// Thread-safety: one RemoteRegistry per thread.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "client/server_file.h"
#include "common/status.h"

namespace modelreg::client {

// The server announced in `root`: its file exists, its process is alive,
// and a modelreg server answers GET /healthz at its url (within about 3 s)
// reporting that same pid. Otherwise nullopt: no file, or a stale one (a
// killed server; its pid reused by an unrelated process; nothing answering
// at the address), in which case `stale`, if given, says so and why,
// naming the file.
std::optional<ServerInfo> FindServer(const std::string& root, std::string* stale = nullptr);

class RemoteRegistry {
 public:
  // `url`: http(s)://host:port; `token`: a bearer token.
  RemoteRegistry(std::string url, std::string token);
  ~RemoteRegistry();

  // POST path with a JSON body; the JSON reply, or the server's error as a
  // Status with the same code (IOError when the server cannot be reached).
  Result<nlohmann::json> Post(const std::string& path, const nlohmann::json& body);
  Result<nlohmann::json> Get(const std::string& path);
  // Streams `artifact_path` as a multipart upload (POST
  // /api/v1/models/TYPE/VERSION) with optional metadata JSON.
  Result<nlohmann::json> Register(const std::string& type, const std::string& version,
                                  const std::string& artifact_path,
                                  const std::optional<std::string>& metadata_json);

  const std::string& url() const { return url_; }

 private:
  std::string url_;
  std::string token_;
};

}  // namespace modelreg::client
