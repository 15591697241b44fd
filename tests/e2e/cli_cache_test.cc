// End-to-end: the real `modelreg cache stats | gc | purge` on a cache
// directory populated through the library (old entries with a clock set
// eight days back).
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "cache/expression_cache.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::RunResult;

constexpr TimeNs kDay = TimeNs{24} * 3600 * 1'000'000'000;

class CacheCli : public ::testing::Test {
 protected:
  void SetUp() override {
    const TimeNs now = SystemClock::Instance().NowNs();
    ManualClock old_clock(now - 8 * kDay), new_clock(now - kDay);
    cache::DiskExpressionCache old_cache(Dir(), cache::kDefaultTtl, &old_clock);
    cache::DiskExpressionCache new_cache(Dir(), cache::kDefaultTtl, &new_clock);
    auto key = [](const std::string& f, const std::string& date, const std::string& crsp) {
      return cache::CacheKey{f, date, {{"crsp", crsp}, {"compustat", "v1.0.1"}}, "snap_1", "cfg_1"};
    };
    // momentum: 2 fresh (crsp v1.2.3, v1.2.4) + 1 expired; value: 1 fresh on v1.2.3, 1 expired.
    ASSERT_TRUE(
        new_cache.Put(key("momentum", "2024-01-15", "v1.2.3"), std::string(1000, 'a')).ok());
    ASSERT_TRUE(
        new_cache.Put(key("momentum", "2024-01-16", "v1.2.4"), std::string(2000, 'b')).ok());
    ASSERT_TRUE(old_cache.Put(key("momentum", "2024-01-12", "v1.2.3"), std::string(500, 'c')).ok());
    ASSERT_TRUE(new_cache.Put(key("value", "2024-01-15", "v1.2.3"), std::string(300, 'd')).ok());
    ASSERT_TRUE(old_cache.Put(key("value", "2024-01-12", "v1.2.2"), std::string(100, 'e')).ok());
  }
  std::string Dir() const { return dir_.sub("cache"); }
  RunResult Mr(const std::string& args) const {
    return RunCmd(testing::EnvOr("MODELREG_BIN", "modelreg") + " " + args);
  }
  RunResult Ok(const std::string& args) const {
    RunResult r = Mr(args);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
  }
  json Stats() const { return json::parse(Ok("--json cache stats --cache-dir " + Dir()).out); }
  // Every file under the cache with its size: "changed nothing" is this.
  std::map<std::string, std::uintmax_t> Tree() const {
    std::map<std::string, std::uintmax_t> out;
    for (const auto& e : fs::recursive_directory_iterator(Dir())) {
      out[e.path().string()] = e.is_regular_file() ? e.file_size() : 0;
    }
    return out;
  }

  testing::TempDir dir_;
};

TEST_F(CacheCli, StatsCountsEntriesPerFactor) {
  RunResult text = Ok("cache stats --cache-dir " + Dir());
  EXPECT_NE(text.out.find("5 entries"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("2 expired (ttl 7d)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  momentum: 3 entries"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("  value: 2 entries"), std::string::npos) << text.out;
  json s = Stats();
  EXPECT_EQ(s["entries"], 5);
  EXPECT_EQ(s["expired"], 2);
  EXPECT_EQ(s["corrupt"], 0);
  EXPECT_EQ(s["factors"]["momentum"]["entries"], 3);
  EXPECT_EQ(s["factors"]["momentum"]["expired"], 1);
  EXPECT_EQ(s["factors"]["value"]["expired"], 1);
  std::uintmax_t bytes = 0;
  for (const auto& [path, size] : Tree()) bytes += size;
  EXPECT_EQ(s["bytes"], bytes);
  EXPECT_GT(bytes, 3900u);  // the values plus headers
  // A shorter --ttl makes every entry (created a day ago or more) expired;
  // global --json may also follow the command.
  json all = json::parse(Ok("cache stats --cache-dir " + Dir() + " --ttl 12h --json").out);
  EXPECT_EQ(all["expired"], 5);
  EXPECT_EQ(all["ttl_seconds"], 12 * 3600);
}

TEST_F(CacheCli, GcRemovesExpiredEntries) {
  RunResult r = Ok("cache gc --cache-dir " + Dir());
  EXPECT_NE(r.out.find("removed 2 expired and 0 corrupt entries"), std::string::npos) << r.out;
  json s = Stats();
  EXPECT_EQ(s["entries"], 3);
  EXPECT_EQ(s["expired"], 0);
  EXPECT_EQ(s["factors"]["momentum"]["entries"], 2);
  EXPECT_EQ(s["factors"]["value"]["entries"], 1);
  json again = json::parse(Ok("--json cache gc --verify --cache-dir " + Dir()).out);
  EXPECT_EQ(again["expired_removed"], 0);
  EXPECT_EQ(again["corrupt_removed"], 0);
}

TEST_F(CacheCli, PurgeByFactorDatasetAndBoth) {
  RunResult both =
      Ok("cache purge --cache-dir " + Dir() + " --factor momentum --dataset crsp=v1.2.3");
  EXPECT_NE(both.out.find("purged 2 entries"), std::string::npos) << both.out;
  EXPECT_NE(both.out.find("of factor momentum and built on crsp=v1.2.3"), std::string::npos);
  EXPECT_EQ(Stats()["factors"]["momentum"]["entries"], 1);
  EXPECT_EQ(Stats()["factors"]["value"]["entries"], 2);

  json ds = json::parse(
      Ok("--json cache purge --cache-dir " + Dir() + " --dataset compustat=v1.0.1").out);
  EXPECT_EQ(ds["removed"], 3);
  EXPECT_EQ(Stats()["entries"], 0);
}

TEST_F(CacheCli, PurgeFactorOnlyAndEverything) {
  json f = json::parse(Ok("--json cache purge --factor value --cache-dir " + Dir()).out);
  EXPECT_EQ(f["removed"], 2);
  EXPECT_EQ(Stats()["factors"]["momentum"]["entries"], 3);
  EXPECT_EQ(Stats()["factors"]["value"]["entries"], 0);
  json none = json::parse(Ok("--json cache purge --factor growth --cache-dir " + Dir()).out);
  EXPECT_EQ(none["removed"], 0);
  RunResult all = Ok("cache purge --cache-dir " + Dir());
  EXPECT_NE(all.out.find("purged 3 entries"), std::string::npos) << all.out;
  EXPECT_EQ(Stats()["entries"], 0);
}

TEST_F(CacheCli, BadArgumentsGiveAClearErrorAndChangeNothing) {
  const auto before = Tree();
  const std::string file = dir_.sub("a-file");
  std::ofstream(file) << "x";
  fs::create_directories(dir_.sub("empty"));
  struct Case {
    std::string args;
    int rc;
    std::string says;
  };
  const std::vector<Case> cases{
      {"cache purge --cache-dir " + Dir() + " --dataset crsp", 2,
       "--dataset 'crsp' must be NAME=VERSION"},
      {"cache purge --cache-dir " + Dir() + " --dataset =v1", 2, "dataset name is empty"},
      {"cache purge --cache-dir " + Dir() + " --dataset crsp=", 2,
       "version of dataset 'crsp' is empty"},
      {"cache purge --cache-dir " + Dir() + " --factor ../value", 2,
       "--factor: factor_name '../value'"},
      {"cache purge --cache-dir " + Dir() + " --factor ''", 2, "factor_name is empty"},
      {"cache gc --cache-dir " + Dir() + " --ttl 5y", 2, "--ttl must look like"},
      {"cache gc --cache-dir " + Dir() + " --ttl 0s", 2, "--ttl must be between"},
      {"cache gc --cache-dir " + dir_.sub("missing"), 3, "no cache directory at"},
      {"cache purge --cache-dir " + dir_.sub("empty"), 3, "is not a factor cache"},
      {"cache stats --cache-dir " + file, 2, "is not a directory"},
      {"cache shrink --cache-dir " + Dir(), 2, ""},
      {"cache", 2, "A subcommand is required"},
      {"cache purge --cache-dir " + Dir() + " --frobnicate", 2, "frobnicate"},
  };
  for (const Case& c : cases) {
    RunResult r = Mr(c.args);
    EXPECT_EQ(r.rc, c.rc) << c.args << "\n" << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << c.args << "\n" << r.err;
    EXPECT_TRUE(r.out.empty()) << c.args << "\n" << r.out;
    if (c.rc != 2 || c.says.empty() || c.says[0] == 'A' || c.says == "frobnicate") continue;
    // Our own errors are one line: "modelreg: invalid_argument: ...".
    EXPECT_EQ(r.err.rfind("modelreg: invalid_argument: ", 0), 0u) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  }
  EXPECT_EQ(Tree(), before);
  EXPECT_FALSE(fs::exists(dir_.sub("missing")));
  EXPECT_TRUE(fs::is_empty(dir_.sub("empty")));
}

TEST_F(CacheCli, CorruptEntryCountedAndRemovedByGc) {
  // Truncate one entry: stats reports it, gc removes it, the rest stays.
  std::string victim;
  for (const auto& e : fs::recursive_directory_iterator(Dir() + "/entries/value"))
    victim = e.path();
  ASSERT_FALSE(victim.empty());
  fs::resize_file(victim, fs::file_size(victim) - 1);
  EXPECT_EQ(Stats()["corrupt"], 1);
  json g = json::parse(Ok("--json cache gc --cache-dir " + Dir()).out);
  EXPECT_EQ(g["corrupt_removed"], 1);
  EXPECT_FALSE(fs::exists(victim));
  EXPECT_EQ(Stats()["corrupt"], 0);
}

// A factor directory replaced by a symlink to a directory outside the
// cache (here: the factor's own entries, moved out): no command follows it,
// nothing outside is deleted, and each command says what it skipped.
TEST_F(CacheCli, SymlinkedFactorDirectoryIsSkippedAndReported) {
  const std::string outside = dir_.sub("outside");
  fs::rename(Dir() + "/entries/momentum", outside);
  fs::create_directory_symlink(outside, Dir() + "/entries/momentum");
  std::ofstream(outside + "/precious.txt") << "not the cache's";
  std::map<std::string, std::uintmax_t> bait;
  for (const auto& e : fs::directory_iterator(outside)) bait[e.path()] = e.file_size();
  ASSERT_EQ(bait.size(), 4u);  // 3 entries of momentum (1 expired) and the file
  auto outside_now = [&] {
    std::map<std::string, std::uintmax_t> now;
    for (const auto& e : fs::directory_iterator(outside)) now[e.path()] = e.file_size();
    return now;
  };
  const std::string said = "skipped 1 symbolic link (never followed; its target is left alone): "
                           "entries/momentum";

  RunResult purge_factor = Ok("cache purge --factor momentum --cache-dir " + Dir());
  EXPECT_NE(purge_factor.out.find("purged 0 entries"), std::string::npos) << purge_factor.out;
  EXPECT_NE(purge_factor.out.find(said), std::string::npos) << purge_factor.out;
  EXPECT_EQ(outside_now(), bait) << "purge --factor deleted files outside the cache";

  RunResult gc = Ok("cache gc --verify --cache-dir " + Dir());
  EXPECT_NE(gc.out.find("removed 1 expired"), std::string::npos) << gc.out;  // value's
  EXPECT_NE(gc.out.find(said), std::string::npos) << gc.out;
  EXPECT_EQ(outside_now(), bait) << "gc deleted files outside the cache";

  RunResult stats = Ok("cache stats --cache-dir " + Dir());
  EXPECT_NE(stats.out.find("1 entries"), std::string::npos) << stats.out;
  EXPECT_NE(stats.out.find(said), std::string::npos) << stats.out;
  json js = Stats();
  EXPECT_EQ(js["skipped_symlinks"], json::array({"entries/momentum"})) << js.dump();

  json all = json::parse(Ok("--json cache purge --cache-dir " + Dir()).out);
  EXPECT_EQ(all["removed"], 1);
  EXPECT_EQ(all["skipped_symlinks"], json::array({"entries/momentum"})) << all.dump();
  EXPECT_EQ(outside_now(), bait) << "purge deleted files outside the cache";
  EXPECT_TRUE(fs::is_symlink(Dir() + "/entries/momentum"));
}

}  // namespace
}  // namespace modelreg
