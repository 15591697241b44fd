#include "client/remote.h"

#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include <httplib.h>

#include "artifacts/artifact_store.h"
#include "common/json_input.h"

namespace modelreg::client {

namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// The server's JSON error as a Status with the same code.
Status FromReply(const httplib::Result& r, const std::string& url) {
  if (!r) {
    return Status::IOError("cannot reach the modelreg server at " + url + " (" +
                           httplib::to_string(r.error()) + ")");
  }
  const json body = ParseJsonOrDiscarded(r->body);
  std::string code = "internal", message = "HTTP " + std::to_string(r->status);
  if (body.is_object() && body.contains("error") && body["error"].is_object()) {
    const json& e = body["error"];
    if (e.contains("code") && e["code"].is_string()) code = e["code"];
    if (e.contains("message") && e["message"].is_string()) message = e["message"];
  }
  if (r->status == 401 || r->status == 403) {
    return Status::PermissionDenied("the server at " + url + " refused the token: " + message);
  }
  if (r->status == 507) return Status::DiskFull(message);  // io_error, exit 6
  for (Code c : {Code::kInvalidArgument, Code::kNotFound, Code::kAlreadyExists, Code::kConflict,
                 Code::kFailedPrecondition, Code::kCorruption, Code::kIOError, Code::kBusy,
                 Code::kRejected, Code::kInternal, Code::kPermissionDenied}) {
    if (CodeName(c) == code) return Status(c, message);
  }
  return Status::Internal(message);
}

Result<json> Reply(const httplib::Result& r, const std::string& url) {
  if (!r || r->status < 200 || r->status >= 300) return Err(FromReply(r, url));
  json body = ParseJsonOrDiscarded(r->body);
  if (body.is_discarded()) return Err(Status::Internal("the server at " + url + " sent no JSON"));
  return body;
}

std::unique_ptr<httplib::Client> Connect(const std::string& url, const std::string& token) {
  auto c = std::make_unique<httplib::Client>(url);
  c->set_bearer_token_auth(token);
  c->set_connection_timeout(5, 0);
  c->set_tcp_nodelay(true);
  c->set_read_timeout(300, 0);  // a promotion may run a validator
  c->set_write_timeout(300, 0);
  return c;
}

// Does the modelreg server of `info` answer at its url? A short GET
// /healthz that must report the same pid; otherwise `why` says what did.
bool Answers(const ServerInfo& info, std::string* why) {
  const std::string who = "pid " + std::to_string(info.pid) + " is alive, but ";
  httplib::Client c(info.url);
  if (!c.is_valid()) {
    *why = "its url '" + info.url + "' is not an http(s)://host:port address";
    return false;
  }
  c.set_connection_timeout(1, 0);
  c.set_read_timeout(2, 0);
  c.set_write_timeout(2, 0);
  auto r = c.Get("/healthz");
  if (!r) {
    *why = who + "no modelreg server answers at " + info.url + " (" +
           httplib::to_string(r.error()) + "): the pid now belongs to another process";
    return false;
  }
  // A small JSON object; anything else is not our server.
  const json j = r->status == 200 && r->body.size() <= 4096 ? ParseJsonOrDiscarded(r->body)
                                                            : json();
  if (!j.is_object() || !j.contains("pid") || !j["pid"].is_number_integer() ||
      j["pid"].get<long>() != info.pid) {
    *why = who + "what answers at " + info.url + " (HTTP " + std::to_string(r->status) +
           ") is not the modelreg server of that pid";
    return false;
  }
  return true;
}

}  // namespace

std::optional<ServerInfo> FindServer(const std::string& root, std::string* stale) {
  auto info = ReadServerFile(root, stale);
  if (!info) return std::nullopt;
  if (std::string why; !Answers(*info, &why)) {
    if (stale != nullptr) *stale = StaleServerFile(root, why);
    return std::nullopt;
  }
  return info;
}

RemoteRegistry::RemoteRegistry(std::string url, std::string token)
    : url_(std::move(url)), token_(std::move(token)) {}
RemoteRegistry::~RemoteRegistry() = default;

Result<json> RemoteRegistry::Post(const std::string& path, const json& body) {
  auto c = Connect(url_, token_);
  return Reply(c->Post(path, body.dump(), "application/json"), url_);
}

Result<json> RemoteRegistry::Get(const std::string& path) {
  auto c = Connect(url_, token_);
  return Reply(c->Get(path), url_);
}

Result<json> RemoteRegistry::Register(const std::string& type, const std::string& version,
                                      const std::string& artifact_path,
                                      const std::optional<std::string>& metadata_json) {
  auto file = std::make_shared<std::ifstream>(artifact_path, std::ios::binary);
  if (!*file) return Err(Status::NotFound("artifact " + artifact_path + " does not exist"));
  httplib::MultipartFormDataItems items;
  if (metadata_json) items.push_back({"metadata", *metadata_json, "", "application/json"});
  httplib::MultipartFormDataProviderItems providers;
  providers.push_back(
      {"artifact",
       [file](std::size_t, httplib::DataSink& sink) {
         char buf[1 << 16];
         file->read(buf, sizeof buf);
         if (file->bad()) return false;  // a read error: abort, never a short upload
         if (file->gcount() > 0 && !sink.write(buf, static_cast<std::size_t>(file->gcount()))) {
           return false;
         }
         if (file->eof()) sink.done();
         return true;
       },
       fs::path(artifact_path).filename().string(), "application/octet-stream"});
  auto c = Connect(url_, token_);
  return Reply(c->Post("/api/v1/models/" + type + "/" + version, httplib::Headers{}, items,
                       providers),
               url_);
}

}  // namespace modelreg::client
