// The HTTP API against a real server on 127.0.0.1 (a random port), a real
// registry in a temporary directory and a real HTTP client (cpp-httplib).
#include <httplib.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "auth/token.h"
#include "common/sha256.h"
#include "query/query.h"
#include "note/note.h"
#include "proofs/document.h"
#include "proofs/publisher.h"
#include "registry/registry.h"
#include "server/api_server.h"
#include "server/integrity.h"
#include "support/child.h"
#include "support/openapi.h"
#include "support/raw_http.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using registry::Registry;
using Steady = std::chrono::steady_clock;

const std::string kSecret = "0123456789abcdef0123456789abcdef-test-secret";

std::string Issue(const std::set<std::string>& scopes, const std::string& sub = "alice",
                  std::chrono::seconds ttl = std::chrono::seconds(600),
                  const Clock* clock = &SystemClock::Instance(), const std::string& secret = kSecret,
                  const std::string& audience = "") {
  auth::IssueOptions o;
  o.subject = sub;
  o.scopes = scopes;
  o.ttl = ttl;
  o.clock = clock;
  o.audience = audience;
  auto t = auth::IssueHs256(secret, o);
  EXPECT_TRUE(t) << t.error().ToString();
  return t ? *t : std::string();
}

std::string B64Url(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<std::size_t>(n));
  for (char& c : out) c = c == '+' ? '-' : c == '/' ? '_' : c;
  while (!out.empty() && out.back() == '=') out.pop_back();
  return out;
}

// A key pair as PEM strings (public, private).
std::pair<std::string, std::string> KeyPair(bool rsa) {
  EVP_PKEY* key = rsa ? EVP_RSA_gen(2048) : EVP_EC_gen("P-256");
  auto pem = [key](bool priv) {
    BIO* bio = BIO_new(BIO_s_mem());
    if (priv) {
      PEM_write_bio_PrivateKey(bio, key, nullptr, nullptr, 0, nullptr, nullptr);
    } else {
      PEM_write_bio_PUBKEY(bio, key);
    }
    char* data = nullptr;
    const long len = BIO_get_mem_data(bio, &data);
    std::string out(data, static_cast<std::size_t>(len));
    BIO_free(bio);
    return out;
  };
  auto out = std::make_pair(pem(false), pem(true));
  EVP_PKEY_free(key);
  return out;
}

// A token signed with libjwt directly (any algorithm and key).
std::string SignWith(jwt_alg_t alg, const std::string& key, const std::string& scope) {
  jwt_t* j = nullptr;
  jwt_new(&j);
  const long now = static_cast<long>(std::time(nullptr));
  jwt_add_grant(j, "sub", "mallory");
  jwt_add_grant(j, "scope", scope.c_str());
  jwt_add_grant_int(j, "exp", now + 600);
  jwt_set_alg(j, alg, reinterpret_cast<const unsigned char*>(key.data()), static_cast<int>(key.size()));
  char* s = jwt_encode_str(j);
  std::string out = s == nullptr ? std::string() : s;
  std::free(s);
  jwt_free(j);
  return out;
}

class HttpApi : public ::testing::Test {
 protected:
  void SetUp() override { Start(auth::VerifierConfig{kSecret, "", "", "", true, &SystemClock::Instance()}); }
  void TearDown() override { StopServer(); }

  void Start(auth::VerifierConfig config, server::ServerOptions so = {}) {
    StopServer();
    if (!reg_) {
      fs::create_directories(root_);
      std::ofstream(root_ + "/policy.toml")
          << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
      registry::RegistryOptions ro;
      ro.root = root_;
      ro.create_if_missing = true;
      auto r = Registry::Open(ro);
      ASSERT_TRUE(r) << r.error().ToString();
      reg_ = std::move(*r);
    }
    auto verifier = auth::TokenVerifier::Create(std::move(config));
    ASSERT_TRUE(verifier) << verifier.error().ToString();
    so.port = 0;
    auto srv = server::ApiServer::Create(*reg_, std::move(*verifier), so);
    ASSERT_TRUE(srv) << srv.error().ToString();
    server_ = std::move(*srv);
    ASSERT_TRUE(server_->Bind().ok());
    serving_ = std::thread([this] { served_ = server_->Serve(); });
    client_ = std::make_unique<httplib::Client>("127.0.0.1", server_->port());
    client_->set_read_timeout(20, 0);
    // Wait until it answers.
    for (int i = 0; i < 100; ++i) {
      if (auto r = client_->Get("/healthz"); r && r->status == 200) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }

  void StopServer() {
    if (server_) {
      server_->Stop();
      serving_.join();
      EXPECT_TRUE(served_.ok()) << served_.ToString();
      server_.reset();
    }
  }

  httplib::Headers Bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
  }
  httplib::Headers Read() { return Bearer(Issue({auth::kScopeRead})); }
  httplib::Headers Write() { return Bearer(Issue({auth::kScopeWrite})); }
  httplib::Headers Admin() { return Bearer(Issue({auth::kScopeAdmin})); }

  static json Body(const httplib::Result& r) {
    EXPECT_TRUE(r) << httplib::to_string(r.error());
    if (!r) return json();
    json j = json::parse(r->body, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r->body;
    return j;
  }
  static std::string ErrorCode(const httplib::Result& r) {
    const json j = Body(r);
    return j.is_object() && j.contains("error") ? j["error"].value("code", "") : std::string();
  }

  httplib::Result Upload(const std::string& type, const std::string& version,
                         const std::string& bytes, const std::string& metadata = "",
                         const std::string& filename = "model.pkl",
                         const httplib::Headers* headers = nullptr) {
    httplib::MultipartFormDataItems items{{"artifact", bytes, filename, "application/octet-stream"}};
    if (!metadata.empty()) items.push_back({"metadata", metadata, "", "application/json"});
    const httplib::Headers h = headers != nullptr ? *headers : Write();
    return client_->Post("/api/v1/models/" + type + "/" + version, h, items);
  }

  void MustUpload(const std::string& type, const std::string& version) {
    auto r = Upload(type, version, "weights of " + type + " " + version,
                    R"({"metrics": {"ic": 0.05, "sharpe": 1.2}, "dataset_version_ids": {"crsp": "v1"}})");
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 201) << r->body;
  }

  httplib::Result PostJson(const std::string& path, const json& body, const httplib::Headers& h) {
    return client_->Post(path, h, body.dump(), "application/json");
  }

  // Waits (up to 20 s) until at least `n` GET /api/v1/events requests are
  // inside the server's handler, as its /metrics gauge reports: a poll
  // counted there has read the head it waits past. Its own client, so it
  // may run beside a request on client_.
  bool AwaitLongPolls(int n) {
    httplib::Client c("127.0.0.1", server_->port());
    const std::string gauge = "\nmodelreg_http_long_polls ";
    const auto until = Steady::now() + std::chrono::seconds(20);
    while (Steady::now() < until) {
      if (auto r = c.Get("/metrics"); r && r->status == 200) {
        const std::size_t at = r->body.find(gauge);
        if (at != std::string::npos && std::stoi(r->body.substr(at + gauge.size())) >= n) {
          return true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
  std::unique_ptr<Registry> reg_;
  std::unique_ptr<server::ApiServer> server_;
  std::thread serving_;
  Status served_;
  std::unique_ptr<httplib::Client> client_;
};

TEST_F(HttpApi, WeeklyWorkflowThroughEveryEndpoint) {
  EXPECT_EQ(Body(client_->Get("/healthz"))["status"], "ok");
  auto none = client_->Get("/api/v1/models/risk_model/current", Read());
  EXPECT_EQ(none->status, 404);
  EXPECT_EQ(ErrorCode(none), "not_found");

  MustUpload("risk_model", "v1.0.0");
  MustUpload("risk_model", "v1.1.0");
  // Same bytes and metadata again: idempotent, 200.
  auto again = Upload("risk_model", "v1.0.0", "weights of risk_model v1.0.0",
                      R"({"metrics": {"ic": 0.05, "sharpe": 1.2}, "dataset_version_ids": {"crsp": "v1"}})");
  EXPECT_EQ(again->status, 200) << again->body;
  EXPECT_TRUE(Body(again)["already_registered"].get<bool>());
  // Different bytes: 409.
  auto conflict = Upload("risk_model", "v1.0.0", "other bytes");
  EXPECT_EQ(conflict->status, 409) << conflict->body;

  auto list = Body(client_->Get("/api/v1/models/risk_model", Read()));
  ASSERT_EQ(list["versions"].size(), 2u);
  EXPECT_EQ(list["versions"][0]["status"], "staged");
  const std::string before_promotion = Body(client_->Get("/healthz"))["head_seq"].dump();

  auto promoted = PostJson("/api/v1/models/risk_model/v1.0.0/promote", {{"reason", "weekly"}}, Write());
  ASSERT_EQ(promoted->status, 200) << promoted->body;
  const json current = Body(client_->Get("/api/v1/models/risk_model/current", Read()));
  EXPECT_EQ(current["production"], "v1.0.0");
  EXPECT_EQ(current["promotion"]["actor"], "alice");  // the token's subject
  EXPECT_EQ(current["promotion"]["reason"], "weekly");
  const std::string t_first = current["promotion"]["at"];

  // Stale expect_current: 409, nothing changes.
  auto stale = PostJson("/api/v1/models/risk_model/v1.1.0/promote", {{"expect_current", "none"}}, Write());
  EXPECT_EQ(stale->status, 409) << stale->body;
  // The API names its own field, not the CLI's flag.
  const std::string stale_message = Body(stale)["error"]["message"];
  EXPECT_NE(stale_message.find("not none as expected (expect_current); nothing changed"), std::string::npos)
      << stale_message;
  EXPECT_EQ(stale_message.find("--expect-current"), std::string::npos) << stale_message;
  ASSERT_EQ(PostJson("/api/v1/models/risk_model/v1.1.0/promote", {{"expect_current", "v1.0.0"}}, Write())->status, 200);

  auto show = Body(client_->Get("/api/v1/models/risk_model/v1.0.0", Read()));
  EXPECT_EQ(show["status"], "archived");
  EXPECT_EQ(show["registration"]["metrics"]["ic"], 0.05);
  auto show_then = Body(client_->Get("/api/v1/models/risk_model/v1.0.0?at=" + t_first, Read()));
  EXPECT_EQ(show_then["status"], "production");
  auto list_then = Body(client_->Get("/api/v1/models/risk_model?status=production&at=" + t_first, Read()));
  ASSERT_EQ(list_then["versions"].size(), 1u);
  EXPECT_EQ(list_then["versions"][0]["version"], "v1.0.0");
  auto audit = Body(client_->Get("/api/v1/audit?at=" + t_first, Read()));
  ASSERT_EQ(audit["models"].size(), 4u);
  for (const json& m : audit["models"]) {
    if (m["model_type"] == "risk_model") {
      EXPECT_EQ(m["production"], "v1.0.0");
    }
  }
  auto history = Body(client_->Get("/api/v1/models/risk_model/history", Read()));
  ASSERT_EQ(history["history"].size(), 2u);
  EXPECT_EQ(history["history"][1]["replaced_version"], "v1.0.0");

  // Download: the bytes and their SHA-256.
  auto art = client_->Get("/api/v1/models/risk_model/v1.1.0/artifact", Read());
  ASSERT_EQ(art->status, 200);
  EXPECT_EQ(art->body, "weights of risk_model v1.1.0");
  EXPECT_EQ(art->get_header_value("X-Checksum-Sha256"), ToHex(Sha256::Of(art->body)));
  httplib::Headers ranged = Read();
  ranged.emplace("Range", "bytes=0-6");
  auto part = client_->Get("/api/v1/models/risk_model/v1.1.0/artifact", ranged);
  ASSERT_EQ(part->status, 206);
  EXPECT_EQ(part->body, "weights");

  auto valid = Body(PostJson("/api/v1/models/risk_model/v1.1.0/validate", json::object(), Write()));
  EXPECT_TRUE(valid["ok"].get<bool>());
  auto rolled = PostJson("/api/v1/models/risk_model/rollback", {{"reason", "losing money"}, {"fail_current", true}}, Write());
  ASSERT_EQ(rolled->status, 200) << rolled->body;
  EXPECT_EQ(Body(client_->Get("/api/v1/models/risk_model/current", Read()))["production"], "v1.0.0");
  EXPECT_EQ(Body(client_->Get("/api/v1/models/risk_model/v1.1.0", Read()))["status"], "failed");
  MustUpload("alpha_weights", "v0.1.0");
  EXPECT_EQ(PostJson("/api/v1/models/alpha_weights/v0.1.0/archive", json::object(), Write())->status, 200);
  EXPECT_EQ(PostJson("/api/v1/models/alpha_weights/v0.1.0/fail", {{"reason", "bad"}}, Write())->status, 200);
  EXPECT_EQ(PostJson("/api/v1/models/alpha_weights/v0.1.0/promote", json::object(), Write())->status, 409);

  // Events after a sequence number, and metrics.
  auto events = Body(client_->Get("/api/v1/events?after=" + before_promotion, Read()));
  ASSERT_FALSE(events["events"].empty());
  EXPECT_EQ(events["events"][0]["type"], "ModelPromoted");
  auto metrics = client_->Get("/metrics");
  ASSERT_EQ(metrics->status, 200);
  EXPECT_NE(metrics->body.find("modelreg_http_requests_total{route=\"POST /api/v1/models/{type}/{version}/promote\",code=\"200\"}"),
            std::string::npos);
  EXPECT_NE(metrics->body.find("modelreg_log_head_seq " + std::to_string(modelreg::query::Query(*reg_).Head()->seq)),
            std::string::npos);
  EXPECT_NE(metrics->body.find("modelreg_http_request_duration_seconds_bucket"), std::string::npos);
  // A streamed download is counted with the status the client got.
  const std::string artifact_route = "modelreg_http_requests_total{route=\"GET /api/v1/models/{type}/{version}/artifact\"";
  EXPECT_NE(metrics->body.find(artifact_route + ",code=\"200\"} 1\n"), std::string::npos) << metrics->body;
  EXPECT_NE(metrics->body.find(artifact_route + ",code=\"206\"} 1\n"), std::string::npos) << metrics->body;
  EXPECT_EQ(metrics->body.find("code=\"-1\""), std::string::npos) << metrics->body;
  auto verify = reg_->Verify();
  ASSERT_TRUE(verify);
  EXPECT_TRUE(verify->chain.ok && verify->projection_ok);
}

TEST_F(HttpApi, ListHistoryAndEventsArePaged) {
  for (const char* v : {"v1.0.0", "v1.1.0", "v1.2.0", "v1.3.0", "v1.4.0"}) MustUpload("risk_model", v);
  for (const char* v : {"v1.0.0", "v1.1.0", "v1.2.0"}) {
    ASSERT_EQ(PostJson(std::string("/api/v1/models/risk_model/") + v + "/promote", json::object(), Write())->status, 200);
  }
  // Follows "next" from `first` until it is null; every page's rows.
  auto pages = [&](const std::string& first, const char* rows, std::vector<std::size_t>* sizes,
                   const std::string& cursor = "") {
    json all = json::array();
    std::string path = first + (cursor.empty() ? "" : "&cursor=" + cursor);
    for (int i = 0; i < 20; ++i) {
      const json page = Body(client_->Get(path, Read()));
      EXPECT_TRUE(page.contains("next")) << page.dump();
      sizes->push_back(page[rows].size());
      for (const json& r : page[rows]) all.push_back(r);
      if (page["next"].is_null()) break;
      const std::string sep = first.find('?') == std::string::npos ? "?" : "&";
      path = first + sep + "cursor=" + page["next"].get<std::string>();
    }
    return all;
  };
  // A listing in pages of 2 is the whole listing; a write between pages
  // does not shift them (they answer as of the first page).
  std::vector<std::size_t> sizes;
  const json whole = Body(client_->Get("/api/v1/models/risk_model", Read()))["versions"];
  ASSERT_EQ(whole.size(), 5u);
  const json first = Body(client_->Get("/api/v1/models/risk_model?limit=2", Read()));
  ASSERT_EQ(first["versions"].size(), 2u);
  MustUpload("risk_model", "v0.9.0");  // sorts first: would shift offsets
  sizes.clear();
  json rest = pages("/api/v1/models/risk_model?limit=2", "versions", &sizes, first["next"].get<std::string>());
  EXPECT_EQ(sizes, (std::vector<std::size_t>{2, 1}));  // the last page is short, its next null
  json joined = first["versions"];
  for (const json& r : rest) joined.push_back(r);
  EXPECT_EQ(joined, whole);
  // Exactly a page's worth: one page, next null.
  const json exact = Body(client_->Get("/api/v1/models/risk_model?limit=6", Read()));
  EXPECT_EQ(exact["versions"].size(), 6u);
  EXPECT_TRUE(exact["next"].is_null());

  // History: 3 promotions, pages of 2 then 1.
  sizes.clear();
  const json history = pages("/api/v1/models/risk_model/history?limit=2", "history", &sizes);
  EXPECT_EQ(sizes, (std::vector<std::size_t>{2, 1}));
  EXPECT_EQ(history, Body(client_->Get("/api/v1/models/risk_model/history", Read()))["history"]);

  // Events: every event once, in order.
  const std::uint64_t head = query::Query(*reg_).Head()->seq;
  sizes.clear();
  const json evs = pages("/api/v1/events?limit=4", "events", &sizes);
  ASSERT_EQ(evs.size(), head);
  for (std::size_t i = 0; i < evs.size(); ++i) EXPECT_EQ(evs[i]["seq"], i + 1);
  EXPECT_EQ(sizes.back(), head % 4 == 0 ? 4u : head % 4);

  // Bad limits and cursors: 400 naming the rule.
  for (const std::string q : {"/api/v1/models?limit=0", "/api/v1/models/risk_model?limit=1001",
                              "/api/v1/models/risk_model/history?limit=-1", "/api/v1/events?limit=ten"}) {
    auto r = client_->Get(q, Read());
    EXPECT_EQ(r->status, 400) << q;
    EXPECT_NE(r->body.find("limit must be a whole number from 1 to 1000"), std::string::npos) << q << r->body;
  }
  for (const std::string q : {"/api/v1/models?cursor=s3", "/api/v1/models/risk_model/history?cursor=l1-2",
                              "/api/v1/events?cursor=x"}) {
    auto r = client_->Get(q, Read());
    EXPECT_EQ(r->status, 400) << q;
    EXPECT_NE(r->body.find("cursor is not one this server gave"), std::string::npos) << q << r->body;
  }
}

TEST_F(HttpApi, LongPollReturnsAsSoonAsAnEventExists) {
  MustUpload("risk_model", "v1.0.0");
  const Seq head = modelreg::query::Query(*reg_).Head()->seq;
  // Nothing new: waits about `wait` seconds, then returns empty.
  const auto t0 = Steady::now();
  auto empty = Body(client_->Get("/api/v1/events?after=" + std::to_string(head) + "&wait=1", Read()));
  EXPECT_GE(Steady::now() - t0, std::chrono::milliseconds(900));
  EXPECT_TRUE(empty["events"].empty());
  // An append while a poll waits wakes it well before its 10 s.
  std::thread writer([this] {
    EXPECT_TRUE(AwaitLongPolls(1)) << "the poll never reached the server";
    auto r = reg_->Promote("risk_model", "v1.0.0", std::nullopt, false, registry::Actor{"bob", ""});
    EXPECT_TRUE(r);
  });
  const auto t1 = Steady::now();
  auto woke = Body(client_->Get("/api/v1/events?after=" + std::to_string(head) + "&wait=10", Read()));
  const auto took = Steady::now() - t1;
  writer.join();
  EXPECT_LT(took, std::chrono::seconds(5));
  ASSERT_EQ(woke["events"].size(), 1u);
  EXPECT_EQ(woke["events"][0]["seq"], head + 1);
  // Stop() does not wait for a long poll.
  std::thread poller([this] {
    httplib::Client c("127.0.0.1", server_->port());
    c.set_read_timeout(20, 0);
    c.Get("/api/v1/events?after=999999&wait=30", Read());
  });
  ASSERT_TRUE(AwaitLongPolls(1)) << "the poll never reached the server";
  const auto t2 = Steady::now();
  StopServer();
  EXPECT_LT(Steady::now() - t2, std::chrono::seconds(5));
  poller.join();
}

TEST_F(HttpApi, LongPollsCannotTakeEveryWorker) {
  server::ServerOptions few;
  few.limits.max_connections = 4;  // at most 2 waiting polls
  Start(auth::VerifierConfig{kSecret, "", "", "", true, &SystemClock::Instance()}, few);
  const auto token = Read();
  std::vector<std::thread> polls;
  for (int i = 0; i < 2; ++i) {
    polls.emplace_back([this, token] {
      httplib::Client c("127.0.0.1", server_->port());
      c.set_read_timeout(20, 0);
      c.Get("/api/v1/events?after=999&wait=3", token);
    });
  }
  // Both are waiting inside the server (3 s each: plenty of time to look).
  ASSERT_TRUE(AwaitLongPolls(2)) << "the two polls never reached the server";
  // A third poll answers at once instead of waiting, and other requests
  // still get a worker.
  const auto t0 = Steady::now();
  auto third = client_->Get("/api/v1/events?after=999&wait=3", token);
  ASSERT_TRUE(third);
  EXPECT_EQ(third->status, 200);
  EXPECT_LT(Steady::now() - t0, std::chrono::milliseconds(1500));
  const auto t1 = Steady::now();
  EXPECT_EQ(client_->Get("/healthz")->status, 200);
  EXPECT_LT(Steady::now() - t1, std::chrono::milliseconds(1500));
  for (auto& t : polls) t.join();
}

TEST_F(HttpApi, TokensThatMustBeRefused) {
  const std::string path = "/api/v1/models/risk_model";
  auto status = [&](const httplib::Headers& h) {
    auto r = client_->Get(path, h);
    EXPECT_TRUE(r);
    return r ? r->status : 0;
  };
  auto no_token = client_->Get(path);
  EXPECT_EQ(no_token->status, 401);
  EXPECT_EQ(ErrorCode(no_token), "unauthenticated");
  EXPECT_EQ(no_token->get_header_value("WWW-Authenticate"), "Bearer");
  EXPECT_EQ(status({{"Authorization", "Basic YWxpY2U6cHc="}}), 401);
  EXPECT_EQ(status(Bearer("not.a.jwt")), 401);
  EXPECT_EQ(status(Bearer(std::string(7000, 'a'))), 401);
  EXPECT_EQ(status(Bearer(std::string(9000, 'a'))), 401)
      << "too long for the header line (OverlongHeadersGetClearAnswers)";

  ManualClock past(SystemClock::Instance().NowNs() - 7200LL * 1'000'000'000);
  EXPECT_EQ(status(Bearer(Issue({auth::kScopeRead}, "alice", std::chrono::seconds(60), &past))), 401)
      << "expired";
  ManualClock future(SystemClock::Instance().NowNs() + 7200LL * 1'000'000'000);
  EXPECT_EQ(status(Bearer(Issue({auth::kScopeRead}, "alice", std::chrono::seconds(60000), &future))),
            401)
      << "not yet valid";
  EXPECT_EQ(status(Bearer(Issue({auth::kScopeRead}, "alice", std::chrono::seconds(60),
                                &SystemClock::Instance(), kSecret + "-other"))),
            401)
      << "wrong signature";
  // A signature cut or altered.
  std::string good = Issue({auth::kScopeRead});
  EXPECT_EQ(status(Bearer(good)), 200);
  std::string tampered = good;
  tampered[tampered.size() - 5] = tampered[tampered.size() - 5] == 'A' ? 'B' : 'A';
  EXPECT_EQ(status(Bearer(tampered)), 401);
  // A payload swapped for one with more scopes, signature kept.
  const std::size_t d1 = good.find('.'), d2 = good.rfind('.');
  const std::string admin_payload = B64Url(R"({"sub":"mallory","scope":"model:admin","exp":9999999999})");
  EXPECT_EQ(status(Bearer(good.substr(0, d1 + 1) + admin_payload + good.substr(d2))), 401);
  // alg none, with and without a signature part.
  const std::string none_header = B64Url(R"({"alg":"none","typ":"JWT"})");
  EXPECT_EQ(status(Bearer(none_header + "." + admin_payload + ".")), 401);
  EXPECT_EQ(status(Bearer(none_header + "." + admin_payload + ".AAAA")), 401);
  // No exp at all.
  jwt_t* j = nullptr;
  jwt_new(&j);
  jwt_add_grant(j, "sub", "mallory");
  jwt_add_grant(j, "scope", "model:read");
  jwt_set_alg(j, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(kSecret.data()),
              static_cast<int>(kSecret.size()));
  char* no_exp = jwt_encode_str(j);
  EXPECT_EQ(status(Bearer(no_exp)), 401) << "no exp";
  std::free(no_exp);
  jwt_free(j);
  // Correctly signed, but with a critical header extension nobody here
  // implements (RFC 7515 4.1.11): refused.
  j = nullptr;
  jwt_new(&j);
  jwt_add_grant(j, "sub", "mallory");
  jwt_add_grant(j, "scope", "model:read");
  jwt_add_grant_int(j, "exp", SystemClock::Instance().NowNs() / 1'000'000'000 + 600);
  jwt_add_header(j, "crit", "b64");
  jwt_set_alg(j, JWT_ALG_HS256, reinterpret_cast<const unsigned char*>(kSecret.data()),
              static_cast<int>(kSecret.size()));
  char* crit = jwt_encode_str(j);
  auto crit_reply = client_->Get(path, Bearer(crit));
  ASSERT_TRUE(crit_reply);
  EXPECT_EQ(crit_reply->status, 401) << "crit";
  EXPECT_NE(crit_reply->body.find("crit"), std::string::npos) << crit_reply->body;
  std::free(crit);
  jwt_free(j);

  // A valid token without the scope: 403.
  auto forbidden = PostJson("/api/v1/models/risk_model/v1.0.0/promote", json::object(), Read());
  EXPECT_EQ(forbidden->status, 403);
  EXPECT_EQ(ErrorCode(forbidden), "forbidden");
  EXPECT_EQ(status(Bearer(Issue({}))), 403) << "no scopes";
  // Overriding gates needs model:admin even with model:write.
  MustUpload("risk_model", "v1.0.0");
  auto override_w = PostJson("/api/v1/models/risk_model/v1.0.0/promote",
                             {{"override_gates", true}, {"reason", "emergency"}}, Write());
  EXPECT_EQ(override_w->status, 403) << override_w->body;
  auto override_a = PostJson("/api/v1/models/risk_model/v1.0.0/promote",
                             {{"override_gates", true}, {"reason", "emergency"}}, Admin());
  EXPECT_EQ(override_a->status, 200) << override_a->body;

  // Audience and issuer, when configured.
  auth::VerifierConfig aud{kSecret, "", "", "modelreg", true, &SystemClock::Instance()};
  Start(aud);
  EXPECT_EQ(status(Bearer(Issue({auth::kScopeRead}))), 401) << "no audience";
  EXPECT_EQ(status(Bearer(Issue({auth::kScopeRead}, "alice", std::chrono::seconds(60),
                                &SystemClock::Instance(), kSecret, "someone-else"))),
            401)
      << "wrong audience";
  EXPECT_EQ(status(Bearer(Issue({auth::kScopeRead}, "alice", std::chrono::seconds(60),
                                &SystemClock::Instance(), kSecret, "modelreg"))),
            200);
  auth::VerifierConfig iss{kSecret, "", "https://idp.example", "", true, &SystemClock::Instance()};
  Start(iss);
  EXPECT_EQ(status(Bearer(Issue({auth::kScopeRead}))), 401) << "no issuer";
  auth::IssueOptions o;
  o.subject = "alice";
  o.scopes = {auth::kScopeRead};
  o.issuer = "https://evil.example";
  EXPECT_EQ(status(Bearer(*auth::IssueHs256(kSecret, o))), 401) << "wrong issuer";
  o.issuer = "https://idp.example";
  EXPECT_EQ(status(Bearer(*auth::IssueHs256(kSecret, o))), 200);
}

TEST_F(HttpApi, PublicKeyTokensAndAlgorithmConfusion) {
  for (bool rsa : {true, false}) {
    const auto [pub, priv] = KeyPair(rsa);
    auth::VerifierConfig config;
    config.public_key_pem = pub;
    Start(config);
    const jwt_alg_t alg = rsa ? JWT_ALG_RS256 : JWT_ALG_ES256;
    auto ok = client_->Get("/api/v1/models/risk_model",
                           Bearer(SignWith(alg, priv, "model:read")));
    EXPECT_EQ(ok->status, 200) << (rsa ? "RS256 " : "ES256 ") << ok->body;
    // The public key used as an HMAC secret: the classic confusion.
    auto confused = client_->Get("/api/v1/models/risk_model",
                                 Bearer(SignWith(JWT_ALG_HS256, pub, "model:admin")));
    EXPECT_EQ(confused->status, 401) << confused->body;
    // Signed by another key of the same kind.
    const auto [other_pub, other_priv] = KeyPair(rsa);
    auto stranger = client_->Get("/api/v1/models/risk_model",
                                 Bearer(SignWith(alg, other_priv, "model:read")));
    EXPECT_EQ(stranger->status, 401);
  }
}

TEST_F(HttpApi, BadRequestsGetClearErrorsAndChangeNothing) {
  MustUpload("risk_model", "v1.0.0");
  const Seq head = modelreg::query::Query(*reg_).Head()->seq;
  struct Case {
    std::string method, path, body;
    int status;
  };
  const std::string big(70 * 1024, 'x');
  for (const Case& c : std::vector<Case>{
           {"GET", "/api/v1/models/Risk_Model", "", 400},
           {"GET", "/api/v1/models/-x/current", "", 400},
           {"GET", "/api/v1/models/a.b/v1.0.0", "", 400},
           {"GET", "/api/v1/models/%2E%2E/history", "", 400},
           {"GET", "/api/v1/audit?at=2030-01-01T00:00:00Z&type=Alpha", "", 400},
           {"POST", "/api/v1/models/Alpha/rollback", "{}", 400},
           {"GET", "/api/v1/models/risk_model/v1.0", "", 400},
           {"GET", "/api/v1/models/risk_model/..%2F..%2Fetc/artifact", "", 404},
           {"GET", "/api/v1/models/risk_model/%2E%2E/artifact", "", 400},
           {"GET", "/api/v1/models/../../etc/passwd", "", 404},
           {"GET", "/api/v1/models/risk_model/v9.9.9", "", 404},
           {"GET", "/api/v1/models/risk_model?status=live", "", 400},
           {"GET", "/api/v1/models/risk_model?at=yesterday", "", 400},
           {"GET", "/api/v1/audit", "", 400},
           {"GET", "/api/v1/events?after=-1", "", 400},
           {"GET", "/nope", "", 404},
           {"POST", "/api/v1/models/risk_model/v1.0.0/promote", "{not json", 400},
           {"POST", "/api/v1/models/risk_model/v1.0.0/promote", "[1,2]", 400},
           {"POST", "/api/v1/models/risk_model/v1.0.0/promote", R"({"reason": 5})", 400},
           {"POST", "/api/v1/models/risk_model/v1.0.0/promote", R"({"override_gates": "yes"})", 400},
           {"POST", "/api/v1/models/risk_model/v1.0.0/promote", "{\"reason\": \"" + big + "\"}", 413},
           {"POST", "/api/v1/models/risk_model/v1.0.0/promote", "{\"reason\": \"caf\xe9\"}", 400},
           {"POST", "/api/v1/models/risk_model/v1.0.0/archive", R"({"reason": ["x"]})", 400},
           {"POST", "/api/v1/models/risk_model/../promote", "{}", 400},
       }) {
    auto r = c.method == "GET" ? client_->Get(c.path, Admin())
                               : client_->Post(c.path, Admin(), c.body, "application/json");
    ASSERT_TRUE(r) << c.path;
    EXPECT_EQ(r->status, c.status) << c.method << ' ' << c.path << ": " << r->body;
    const json j = json::parse(r->body, nullptr, false);
    EXPECT_TRUE(j.is_object() && j.contains("error")) << c.path << ": " << r->body;
  }
  // A large body is refused before it is read or any token is checked.
  const std::string huge(200 * 1024, 'x');
  auto no_token_big = client_->Post("/api/v1/models/risk_model/v1.0.0/promote", huge, "application/json");
  ASSERT_TRUE(no_token_big);
  EXPECT_EQ(no_token_big->status, 413);
  EXPECT_EQ(client_->Post("/api/v1/models/risk_model/v1.0.0/promote", Admin(), huge, "application/json")->status,
            413);
  // Uploads: not multipart, a traversal file name, an unknown part, no artifact.
  auto raw = client_->Post("/api/v1/models/risk_model/v2.0.0", Write(), "bytes", "application/octet-stream");
  EXPECT_EQ(raw->status, 400);
  EXPECT_EQ(Upload("risk_model", "v2.0.0", "x", "", "../../evil.sh")->status, 201)
      << "the directory part of an upload name is dropped";
  EXPECT_TRUE(fs::exists(root_ + "/artifacts/risk_model/v2.0.0/evil.sh"));
  EXPECT_EQ(Upload("risk_model", "v2.1.0", "x", "", "metadata.json")->status, 400);
  httplib::MultipartFormDataItems odd{{"weights", "x", "m.pkl", ""}};
  EXPECT_EQ(client_->Post("/api/v1/models/risk_model/v2.1.0", Write(), odd)->status, 400);
  httplib::MultipartFormDataItems meta_only{{"metadata", "{}", "", "application/json"}};
  EXPECT_EQ(client_->Post("/api/v1/models/risk_model/v2.1.0", Write(), meta_only)->status, 400);
  EXPECT_EQ(Upload("risk_model", "v2.1.0", "x", "{\"metrics\": {\"ic\": \"high\"}}")->status, 400);
  EXPECT_EQ(modelreg::query::Query(*reg_).Head()->seq, head + 1);  // only the v2.0.0 registration
  EXPECT_FALSE(fs::exists(root_ + "/artifacts/risk_model/v2.1.0"));
  // Nothing left in the upload area.
  for (const auto& e : fs::directory_iterator(root_ + "/uploads")) ADD_FAILURE() << e.path();
}

// Issue 16 through the API: any name of the grammar in paths, list and
// audit; bad names refused with the grammar; rollback's `to` and `dry_run`.
TEST_F(HttpApi, AnyModelNameAndRollbackOptions) {
  MustUpload("alpha_momentum", "v1.0.0");
  for (const char* v : {"v1.0.0", "v1.1.0", "v1.2.0"}) {
    MustUpload("alpha_value", v);
    ASSERT_EQ(PostJson(std::string("/api/v1/models/alpha_value/") + v + "/promote", json::object(),
                       Write())->status, 200);
  }
  ASSERT_EQ(PostJson("/api/v1/models/alpha_momentum/v1.0.0/promote", json::object(), Write())->status,
            200);
  EXPECT_EQ(Body(client_->Get("/api/v1/models/alpha_momentum/current", Read()))["production"],
            "v1.0.0");
  EXPECT_EQ(Body(client_->Get("/api/v1/models/alpha_value", Read()))["versions"].size(), 3u);
  const json all = Body(client_->Get("/api/v1/models", Read()));
  EXPECT_TRUE(all["model_type"].is_null());
  EXPECT_EQ(all["versions"].size(), 4u);
  const json audit = Body(client_->Get("/api/v1/audit?at=2100-01-01T00:00:00Z", Read()));
  std::vector<std::string> types;
  for (const json& m : audit["models"]) types.push_back(m["model_type"]);
  EXPECT_EQ(types, (std::vector<std::string>{"risk_model", "alpha_weights", "factor_definitions",
                                             "feature_transforms", "alpha_momentum", "alpha_value"}));
  EXPECT_EQ(audit["models"][5]["production"], "v1.2.0");
  const json before = Body(client_->Get("/api/v1/audit?at=2000-01-01T00:00:00Z", Read()));
  EXPECT_EQ(before["models"].size(), 4u) << "no name was registered by then";
  // `now` and relative times as on the CLI; an unencoded '+' gets the hint.
  EXPECT_EQ(Body(client_->Get("/api/v1/audit?at=now", Read()))["models"].size(), 6u);
  EXPECT_EQ(Body(client_->Get("/api/v1/audit?at=-1w", Read()))["models"].size(), 4u);
  // (What the server sees of a raw '+': a space. This client would encode
  // a '+' itself, so the test sends the space.)
  auto plus = client_->Get("/api/v1/audit?at=2025-01-15T11:30:00 02:00", Read());
  ASSERT_TRUE(plus);
  EXPECT_EQ(plus->status, 400);
  EXPECT_NE(plus->body.find("must be encoded as %2B"), std::string::npos) << plus->body;
  EXPECT_EQ(client_->Get("/api/v1/audit?at=2025-01-15T11:30:00%2B02:00", Read())->status, 200);

  const Seq head = modelreg::query::Query(*reg_).Head()->seq;
  auto bad_name = client_->Get("/api/v1/models/Alpha", Read());
  EXPECT_EQ(bad_name->status, 400);
  EXPECT_NE(bad_name->body.find("starting with a letter"), std::string::npos) << bad_name->body;
  EXPECT_EQ(Upload("alpha-", "v1.0.0", "x")->status, 201) << "a valid name";
  // Streamed (chunked, as the CLI uploads), a name with digits and '-' is an
  // upload too, not a JSON body over 64 KiB.
  {
    const std::string body = "--b\r\nContent-Disposition: form-data; name=\"artifact\"; "
                             "filename=\"m.pkl\"\r\nContent-Type: application/octet-stream\r\n"
                             "\r\nweights\r\n--b--\r\n";
    httplib::Headers h = Write();
    auto r = client_->Post(
        "/api/v1/models/alpha2-x/v1.0.0", h,
        [&body](std::size_t, httplib::DataSink& sink) {
          sink.write(body.data(), body.size());
          sink.done();
          return true;
        },
        "multipart/form-data; boundary=b");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 201) << r->body;
  }
  EXPECT_EQ(Upload("Alpha", "v1.0.0", "x")->status, 400);
  EXPECT_EQ(Upload(std::string(65, 'a'), "v1.0.0", "x")->status, 400);
  EXPECT_EQ(modelreg::query::Query(*reg_).Head()->seq, head + 2);

  const std::string rb = "/api/v1/models/alpha_value/rollback";
  const Seq before_rb = modelreg::query::Query(*reg_).Head()->seq;
  auto dry = PostJson(rb, {{"dry_run", true}}, Write());
  ASSERT_EQ(dry->status, 200) << dry->body;
  EXPECT_EQ(Body(dry)["dry_run"], true);
  EXPECT_EQ(Body(dry)["from"], "v1.2.0");
  EXPECT_EQ(Body(dry)["to"], "v1.1.0");
  EXPECT_EQ(Body(dry)["seq"], 0);
  EXPECT_EQ(modelreg::query::Query(*reg_).Head()->seq, before_rb);
  EXPECT_EQ(PostJson(rb, {{"fail_current", true}}, Write())->status, 400) << "no reason";
  EXPECT_EQ(PostJson(rb, {{"to", "v9.9.9"}}, Write())->status, 404);
  EXPECT_EQ(PostJson(rb, {{"to", 5}}, Write())->status, 400);
  EXPECT_EQ(PostJson(rb, {{"dry_run", "yes"}}, Write())->status, 400);
  EXPECT_EQ(modelreg::query::Query(*reg_).Head()->seq, before_rb);
  auto to = PostJson(rb, {{"to", "v1.0.0"}, {"reason", "back to basics"}}, Write());
  ASSERT_EQ(to->status, 200) << to->body;
  EXPECT_EQ(Body(to)["to"], "v1.0.0");
  EXPECT_EQ(Body(to)["seq"], before_rb + 1);
  EXPECT_EQ(Body(client_->Get("/api/v1/models/alpha_value/current", Read()))["production"], "v1.0.0");
  // Nothing earlier than v1.0.0 now: 409.
  EXPECT_EQ(PostJson(rb, json::object(), Write())->status, 409);
}

TEST_F(HttpApi, OversizedUploadIsRefusedWith413) {
  server::ServerOptions small;
  small.max_upload_bytes = 64 * 1024;
  Start(auth::VerifierConfig{kSecret, "", "", "", true, &SystemClock::Instance()}, small);
  const Seq before = modelreg::query::Query(*reg_).Head()->seq;  // the adopted policy.toml
  auto r = Upload("risk_model", "v1.0.0", std::string(200 * 1024, 'w'));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 413) << r->body;
  EXPECT_EQ(modelreg::query::Query(*reg_).Head()->seq, before);
  EXPECT_FALSE(fs::exists(root_ + "/artifacts/risk_model/v1.0.0"));
  EXPECT_EQ(Upload("risk_model", "v1.0.0", std::string(10 * 1024, 'w'))->status, 201);
}

// JSON bodies and the metadata part nest at most 64 levels (docs/api.md): a
// 100,000-deep metadata part used to take the server down (stack overflow
// in the JSON library's recursive copy). Both are refused with 400 naming
// the limit; nothing is stored and the server keeps serving.
TEST_F(HttpApi, DeeplyNestedJsonIsRefusedNamingTheLimit) {
  MustUpload("risk_model", "v1.0.0");
  const Seq head = modelreg::query::Query(*reg_).Head()->seq;
  const auto nested = [](std::size_t depth) {
    return std::string(depth, '[') + std::string(depth, ']');
  };
  auto upload = Upload("risk_model", "v2.0.0", "weights",
                       "{\"parameters\": {\"w\": " + nested(100000) + "}}");
  ASSERT_TRUE(upload);
  EXPECT_EQ(upload->status, 400) << upload->body;
  EXPECT_NE(upload->body.find("nests deeper than 64 levels"), std::string::npos) << upload->body;
  auto body = client_->Post("/api/v1/models/risk_model/v1.0.0/promote", Admin(),
                            "{\"reason\": " + nested(30000) + "}", "application/json");
  ASSERT_TRUE(body);
  EXPECT_EQ(body->status, 400) << body->body;
  EXPECT_NE(body->body.find("request body nests deeper than 64 levels"), std::string::npos)
      << body->body;
  EXPECT_EQ(modelreg::query::Query(*reg_).Head()->seq, head);
  EXPECT_FALSE(fs::exists(root_ + "/artifacts/risk_model/v2.0.0"));
  auto health = client_->Get("/healthz");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(HttpApi, ConcurrentWritersKeepOneProduction) {
  for (int i = 0; i < 6; ++i) MustUpload("risk_model", "v1." + std::to_string(i) + ".0");
  std::vector<std::thread> threads;
  std::atomic<int> ok{0}, conflict{0}, other{0};
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      httplib::Client c("127.0.0.1", server_->port());
      auto r = c.Post("/api/v1/models/risk_model/v1." + std::to_string(i) + ".0/promote", Write(),
                      R"({"expect_current": "none"})", "application/json");
      if (r && r->status == 200) {
        ++ok;
      } else if (r && r->status == 409) {
        ++conflict;
      } else {
        ++other;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 1);
  EXPECT_EQ(conflict.load(), 5);
  EXPECT_EQ(other.load(), 0);
}

TEST_F(HttpApi, TlsWithACertificate) {
  if (testing::RunCmd("command -v openssl").rc != 0) GTEST_SKIP() << "no openssl tool";
  const std::string cert = dir_.sub("cert.pem"), key = dir_.sub("key.pem");
  testing::RunResult made = testing::RunCmd(
      "openssl req -x509 -newkey rsa:2048 -nodes -keyout " + key + " -out " + cert +
      " -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1");
  ASSERT_EQ(made.rc, 0) << made.err;
  server::ServerOptions tls;
  tls.tls_cert = cert;
  tls.tls_key = key;
  Start(auth::VerifierConfig{kSecret, "", "", "", true, &SystemClock::Instance()}, tls);
  EXPECT_EQ(server_->url().rfind("https://", 0), 0u);
  httplib::SSLClient c("127.0.0.1", server_->port());
  c.set_ca_cert_path(cert.c_str());
  c.enable_server_certificate_verification(true);
  auto r = c.Get("/api/v1/models/risk_model", Read());
  ASSERT_TRUE(r) << httplib::to_string(r.error());
  EXPECT_EQ(r->status, 200);
  // Plain HTTP to the TLS port gets no answer.
  httplib::Client plain("127.0.0.1", server_->port());
  plain.set_read_timeout(2, 0);
  auto no = plain.Get("/healthz");
  EXPECT_TRUE(!no || no->status != 200);
  // Bad certificate files are refused up front.
  auto verifier = auth::TokenVerifier::Create(auth::VerifierConfig{kSecret, "", "", "", true, &SystemClock::Instance()});
  server::ServerOptions bad;
  bad.tls_cert = dir_.sub("nope.pem");
  bad.tls_key = key;
  auto srv = server::ApiServer::Create(*reg_, std::move(*verifier), bad);
  ASSERT_FALSE(srv);
  EXPECT_EQ(srv.error().code(), Code::kInvalidArgument);
}

// Beyond --max-connections a connection gets 503 with Retry-After at once
// (not a stall), and a slot frees when a held connection ends.
TEST_F(HttpApi, ConnectionsBeyondTheCapGet503WithRetryAfter) {
  server::ServerOptions few;
  few.limits.max_connections = 10;
  Start(auth::VerifierConfig{kSecret, "", "", "", true, &SystemClock::Instance()}, few);
  const int port = server_->port();
  // Ten connections in the middle of their headers hold every slot (each
  // for up to the 10 s header limit).
  std::vector<int> held;
  for (int i = 0; i < 10; ++i) {
    const int fd = testing::ConnectLocal(port);
    ASSERT_GE(fd, 0);
    ASSERT_TRUE(testing::SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: x\r\n"));
    held.push_back(fd);
  }
  const auto t0 = Steady::now();
  testing::RawResponse busy = testing::Exchange(
      port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", std::chrono::seconds(5));
  EXPECT_LT(Steady::now() - t0, std::chrono::seconds(5));
  EXPECT_EQ(busy.status, 503) << busy.head;
  EXPECT_FALSE(busy.header("Retry-After").empty()) << busy.head;
  EXPECT_EQ(busy.header("Connection"), "close") << busy.head;
  const json j = json::parse(busy.body, nullptr, false);
  ASSERT_TRUE(j.is_object()) << busy.body;
  EXPECT_EQ(j["error"]["code"], "busy");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("10"), std::string::npos) << busy.body;
  // One held connection finishes its request: its slot is free again.
  ASSERT_TRUE(testing::SendAll(held[0], "\r\n"));
  EXPECT_EQ(testing::ReadHead(held[0], std::chrono::seconds(5)).rfind("HTTP/1.1 200", 0), 0u);
  close(held[0]);
  int status = 0;
  for (auto until = Steady::now() + std::chrono::seconds(5); Steady::now() < until;) {
    status = testing::Exchange(port, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
                               std::chrono::seconds(5))
                 .status;
    if (status == 200) break;
  }
  EXPECT_EQ(status, 200);
  for (std::size_t i = 1; i < held.size(); ++i) close(held[i]);
}

// A token too long for the header line limit gets 401 with the limit, not
// httplib's bare 400; any other over-long header gets 431.
TEST_F(HttpApi, OverlongHeadersGetClearAnswers) {
  const std::string path = "/api/v1/models/risk_model";
  for (std::size_t size : {8169u, 9000u, 20000u}) {
    const std::string token = Issue({auth::kScopeRead}) + std::string(size, 'A');
    auto r = client_->Get(path, Bearer(token.substr(0, size)));
    ASSERT_TRUE(r) << size;
    EXPECT_EQ(r->status, 401) << size << ": " << r->body;
    EXPECT_EQ(ErrorCode(r), "unauthenticated");
    EXPECT_NE(r->body.find("token too long (limit 8168 bytes)"), std::string::npos) << r->body;
    EXPECT_FALSE(r->get_header_value("WWW-Authenticate").empty());
  }
  // The longest token that fits is checked like any other (bad signature).
  auto fits = client_->Get(path, Bearer(std::string(8168, 'A')));
  ASSERT_TRUE(fits);
  EXPECT_EQ(fits->status, 401);
  EXPECT_EQ(fits->body.find("too long"), std::string::npos) << fits->body;
  // Any other header line over 8 KiB, or more than 64 KiB of headers.
  auto big = client_->Get(path, httplib::Headers{{"X-Big", std::string(9000, 'b')}});
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 431) << big->body;
  EXPECT_EQ(ErrorCode(big), "too_large");
  EXPECT_NE(big->body.find("X-Big"), std::string::npos) << big->body;
  httplib::Headers many;
  for (int i = 0; i < 20; ++i) many.emplace("X-Many-" + std::to_string(i), std::string(4000, 'm'));
  auto lots = client_->Get(path, many);
  ASSERT_TRUE(lots);
  EXPECT_EQ(lots->status, 431) << lots->body;
  EXPECT_NE(lots->body.find("65536"), std::string::npos) << lots->body;
  // The server is fine afterwards.
  EXPECT_EQ(client_->Get(path, Read())->status, 200);
}

// Over --max-upload-mb is 413 naming the limit, whatever the size: with a
// Content-Length (refused from the headers) and chunked (refused while
// streaming), including sizes just over the limit.
TEST_F(HttpApi, UploadsOverTheLimitAlwaysGet413) {
  server::ServerOptions small;
  small.max_upload_bytes = 1 << 20;
  Start(auth::VerifierConfig{kSecret, "", "", "", true, &SystemClock::Instance()}, small);
  for (std::size_t size : {(1u << 20) + 1, 1500000u, 2200000u, 3000000u, 9000000u}) {
    auto r = Upload("risk_model", "v1.0.0", std::string(size, 'w'));
    ASSERT_TRUE(r) << size << ": " << httplib::to_string(r.error());
    EXPECT_EQ(r->status, 413) << size << ": " << r->body;
    EXPECT_EQ(ErrorCode(r), "too_large") << size;
    EXPECT_NE(r->body.find("1048576 bytes"), std::string::npos) << size << ": " << r->body;
    // Chunked, as the CLI sends it.
    httplib::Client c("127.0.0.1", server_->port());
    const std::string bytes(size, 'w');
    httplib::MultipartFormDataProviderItems providers{
        {"artifact",
         [&bytes](std::size_t offset, httplib::DataSink& sink) {
           const std::size_t n = std::min<std::size_t>(65536, bytes.size() - offset);
           sink.write(bytes.data() + offset, n);
           if (offset + n == bytes.size()) sink.done();
           return true;
         },
         "model.pkl", "application/octet-stream"}};
    auto chunked = c.Post("/api/v1/models/risk_model/v1.0.0", Write(), {}, providers);
    ASSERT_TRUE(chunked) << size << ": " << httplib::to_string(chunked.error());
    EXPECT_EQ(chunked->status, 413) << size << ": " << chunked->body;
    EXPECT_NE(chunked->body.find("1048576 bytes"), std::string::npos) << chunked->body;
  }
  EXPECT_EQ(modelreg::query::Query(*reg_).Head()->seq, 1u);  // only the adopted policy.toml
  EXPECT_EQ(Upload("risk_model", "v1.0.0", std::string(1 << 20, 'w'))->status, 201);
  for (const auto& e : fs::directory_iterator(root_ + "/uploads")) ADD_FAILURE() << e.path();
}

// Requests that never reach a route handler still get a JSON error with a
// real message, and a POST without a body works where no body is needed.
TEST_F(HttpApi, ErrorsBelowTheRoutesHaveRealMessages) {
  MustUpload("risk_model", "v1.0.0");
  const Seq head = modelreg::query::Query(*reg_).Head()->seq;
  const int port = server_->port();
  const std::string auth = "Authorization: Bearer " + Issue({auth::kScopeWrite}) + "\r\n";
  // curl -X POST without -d: no Content-Length, no body. Answered at once.
  for (const std::string path : {"/api/v1/models/risk_model/v1.0.0/validate",
                                 "/api/v1/models/risk_model/v1.0.0/promote"}) {
    testing::RawResponse r = testing::Exchange(
        port, "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n", std::chrono::seconds(10));
    EXPECT_EQ(r.status, 200) << path << ": " << r.head << "\n" << r.body;
  }
  auto rollback = testing::Exchange(
      port, "POST /api/v1/models/risk_model/rollback HTTP/1.1\r\nHost: x\r\n" + auth + "\r\n",
      std::chrono::seconds(10));
  EXPECT_EQ(rollback.status, 409) << rollback.body;  // nothing to roll back to: a real answer
  struct Case {
    std::string request;
    int status;
    std::string code, message, header;
  };
  const std::string long_path = "/api/v1/models/" + std::string(9000, 'a');
  for (const Case& c : std::vector<Case>{
           {"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404, "not_found", "no route for GET /nope", ""},
           {"DELETE /api/v1/models/risk_model/v1.0.0 HTTP/1.1\r\nHost: x\r\n\r\n", 405,
            "method_not_allowed", "DELETE", "Allow: GET, POST"},
           {"PUT /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", 405, "method_not_allowed",
            "PUT", "Allow: GET"},
           {"GARBAGE\r\n\r\n", 400, "invalid_argument", "malformed request line", ""},
           {"GET /healthz HTTP/9.9\r\n\r\n", 400, "invalid_argument", "malformed request line", ""},
           {"GET " + long_path + " HTTP/1.1\r\nHost: x\r\n\r\n", 414, "too_large", "8192 bytes", ""},
           {"GET /api/v1/models/risk_model/v1.0.0/artifact HTTP/1.1\r\nHost: x\r\n" + auth +
                "Range: bytes=zz\r\n\r\n",
            416, "invalid_argument", "Range", ""},
           // A Range does not cut an error's JSON (fuzz_http's first finding).
           {"GET /api/v1/models/risk_model/v9.0.0/artifact HTTP/1.1\r\nHost: x\r\n" + auth +
                "Range: bytes=0-3\r\n\r\n",
            404, "not_found", "not registered", ""},
           {"GET /nope HTTP/1.1\r\nHost: x\r\nRange: bytes=0-3\r\n\r\n", 404, "not_found", "no route", ""},
           {"POST /api/v1/models/risk_model/v1.0.0/archive HTTP/1.1\r\nHost: x\r\n" + auth +
                "Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\nabcd",
            415, "unsupported", "Content-Encoding", ""},
           {"POST /api/v1/models/risk_model/v1.0.0/archive HTTP/1.1\r\nHost: x\r\n" + auth +
                "Content-Length: 100000\r\n\r\n",
            413, "too_large", "64 KiB", "Connection: close"},
       }) {
    testing::RawResponse r = testing::Exchange(port, c.request, std::chrono::seconds(10));
    const std::string what = c.request.substr(0, 60);
    EXPECT_EQ(r.status, c.status) << what << ": " << r.head << "\n" << r.body;
    const json j = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(j.is_object() && j.contains("error")) << what << ": " << r.body;
    EXPECT_EQ(j["error"]["code"], c.code) << what << ": " << r.body;
    EXPECT_NE(j["error"]["message"].get<std::string>().find(c.message), std::string::npos)
        << what << ": " << r.body;
    if (!c.header.empty()) {
      const auto colon = c.header.find(": ");
      EXPECT_EQ(r.header(c.header.substr(0, colon)), c.header.substr(colon + 2)) << what << ": " << r.head;
    }
  }
  EXPECT_EQ(modelreg::query::Query(*reg_).Head()->seq, head + 2);  // the validation and the promotion
}

// Starts `modelreg serve` on a free port (with `extra` options); its URL.
std::string StartServe(testing::Child** out, std::unique_ptr<testing::Child>& holder,
                       const std::string& root, const std::string& extra) {
  const std::string bin = testing::EnvOr("MODELREG_BIN", "modelreg");
  holder = std::make_unique<testing::Child>(std::vector<std::string>{
      "/bin/sh", "-c",
      "exec env MODELREG_JWT_SECRET=" + kSecret + " " + bin + " --root " + root +
          " serve --listen 127.0.0.1:0 --exit-after 300 " + extra});
  *out = holder.get();
  for (int i = 0; i < 100 && holder->Lines().empty(); ++i) holder->ReadFor(100);
  if (holder->Lines().empty()) return "";
  const std::string first = holder->Lines()[0];
  const auto at = first.find("http://");
  return at == std::string::npos ? "" : first.substr(at);
}

int PortOf(const std::string& url) { return std::stoi(url.substr(url.rfind(':') + 1)); }

// Slowloris and friends: 200 connections that send their headers one line a
// second, send nothing, or stop half way through a body. Health checks and
// authenticated reads still answer at once, and the server ends every one
// of those connections within its limits (docs/api.md, "Limits").
TEST(ServeCommand, SlowAndIdleClientsCannotStarveTheServer) {
  testing::TempDir dir;
  const std::string root = dir.sub("reg");
  fs::create_directories(root);
  testing::Child* server = nullptr;
  std::unique_ptr<testing::Child> holder;
  const std::string url = StartServe(&server, holder, root, "");
  ASSERT_FALSE(url.empty());
  const int port = PortOf(url);
  const std::string token = Issue({auth::kScopeRead});

  std::vector<int> slow_headers, idle, half_body;
  for (int i = 0; i < 70; ++i) {
    const int fd = testing::ConnectLocal(port);
    ASSERT_GE(fd, 0);
    EXPECT_TRUE(testing::SendAll(fd, "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n"));
    slow_headers.push_back(fd);
  }
  for (int i = 0; i < 70; ++i) {
    const int fd = testing::ConnectLocal(port);
    ASSERT_GE(fd, 0);
    idle.push_back(fd);
  }
  for (int i = 0; i < 60; ++i) {
    const int fd = testing::ConnectLocal(port);
    ASSERT_GE(fd, 0);
    const std::string half = R"({"version": "", "ok": true, "detail": ")" + std::string(400, 'x');
    EXPECT_TRUE(testing::SendAll(
        fd, "POST /api/v1/models/risk_model/consumers/c" + std::to_string(i) +
                "/ack HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
                "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n" + half));
    half_body.push_back(fd);
  }
  // One more header line a second on every slow connection, for as long as
  // the server keeps it.
  std::atomic<bool> stop_trickle{false};
  std::thread trickle;
  struct Joiner {
    std::atomic<bool>& stop;
    std::thread& t;
    ~Joiner() {
      stop.store(true);
      if (t.joinable()) t.join();
    }
  } joiner{stop_trickle, trickle};
  trickle = std::thread([&] {
    for (int n = 0; !stop_trickle.load(); ++n) {
      for (int fd : slow_headers) testing::SendAll(fd, "X-Slow-" + std::to_string(n) + ": 1\r\n");
      for (int i = 0; i < 10 && !stop_trickle.load(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    }
  });

  // The server answers others at once meanwhile (5 s: a liveness bound, on
  // a machine shared with other builds; the answers take milliseconds).
  for (int round = 0; round < 3; ++round) {
    httplib::Client c("127.0.0.1", port);
    c.set_connection_timeout(5, 0);
    c.set_read_timeout(5, 0);
    auto t0 = Steady::now();
    auto health = c.Get("/healthz");
    ASSERT_TRUE(health) << "round " << round << ": " << httplib::to_string(health.error());
    EXPECT_EQ(health->status, 200);
    EXPECT_LT(Steady::now() - t0, std::chrono::seconds(5));
    t0 = Steady::now();
    auto read = c.Get("/api/v1/models/risk_model", {{"Authorization", "Bearer " + token}});
    ASSERT_TRUE(read) << "round " << round << ": " << httplib::to_string(read.error());
    EXPECT_EQ(read->status, 200) << read->body;
    EXPECT_LT(Steady::now() - t0, std::chrono::seconds(5));
  }

  // The server ends every one of them: idle after 5 s, headers not complete
  // 10 s after their first byte (408), bodies slower than the minimum rate
  // (408). 40 s is a generous bound for all of it.
  std::vector<int> all = slow_headers;
  all.insert(all.end(), idle.begin(), idle.end());
  all.insert(all.end(), half_body.begin(), half_body.end());
  std::map<int, std::string> received;
  std::set<int> open(all.begin(), all.end());
  const auto deadline = Steady::now() + std::chrono::seconds(40);
  while (!open.empty() && Steady::now() < deadline) {
    std::vector<pollfd> fds;
    for (int fd : open) fds.push_back(pollfd{fd, POLLIN, 0});
    if (poll(fds.data(), fds.size(), 500) <= 0) continue;
    for (const pollfd& p : fds) {
      if (p.revents == 0) continue;
      char buf[4096];
      const ssize_t n = recv(p.fd, buf, sizeof buf, MSG_DONTWAIT);
      if (n > 0) {
        received[p.fd].append(buf, static_cast<std::size_t>(n));
      } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        open.erase(p.fd);
      }
    }
  }
  stop_trickle.store(true);
  trickle.join();
  EXPECT_TRUE(open.empty()) << open.size() << " of " << all.size()
                            << " connections still open after 40 s";
  for (int fd : slow_headers) {
    EXPECT_EQ(received[fd].rfind("HTTP/1.1 408", 0), 0u) << received[fd];
  }
  for (int fd : half_body) {
    EXPECT_EQ(received[fd].rfind("HTTP/1.1 408", 0), 0u) << received[fd];
  }
  for (int fd : idle) EXPECT_EQ(received[fd], "") << "an idle connection is closed silently";
  for (int fd : all) close(fd);
  EXPECT_EQ(server->SignalAndWait(SIGTERM), 0);
}

// The gate policy over HTTP: read with model:read, set (PUT or POST) with
// model:admin only; a bad text is 400 and changes nothing; the same text
// again changes nothing; the next promotion is gated by the new one.
TEST_F(HttpApi, PolicyGetAndSetWithScopes) {
  const std::string fixture =
      "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
  auto head = [this] { return modelreg::query::Query(*reg_).Head()->seq; };
  EXPECT_EQ(client_->Get("/api/v1/policy")->status, 401);
  auto got = client_->Get("/api/v1/policy", Read());
  ASSERT_EQ(got->status, 200) << got->body;
  json p = Body(got);
  EXPECT_EQ(p["built_in_defaults"], false);
  EXPECT_EQ(p["policy"]["text"], fixture);  // adopted from the fixture's policy.toml
  EXPECT_EQ(p["policy"]["seq"], 1);
  const std::string t_before = FormatUtc(SystemClock::Instance().NowNs());
  std::this_thread::sleep_for(std::chrono::milliseconds(5));

  const std::string strict = fixture + "[risk_model]\nsharpe = \"> 5\"\n";
  const json body{{"text", strict}, {"reason", "risk models need sharpe > 5"}, {"source", "t.toml"}};
  const Seq before = head();
  for (const auto& h : {Read(), Write()}) {
    auto denied = client_->Put("/api/v1/policy", h, body.dump(), "application/json");
    EXPECT_EQ(denied->status, 403) << denied->body;
    EXPECT_EQ(ErrorCode(denied), "forbidden");
    EXPECT_EQ(PostJson("/api/v1/policy", body, h)->status, 403);
  }
  EXPECT_EQ(head(), before);
  // A bad text, no reason, no text: 400, nothing written.
  auto bad = client_->Put("/api/v1/policy", Admin(),
                          json{{"text", "[default]\nic = \"> 0.02\"\nsharpe = \">> 1\"\n"},
                               {"reason", "r"},
                               {"source", "bad.toml"}}
                              .dump(),
                          "application/json");
  EXPECT_EQ(bad->status, 400) << bad->body;
  EXPECT_NE(Body(bad)["error"]["message"].get<std::string>().find("bad.toml:3:"),
            std::string::npos)
      << bad->body;
  EXPECT_EQ(PostJson("/api/v1/policy", json{{"text", strict}}, Admin())->status, 400);
  EXPECT_EQ(PostJson("/api/v1/policy", json{{"reason", "r"}}, Admin())->status, 400);
  EXPECT_EQ(PostJson("/api/v1/policy", json{{"text", 5}, {"reason", "r"}}, Admin())->status, 400);
  EXPECT_EQ(head(), before);

  auto set = client_->Put("/api/v1/policy", Admin(), body.dump(), "application/json");
  ASSERT_EQ(set->status, 200) << set->body;
  json sj = Body(set);
  EXPECT_EQ(sj["changed"], true);
  EXPECT_EQ(sj["seq"], before + 1);
  EXPECT_EQ(sj["sha256"], ToHex(Sha256::Of(strict)));
  auto same = PostJson("/api/v1/policy", body, Admin());
  ASSERT_EQ(same->status, 200) << same->body;
  EXPECT_EQ(Body(same)["changed"], false);
  EXPECT_EQ(head(), before + 1);

  json now = Body(client_->Get("/api/v1/policy", Read()));
  EXPECT_EQ(now["policy"]["text"], strict);
  EXPECT_EQ(now["policy"]["actor"], "alice");  // the token's subject
  EXPECT_EQ(now["policy"]["reason"], "risk models need sharpe > 5");
  EXPECT_EQ(now["policy"]["source"], "t.toml");
  json then = Body(client_->Get("/api/v1/policy?at=" + t_before, Read()));
  EXPECT_EQ(then["policy"]["text"], fixture);
  EXPECT_EQ(then["at"], t_before);
  EXPECT_EQ(client_->Get("/api/v1/policy?at=yesterday", Read())->status, 400);
  json audit = Body(client_->Get("/api/v1/audit?at=" + t_before, Read()));
  EXPECT_EQ(audit["policy"]["text"], fixture);

  // The next promotion is gated by it.
  MustUpload("risk_model", "v1.0.0");  // sharpe 1.2
  auto promote = PostJson("/api/v1/models/risk_model/v1.0.0/promote", json::object(), Write());
  EXPECT_EQ(promote->status, 422) << promote->body;
  EXPECT_NE(promote->body.find("sharpe: 1.2 is not > 5"), std::string::npos) << promote->body;
  MustUpload("alpha_weights", "v1.0.0");  // [default] applies: no gates
  EXPECT_EQ(PostJson("/api/v1/models/alpha_weights/v1.0.0/promote", json::object(), Write())->status,
            200);
}

// The real binaries: `modelreg serve`, `modelreg token issue`, and CLI
// writes routed through the server that holds the registry.
TEST(ServeCommand, CliThroughTheServerAndGracefulShutdown) {
  testing::TempDir dir;
  const std::string bin = testing::EnvOr("MODELREG_BIN", "modelreg");
  const std::string root = dir.sub("reg");
  fs::create_directories(root);
  // A validator that takes a second: a request in flight at SIGTERM. Its
  // sleep is what is tested (a request still running when the signal
  // comes); each run first appends a line to `runs`, which the test waits
  // for instead of guessing when the request reached the server.
  const std::string slow = dir.sub("slow.sh");
  const std::string runs = dir.sub("validator-runs");
  std::ofstream(slow) << "#!/bin/sh\necho started >> '" << runs << "'\nsleep 1\nexit 0\n";
  fs::permissions(slow, fs::perms::owner_all);
  std::ofstream(root + "/policy.toml")
      << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n"
      << "validator = { command = [\"" << slow << "\"], timeout_seconds = 10 }\n";
  std::ofstream(dir.sub("model.pkl")) << "weights";
  const std::string env = "MODELREG_JWT_SECRET=" + kSecret + " ";
  const std::string mr = bin + " --root " + root + " ";

  testing::Child server({"/bin/sh", "-c", "exec env " + env + mr +
                                              "serve --listen 127.0.0.1:0 --exit-after 120"});
  for (int i = 0; i < 100 && server.Lines().empty(); ++i) server.ReadFor(100);
  ASSERT_FALSE(server.Lines().empty());
  const std::string first = server.Lines()[0];
  ASSERT_EQ(first.rfind("serving " + root + " on http://127.0.0.1:", 0), 0u) << first;
  const std::string url = first.substr(first.find("http://"));
  ASSERT_TRUE(fs::exists(root + "/server.json"));

  // Without a token: one line that says what to do, exit 7, nothing written.
  testing::RunResult refused = testing::RunCmd(mr + "register risk_model " + dir.sub("model.pkl") +
                                               " --version v1.0.0");
  EXPECT_EQ(refused.rc, 7) << refused.err;
  EXPECT_NE(refused.err.find("MODELREG_TOKEN"), std::string::npos) << refused.err;
  EXPECT_NE(refused.err.find(url), std::string::npos) << refused.err;

  // The same secret from a file (a trailing newline is ignored).
  std::ofstream(dir.sub("secret")) << kSecret << "\n";
  testing::RunResult token = testing::RunCmd(
      mr + "token issue --sub carol --scope model:write --ttl 10m --jwt-secret-file " +
      dir.sub("secret"));
  ASSERT_EQ(token.rc, 0) << token.err;
  const std::string tok = token.out.substr(0, token.out.find('\n'));
  const std::string routed = "env MODELREG_TOKEN=" + tok + " " + mr;
  testing::RunResult reg = testing::RunCmd(routed + "--json register risk_model " +
                                           dir.sub("model.pkl") +
                                           " --version v1.0.0 --metric ic=0.1 --dataset crsp=v1");
  ASSERT_EQ(reg.rc, 0) << reg.err;
  const json rec = json::parse(reg.out);
  EXPECT_EQ(rec["registered_by"], "carol");
  EXPECT_EQ(rec["metrics"]["ic"], 0.1);
  EXPECT_EQ(rec["dataset_version_ids"]["crsp"], "v1");
  testing::RunResult promoted = testing::RunCmd(routed + "--reason live promote risk_model v1.0.0");
  ASSERT_EQ(promoted.rc, 0) << promoted.err;
  EXPECT_NE(promoted.out.find("promoted risk_model v1.0.0"), std::string::npos) << promoted.out;
  // Errors keep their exit codes through the server.
  EXPECT_EQ(testing::RunCmd(routed + "promote risk_model v1.0.0").rc, 4);
  // A stale --expect-current through the server names the CLI's flag.
  testing::RunResult stale = testing::RunCmd(routed + "promote risk_model v1.0.0 --expect-current none");
  EXPECT_EQ(stale.rc, 4) << stale.err;
  EXPECT_NE(stale.err.find("as expected (--expect-current); nothing changed"), std::string::npos)
      << stale.err;
  EXPECT_EQ(testing::RunCmd(routed + "archive risk_model v9.0.0").rc, 3);
  // Reads work beside the server, from the same files.
  testing::RunResult current = testing::RunCmd(mr + "--json current risk_model");
  ASSERT_EQ(current.rc, 0) << current.err;
  EXPECT_EQ(json::parse(current.out)["production"], "v1.0.0");
  // A read-only token cannot write.
  const std::string ro = testing::RunCmd("env " + env + mr + "token issue --sub dave --scope model:read")
                             .out;
  testing::RunResult denied = testing::RunCmd("env MODELREG_TOKEN=" + ro.substr(0, ro.find('\n')) +
                                              " " + mr + "archive risk_model v1.0.0");
  EXPECT_EQ(denied.rc, 11) << denied.err;
  EXPECT_NE(denied.err.find("model:write"), std::string::npos) << denied.err;

  // The server and the CLI give the same JSON to the same question: both
  // render the query layer's results with one renderer.
  {
    const std::string at = FormatUtc(SystemClock::Instance().NowNs());
    httplib::Client http(url);
    const httplib::Headers auth{{"Authorization", "Bearer " + ro.substr(0, ro.find('\n'))}};
    const std::vector<std::pair<std::string, std::string>> questions = {
        {"current risk_model", "/api/v1/models/risk_model/current"},
        {"current risk_model --at " + at, "/api/v1/models/risk_model/current?at=" + at},
        {"show risk_model v1.0.0", "/api/v1/models/risk_model/v1.0.0"},
        {"show risk_model v1.0.0 --at " + at, "/api/v1/models/risk_model/v1.0.0?at=" + at},
        {"list risk_model", "/api/v1/models/risk_model"},
        {"list risk_model --at " + at, "/api/v1/models/risk_model?at=" + at},
        {"history risk_model", "/api/v1/models/risk_model/history"},
        {"audit --at " + at, "/api/v1/audit?at=" + at},
        {"audit --at " + at + " risk_model", "/api/v1/audit?type=risk_model&at=" + at},
        {"policy show", "/api/v1/policy"},
        {"policy show --at " + at, "/api/v1/policy?at=" + at},
        {"diff --from 2000-01-01 --to " + at, "/api/v1/diff?from=2000-01-01&to=" + at},
    };
    for (const auto& [command, path] : questions) {
      testing::RunResult cli = testing::RunCmd(mr + "--json " + command);
      ASSERT_EQ(cli.rc, 0) << command << ": " << cli.err;
      auto api = http.Get(path, auth);
      ASSERT_TRUE(api) << path;
      ASSERT_EQ(api->status, 200) << path << ": " << api->body;
      json answer = json::parse(api->body);
      // Paged answers (list, history) also say where the next page starts.
      if (answer.contains("next")) {
        EXPECT_TRUE(answer["next"].is_null()) << path;
        answer.erase("next");
      }
      EXPECT_EQ(json::parse(cli.out), answer) << command << " vs " << path;
    }
    // Consumers: the same but for the lag, which depends on when it is asked.
    testing::RunResult cli = testing::RunCmd(mr + "--json consumers risk_model");
    ASSERT_EQ(cli.rc, 0) << cli.err;
    auto api = http.Get("/api/v1/models/risk_model/consumers", auth);
    ASSERT_TRUE(api);
    json a = json::parse(cli.out), b = json::parse(api->body);
    for (json* j : {&a, &b}) {
      for (auto& c : (*j)["consumers"]) c.erase("behind_seconds");
    }
    EXPECT_EQ(a, b);
    // The diff's errors: both instants needed, in order, and times.
    for (const auto& [path, message] : std::vector<std::pair<std::string, std::string>>{
             {"/api/v1/diff?from=2000-01-01", "from=TIME and to=TIME are required"},
             {"/api/v1/diff?to=now", "from=TIME and to=TIME are required"},
             {"/api/v1/diff?from=now&to=2000-01-01", "is after to=2000-01-01"},
             {"/api/v1/diff?from=yesterday&to=now", "from=yesterday is not a time"},
         }) {
      auto bad = http.Get(path, auth);
      ASSERT_TRUE(bad) << path;
      EXPECT_EQ(bad->status, 400) << path << ": " << bad->body;
      EXPECT_NE(bad->body.find(message), std::string::npos) << path << ": " << bad->body;
    }
  }

  // policy set through the server: model:admin only.
  std::ofstream(dir.sub("new-policy.toml"))
      << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
  testing::RunResult not_admin =
      testing::RunCmd(routed + "--reason tighter policy set " + dir.sub("new-policy.toml"));
  EXPECT_NE(not_admin.rc, 0);
  EXPECT_NE(not_admin.err.find("model:admin"), std::string::npos) << not_admin.err;
  const std::string adm =
      testing::RunCmd("env " + env + mr + "token issue --sub erin --scope model:admin").out;
  testing::RunResult set_policy = testing::RunCmd(
      "env MODELREG_TOKEN=" + adm.substr(0, adm.find('\n')) + " " + mr +
      "--json --reason 'no validator' policy set " + dir.sub("new-policy.toml"));
  ASSERT_EQ(set_policy.rc, 0) << set_policy.err;
  EXPECT_EQ(json::parse(set_policy.out)["changed"], true) << set_policy.out;
  EXPECT_EQ(json::parse(testing::RunCmd(mr + "--json policy show").out)["policy"]["actor"], "erin");
  std::ofstream(dir.sub("new-policy.toml"))
      << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n"
      << "validator = { command = [\"" << slow << "\"], timeout_seconds = 10 }\n";
  ASSERT_EQ(testing::RunCmd("env MODELREG_TOKEN=" + adm.substr(0, adm.find('\n')) + " " + mr +
                            "--reason 'validator back' policy set " + dir.sub("new-policy.toml"))
                .rc,
            0);

  // SIGTERM while a validation (1 s validator) is in flight: it completes.
  auto validator_runs = [&runs] {
    std::ifstream in(runs);
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  };
  const std::size_t runs_before = validator_runs();
  testing::Child validating({"/bin/sh", "-c", "exec " + routed + "--json validate risk_model v1.0.0"});
  // Until the server runs the validator for this request.
  const auto until = Steady::now() + std::chrono::seconds(30);
  while (validator_runs() == runs_before && Steady::now() < until) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(validator_runs(), runs_before) << "the validation never reached the server";
  const int status = server.SignalAndWait(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  validating.ReadToEof();
  ASSERT_FALSE(validating.Lines().empty());
  EXPECT_TRUE(json::parse(validating.Lines()[0])["ok"].get<bool>()) << validating.Lines()[0];
  EXPECT_FALSE(fs::exists(root + "/server.json"));
  // The registry is whole, and the CLI writes locally again.
  testing::RunResult verify = testing::RunCmd(mr + "verify");
  EXPECT_EQ(verify.rc, 0) << verify.err;
  EXPECT_EQ(testing::RunCmd(mr + "archive risk_model v1.0.0").rc, 4);  // it is production
  EXPECT_EQ(testing::RunCmd(mr + "--json events").out.find("ArtifactValidated") != std::string::npos,
            true);
  // And that validation went through the server (the token's subject is the
  // actor), not through a local open after the server had gone.
  std::string validated_by;
  std::istringstream events(testing::RunCmd(mr + "--json events").out);
  for (std::string line; std::getline(events, line);) {
    const json e = json::parse(line);
    if (e["type"] == "ArtifactValidated") validated_by = e["actor"];
  }
  EXPECT_EQ(validated_by, "carol");
}

}  // namespace
}  // namespace modelreg

namespace modelreg {
namespace {

// Annotations over HTTP (issue 16): POST .../annotate needs model:write,
// bad bodies append nothing, the version GETs show them, ?tag= filters.
TEST_F(HttpApi, AnnotationsThroughTheApi) {
  MustUpload("alpha_momentum", "v1.0.0");
  MustUpload("alpha_momentum", "v1.1.0");
  const std::string path = "/api/v1/models/alpha_momentum/v1.0.0/annotate";
  const json body = {{"set_tags", {{"desk", "eq"}, {"stage", "paper"}}},
                     {"description", "momentum"},
                     {"metrics", {{"hit_rate", 0.56}}},
                     {"source", "paper-trading"},
                     {"reason", "ten days of paper trading"}};
  auto head = [this] { return Body(client_->Get("/healthz"))["head_seq"].get<Seq>(); };
  const Seq before = head();

  // Read scope is not enough; nothing is written.
  auto forbidden = PostJson(path, body, Read());
  EXPECT_EQ(forbidden->status, 403) << forbidden->body;
  // Bad bodies: 400 (or 404), nothing written.
  const std::vector<std::pair<json, int>> bad = {
      {json{{"reason", "r"}}, 400},                                  // nothing to annotate
      {json{{"set_tags", {{"desk", "eq"}}}}, 400},                    // no reason
      {json{{"set_tags", {{"bad key", "x"}}}, {"reason", "r"}}, 400},
      {json{{"set_tags", {{"desk", 3}}}, {"reason", "r"}}, 400},
      {json{{"set_tags", json::array()}, {"reason", "r"}}, 400},
      {json{{"removed_tags", "desk"}, {"reason", "r"}}, 400},
      {json{{"metrics", {{"hit_rate", "0.5"}}}, {"source", "s"}, {"reason", "r"}}, 400},
      {json{{"metrics", {{"hit_rate", 0.5}}}, {"reason", "r"}}, 400},  // no source
      {json{{"description", 5}, {"reason", "r"}}, 400},
      {json{{"tags", {{"desk", "eq"}}}, {"reason", "r"}}, 400},  // unknown field
  };
  for (const auto& [b, status] : bad) {
    auto r = PostJson(path, b, Write());
    EXPECT_EQ(r->status, status) << b.dump() << " -> " << r->body;
  }
  auto missing = PostJson("/api/v1/models/alpha_momentum/v9.0.0/annotate", body, Write());
  EXPECT_EQ(missing->status, 404) << missing->body;
  EXPECT_EQ(head(), before);

  auto ok = PostJson(path, body, Write());
  ASSERT_EQ(ok->status, 200) << ok->body;
  const Seq seq = Body(ok)["seq"];
  EXPECT_EQ(seq, before + 1);

  json show = Body(client_->Get("/api/v1/models/alpha_momentum/v1.0.0", Read()));
  EXPECT_EQ(show["annotations"]["tags"], json({{"desk", "eq"}, {"stage", "paper"}}));
  EXPECT_EQ(show["annotations"]["description"], "momentum");
  EXPECT_EQ(show["annotations"]["metrics"]["hit_rate"]["value"], 0.56);
  EXPECT_EQ(show["annotations"]["metrics"]["hit_rate"]["actor"], "alice");  // the token's subject
  EXPECT_EQ(show["annotations"]["metrics"]["hit_rate"]["seq"], seq);
  EXPECT_EQ(show["effective_metrics"]["hit_rate"], 0.56);
  EXPECT_EQ(show["registration"]["metrics"].count("hit_rate"), 0u);
  const std::string t_annotated = show["annotations"]["metrics"]["hit_rate"]["at"];

  // ?tag=KEY%3DVALUE on both list endpoints (AND), and with ?at=.
  auto versions = [this](const std::string& url) {
    std::vector<std::string> out;
    json list = Body(client_->Get(url, Read()));
    if (!list.contains("versions")) {
      ADD_FAILURE() << url << ": " << list.dump();
      return out;
    }
    for (json& v : list["versions"]) out.push_back(v["version"]);
    return out;
  };
  const std::vector<std::string> just_v1 = {"v1.0.0"};
  EXPECT_EQ(versions("/api/v1/models?tag=desk%3Deq"), just_v1);
  EXPECT_EQ(versions("/api/v1/models/alpha_momentum?tag=desk%3Deq&tag=stage%3Dpaper"), just_v1);
  EXPECT_TRUE(versions("/api/v1/models/alpha_momentum?tag=desk%3Deq&tag=stage%3Dlive").empty());
  EXPECT_EQ(versions("/api/v1/models/alpha_momentum?tag=desk%3Deq&at=" + t_annotated), just_v1);
  auto bad_tag = client_->Get("/api/v1/models?tag=nokey", Read());
  EXPECT_EQ(bad_tag->status, 400) << bad_tag->body;

  // Untag and clear the description; the GET at the earlier time still
  // shows them as they were.
  auto later = PostJson(path, {{"removed_tags", {"stage"}}, {"description", ""}, {"reason", "live"}},
                        Write());
  ASSERT_EQ(later->status, 200) << later->body;
  json now = Body(client_->Get("/api/v1/models/alpha_momentum/v1.0.0", Read()));
  EXPECT_EQ(now["annotations"]["tags"], json({{"desk", "eq"}}));
  EXPECT_TRUE(now["annotations"]["description"].is_null());
  json then =
      Body(client_->Get("/api/v1/models/alpha_momentum/v1.0.0?at=" + t_annotated, Read()));
  EXPECT_EQ(then["annotations"]["tags"], json({{"desk", "eq"}, {"stage", "paper"}}));
  EXPECT_EQ(then["annotations"]["description"], "momentum");
}

}  // namespace
}  // namespace modelreg

namespace modelreg {
namespace {

// sort= names a metric some listed version has, like the CLI's --sort: an
// unknown one is 400 naming the metrics that exist, not a silent no-op.
TEST_F(HttpApi, SortByAnUnknownMetricIsRefused) {
  MustUpload("risk_model", "v1.0.0");
  auto ok = client_->Get("/api/v1/models/risk_model?sort=sharpe", Read());
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200) << ok->body;
  for (const std::string path : {"/api/v1/models/risk_model?sort=turnover",
                                 "/api/v1/models?sort=turnover"}) {
    auto r = client_->Get(path, Read());
    ASSERT_TRUE(r) << path;
    EXPECT_EQ(r->status, 400) << path << ": " << r->body;
    EXPECT_NE(r->body.find("metrics: ic, sharpe"), std::string::npos) << r->body;
  }
  // Nothing listed (an empty registry name): nothing to sort, no error.
  auto empty = client_->Get("/api/v1/models/alpha?sort=turnover", Read());
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->status, 200) << empty->body;
}

// The OpenAPI document (docs/api.md, "OpenAPI"): `modelreg serve` answers
// GET /api/v1/openapi.json without a token with docs/openapi.json's exact
// bytes; other methods get 405, and the request is counted in /metrics
// under its route like any other.
TEST(ServeCommand, ServesTheRepositorysOpenApiDocument) {
  testing::TempDir dir;
  const std::string bin = testing::EnvOr("MODELREG_BIN", "modelreg");
  const std::string root = dir.sub("reg");
  fs::create_directories(root);
  testing::Child server({"/bin/sh", "-c", "exec env MODELREG_JWT_SECRET=" + kSecret + " " + bin +
                                              " --root " + root +
                                              " serve --listen 127.0.0.1:0 --exit-after 120"});
  for (int i = 0; i < 100 && server.Lines().empty(); ++i) server.ReadFor(100);
  ASSERT_FALSE(server.Lines().empty());
  const std::string first = server.Lines()[0];
  ASSERT_NE(first.find("http://127.0.0.1:"), std::string::npos) << first;
  const int port = std::stoi(first.substr(first.rfind(':') + 1));
  httplib::Client client("127.0.0.1", port);
  client.set_read_timeout(20, 0);

  std::ifstream in(testing::EnvOr("MODELREG_DOCS", "docs") + "/openapi.json", std::ios::binary);
  std::ostringstream file;
  file << in.rdbuf();
  ASSERT_GT(file.str().size(), 1000u);

  auto got = client.Get("/api/v1/openapi.json");
  ASSERT_TRUE(got);
  EXPECT_EQ(got->status, 200);
  EXPECT_EQ(got->get_header_value("Content-Type"), "application/json");
  EXPECT_TRUE(got->body == file.str()) << "the served document differs from docs/openapi.json ("
                                       << got->body.size() << " vs " << file.str().size() << " bytes)";
  EXPECT_EQ(json::parse(got->body)["openapi"], "3.0.3");

  // A token is not needed, and a bad one is not looked at either.
  auto with_bad_token = client.Get("/api/v1/openapi.json", {{"Authorization", "Bearer nonsense"}});
  ASSERT_TRUE(with_bad_token);
  EXPECT_EQ(with_bad_token->status, 200);

  // Read-only: other methods get 405 naming GET; a near miss is a 404.
  auto post = client.Post("/api/v1/openapi.json", "{}", "application/json");
  ASSERT_TRUE(post);
  EXPECT_EQ(post->status, 405);
  EXPECT_EQ(post->get_header_value("Allow"), "GET");
  EXPECT_EQ(json::parse(post->body)["error"]["code"], "method_not_allowed");
  auto near = client.Get("/api/v1/openapiXjson");
  ASSERT_TRUE(near);
  EXPECT_EQ(near->status, 404);
  EXPECT_EQ(json::parse(near->body)["error"]["code"], "not_found");

  auto metrics = client.Get("/metrics");
  ASSERT_TRUE(metrics);
  EXPECT_NE(metrics->body.find(
                "modelreg_http_requests_total{route=\"GET /api/v1/openapi.json\",code=\"200\"} 2"),
            std::string::npos)
      << metrics->body;
  const int status = server.SignalAndWait(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// Every operation's answers, success and error, against docs/openapi.json:
// each status documented for its operation, the Content-Type listed, the
// JSON body valid against the documented schema (support/openapi.h). A
// field renamed in the code, or a status the document forgot, fails here.
TEST_F(HttpApi, EveryAnswerMatchesTheOpenApiDocument) {
  const testing::OpenApiDoc doc = testing::OpenApiDoc::Load();
  ASSERT_TRUE(doc.json().is_object()) << "cannot read " << testing::OpenApiDoc::Path();
  std::set<std::string> operations;  // "METHOD template" answered at least once with a 2xx
  int checked = 0;
  auto check = [&](const std::string& method, const std::string& route, const httplib::Result& r,
                   int expected) {
    ASSERT_TRUE(r) << method << " " << route << ": " << httplib::to_string(r.error());
    EXPECT_EQ(r->status, expected) << method << " " << route << ": " << r->body;
    std::string problems;
    for (const auto& p : doc.CheckAnswer(method, route, r->status, r->get_header_value("Content-Type"),
                                         r->body)) {
      problems += p + "\n";
    }
    EXPECT_TRUE(problems.empty()) << problems << r->body.substr(0, 2000);
    if (r->status < 300) operations.insert(method + " " + route);
    ++checked;
  };
  const std::string m = "/api/v1/models/";
  const std::string t_start = FormatUtc(SystemClock::Instance().NowNs());

  check("GET", "/healthz", client_->Get("/healthz"), 200);
  check("GET", "/metrics", client_->Get("/metrics"), 200);
  check("GET", "/api/v1/openapi.json", client_->Get("/api/v1/openapi.json"), 200);
  check("GET", "/", client_->Get("/"), 200);
  check("GET", "/ui/app.js", client_->Get("/ui/app.js"), 200);
  check("GET", "/ui/style.css", client_->Get("/ui/style.css"), 200);
  check("GET", "/api/v1/integrity", client_->Get("/api/v1/integrity", Read()), 200);
  check("GET", "/api/v1/integrity", client_->Get("/api/v1/integrity"), 401);
  check("GET", "/api/v1/models/{type}/current", client_->Get(m + "risk_model/current", Read()), 404);
  check("GET", "/api/v1/models", client_->Get("/api/v1/models"), 401);
  check("GET", "/api/v1/models/{type}", client_->Get(m + "Risk", Read()), 400);

  const std::string meta = R"({"metrics": {"ic": 0.05, "sharpe": 1.2}, "dataset_version_ids": {"crsp": "v1"}})";
  check("POST", "/api/v1/models/{type}/{version}", Upload("risk_model", "v1.0.0", "w1", meta), 201);
  check("POST", "/api/v1/models/{type}/{version}", Upload("risk_model", "v1.0.0", "w1", meta), 200);
  check("POST", "/api/v1/models/{type}/{version}", Upload("risk_model", "v1.0.0", "other"), 409);
  check("POST", "/api/v1/models/{type}/{version}", Upload("risk_model", "v1.1.0", "w2", meta), 201);
  check("POST", "/api/v1/models/{type}/{version}", Upload("alpha_value", "v0.1.0", "w3"), 201);

  check("GET", "/api/v1/models", client_->Get("/api/v1/models?limit=1", Read()), 200);
  check("GET", "/api/v1/models/{type}", client_->Get(m + "risk_model?sort=sharpe&tag=desk%3Deq", Read()), 200);
  check("GET", "/api/v1/models/{type}", client_->Get(m + "risk_model?status=bogus", Read()), 400);
  check("POST", "/api/v1/models/{type}/{version}/promote",
        PostJson(m + "risk_model/v1.0.0/promote", {{"reason", "weekly"}}, Read()), 403);
  check("POST", "/api/v1/models/{type}/{version}/promote",
        PostJson(m + "risk_model/v1.0.0/promote", {{"reason", "weekly"}}, Write()), 200);
  check("POST", "/api/v1/models/{type}/{version}/promote",
        PostJson(m + "risk_model/v1.1.0/promote", {{"expect_current", "none"}}, Write()), 409);
  check("POST", "/api/v1/models/{type}/{version}/promote",
        PostJson(m + "risk_model/v9.0.0/promote", json::object(), Write()), 404);
  check("GET", "/api/v1/models/{type}/current", client_->Get(m + "risk_model/current", Read()), 200);
  check("POST", "/api/v1/models/{type}/{version}/annotate",
        PostJson(m + "risk_model/v1.0.0/annotate",
                 {{"set_tags", {{"desk", "eq"}}}, {"description", "d"}, {"metrics", {{"hit_rate", 0.5}}},
                  {"source", "paper"}, {"reason", "r"}},
                 Write()),
        200);
  check("POST", "/api/v1/models/{type}/{version}/annotate",
        PostJson(m + "risk_model/v1.0.0/annotate", {{"colour", "red"}, {"reason", "r"}}, Write()), 400);
  check("GET", "/api/v1/models/{type}/{version}", client_->Get(m + "risk_model/v1.0.0", Read()), 200);
  check("GET", "/api/v1/models/{type}/{version}", client_->Get(m + "risk_model/v1.0.0?at=" + t_start, Read()), 404);
  check("GET", "/api/v1/models/{type}", client_->Get(m + "risk_model?tag=desk%3Deq", Read()), 200);
  check("POST", "/api/v1/models/{type}/{version}/promote",
        PostJson(m + "risk_model/v1.1.0/promote", {{"expect_current", "v1.0.0"}}, Write()), 200);
  check("GET", "/api/v1/models/{type}/history", client_->Get(m + "risk_model/history?limit=1", Read()), 200);
  check("GET", "/api/v1/models/{type}/history", client_->Get(m + "risk_model/history?cursor=x", Read()), 400);

  check("GET", "/api/v1/models/{type}/{version}/artifact", client_->Get(m + "risk_model/v1.1.0/artifact", Read()), 200);
  httplib::Headers ranged = Read();
  ranged.emplace("Range", "bytes=0-0");
  check("GET", "/api/v1/models/{type}/{version}/artifact", client_->Get(m + "risk_model/v1.1.0/artifact", ranged), 206);
  check("GET", "/api/v1/models/{type}/{version}/artifact", client_->Get(m + "risk_model/v7.0.0/artifact", Read()), 404);
  check("POST", "/api/v1/models/{type}/{version}/validate",
        PostJson(m + "risk_model/v1.1.0/validate", json::object(), Write()), 200);

  check("POST", "/api/v1/models/{type}/consumers/{id}/ack",
        PostJson(m + "risk_model/consumers/svc-1/ack", {{"version", "v1.1.0"}, {"ok", true}}, Read()), 200);
  check("POST", "/api/v1/models/{type}/consumers/{id}/ack",
        PostJson(m + "risk_model/consumers/svc-2/ack",
                 {{"version", "v1.0.0"}, {"ok", false}, {"attempted_version", "v1.1.0"}, {"detail", "oom"}}, Read()),
        200);
  check("POST", "/api/v1/models/{type}/consumers/{id}/ack",
        PostJson(m + "risk_model/consumers/svc-1/ack", {{"ok", "yes"}}, Read()), 400);
  check("GET", "/api/v1/models/{type}/consumers", client_->Get(m + "risk_model/consumers", Read()), 200);

  const std::string policy = "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
  check("GET", "/api/v1/policy", client_->Get("/api/v1/policy", Read()), 200);
  check("GET", "/api/v1/policy", client_->Get("/api/v1/policy?at=2000-01-01", Read()), 200);
  check("PUT", "/api/v1/policy",
        client_->Put("/api/v1/policy", Admin(), json{{"text", policy + "# v2\n"}, {"reason", "r"}}.dump(),
                     "application/json"),
        200);
  check("POST", "/api/v1/policy", PostJson("/api/v1/policy", {{"text", policy + "# v2\n"}, {"reason", "r"}}, Admin()), 200);
  check("PUT", "/api/v1/policy",
        client_->Put("/api/v1/policy", Write(), json{{"text", policy}, {"reason", "r"}}.dump(), "application/json"),
        403);
  check("POST", "/api/v1/policy", PostJson("/api/v1/policy", {{"reason", "r"}}, Admin()), 400);

  check("GET", "/api/v1/audit", client_->Get("/api/v1/audit?at=now", Read()), 200);
  check("GET", "/api/v1/audit", client_->Get("/api/v1/audit?at=now&type=risk_model", Read()), 200);
  check("GET", "/api/v1/audit", client_->Get("/api/v1/audit", Read()), 400);
  check("GET", "/api/v1/diff", client_->Get("/api/v1/diff?from=" + t_start + "&to=now", Read()), 200);
  check("GET", "/api/v1/diff", client_->Get("/api/v1/diff?from=now", Read()), 400);
  check("GET", "/api/v1/events", client_->Get("/api/v1/events?limit=2", Read()), 200);
  check("GET", "/api/v1/events", client_->Get("/api/v1/events?after=1&limit=1000", Read()), 200);
  check("GET", "/api/v1/events", client_->Get("/api/v1/events?limit=0", Read()), 400);

  check("POST", "/api/v1/models/{type}/rollback",
        PostJson(m + "risk_model/rollback", {{"reason", "r"}, {"dry_run", true}}, Write()), 200);
  check("POST", "/api/v1/models/{type}/rollback",
        PostJson(m + "risk_model/rollback", {{"reason", "losing money"}, {"fail_current", true}}, Write()), 200);
  check("POST", "/api/v1/models/{type}/rollback", PostJson(m + "risk_model/rollback", {{"to", "v5.0.0"}}, Write()), 404);
  check("POST", "/api/v1/models/{type}/{version}/archive",
        PostJson(m + "alpha_value/v0.1.0/archive", {{"reason", "old"}}, Write()), 200);
  check("POST", "/api/v1/models/{type}/{version}/fail",
        PostJson(m + "alpha_value/v0.1.0/fail", {{"reason", "bad"}}, Write()), 200);
  check("POST", "/api/v1/models/{type}/{version}/archive",
        PostJson(m + "alpha_value/v0.1.0/archive", json::object(), Write()), 409);
  check("POST", "/api/v1/models/{type}/{version}/fail",
        PostJson(m + "alpha_value/v0.1.0/fail", {{"force", "yes"}}, Write()), 400);
  check("GET", "/api/v1/models/{type}/current", client_->Get(m + "risk_model/current?at=" + t_start, Read()), 404);
  check("GET", "/api/v1/models", client_->Get("/api/v1/models?at=now&status=failed", Read()), 200);

  check("POST", "/api/v1/admin/gc", PostJson("/api/v1/admin/gc", {{"dry_run", true}, {"keep", 0}, {"retention_days", 0}}, Admin()), 200);
  check("POST", "/api/v1/admin/gc", PostJson("/api/v1/admin/gc", {{"keep", 0}, {"retention_days", 0}, {"reason", "tidy"}}, Admin()), 200);
  check("POST", "/api/v1/admin/gc", PostJson("/api/v1/admin/gc", {{"keep", -1}}, Admin()), 400);
  check("POST", "/api/v1/admin/gc", PostJson("/api/v1/admin/gc", json::object(), Write()), 403);
  check("POST", "/api/v1/admin/backups", PostJson("/api/v1/admin/backups", json::object(), Admin()), 200);
  check("POST", "/api/v1/admin/backups", PostJson("/api/v1/admin/backups", {{"to", "/tmp"}}, Admin()), 400);
  check("GET", "/api/v1/events", client_->Get("/api/v1/events?since=" + t_start + "&until=now", Read()), 200);
  check("GET", "/api/v1/models", client_->Get("/api/v1/models?since=now&until=" + t_start, Read()), 400);

  // Checkpoints and proofs: 404 while the server signs none, then with a key.
  check("GET", "/api/v1/checkpoint", client_->Get("/api/v1/checkpoint", Read()), 404);
  {
    auto key = note::GenerateKey("modelreg.test/http");
    ASSERT_TRUE(key);
    proofs::PublisherOptions po;
    po.key = *key;
    proofs::CheckpointPublisher publisher(reg_->Log(), po);
    ASSERT_TRUE(publisher.Start().ok());
    // With a background verification too: the integrity answer carries
    // its result and the checkpoint.
    server::IntegrityMonitor monitor(reg_->root(), std::chrono::seconds(3600));
    monitor.Start();
    for (int i = 0; i < 2000 && !monitor.Latest(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    ASSERT_TRUE(monitor.Latest());
    EXPECT_TRUE(monitor.Latest()->ok) << monitor.Latest()->problem;
    server::ServerOptions so;
    so.checkpoints = &publisher;
    so.integrity = &monitor;
    Start(auth::VerifierConfig{kSecret, "", "", "", true, &SystemClock::Instance()}, so);
    check("GET", "/api/v1/integrity", client_->Get("/api/v1/integrity", Read()), 200);
    {
      auto integrity = client_->Get("/api/v1/integrity", Read());
      ASSERT_TRUE(integrity && integrity->status == 200);
      const json j = json::parse(integrity->body);
      EXPECT_EQ(j["verify"]["ok"], true) << integrity->body;
      EXPECT_TRUE(j["checkpoint"].is_object()) << integrity->body;
      EXPECT_EQ(j["verify_every_seconds"], 3600);
    }
    check("GET", "/api/v1/checkpoint", client_->Get("/api/v1/checkpoint", Read()), 200);
    check("GET", "/api/v1/checkpoint", client_->Get("/api/v1/checkpoint"), 401);
    check("GET", "/api/v1/proofs/events/{seq}", client_->Get("/api/v1/proofs/events/2", Read()), 200);
    check("GET", "/api/v1/proofs/events/{seq}", client_->Get("/api/v1/proofs/events/999999", Read()), 404);
    check("GET", "/api/v1/proofs/consistency",
          client_->Get("/api/v1/proofs/consistency?from=1", Read()), 200);
    check("GET", "/api/v1/proofs/consistency",
          client_->Get("/api/v1/proofs/consistency?from=0", Read()), 400);
    // The document checks with the checker verify-proof uses.
    auto proof = client_->Get("/api/v1/proofs/events/3", Read());
    ASSERT_TRUE(proof && proof->status == 200);
    auto checked = proofs::CheckDocument(json::parse(proof->body), key->verifier);
    EXPECT_TRUE(checked) << checked.error().ToString();
    StopServer();
  }

  // Every documented operation was answered with a success at least once.
  for (const auto& [path, item] : doc.json()["paths"].items()) {
    for (const char* method : {"get", "put", "post"}) {
      if (!item.contains(method)) continue;
      std::string upper = method;
      for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
      EXPECT_EQ(operations.count(upper + " " + path), 1u) << upper << " " << path << " never succeeded here";
    }
  }
  EXPECT_GE(checked, 50);
}

// The 405 of a path with GET, PUT and POST routes lists all three.
TEST_F(HttpApi, MethodNotAllowedListsPutToo) {
  auto r = client_->Delete("/api/v1/policy");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 405);
  EXPECT_EQ(r->get_header_value("Allow"), "GET, POST, PUT");
  EXPECT_EQ(json::parse(r->body)["error"]["code"], "method_not_allowed");
}

}  // namespace
}  // namespace modelreg
