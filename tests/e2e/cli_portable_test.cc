// End-to-end: modelreg-replay export / import / materialize and modelreg
// backup list / verify / restore against real directories, on what can go
// wrong: export files and backup metadata with fields of the wrong JSON
// type, an import that fails (or is killed) after its check pass, and
// whether what these commands create is fsynced.
//
// Built twice: as the test, and with MODELREG_FSYNC_SPY as a small
// LD_PRELOAD library that logs every fsync/fdatasync/rename of the process
// it is loaded into (the durability tests read that log).
#ifdef MODELREG_FSYNC_SPY

#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <climits>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace {

// One line per call, appended with a single write (threads of RocksDB
// call these too).
void Note(const std::string& line) {
  const char* log = std::getenv("MODELREG_FSYNC_LOG");
  if (log == nullptr) return;
  const int fd = ::open(log, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) return;
  const std::string text = line + "\n";
  [[maybe_unused]] const ssize_t n = ::write(fd, text.data(), text.size());
  ::close(fd);
}

std::string PathOf(int fd) {
  char buf[PATH_MAX];
  const std::string link = "/proc/self/fd/" + std::to_string(fd);
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof buf - 1);
  return n < 0 ? "?" : std::string(buf, static_cast<std::size_t>(n));
}

template <typename Fn>
Fn Real(const char* name) {
  return reinterpret_cast<Fn>(::dlsym(RTLD_NEXT, name));
}

}  // namespace

extern "C" {

int fsync(int fd) {
  static const auto real = Real<int (*)(int)>("fsync");
  Note("fsync\t" + PathOf(fd));
  return real(fd);
}

int fdatasync(int fd) {
  static const auto real = Real<int (*)(int)>("fdatasync");
  Note("fdatasync\t" + PathOf(fd));
  return real(fd);
}

int rename(const char* from, const char* to) noexcept {
  static const auto real = Real<int (*)(const char*, const char*)>("rename");
  Note(std::string("rename\t") + from + "\t" + to);
  return real(from, to);
}

// A name relative to a directory descriptor, as a path (C++ linkage: it
// returns a std::string, among the C functions this file interposes).
extern "C++" std::string PathAt(int dir, const char* name) {
  if (dir == AT_FDCWD || name[0] == '/') return name;
  return PathOf(dir) + "/" + name;
}

int renameat2(int from_dir, const char* from, int to_dir, const char* to,
              unsigned int flags) noexcept {
  static const auto real =
      Real<int (*)(int, const char*, int, const char*, unsigned int)>("renameat2");
  Note("rename\t" + PathAt(from_dir, from) + "\t" + PathAt(to_dir, to));
  return real(from_dir, from, to_dir, to, flags);
}

int renameat(int from_dir, const char* from, int to_dir, const char* to) noexcept {
  static const auto real = Real<int (*)(int, const char*, int, const char*)>("renameat");
  Note("rename\t" + PathAt(from_dir, from) + "\t" + PathAt(to_dir, to));
  return real(from_dir, from, to_dir, to);
}

}  // extern "C"

#else  // the test

#include <gtest/gtest.h>

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/bytes.h"
#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"
#include "support/child.h"
#include "support/run.h"
#include "support/raw_db.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::Lines;
using testing::RunResult;

std::string Joined(const std::vector<std::string>& lines) {
  std::string out;
  for (const auto& l : lines) out += l + "\n";
  return out;
}

// Serves contents through a named pipe, one reader (one open) at a time:
// lets a test decide what modelreg-replay reads on its check pass and on
// its import pass, or stall it in the middle of the import.
class PipeFeeder {
 public:
  explicit PipeFeeder(std::string path) : path_(std::move(path)) {
    EXPECT_EQ(::mkfifo(path_.c_str(), 0600), 0) << path_;
  }
  ~PipeFeeder() { Close(); }
  PipeFeeder(const PipeFeeder&) = delete;
  PipeFeeder& operator=(const PipeFeeder&) = delete;

  // Waits for the next reader, writes `content` (a reader that stops early
  // is fine), then waits until the reader has closed the file, or with
  // `hold_open` keeps the pipe open so the reader waits for more. False if
  // no reader came.
  bool Serve(const std::string& content, bool hold_open = false) {
    // A reader that stops early must not kill the test with SIGPIPE: the
    // signal goes to the writing thread, which blocks it (EPIPE instead).
    sigset_t pipe_signal;
    sigemptyset(&pipe_signal);
    sigaddset(&pipe_signal, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_signal, nullptr);
    const auto opened_by = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while ((fd_ = ::open(path_.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC)) < 0) {
      if (errno != ENXIO || std::chrono::steady_clock::now() > opened_by) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
    for (std::size_t done = 0; done < content.size();) {
      const ssize_t n = ::write(fd_, content.data() + done, content.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) break;  // EPIPE: the reader stopped
      done += static_cast<std::size_t>(n);
    }
    if (hold_open) return true;
    // No events asked for: poll returns once the pipe has no reader (POLLERR).
    const auto closed_by = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    pollfd p{fd_, 0, 0};
    while (std::chrono::steady_clock::now() < closed_by && ::poll(&p, 1, 100) == 0) {
    }
    Close();
    return true;
  }
  // With a pipe held open: waits until the reader has taken all of it.
  void WaitDrained() const {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    int pending = 1;
    while (::ioctl(fd_, FIONREAD, &pending) == 0 && pending > 0 &&
           std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  std::string path_;
  int fd_ = -1;
};

class Portable : public ::testing::Test {
 protected:
  std::string Bin() const { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
  std::string Replay() const { return testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay"); }
  std::string Root() const { return dir_.sub("reg"); }

  RunResult Mr(const std::string& args) const {
    return RunCmd("MODELREG_ACTOR=alice " + Bin() + " --root " + Root() + " " + args);
  }
  RunResult Rp(const std::string& args) const { return RunCmd(Replay() + " " + args); }

  // A small registry through the CLI: two registered versions with their
  // artifacts, one validation.
  void SmallRegistry() const {
    fs::create_directories(Root());
    for (const char* v : {"v1.0.0", "v1.1.0"}) {
      const std::string art = dir_.sub(std::string("model-") + v + ".pkl");
      std::ofstream(art) << "weights " << v;
      RunResult r = Mr("register risk_model " + art + " --version " + v +
                       " --metric sharpe=1.5 --metric ic=0.08 --dataset crsp=v1.2.3"
                       " --snapshot snap_1 --factor momentum");
      ASSERT_EQ(r.rc, 0) << r.err;
    }
    ASSERT_EQ(Mr("validate risk_model v1.0.0").rc, 0);
  }

  // A registry log of `n` sample registrations written through the
  // library (fast, unsynced): big enough for an import to write batches.
  void BigRegistry(std::uint64_t n) const {
    fs::create_directories(Root() + "/registry");
    StoreOptions o;
    o.sync = false;
    auto store = EventStore::Open(Root() + "/registry", o);
    ASSERT_TRUE(store) << store.error().ToString();
    for (std::uint64_t i = 1; i <= n; ++i) {
      auto r = (*store)->Append({events::Draft({"tester", NewEventId(), 0},
                                               events::SampleRegistration(
                                                   "risk_model", "v1.0." + std::to_string(i), i)),
                                 std::nullopt, nullptr});
      ASSERT_TRUE(r) << r.error().ToString();
    }
  }

  std::string Export() const {
    const std::string file = dir_.sub("log.jsonl");
    RunResult r = Rp("--root " + Root() + " export --to " + file);
    EXPECT_EQ(r.rc, 0) << r.err;
    return file;
  }

  std::string Write(const std::string& name, const std::string& content) const {
    const std::string path = dir_.sub(name);
    std::ofstream(path, std::ios::binary) << content;
    return path;
  }

  // Entries of the test directory named like a staging directory of an
  // import into `target` (<target>.importing-*).
  std::vector<std::string> StagingLeftovers(const std::string& target,
                                            const std::string& tag = ".importing-") const {
    std::vector<std::string> out;
    const std::string prefix = fs::path(target).filename().string() + tag;
    for (const auto& e : fs::directory_iterator(fs::path(target).parent_path())) {
      if (e.path().filename().string().rfind(prefix, 0) == 0) out.push_back(e.path().string());
    }
    return out;
  }

  // Runs `command` with the fsync spy preloaded; returns the spy's log.
  std::vector<std::string> Spied(const std::string& command, RunResult* result) const {
    const std::string spy = testing::EnvOr("MODELREG_FSYNC_SPY", "");
    EXPECT_FALSE(spy.empty()) << "MODELREG_FSYNC_SPY is not set (run through meson test)";
    const std::string log = dir_.sub("fsync.log");
    fs::remove(log);
    *result = RunCmd("ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 "
                     "LD_PRELOAD=" + spy + " MODELREG_FSYNC_LOG=" + log + " " + command);
    return Lines(testing::Slurp(log));
  }

  testing::TempDir dir_;
};

// Index of the first log line equal to `line` at or after `from`, or npos.
std::size_t Find(const std::vector<std::string>& log, const std::string& line,
                 std::size_t from = 0) {
  for (std::size_t i = from; i < log.size(); ++i) {
    if (log[i] == line) return i;
  }
  return std::string::npos;
}

std::string Canon(const std::string& path) { return fs::weakly_canonical(path).string(); }

// --- 1. Fields of the wrong JSON type: a clear error, never an abort ---

TEST_F(Portable, ImportRefusesExportFieldsOfTheWrongTypeWithTheLine) {
  SmallRegistry();
  const auto lines = Lines(testing::Slurp(Export()));
  ASSERT_EQ(lines.size(), 5u);  // header, 3 events, trailer
  struct Case {
    std::string name;
    std::size_t line;  // 0-based line to change
    std::string field;
    json value;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"format-number", 0, "format", 5, "line 1: not a modelreg export"},
           {"version-string", 0, "format_version", "1", "line 1: export format version \"1\""},
           {"version-bool", 0, "format_version", true, "line 1: export format version true"},
           {"header-events-string", 0, "events", "3", "line 1: the header's event count"},
           {"seq-string", 2, "seq", "2", "line 3: expected event 2"},
           {"event-number", 2, "event", 7, "line 3: no event bytes"},
           {"hash-number", 2, "hash", 7, "line 3: the event's bytes do not match its hash"},
           {"trailer-events-string", 4, "events", "3", "line 5: the trailer counts \"3\""},
           {"trailer-events-negative", 4, "events", -3, "line 5: the trailer counts -3"},
           {"trailer-hash-array", 4, "head_hash", json::array(), "line 5: the trailer's head"},
           {"trailer-end-number", 4, "end", 1, "line 5: the trailer's \"end\" is 1"},
       }) {
    auto changed = lines;
    json j = json::parse(changed[c.line]);
    j[c.field] = c.value;
    changed[c.line] = j.dump();
    const std::string file = Write(c.name + ".jsonl", Joined(changed));
    const std::string target = dir_.sub("import-" + c.name);
    RunResult r = Rp("import " + file + " --to " + target);
    EXPECT_EQ(r.rc, 2) << c.name << ": " << r.err;  // not 134 (abort) nor 1
    EXPECT_NE(r.err.find(file + " " + c.message), std::string::npos) << c.name << ": " << r.err;
    EXPECT_NE(r.err.find("nothing was imported"), std::string::npos) << c.name << ": " << r.err;
    EXPECT_EQ(r.err.find("internal error"), std::string::npos) << c.name << ": " << r.err;
    EXPECT_FALSE(fs::exists(target)) << c.name;
  }
}

TEST_F(Portable, JsonOutputNamingAPathThatIsNotUtf8) {
  SmallRegistry();
  // Linux paths are bytes; the --json output replaces what is not UTF-8
  // instead of throwing (it used to abort the process).
  const std::string file = dir_.sub("export-\xff.jsonl");
  RunResult e = Rp("--root " + Root() + " --json export --to '" + file + "'");
  ASSERT_EQ(e.rc, 0) << e.err;
  EXPECT_EQ(json::parse(e.out)["file"], dir_.sub("export-\xef\xbf\xbd.jsonl"));
  EXPECT_TRUE(fs::exists(file));
  const std::string target = dir_.sub("new-\xfe");
  RunResult i = Rp("--json import '" + file + "' --to '" + target + "'");
  ASSERT_EQ(i.rc, 0) << i.err;
  EXPECT_EQ(json::parse(i.out)["events"], 3);
  EXPECT_TRUE(fs::exists(target + "/registry"));
}

class BackupMeta : public Portable {
 protected:
  void SetUp() override {
    SmallRegistry();
    ASSERT_EQ(Mr("backup create").rc, 0);
    meta_file_ = Root() + "/backups/db/meta/1";
    ASSERT_TRUE(fs::exists(meta_file_));
  }
  // Replaces what `backup create` recorded (RocksDB keeps it hex-encoded on
  // the "metadata" line of the backup's meta file).
  void SetMetadata(const std::string& text) const {
    auto lines = Lines(testing::Slurp(meta_file_));
    bool found = false;
    for (auto& l : lines) {
      if (l.rfind("metadata ", 0) != 0) continue;
      std::string hex;
      char b[3];
      for (unsigned char c : text) {
        std::snprintf(b, sizeof b, "%02X", c);
        hex += b;
      }
      l = "metadata " + hex;
      found = true;
    }
    ASSERT_TRUE(found) << testing::Slurp(meta_file_);
    std::ofstream(meta_file_, std::ios::trunc) << Joined(lines);
  }
  json Recorded() const {
    for (const auto& l : Lines(testing::Slurp(meta_file_))) {
      if (l.rfind("metadata ", 0) != 0) continue;
      std::string text;
      for (std::size_t i = 9; i + 1 < l.size(); i += 2) {
        text.push_back(static_cast<char>(std::stoi(l.substr(i, 2), nullptr, 16)));
      }
      return json::parse(text);
    }
    return json();
  }
  std::string meta_file_;
};

TEST_F(BackupMeta, FieldsOfTheWrongTypeAreCorruptionNamingTheFile) {
  const json good = Recorded();
  ASSERT_TRUE(good.is_object());
  ASSERT_TRUE(good.contains("state_digest"));
  struct Case {
    std::string field;
    json value;
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {"created_at", 5, "created_at is not a string"},
           {"head_seq", "2", "head_seq is not a non-negative integer"},
           {"head_seq", -1, "head_seq is not a non-negative integer"},
           {"state_digest", json::array(), "state_digest is not a string"},
           {"head_hash", json::object(), "head_hash is not a string"},
       }) {
    json meta = good;
    meta[c.field] = c.value;
    SetMetadata(meta.dump());
    const std::string want = "backup 1: the metadata in " + meta_file_ + " is damaged: " + c.message;
    for (const char* cmd : {"backup list", "--json backup list", "backup verify 1"}) {
      RunResult r = Mr(cmd);
      EXPECT_EQ(r.rc, 5) << cmd << " / " << c.field << ": " << r.err;  // not 1 (internal error)
      EXPECT_NE(r.err.find(want), std::string::npos) << cmd << ": " << r.err;
    }
    // list still shows every backup, the damaged one flagged.
    RunResult text = Mr("backup list");
    EXPECT_NE(text.out.find("ID  CREATED"), std::string::npos) << text.out;
    EXPECT_NE(text.out.find("? (metadata damaged)"), std::string::npos) << text.out;
    const json listed = json::parse(Mr("--json backup list").out, nullptr, false);
    ASSERT_TRUE(listed.is_array() && listed.size() == 1u) << listed;
    EXPECT_EQ(listed[0]["id"], 1);
    EXPECT_NE(listed[0].value("damaged", "").find(c.message), std::string::npos) << listed;
  }
  SetMetadata("not json");
  EXPECT_NE(Mr("backup list").err.find("is damaged: not a JSON object"), std::string::npos);

  // Without the recorded digest, verify says so (not "the digest differs").
  json no_digest = good;
  no_digest.erase("state_digest");
  SetMetadata(no_digest.dump());
  RunResult v = Mr("backup verify 1");
  EXPECT_EQ(v.rc, 5);
  EXPECT_NE(v.err.find("no state digest recorded in " + meta_file_), std::string::npos) << v.err;
  // list shows what it has.
  RunResult l = Mr("backup list");
  EXPECT_EQ(l.rc, 0) << l.err;
  EXPECT_NE(l.out.find("?"), std::string::npos) << l.out;

  // Restore does not read the metadata: the way out still works.
  json damaged = good;
  damaged["created_at"] = 5;
  SetMetadata(damaged.dump());
  const std::string restored = dir_.sub("restored");
  RunResult r = Mr("backup restore 1 --to " + restored);
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(RunCmd(Bin() + " --root " + restored + " verify").rc, 0);

  // Intact again: everything as before.
  SetMetadata(good.dump());
  EXPECT_EQ(Mr("backup verify 1").rc, 0);
  json list = json::parse(Mr("--json backup list").out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], 1);
  EXPECT_EQ(list[0]["state_digest"], good["state_digest"]);

  // A good backup next to a damaged one is listed in full.
  SetMetadata("not json");
  ASSERT_EQ(Mr("backup create").rc, 0);
  RunResult both = Mr("--json backup list");
  EXPECT_EQ(both.rc, 5) << both.err;
  const json two = json::parse(both.out, nullptr, false);
  ASSERT_TRUE(two.is_array() && two.size() == 2u) << both.out;
  EXPECT_TRUE(two[0].contains("damaged")) << two;
  EXPECT_FALSE(two[1].contains("damaged")) << two;
  EXPECT_EQ(two[1]["state_digest"], good["state_digest"]);
}

// --- 2. Import is all or nothing ---

TEST_F(Portable, ImportDamagedNearTheEndLeavesNothing) {
  SmallRegistry();
  auto lines = Lines(testing::Slurp(Export()));
  json j = json::parse(lines[lines.size() - 2]);  // the last event
  std::string ev = j["event"];
  ev[40] = ev[40] == 'A' ? 'B' : 'A';
  j["event"] = ev;
  lines[lines.size() - 2] = j.dump();
  const std::string file = Write("damaged.jsonl", Joined(lines));
  const std::string target = dir_.sub("new");
  RunResult r = Rp("import " + file + " --to " + target);
  EXPECT_EQ(r.rc, 2) << r.err;
  EXPECT_NE(r.err.find("line 4"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(target));
  EXPECT_TRUE(StagingLeftovers(target).empty());
}

// The file changes between the check pass and the import pass (copied
// over while importing): the import pass finds the damage after it has
// written thousands of events. Nothing may be left at NEW, and no staging
// directory either; NEW may be absent or an empty directory.
// Events enough for the import pass to write a batch (4096) before it
// reaches the end.
constexpr std::uint64_t kBigLog = 4200;

TEST_F(Portable, ImportFailingAfterItsCheckLeavesNothing) {
  BigRegistry(kBigLog);
  const std::string good = testing::Slurp(Export());
  auto lines = Lines(good);
  ASSERT_EQ(lines.size(), kBigLog + 2);
  json j = json::parse(lines[4190]);  // event 4190 of 4200
  j["hash"] = std::string(64, '0');
  lines[4190] = j.dump();
  const std::string damaged = Joined(lines);

  for (const bool target_exists : {false, true}) {
    SCOPED_TRACE(target_exists ? "NEW is an empty directory" : "NEW is absent");
    const std::string target = dir_.sub(target_exists ? "empty" : "absent");
    if (target_exists) fs::create_directory(target);
    const std::string fifo = dir_.sub(target_exists ? "pipe-e" : "pipe-a");
    PipeFeeder feeder(fifo);
    bool checked = false, imported = false;
    std::thread serve([&] {
      checked = feeder.Serve(good);       // the check pass reads a good file
      imported = feeder.Serve(damaged);   // the import pass, a damaged one
    });
    RunResult r = Rp("import " + fifo + " --to " + target);
    serve.join();
    ASSERT_TRUE(checked && imported) << r.err;
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_NE(r.err.find("line 4191: the event's bytes do not match its hash"), std::string::npos)
        << r.err;
    if (target_exists) {
      EXPECT_TRUE(fs::is_directory(target));
      EXPECT_TRUE(fs::is_empty(target)) << "left in NEW: "
                                        << fs::directory_iterator(target)->path();
    } else {
      EXPECT_FALSE(fs::exists(target));
    }
    EXPECT_TRUE(StagingLeftovers(target).empty());
    // And NEW can be imported into afterwards (checked once: a full import of
    // the 4200 events is the slowest step of this suite under ASan).
    if (!target_exists) continue;
    RunResult again = Rp("--json import " + Export() + " --to " + target);
    EXPECT_EQ(again.rc, 0) << again.err;
    if (again.rc == 0) {
      EXPECT_EQ(json::parse(again.out)["events"], kBigLog);
    }
  }
}

// Killed in the middle of the import pass: NEW does not exist (a staging
// directory NEW.importing-* is left, which blocks nothing).
TEST_F(Portable, ImportKilledMidwayLeavesNoRegistryAtNew) {
  BigRegistry(kBigLog);
  const std::string file = Export();
  const std::string good = testing::Slurp(file);
  const auto lines = Lines(good);
  const std::string first_part =  // the header and 4149 events
      Joined(std::vector<std::string>(lines.begin(), lines.begin() + 4150));
  const std::string target = dir_.sub("new");
  const std::string fifo = dir_.sub("pipe");
  PipeFeeder feeder(fifo);
  testing::Child child({Replay(), "import", fifo, "--to", target});
  ASSERT_TRUE(feeder.Serve(good));                    // the check pass
  ASSERT_TRUE(feeder.Serve(first_part, /*hold_open=*/true));  // then it waits for more
  feeder.WaitDrained();
  // Killed once its first batch (4096 events) is in the staging registry's
  // log, as a read-only open beside the writer sees it.
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  Seq written = 0;
  while (written < 4096 && std::chrono::steady_clock::now() < until) {
    const auto staging = StagingLeftovers(target);
    if (staging.size() == 1) {
      auto store = EventStore::Open(staging[0] + "/registry", testing::ReadOnly());
      if (store) written = (*store)->head().seq;
    }
    if (written < 4096) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_GE(written, 4096u) << "the import never wrote its first batch";
  child.SignalAndWait(SIGKILL);
  feeder.Close();
  EXPECT_FALSE(fs::exists(target)) << "a half-imported registry is at " << target;
  EXPECT_EQ(StagingLeftovers(target).size(), 1u);
  RunResult again = Rp("import " + file + " --to " + target);
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(RunCmd(Bin() + " --root " + target + " verify").rc, 0);
}

// Materialize stops at the first event whose bytes do not match the hash
// its successor recorded (an edited log): after it has copied the events
// before it. Nothing may be left at the target, absent or empty.
TEST_F(Portable, MaterializeFailingMidwayLeavesNothing) {
  SmallRegistry();
  testing::RawPut(Root() + "/registry", "events", Be64(2), [](std::string v) {
    v[v.size() / 2] ^= 0x01;  // event 2 edited after the fact
    return v;
  });
  for (const bool target_exists : {false, true}) {
    SCOPED_TRACE(target_exists ? "target is an empty directory" : "target is absent");
    const std::string target = dir_.sub(target_exists ? "empty" : "absent");
    if (target_exists) fs::create_directory(target);
    RunResult r = Rp("--root " + Root() + " materialize --at 2100-01-01 --to " + target);
    EXPECT_NE(r.rc, 0) << r.out;
    EXPECT_FALSE(r.err.empty());
    if (target_exists) {
      EXPECT_TRUE(fs::is_directory(target));
      EXPECT_TRUE(fs::is_empty(target)) << "left in the target: "
                                        << fs::directory_iterator(target)->path();
    } else {
      EXPECT_FALSE(fs::exists(target)) << "a partial registry is at " << target;
    }
    EXPECT_TRUE(StagingLeftovers(target, ".materializing-").empty());
  }
}

// A damaged backup is found while restoring (RocksDB checks each file's
// checksum as it copies): exit 5, and no partial registry at the target.
TEST_F(Portable, RestoreOfADamagedBackupLeavesNothing) {
  SmallRegistry();
  ASSERT_EQ(Mr("backup create").rc, 0);
  std::vector<fs::path> tables;
  for (const auto& e : fs::directory_iterator(Root() + "/backups/db/shared_checksum")) {
    tables.push_back(e.path());
  }
  ASSERT_FALSE(tables.empty());
  std::sort(tables.begin(), tables.end());
  {
    std::fstream f(tables.back(), std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(100);
    f.write("XXXX", 4);
  }
  const std::string target = dir_.sub("restored");
  RunResult r = Mr("backup restore 1 --to " + target);
  EXPECT_EQ(r.rc, 5) << r.err;
  EXPECT_NE(r.err.find("checksum"), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(target)) << "a partial registry is at " << target;
  EXPECT_TRUE(StagingLeftovers(target, ".restoring-").empty());
}

TEST_F(Portable, ImportStillRefusesAnExistingRegistryOrFile) {
  SmallRegistry();
  const std::string file = Export();
  const std::string target = dir_.sub("new");
  ASSERT_EQ(Rp("import " + file + " --to " + target).rc, 0);
  const std::string manifest = testing::Slurp(target + "/manifest.json");
  RunResult again = Rp("import " + file + " --to " + target + "/");
  EXPECT_EQ(again.rc, 4);
  EXPECT_NE(again.err.find("exists and is not an empty directory"), std::string::npos);
  EXPECT_EQ(testing::Slurp(target + "/manifest.json"), manifest);
  const std::string plain = Write("plain-file", "x");
  EXPECT_EQ(Rp("import " + file + " --to " + plain).rc, 4);
  EXPECT_EQ(testing::Slurp(plain), "x");
  fs::create_symlink(dir_.sub("nowhere"), dir_.sub("dangling"));
  EXPECT_EQ(Rp("import " + file + " --to " + dir_.sub("dangling")).rc, 4);
  EXPECT_FALSE(fs::exists(dir_.sub("nowhere")));
  EXPECT_TRUE(StagingLeftovers(target).empty());
  // An empty directory is imported into in place (its mode kept), with a
  // trailing slash too.
  const std::string empty = dir_.sub("prepared");
  fs::create_directory(empty);
  fs::permissions(empty, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  ASSERT_EQ(Rp("import " + file + " --to " + empty + "/").rc, 0);
  EXPECT_EQ(fs::status(empty).permissions(),
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(empty)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"manifest.json", "registry"}));
  EXPECT_EQ(RunCmd(Bin() + " --root " + empty + " verify").rc, 0);
}

// --- 3. What is written is fsynced before it is named, and its name after ---

TEST_F(Portable, ExportFsyncsTheFileBeforeTheRenameAndTheDirectoryAfter) {
  SmallRegistry();
  const std::string file = dir_.sub("log.jsonl");
  RunResult r;
  const auto log = Spied(Replay() + " --root " + Root() + " export --to " + file, &r);
  ASSERT_EQ(r.rc, 0) << r.err;
  const std::size_t synced = Find(log, "fsync\t" + Canon(file + ".partial"));
  const std::size_t renamed = Find(log, "rename\t" + file + ".partial\t" + file);
  ASSERT_NE(renamed, std::string::npos) << testing::Slurp(dir_.sub("fsync.log"));
  EXPECT_LT(synced, renamed) << "the file is not fsynced before it is renamed";
  EXPECT_NE(Find(log, "fsync\t" + Canon(dir_.path()), renamed), std::string::npos)
      << "the directory is not fsynced after the rename";
}

// The index of the rename of a staging directory "<target><tag><hex>" to
// `target` in a spy log (npos if none), and that staging directory.
std::size_t FindStagedRename(const std::vector<std::string>& log, const std::string& target,
                             const std::string& tag, std::string* staging) {
  std::size_t renamed = std::string::npos;
  const std::string suffix = "\t" + target;
  for (std::size_t i = 0; i < log.size(); ++i) {
    if (log[i].rfind("rename\t" + target + tag, 0) == 0 && log[i].size() > suffix.size() &&
        log[i].compare(log[i].size() - suffix.size(), suffix.size(), suffix) == 0) {
      renamed = i;
      *staging = log[i].substr(7, log[i].size() - 7 - suffix.size());
    }
  }
  return renamed;
}

TEST_F(Portable, ImportPublishesBySyncedRenameAndSyncsTheParent) {
  SmallRegistry();
  const std::string file = Export();
  const std::string target = dir_.sub("new");
  RunResult r;
  const auto log = Spied(Replay() + " import " + file + " --to " + target, &r);
  ASSERT_EQ(r.rc, 0) << r.err;
  std::string staging;
  const std::size_t renamed = FindStagedRename(log, target, ".importing-", &staging);
  ASSERT_NE(renamed, std::string::npos) << "no rename of a staging directory to " << target;
  // Everything in it is durable before it gets its name...
  EXPECT_LT(Find(log, "fsync\t" + Canon(staging)), renamed);
  EXPECT_LT(Find(log, "fsync\t" + Canon(staging) + "/manifest.json"), renamed);
  EXPECT_LT(Find(log, "fsync\t" + Canon(staging) + "/registry"), renamed);
  // ...and the name after.
  EXPECT_NE(Find(log, "fsync\t" + Canon(dir_.path()), renamed), std::string::npos);
}

// Restore and materialize build the new registry aside like import: all of
// it fsynced, then renamed into place, then the new name fsynced.
TEST_F(Portable, RestoreAndMaterializePublishBySyncedRename) {
  SmallRegistry();
  ASSERT_EQ(Mr("backup create").rc, 0);
  for (const bool restore : {true, false}) {
    SCOPED_TRACE(restore ? "backup restore" : "materialize");
    const std::string dir = dir_.sub(restore ? "restored/deep" : "forensics/deep");
    RunResult r;
    const auto log = Spied(
        restore ? "MODELREG_ACTOR=alice " + Bin() + " --root " + Root() +
                      " backup restore 1 --to " + dir
                : Replay() + " --root " + Root() + " materialize --at 2100-01-01 --to " + dir,
        &r);
    ASSERT_EQ(r.rc, 0) << r.err;
    std::string staging;
    const std::size_t renamed =
        FindStagedRename(log, dir, restore ? ".restoring-" : ".materializing-", &staging);
    ASSERT_NE(renamed, std::string::npos) << "no rename of a staging directory to " << dir;
    const std::string art = Canon(staging) + "/artifacts/risk_model/v1.0.0";
    for (const std::string& p :
         {Canon(staging), Canon(staging) + "/registry", Canon(staging) + "/artifacts",
          Canon(staging) + "/artifacts/risk_model", art, art + "/model-v1.0.0.pkl"}) {
      EXPECT_LT(Find(log, "fsync\t" + p), renamed) << p << " is not fsynced before the rename";
    }
    // The directories created on the way, and the new name after the rename.
    EXPECT_NE(Find(log, "fsync\t" + Canon(dir_.path())), std::string::npos);
    EXPECT_NE(Find(log, "fsync\t" + Canon(fs::path(dir).parent_path().string()), renamed),
              std::string::npos);
    EXPECT_EQ(RunCmd(Bin() + " --root " + dir + " verify").rc, 0);
  }
}

// No backups yet is an empty list (exit 0), not an error; the table's
// times are UTC with milliseconds and a `Z`.
TEST_F(Portable, BackupListWithoutBackupsIsEmptyAndTimesSayUtc) {
  SmallRegistry();
  RunResult text = Mr("backup list");
  EXPECT_EQ(text.rc, 0) << text.err;
  EXPECT_NE(text.out.find("no backups in "), std::string::npos) << text.out;
  RunResult js = Mr("--json backup list");
  EXPECT_EQ(js.rc, 0) << js.err;
  EXPECT_EQ(js.out, "[]\n");
  for (const char* cmd : {"backup verify latest", "backup restore latest --to "}) {
    RunResult none = Mr(cmd + (std::string(cmd).back() == ' ' ? dir_.sub("none") : ""));
    EXPECT_EQ(none.rc, 3) << cmd << none.err;
    EXPECT_NE(none.err.find("no backups"), std::string::npos) << none.err;
  }
  ASSERT_EQ(Mr("backup create").rc, 0);
  ASSERT_EQ(Mr("backup create").rc, 0);
  // `latest` names the newest for restore as for verify.
  RunResult restored = Mr("--json backup restore latest --to " + dir_.sub("latest"));
  ASSERT_EQ(restored.rc, 0) << restored.err;
  EXPECT_NE(restored.out.find("2"), std::string::npos) << restored.out;
  EXPECT_EQ(Mr("backup restore 0 --to " + dir_.sub("zero")).rc, 2);
  RunResult one = Mr("backup list");
  ASSERT_EQ(one.rc, 0) << one.err;
  const std::regex row(R"(\n1 +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z +\d+ )");
  EXPECT_TRUE(std::regex_search(one.out, row)) << one.out;
}

// Both binaries answer --version (the replay tool used to ask for a
// subcommand instead).
TEST_F(Portable, VersionFlagOfBothBinaries) {
  RunResult mr = RunCmd(Bin() + " --version");
  EXPECT_EQ(mr.rc, 0) << mr.err;
  EXPECT_EQ(mr.out.rfind("modelreg ", 0), 0u) << mr.out;
  RunResult rp = Rp("--version");
  EXPECT_EQ(rp.rc, 0) << rp.err;
  EXPECT_EQ(rp.out.rfind("modelreg-replay ", 0), 0u) << rp.out;
}

}  // namespace
}  // namespace modelreg

#endif  // MODELREG_FSYNC_SPY
