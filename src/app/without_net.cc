// `modelreg` without the HTTP layer (app/net_layer.h): the commands and the
// client calls that need it run `modelreg-net` in place of this process.
// Linked only into that executable; `modelreg-net` and the tests link the
// real ones (serve_commands.cc, loader_commands.cc, cache_commands.cc,
// write_target.cc, client/remote.cc).
#include <limits.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "app/cache_commands.h"
#include "app/cli_errors.h"
#include "app/loader_commands.h"
#include "app/replication_commands.h"
#include "app/net_layer.h"
#include "app/serve_commands.h"
#include "app/write_target.h"
#include "client/remote.h"

namespace modelreg::app {

Status EnsureNetLayer() {
  char self[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n <= 0) {
    return Status::Internal(std::string("cannot find this executable (/proc/self/exe): ") +
                            std::strerror(errno));
  }
  std::string path(self, static_cast<std::size_t>(n));
  path = path.substr(0, path.rfind('/') + 1) + "modelreg-net";
  char** argv = RememberedArguments();
  if (argv == nullptr || argv[0] == nullptr) {
    return Status::Internal("the command line was not kept for modelreg-net");
  }
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
  char* const own_name = argv[0];
  argv[0] = path.data();
  execv(path.c_str(), argv);
  const int error = errno;
  argv[0] = own_name;  // `path` ends with this function
  return Status::Internal("this command needs the HTTP layer, " + path + ", which cannot run: " +
                          std::strerror(error));
}

Status RunServe(const Globals&, const ServeOptions&, std::ostream&) { return EnsureNetLayer(); }
Status RunTokenIssue(const Globals&, const TokenOptions&, std::ostream&) {
  return EnsureNetLayer();
}
Status RunConsumers(const Globals&, const std::string&, std::ostream&) { return EnsureNetLayer(); }
Status RunWatch(const Globals&, const WatchOptions&, std::ostream&) { return EnsureNetLayer(); }
Status RunCacheStats(const Globals&, const CacheCliOptions&, std::ostream&) {
  return EnsureNetLayer();
}
Status RunCacheGc(const Globals&, const CacheCliOptions&, std::ostream&) {
  return EnsureNetLayer();
}
Status RunCachePurge(const Globals&, const CacheCliOptions&, std::ostream&) {
  return EnsureNetLayer();
}
Status RunReplicationEnable(const Globals&, const ReplicationOptions&, std::ostream&) {
  return EnsureNetLayer();
}
Status RunReplicationStatus(const Globals&, std::ostream&) { return EnsureNetLayer(); }
Status RunReplicationDisable(const Globals&, std::ostream&) { return EnsureNetLayer(); }
Status RunFollow(const Globals&, const ReplicationOptions&, std::ostream&) {
  return EnsureNetLayer();
}
Status RunPromoteFollower(const Globals&, const ReplicationOptions&, std::ostream&) {
  return EnsureNetLayer();
}

// Writes stay in this process unless a server is involved (write_target.cc
// says the same stale-file warning).
Result<std::optional<client::RemoteRegistry>> WriteTarget(const Globals& g, std::string_view) {
  std::string stale;
  if (g.url.empty() && !client::ReadServerFile(g.root, &stale)) {
    if (!stale.empty()) {
      ReportNotice("modelreg", g.json, "warning", stale + "; ignoring it and writing directly",
                   std::cerr);
    }
    return std::optional<client::RemoteRegistry>();
  }
  return Err(EnsureNetLayer());
}

}  // namespace modelreg::app

namespace modelreg::client {

// Never constructed here: WriteTarget above hands no RemoteRegistry out.
RemoteRegistry::RemoteRegistry(std::string url, std::string token)
    : url_(std::move(url)), token_(std::move(token)) {}
RemoteRegistry::~RemoteRegistry() = default;

namespace {
Status NoHttp() { return Status::Internal("this executable has no HTTP layer (modelreg-net has)"); }
}  // namespace

Result<nlohmann::json> RemoteRegistry::Post(const std::string&, const nlohmann::json&) {
  return Err(NoHttp());
}
Result<nlohmann::json> RemoteRegistry::Get(const std::string&) { return Err(NoHttp()); }
Result<nlohmann::json> RemoteRegistry::Register(const std::string&, const std::string&,
                                                const std::string&,
                                                const std::optional<std::string>&) {
  return Err(NoHttp());
}

}  // namespace modelreg::client
