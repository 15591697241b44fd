// A real NATS JetStream cluster for tests: N (default 3) `nats-server`
// processes on 127.0.0.1, each with its own free ports (client, cluster
// route, HTTP monitoring), its own directory (config, JetStream store, log)
// under one temporary directory removed at the end.
//
// The server is $MODELREG_NATS_SERVER, else `nats-server` on PATH, else
// /usr/sbin/nats-server. Without one, Start() fails the test ("nats-server
// not found: tools/install-deps installs it"); it never skips.
//
// One node (NatsCluster(1)) is a standalone JetStream server, without a
// cluster block. Nodes are numbered from 0; node i is named n<i+1> (its server_name). Each
// node's output goes to <dir>/n<i+1>/server.log; when the test program has
// failed by the time the cluster is destroyed, the last lines of each log
// are printed to stderr (PrintLogTails() prints them at any time).
//
// The nodes get SIGKILL when the test program dies, however it dies
// (PR_SET_PDEATHSIG) — or when the thread that started them ends, so start
// them from the test's own thread.
//
// Thread-safety: one thread.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "support/temp_dir.h"

namespace modelreg::testing {

class NatsCluster {
 public:
  explicit NatsCluster(int nodes = 3);
  // Stops every node still running (SIGTERM, SIGKILL after 10 s).
  ~NatsCluster();
  NatsCluster(const NatsCluster&) = delete;
  NatsCluster& operator=(const NatsCluster&) = delete;

  // Starts every node and waits, polling until `deadline`, until each one
  // answers /healthz with 200 (client port open, JetStream current), all
  // report the same meta leader, and that leader counts every other node
  // as a current peer: a stream with as many replicas as nodes can then be
  // created at once. A failure says why, with the nodes' log tails.
  [[nodiscard]] ::testing::AssertionResult Start(
      std::chrono::milliseconds deadline = std::chrono::seconds(30));

  int size() const { return static_cast<int>(nodes_.size()); }
  // nats://127.0.0.1:PORT of every node, in order.
  std::vector<std::string> Urls() const;
  // The same, comma-joined.
  std::string UrlsJoined() const;
  // Node i's client url.
  const std::string& Url(int i) const { return nodes_.at(static_cast<std::size_t>(i)).url; }
  // Node i's directory (server.conf, server.log, jetstream/).
  std::string Dir(int i) const;
  // Whether node i's process is running (not stopped, killed or exited).
  bool Running(int i);

  // SIGKILL to node i (no shutdown at all), and reaps it.
  void Kill(int i);
  // SIGTERM to node i and waits for it to exit (SIGKILL after 10 s: a
  // failure).
  [[nodiscard]] ::testing::AssertionResult Stop(int i);
  // Starts node i again, stopped or killed, with the same config, ports and
  // store directory, and waits as Start() does for the running nodes.
  [[nodiscard]] ::testing::AssertionResult Restart(
      int i, std::chrono::milliseconds deadline = std::chrono::seconds(30));

  // The node leading stream `stream` (of the default account) as the
  // running nodes' /jsz reports it, or -1 when none does (yet).
  int StreamLeader(const std::string& stream);

  // The last `lines` lines of node i's log.
  std::string LogTail(int i, int lines = 30) const;
  // Every node's log tail to stderr, under a header naming the file.
  void PrintLogTails(int lines = 30) const;

  // The nats-server binary (see above), or "" if none is found.
  static std::string FindServer();

 private:
  struct Node {
    std::string name;  // n1, n2, ...
    int client_port = 0;
    int cluster_port = 0;
    int http_port = 0;
    std::string url;
    pid_t pid = -1;
  };
  ::testing::AssertionResult Launch(int i);
  ::testing::AssertionResult WaitReady(std::chrono::milliseconds deadline);
  // Why the running nodes are not ready yet; "" when they are.
  std::string NotReady();
  ::testing::AssertionResult Failure(const std::string& why) const;

  TempDir dir_;
  std::string server_;
  std::vector<Node> nodes_;
};

}  // namespace modelreg::testing
