// Readers in other processes beside writing processes (docs/log.md,
// "Readers beside a writer").
//
// First the pieces: the readers' lock (shared holders coexist, a waiting
// writer keeps new readers out, waits are bounded) and a read-only view
// that keeps every file of the log on disk while writers come and go.
//
// Then the real binaries, for MODELREG_MULTIPROCESS_SECONDS (default 30)
// seconds of load.
//
// Writers, in phases that alternate every quarter of the run (RocksDB
// admits one writing process at a time, and while `modelreg serve` holds
// the registry the CLI's writes go through it):
//   - CLI phases: two CLI writer loops (risk_model and alpha_weights:
//     register, promote, rollback, validate, register + archive), each
//     command its own process opening the registry for writing;
//   - serve phases: `modelreg serve` (one long-running writing process; its
//     open flushes, and may compact, what the CLI phases left) receives HTTP
//     writes from this test (factor_definitions: register, promote,
//     rollback, paced at 10 rounds a second; a consumer acknowledgement on
//     feature_transforms about once a second), and the two CLI loops keep
//     going, routed through the server (MODELREG_TOKEN).
// Every start and stop of the server happens while no CLI write is in
// flight, so that no writer fails for a reason outside this test.
//
// Readers, each a loop of fresh processes for the whole run: verify,
// audit --at T (T before the writers started), show, list, current,
// events, modelreg-replay export, consumers, plus one `events --follow`
// (a RocksDB secondary instance). Checks: every writer and reader exits 0
// (the first failures' stderr is printed), verify never raises an alarm,
// and every answer is the fold of some prefix of the final log:
//   - audit --at T is identical to the quiescent answer every time;
//   - events and export are prefixes of the final ones (line by line), and
//     verify's head is an event of the final log with its hash;
//   - show / list / current: each distinct answer equals the same command
//     with --at <recorded_at of event k> on the final registry, where k is
//     the largest sequence number the answer mentions (top-level "at"
//     ignored; if it differs, k + 1, ... while the answer at k names
//     nothing later);
//   - consumers (no --at): the same against the final answer with the
//     acknowledgement up to k (see below);
//   - the follower printed every event, in order; and once no reader is
//     left, one more write deletes what was held back (one MANIFEST).
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "common/rw_file_lock.h"
#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"
#include "support/child.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::Lines;
using testing::RunResult;
using Steady = std::chrono::steady_clock;

const std::string kSecret = "0123456789abcdef0123456789abcdef-multiprocess-secret";
const char* const kTypes[] = {"risk_model", "alpha_weights", "factor_definitions",
                              "feature_transforms"};

// The largest value of any "seq" or "*_seq" member, anywhere in `j`.
std::uint64_t MaxSeq(const json& j) {
  std::uint64_t m = 0;
  if (j.is_object()) {
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& k = it.key();
      const bool seq_key = k == "seq" || (k.size() > 4 && k.compare(k.size() - 4, 4, "_seq") == 0);
      if (seq_key && it->is_number_unsigned()) m = std::max(m, it->get<std::uint64_t>());
      m = std::max(m, MaxSeq(*it));
    }
  } else if (j.is_array()) {
    for (const auto& e : j) m = std::max(m, MaxSeq(e));
  }
  return m;
}

// An answer without its top-level "at" (null without --at, the time with it).
json WithoutAt(json j) {
  if (j.is_object()) j.erase("at");
  return j;
}

// Failures of any process, with the first ones' stderr.
class Failures {
 public:
  void Add(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    if (list_.size() < 20) list_.push_back(what);
    ++count_;
  }
  std::size_t count() const {
    std::lock_guard<std::mutex> lock(mu_);
    return count_;
  }
  std::string Report() const {
    std::lock_guard<std::mutex> lock(mu_);
    std::string out;
    for (const auto& f : list_) out += "  - " + f + "\n";
    return out;
  }

 private:
  mutable std::mutex mu_;
  std::vector<std::string> list_;
  std::size_t count_ = 0;
};

// Outputs that must all be prefixes of one another (and, at the end, of the
// final output): only the longest is kept.
class PrefixChain {
 public:
  // False when `s` and the longest so far are not prefixes of each other.
  bool Add(const std::string& s) {
    std::lock_guard<std::mutex> lock(mu_);
    ++runs_;
    if (s.size() <= longest_.size()) return longest_.compare(0, s.size(), s) == 0;
    if (s.compare(0, longest_.size(), longest_) != 0) return false;
    longest_ = s;
    return true;
  }
  std::string longest() const {
    std::lock_guard<std::mutex> lock(mu_);
    return longest_;
  }
  int runs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_;
  }

 private:
  mutable std::mutex mu_;
  std::string longest_;
  int runs_ = 0;
};

// Distinct answers of one read command.
class Answers {
 public:
  void Add(const std::string& out) {
    std::lock_guard<std::mutex> lock(mu_);
    ++runs_;
    distinct_.insert(out);
  }
  std::set<std::string> distinct() const {
    std::lock_guard<std::mutex> lock(mu_);
    return distinct_;
  }
  int runs() const {
    std::lock_guard<std::mutex> lock(mu_);
    return runs_;
  }

 private:
  mutable std::mutex mu_;
  std::set<std::string> distinct_;
  int runs_ = 0;
};

// Lets the controller start and stop the server only while no CLI write is
// in flight.
class WriteGate {
 public:
  void Enter() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !closed_; });
    ++inside_;
  }
  void Leave() {
    std::lock_guard<std::mutex> lock(mu_);
    --inside_;
    cv_.notify_all();
  }
  void Close() {
    std::unique_lock<std::mutex> lock(mu_);
    closed_ = true;
    cv_.wait(lock, [this] { return inside_ == 0; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    closed_ = false;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool closed_ = false;
  int inside_ = 0;
};

// --- The readers' lock ------------------------------------------------------

std::unique_ptr<RwFileLock> OpenLock(const std::string& path) {
  auto lock = RwFileLock::Open(path, /*create=*/true);
  EXPECT_TRUE(lock) << lock.error().ToString();
  return lock ? std::move(*lock) : nullptr;
}

TEST(ReadersLock, SharedHoldersCoexistAndExcludeAWriter) {
  testing::TempDir dir;
  const std::string path = dir.sub("readers.lock");
  auto a = OpenLock(path), b = OpenLock(path), w = OpenLock(path);
  ASSERT_TRUE(a && b && w);
  ASSERT_TRUE(a->LockShared(std::chrono::milliseconds(0)).ok());
  ASSERT_TRUE(b->LockShared(std::chrono::milliseconds(0)).ok());
  EXPECT_EQ(w->LockExclusive(std::chrono::milliseconds(0)).code(), Code::kBusy);
  const Status timed = w->LockExclusive(std::chrono::milliseconds(50));
  EXPECT_EQ(timed.code(), Code::kBusy);
  EXPECT_NE(timed.message().find("50 ms"), std::string::npos) << timed.message();
  a->Unlock();
  b->Unlock();
  ASSERT_TRUE(w->LockExclusive(std::chrono::milliseconds(0)).ok());
  EXPECT_EQ(a->LockShared(std::chrono::milliseconds(0)).code(), Code::kBusy);
  w->Unlock();
  EXPECT_TRUE(a->LockShared(std::chrono::milliseconds(0)).ok());
  // The stamp writers share (in the gate file).
  EXPECT_FALSE(b->SharedStamp());
  const auto t = std::chrono::system_clock::time_point(std::chrono::seconds(1'700'000'000));
  w->SetSharedStamp(t);
  EXPECT_EQ(b->SharedStamp(), t);
  // Without permission to create them, missing lock files are NotFound.
  auto none = RwFileLock::Open(dir.sub("missing/readers.lock"), true);
  ASSERT_FALSE(none);
  EXPECT_EQ(none.error().code(), Code::kNotFound);
}

// flock(2) lets new shared holders in while an exclusive one waits; the
// gate does not: once a writer waits, new readers queue behind it, so a
// stream of overlapping readers cannot starve it.
TEST(ReadersLock, AWaitingWriterKeepsNewReadersOut) {
  testing::TempDir dir;
  const std::string path = dir.sub("readers.lock");
  auto inside = OpenLock(path), writer = OpenLock(path), probe = OpenLock(path),
       later = OpenLock(path);
  ASSERT_TRUE(inside && writer && probe && later);
  ASSERT_TRUE(inside->LockShared(std::chrono::milliseconds(0)).ok());
  Status got;
  std::thread w([&] { got = writer->LockExclusive(std::chrono::seconds(60)); });
  // Until the writer waits at the gate, a probe gets in (and leaves).
  const auto deadline = Steady::now() + std::chrono::seconds(30);
  bool queued = false;
  while (!queued && Steady::now() < deadline) {
    if (probe->LockShared(std::chrono::milliseconds(0)).ok()) {
      probe->Unlock();
      std::this_thread::yield();
    } else {
      queued = true;
    }
  }
  ASSERT_TRUE(queued) << "the writer never reached the gate";
  // A reader arriving now waits for the writer, even though only readers
  // hold the lock.
  EXPECT_EQ(later->LockShared(std::chrono::milliseconds(20)).code(), Code::kBusy);
  Status later_got;
  std::thread r([&] { later_got = later->LockShared(std::chrono::seconds(60)); });
  inside->Unlock();  // the last reader inside leaves: the writer goes first
  w.join();
  ASSERT_TRUE(got.ok()) << got.ToString();
  writer->Unlock();
  r.join();
  EXPECT_TRUE(later_got.ok()) << later_got.ToString();
}

// --- A read-only view while writers come and go -----------------------------

std::string SampleDraft(std::uint64_t i) {
  return events::Draft({"tester", NewEventId(), 0},
                       events::SampleRegistration("risk_model", "v1.0." + std::to_string(i), i));
}

std::set<std::string> FilesIn(const std::string& dir) {
  std::set<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.insert(e.path().filename().string());
  return names;
}

// Every writable open switches to a new MANIFEST and flushes the last
// session's WAL; backups flush the memtables; the flushed files of the
// overwritten families (meta) get compacted. Without the readers' lock each
// of these deletes files a read-only view opened earlier may still read.
TEST(ReadOnlyView, KeepsEveryFileOfTheLogUntilItCloses) {
  testing::TempDir dir;
  const std::string log = dir.sub("log");
  Seq appended = 0;
  auto session = [&](int appends) {
    StoreOptions wo;
    wo.extra_column_families = {"projection"};
    auto w = EventStore::Open(log, wo);
    ASSERT_TRUE(w) << w.error().ToString();
    for (int i = 0; i < appends; ++i) {
      auto r = (*w)->Append({SampleDraft(++appended), std::nullopt, nullptr});
      ASSERT_TRUE(r) << r.error().ToString();
      auto b = (*w)->CreateBackup(dir.sub("backup"), "");  // flushes
      ASSERT_TRUE(b) << b.error().ToString();
    }
  };
  session(3);
  StoreOptions ro;
  ro.read_only = true;
  auto view = EventStore::Open(log, ro);
  ASSERT_TRUE(view) << view.error().ToString();
  const Seq seen = appended;
  const std::set<std::string> at_open = FilesIn(log);
  for (int i = 0; i < 6; ++i) session(2);
  // Nothing the view might read was deleted, and it reads all it saw.
  for (const std::string& name : at_open) {
    EXPECT_TRUE(fs::exists(fs::path(log) / name)) << name << " was deleted under a reader";
  }
  auto report = (*view)->Verify();
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  EXPECT_EQ(report->events, seen);
  int manifests = 0;
  for (const std::string& name : FilesIn(log)) manifests += name.rfind("MANIFEST-", 0) == 0;
  EXPECT_GT(manifests, 1);  // held back
  view->reset();
  // With no reader about, the next writer's close deletes what was held back.
  session(1);
  manifests = 0;
  for (const std::string& name : FilesIn(log)) manifests += name.rfind("MANIFEST-", 0) == 0;
  EXPECT_EQ(manifests, 1);
  auto after = EventStore::Open(log, ro);
  ASSERT_TRUE(after) << after.error().ToString();
  EXPECT_EQ((*after)->head().seq, appended);
  EXPECT_TRUE((*after)->Verify()->ok);
}

// A reader that stays (`modelreg events | less`) keeps the backlog from
// being deleted. Once it is overdue a closing writer waits for the readers
// (at most 2 s); when that times out, writers stop waiting for a while (the
// time is shared through the lock's gate file) instead of each paying it.
TEST(ReadOnlyView, AReaderThatStaysCostsWritersOneBoundedWait) {
  testing::TempDir dir;
  const std::string log = dir.sub("log");
  Seq appended = 0;
  auto session = [&] {
    const auto t0 = Steady::now();
    {
      auto w = EventStore::Open(log);
      EXPECT_TRUE(w) << w.error().ToString();
      if (!w) return std::chrono::duration<double>(0);
      auto r = (*w)->Append({SampleDraft(++appended), std::nullopt, nullptr});
      EXPECT_TRUE(r) << r.error().ToString();
    }
    return std::chrono::duration<double>(Steady::now() - t0);
  };
  session();
  StoreOptions ro;
  ro.read_only = true;
  auto view = EventStore::Open(log, ro);
  ASSERT_TRUE(view) << view.error().ToString();
  auto lock = OpenLock(log + "/modelreg-readers.lock");
  ASSERT_TRUE(lock);
  // Sessions until one waited and timed out (128 files held back).
  int sessions = 0;
  while (!lock->SharedStamp() && sessions < 200) {
    session();
    ++sessions;
  }
  ASSERT_TRUE(lock->SharedStamp()) << "no writer waited after " << sessions << " sessions";
  // The next writers do not wait again (a wait is 2 s).
  for (int i = 0; i < 5; ++i) EXPECT_LT(session().count(), 2.0) << "a writer waited again";
  auto report = (*view)->Verify();
  ASSERT_TRUE(report) << report.error().ToString();
  EXPECT_TRUE(report->ok) << report->problem;
  view->reset();
  session();  // no reader: everything held back goes
  int manifests = 0;
  for (const std::string& name : FilesIn(log)) manifests += name.rfind("MANIFEST-", 0) == 0;
  EXPECT_EQ(manifests, 1);
}

// --- The real binaries --------------------------------------------------------

class MultiprocessRead : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(root_);
    std::ofstream(root_ + "/policy.toml")
        << "[default]\nic = \"off\"\nsharpe = \"off\"\npaper_trading_hours = \"off\"\n";
  }

  std::string Mr() const { return bin_ + " --root " + root_ + " "; }

  // A CLI call that must succeed.
  RunResult Ok(const std::string& args, const std::string& actor = "seed") {
    RunResult r = RunCmd("MODELREG_ACTOR=" + actor + " " + Mr() + args);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
  }

  std::string Artifact(const std::string& name, const std::string& content) {
    const std::string path = dir_.sub("art-" + name);
    std::ofstream(path) << content;
    return path;
  }

  std::string Token(const std::string& sub) {
    RunResult r = RunCmd("MODELREG_JWT_SECRET=" + kSecret + " " + Mr() + "token issue --sub " +
                         sub + " --scope model:write --ttl 2h");
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.out.substr(0, r.out.find('\n'));
  }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
  std::string bin_ = testing::EnvOr("MODELREG_BIN", "modelreg");
  std::string replay_ = testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay");
};

TEST_F(MultiprocessRead, ReadersNeverFailOrMisreportBesideWritingProcesses) {
  const int seconds =
      std::max(1, std::atoi(testing::EnvOr("MODELREG_MULTIPROCESS_SECONDS", "30").c_str()));

  const auto test_start = Steady::now();
  // The quiescent registry: one production version per type.
  for (const char* type : kTypes) {
    Ok(std::string("register ") + type + " " + Artifact(std::string(type) + "-seed", type) +
       " --version v0.1.0 --metric ic=0.05");
    Ok(std::string("promote ") + type + " v0.1.0");
  }
  const std::vector<std::string> seed_events = Lines(Ok("--json events").out);
  ASSERT_EQ(seed_events.size(), 1u + 8u);  // the adopted policy.toml, then the seed
  const std::string t_before = json::parse(seed_events.back())["recorded_at"].get<std::string>();
  const std::string audit_args = "--json audit --at " + t_before;
  const std::string quiescent_audit = Ok(audit_args).out;
  ASSERT_FALSE(quiescent_audit.empty());

  const std::string cli_tokens[] = {Token("cli-risk"), Token("cli-alpha")};
  const std::string http_token = Token("http-writer");

  Failures reader_failures, writer_failures;
  std::atomic<int> verify_alarms{0};
  PrefixChain events_chain, export_chain;
  Answers show_answers, list_answers, current_answers, consumers_answers;
  std::mutex verify_mu;
  std::set<std::pair<std::uint64_t, std::string>> verify_heads;  // (head_seq, head_hash)
  std::atomic<int> verify_runs{0}, audit_runs{0};

  // --- Readers ---------------------------------------------------------
  std::atomic<bool> stop_readers{false};
  auto read_loop = [&](const std::string& name, const std::string& command,
                       const std::function<void(const RunResult&)>& check) {
    return std::thread([&, name, command, check] {
      while (!stop_readers.load()) {
        RunResult r = RunCmd(command);
        if (r.rc != 0) {
          reader_failures.Add(name + " exited " + std::to_string(r.rc) + ": " + r.err);
          if (name == "verify" && r.rc == 5) ++verify_alarms;
          continue;
        }
        check(r);
      }
    });
  };
  std::vector<std::thread> readers;
  readers.push_back(read_loop("verify", Mr() + "--json verify", [&](const RunResult& r) {
    ++verify_runs;
    const json j = json::parse(r.out, nullptr, false);
    if (j.is_discarded() || !j.value("ok", false)) {
      ++verify_alarms;
      reader_failures.Add("verify reported a problem: " + r.out);
      return;
    }
    std::lock_guard<std::mutex> lock(verify_mu);
    verify_heads.emplace(j.value("head_seq", std::uint64_t{0}), j.value("head_hash", ""));
  }));
  readers.push_back(read_loop("audit --at", Mr() + audit_args, [&](const RunResult& r) {
    ++audit_runs;
    if (r.out != quiescent_audit) {
      reader_failures.Add("audit --at " + t_before + " differs from the quiescent answer:\n" +
                          r.out + "\nwas:\n" + quiescent_audit);
    }
  }));
  readers.push_back(read_loop("show", Mr() + "--json show risk_model v0.1.0",
                              [&](const RunResult& r) { show_answers.Add(r.out); }));
  readers.push_back(read_loop("list", Mr() + "--json list risk_model",
                              [&](const RunResult& r) { list_answers.Add(r.out); }));
  readers.push_back(read_loop("current", Mr() + "--json current alpha_weights",
                              [&](const RunResult& r) { current_answers.Add(r.out); }));
  readers.push_back(read_loop("consumers", Mr() + "--json consumers feature_transforms",
                              [&](const RunResult& r) { consumers_answers.Add(r.out); }));
  readers.push_back(read_loop("events", Mr() + "--json events", [&](const RunResult& r) {
    if (!events_chain.Add(r.out)) {
      reader_failures.Add("events: an output that is not a prefix of an earlier one's");
    }
  }));
  const std::string export_file = dir_.sub("reader-export.jsonl");
  readers.push_back(read_loop(
      "export", replay_ + " --root " + root_ + " export --to " + export_file,
      [&](const RunResult&) {
        const std::vector<std::string> lines = Lines(testing::Slurp(export_file));
        fs::remove(export_file);
        if (lines.size() < 2) {
          reader_failures.Add("export: fewer than 2 lines");
          return;
        }
        const json header = json::parse(lines.front(), nullptr, false);
        const json trailer = json::parse(lines.back(), nullptr, false);
        const std::size_t n = lines.size() - 2;
        std::string body;
        for (std::size_t i = 1; i + 1 < lines.size(); ++i) body += lines[i] + "\n";
        const std::string last_hash =
            n == 0 ? std::string() : json::parse(lines[n]).value("hash", std::string());
        if (header.is_discarded() || trailer.is_discarded() ||
            header.value("events", std::size_t{0}) != n ||
            trailer.value("events", std::size_t{0}) != n ||
            header.value("head_hash", std::string()) != last_hash ||
            trailer.value("head_hash", std::string()) != last_hash) {
          reader_failures.Add("export: header/trailer do not match its events:\n" +
                              lines.front() + "\n" + lines.back());
        }
        if (!export_chain.Add(body)) {
          reader_failures.Add("export: events that are not a prefix of an earlier export's");
        }
      }));
  // A follower: RocksDB secondary instance, catching up as writers come and go.
  testing::Child follower({"/bin/sh", "-c", "exec " + Mr() + "--json events --follow"});

  // --- Writers ---------------------------------------------------------
  WriteGate gate;
  std::atomic<bool> stop_writers{false};
  std::atomic<bool> serving{false};
  std::atomic<int> local_writes[2] = {0, 0};
  std::atomic<int> routed_writes{0}, http_writes{0};
  auto cli_writer = [&](int w, const std::string& type) {
    return std::thread([&, w, type] {
      const std::string actor = w == 0 ? "cli-risk" : "cli-alpha";
      const std::string env =
          "MODELREG_ACTOR=" + actor + " MODELREG_TOKEN=" + cli_tokens[w] + " " + Mr();
      auto write = [&](const std::string& args) {
        gate.Enter();
        const bool routed = serving.load();
        RunResult r = RunCmd(env + args);
        gate.Leave();
        if (r.rc != 0) {
          writer_failures.Add(actor + " `" + args + "` exited " + std::to_string(r.rc) + ": " +
                              r.err);
        } else {
          ++(routed ? routed_writes : local_writes[w]);
        }
      };
      for (int i = 1; !stop_writers.load(); ++i) {
        const std::string v = "v1." + std::to_string(i) + ".0";
        write("register " + type + " " + Artifact(type + v, type + v) + " --version " + v +
              " --metric ic=0.05");
        write("promote " + type + " " + v);
        if (i % 3 == 0) write("--reason test rollback " + type);
        if (i % 4 == 0) write("validate " + type + " v0.1.0");
        if (i % 5 == 0) {
          const std::string staged = "v1." + std::to_string(i) + ".1";
          write("register " + type + " " + Artifact(type + staged, type + staged) + " --version " +
                staged);
          write("archive " + type + " " + staged);
        }
      }
    });
  };
  std::vector<std::thread> writers;
  // Stops and joins every thread however the test leaves this scope.
  struct Joiner {
    std::function<void()> f;
    ~Joiner() { f(); }
  } joiner{[&] {
    stop_writers = true;
    gate.Open();
    for (auto& t : writers) {
      if (t.joinable()) t.join();
    }
    stop_readers = true;
    for (auto& t : readers) {
      if (t.joinable()) t.join();
    }
  }};
  writers.push_back(cli_writer(0, "risk_model"));
  writers.push_back(cli_writer(1, "alpha_weights"));

  // The controller: CLI phases and serve phases (with HTTP writes here).
  const auto start = Steady::now();
  const auto end = start + std::chrono::seconds(seconds);
  const auto phase =
      std::chrono::duration_cast<Steady::duration>(std::chrono::seconds(seconds)) / 4;
  int http_i = 0;
  auto last_ack = Steady::time_point{};
  for (int p = 0; Steady::now() < end; ++p) {
    const auto phase_end = std::min(end, Steady::now() + phase);
    if (p % 2 == 0) {
      std::this_thread::sleep_until(phase_end);  // the CLI loops write locally
      continue;
    }
    gate.Close();
    testing::Child server({"/bin/sh", "-c",
                           "exec env MODELREG_JWT_SECRET=" + kSecret + " " + Mr() +
                               "serve --listen 127.0.0.1:0"});
    const auto ready_by = Steady::now() + std::chrono::seconds(60);
    while (server.Lines().empty() && Steady::now() < ready_by && server.ReadFor(100)) {
    }
    ASSERT_FALSE(server.Lines().empty()) << "modelreg serve did not start";
    const std::string first = server.Lines()[0];
    ASSERT_NE(first.find("http://127.0.0.1:"), std::string::npos) << first;
    const int port = std::atoi(first.substr(first.rfind(':') + 1).c_str());
    serving = true;
    gate.Open();

    httplib::Client client("127.0.0.1", port);
    client.set_read_timeout(60, 0);
    const httplib::Headers auth = {{"Authorization", "Bearer " + http_token}};
    auto check = [&](const httplib::Result& r, const std::string& what) {
      if (!r) {
        writer_failures.Add("http " + what + ": " + httplib::to_string(r.error()));
      } else if (r->status / 100 != 2) {
        writer_failures.Add("http " + what + ": " + std::to_string(r->status) + " " + r->body);
      } else {
        ++http_writes;
      }
    };
    const std::string base = "/api/v1/models/factor_definitions";
    // Paced at 10 rounds a second: more would only grow the log (and the
    // artifact tree the test deletes at the end), not the file churn.
    for (auto next = Steady::now(); Steady::now() < phase_end;
         next += std::chrono::milliseconds(100)) {
      std::this_thread::sleep_until(next);
      ++http_i;
      const std::string v = "v1." + std::to_string(http_i) + ".0";
      httplib::MultipartFormDataItems items{
          {"artifact", "factor_definitions " + v, "defs.pkl", "application/octet-stream"},
          {"metadata", R"({"metrics": {"ic": 0.05}})", "", "application/json"}};
      check(client.Post(base + "/" + v, auth, items), "register " + v);
      check(client.Post(base + "/" + v + "/promote", auth, "{}", "application/json"),
            "promote " + v);
      if (http_i % 3 == 0) {
        check(client.Post(base + "/rollback", auth, R"({"reason": "test"})", "application/json"),
              "rollback");
      }
      if (Steady::now() - last_ack >= std::chrono::seconds(1)) {
        last_ack = Steady::now();
        check(client.Post("/api/v1/models/feature_transforms/consumers/svc-1/ack", auth,
                          R"({"version": "v0.1.0", "ok": true})", "application/json"),
              "ack");
      }
    }
    gate.Close();
    const int status = server.SignalAndWait(SIGTERM);
    EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "serve: " << status;
    serving = false;
    gate.Open();
  }
  stop_writers = true;
  for (auto& t : writers) t.join();
  stop_readers = true;
  for (auto& t : readers) t.join();
  const auto load_end = Steady::now();
  const double load_seconds = std::chrono::duration<double>(load_end - start).count();

  // --- The final, quiescent log ----------------------------------------
  // The follower catches up with every event written, and stops.
  const std::size_t written = Lines(Ok("--json events").out).size();
  const auto follow_by = Steady::now() + std::chrono::seconds(60);
  while (follower.Lines().size() < written && Steady::now() < follow_by &&
         follower.ReadFor(200)) {
  }
  const std::vector<std::string> followed = follower.Lines();
  follower.SignalAndWait(SIGTERM);
  // One more local write with no reader about: its close deletes what the
  // writers held back (one MANIFEST is left).
  Ok("validate risk_model v0.1.0", "final");
  int manifests = 0;
  for (const auto& e : fs::directory_iterator(root_ + "/registry")) {
    manifests += e.path().filename().string().rfind("MANIFEST-", 0) == 0 ? 1 : 0;
  }
  EXPECT_EQ(manifests, 1) << "obsolete files were not deleted";
  const std::string final_events_out = Ok("--json events").out;
  const std::vector<std::string> final_events = Lines(final_events_out);
  std::vector<std::string> recorded_at = {""};  // by sequence number
  for (const auto& line : final_events) {
    recorded_at.push_back(json::parse(line)["recorded_at"].get<std::string>());
  }
  const std::string final_export = dir_.sub("final-export.jsonl");
  ASSERT_EQ(RunCmd(replay_ + " --root " + root_ + " export --to " + final_export).rc, 0);
  const std::vector<std::string> export_lines = Lines(testing::Slurp(final_export));
  ASSERT_EQ(export_lines.size(), final_events.size() + 2);
  std::string final_export_body;
  std::vector<std::string> hashes = {""};
  for (std::size_t i = 1; i + 1 < export_lines.size(); ++i) {
    final_export_body += export_lines[i] + "\n";
    hashes.push_back(json::parse(export_lines[i])["hash"].get<std::string>());
  }
  EXPECT_EQ(json::parse(Ok("--json verify").out).value("ok", false), true);
  EXPECT_EQ(Ok(audit_args).out, quiescent_audit);

  // Every writer wrote.
  EXPECT_GT(local_writes[0].load(), 0);
  EXPECT_GT(local_writes[1].load(), 0);
  EXPECT_GT(http_writes.load(), 0);
  EXPECT_EQ(writer_failures.count(), 0u) << writer_failures.Report();

  // The follower printed the log as it was when the writers stopped.
  EXPECT_EQ(followed.size(), written) << "events --follow fell behind";
  for (std::size_t i = 0; i < std::min(followed.size(), final_events.size()); ++i) {
    ASSERT_EQ(followed[i], final_events[i]) << "events --follow, line " << i + 1;
  }

  // Prefix checks.
  EXPECT_EQ(final_events_out.compare(0, events_chain.longest().size(), events_chain.longest()), 0)
      << "an `events` output is not a prefix of the final log";
  EXPECT_EQ(final_export_body.compare(0, export_chain.longest().size(), export_chain.longest()), 0)
      << "an export is not a prefix of the final export";
  for (const auto& [seq, hash] : verify_heads) {
    ASSERT_LT(seq, hashes.size());
    EXPECT_EQ(hash, hashes[seq]) << "verify reported head " << seq << " with another hash";
  }

  // show / list / current / consumers: each distinct answer against the
  // final registry at the prefix it names.
  struct Command {
    std::string name;
    const Answers* answers;
    std::function<std::string(std::uint64_t k)> at;  // the answer at prefix k
  };
  // consumers has no --at, and a registry materialized at each answer's
  // prefix costs about a second: the answer at prefix k is the final one
  // with svc-1's last acknowledgement up to k (every acknowledgement in this
  // test reports the same version), and that derivation is checked once
  // against `materialize --at` the first acknowledgement.
  const std::string consumers_args = "--json consumers feature_transforms";
  const json final_consumers = json::parse(Ok(consumers_args).out, nullptr, false);
  std::vector<std::uint64_t> acks;
  for (std::size_t i = 0; i < final_events.size(); ++i) {
    if (json::parse(final_events[i]).value("type", "") == "ConsumerAcknowledged") {
      acks.push_back(i + 1);
    }
  }
  ASSERT_FALSE(acks.empty());
  ASSERT_TRUE(final_consumers.is_object() && final_consumers["consumers"].size() == 1)
      << final_consumers.dump();
  const auto consumers_at = [&](std::uint64_t k) {
    json expected = final_consumers;
    auto after = std::upper_bound(acks.begin(), acks.end(), k);
    if (after == acks.begin()) {
      expected["consumers"] = json::array();
    } else {
      expected["consumers"][0]["seq"] = *(after - 1);
      expected["consumers"][0]["at"] = recorded_at[*(after - 1)];
    }
    return expected.dump();
  };
  {
    const std::string to = dir_.sub("materialized");
    RunResult m = RunCmd(replay_ + " --root " + root_ + " materialize --at " +
                         recorded_at[acks.front()] + " --to " + to);
    ASSERT_EQ(m.rc, 0) << m.err;
    const json there = json::parse(
        RunCmd(bin_ + " --root " + to + " " + consumers_args).out, nullptr, false);
    EXPECT_EQ(there, json::parse(consumers_at(acks.front())));
  }
  const std::vector<Command> commands = {
      {"show", &show_answers,
       [&](std::uint64_t k) {
         return RunCmd(Mr() + "--json show risk_model v0.1.0 --at " + recorded_at[k]).out;
       }},
      {"list", &list_answers,
       [&](std::uint64_t k) {
         return RunCmd(Mr() + "--json list risk_model --at " + recorded_at[k]).out;
       }},
      {"current", &current_answers,
       [&](std::uint64_t k) {
         return RunCmd(Mr() + "--json current alpha_weights --at " + recorded_at[k]).out;
       }},
      {"consumers", &consumers_answers, consumers_at},
  };
  // One thread per command (each keeps its own cache of answers at k).
  std::atomic<std::size_t> checked{0};
  Failures mismatches;
  std::string counts;
  std::vector<std::thread> checkers;
  for (const Command& c : commands) {
    counts += " " + c.name + " " + std::to_string(c.answers->runs()) + " runs/" +
              std::to_string(c.answers->distinct().size()) + " distinct;";
    checkers.emplace_back([&, c] {
      std::map<std::uint64_t, json> at_cache;
      for (const std::string& out : c.answers->distinct()) {
        ++checked;
        const json answer = json::parse(out, nullptr, false);
        const std::uint64_t m = answer.is_discarded() ? 0 : MaxSeq(answer);
        if (answer.is_discarded() || m >= recorded_at.size()) {
          mismatches.Add(c.name + ": not JSON, or names an event beyond the log:\n" + out);
          continue;
        }
        // The answer at prefix k, from k = m (readers started after the
        // seed events) while it names no later event.
        bool matched = false;
        const std::uint64_t from = std::max<std::uint64_t>(m, seed_events.size());
        for (std::uint64_t k = from; k < recorded_at.size() && k < from + 30; ++k) {
          auto it = at_cache.find(k);
          if (it == at_cache.end()) {
            it = at_cache.emplace(k, json::parse(c.at(k), nullptr, false)).first;
          }
          if (WithoutAt(it->second) == WithoutAt(answer)) {
            matched = true;
            break;
          }
          if (MaxSeq(it->second) > m) break;
        }
        if (!matched) {
          mismatches.Add(c.name + ": an answer that is no prefix's (it names event " +
                         std::to_string(m) + "):\n" + out);
        }
      }
    });
  }
  for (auto& t : checkers) t.join();
  EXPECT_EQ(mismatches.count(), 0u) << mismatches.Report();

  EXPECT_EQ(verify_alarms.load(), 0);
  EXPECT_EQ(reader_failures.count(), 0u) << reader_failures.Report();
  std::printf(
      "[multiprocess] %.1f s of setup, %.1f s of load, %.1f s of checks, %zu events; writes: "
      "cli-risk %d local, "
      "cli-alpha %d local, "
      "%d CLI through serve, %d HTTP; reads: verify %d, audit %d, events %d, export %d,%s "
      "%zu distinct answers checked; followed %zu lines; %zu reader failures\n",
      std::chrono::duration<double>(start - test_start).count(), load_seconds,
      std::chrono::duration<double>(Steady::now() - load_end).count(),
      final_events.size(), local_writes[0].load(), local_writes[1].load(),
      routed_writes.load(), http_writes.load(), verify_runs.load(), audit_runs.load(),
      events_chain.runs(), export_chain.runs(), counts.c_str(), checked.load(), followed.size(),
      reader_failures.count());
}

}  // namespace
}  // namespace modelreg
