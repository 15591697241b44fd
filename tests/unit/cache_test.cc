// DiskExpressionCache: the key, TTL, corruption, failure handling, and
// computing a key once across threads and real processes.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <sstream>
#include <thread>
#include <vector>

#include "cache/entry_file.h"
#include "cache/expression_cache.h"
#include "cache/key.h"
#include "support/child.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg::cache {
namespace {

namespace fs = std::filesystem;
using testing::Slurp;

constexpr TimeNs kSecond = 1'000'000'000;
constexpr TimeNs kStart = 1'736'899'200 * kSecond;  // 2025-01-15T00:00:00Z

CacheKey BaseKey() {
  return CacheKey{"momentum",
                  "2024-01-15",
                  {{"crsp", "v1.2.3"}, {"compustat", "v1.0.1"}},
                  "snap_20240101",
                  "cfg_ab12"};
}

// A compute function that counts its calls and returns `value`.
struct Counted {
  std::atomic<int> calls{0};
  ComputeFn Fn(std::string value) {
    return [this, value]() -> Result<std::string> {
      ++calls;
      return value;
    };
  }
};

// Regular files under `dir`, relative, sorted.
std::vector<std::string> Files(const std::string& dir) {
  std::vector<std::string> out;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file()) out.push_back(fs::relative(it->path(), dir).string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string EntryFile(const std::string& dir, const CacheKey& k) {
  return dir + "/entries/" + k.factor_name + "/" + KeyHash(*EncodeKey(k)) + ".entry";
}

class CacheTest : public ::testing::Test {
 protected:
  std::string Dir() const { return tmp_.sub("cache"); }
  DiskExpressionCache Make(TimeNs ttl = kDefaultTtl) {
    return DiskExpressionCache(Dir(), ttl, &clock_);
  }

  testing::TempDir tmp_;
  ManualClock clock_{kStart};
};

// ---- the key ----

TEST(CacheKeyTest, CanonicalEncoding) {
  EXPECT_EQ(*EncodeKey(BaseKey()),
            "momentum:2024-01-15:compustat=v1.0.1,crsp=v1.2.3:snap_20240101:cfg_ab12");
  EXPECT_EQ(DatasetVersionId({}), "");
  // The same map built in either order gives the same id and key.
  VersionMap a, b;
  for (const auto& [n, v] : std::vector<std::pair<std::string, std::string>>{
           {"crsp", "v1.2.3"}, {"compustat", "v1.0.1"}, {"ibes", "v3"}}) {
    a.emplace(n, v);
  }
  for (const auto& [n, v] : std::vector<std::pair<std::string, std::string>>{
           {"ibes", "v3"}, {"compustat", "v1.0.1"}, {"crsp", "v1.2.3"}}) {
    b.emplace(n, v);
  }
  EXPECT_EQ(DatasetVersionId(a), "compustat=v1.0.1,crsp=v1.2.3,ibes=v3");
  EXPECT_EQ(DatasetVersionId(a), DatasetVersionId(b));
}

TEST_F(CacheTest, EachKeyPartChangesTheKeyAndNothingIsReusedAcrossThem) {
  std::vector<CacheKey> keys{BaseKey()};
  auto with = [&](auto change) {
    CacheKey k = BaseKey();
    change(k);
    keys.push_back(k);
  };
  with([](CacheKey& k) { k.factor_name = "value"; });
  with([](CacheKey& k) { k.as_of_date = "2024-01-16"; });
  with([](CacheKey& k) { k.dataset_versions["crsp"] = "v1.2.4"; });
  with([](CacheKey& k) { k.dataset_versions["ibes"] = "v1"; });
  with([](CacheKey& k) { k.dataset_versions.erase("compustat"); });
  with([](CacheKey& k) { k.dataset_versions.clear(); });
  with([](CacheKey& k) { k.snapshot_id = "snap_20240102"; });
  with([](CacheKey& k) { k.config_hash = "cfg_ab13"; });
  std::set<std::string> encoded, hashes;
  for (const auto& k : keys) {
    encoded.insert(*EncodeKey(k));
    hashes.insert(KeyHash(*EncodeKey(k)));
  }
  EXPECT_EQ(encoded.size(), keys.size());
  EXPECT_EQ(hashes.size(), keys.size());

  // Through the cache: each key computes its own value; none is served
  // another's.
  DiskExpressionCache c = Make();
  for (std::size_t i = 0; i < keys.size(); ++i) {
    Counted n;
    auto r = c.GetOrCompute(keys[i], n.Fn("v" + std::to_string(i)));
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_FALSE(r->was_cached) << *EncodeKey(keys[i]);
    EXPECT_EQ(n.calls, 1);
    EXPECT_TRUE(r->store_status.ok()) << r->store_status.ToString();
  }
  for (std::size_t i = 0; i < keys.size(); ++i) {
    Counted n;
    auto r = c.GetOrCompute(keys[i], n.Fn("recomputed"));
    ASSERT_TRUE(r);
    EXPECT_TRUE(r->was_cached);
    EXPECT_EQ(r->value, "v" + std::to_string(i));
    EXPECT_EQ(n.calls, 0);
  }
  // The same map in another order is the same key: a hit.
  CacheKey reordered = BaseKey();
  reordered.dataset_versions.clear();
  reordered.dataset_versions.emplace("crsp", "v1.2.3");
  reordered.dataset_versions.emplace("compustat", "v1.0.1");
  Counted n;
  auto r = c.GetOrCompute(reordered, n.Fn("x"));
  ASSERT_TRUE(r);
  EXPECT_TRUE(r->was_cached);
  EXPECT_EQ(r->value, "v0");
  EXPECT_EQ(c.Stats()->hits, keys.size() + 1);
  EXPECT_EQ(c.Stats()->misses, keys.size());
}

TEST_F(CacheTest, InvalidKeyComponentsAreRejectedBeforeAnything) {
  struct Case {
    const char* what;
    void (*change)(CacheKey&);
    const char* names;
  };
  const std::vector<Case> cases{
      {"slash in factor", [](CacheKey& k) { k.factor_name = "../etc"; }, "factor_name"},
      {"factor is dot-dot", [](CacheKey& k) { k.factor_name = ".."; }, "factor_name"},
      {"hidden factor", [](CacheKey& k) { k.factor_name = ".tmp-x"; }, "factor_name"},
      {"empty factor", [](CacheKey& k) { k.factor_name = ""; }, "factor_name"},
      {"colon in factor", [](CacheKey& k) { k.factor_name = "a:b"; }, "factor_name"},
      {"newline in factor", [](CacheKey& k) { k.factor_name = "a\nb"; }, "factor_name"},
      {"long factor", [](CacheKey& k) { k.factor_name = std::string(129, 'f'); }, "factor_name"},
      {"date with time", [](CacheKey& k) { k.as_of_date = "2024-01-15T00:00:00Z"; }, "as_of_date"},
      {"short date", [](CacheKey& k) { k.as_of_date = "2024-1-15"; }, "as_of_date"},
      {"Feb 30", [](CacheKey& k) { k.as_of_date = "2024-02-30"; }, "as_of_date"},
      {"date with slash", [](CacheKey& k) { k.as_of_date = "2024/01/15"; }, "as_of_date"},
      {"= in dataset name", [](CacheKey& k) { k.dataset_versions["a=b"] = "v1"; }, "dataset name"},
      {"comma in version", [](CacheKey& k) { k.dataset_versions["crsp"] = "v1,x=v2"; }, "crsp"},
      {"empty version", [](CacheKey& k) { k.dataset_versions["crsp"] = ""; }, "crsp"},
      {"slash in snapshot", [](CacheKey& k) { k.snapshot_id = "a/b"; }, "snapshot_id"},
      {"NUL in snapshot", [](CacheKey& k) { k.snapshot_id = std::string("a\0b", 3); },
       "snapshot_id"},
      {"tab in config", [](CacheKey& k) { k.config_hash = "a\tb"; }, "config_hash"},
      {"empty config", [](CacheKey& k) { k.config_hash = ""; }, "config_hash"},
  };
  DiskExpressionCache c = Make();
  for (const Case& tc : cases) {
    CacheKey k = BaseKey();
    tc.change(k);
    Counted n;
    auto r = c.GetOrCompute(k, n.Fn("x"));
    ASSERT_FALSE(r) << tc.what;
    EXPECT_EQ(r.error().code(), Code::kInvalidArgument) << tc.what;
    EXPECT_NE(r.error().message().find(tc.names), std::string::npos)
        << tc.what << ": " << r.error().message();
    // Control characters never reach the message either.
    for (char ch : r.error().message()) EXPECT_GE(static_cast<unsigned char>(ch), 0x20) << tc.what;
    EXPECT_EQ(n.calls, 0) << tc.what;
    EXPECT_EQ(c.Put(k, "x").code(), Code::kInvalidArgument) << tc.what;
    EXPECT_FALSE(c.Get(k)) << tc.what;
  }
  EXPECT_FALSE(fs::exists(Dir())) << "an invalid key created files";
  EXPECT_EQ(c.InvalidateFactor("a/b").error().code(), Code::kInvalidArgument);
  EXPECT_EQ(c.InvalidateDataset("crsp", "v1/..").error().code(), Code::kInvalidArgument);
}

// ---- TTL ----

TEST_F(CacheTest, TtlExpiresExactlyAtTheBoundary) {
  const TimeNs ttl = 7 * 24 * 3600 * kSecond;
  DiskExpressionCache c = Make(ttl);
  Counted n;
  ASSERT_TRUE(c.GetOrCompute(BaseKey(), n.Fn("first")));
  clock_.Set(kStart + ttl - 1);  // one nanosecond before: still served
  auto hit = c.GetOrCompute(BaseKey(), n.Fn("second"));
  ASSERT_TRUE(hit);
  EXPECT_TRUE(hit->was_cached);
  EXPECT_EQ(hit->value, "first");
  EXPECT_EQ(*c.Get(BaseKey()), "first");
  EXPECT_EQ(c.Stats()->expired, 0u);

  clock_.Set(kStart + ttl);  // exactly C + ttl: expired
  EXPECT_EQ(c.Stats()->expired, 1u);
  auto get = c.Get(BaseKey());
  ASSERT_FALSE(get);
  EXPECT_EQ(get.error().code(), Code::kNotFound);
  EXPECT_NE(get.error().message().find("expired"), std::string::npos);
  auto miss = c.GetOrCompute(BaseKey(), n.Fn("second"));
  ASSERT_TRUE(miss);
  EXPECT_FALSE(miss->was_cached);
  EXPECT_EQ(miss->value, "second");
  EXPECT_EQ(n.calls, 2);
  // The recomputed entry's TTL runs from its own creation.
  clock_.Set(kStart + 2 * ttl - 1);
  EXPECT_TRUE(c.GetOrCompute(BaseKey(), n.Fn("third"))->was_cached);
  clock_.Set(kStart + 2 * ttl);
  EXPECT_FALSE(c.GetOrCompute(BaseKey(), n.Fn("third"))->was_cached);
  EXPECT_EQ(n.calls, 3);
}

TEST_F(CacheTest, GcRemovesExpiredEntriesOnly) {
  DiskExpressionCache c = Make(100 * kSecond);
  CacheKey old_key = BaseKey(), new_key = BaseKey();
  new_key.as_of_date = "2024-01-16";
  ASSERT_TRUE(c.Put(old_key, "old").ok());
  clock_.Advance(50 * kSecond);
  ASSERT_TRUE(c.Put(new_key, "new").ok());
  clock_.Advance(50 * kSecond);  // old is exactly 100 s old, new 50 s
  auto g = c.Gc();
  ASSERT_TRUE(g) << g.error().ToString();
  EXPECT_EQ(g->expired_removed, 1u);
  EXPECT_EQ(g->corrupt_removed, 0u);
  EXPECT_FALSE(fs::exists(EntryFile(Dir(), old_key)));
  EXPECT_EQ(*c.Get(new_key), "new");
  EXPECT_EQ(c.Stats()->entries, 1u);
}

// ---- entries dated in the future ----

// An entry whose creation time is later than now + kFutureTolerance (the
// clock was stepped back after it was written, or its header was forged)
// would never expire: it is corrupt. docs/cache.md "TTL".
TEST_F(CacheTest, EntryDatedInTheFutureIsCorruptAndRecomputed) {
  DiskExpressionCache c = Make();
  Counted n;
  clock_.Set(kStart + 3600 * kSecond);  // written an hour ahead...
  ASSERT_TRUE(c.Put(BaseKey(), "from the future").ok());
  clock_.Set(kStart);  // ...then the clock is stepped back
  auto s = c.Stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->corrupt, 1u);
  EXPECT_EQ(s->expired, 0u);
  auto r = c.GetOrCompute(BaseKey(), n.Fn("recomputed"));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(r->was_cached) << "a future-dated entry was served";
  EXPECT_EQ(r->value, "recomputed");
  EXPECT_TRUE(r->dropped_corrupt);
  EXPECT_TRUE(r->store_status.ok()) << r->store_status.ToString();
  EXPECT_EQ(n.calls, 1);
  // The replacement is dated now and served.
  EXPECT_TRUE(c.GetOrCompute(BaseKey(), n.Fn("again"))->was_cached);
  EXPECT_EQ(n.calls, 1);
  EXPECT_EQ(c.Stats()->corrupt, 0u);

  // Get reports Corruption and drops it.
  clock_.Set(kStart + 3600 * kSecond);
  ASSERT_TRUE(c.Put(BaseKey(), "from the future").ok());
  clock_.Set(kStart);
  auto g = c.Get(BaseKey());
  ASSERT_FALSE(g) << "served: " << *g;
  EXPECT_EQ(g.error().code(), Code::kCorruption);
  EXPECT_NE(g.error().message().find("in the future"), std::string::npos) << g.error().message();
  EXPECT_FALSE(fs::exists(EntryFile(Dir(), BaseKey())));
}

TEST_F(CacheTest, FutureToleranceBoundary) {
  DiskExpressionCache c = Make();
  CacheKey edge = BaseKey(), beyond = BaseKey();
  beyond.as_of_date = "2024-01-16";
  clock_.Set(kStart + kFutureTolerance);
  ASSERT_TRUE(c.Put(edge, "edge").ok());  // exactly now + tolerance: fine
  clock_.Set(kStart + kFutureTolerance + 1);
  ASSERT_TRUE(c.Put(beyond, "beyond").ok());  // one nanosecond more: corrupt
  clock_.Set(kStart);
  EXPECT_EQ(*c.Get(edge), "edge");
  auto b = c.Get(beyond);
  ASSERT_FALSE(b);
  EXPECT_EQ(b.error().code(), Code::kCorruption);
}

TEST_F(CacheTest, GcRemovesFutureDatedAndForgedEntries) {
  DiskExpressionCache c = Make();
  CacheKey future = BaseKey(), forged = BaseKey(), ancient = BaseKey(), fine = BaseKey();
  future.snapshot_id = "snap_future";
  forged.snapshot_id = "snap_forged";
  ancient.snapshot_id = "snap_ancient";
  clock_.Set(kStart + 24 * 3600 * kSecond);
  ASSERT_TRUE(c.Put(future, "tomorrow").ok());
  clock_.Set(kStart);
  ASSERT_TRUE(c.Put(fine, "today").ok());
  // Forged headers at both ends of the range (a valid checksum: someone
  // wrote them on purpose). The ancient one is merely expired.
  for (const auto& [key, created] :
       std::vector<std::pair<CacheKey, TimeNs>>{{forged, std::numeric_limits<TimeNs>::max()},
                                                {ancient, std::numeric_limits<TimeNs>::min()}}) {
    const std::string encoded = *EncodeKey(key);
    const std::string path = EntryFile(Dir(), key);
    ASSERT_TRUE(WriteEntry(path + ".tmp", path, HeaderJson(key, encoded, created), "forged").ok());
  }
  auto s = c.Stats();
  ASSERT_TRUE(s);
  EXPECT_EQ(s->entries, 4u);
  EXPECT_EQ(s->corrupt, 2u);
  EXPECT_EQ(s->expired, 1u);
  auto g = c.Gc();
  ASSERT_TRUE(g) << g.error().ToString();
  EXPECT_EQ(g->corrupt_removed, 2u);
  EXPECT_EQ(g->expired_removed, 1u);
  EXPECT_FALSE(fs::exists(EntryFile(Dir(), future)));
  EXPECT_FALSE(fs::exists(EntryFile(Dir(), forged)));
  EXPECT_FALSE(fs::exists(EntryFile(Dir(), ancient)));
  EXPECT_EQ(*c.Get(fine), "today");
}

// ---- corruption ----

TEST_F(CacheTest, FlippedByteAnywhereIsRecomputedNeverServed) {
  DiskExpressionCache c = Make();
  const std::string value(3000, 'v');
  Counted n;
  ASSERT_TRUE(c.GetOrCompute(BaseKey(), n.Fn(value)));
  const std::string path = EntryFile(Dir(), BaseKey());
  const std::string good = Slurp(path);
  ASSERT_GT(good.size(), value.size() + 52);
  // Magic, lengths, header JSON, value, digest.
  const std::size_t header_len = good.size() - value.size() - 52;
  for (std::size_t off :
       {std::size_t{0}, std::size_t{9}, std::size_t{15}, std::size_t{30}, 20 + header_len - 2,
        20 + header_len, 20 + header_len + 1500, good.size() - 33, good.size() - 1}) {
    std::string bad = good;
    bad[off] = static_cast<char>(bad[off] ^ 0x01);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
    Counted again;
    auto r = c.GetOrCompute(BaseKey(), again.Fn(value));
    ASSERT_TRUE(r) << off;
    EXPECT_FALSE(r->was_cached) << "served a corrupt entry, byte " << off;
    EXPECT_TRUE(r->dropped_corrupt) << off;
    EXPECT_EQ(again.calls, 1) << off;
    EXPECT_EQ(r->value, value);
    // Recomputed and stored whole again.
    auto hit = c.GetOrCompute(BaseKey(), again.Fn("wrong"));
    EXPECT_TRUE(hit->was_cached) << off;
    EXPECT_EQ(hit->value, value);
  }
}

TEST_F(CacheTest, TruncatedOrExtendedEntryIsRecomputed) {
  DiskExpressionCache c = Make();
  const std::string value = "factor bytes";
  Counted n;
  ASSERT_TRUE(c.GetOrCompute(BaseKey(), n.Fn(value)));
  const std::string path = EntryFile(Dir(), BaseKey());
  const std::string good = Slurp(path);
  for (std::size_t len : {std::size_t{0}, std::size_t{7}, std::size_t{20}, std::size_t{52},
                          good.size() / 2, good.size() - 1}) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << good.substr(0, len);
    Counted again;
    auto r = c.GetOrCompute(BaseKey(), again.Fn(value));
    ASSERT_TRUE(r);
    EXPECT_FALSE(r->was_cached) << "truncated to " << len;
    EXPECT_EQ(again.calls, 1);
    EXPECT_EQ(r->value, value);
  }
  std::ofstream(path, std::ios::binary | std::ios::trunc) << good << "tail";
  Counted again;
  EXPECT_FALSE(c.GetOrCompute(BaseKey(), again.Fn(value))->was_cached);
  EXPECT_EQ(c.Stats()->corrupt_dropped, 7u);
}

TEST_F(CacheTest, HugeLengthFieldsAreCorruptNotAllocated) {
  DiskExpressionCache c = Make();
  ASSERT_TRUE(c.Put(BaseKey(), "v").ok());
  const std::string path = EntryFile(Dir(), BaseKey());
  const std::string good = Slurp(path);
  for (int field : {8, 12}) {  // header length, value length
    std::string bad = good;
    for (int i = field; i < field + (field == 8 ? 4 : 8); ++i)
      bad[static_cast<std::size_t>(i)] = '\xff';
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bad;
    auto h = ReadEntryHeader(path, std::uint64_t{1} << 30);
    ASSERT_FALSE(h);
    EXPECT_EQ(h.error().code(), Code::kCorruption);
    const std::string& m = h.error().message();
    EXPECT_TRUE(m.find("out of range") != std::string::npos ||
                m.find("above the limit") != std::string::npos)
        << m;
    auto g = c.Get(BaseKey());
    ASSERT_FALSE(g);
    EXPECT_EQ(g.error().code(), Code::kCorruption);
    EXPECT_FALSE(fs::exists(path)) << "Get drops a corrupt entry";
    ASSERT_TRUE(c.Put(BaseKey(), "v").ok());
  }
}

TEST_F(CacheTest, EntryOfAnotherKeyIsNotServed) {
  // A file copied under another key's name: the header's key decides.
  DiskExpressionCache c = Make();
  CacheKey other = BaseKey();
  other.config_hash = "cfg_other";
  ASSERT_TRUE(c.Put(other, "other value").ok());
  fs::copy_file(EntryFile(Dir(), other), EntryFile(Dir(), BaseKey()));
  Counted n;
  auto r = c.GetOrCompute(BaseKey(), n.Fn("mine"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->was_cached);
  EXPECT_EQ(r->value, "mine");
  EXPECT_TRUE(r->dropped_corrupt);
}

TEST_F(CacheTest, GcRemovesCorruptAndLeftoverFiles) {
  DiskExpressionCache c = Make();
  CacheKey a = BaseKey(), b = BaseKey();
  b.snapshot_id = "snap_2";
  ASSERT_TRUE(c.Put(a, "aaaa").ok());
  ASSERT_TRUE(c.Put(b, "bbbb").ok());
  // a: truncated; b: value altered (found only with checksums).
  const std::string pa = EntryFile(Dir(), a), pb = EntryFile(Dir(), b);
  const std::string sa = Slurp(pa);
  std::ofstream(pa, std::ios::binary | std::ios::trunc) << sa.substr(0, sa.size() - 3);
  std::string sb = Slurp(pb);
  sb[sb.size() - 33] = 'X';
  std::ofstream(pb, std::ios::binary | std::ios::trunc) << sb;
  // A killed writer's temporary file and a killed holder's lock file.
  const std::string hash = KeyHash(*EncodeKey(a));
  std::ofstream(Dir() + "/entries/momentum/.tmp-" + hash + "-99999-0") << "partial";
  fs::create_directories(Dir() + "/locks");
  std::ofstream(Dir() + "/locks/" + std::string(64, 'e') + ".lock");
  std::ofstream(Dir() + "/entries/momentum/README") << "not ours";

  auto s = c.Stats();
  EXPECT_EQ(s->entries, 2u);
  EXPECT_EQ(s->corrupt, 1u);  // headers only
  EXPECT_EQ(s->temp_files, 1u);
  EXPECT_EQ(s->lock_files, 1u);
  auto g = c.Gc();
  ASSERT_TRUE(g);
  EXPECT_EQ(g->corrupt_removed, 1u);
  EXPECT_EQ(g->temp_removed, 1u);
  EXPECT_EQ(g->locks_removed, 1u);
  EXPECT_TRUE(fs::exists(pb));
  auto gv = c.Gc(/*verify_checksums=*/true);
  EXPECT_EQ(gv->corrupt_removed, 1u);
  EXPECT_EQ(Files(Dir()), std::vector<std::string>{"entries/momentum/README"});
}

// ---- symbolic links: never followed out of the cache ----

// Files outside the cache that a followed symlink would expose: a valid
// entry for `key` (a tempting hit, a tempting purge), a corrupt entry and a
// killed writer's temporary file (tempting for gc), and an unrelated file.
// Returns every file there with its content.
std::map<std::string, std::string> OutsideBait(const std::string& outside, const CacheKey& key,
                                               const std::string& valid_entry_bytes) {
  fs::create_directories(outside);
  const std::string hash = KeyHash(*EncodeKey(key));
  std::map<std::string, std::string> files = {
      {hash + ".entry", valid_entry_bytes},
      {std::string(64, 'c') + ".entry", "corrupt"},
      {".tmp-" + hash + "-99999-0", "partial"},
      {"precious.txt", "do not delete"},
  };
  for (const auto& [name, bytes] : files) {
    std::ofstream(outside + "/" + name, std::ios::binary) << bytes;
  }
  return files;
}

std::map<std::string, std::string> FilesWithContent(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    out[e.path().filename().string()] = Slurp(e.path().string());
  }
  return out;
}

TEST_F(CacheTest, SymlinkedFactorDirectoryIsNeverFollowed) {
  DiskExpressionCache c = Make();
  // A real entry of BaseKey, moved out of the cache; entries/momentum then
  // becomes a symlink to where it went.
  ASSERT_TRUE(c.Put(BaseKey(), "outside value").ok());
  const std::string entry_bytes = Slurp(EntryFile(Dir(), BaseKey()));
  CacheKey other = BaseKey();
  other.factor_name = "value";
  ASSERT_TRUE(c.Put(other, "inside value").ok());
  fs::remove_all(Dir() + "/entries/momentum");
  const std::string outside = tmp_.sub("outside");
  const auto bait = OutsideBait(outside, BaseKey(), entry_bytes);
  fs::create_directory_symlink(outside, Dir() + "/entries/momentum");

  // Reads never serve what is behind the link.
  auto got = c.Get(BaseKey());
  EXPECT_FALSE(got) << "served through a symlink: " << *got;
  Counted n;
  auto r = c.GetOrCompute(BaseKey(), n.Fn("computed"));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(r->was_cached) << "served through a symlink";
  EXPECT_EQ(r->value, "computed");
  EXPECT_EQ(n.calls, 1);
  EXPECT_FALSE(r->store_status.ok()) << "stored through a symlink";
  EXPECT_FALSE(c.Put(BaseKey(), "put").ok()) << "stored through a symlink";
  EXPECT_EQ(FilesWithContent(outside), bait);

  // Stats counts only what is inside; gc, purge and invalidation delete
  // nothing outside.
  auto s = c.Stats();
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->entries, 1u);
  EXPECT_EQ(s->corrupt, 0u);
  EXPECT_EQ(s->temp_files, 0u);
  EXPECT_EQ(s->factors.count("momentum"), 0u);
  EXPECT_EQ(s->skipped_symlinks, std::vector<std::string>{"entries/momentum"});
  auto g = c.Gc(/*verify_checksums=*/true);
  ASSERT_TRUE(g) << g.error().ToString();
  EXPECT_EQ(g->skipped_symlinks, std::vector<std::string>{"entries/momentum"});
  EXPECT_EQ(FilesWithContent(outside), bait) << "gc deleted files outside the cache";
  ASSERT_TRUE(c.InvalidateFactor("momentum"));
  EXPECT_EQ(FilesWithContent(outside), bait) << "purge --factor deleted files outside the cache";
  auto by_dataset = c.InvalidateDataset("crsp", "v1.2.3");
  ASSERT_TRUE(by_dataset);
  EXPECT_EQ(by_dataset->removed, 1u);  // the entry of factor value, inside
  EXPECT_EQ(FilesWithContent(outside), bait) << "purge --dataset deleted files outside the cache";
  ASSERT_TRUE(c.Put(other, "inside value").ok());
  auto all = c.Purge(PurgeFilter{});
  ASSERT_TRUE(all);
  EXPECT_EQ(all->removed, 1u);  // the entry of factor value, inside
  EXPECT_EQ(all->skipped_symlinks, std::vector<std::string>{"entries/momentum"});
  EXPECT_EQ(FilesWithContent(outside), bait) << "purge deleted files outside the cache";
  EXPECT_TRUE(fs::is_symlink(Dir() + "/entries/momentum")) << "the link itself is left too";
}

TEST_F(CacheTest, SymlinkedEntriesAndLocksDirectoriesAreNeverFollowed) {
  DiskExpressionCache c = Make();
  ASSERT_TRUE(c.Put(BaseKey(), "outside value").ok());
  const std::string entry_bytes = Slurp(EntryFile(Dir(), BaseKey()));
  fs::remove_all(Dir() + "/entries");
  fs::remove_all(Dir() + "/locks");
  const std::string outside = tmp_.sub("outside");
  const auto bait = OutsideBait(outside + "/momentum", BaseKey(), entry_bytes);
  const std::string outside_locks = tmp_.sub("outside-locks");
  fs::create_directories(outside_locks);
  const std::string stale_lock = outside_locks + "/" + std::string(64, 'e') + ".lock";
  std::ofstream(stale_lock) << "";
  fs::create_directory_symlink(outside, Dir() + "/entries");
  fs::create_directory_symlink(outside_locks, Dir() + "/locks");

  EXPECT_FALSE(c.Get(BaseKey()));
  Counted n;
  auto r = c.GetOrCompute(BaseKey(), n.Fn("computed"));
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_FALSE(r->was_cached);
  EXPECT_FALSE(r->store_status.ok());
  auto s = c.Stats();
  ASSERT_TRUE(s) << s.error().ToString();
  EXPECT_EQ(s->entries, 0u);
  EXPECT_EQ(s->lock_files, 0u);
  EXPECT_EQ(s->skipped_symlinks, (std::vector<std::string>{"entries", "locks"}));
  ASSERT_TRUE(c.Gc());
  ASSERT_TRUE(c.Purge(PurgeFilter{}));
  ASSERT_TRUE(c.InvalidateFactor("momentum"));
  EXPECT_EQ(FilesWithContent(outside + "/momentum"), bait);
  EXPECT_TRUE(fs::exists(stale_lock)) << "gc removed a lock file outside the cache";
  EXPECT_EQ(Files(outside_locks).size(), 1u) << "a lock file was created outside the cache";
}

TEST_F(CacheTest, SymlinkedEntryAndLockFilesAreNeverFollowed) {
  DiskExpressionCache c = Make();
  CacheKey other = BaseKey();
  other.snapshot_id = "snap_other";
  ASSERT_TRUE(c.Put(BaseKey(), "outside value").ok());
  const std::string entry = EntryFile(Dir(), BaseKey());
  const std::string outside = tmp_.sub("outside");
  fs::create_directories(outside);
  // The entry slot holds a link to a (valid) entry outside; a temporary
  // name and the other key's lock are links to files outside too.
  fs::rename(entry, outside + "/target.entry");
  fs::create_symlink(outside + "/target.entry", entry);
  std::ofstream(outside + "/tmp-target") << "partial";
  fs::create_symlink(outside + "/tmp-target", Dir() + "/entries/momentum/.tmp-" +
                                                  KeyHash(*EncodeKey(BaseKey())) + "-99999-0");
  std::ofstream(outside + "/lock-target") << "";
  fs::create_directories(Dir() + "/locks");
  fs::create_symlink(outside + "/lock-target",
                     Dir() + "/locks/" + KeyHash(*EncodeKey(other)) + ".lock");
  const auto before = FilesWithContent(outside);

  auto got = c.Get(BaseKey());
  EXPECT_FALSE(got) << "served through a symlink: " << *got;
  EXPECT_EQ(got.error().code(), Code::kFailedPrecondition) << got.error().ToString();
  ASSERT_TRUE(c.Stats());
  EXPECT_EQ(c.Stats()->entries, 0u);
  auto g = c.Gc(/*verify_checksums=*/true);
  ASSERT_TRUE(g);
  EXPECT_EQ(g->skipped_symlinks.size(), 3u);  // the entry, the temporary file, the lock
  ASSERT_TRUE(c.Purge(PurgeFilter{}));
  EXPECT_EQ(FilesWithContent(outside), before);
  // Storing the other key cannot take a lock through the link.
  Counted n;
  auto r = c.GetOrCompute(other, n.Fn("other"));
  ASSERT_TRUE(r);
  EXPECT_FALSE(r->store_status.ok()) << "locked through a symlink";
  EXPECT_EQ(FilesWithContent(outside), before);
  // Computing BaseKey replaces the link in the entry slot by a real entry
  // (rename replaces the link, never its target).
  auto mine = c.GetOrCompute(BaseKey(), n.Fn("computed"));
  ASSERT_TRUE(mine);
  EXPECT_FALSE(mine->was_cached);
  EXPECT_TRUE(mine->store_status.ok()) << mine->store_status.ToString();
  EXPECT_FALSE(fs::is_symlink(entry));
  EXPECT_EQ(*c.Get(BaseKey()), "computed");
  EXPECT_EQ(FilesWithContent(outside), before);
}

// ---- failures ----

TEST_F(CacheTest, ComputeErrorIsReturnedAndNothingCached) {
  DiskExpressionCache c = Make();
  int calls = 0;
  auto r = c.GetOrCompute(BaseKey(), [&]() -> Result<std::string> {
    ++calls;
    return Err(Status::FailedPrecondition("crsp v1.2.3 not loaded"));
  });
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(r.error().message(), "crsp v1.2.3 not loaded");
  for (const std::string& f : Files(Dir())) ADD_FAILURE() << "left " << f;
  EXPECT_EQ(c.Get(BaseKey()).error().code(), Code::kNotFound);
  Counted n;
  auto ok = c.GetOrCompute(BaseKey(), n.Fn("now it works"));
  ASSERT_TRUE(ok);
  EXPECT_FALSE(ok->was_cached);
  EXPECT_EQ(n.calls, 1);
}

void ExpectComputedNotCached(DiskExpressionCache& c, const std::string& why_contains) {
  for (int round = 0; round < 2; ++round) {
    Counted n;
    auto r = c.GetOrCompute(BaseKey(), n.Fn("computed"));
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->value, "computed");
    EXPECT_FALSE(r->was_cached);
    EXPECT_EQ(n.calls, 1);
    EXPECT_FALSE(r->store_status.ok());
    EXPECT_NE(r->store_status.message().find("not cached"), std::string::npos)
        << r->store_status.ToString();
    EXPECT_NE(r->store_status.message().find(why_contains), std::string::npos)
        << r->store_status.ToString();
  }
}

TEST_F(CacheTest, CacheDirThatIsAFileStillReturnsValues) {
  const std::string file = tmp_.sub("plain-file");
  std::ofstream(file) << "not a directory";
  DiskExpressionCache c(file, kDefaultTtl, &clock_);
  ExpectComputedNotCached(c, "Not a directory");
  DiskExpressionCache under(file + "/cache", kDefaultTtl, &clock_);
  ExpectComputedNotCached(under, "Not a directory");
  EXPECT_EQ(Slurp(file), "not a directory");
  EXPECT_EQ(under.Put(BaseKey(), "x").code(), Code::kIOError);
}

TEST_F(CacheTest, ReadOnlyCacheDirStillReturnsValues) {
  fs::create_directories(Dir());
  ASSERT_EQ(::chmod(Dir().c_str(), 0555), 0);
  if (::geteuid() != 0) {
    DiskExpressionCache c = Make();
    ExpectComputedNotCached(c, "Permission denied");
    ::chmod(Dir().c_str(), 0755);
    EXPECT_TRUE(Files(Dir()).empty());
    return;
  }
  // Root ignores the mode bits, so the check runs in a child that drops to
  // nobody (uid/gid 65534); the parent only reads its verdict.
  ASSERT_EQ(::chmod(tmp_.path().c_str(), 0755), 0);
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    if (::setgid(65534) != 0 || ::setuid(65534) != 0) ::_exit(77);
    const std::string probe = Dir() + "/probe";
    if (::open(probe.c_str(), O_WRONLY | O_CREAT, 0644) >= 0) ::_exit(78);  // still writable
    DiskExpressionCache c(Dir(), kDefaultTtl);
    for (int round = 0; round < 2; ++round) {
      auto r = c.GetOrCompute(BaseKey(), []() -> Result<std::string> { return "computed"; });
      if (!r || r->value != "computed") ::_exit(1);
      if (r->was_cached) ::_exit(2);
      if (r->store_status.message().find("not cached") == std::string::npos ||
          r->store_status.message().find("Permission denied") == std::string::npos) {
        ::_exit(3);
      }
    }
    ::_exit(0);
  }
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ::chmod(Dir().c_str(), 0755);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) GTEST_SKIP() << "cannot drop to uid 65534 here";
  EXPECT_EQ(WEXITSTATUS(status), 0)
      << "1: wrong value, 2: claimed cached, 3: no reason given, 78: 0555 did not deny writes";
  EXPECT_TRUE(Files(Dir()).empty());
}

TEST_F(CacheTest, FullDiskWriteFailsCleanlyAndStillReturnsTheValue) {
  // RLIMIT_FSIZE makes a write fail part-way (EFBIG), as a full disk does
  // (ENOSPC), even for root.
  DiskExpressionCache c = Make();
  ASSERT_TRUE(c.Put(CacheKey{"warmup", "2024-01-15", {}, "s", "c"}, "x").ok());
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto* old_handler = ::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 16 * 1024;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const std::string big(256 * 1024, 'z');
  Counted n;
  auto r = c.GetOrCompute(BaseKey(), n.Fn(big));
  ::setrlimit(RLIMIT_FSIZE, &old);
  ::signal(SIGXFSZ, old_handler);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value, big);
  EXPECT_FALSE(r->was_cached);
  EXPECT_EQ(r->store_status.code(), Code::kIOError);
  EXPECT_NE(r->store_status.message().find("cannot write"), std::string::npos)
      << r->store_status.ToString();
  EXPECT_EQ(c.Stats()->store_failures, 1u);
  // No entry and no temporary file left behind.
  for (const std::string& f : Files(Dir())) {
    EXPECT_EQ(f.find("momentum"), std::string::npos) << f;
  }
  // With room again it is stored.
  auto again = c.GetOrCompute(BaseKey(), n.Fn(big));
  EXPECT_TRUE(again->store_status.ok());
  EXPECT_TRUE(c.GetOrCompute(BaseKey(), n.Fn(big))->was_cached);
}

TEST_F(CacheTest, ValueAboveTheLimitIsReturnedNotStored) {
  CacheOptions o;
  o.dir = Dir();
  o.clock = &clock_;
  o.max_value_bytes = 100;
  DiskExpressionCache c(o);
  Counted n;
  auto r = c.GetOrCompute(BaseKey(), n.Fn(std::string(101, 'x')));
  ASSERT_TRUE(r);
  EXPECT_EQ(r->value.size(), 101u);
  EXPECT_FALSE(r->store_status.ok());
  EXPECT_FALSE(fs::exists(EntryFile(Dir(), BaseKey())));
}

// ---- invalidation and stats ----

TEST_F(CacheTest, InvalidateByFactorAndByDatasetVersion) {
  DiskExpressionCache c = Make();
  CacheKey m1 = BaseKey();  // momentum, crsp v1.2.3
  CacheKey m2 = BaseKey();
  m2.dataset_versions["crsp"] = "v1.2.4";  // momentum, crsp v1.2.4
  CacheKey v1 = BaseKey();
  v1.factor_name = "value";  // value, crsp v1.2.3
  CacheKey v2 = BaseKey();
  v2.factor_name = "value";
  v2.dataset_versions = {{"ibes", "v1.2.3"}};  // same version string, other dataset
  for (const auto& k : {m1, m2, v1, v2}) ASSERT_TRUE(c.Put(k, "x").ok());
  auto s = c.Stats();
  EXPECT_EQ(s->entries, 4u);
  EXPECT_EQ(s->factors["momentum"].entries, 2u);
  EXPECT_EQ(s->factors["value"].entries, 2u);

  auto d = c.InvalidateDataset("crsp", "v1.2.3");
  ASSERT_TRUE(d);
  EXPECT_EQ(d->removed, 2u);
  EXPECT_FALSE(c.Get(m1));
  EXPECT_FALSE(c.Get(v1));
  EXPECT_TRUE(c.Get(m2));
  EXPECT_TRUE(c.Get(v2));
  auto f = c.InvalidateFactor("momentum");
  EXPECT_EQ(f->removed, 1u);
  EXPECT_FALSE(c.Get(m2));
  EXPECT_TRUE(c.Get(v2));
  EXPECT_EQ(c.InvalidateFactor("no_such_factor")->removed, 0u);
  EXPECT_EQ(c.Stats()->entries, 1u);
}

// ---- concurrency ----

TEST_F(CacheTest, ThreadsSharingAKeyComputeOnce) {
  DiskExpressionCache c = Make();
  std::atomic<int> calls{0};
  std::atomic<int> asked{0};
  constexpr int kThreads = 8;
  std::vector<Result<Lookup>> results(kThreads, Err(Status::Internal("not run")));
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      ++asked;
      results[static_cast<std::size_t>(i)] =
          c.GetOrCompute(BaseKey(), [&, i]() -> Result<std::string> {
            ++calls;
            // Hold the key until every thread has asked for it (instead of
            // a fixed sleep): the others find no entry and wait on its lock.
            const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
            while (asked.load() < kThreads && std::chrono::steady_clock::now() < until) {
              std::this_thread::sleep_for(std::chrono::milliseconds(1));
            }
            return "computed by thread " + std::to_string(i);
          });
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(calls, 1);
  int computed = 0;
  for (const auto& r : results) {
    ASSERT_TRUE(r) << r.error().ToString();
    EXPECT_EQ(r->value, results[0]->value);
    computed += r->was_cached ? 0 : 1;
  }
  EXPECT_EQ(computed, 1);
  EXPECT_EQ(asked.load(), kThreads);
  EXPECT_EQ(c.Stats()->lock_files, 0u) << "lock files accumulate";
}

class CacheProcessTest : public CacheTest {
 protected:
  // The workers date their entries by the system clock; a reader whose
  // clock says 2025 would rightly find them dated in the future.
  CacheProcessTest() { clock_.Set(SystemClock::Instance().NowNs()); }
  std::string Worker() const { return testing::EnvOr("MODELREG_CACHE_WORKER", "cache_worker"); }
  std::vector<std::string> WorkerArgs(int sleep_ms) const {
    return {Worker(),     Dir(),   "momentum", "2024-01-15",
            "snap_1",     "cfg_1", Counter(),  std::to_string(sleep_ms),
            "crsp=v1.2.3"};
  }
  std::string Counter() const { return tmp_.sub("counter"); }
  std::size_t Computations() const {
    std::ifstream in(Counter());
    std::size_t n = 0;
    for (std::string line; std::getline(in, line);) ++n;
    return n;
  }
  static CacheKey WorkerKey() {
    return CacheKey{"momentum", "2024-01-15", {{"crsp", "v1.2.3"}}, "snap_1", "cfg_1"};
  }
  // Waits until the child printed "computing" (it holds the key's lock).
  static void AwaitComputing(testing::Child& child) {
    for (int i = 0; i < 100; ++i) {
      child.ReadFor(100);
      for (const auto& l : child.Lines()) {
        if (l == "computing") return;
      }
    }
    FAIL() << "the worker never started computing";
  }
};

TEST_F(CacheProcessTest, ConcurrentProcessesComputeOnceAndGetTheSameBytes) {
  constexpr int kProcs = 4;
  std::vector<std::unique_ptr<testing::Child>> children;
  for (int i = 0; i < kProcs; ++i) {
    children.push_back(std::make_unique<testing::Child>(WorkerArgs(1000)));
  }
  std::set<std::string> values;
  int computed = 0;
  for (auto& ch : children) {
    ch->ReadToEof();
    std::string value_line;
    for (const auto& l : ch->Lines()) {
      if (l.rfind("cached=", 0) == 0) value_line = l;
    }
    ASSERT_FALSE(value_line.empty()) << "a worker failed";
    values.insert(value_line.substr(value_line.find("value=")));
    computed += value_line.rfind("cached=0", 0) == 0 ? 1 : 0;
  }
  EXPECT_EQ(Computations(), 1u) << Slurp(Counter());
  EXPECT_EQ(computed, 1);
  EXPECT_EQ(values.size(), 1u);
  DiskExpressionCache c = Make();
  EXPECT_EQ("value=" + *c.Get(WorkerKey()), *values.begin());
  EXPECT_EQ(c.Stats()->lock_files, 0u);
}

TEST_F(CacheProcessTest, KilledLockHolderDoesNotBlockTheNextCaller) {
  testing::Child holder(WorkerArgs(60'000));
  AwaitComputing(holder);
  DiskExpressionCache c = Make();
  // While it lives, gc leaves its lock alone.
  auto g = c.Gc();
  ASSERT_TRUE(g);
  EXPECT_EQ(g->locks_removed, 0u);
  EXPECT_GE(g->busy_skipped, 1u);
  EXPECT_EQ(c.Stats()->lock_files, 1u);
  holder.Kill();  // SIGKILL mid-compute

  const auto t0 = std::chrono::steady_clock::now();
  Counted n;
  auto r = c.GetOrCompute(WorkerKey(), n.Fn("after the kill"));
  const auto waited = std::chrono::steady_clock::now() - t0;
  ASSERT_TRUE(r) << r.error().ToString();
  EXPECT_LT(waited, std::chrono::seconds(5));
  EXPECT_FALSE(r->was_cached);
  EXPECT_EQ(r->value, "after the kill");
  EXPECT_TRUE(r->store_status.ok());
  EXPECT_EQ(n.calls, 1);
  EXPECT_EQ(Computations(), 1u);  // the killed one's, which stored nothing
  EXPECT_EQ(c.Stats()->lock_files, 0u);
}

TEST_F(CacheProcessTest, GcRemovesTheLockFileOfAKilledHolder) {
  testing::Child holder(WorkerArgs(60'000));
  AwaitComputing(holder);
  holder.Kill();
  DiskExpressionCache c = Make();
  EXPECT_EQ(c.Stats()->lock_files, 1u);
  auto g = c.Gc();
  ASSERT_TRUE(g);
  EXPECT_EQ(g->locks_removed, 1u);
  EXPECT_EQ(g->busy_skipped, 0u);
  EXPECT_EQ(c.Stats()->lock_files, 0u);
  // And a worker afterwards computes and stores normally.
  testing::Child next(WorkerArgs(0));
  next.ReadToEof();
  EXPECT_NE(next.Lines().back().find("store=ok"), std::string::npos) << next.Lines().back();
  EXPECT_TRUE(c.Get(WorkerKey()));
}

TEST_F(CacheProcessTest, EntryIsFsyncedRenamedThenItsDirectoryFsynced) {
  // The fsync spy (tests/e2e/cli_portable_test.cc) logs fsync and rename.
  const std::string spy = testing::EnvOr("MODELREG_FSYNC_SPY", "");
  ASSERT_FALSE(spy.empty()) << "MODELREG_FSYNC_SPY is not set (run through meson test)";
  const std::string log = tmp_.sub("fsync.log");
  std::string cmd = "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 "
                    "LD_PRELOAD=" + spy + " MODELREG_FSYNC_LOG=" + log;
  for (const std::string& a : WorkerArgs(0)) cmd += " " + a;
  testing::RunResult r = testing::RunCmd(cmd);
  ASSERT_EQ(r.rc, 0) << r.err;
  std::vector<std::string> lines;
  std::istringstream in(Slurp(log));
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  const std::string factor_dir = fs::weakly_canonical(Dir() + "/entries/momentum").string();
  const std::string entry = fs::weakly_canonical(EntryFile(Dir(), WorkerKey())).string();
  std::size_t synced = lines.size(), renamed = lines.size(), dir_synced = lines.size();
  std::string tmp;
  for (std::size_t i = 0; i < lines.size(); ++i) {
    if (tmp.empty() && lines[i].rfind("fsync\t" + factor_dir + "/.tmp-", 0) == 0) {
      synced = i;
      tmp = lines[i].substr(6);
    } else if (!tmp.empty() && lines[i].rfind("rename\t", 0) == 0 &&
               lines[i].ends_with("\t" + entry)) {
      renamed = i;
    } else if (renamed < lines.size() && lines[i] == "fsync\t" + factor_dir) {
      dir_synced = i;
      break;
    }
  }
  EXPECT_LT(synced, renamed) << Slurp(log);
  EXPECT_LT(renamed, dir_synced) << Slurp(log);
  EXPECT_TRUE(fs::exists(entry));
  EXPECT_FALSE(tmp.empty() || fs::exists(tmp));
}

}  // namespace
}  // namespace modelreg::cache
