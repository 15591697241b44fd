#include "client/server_file.h"

#include <signal.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "common/json_input.h"

namespace modelreg::client {

namespace {
namespace fs = std::filesystem;
using nlohmann::json;

constexpr char kServerFile[] = "server.json";
}  // namespace

std::string StaleServerFile(const std::string& root, const std::string& why) {
  return (fs::path(root) / kServerFile).string() + " is stale (" + why + ")";
}

std::optional<ServerInfo> ReadServerFile(const std::string& root, std::string* stale) {
  std::ifstream in(fs::path(root) / kServerFile);
  if (!in) return std::nullopt;
  std::stringstream ss;
  ss << in.rdbuf();
  const json j = ParseJsonOrDiscarded(ss.str());
  if (!j.is_object() || !j.contains("url") || !j["url"].is_string() || !j.contains("pid") ||
      !j["pid"].is_number_integer()) {
    if (stale != nullptr) *stale = StaleServerFile(root, "it does not hold a url and a pid");
    return std::nullopt;
  }
  ServerInfo info{j["url"].get<std::string>(), j["pid"].get<long>()};
  if (info.pid <= 0 || kill(static_cast<pid_t>(info.pid), 0) != 0) {
    if (stale != nullptr) {
      *stale = StaleServerFile(root, "its pid " + std::to_string(info.pid) + " is not alive");
    }
    return std::nullopt;
  }
  return info;
}

Status AnnounceServer(const std::string& root, const ServerInfo& info) {
  return artifacts::WriteFileAtomic((fs::path(root) / kServerFile).string(),
                                    json{{"url", info.url}, {"pid", info.pid}}.dump() + "\n");
}

void WithdrawServer(const std::string& root) {
  std::error_code ec;
  fs::remove(fs::path(root) / kServerFile, ec);
}

}  // namespace modelreg::client
