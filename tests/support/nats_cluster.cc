#include "support/nats_cluster.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "support/raw_http.h"

namespace modelreg::testing {

namespace {

using Clock = std::chrono::steady_clock;

bool Executable(const std::string& path) {
  struct stat st {};
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
         ::access(path.c_str(), X_OK) == 0;
}

// `count` distinct free TCP ports on 127.0.0.1: all bound at once (port 0)
// so that none is handed out twice, then released for the servers.
std::vector<int> FreePorts(int count) {
  std::vector<int> fds, ports;
  for (int i = 0; i < count; ++i) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) break;
    fds.push_back(fd);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    if (bind(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0 ||
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      break;
    }
    ports.push_back(ntohs(addr.sin_port));
  }
  for (const int fd : fds) close(fd);
  return ports;
}

// GET `path` from 127.0.0.1:port over HTTP/1.0 (the server closes after the
// body): the status (0 when nothing answered) and the body.
std::pair<int, std::string> HttpGet(int port, const std::string& path) {
  const int fd = ConnectLocal(port);
  if (fd < 0) return {0, "connection refused"};
  SendAll(fd, "GET " + path + " HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n");
  const Received r = ReadUntilClosed(fd, std::chrono::seconds(2));
  close(fd);
  const std::size_t end = r.data.find("\r\n\r\n");
  if (r.data.rfind("HTTP/1.", 0) != 0 || r.data.size() < 12 || end == std::string::npos) {
    return {0, "no HTTP answer"};
  }
  return {std::atoi(r.data.c_str() + 9), r.data.substr(end + 4)};
}

std::string Tail(const std::string& text, int lines) {
  std::size_t pos = text.size();
  if (pos > 0 && text[pos - 1] == '\n') --pos;
  for (int n = 0; n < lines && pos != std::string::npos && pos > 0; ++n) {
    pos = text.rfind('\n', pos - 1);
  }
  return pos == std::string::npos || pos == 0 ? text : text.substr(pos + 1);
}

bool WaitExit(pid_t pid, std::chrono::milliseconds limit) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid || (r < 0 && errno == ECHILD)) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

}  // namespace

std::string NatsCluster::FindServer() {
  if (const char* env = std::getenv("MODELREG_NATS_SERVER"); env != nullptr && *env != '\0') {
    return Executable(env) ? env : "";
  }
  if (const char* path = std::getenv("PATH"); path != nullptr) {
    std::stringstream dirs(path);
    for (std::string d; std::getline(dirs, d, ':');) {
      if (d.empty()) continue;
      const std::string candidate = d + "/nats-server";
      if (Executable(candidate)) return candidate;
    }
  }
  return Executable("/usr/sbin/nats-server") ? "/usr/sbin/nats-server" : "";
}

NatsCluster::NatsCluster(int nodes) : server_(FindServer()) {
  nodes_.resize(static_cast<std::size_t>(std::max(1, nodes)));
  for (std::size_t i = 0; i < nodes_.size(); ++i) nodes_[i].name = "n" + std::to_string(i + 1);
}

NatsCluster::~NatsCluster() {
  if (::testing::Test::HasFailure() || ::testing::UnitTest::GetInstance()->Failed()) {
    PrintLogTails();
  }
  for (auto& n : nodes_) {
    if (n.pid > 0) kill(n.pid, SIGTERM);
  }
  for (auto& n : nodes_) {
    if (n.pid > 0 && !WaitExit(n.pid, std::chrono::seconds(10))) {
      kill(n.pid, SIGKILL);
      WaitExit(n.pid, std::chrono::seconds(10));
    }
    n.pid = -1;
  }
}

std::string NatsCluster::Dir(int i) const {
  return dir_.sub(nodes_.at(static_cast<std::size_t>(i)).name);
}

std::vector<std::string> NatsCluster::Urls() const {
  std::vector<std::string> urls;
  for (const auto& n : nodes_) urls.push_back(n.url);
  return urls;
}

std::string NatsCluster::UrlsJoined() const {
  std::string joined;
  for (const auto& n : nodes_) joined += (joined.empty() ? "" : ",") + n.url;
  return joined;
}

::testing::AssertionResult NatsCluster::Failure(const std::string& why) const {
  std::string text = "NATS cluster: " + why;
  for (int i = 0; i < size(); ++i) {
    text += "\n--- " + Dir(i) + "/server.log (last lines) ---\n" + LogTail(i, 15);
  }
  return ::testing::AssertionFailure() << text;
}

::testing::AssertionResult NatsCluster::Start(std::chrono::milliseconds deadline) {
  if (server_.empty()) {
    return ::testing::AssertionFailure()
           << "nats-server not found: tools/install-deps installs it (looked at "
              "$MODELREG_NATS_SERVER, PATH and /usr/sbin/nats-server)";
  }
  const int n = size();
  const std::vector<int> ports = FreePorts(3 * n);
  if (static_cast<int>(ports.size()) != 3 * n) return Failure("no free ports on 127.0.0.1");
  for (int i = 0; i < n; ++i) {
    Node& node = nodes_[static_cast<std::size_t>(i)];
    node.client_port = ports[static_cast<std::size_t>(3 * i)];
    node.cluster_port = ports[static_cast<std::size_t>(3 * i + 1)];
    node.http_port = ports[static_cast<std::size_t>(3 * i + 2)];
    node.url = "nats://127.0.0.1:" + std::to_string(node.client_port);
  }
  std::string routes;
  for (const auto& node : nodes_) {
    routes += "    nats-route://127.0.0.1:" + std::to_string(node.cluster_port) + "\n";
  }
  for (int i = 0; i < n; ++i) {
    const Node& node = nodes_[static_cast<std::size_t>(i)];
    std::error_code ec;
    std::filesystem::create_directories(Dir(i) + "/jetstream", ec);
    if (ec) return Failure("cannot create " + Dir(i) + ": " + ec.message());
    std::ofstream conf(Dir(i) + "/server.conf");
    conf << "server_name: " << node.name << "\n"
         << "listen: 127.0.0.1:" << node.client_port << "\n"
         << "http: 127.0.0.1:" << node.http_port << "\n"
         << "jetstream {\n"
         << "  store_dir: \"" << Dir(i) << "/jetstream\"\n"
         << "  max_mem: 64MB\n"
         << "  max_file: 1GB\n"
         << "}\n";
    // One node: standalone JetStream (a cluster of one never elects a
    // meta leader).
    if (n > 1) {
      conf << "cluster {\n"
           << "  name: modelreg-test\n"
           << "  listen: 127.0.0.1:" << node.cluster_port << "\n"
           << "  routes: [\n"
           << routes << "  ]\n"
           << "}\n";
    }
    if (!conf.flush()) return Failure("cannot write " + Dir(i) + "/server.conf");
  }
  for (int i = 0; i < n; ++i) {
    if (auto launched = Launch(i); !launched) return launched;
  }
  return WaitReady(deadline);
}

::testing::AssertionResult NatsCluster::Launch(int i) {
  Node& node = nodes_.at(static_cast<std::size_t>(i));
  if (node.pid > 0) return Failure(node.name + " is already running");
  // Everything the child needs is prepared before fork: between fork and
  // exec it calls only async-signal-safe functions (no malloc: libnats'
  // threads may hold its locks in this process).
  const std::string log = Dir(i) + "/server.log";
  const std::string conf = Dir(i) + "/server.conf";
  std::vector<char*> argv = {server_.data(), const_cast<char*>("-c"), const_cast<char*>(conf.c_str()),
                             nullptr};
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) return Failure("fork: " + std::string(std::strerror(errno)));
  if (pid == 0) {
    // Killed with the test program, whatever way it ends.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(127);
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (in < 0 || out < 0) _exit(127);
    dup2(in, STDIN_FILENO);
    dup2(out, STDOUT_FILENO);
    dup2(out, STDERR_FILENO);
    if (close_range(3, ~0U, 0) != 0) {
      for (int fd = 3; fd < 4096; ++fd) close(fd);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  node.pid = pid;
  return ::testing::AssertionSuccess();
}

bool NatsCluster::Running(int i) {
  Node& node = nodes_.at(static_cast<std::size_t>(i));
  if (node.pid <= 0) return false;
  int status = 0;
  const pid_t r = waitpid(node.pid, &status, WNOHANG);
  if (r == node.pid || (r < 0 && errno == ECHILD)) {
    node.pid = -1;
    return false;
  }
  return true;
}

std::string NatsCluster::NotReady() {
  std::vector<int> running;
  for (int i = 0; i < size(); ++i) {
    if (Running(i)) running.push_back(i);
  }
  if (running.empty()) return "no node is running";
  std::string leader;
  std::map<std::string, nlohmann::json> meta;  // node name -> its /jsz meta_cluster
  for (const int i : running) {
    const Node& node = nodes_[static_cast<std::size_t>(i)];
    const auto [health_status, health] = HttpGet(node.http_port, "/healthz");
    if (health_status != 200) {
      return node.name + ": /healthz " + std::to_string(health_status) + " " + health;
    }
    if (size() == 1) return "";  // standalone: no meta group
    const auto [jsz_status, jsz] = HttpGet(node.http_port, "/jsz");
    const auto j = nlohmann::json::parse(jsz, nullptr, false);
    if (jsz_status != 200 || j.is_discarded() || !j.contains("meta_cluster")) {
      return node.name + ": /jsz " + std::to_string(jsz_status) + " without meta_cluster";
    }
    const auto& mc = j["meta_cluster"];
    const std::string l = mc.contains("leader") && mc["leader"].is_string()
                              ? mc["leader"].get<std::string>()
                              : "";
    if (l.empty()) return node.name + ": no JetStream meta leader yet";
    if (!leader.empty() && l != leader) return "meta leaders differ: " + leader + ", " + l;
    leader = l;
    meta[node.name] = mc;
  }
  if (meta.count(leader) == 0) return "the meta leader " + leader + " is not a running node";
  const auto& lm = meta[leader];
  std::set<std::string> current;
  if (lm.contains("replicas") && lm["replicas"].is_array()) {
    for (const auto& r : lm["replicas"]) {
      if (r.value("current", false) && r.contains("name") && r["name"].is_string()) {
        current.insert(r["name"].get<std::string>());
      }
    }
  }
  for (const int i : running) {
    const std::string& name = nodes_[static_cast<std::size_t>(i)].name;
    if (name != leader && current.count(name) == 0) {
      return "the meta leader " + leader + " does not count " + name + " as a current peer yet";
    }
  }
  return "";
}

::testing::AssertionResult NatsCluster::WaitReady(std::chrono::milliseconds deadline) {
  const auto until = Clock::now() + deadline;
  std::string why;
  for (;;) {
    for (int i = 0; i < size(); ++i) {
      const Node& node = nodes_[static_cast<std::size_t>(i)];
      // A node that was launched and is gone: no use waiting.
      if (node.pid > 0 && !Running(i)) return Failure(node.name + " exited (see its log)");
    }
    why = NotReady();
    if (why.empty()) return ::testing::AssertionSuccess();
    if (Clock::now() >= until) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return Failure("not ready after " + std::to_string(deadline.count()) + " ms: " + why);
}

void NatsCluster::Kill(int i) {
  Node& node = nodes_.at(static_cast<std::size_t>(i));
  if (node.pid <= 0) return;
  kill(node.pid, SIGKILL);
  WaitExit(node.pid, std::chrono::seconds(10));
  node.pid = -1;
}

::testing::AssertionResult NatsCluster::Stop(int i) {
  Node& node = nodes_.at(static_cast<std::size_t>(i));
  if (node.pid <= 0) return ::testing::AssertionSuccess();
  kill(node.pid, SIGTERM);
  const bool exited = WaitExit(node.pid, std::chrono::seconds(10));
  if (!exited) {
    kill(node.pid, SIGKILL);
    WaitExit(node.pid, std::chrono::seconds(10));
  }
  node.pid = -1;
  if (!exited) return Failure(node.name + " did not exit within 10 s of SIGTERM (killed)");
  return ::testing::AssertionSuccess();
}

::testing::AssertionResult NatsCluster::Restart(int i, std::chrono::milliseconds deadline) {
  if (server_.empty()) return Start(deadline);  // the same "not found" failure
  if (Running(i)) return Failure(nodes_.at(static_cast<std::size_t>(i)).name + " is running");
  if (auto launched = Launch(i); !launched) return launched;
  return WaitReady(deadline);
}

int NatsCluster::StreamLeader(const std::string& stream) {
  for (int i = 0; i < size(); ++i) {
    if (!Running(i)) continue;
    const auto [status, body] =
        HttpGet(nodes_[static_cast<std::size_t>(i)].http_port, "/jsz?accounts=true&streams=true");
    const auto j = nlohmann::json::parse(body, nullptr, false);
    if (status != 200 || j.is_discarded() || !j.contains("account_details") ||
        !j["account_details"].is_array()) {
      continue;
    }
    for (const auto& account : j["account_details"]) {
      if (!account.contains("stream_detail") || !account["stream_detail"].is_array()) continue;
      for (const auto& st : account["stream_detail"]) {
        if (st.value("name", "") != stream || !st.contains("cluster")) continue;
        const std::string leader = st["cluster"].value("leader", "");
        for (int k = 0; k < size(); ++k) {
          if (!leader.empty() && nodes_[static_cast<std::size_t>(k)].name == leader) return k;
        }
      }
    }
  }
  return -1;
}

std::string NatsCluster::LogTail(int i, int lines) const {
  std::ifstream in(Dir(i) + "/server.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return Tail(ss.str(), lines);
}

void NatsCluster::PrintLogTails(int lines) const {
  for (int i = 0; i < size(); ++i) {
    std::cerr << "--- " << Dir(i) << "/server.log (last " << lines << " lines) ---\n"
              << LogTail(i, lines) << "\n";
  }
}

}  // namespace modelreg::testing
