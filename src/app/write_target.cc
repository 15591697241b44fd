#include "app/write_target.h"

#include <iostream>
#include <string>

#include "app/cli_errors.h"
#include "auth/token.h"

namespace modelreg::app {

Result<std::optional<client::RemoteRegistry>> WriteTarget(const Globals& g,
                                                          std::string_view scope) {
  std::string url = g.url;
  if (url.empty()) {
    // A server counts only if it answers at the address server.json
    // records, as the process server.json names: a pid reused by an
    // unrelated process or a dead address is a stale file.
    std::string stale;
    auto info = client::FindServer(g.root, &stale);
    if (!info) {
      if (!stale.empty()) {
        Notify(g, "warning", stale + "; ignoring it and writing directly");
      }
      return std::optional<client::RemoteRegistry>();
    }
    if (g.token.empty()) {
      const std::string s(scope);
      return Err(Status::Busy("the registry " + g.root + " is held by `modelreg serve` (pid " +
                              std::to_string(info->pid) + ") at " + info->url +
                              "; set MODELREG_TOKEN to a " + s +
                              " token (`modelreg token issue --sub NAME --scope " + s +
                              "` where the server's secret is) to send this command through "
                              "it, or stop the server"));
    }
    url = info->url;
  }
  if (g.token.empty()) {
    return Err(Status::InvalidArgument("--url/MODELREG_URL needs a bearer token in MODELREG_TOKEN"));
  }
  if (g.actor_given) {
    // The server records the verified subject of the token, never a name
    // the client asserts: say so rather than drop --actor silently.
    const std::string sub = auth::UnverifiedSubject(g.token);
    if (sub != g.actor) {
      Notify(g, "note",
                   "this command goes through the server at " + url +
                       ", which records the token's subject '" + sub + "' as the actor, not '" +
                       g.actor + "' (--actor/MODELREG_ACTOR)");
    }
  }
  return std::optional<client::RemoteRegistry>(client::RemoteRegistry(url, g.token));
}

}  // namespace modelreg::app
