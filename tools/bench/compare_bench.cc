// modelreg-compare-bench: modelreg against the spec's SQL design (SQLite,
// PostgreSQL) and against the hardware ceiling (raw RocksDB), in one run
// on one machine. Prints one markdown table on stdout (progress on stderr).
//
//   1. durable writes: register and promote, 1 and 4 clients;
//   2. as-of audit ("production of each of the 4 types at T", T uniform
//      over the history) p50/p99 at each size, answers cross-checked;
//   3. projection rebuild at the largest size: events/s and peak memory
//      (`modelreg-replay rebuild` as a child process);
//   4. cold-process latency of `modelreg current` and `modelreg audit --at`;
//   5. bytes on disk per event.
//
// PostgreSQL runs only with --pg CONNINFO (tools/bench/run-compare starts a
// throwaway cluster). docs/performance.md explains every row.
#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <sqlite3.h>

#include "common/sha256.h"
#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"
#include "model/naming.h"
#include "query/query.h"
#include "registry/registry.h"
#include "sql_baseline.h"
#include "workload.h"

extern char** environ;

#include "bench_util.h"

namespace {

using modelreg::bench::Percentile;
using modelreg::bench::BenchError;
using modelreg::bench::Check;

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using modelreg::TimeNs;
using modelreg::bench::SqlRegistry;

void Check(const rocksdb::Status& st, const std::string& what) {
  if (!st.ok()) throw BenchError(what + ": " + st.ToString());
}

double Since(SteadyClock::time_point t0) {
  return std::chrono::duration<double>(SteadyClock::now() - t0).count();
}
std::string Fmt(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}
std::uint64_t DirBytes(const fs::path& p) {
  std::uint64_t bytes = 0;
  for (const auto& e : fs::recursive_directory_iterator(p)) {
    if (e.is_regular_file()) bytes += e.file_size();
  }
  return bytes;
}

const std::vector<std::string> kTypes(modelreg::model::kModelTypes.begin(),
                                      modelreg::model::kModelTypes.end());

// ------------------------------------------------------------ the table

// One row: the value for each system (nullopt = not measured) and how to
// read it (higher or lower is better) for the ratio columns.
struct Row {
  std::string measure;
  std::optional<double> modelreg, sqlite, postgres, ceiling;
  std::string unit;  // "ops/s", "µs", "ms", "events/s", "MiB", "B"
  bool higher_is_better = true;
  std::string note;
};

std::string Cell(const std::optional<double>& v, const std::string& unit) {
  if (!v) return "–";
  if (unit == "µs") return Fmt("%.1f µs", *v);
  if (unit == "ms") return Fmt("%.1f ms", *v);
  if (unit == "MiB") return Fmt("%.0f MiB", *v);
  if (unit == "B") return Fmt("%.0f B", *v);
  if (unit == "s") return Fmt("%.1f s", *v);
  return Fmt("%.0f", *v) + " " + unit;
}
// How many times better modelreg is than `other` (>1 = modelreg better).
std::string Ratio(const Row& r, const std::optional<double>& other) {
  if (!r.modelreg || !other || *other == 0 || *r.modelreg == 0) return "–";
  const double x = r.higher_is_better ? *r.modelreg / *other : *other / *r.modelreg;
  return Fmt("%.2f×", x);
}

void PrintTable(const std::vector<Row>& rows, std::ostream& out) {
  out << "| measure | modelreg | SQLite | PostgreSQL | ceiling (raw RocksDB) | modelreg vs SQLite "
         "| modelreg vs PostgreSQL | modelreg vs ceiling | notes |\n"
      << "|---|---|---|---|---|---|---|---|---|\n";
  for (const Row& r : rows) {
    out << "| " << r.measure << " | " << Cell(r.modelreg, r.unit) << " | "
        << Cell(r.sqlite, r.unit) << " | " << Cell(r.postgres, r.unit) << " | "
        << Cell(r.ceiling, r.unit) << " | " << Ratio(r, r.sqlite) << " | "
        << Ratio(r, r.postgres) << " | " << Ratio(r, r.ceiling) << " | " << r.note << " |\n";
  }
  out << "\nRatios: how many times better modelreg is (throughput: modelreg / other; "
         "latency, memory, bytes: other / modelreg). Above 1 = modelreg better.\n";
}

// ---------------------------------------------------------- processes

struct ChildResult {
  int status = 0;
  double seconds = 0;
  double cpu_seconds = 0;  // the child's user + system time (wait4)
};

// Runs argv (PATH searched) with stdout to `out` and stderr to /dev/null;
// wall time from here, and the child's CPU time, which a loaded machine
// does not inflate. (wait4's peak RSS is useless: posix_spawn's vfork
// makes it the bench's own peak, recorded at exec.)
ChildResult RunChild(const std::vector<std::string>& args, const std::string& out = "/dev/null") {
  std::vector<char*> argv;
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
  const auto t0 = SteadyClock::now();
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &fa, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw BenchError("cannot run " + args[0] + ": " + std::strerror(rc));
  ChildResult r;
  struct rusage usage {};
  if (::wait4(pid, &r.status, 0, &usage) != pid) throw BenchError("wait4 failed");
  r.seconds = Since(t0);
  const auto secs = [](const timeval& tv) {
    return static_cast<double>(tv.tv_sec) + static_cast<double>(tv.tv_usec) / 1e6;
  };
  r.cpu_seconds = secs(usage.ru_utime) + secs(usage.ru_stime);
  return r;
}
void MustSucceed(const ChildResult& r, const std::vector<std::string>& args) {
  if (!WIFEXITED(r.status) || WEXITSTATUS(r.status) != 0) {
    std::string cmd;
    for (const auto& a : args) cmd += a + " ";
    throw BenchError("failed (status " + std::to_string(r.status) + "): " + cmd);
  }
}
bool OnPath(const std::string& name) {
  const char* path = std::getenv("PATH");
  std::stringstream ss(path == nullptr ? "" : path);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    if (access((fs::path(dir) / name).c_str(), X_OK) == 0) return true;
  }
  return false;
}

// -------------------------------------------------------- durable files

void FsyncPath(const fs::path& p, int flags) {
  const int fd = open(p.c_str(), flags | O_CLOEXEC);
  if (fd < 0 || fsync(fd) != 0) throw BenchError("fsync " + p.string() + ": " + std::strerror(errno));
  close(fd);
}
// What a careful SQL user does before inserting the row: the artifact at
// its final path, durably (temporary file, fsync, rename, fsync the dir).
void WriteArtifactDurably(const fs::path& dir, const std::string& bytes) {
  fs::create_directories(dir);
  FsyncPath(dir.parent_path(), O_RDONLY | O_DIRECTORY);
  const fs::path tmp = dir / "model.pkl.tmp";
  const int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0 || write(fd, bytes.data(), bytes.size()) != static_cast<ssize_t>(bytes.size()) ||
      fsync(fd) != 0) {
    throw BenchError("write " + tmp.string() + ": " + std::strerror(errno));
  }
  close(fd);
  fs::rename(tmp, dir / "model.pkl");
  FsyncPath(dir, O_RDONLY | O_DIRECTORY);
}

// The metadata file a training pipeline hands to `modelreg register`.
std::string MetadataJson(const modelreg::events::Registration& r) {
  nlohmann::json m;
  m["model_id"] = r.model_id;
  m["dataset_version_ids"] = r.dataset_version_ids;
  m["snapshot_id"] = r.snapshot_id;
  m["factor_list"] = r.factor_list;
  m["parameters"] = nlohmann::json::parse(r.parameters_json);
  m["metrics"] = r.metrics;
  m["config"] = nlohmann::json::parse(r.config_json);
  m["env"] = {{"hostname", r.env.hostname}, {"user", r.env.user}, {"os", r.env.os},
              {"tool_version", r.env.tool_version}, {"git_commit", r.env.git_commit}};
  m["created_by"] = r.created_by;
  return m.dump();
}

// ------------------------------------------------------- 1. writes

struct WriteOptions {
  int ops = 400;  // per measurement, split over the clients
  std::string artifact;  // bytes of every artifact
  fs::path work;
  std::string pg;
};

// Runs `op(client, i)` for i in [first, first + per) on `clients` threads;
// returns the wall time.
double Timed(int clients, int first, int per, const std::function<void(int, int)>& op) {
  std::mutex mu;
  std::string error;
  const auto t0 = SteadyClock::now();
  std::vector<std::thread> threads;
  for (int c = 0; c < clients; ++c) {
    threads.emplace_back([&, c] {
      try {
        for (int i = first; i < first + per; ++i) op(c, i);
      } catch (const std::exception& e) {
        std::lock_guard<std::mutex> lock(mu);
        if (error.empty()) error = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  if (!error.empty()) throw BenchError(error);
  return Since(t0);
}

std::string Version(int i) { return "v1." + std::to_string(i / 1000) + "." + std::to_string(i % 1000); }

// One system under the write measurement: register(client, i) and
// promote(client, i) (promote i after register i), client = model type.
struct Contender {
  std::string name;
  std::function<void(int, int)> reg, promote;
  double reg_secs = 0, promote_secs = 0;
  std::shared_ptr<void> keep_alive;  // the system's connections/handles
};

Contender ModelregContender(const WriteOptions& o, int clients) {
  const fs::path root = o.work / ("modelreg-writes-" + std::to_string(clients));
  fs::create_directories(root);
  std::ofstream(root / "policy.toml") << "[default]\nic = \"> 0.02\"\nsharpe = \"> 0.5\"\n"
                                         "paper_trading_hours = \"off\"\n";
  modelreg::registry::RegistryOptions ro;
  ro.root = root.string();
  ro.create_if_missing = true;
  std::shared_ptr<modelreg::registry::Registry> reg =
      Check(modelreg::registry::Registry::Open(ro), "open " + root.string());
  auto metadata = std::make_shared<std::vector<std::string>>();
  for (int c = 0; c < clients; ++c) {
    auto r = modelreg::events::SampleRegistration(kTypes[static_cast<std::size_t>(c)], "v1.0.0",
                                                  static_cast<std::uint64_t>(c) + 1);
    r.metrics["ic"] = 0.05;
    r.metrics["sharpe"] = 1.2;
    metadata->push_back(MetadataJson(r));
  }
  const std::string artifact = (o.work / "artifact.bin").string();
  Contender c;
  c.name = "modelreg";
  c.keep_alive = reg;
  c.reg = [reg, metadata, artifact](int client, int i) {
    modelreg::registry::MetadataInput in;
    in.metadata_json = (*metadata)[static_cast<std::size_t>(client)];
    Check(reg->Register(kTypes[static_cast<std::size_t>(client)], Version(i), artifact, in,
                        {"trainer", ""}),
          "register");
  };
  c.promote = [reg](int client, int i) {
    Check(reg->Promote(kTypes[static_cast<std::size_t>(client)], Version(i), std::nullopt, false,
                       {"alice", "weekly retrain"}),
          "promote");
  };
  return c;
}

Contender SqlContender(const WriteOptions& o, int clients,
                       const std::function<std::unique_ptr<SqlRegistry>()>& connect,
                       const fs::path& artifacts) {
  connect()->CreateSchema();
  auto conns = std::make_shared<std::vector<std::unique_ptr<SqlRegistry>>>();
  for (int c = 0; c < clients; ++c) conns->push_back(connect());
  auto metadata = std::make_shared<std::vector<std::string>>();
  for (int c = 0; c < clients; ++c) {
    metadata->push_back(MetadataJson(modelreg::events::SampleRegistration(
        kTypes[static_cast<std::size_t>(c)], "v1.0.0", static_cast<std::uint64_t>(c) + 1)));
  }
  auto now = [] {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  };
  Contender c;
  c.name = (*conns)[0]->name();
  c.keep_alive = conns;
  const std::string bytes = o.artifact;
  c.reg = [conns, metadata, artifacts, bytes, now](int client, int i) {
    const std::string& type = kTypes[static_cast<std::size_t>(client)];
    const fs::path dir = artifacts / type / Version(i);
    WriteArtifactDurably(dir, bytes);
    const std::string sha = modelreg::ToHex(modelreg::Sha256::Of(bytes));
    (*conns)[static_cast<std::size_t>(client)]->Register(
        type, Version(i), (dir / "model.pkl").string(), sha,
        (*metadata)[static_cast<std::size_t>(client)], "trainer", now());
  };
  c.promote = [conns, now](int client, int i) {
    (*conns)[static_cast<std::size_t>(client)]->Promote(kTypes[static_cast<std::size_t>(client)],
                                                         Version(i), "alice", "weekly retrain",
                                                         now());
  };
  return c;
}

// Raw synced RocksDB Puts of the same event bytes (one event per write):
// register's optionally after writing the artifact file durably.
Contender CeilingContender(const WriteOptions& o, int clients, const std::string& reg_value,
                           const std::string& promote_value, bool with_artifact) {
  const fs::path dir =
      o.work / ("ceiling-" + std::to_string(clients) + (with_artifact ? "-artifact" : ""));
  fs::create_directories(dir);
  rocksdb::Options opts;
  opts.create_if_missing = true;
  rocksdb::DB* raw = nullptr;
  Check(rocksdb::DB::Open(opts, (dir / "db").string(), &raw), "open ceiling db");
  std::shared_ptr<rocksdb::DB> db(raw);
  auto key = std::make_shared<std::atomic<std::uint64_t>>(0);
  auto put = [db, key](const std::string& value) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    const std::uint64_t k = (*key)++;
    char kb[8];
    for (int b = 0; b < 8; ++b) kb[b] = static_cast<char>(k >> (56 - 8 * b));
    Check(db->Put(wo, rocksdb::Slice(kb, 8), value), "put");
  };
  Contender c;
  c.name = with_artifact ? "ceiling+artifact" : "ceiling";
  c.keep_alive = db;
  const std::string bytes = o.artifact;
  c.reg = [put, reg_value, with_artifact, dir, bytes](int client, int i) {
    if (with_artifact) {
      WriteArtifactDurably(dir / "artifacts" / kTypes[static_cast<std::size_t>(client)] / Version(i),
                           bytes);
    }
    put(reg_value);
  };
  c.promote = [put, promote_value](int, int) { put(promote_value); };
  return c;
}

void MeasureWrites(const WriteOptions& o, std::vector<Row>& rows) {
  std::ofstream(o.work / "artifact.bin", std::ios::binary) << o.artifact;
  // The bytes one register / promote event occupies in the log.
  const std::string reg_event =
      modelreg::events::Draft({"trainer", modelreg::NewEventId(), 0},
                              modelreg::events::SampleRegistration("risk_model", "v1.0.0", 1)) +
      std::string(32 + 24, 'h');  // + hash and sequence/time fields
  modelreg::events::Promotion p;
  p.model_type = "risk_model";
  p.version = "v1.0.1";
  p.replaced_version = "v1.0.0";
  p.gates = {{"ic", ">", 0.02, 0.05, true, true, ""}, {"sharpe", ">", 0.5, 1.2, true, true, ""}};
  p.reason = "weekly retrain";
  p.policy = "ic > 0.02, sharpe > 0.5";
  const std::string promote_event =
      modelreg::events::Draft({"alice", modelreg::NewEventId(), 0}, p) + std::string(56, 'h');

  for (int clients : {1, 4}) {
    std::cerr << "[bench] durable writes, " << clients << " client(s)\n";
    const std::string n = std::to_string(clients);
    std::vector<Contender> all;
    all.push_back(ModelregContender(o, clients));
    all.push_back(SqlContender(
        o, clients,
        [&] { return modelreg::bench::OpenSqlite((o.work / ("sqlite-writes-" + n + ".db")).string()); },
        o.work / ("sqlite-artifacts-" + n)));
    if (!o.pg.empty()) {
      all.push_back(SqlContender(
          o, clients, [&] { return modelreg::bench::OpenPostgres(o.pg); },
          o.work / ("pg-artifacts-" + n)));
    }
    all.push_back(CeilingContender(o, clients, reg_event, promote_event, false));
    all.push_back(CeilingContender(o, clients, reg_event, promote_event, true));
    // Rounds alternate the systems so that drift in fsync speed (large on
    // shared disks) hits all of them alike.
    constexpr int kRounds = 5;
    const int per = std::max(1, o.ops / clients / kRounds);
    for (int r = 0; r < kRounds; ++r) {
      for (Contender& c : all) c.reg_secs += Timed(clients, r * per, per, c.reg);
    }
    for (int r = 0; r < kRounds; ++r) {
      for (Contender& c : all) c.promote_secs += Timed(clients, r * per, per, c.promote);
    }
    const double total = static_cast<double>(per * kRounds * clients);
    auto rate = [&](const std::string& name, bool promote) -> std::optional<double> {
      for (const Contender& c : all) {
        if (c.name == name) return total / (promote ? c.promote_secs : c.reg_secs);
      }
      return std::nullopt;
    };
    const std::string who = n + (clients == 1 ? " client" : " clients");
    rows.push_back({"durable register, " + who, rate("modelreg", false), rate("SQLite", false),
                    rate("PostgreSQL", false), rate("ceiling", false), "ops/s", true,
                    "ceiling: one synced Put of the event bytes; every system but the ceiling also "
                    "writes the " + std::to_string(o.artifact.size() / 1024) +
                        " KiB artifact file durably"});
    rows.push_back({"durable register, " + who + ", vs ceiling with the artifact file",
                    rate("modelreg", false), std::nullopt, std::nullopt,
                    rate("ceiling+artifact", false), "ops/s", true,
                    "ceiling: artifact file (write, fsync, rename, fsync dir) + one synced Put"});
    rows.push_back({"durable promote, " + who, rate("modelreg", true), rate("SQLite", true),
                    rate("PostgreSQL", true), rate("ceiling", true), "ops/s", true,
                    "SQL: the spec's activation transaction (3 statements)"});
  }
}

// ------------------------------------------------------- 2. as-of

struct SizeResult {
  fs::path root;
  std::uint64_t events = 0;
  TimeNs first = 0, last = 0;
  fs::path sqlite_path;
};

SizeResult BuildRegistry(const fs::path& work, std::uint64_t events) {
  SizeResult r;
  r.root = work / ("registry-" + std::to_string(events));
  fs::create_directories(r.root / "registry");
  {
    modelreg::StoreOptions so;
    so.sync = false;
    auto store = Check(modelreg::EventStore::Open((r.root / "registry").string(), so), "open log");
    modelreg::bench::AppendWorkload(*store, events);
  }
  // The first writable open folds the log and writes the projections.
  modelreg::registry::RegistryOptions ro;
  ro.root = r.root.string();
  auto reg = Check(modelreg::registry::Registry::Open(ro), "open registry");
  const modelreg::query::Query q(*reg);
  const auto head = Check(q.Head(), "head");
  r.events = head.seq;
  r.first = Check(q.Events(1, {}, 1), "first event").at(0).event().recorded_at();
  r.last = head.at;
  return r;
}

void LoadSql(SqlRegistry& sql, const fs::path& root) {
  sql.CreateSchema();
  modelreg::StoreOptions so;
  so.read_only = true;
  auto store = Check(modelreg::EventStore::Open((root / "registry").string(), so), "open log");
  auto st = store->Scan(1, store->head().seq, [&](modelreg::Seq, const modelreg::EventBuffer& e) {
    sql.Apply(e);
    return true;
  });
  if (!st.ok()) throw BenchError("scan: " + st.ToString());
  sql.FinishLoad();
}

void MeasureAsOf(const fs::path& work, std::uint64_t size, int queries, const std::string& pg_info,
                 std::vector<Row>& rows, SizeResult* keep) {
  std::cerr << "[bench] as-of at " << size << " events: building\n";
  const auto b0 = SteadyClock::now();
  SizeResult r = BuildRegistry(work, size);
  std::cerr << "[bench]   modelreg log + projections in " << Since(b0) << " s\n";
  r.sqlite_path = work / ("asof-" + std::to_string(size) + ".db");
  auto sqlite = modelreg::bench::OpenSqlite(r.sqlite_path.string());
  const auto s0 = SteadyClock::now();
  LoadSql(*sqlite, r.root);
  std::cerr << "[bench]   SQLite loaded in " << Since(s0) << " s\n";
  std::unique_ptr<SqlRegistry> pg;
  if (!pg_info.empty()) {
    pg = modelreg::bench::OpenPostgres(pg_info);
    const auto p0 = SteadyClock::now();
    LoadSql(*pg, r.root);
    std::cerr << "[bench]   PostgreSQL loaded in " << Since(p0) << " s\n";
  }

  modelreg::registry::RegistryOptions ro;
  ro.root = r.root.string();
  ro.read_only = true;
  auto fresh = Check(modelreg::registry::Registry::Open(ro), "open read-only");
  auto held = Check(modelreg::registry::Registry::Open(ro), "open read-only");
  if (auto st = held->Load(); !st.ok()) throw BenchError(st.ToString());

  // The same instants for every system, each system in its own block (a
  // service asking repeatedly; interleaving the four would measure how they
  // evict each other's caches), answers compared afterwards.
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<TimeNs> when(r.first, r.last);
  std::vector<TimeNs> instants(static_cast<std::size_t>(queries));
  for (TimeNs& t : instants) t = when(rng);
  using Answers = std::vector<std::vector<std::string>>;
  auto block = [&](const std::function<std::vector<std::string>(TimeNs)>& ask,
                   std::vector<double>& times) {
    // Warm-up (untimed, every system alike): caches and allocator settle.
    for (std::size_t i = 0; i < std::min<std::size_t>(instants.size(), 2000); ++i) {
      (void)ask(instants[i]);
    }
    Answers answers;
    answers.reserve(instants.size());
    for (TimeNs t : instants) {
      const auto t0 = SteadyClock::now();
      std::vector<std::string> a = ask(t);
      times.push_back(Since(t0));
      answers.push_back(std::move(a));
    }
    return answers;
  };
  auto modelreg_ask = [](modelreg::registry::Registry& reg) {
    // The read path of `audit --at` and GET /api/v1/audit: production,
    // its record as of t and the promotion's evidence, for every type.
    return [&reg](TimeNs t) {
      std::vector<std::string> out;
      const auto audit = Check(modelreg::query::Query(reg).Audit(t, kTypes), "as-of");
      for (const auto& m : audit.models) out.push_back(m.record ? m.record->version : "");
      return out;
    };
  };
  auto sql_ask = [](SqlRegistry& sql) {
    return [&sql](TimeNs t) {
      std::vector<std::string> out;
      for (auto& p : sql.AsOf(kTypes, t)) out.push_back(std::move(p.version));
      return out;
    };
  };
  std::vector<double> mem, from_rows, lite, post;
  const Answers mine = block(modelreg_ask(*held), mem);
  const Answers rows_answers = block(modelreg_ask(*fresh), from_rows);
  const Answers a = block(sql_ask(*sqlite), lite);
  const Answers b = pg ? block(sql_ask(*pg), post) : Answers();
  std::uint64_t checked = 0;
  for (std::size_t q = 0; q < instants.size(); ++q) {
    // The same history must give the same answers.
    for (std::size_t i = 0; i < kTypes.size(); ++i) {
      if (a[q][i] != mine[q][i] || rows_answers[q][i] != mine[q][i] ||
          (pg && b[q][i] != mine[q][i])) {
        throw BenchError("as-of answers differ at t=" + std::to_string(instants[q]) + " for " +
                         kTypes[i] + ": modelreg '" + mine[q][i] + "' (rows '" +
                         rows_answers[q][i] + "'), SQLite '" + a[q][i] + "'" +
                         (pg ? ", PostgreSQL '" + b[q][i] + "'" : std::string()));
      }
    }
    ++checked;
  }
  std::cerr << "[bench]   " << checked << " as-of answers identical across systems\n";
  const std::string n = size >= 1'000'000 ? std::to_string(size / 1'000'000) + "M"
                                          : std::to_string(size / 1000) + "k";
  auto us = [](const std::vector<double>& v, double p) { return Percentile(v, p) * 1e6; };
  auto opt = [](bool have, double v) { return have ? std::optional<double>(v) : std::nullopt; };
  for (double p : {0.5, 0.99}) {
    const std::string pn = p == 0.5 ? "p50" : "p99";
    rows.push_back({"as-of audit, 4 types, " + n + " events, " + pn + " (modelreg: state in memory)",
                    us(mem, p), us(lite, p), opt(pg != nullptr, us(post, p)), std::nullopt, "µs",
                    false, p == 0.99 ? "target < 100 µs at 1M; PostgreSQL includes the socket round trip" : ""});
    rows.push_back({"as-of audit, 4 types, " + n + " events, " + pn + " (modelreg: from the rows, fresh open)",
                    us(from_rows, p), us(lite, p), opt(pg != nullptr, us(post, p)), std::nullopt,
                    "µs", false, "what a one-shot CLI call does"});
  }
  const double ev = static_cast<double>(r.events);
  rows.push_back({"bytes on disk per event, " + n + " events",
                  static_cast<double>(DirBytes(r.root)) / ev,
                  static_cast<double>(sqlite->Bytes()) / ev,
                  pg ? std::optional<double>(static_cast<double>(pg->Bytes()) / ev) : std::nullopt,
                  std::nullopt, "B", false,
                  "modelreg: log + projections + record index; SQL: the two tables + indexes "
                  "(no validations, no hash chain, no history of each record)"});
  if (keep != nullptr) *keep = r;
}

// ------------------------------------------------- 3. rebuild, 4. cold CLI

double RawIteration(const fs::path& root, std::uint64_t* count) {
  const std::string dir = (root / "registry").string();
  std::vector<std::string> names;
  Check(rocksdb::DB::ListColumnFamilies(rocksdb::DBOptions(), dir, &names), "list families");
  std::vector<rocksdb::ColumnFamilyDescriptor> cfs;
  for (const auto& n : names) cfs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  Check(rocksdb::DB::OpenForReadOnly(rocksdb::DBOptions(), dir, cfs, &handles, &raw), "open raw");
  std::unique_ptr<rocksdb::DB> db(raw);
  rocksdb::ColumnFamilyHandle* events = nullptr;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "events") events = handles[i];
  }
  if (events == nullptr) throw BenchError("no events family");
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  const auto t0 = SteadyClock::now();
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(ro, events));
  std::uint64_t n = 0, bytes = 0;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    ++n;
    bytes += it->value().size();
  }
  const double secs = Since(t0);
  it.reset();
  for (auto* h : handles) (void)db->DestroyColumnFamilyHandle(h);
  *count = n;
  std::cerr << "[bench]   raw iteration: " << n << " events, " << bytes / (1 << 20) << " MiB in "
            << secs << " s\n";
  return static_cast<double>(n) / secs;
}

void MeasureRebuild(const SizeResult& r, const std::string& replay_bin, std::vector<Row>& rows) {
  std::cerr << "[bench] rebuild of " << r.events << " events\n";
  const std::vector<std::string> args = {replay_bin, "--root", r.root.string(), "--json",
                                         "rebuild"};
  const std::string report = (r.root / "rebuild.json").string();
  const ChildResult c = RunChild(args, report);
  MustSucceed(c, args);
  std::ifstream in(report);
  const nlohmann::json j = nlohmann::json::parse(in, nullptr, false);
  if (!j.is_object() || !j.contains("peak_rss_kib") || !j["peak_rss_kib"].is_number_unsigned()) {
    throw BenchError("modelreg-replay rebuild --json printed no peak_rss_kib");
  }
  const double peak_mib = j["peak_rss_kib"].get<double>() / 1024.0;
  std::uint64_t n = 0;
  const double raw = RawIteration(r.root, &n);
  const double ev = static_cast<double>(r.events);
  rows.push_back({"projection rebuild, " + std::to_string(r.events) + " events", ev / c.seconds,
                  std::nullopt, std::nullopt, raw, "events/s", true,
                  "`modelreg-replay rebuild` (verify chain + fold + write rows), " +
                      Fmt("%.1f s", c.seconds) + "; ceiling: raw iteration over the event bytes; "
                      "target ≥ 1,000,000/s"});
  rows.push_back({"projection rebuild peak memory (max RSS)",
                  peak_mib, std::nullopt, std::nullopt, std::nullopt, "MiB", false,
                  "VmHWM reported by the rebuild itself; target < 256 MiB at 1M events"});
}

void MeasureCold(const SizeResult& r, const std::string& modelreg_bin, const std::string& pg_info,
                 int calls, std::vector<Row>& rows) {
  std::cerr << "[bench] cold processes, " << calls << " calls each\n";
  std::mt19937_64 rng(7);
  std::uniform_int_distribution<TimeNs> when(r.first, r.last);
  const bool have_sqlite3 = OnPath("sqlite3"), have_psql = !pg_info.empty() && OnPath("psql");
  std::vector<double> cur, audit, lite_cur, lite_audit, pg_cur, pg_audit;
  // CPU time of the same calls (psql's is only the client's: not listed).
  std::map<const std::vector<double>*, std::vector<double>> cpu;
  auto timed = [&cpu](const std::vector<std::string>& args, std::vector<double>& into) {
    const ChildResult c = RunChild(args);
    MustSucceed(c, args);
    into.push_back(c.seconds * 1e3);
    cpu[&into].push_back(c.cpu_seconds * 1e3);
  };
  const std::string asof_sql =
      "SELECT h.version, h.promoted_at, h.promoted_by, h.reason, m.metadata FROM"
      " (SELECT version, promoted_at, promoted_by, reason FROM promotion_history"
      " WHERE model_type = '%s' AND promoted_at <= %lld ORDER BY promoted_at DESC, id DESC LIMIT 1)"
      " h JOIN models m ON m.model_type = '%s' AND m.version = h.version;";
  for (int i = 0; i < calls; ++i) {
    const TimeNs t = when(rng);
    timed({modelreg_bin, "--root", r.root.string(), "current", "risk_model"}, cur);
    timed({modelreg_bin, "--root", r.root.string(), "--json", "audit", "--at",
           modelreg::FormatUtc(t)},
          audit);
    std::string four;
    for (const auto& type : kTypes) {
      char buf[640];
      std::snprintf(buf, sizeof buf, asof_sql.c_str(), type.c_str(), static_cast<long long>(t),
                    type.c_str());
      four += buf;
    }
    const std::string current_sql =
        "SELECT version, activated_at, metadata FROM models WHERE model_type = 'risk_model' AND "
        "status = 'production';";
    if (have_sqlite3) {
      timed({"sqlite3", r.sqlite_path.string(), current_sql}, lite_cur);
      timed({"sqlite3", r.sqlite_path.string(), four}, lite_audit);
    }
    if (have_psql) {
      timed({"psql", "-X", "-q", pg_info, "-c", current_sql}, pg_cur);
      timed({"psql", "-X", "-q", pg_info, "-c", four}, pg_audit);
    }
  }
  auto opt = [](const std::vector<double>& v, double p) {
    return v.empty() ? std::nullopt : std::optional<double>(Percentile(v, p));
  };
  for (double p : {0.5, 0.99}) {
    const std::string pn = p == 0.5 ? "p50" : "p99";
    rows.push_back({"cold process `modelreg current TYPE`, " + pn, Percentile(cur, p),
                    opt(lite_cur, p), opt(pg_cur, p), std::nullopt, "ms", false,
                    "SQL: the `sqlite3` / `psql` command-line clients, same question"});
    rows.push_back({"cold process `modelreg audit --at T` (4 types), " + pn, Percentile(audit, p),
                    opt(lite_audit, p), opt(pg_audit, p), std::nullopt, "ms", false,
                    p == 0.99 ? "target < 30 ms at 1M" : ""});
  }
  // CPU time (user + system) per call: what the process costs, unlike wall
  // time not inflated by other load on the machine. Issue 18's target is
  // modelreg ≤ 2× sqlite3.
  const std::string cpu_note = "CPU time (user + system, wait4) per process; psql: not comparable";
  rows.push_back({"cold process `modelreg current TYPE`, CPU p50", Percentile(cpu[&cur], 0.5),
                  opt(cpu[&lite_cur], 0.5), std::nullopt, std::nullopt, "ms", false, cpu_note});
  rows.push_back({"cold process `modelreg audit --at T` (4 types), CPU p50",
                  Percentile(cpu[&audit], 0.5), opt(cpu[&lite_audit], 0.5), std::nullopt,
                  std::nullopt, "ms", false, cpu_note});
}

std::vector<std::uint64_t> ParseSizes(const std::string& s) {
  std::vector<std::uint64_t> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) out.push_back(std::stoull(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-compare-bench: modelreg vs SQLite vs PostgreSQL vs raw RocksDB"};
  bool quick = false, keep = false;
  std::string sizes_arg = "10000,100000,1000000", dir = "/tmp", pg;
  std::string modelreg_bin = "build/tools/modelreg/modelreg";
  std::string replay_bin = "build/replay/modelreg-replay";
  int write_ops = 500, queries = 20000, cli_calls = 40, artifact_kib = 16;
  app.add_flag("--quick", quick, "CI-sized run: small sizes, few operations");
  app.add_option("--sizes", sizes_arg, "Event counts for the as-of measurements")
      ->capture_default_str();
  app.add_option("--write-ops", write_ops, "Operations per durable-write measurement")
      ->capture_default_str();
  app.add_option("--queries", queries, "As-of queries per size")->capture_default_str();
  app.add_option("--cli-calls", cli_calls, "Cold process calls")->capture_default_str();
  app.add_option("--artifact-kib", artifact_kib, "Artifact size for register")
      ->capture_default_str();
  app.add_option("--pg", pg, "PostgreSQL connection string (tools/bench/run-compare sets it)");
  app.add_option("--modelreg", modelreg_bin, "The modelreg binary")->capture_default_str();
  app.add_option("--replay", replay_bin, "The modelreg-replay binary")->capture_default_str();
  app.add_option("--dir", dir, "Where the temporary databases go")->capture_default_str();
  app.add_flag("--keep", keep, "Keep the databases");
  CLI11_PARSE(app, argc, argv);
  if (quick) {
    if (app.count("--sizes") == 0) sizes_arg = "2000,10000";
    if (app.count("--write-ops") == 0) write_ops = 100;
    if (app.count("--queries") == 0) queries = 1000;
    if (app.count("--cli-calls") == 0) cli_calls = 5;
  }
  if (!pg.empty() && !modelreg::bench::HavePostgres()) {
    std::cerr << "this build has no libpq: PostgreSQL skipped\n";
    pg.clear();
  }
  if (pg.empty()) std::cerr << "PostgreSQL: skipped (no --pg; tools/bench/run-compare starts one)\n";

  const fs::path work = fs::path(dir) / ("modelreg-compare-" + modelreg::NewEventId().substr(0, 8));
  fs::create_directories(work);
  int rc = 0;
  try {
    std::vector<Row> rows;
    WriteOptions wo;
    wo.ops = write_ops;
    wo.work = work;
    wo.pg = pg;
    std::mt19937_64 rng(1);
    wo.artifact.resize(static_cast<std::size_t>(artifact_kib) * 1024);
    for (char& ch : wo.artifact) ch = static_cast<char>(rng());
    MeasureWrites(wo, rows);

    const auto sizes = ParseSizes(sizes_arg);
    SizeResult largest;
    for (std::size_t i = 0; i < sizes.size(); ++i) {
      MeasureAsOf(work, sizes[i], queries, pg, rows, i + 1 == sizes.size() ? &largest : nullptr);
      if (i + 1 < sizes.size() && !keep) {
        fs::remove_all(work / ("registry-" + std::to_string(sizes[i])));
      }
    }
    MeasureCold(largest, modelreg_bin, pg, cli_calls, rows);
    MeasureRebuild(largest, replay_bin, rows);

    std::cout << "modelreg " << MODELREG_VERSION << " vs SQLite " << sqlite3_libversion()
              << " (WAL, synchronous=FULL)"
              << (pg.empty() ? ", PostgreSQL skipped" : ", PostgreSQL (throwaway cluster, fsync on)")
              << "; " << std::thread::hardware_concurrency() << " cores; artifacts " << artifact_kib
              << " KiB; " << write_ops << " ops per write row; " << queries
              << " as-of queries per size (answers cross-checked)\n\n";
    PrintTable(rows, std::cout);
  } catch (const std::exception& e) {
    std::cerr << "modelreg-compare-bench: " << e.what() << '\n';
    rc = 1;
  }
  if (!keep) fs::remove_all(work);
  return rc;
}
