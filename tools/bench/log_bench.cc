// modelreg-log-bench: measures the event log (EventStore) against its
// ceiling, raw synced RocksDB Puts of the same bytes, and prints one
// markdown table for docs/performance.md on stdout (progress on stderr).
//
// Every configuration writes into a fresh database under a temporary
// directory that is removed at the end (unless --keep). Store appends and
// raw Puts alternate in rounds so that drift in fsync speed (large on shared
// disks) hits both alike. Drafts are built before timing; times come from
// std::chrono::steady_clock.
#include <sched.h>
#include <stdlib.h>
#include <sys/statfs.h>
#include <sys/utsname.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <latch>
#include <limits>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <CLI/CLI.hpp>
#include <rocksdb/db.h>
#include <rocksdb/options.h>
#include <rocksdb/version.h>

#include "common/bytes.h"
#include "common/sha256.h"
#include "common/status.h"
#include "events/model_events.h"
#include "events/sample.h"
#include "log/envelope.h"
#include "log/event_buffer.h"
#include "log/event_store.h"

#include "bench_util.h"

namespace {

using modelreg::bench::BenchError;
using modelreg::bench::Check;

namespace fs = std::filesystem;
using SteadyClock = std::chrono::steady_clock;
using modelreg::EventStore;



void Check(const rocksdb::Status& st, const std::string& what) {
  if (!st.ok()) throw BenchError(what + ": " + st.ToString());
}

double Seconds(SteadyClock::time_point from, SteadyClock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

// A fresh directory, removed (with everything in it) on destruction.
class TempDir {
 public:
  TempDir(const fs::path& parent, bool keep) : keep_(keep) {
    fs::create_directories(parent);
    std::string templ = (parent / "modelreg-log-bench.XXXXXX").string();
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (mkdtemp(buf.data()) == nullptr) {
      throw BenchError("cannot create a directory in " + parent.string() + ": " +
                       std::strerror(errno));
    }
    path_ = buf.data();
  }
  ~TempDir() {
    if (keep_) {
      std::cerr << "kept the databases in " << path_.string() << '\n';
      return;
    }
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
  bool keep_;
};

// The first error of any worker thread (exceptions must not leave a thread).
class FirstError {
 public:
  void Set(std::string message) {
    std::lock_guard<std::mutex> lock(mu_);
    if (!message_) message_ = std::move(message);
    failed_.store(true);
  }
  bool failed() const { return failed_.load(); }
  void ThrowIfSet() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (message_) throw BenchError(*message_);
  }

 private:
  mutable std::mutex mu_;
  std::optional<std::string> message_;
  std::atomic<bool> failed_{false};
};

// Runs `body(begin, end)` on `threads` threads over [from, to) split into
// contiguous slices. Returns the wall time from the moment all threads are
// ready until the last one finishes.
using Body = std::function<void(std::size_t, std::size_t)>;

double RunThreads(std::size_t from, std::size_t to, int threads, const Body& body) {
  const auto t = static_cast<std::size_t>(threads);
  const std::size_t n = to - from;
  std::latch ready(threads + 1);
  std::vector<SteadyClock::time_point> ends(t);
  std::vector<std::thread> workers;
  workers.reserve(t);
  for (std::size_t i = 0; i < t; ++i) {
    const std::size_t begin = from + n * i / t;
    const std::size_t end = from + n * (i + 1) / t;
    workers.emplace_back([&ready, &body, &ends, i, begin, end] {
      ready.arrive_and_wait();
      body(begin, end);
      ends[i] = SteadyClock::now();
    });
  }
  ready.arrive_and_wait();
  const auto start = SteadyClock::now();
  for (auto& w : workers) w.join();
  SteadyClock::time_point last = start;
  for (const auto& e : ends) last = std::max(last, e);
  return Seconds(start, last);
}

// ---- the measurements ---------------------------------------------------

std::vector<std::string> BuildDrafts(std::size_t n) {
  static const char* const kTypes[] = {"risk_model",       "alpha_momentum",
                                       "alpha_value",      "execution_cost",
                                       "vol_forecast",     "regime_classifier",
                                       "liquidity_score",  "factor_covariance"};
  constexpr std::size_t kTypeCount = sizeof kTypes / sizeof kTypes[0];
  std::vector<std::string> drafts;
  drafts.reserve(n);
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t per_type = i / kTypeCount;
    const std::string version =
        "v" + std::to_string(1 + per_type / 10000) + "." + std::to_string(per_type / 100 % 100) +
        "." + std::to_string(per_type % 100);
    const modelreg::events::Registration reg =
        modelreg::events::SampleRegistration(kTypes[i % kTypeCount], version, i);
    const std::string event_id = modelreg::NewEventId();
    drafts.push_back(modelreg::events::Draft({"bench-pipeline", event_id, 0}, reg));
  }
  return drafts;
}

// EventStore::Append (sync, no expected_head) of drafts into a fresh store.
class AppendBench {
 public:
  AppendBench(const fs::path& dir, const std::vector<std::string>& drafts)
      : drafts_(drafts),
        store_(Check(EventStore::Open(dir.string()), "open store " + dir.string())) {}

  // Appends drafts [from, to) from `threads` threads; returns seconds.
  double Run(std::size_t from, std::size_t to, int threads) {
    // Append takes its request by value: copy the drafts before timing so
    // the timed loop only moves them.
    std::vector<std::string> copies(drafts_.begin() + static_cast<std::ptrdiff_t>(from),
                                    drafts_.begin() + static_cast<std::ptrdiff_t>(to));
    FirstError error;
    const double secs = RunThreads(from, to, threads, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end && !error.failed(); ++i) {
        modelreg::AppendRequest req;
        req.draft = std::move(copies[i - from]);
        auto r = store_->Append(std::move(req));
        if (!r) {
          error.Set("append of draft " + std::to_string(i) + ": " + r.error().ToString());
        } else if (r->duplicate) {
          error.Set("append of draft " + std::to_string(i) + " was reported as a duplicate");
        }
      }
    });
    error.ThrowIfSet();
    const modelreg::Seq head = store_->head().seq;
    if (head != to) {
      throw BenchError("store head is " + std::to_string(head) + " after appending drafts 1.." +
                       std::to_string(to));
    }
    return secs;
  }

  void Close() { store_.reset(); }

 private:
  const std::vector<std::string>& drafts_;
  std::unique_ptr<EventStore> store_;
};

// The ceiling: raw RocksDB (default options, sync writes) Put of the same
// bytes under a big-endian u64 counter key, into a fresh database.
class RawBench {
 public:
  RawBench(const fs::path& dir, const std::vector<std::string>& drafts) : drafts_(drafts) {
    rocksdb::Options options;
    options.create_if_missing = true;
    rocksdb::DB* raw = nullptr;
    Check(rocksdb::DB::Open(options, dir.string(), &raw), "open raw RocksDB " + dir.string());
    db_.reset(raw);
    write_options_.sync = true;
  }

  // Puts drafts [from, to) from `threads` threads; returns seconds.
  double Run(std::size_t from, std::size_t to, int threads) {
    FirstError error;
    const double secs = RunThreads(from, to, threads, [&](std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end && !error.failed(); ++i) {
        const std::string key = modelreg::Be64(counter_.fetch_add(1) + 1);
        rocksdb::Status s = db_->Put(write_options_, key, drafts_[i]);
        if (!s.ok()) error.Set("raw Put " + std::to_string(i) + ": " + s.ToString());
      }
    });
    error.ThrowIfSet();
    return secs;
  }

  void Close() {
    if (db_) Check(db_->Close(), "close raw RocksDB");
    db_.reset();
  }

 private:
  const std::vector<std::string>& drafts_;
  std::unique_ptr<rocksdb::DB> db_;
  rocksdb::WriteOptions write_options_;
  std::atomic<std::uint64_t> counter_{0};
};

struct PairTimes {
  double store = 0;  // seconds, summed over rounds
  double raw = 0;
  std::vector<double> round_ratios;  // append rate / raw rate per round

  double MedianRatio() const {
    std::vector<double> v = round_ratios;
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const std::size_t m = v.size() / 2;
    return v.size() % 2 == 1 ? v[m] : (v[m - 1] + v[m]) / 2;
  }
};

// Appends all drafts into a fresh store and Puts them into a fresh raw
// database with `threads` threads each, alternating in `rounds` chunks
// (and alternating which goes first) so disk speed drift hits both alike.
// Both are closed on return.
PairTimes BenchPair(const fs::path& store_dir, const fs::path& raw_dir,
                    const std::vector<std::string>& drafts, int threads, std::size_t rounds) {
  const std::size_t n = drafts.size();
  AppendBench store(store_dir, drafts);
  RawBench raw(raw_dir, drafts);
  PairTimes total;
  for (std::size_t r = 0; r < rounds; ++r) {
    const std::size_t from = n * r / rounds;
    const std::size_t to = n * (r + 1) / rounds;
    if (from == to) continue;
    double s = 0;
    double w = 0;
    if (r % 2 == 0) {
      s = store.Run(from, to, threads);
      w = raw.Run(from, to, threads);
    } else {
      w = raw.Run(from, to, threads);
      s = store.Run(from, to, threads);
    }
    total.store += s;
    total.raw += w;
    total.round_ratios.push_back(w / s);
    const double k = static_cast<double>(to - from);
    std::cerr << "[bench]   " << threads << " thread(s), round " << r + 1 << "/" << rounds
              << ": append " << static_cast<std::uint64_t>(k / s) << "/s, raw "
              << static_cast<std::uint64_t>(k / w) << "/s" << std::endl;
  }
  store.Close();
  raw.Close();
  return total;
}

struct ScanResult {
  double secs = 0;
  std::uint64_t events = 0;
  std::uint64_t checksum = 0;
};

ScanResult BenchScan(const EventStore& store) {
  ScanResult out;
  const auto start = SteadyClock::now();
  modelreg::Status st = store.Scan(
      1, std::numeric_limits<modelreg::Seq>::max(),
      [&out](modelreg::Seq seq, const modelreg::EventBuffer& event) {
        ++out.events;
        const auto* reg = event.event().payload_as_ModelRegistered();
        const std::uint64_t size =
            reg != nullptr && reg->version() != nullptr ? reg->version()->size() : 0;
        out.checksum += seq ^ size ^ static_cast<std::uint64_t>(event.event().recorded_at());
        return true;
      });
  out.secs = Seconds(start, SteadyClock::now());
  Check(st, "scan");
  return out;
}

struct DiskUsage {
  std::uint64_t total = 0;
  std::uint64_t sst = 0;
  std::uint64_t wal = 0;  // *.log (the info log is LOG, with no extension)
};

DiskUsage Measure(const fs::path& dir) {
  DiskUsage u;
  for (const auto& entry : fs::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    const std::uint64_t size = entry.file_size();
    u.total += size;
    const std::string ext = entry.path().extension().string();
    if (ext == ".sst") u.sst += size;
    if (ext == ".log") u.wal += size;
  }
  return u;
}

// ---- the machine --------------------------------------------------------

int OnlineCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return CPU_COUNT(&set);
  return static_cast<int>(std::thread::hardware_concurrency());
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0 || line.rfind("Model", 0) == 0) {
      const auto colon = line.find(':');
      if (colon != std::string::npos) {
        const auto start = line.find_first_not_of(" \t", colon + 1);
        if (start != std::string::npos) return line.substr(start);
      }
    }
  }
  return "unknown CPU";
}

std::string Kernel() {
  utsname u{};
  if (uname(&u) != 0) return "unknown kernel";
  return std::string(u.sysname) + " " + u.release;
}

std::string FileSystem(const fs::path& dir) {
  struct statfs s {};
  if (statfs(dir.c_str(), &s) != 0) return "unknown";
  switch (static_cast<unsigned long>(s.f_type)) {
    case 0xEF53: return "ext2/3/4";
    case 0x58465342: return "xfs";
    case 0x9123683E: return "btrfs";
    case 0x01021994: return "tmpfs (fsync is free: not a disk number)";
    case 0x794C7630: return "overlayfs";
    case 0x2FC12FC1: return "zfs";
    case 0x6969: return "nfs";
    default: {
      char buf[32];
      std::snprintf(buf, sizeof buf, "0x%lx", static_cast<unsigned long>(s.f_type));
      return std::string("type ") + buf;
    }
  }
}

// ---- formatting ---------------------------------------------------------

std::string Thousands(double v) {
  const auto n = static_cast<std::uint64_t>(v + 0.5);
  std::string digits = std::to_string(n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out.push_back(',');
    out.push_back(digits[i]);
  }
  return out;
}

std::string Fixed(double v, int decimals) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

std::string Rate(std::size_t n, double secs, const char* unit) {
  return Thousands(static_cast<double>(n) / secs) + " " + unit + " (" + Fixed(secs, 2) + " s)";
}

std::string PerEvent(const DiskUsage& u, std::size_t n) {
  const double e = static_cast<double>(n);
  return Thousands(static_cast<double>(u.total) / e) + " B";
}

std::string Breakdown(const DiskUsage& u, std::size_t n, double event_bytes) {
  const double e = static_cast<double>(n);
  return Fixed(static_cast<double>(u.total) / e / event_bytes, 2) + " × event size; SST " +
         Thousands(static_cast<double>(u.sst) / e) + " B + WAL " +
         Thousands(static_cast<double>(u.wal) / e) + " B + other " +
         Thousands(static_cast<double>(u.total - u.sst - u.wal) / e) + " B";
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"modelreg-log-bench: event log throughput against raw RocksDB"};
  std::uint64_t events = 100000;
  std::string dir = "/tmp";
  bool keep = false;
  std::size_t rounds = 10;
  app.add_option("--events", events, "Events per configuration (each thread appends events/threads)")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{1}, std::uint64_t{100'000'000}));
  app.add_option("--dir", dir, "Where the temporary databases go (a fresh subdirectory)")
      ->capture_default_str();
  app.add_option("--rounds", rounds,
                 "Chunks in which store appends and raw Puts alternate (1 = one after the other)")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1000}));
  app.add_flag("--keep", keep, "Keep the databases instead of removing them");
  CLI11_PARSE(app, argc, argv);

  try {
    const std::size_t n = static_cast<std::size_t>(events);
    TempDir tmp(dir, keep);
    const fs::path root = tmp.path();
    auto log = [](const std::string& m) { std::cerr << "[bench] " << m << std::endl; };

    log("building " + Thousands(static_cast<double>(n)) + " drafts");
    auto t0 = SteadyClock::now();
    const std::vector<std::string> drafts = BuildDrafts(n);
    std::uint64_t draft_bytes = 0;
    for (const auto& d : drafts) draft_bytes += d.size();
    const double event_bytes = static_cast<double>(draft_bytes) / static_cast<double>(n);
    log("built in " + Fixed(Seconds(t0, SteadyClock::now()), 2) + " s, average " +
        Fixed(event_bytes, 1) + " B");

    log("EventStore::Append vs raw RocksDB Put, 1 thread");
    const PairTimes one = BenchPair(root / "store-1t", root / "raw-1t", drafts, 1, rounds);
    const DiskUsage store_closed = Measure(root / "store-1t");
    const DiskUsage raw_closed = Measure(root / "raw-1t");
    log("EventStore::Append vs raw RocksDB Put, 4 threads");
    const PairTimes four = BenchPair(root / "store-4t", root / "raw-4t", drafts, 4, rounds);
    const double append1 = one.store, raw1 = one.raw, append4 = four.store, raw4 = four.raw;

    log("Scan and Verify (store reopened)");
    // Three passes each: the first runs on a cold cache right after the
    // reopen, the best of the others is the warm figure.
    ScanResult scan, scan_cold;
    double verify_secs = 0, verify_cold = 0;
    {
      auto store = Check(EventStore::Open((root / "store-1t").string()), "reopen store");
      for (int pass = 0; pass < 3; ++pass) {
        ScanResult r = BenchScan(*store);
        if (r.events != n) {
          throw BenchError("scan saw " + std::to_string(r.events) + " events, expected " +
                           std::to_string(n));
        }
        if (pass == 0) scan_cold = r;
        if (pass == 1 || (pass > 1 && r.secs < scan.secs)) scan = r;
      }
      for (int pass = 0; pass < 3; ++pass) {
        const auto start = SteadyClock::now();
        const modelreg::VerifyReport report = Check(store->Verify(), "verify");
        const double secs = Seconds(start, SteadyClock::now());
        if (!report.ok || report.events != n) {
          throw BenchError("verify: ok=" + std::to_string(report.ok) + " events=" +
                           std::to_string(report.events) + " " + report.problem);
        }
        if (pass == 0) verify_cold = secs;
        if (pass == 1 || (pass > 1 && secs < verify_secs)) verify_secs = secs;
      }
    }
    // The hashing ceiling of Verify: SHA-256 over (32-byte prev || event) for
    // every draft, nothing else.
    double sha_secs = 0;
    {
      const auto start = SteadyClock::now();
      modelreg::Digest prev{};
      modelreg::Sha256 h;
      for (const std::string& d : drafts) {
        h.Update(std::span<const std::uint8_t>(prev.data(), prev.size()));
        h.Update(d);
        prev = h.Finish();
      }
      sha_secs = Seconds(start, SteadyClock::now());
      if (prev[0] == 0 && prev[1] == 0 && prev[2] == 0 && prev[3] == 0) log("(unlikely digest)");
    }
    const DiskUsage store_reopened = Measure(root / "store-1t");
    log("scan checksum " + std::to_string(scan.checksum));

    std::cout << "Machine: " << OnlineCpus() << " CPUs (nproc), " << CpuModel() << ", "
              << Kernel() << "\n"
              << "Disk: " << FileSystem(root) << " at " << dir << "; RocksDB " << ROCKSDB_MAJOR
              << "." << ROCKSDB_MINOR << "." << ROCKSDB_PATCH << "\n"
              << "Run: " << Thousands(static_cast<double>(n))
              << " ModelRegistered events per configuration, each into a fresh database; "
                 "store appends and raw Puts alternate in "
              << rounds << " rounds\n\n";

    const double ratio1 = raw1 / append1;  // = append rate / raw rate
    const double ratio4 = raw4 / append4;
    std::cout << "| metric | value | target/ratio |\n"
              << "|---|---|---|\n"
              << "| EventStore::Append, sync, 1 thread | " << Rate(n, append1, "events/s")
              << " | " << Fixed(ratio1, 2) << " × raw ceiling |\n"
              << "| EventStore::Append, sync, 4 threads | " << Rate(n, append4, "events/s")
              << " | " << Fixed(ratio4, 2) << " × raw ceiling; " << Fixed(append1 / append4, 2)
              << " × 1 thread |\n"
              << "| raw RocksDB Put, sync, 1 thread (ceiling) | " << Rate(n, raw1, "writes/s")
              << " | default options, same bytes |\n"
              << "| raw RocksDB Put, sync, 4 threads (ceiling) | " << Rate(n, raw4, "writes/s")
              << " | default options, same bytes |\n"
              << "| append/raw, 1 thread | " << Fixed(ratio1, 2)
              << " | 1.00 = at the ceiling; median of rounds " << Fixed(one.MedianRatio(), 2)
              << " |\n"
              << "| append/raw, 4 threads | " << Fixed(ratio4, 2)
              << " | 1.00 = at the ceiling; median of rounds " << Fixed(four.MedianRatio(), 2)
              << " |\n"
              << "| Scan(1, UINT64_MAX), 1 thread, warm | " << Rate(n, scan.secs, "events/s")
              << " | target 1,000,000/s; best of passes 2-3 |\n"
              << "| Scan, first pass after reopen (cold) | " << Rate(n, scan_cold.secs, "events/s")
              << " | |\n"
              << "| Verify(), warm | " << Rate(n, verify_secs, "events/s")
              << " | target 1,000,000/s; best of passes 2-3 |\n"
              << "| Verify(), first pass | " << Rate(n, verify_cold, "events/s") << " | |\n"
              << "| SHA-256 chain over the same bytes, nothing else | "
              << Rate(n, sha_secs, "events/s") << " | the ceiling for Verify on this CPU |\n"
              << "| average event (draft) size | " << Thousands(event_bytes) << " B"
              << " | stored value adds a 32 B hash |\n"
              << "| bytes on disk / event, store closed after appends | "
              << PerEvent(store_closed, n) << " | " << Breakdown(store_closed, n, event_bytes)
              << " |\n"
              << "| bytes on disk / event, store after reopen (WAL flushed) | "
              << PerEvent(store_reopened, n) << " | "
              << Breakdown(store_reopened, n, event_bytes) << " |\n"
              << "| bytes on disk / event, raw RocksDB closed after Puts | "
              << PerEvent(raw_closed, n) << " | " << Breakdown(raw_closed, n, event_bytes)
              << " |\n";
    std::cout.flush();
  } catch (const std::exception& e) {
    std::cerr << "modelreg-log-bench: " << e.what() << '\n';
    return 1;
  }
  return 0;
}
