// End-to-end (issue 22): replication through NATS JetStream with the real
// engine — a 3-node nats-server cluster (tests/support/nats_cluster.h), the
// real `modelreg` binaries as leader (`serve` or CLI writes), followers
// (`modelreg follow`) and failover (`modelreg promote-follower`). Every
// acknowledged write must reach the followers and survive the leader's
// loss; a former leader is fenced; a tampered stream is refused.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/sha256.h"
#include "replication/jetstream.h"
#include "support/child.h"
#include "support/nats_cluster.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::Has;
using testing::RunCmd;
using testing::RunResult;
using Steady = std::chrono::steady_clock;

std::string Bin() { return testing::EnvOr("MODELREG_BIN", "modelreg"); }

constexpr const char* kSecret = "0123456789abcdef0123456789abcdef-replication";

class Replication : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(cluster_.Start());
    std::ofstream(dir_.sub("model.pkl")) << "weights";
    leader_ = dir_.sub("leader");
    follower_ = dir_.sub("follower");
  }
  void TearDown() override {
    if (HasFailure()) cluster_.PrintLogTails();
  }

  std::string Mr(const std::string& root, const std::string& env = "") {
    return env + Bin() + " --root " + root + " ";
  }
  RunResult Register(const std::string& root, const std::string& type, const std::string& version,
                     const std::string& env = "") {
    return RunCmd(Mr(root, env) + "register " + type + " " + dir_.sub("model.pkl") +
                  " --version " + version);
  }
  RunResult Enable(const std::string& mode = "sync") {
    return RunCmd(Mr(leader_) + "replication enable --nats " + cluster_.UrlsJoined() +
                  " --stream prod --mode " + mode);
  }
  // `replication status --json` of a registry.
  json Status(const std::string& root) {
    RunResult r = RunCmd(Mr(root) + "--json replication status");
    if (r.rc != 0) return json{{"error", r.err}};
    return json::parse(r.out);
  }
  // Waits until the follower holds `seq` events (or the deadline).
  bool WaitFollowerAt(std::uint64_t seq, std::chrono::seconds limit = std::chrono::seconds(60)) {
    const auto until = Steady::now() + limit;
    while (Steady::now() < until) {
      json s = Status(follower_);
      if (s.contains("log_head") && s["log_head"].get<std::uint64_t>() >= seq) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  std::string Events(const std::string& root) {
    RunResult r = RunCmd(Mr(root) + "--json events --limit 0");
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.out;
  }
  std::uint64_t Head(const std::string& root) {
    json s = Status(root);
    return s.value("log_head", std::uint64_t{0});
  }

  // `modelreg serve` on the leader: its URL; writers' and readers' tokens.
  struct Server {
    std::unique_ptr<testing::Child> child;
    std::string url, write_env, read_token_file;
  };
  Server Serve(const std::string& root) {
    Server s;
    s.child = std::make_unique<testing::Child>(std::vector<std::string>{
        "/bin/sh", "-c",
        std::string("exec env MODELREG_JWT_SECRET=") + kSecret + " " + Mr(root) +
            "serve --listen 127.0.0.1:0 --exit-after 600"});
    for (int i = 0; i < 600 && s.child->Lines().empty(); ++i) s.child->ReadFor(100);
    EXPECT_FALSE(s.child->Lines().empty()) << "the server never announced itself";
    if (s.child->Lines().empty()) return s;
    const std::string line = s.child->Lines()[0];
    s.url = line.substr(line.rfind(' ') + 1);
    const auto token = [&](const std::string& scope) {
      RunResult t = RunCmd(std::string("env MODELREG_JWT_SECRET=") + kSecret + " " + Mr(root) +
                           "token issue --sub repl --scope " + scope + " --ttl 1h");
      EXPECT_EQ(t.rc, 0) << t.err;
      return t.out.substr(0, t.out.find('\n'));
    };
    s.write_env = "env MODELREG_TOKEN=" + token("model:write") + " ";
    s.read_token_file = dir_.sub("read.token");
    std::ofstream(s.read_token_file) << token("model:read") << "\n";
    return s;
  }
  std::unique_ptr<testing::Child> Follow(const std::string& artifacts_from,
                                         const std::string& extra = "") {
    auto c = std::make_unique<testing::Child>(std::vector<std::string>{
        "/bin/sh", "-c",
        "exec " + Mr(follower_) + "follow --nats " + cluster_.UrlsJoined() +
            " --stream prod --artifacts-from " + artifacts_from + " " + extra});
    for (int i = 0; i < 300 && c->Lines().empty(); ++i) c->ReadFor(100);
    EXPECT_FALSE(c->Lines().empty()) << "the follower never started";
    if (!c->Lines().empty()) {
      EXPECT_TRUE(Has(c->Lines()[0], "following stream 'prod'")) << c->Lines()[0];
    }
    return c;
  }

  testing::NatsCluster cluster_;
  testing::TempDir dir_;
  std::string leader_, follower_;
};

// A follower starts from nothing while the leader already has events, and
// stays current while 4 writers write through the leader's server; its log
// is then the leader's, byte for byte (the same JSON of every event), with
// every artifact, and verifies.
TEST_F(Replication, FollowerCatchesUpFromZeroAndStaysCurrentUnderFourWriters) {
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(Register(leader_, "risk_model", "v1.0." + std::to_string(i)).rc, 0);
  }
  RunResult en = Enable();
  ASSERT_EQ(en.rc, 0) << en.err;
  EXPECT_TRUE(Has(en.out, "ships to stream 'prod' (sync mode")) << en.out;
  Server srv = Serve(leader_);
  ASSERT_FALSE(srv.url.empty());
  auto follower = Follow(srv.url, "--token-file " + srv.read_token_file);

  constexpr int kWriters = 4, kEach = 6;
  std::atomic<int> failures{0};
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      const std::string type = "alpha_w" + std::to_string(w);
      for (int k = 0; k < kEach; ++k) {
        RunResult r = Register(leader_, type, "v2.0." + std::to_string(k), srv.write_env);
        if (r.rc != 0) {
          ++failures;
          ADD_FAILURE() << r.err;
        }
        if (k > 0) {
          RunResult a = RunCmd(Mr(leader_, srv.write_env) + "archive " + type + " v2.0." +
                               std::to_string(k - 1));
          if (a.rc != 0) ADD_FAILURE() << a.err;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  ASSERT_EQ(failures.load(), 0);
  const std::uint64_t head = 3 + kWriters * (kEach + kEach - 1);
  ASSERT_EQ(Head(leader_), head);
  ASSERT_TRUE(WaitFollowerAt(head)) << Status(follower_).dump();
  EXPECT_EQ(Events(follower_), Events(leader_));
  RunResult v = RunCmd(Mr(follower_) + "verify");
  EXPECT_EQ(v.rc, 0) << v.out << v.err;
  for (int w = 0; w < kWriters; ++w) {
    const std::string path = follower_ + "/artifacts/alpha_w" + std::to_string(w) + "/v2.0.5/model.pkl";
    EXPECT_EQ(testing::Slurp(path), "weights") << path;
  }
  // The shipper's metrics on the leader's /metrics.
  RunResult m = RunCmd("curl -s " + srv.url + "/metrics");
  EXPECT_TRUE(Has(m.out, "modelreg_replication_shipped_seq{stream=\"prod\",mode=\"sync\"} " +
                             std::to_string(head)))
      << m.out;
  EXPECT_TRUE(Has(m.out, "modelreg_replication_lag_events{stream=\"prod\",mode=\"sync\"} 0"));
  // A follower refuses writes, and reads work beside it.
  RunResult w = Register(follower_, "risk_model", "v9.0.0");
  EXPECT_EQ(w.rc, 4);
  EXPECT_TRUE(Has(w.err, "is a follower of stream 'prod'")) << w.err;
  RunResult show = RunCmd(Mr(follower_) + "show alpha_w3 v2.0.5");
  EXPECT_EQ(show.rc, 0) << show.err;
  const int status = follower->SignalAndWait(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
}

// One NATS node (the stream's leader) is killed during writes: the stream
// keeps its quorum, writes go on, and nothing acknowledged is lost.
TEST_F(Replication, ANatsNodeKilledDuringWritesLosesNothing) {
  ASSERT_EQ(Register(leader_, "risk_model", "v1.0.0").rc, 0);
  ASSERT_EQ(Enable().rc, 0);
  Server srv = Serve(leader_);
  ASSERT_FALSE(srv.url.empty());
  std::mutex mu;
  std::vector<std::string> acked;
  int after_kill = 0, failed = 0;
  std::atomic<bool> killed{false};
  for (int k = 0; k < 200; ++k) {
    const std::string v = "v3.0." + std::to_string(k);
    RunResult r = Register(leader_, "risk_model", v, srv.write_env);
    if (r.rc == 0) {
      acked.push_back(v);
      if (killed) ++after_kill;
    } else {
      ++failed;
    }
    if (acked.size() == 5 && !killed) {
      int node = cluster_.StreamLeader("prod");
      if (node < 0) node = 0;
      cluster_.Kill(node);
      killed = true;
    }
    if (after_kill >= 10) break;
  }
  EXPECT_GE(after_kill, 10) << "writes did not continue after a node was killed (" << failed
                            << " failed)";
  srv.child->SignalAndWait(SIGTERM);
  // Every acknowledged write is in the stream: a follower built from it has them.
  RunResult once = RunCmd(Mr(follower_) + "follow --once --nats " + cluster_.UrlsJoined() +
                          " --stream prod --artifacts-from " + leader_);
  ASSERT_EQ(once.rc, 0) << once.err;
  for (const auto& v : acked) {
    EXPECT_EQ(RunCmd(Mr(follower_) + "show risk_model " + v).rc, 0) << v;
  }
  EXPECT_EQ(Events(follower_), Events(leader_));
  EXPECT_EQ(RunCmd(Mr(follower_) + "verify").rc, 0);
}

// The leader (a server in sync mode) is SIGKILLed while two writers write;
// the follower is promoted: every acknowledged write is on it and it
// verifies; it takes writes; the old leader is fenced, and can follow.
TEST_F(Replication, LeaderKilledInSyncModeFollowerPromotedKeepsEveryAcknowledgedWrite) {
  ASSERT_EQ(Register(leader_, "risk_model", "v1.0.0").rc, 0);
  ASSERT_EQ(Enable().rc, 0);
  Server srv = Serve(leader_);
  ASSERT_FALSE(srv.url.empty());
  auto follower = Follow(leader_);

  std::mutex mu;
  std::vector<std::string> acked;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  for (int w = 0; w < 2; ++w) {
    writers.emplace_back([&, w] {
      for (int k = 0; k < 500 && !stop; ++k) {
        const std::string v = "v4." + std::to_string(w) + "." + std::to_string(k);
        RunResult r = Register(leader_, "risk_model", v, srv.write_env);
        if (r.rc == 0) {
          std::lock_guard<std::mutex> lock(mu);
          acked.push_back(v);
        }
      }
    });
  }
  for (int i = 0; i < 600; ++i) {
    {
      std::lock_guard<std::mutex> lock(mu);
      if (acked.size() >= 12) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  srv.child->Kill();  // SIGKILL, writes in flight
  stop = true;
  for (auto& t : writers) t.join();
  ASSERT_GE(acked.size(), 12u);

  // The follower catches up with the stream, is stopped, and promoted.
  json stream = Status(follower_);
  ASSERT_TRUE(stream.contains("stream_last")) << stream.dump();
  ASSERT_TRUE(WaitFollowerAt(stream["stream_last"].get<std::uint64_t>()));
  follower->SignalAndWait(SIGTERM);
  RunResult p = RunCmd(Mr(follower_) + "promote-follower");
  ASSERT_EQ(p.rc, 0) << p.err;
  EXPECT_TRUE(Has(p.out, "is now the writer of stream 'prod'")) << p.out;
  for (const auto& v : acked) {
    EXPECT_EQ(RunCmd(Mr(follower_) + "show risk_model " + v).rc, 0) << v << " was acknowledged";
  }
  RunResult v = RunCmd(Mr(follower_) + "verify");
  EXPECT_EQ(v.rc, 0) << v.out << v.err;
  RunResult next = Register(follower_, "risk_model", "v5.0.0");
  EXPECT_EQ(next.rc, 0) << next.err;

  // The old leader restarted as a writer: refused, nothing written.
  const std::uint64_t old_head = Head(leader_);
  RunResult zombie = Register(leader_, "risk_model", "v6.0.0");
  EXPECT_EQ(zombie.rc, 4) << zombie.err;
  EXPECT_TRUE(Has(zombie.err, "this registry is fenced")) << zombie.err;
  RunResult zombie_serve = RunCmd(Mr(leader_, std::string("env MODELREG_JWT_SECRET=") + kSecret + " ") +
                                  "serve --listen 127.0.0.1:0 --exit-after 5");
  EXPECT_EQ(zombie_serve.rc, 4) << zombie_serve.out << zombie_serve.err;
  EXPECT_EQ(Head(leader_), old_head);
  // It can follow its successor (its log is a prefix of the stream).
  RunResult back = RunCmd(Mr(leader_) + "follow --once --nats " + cluster_.UrlsJoined() +
                          " --stream prod --artifacts-from " + follower_);
  ASSERT_EQ(back.rc, 0) << back.err;
  EXPECT_EQ(Events(leader_), Events(follower_));
}

// An event published behind the registry's back (an altered copy of a
// real one) is refused by the follower, which names its sequence number
// and writes nothing of it; the leader's next write is refused by the
// stream, whose last sequence is no longer the leader's.
TEST_F(Replication, ATamperedEventIsRefusedWithItsSequenceNumber) {
  ASSERT_EQ(Register(leader_, "risk_model", "v1.0.0").rc, 0);
  ASSERT_EQ(Enable().rc, 0);
  ASSERT_EQ(Register(leader_, "risk_model", "v1.1.0").rc, 0);
  ASSERT_EQ(Register(leader_, "risk_model", "v1.2.0").rc, 0);
  RunResult once = RunCmd(Mr(follower_) + "follow --once --nats " + cluster_.UrlsJoined() +
                          " --stream prod --artifacts-from " + leader_);
  ASSERT_EQ(once.rc, 0) << once.err;
  ASSERT_EQ(Head(follower_), 3u);

  replication::JetStreamOptions jo;
  jo.urls = cluster_.Urls();
  jo.stream = "prod";
  auto js = replication::JetStream::Connect(jo, false);
  ASSERT_TRUE(js.has_value()) << js.error().message();
  auto third = (*js)->Get(3);
  ASSERT_TRUE(third.has_value());
  std::string forged = third->data;
  forged[forged.size() / 2] ^= 0x01;
  auto ack = (*js)->Publish("forged-event", 3, forged,
                            {{"Modelreg-Seq", "4"}, {"Modelreg-Hash", third->headers["Modelreg-Hash"]}});
  ASSERT_TRUE(ack.has_value()) << ack.error().message();

  RunResult refused = RunCmd(Mr(follower_) + "follow --once");
  EXPECT_EQ(refused.rc, 5) << refused.out << refused.err;
  EXPECT_TRUE(Has(refused.err, "event 4 of stream 'prod' fails the hash chain")) << refused.err;
  EXPECT_EQ(Head(follower_), 3u);
  EXPECT_EQ(RunCmd(Mr(follower_) + "verify").rc, 0);

  RunResult write = Register(leader_, "risk_model", "v1.3.0");
  EXPECT_EQ(write.rc, 4) << write.err;
  EXPECT_TRUE(Has(write.err, "stream 'prod'")) << write.err;
  EXPECT_EQ(Head(leader_), 3u);
}

// sync mode with the stream unreachable: a write through the server fails
// with a clear error and nothing is appended; once the cluster is back,
// writes work again (or, when the failed publish was committed after all,
// are refused with that reason). async mode: writes are local first and shipped later.
TEST_F(Replication, SyncWritesFailWhileTheStreamIsDownAndAsyncShipsLater) {
  ASSERT_EQ(Register(leader_, "risk_model", "v1.0.0").rc, 0);
  ASSERT_EQ(Enable().rc, 0);
  Server srv = Serve(leader_);
  ASSERT_FALSE(srv.url.empty());
  ASSERT_EQ(Register(leader_, "risk_model", "v1.1.0", srv.write_env).rc, 0);
  // Two of three nodes gone: no quorum, no acknowledgement.
  cluster_.Kill(0);
  cluster_.Kill(1);
  RunResult down = Register(leader_, "risk_model", "v1.2.0", srv.write_env);
  EXPECT_NE(down.rc, 0);
  EXPECT_TRUE(Has(down.err, "nothing was written")) << down.err;
  EXPECT_EQ(RunCmd(Mr(leader_) + "show risk_model v1.2.0").rc, 3);
  ASSERT_TRUE(cluster_.Restart(0));
  ASSERT_TRUE(cluster_.Restart(1));
  RunResult back = Register(leader_, "risk_model", "v1.2.0", srv.write_env);
  if (back.rc != 0) {
    // The surviving node may have kept the unacknowledged publish and
    // committed it once the quorum was back (docs/replication.md, "How sync
    // mode keeps the log and the stream from diverging"): then the leader
    // refuses every write, and nothing is written.
    EXPECT_EQ(back.rc, 4) << back.err;
    EXPECT_TRUE(Has(back.err, "a failed publish was stored after all")) << back.err;
    EXPECT_EQ(RunCmd(Mr(leader_) + "show risk_model v1.2.0").rc, 3);
  }
  srv.child->SignalAndWait(SIGTERM);

  // async: the registry stops replicating, then ships asynchronously.
  ASSERT_EQ(RunCmd(Mr(leader_) + "replication disable").rc, 0);
  RunResult async_on = RunCmd(Mr(leader_) + "replication enable --nats " + cluster_.UrlsJoined() +
                              " --stream prod --mode async");
  // The stream already has a writer (this registry's earlier identity).
  EXPECT_EQ(async_on.rc, 4) << async_on.err;
  EXPECT_TRUE(Has(async_on.err, "already has a writer")) << async_on.err;
  const std::string other = dir_.sub("other");
  ASSERT_EQ(Register(other, "risk_model", "v1.0.0").rc, 0);
  RunResult a = RunCmd(Mr(other) + "replication enable --nats " + cluster_.UrlsJoined() +
                       " --stream async1 --mode async");
  ASSERT_EQ(a.rc, 0) << a.err;
  ASSERT_EQ(Register(other, "risk_model", "v1.1.0").rc, 0);
  json s = Status(other);
  EXPECT_EQ(s.value("stream_last", std::uint64_t{0}), 2u) << s.dump();
}

// The old leader still running (a `serve` nobody stopped) when its
// follower is promoted: within a second of the promotion its writes are
// refused, and nothing it wrote is lost or forked.
TEST_F(Replication, ARunningOldLeaderIsFencedByThePromotion) {
  ASSERT_EQ(Register(leader_, "risk_model", "v1.0.0").rc, 0);
  ASSERT_EQ(Enable().rc, 0);
  Server srv = Serve(leader_);
  ASSERT_FALSE(srv.url.empty());
  ASSERT_EQ(Register(leader_, "risk_model", "v1.1.0", srv.write_env).rc, 0);
  RunResult once = RunCmd(Mr(follower_) + "follow --once --nats " + cluster_.UrlsJoined() +
                          " --stream prod --artifacts-from " + leader_);
  ASSERT_EQ(once.rc, 0) << once.err;
  RunResult p = RunCmd(Mr(follower_) + "promote-follower");
  ASSERT_EQ(p.rc, 0) << p.err;
  RunResult zombie = Register(leader_, "risk_model", "v1.2.0", srv.write_env);
  EXPECT_EQ(zombie.rc, 4) << zombie.err;
  EXPECT_TRUE(Has(zombie.err, "fenced")) << zombie.err;
  RunResult next = Register(follower_, "risk_model", "v1.2.0");
  EXPECT_EQ(next.rc, 0) << next.err;
  srv.child->SignalAndWait(SIGTERM);
  EXPECT_EQ(Head(leader_), 2u);
  EXPECT_EQ(Head(follower_), 3u);
  EXPECT_EQ(RunCmd(Mr(follower_) + "verify").rc, 0);
}

}  // namespace
}  // namespace modelreg
