// The registry's life: open, close, and the in-memory state (load, read,
// wait, follow). The commands, the rows and the other concerns are in the
// files internal.h lists.
#include "registry/registry.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>

#include "common/fs.h"
#include "model/naming.h"
#include "registry/internal.h"

namespace modelreg::registry {

namespace fs = std::filesystem;
using internal::kProjectionCf;

std::vector<const VersionRecord*> SortedVersions(const projection::TypeState& ts) {
  std::vector<const VersionRecord*> out;
  for (const auto& [v, rec] : ts.versions) out.push_back(&rec);
  std::sort(out.begin(), out.end(), [](const VersionRecord* a, const VersionRecord* b) {
    return model::CompareVersions(a->version, b->version) < 0;
  });
  return out;
}

Registry::Registry(std::string root, std::unique_ptr<EventStore> store, const Clock* clock,
                   bool read_only, std::function<void(const std::string&)> on_warning)
    : root_(std::move(root)),
      store_(std::move(store)),
      clock_(clock),
      read_only_(read_only),
      artifacts_(root_),
      on_warning_(std::move(on_warning)) {}

void Registry::Warn(const std::string& message) const {
  if (on_warning_) {
    on_warning_(message);
  } else {
    std::fprintf(stderr, "modelreg: warning: %s\n", message.c_str());
  }
}

Registry::~Registry() {
  // The shipper first: it reads the log and the state.
  replication_.reset();
  if (manifest_thread_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(manifest_wake_mu_);
      manifest_stop_ = true;
    }
    manifest_wake_.notify_all();
    manifest_thread_.join();
    // What the thread had not written yet: a command leaves it current.
    Status st = FlushManifest();
    if (!st.ok()) ManifestFailed(st);
  }
}

Result<std::unique_ptr<Registry>> Registry::Open(const RegistryOptions& options) {
  std::error_code ec;
  const fs::path root(options.root);
  const fs::path log_dir = root / "registry";
  if (!fs::exists(root, ec)) {
    if (!options.create_if_missing || options.read_only) {
      return Err(Status::NotFound("registry directory " + options.root +
                                  " does not exist (pass --root or set MODELREG_ROOT)"));
    }
  } else if (!fs::is_directory(root, ec)) {
    return Err(Status::InvalidArgument(options.root + " is not a directory"));
  }
  if (!fs::exists(log_dir / "CURRENT", ec)) {
    if (!options.create_if_missing || options.read_only) {
      return Err(Status::NotFound(options.root + " is not a modelreg registry (no " +
                                  log_dir.string() + ")"));
    }
    if (fs::exists(root, ec) && !fs::is_empty(root, ec) && !fs::exists(log_dir, ec)) {
      // Refuse to scatter registry files into an unrelated, non-empty directory.
      bool only_ours = true;
      for (const auto& entry : fs::directory_iterator(root, ec)) {
        const std::string n = entry.path().filename().string();
        // What an operator prepares before the first registration: the
        // policy and the JSON files it names (current dataset versions).
        const bool prepared = n == "artifacts" || n == "backups" || n == "policy.toml" ||
                              (n.size() > 5 && n.substr(n.size() - 5) == ".json");
        if (!prepared) only_ours = false;
      }
      if (!only_ours) {
        return Err(Status::InvalidArgument(options.root +
                                           " is a non-empty directory that is not a modelreg "
                                           "registry; pick an empty or new --root"));
      }
    }
    fs::create_directories(log_dir, ec);
    if (ec) return Err(ErrorCodeStatus("cannot create " + log_dir.string(), ec));
  }

  // Replication roles (registry/replication.h): a follower takes its
  // events only from its stream; a leader's events go to the stream.
  std::optional<ReplicationConfig> replication;
  if (!options.read_only && !options.follow) {
    auto loaded = LoadReplicationConfig(options.root);
    if (!loaded) return Err(loaded.error());
    replication = std::move(*loaded);
    const bool follower = replication && replication->role == "follower";
    if (follower && !options.replica) {
      return Err(Status::FailedPrecondition(
          "registry " + options.root + " is a follower of stream '" + replication->stream +
          "' (replication.json): it takes its events from the stream only. Write to the "
          "leader, or make this registry the writer with `modelreg promote-follower` "
          "(docs/replication.md)"));
    }
    if (options.replica && !follower) {
      return Err(Status::FailedPrecondition("registry " + options.root +
                                            " is not a follower (no follower replication.json)"));
    }
  }

  StoreOptions so;
  so.create_if_missing = options.create_if_missing;
  so.read_only = options.read_only || options.follow;
  so.secondary = options.follow;
  so.clock = options.clock;
  so.mmap_reads = !options.for_rebuild;  // one pass over the whole log
  if (!options.read_only) so.extra_column_families = {kProjectionCf};
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.lock_wait_ms);
  Result<std::unique_ptr<EventStore>> store = EventStore::Open(log_dir.string(), so);
  while (!store && store.error().code() == Code::kBusy &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    store = EventStore::Open(log_dir.string(), so);
  }
  if (!store) return Err(store.error());
  std::unique_ptr<Registry> reg(
      new Registry(options.root, std::move(*store), options.clock,
                   options.read_only || options.follow,
                   options.on_warning));
  reg->rebuild_resident_ = std::max<std::size_t>(1, options.rebuild_resident_records);
  reg->replica_ = options.replica;
  if (options.read_only || options.follow) {
    // Only check whether the rows are current; the state loads on demand.
    auto current = internal::RowsCurrent(*reg->store_);
    reg->rows_current_ = current && *current;
  } else {
    // A registry opened to be rebuilt does not read (or fold) the state
    // first: Rebuild folds the log itself.
    bool lazy = false;
    if (options.lazy_state && !options.for_rebuild) {
      auto current = internal::RowsCurrent(*reg->store_);
      if (!current) return Err(current.error());
      lazy = *current;  // stale rows: repaired by LoadState below
      reg->rows_current_ = lazy;
    }
    if (!options.for_rebuild && !lazy) MODELREG_RETURN_IF_ERROR(reg->LoadState());
    Registry* r = reg.get();
    reg->manifest_thread_ = std::thread([r] { r->ManifestLoop(); });
    if (!options.for_rebuild && !options.lazy_state) {
      // A policy.toml from before the policy was part of the log becomes
      // its first PolicyChanged event (docs/gates.md). A file that does
      // not parse is not adopted: the commands that need the policy
      // report it (naming its line) until it is fixed or a policy is set.
      // Not for a lazy_state open (the loader's acknowledgements, which
      // never evaluate gates): the next other write adopts it.
      bool has_policy = false;
      reg->Read([&has_policy](const State& s) { has_policy = s.Policy() != nullptr; });
      if (!has_policy) {
        auto adopted = reg->AdoptPolicyFile();
        if (!adopted) {
          reg->Warn(adopted.error().message() +
                    "; not adopted as the gate policy: promotions, rollbacks and validations "
                    "refuse until policy.toml is fixed or a policy is set with `modelreg policy "
                    "set FILE --reason TEXT`");
        }
      }
    }
    if (replication && replication->role == "leader" && !options.for_rebuild) {
      if (auto attach = CurrentReplicationAttacher()) {
        auto attached = attach(*reg, *replication);
        if (!attached) return Err(attached.error());
        reg->replication_ = std::move(*attached);
      } else if (replication->mode == "sync") {
        const std::string stream = replication->stream;
        reg->store_->SetPublishHook([stream](const AppendedEvent&) {
          return Status::FailedPrecondition(
              "this registry ships every event to stream '" + stream +
              "' before it is written (replication.json, sync mode), and this program cannot "
              "publish to NATS: write with `modelreg` or through `modelreg serve`; nothing "
              "was written");
        });
      }
    }
  }
  return reg;
}

Result<AppendResult> Registry::ApplyReplicated(std::string_view bytes) {
  if (!replica_) {
    return Err(Status::FailedPrecondition("only a follower's registry applies replicated events"));
  }
  MODELREG_RETURN_IF_ERROR(Load());
  projection::Delta captured;
  RowsFn rows = [&](const AppendedEvent& ev) -> Result<std::vector<Row>> {
    std::lock_guard<std::mutex> lock(mu_);
    if (state_.seq + 1 != ev.seq) {
      return Err(Status::Internal("follower state is at event " + std::to_string(state_.seq) +
                                  ", not just before event " + std::to_string(ev.seq)));
    }
    auto delta = projection::PlanUnchecked(state_, ev.event);
    if (!delta) return Err(delta.error().WithContext("event " + std::to_string(ev.seq)));
    std::vector<Row> out = internal::ToRows(projection::EncodeDelta(*delta));
    captured = std::move(*delta);
    return out;
  };
  std::shared_lock<std::shared_mutex> gate(append_gate_);
  auto r = store_->AppendReplica(bytes, rows);
  gate.unlock();
  if (!r) return r;
  {
    std::lock_guard<std::mutex> lock(mu_);
    projection::Commit(state_, captured);
    sequenced_seq_ = state_.seq;
    state_cv_.notify_all();
  }
  {
    std::lock_guard<std::mutex> lock(manifest_wake_mu_);
    manifest_pending_ = true;
  }
  manifest_wake_.notify_one();
  return r;
}

Status Registry::Load() const {
  std::lock_guard<std::mutex> lock(mu_);
  if (loaded_) return Status::OK();
  bool current = false;
  auto s = internal::ReadState(*store_, &current, /*fold_if_stale=*/true);
  if (!s) return s.error();
  state_ = std::move(*s);
  ResetSequencing();
  loaded_ = true;
  return Status::OK();
}

Status Registry::LoadState() {
  bool current = false;
  auto loaded = internal::ReadState(*store_, &current, /*fold_if_stale=*/read_only_);
  if (!loaded) return loaded.error();
  const Seq head = store_->head().seq;
  if (!current && !read_only_) {
    auto format = internal::RowFormat(*store_);
    if (!format) return format.error();
    if (!format->empty() && *format != projection::kRowFormat) {
      // A registry written by an earlier release (docs/pointintime.md,
      // "Rows"): converted once, here; the log itself is untouched.
      Warn("converting the projection rows from format " + *format + " to format " +
           projection::kRowFormat + " (rewritten from the log's " + std::to_string(head) +
           " events, once)");
    }
    loaded = internal::RewriteProjection(*store_, head, {});
    if (!loaded) return loaded.error();
    current = true;
  }
  state_ = std::move(*loaded);
  ResetSequencing();
  loaded_ = true;
  rows_current_ = current;
  if (!read_only_) {
    // manifest.json is derived: make sure it matches the log. One that
    // cannot be written is a warning, never a failed open (and so never a
    // failed write).
    if (!ManifestMatches(head)) {
      if (Status st = WriteManifest(); !st.ok()) ManifestFailed(st);
    }
  }
  return Status::OK();
}

Status Registry::CatchUp() {
  if (!read_only_) return Status::OK();
  MODELREG_RETURN_IF_ERROR(store_->CatchUp());
  auto current = internal::RowsCurrent(*store_);
  if (!current) return current.error();
  rows_current_ = *current;
  ClearRecordCache();
  std::lock_guard<std::mutex> lock(mu_);
  loaded_ = false;  // a loaded state would be the old one
  state_ = State();
  return Status::OK();
}

bool Registry::StateLoaded() const {
  std::lock_guard<std::mutex> lock(mu_);
  return loaded_;
}

Seq Registry::WaitForHead(Seq after, std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  state_cv_.wait_for(lock, timeout, [&] { return state_.seq > after; });
  return state_.seq;
}

void Registry::Read(const std::function<void(const State&)>& fn) const {
  (void)Load();  // on error the state stays empty; callers use Load() to see it
  std::lock_guard<std::mutex> lock(mu_);
  fn(state_);
}

}  // namespace modelreg::registry
