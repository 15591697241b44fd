#include "server/integrity.h"

#include "common/sha256.h"
#include "registry/registry.h"

namespace modelreg::server {

using nlohmann::json;

json IntegrityJson(const IntegrityCheck& c) {
  return json{{"started_at", FormatUtc(c.started_at)},
              {"finished_at", FormatUtc(c.finished_at)},
              {"ok", c.ok},
              {"chain_ok", c.chain_ok},
              {"events", c.events},
              {"first_bad_seq", c.ok ? json() : json(c.first_bad_seq)},
              {"problem", c.problem},
              {"tree_checked", c.tree_checked},
              {"tree_root", c.tree_checked ? json(c.tree_root) : json()},
              {"projection_ok", c.projection_ok}};
}

void IntegrityMonitor::Start() {
  if (thread_.joinable()) return;
  thread_ = std::thread([this] { Loop(); });
}

void IntegrityMonitor::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::optional<IntegrityCheck> IntegrityMonitor::Latest() const {
  std::lock_guard<std::mutex> lock(mu_);
  return latest_;
}

IntegrityCheck IntegrityMonitor::CheckOnce() const {
  IntegrityCheck c;
  c.started_at = SystemClock::Instance().NowNs();
  registry::RegistryOptions o;
  o.root = root_;
  o.read_only = true;
  o.on_warning = [](const std::string&) {};
  auto reg = registry::Registry::Open(o);
  Result<registry::VerifyResult> v =
      reg ? (*reg)->Verify() : Result<registry::VerifyResult>(Err(reg.error()));
  c.finished_at = SystemClock::Instance().NowNs();
  if (!v) {
    c.problem = v.error().ToString();
    return c;
  }
  c.chain_ok = v->chain.ok;
  c.events = v->chain.events;
  c.first_bad_seq = v->chain.first_bad_seq;
  c.tree_checked = v->chain.tree_checked;
  if (c.tree_checked) c.tree_root = ToHex(v->chain.tree_root);
  c.projection_ok = v->projection_ok;
  c.ok = v->chain.ok && v->projection_ok;
  if (!v->chain.ok) {
    c.problem = v->chain.problem;
  } else if (!v->projection_ok) {
    c.problem = registry::DescribeProjectionMismatch(*v);
  }
  return c;
}

void IntegrityMonitor::Loop() {
  for (;;) {
    IntegrityCheck c = CheckOnce();
    std::unique_lock<std::mutex> lock(mu_);
    latest_ = std::move(c);
    if (every_.count() == 0) {
      wake_.wait(lock, [this] { return stop_; });
      return;
    }
    if (wake_.wait_for(lock, every_, [this] { return stop_; })) return;
  }
}

}  // namespace modelreg::server
