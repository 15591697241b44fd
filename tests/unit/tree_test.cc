// Directory artifacts (artifacts/tree.h): the tree digest's documented
// encoding (test vector also in docs/events.md), its independence from the
// walk order, the copy, the refusals, checksum.sha256 lines, and how a
// directory registration is written as an event and a projection row.
#include <gtest/gtest.h>

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "artifacts/tree.h"
#include "events/model_events.h"
#include "log/event_buffer.h"
#include "projection/state.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using artifacts::TreeFile;

artifacts::FileHash HashOf(const std::string& content) {
  return {content.size(), Sha256::Of(content)};
}

void Write(const std::string& path, const std::string& content) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path, std::ios::binary) << content;
}

// The vector of docs/events.md: three files, where byte order ("a b/c"
// before "a/x.bin": ' ' < '/') differs from a directory-by-directory walk.
TEST(TreeDigest, MatchesTheDocumentedTestVector) {
  const std::vector<TreeFile> files = {
      {"b.txt", HashOf("hello\n")}, {"a/x.bin", HashOf("")}, {"a b/c", HashOf("abc")}};
  EXPECT_EQ(ToHex(artifacts::TreeDigest(files)),
            "eaddf6cdfe3158bec839175ed63568d7ad96e516f8f1ab4a5ac412f948aae90c");
}

TEST(TreeDigest, DoesNotDependOnTheOrderFilesAreGivenIn) {
  std::vector<TreeFile> files = {{"z", HashOf("1")}, {"a/b/c", HashOf("2")},
                                 {"a/b c", HashOf("3")}, {"a-b", HashOf("4")}};
  const Digest first = artifacts::TreeDigest(files);
  std::reverse(files.begin(), files.end());
  EXPECT_EQ(artifacts::TreeDigest(files), first);
  std::swap(files[0], files[2]);
  EXPECT_EQ(artifacts::TreeDigest(files), first);
}

TEST(TreeDigest, ChangesWithAnyPathSizeOrContent) {
  const std::vector<TreeFile> base = {{"a", HashOf("x")}, {"b/c", HashOf("y")}};
  const Digest d = artifacts::TreeDigest(base);
  auto renamed = base;
  renamed[1].path = "b/d";
  EXPECT_NE(artifacts::TreeDigest(renamed), d);
  auto changed = base;
  changed[0].hash = HashOf("z");
  EXPECT_NE(artifacts::TreeDigest(changed), d);
  auto resized = base;
  resized[0].hash.size = 2;
  EXPECT_NE(artifacts::TreeDigest(resized), d);
  auto fewer = base;
  fewer.pop_back();
  EXPECT_NE(artifacts::TreeDigest(fewer), d);
}

TEST(Tree, HashAndCopyAgreeAndTheCopyIsExact) {
  testing::TempDir dir;
  const std::string src = dir.sub("model");
  Write(src + "/b.txt", "hello\n");
  Write(src + "/a/x.bin", "");
  Write(src + "/a b/c", "abc");
  fs::create_directories(src + "/assets");  // empty: copied, not in the digest
  auto hashed = artifacts::HashTree(src + "/");
  ASSERT_TRUE(hashed) << hashed.error().ToString();
  EXPECT_EQ(ToHex(hashed->digest),
            "eaddf6cdfe3158bec839175ed63568d7ad96e516f8f1ab4a5ac412f948aae90c");
  EXPECT_EQ(hashed->files.size(), 3u);
  EXPECT_EQ(hashed->total_size, 9u);
  EXPECT_EQ(hashed->files[0].path, "a b/c");  // byte order

  auto copied = artifacts::CopyTree(src, dir.sub("copy"));
  ASSERT_TRUE(copied) << copied.error().ToString();
  EXPECT_EQ(copied->digest, hashed->digest);
  EXPECT_TRUE(fs::is_directory(dir.sub("copy/assets")));
  auto again = artifacts::HashTree(dir.sub("copy"));
  ASSERT_TRUE(again);
  EXPECT_EQ(again->files, hashed->files);
  struct stat st {};
  ASSERT_EQ(::stat(dir.sub("copy/a b/c").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0444u);

  EXPECT_EQ(artifacts::ChecksumLines("model", *hashed),
            ToHex(Sha256::Of("abc")) + "  model/a b/c\n" + ToHex(Sha256::Of("")) +
                "  model/a/x.bin\n" + ToHex(Sha256::Of("hello\n")) + "  model/b.txt\n");
}

TEST(Tree, RefusesSymlinksSpecialFilesEmptyTreesAndDeepNesting) {
  testing::TempDir dir;
  auto refused = [](const std::string& path, const std::string& words) {
    auto t = artifacts::HashTree(path);
    ASSERT_FALSE(t) << path;
    EXPECT_EQ(t.error().code(), Code::kInvalidArgument) << t.error().ToString();
    EXPECT_NE(t.error().message().find(words), std::string::npos) << t.error().message();
  };
  Write(dir.sub("inner/m/ok.txt"), "ok");
  fs::create_symlink("ok.txt", dir.sub("inner/m/link"));
  refused(dir.sub("inner/m"), "inner/m/link is a symbolic link");

  Write(dir.sub("out/m/ok.txt"), "ok");
  fs::create_directory_symlink("/etc", dir.sub("out/m/etc"));
  refused(dir.sub("out/m"), "out/m/etc is a symbolic link");

  Write(dir.sub("fifo/m/sub/ok.txt"), "ok");
  ASSERT_EQ(::mkfifo(dir.sub("fifo/m/sub/pipe").c_str(), 0644), 0);
  refused(dir.sub("fifo/m"), "fifo/m/sub/pipe is a FIFO");

  fs::create_directories(dir.sub("empty/m/sub"));
  refused(dir.sub("empty/m"), "contains no files");

  std::string deep = dir.sub("deep/m");
  for (int i = 0; i <= artifacts::kMaxTreeDepth; ++i) deep += "/d";
  Write(deep + "/f", "x");
  refused(dir.sub("deep/m"), "nested deeper than 16 directories");

  Write(dir.sub("ctl/m/bad\nname"), "x");
  refused(dir.sub("ctl/m"), "control character");

  auto missing = artifacts::HashTree(dir.sub("nothing"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
}

TEST(Tree, RefusesMoreFilesThanTheLimit) {
  testing::TempDir dir;
  fs::create_directories(dir.sub("m"));
  for (std::size_t i = 0; i <= artifacts::kMaxTreeFiles; ++i) {
    std::ofstream(dir.sub("m/" + std::to_string(i)));
  }
  auto t = artifacts::HashTree(dir.sub("m"));
  ASSERT_FALSE(t);
  EXPECT_NE(t.error().message().find("more than 10000 files"), std::string::npos);
}

TEST(Tree, DescribesChangesAgainstChecksumLines) {
  artifacts::Tree registered;
  registered.files = {{"a", HashOf("1")}, {"b/c", HashOf("2")}, {"d", HashOf("3")}};
  const std::string text = artifacts::ChecksumLines("m", registered);
  artifacts::Tree now;
  now.files = {{"a", HashOf("1")}, {"b/c", HashOf("changed")}, {"e", HashOf("new")}};
  EXPECT_EQ(artifacts::DescribeTreeChanges(text, "m", now, 5),
            "added m/e; changed m/b/c; missing m/d");
  EXPECT_EQ(artifacts::DescribeTreeChanges(text, "m", now, 1), "added m/e and 2 more");
  EXPECT_EQ(artifacts::DescribeTreeChanges(text, "m", registered, 5), "");
}

events::Registration Reg() {
  events::Registration r;
  r.model_id = "id-1";
  r.model_type = "risk_model";
  r.version = "v1.0.0";
  r.artifact_name = "model.pkl";
  r.artifact_size = 3;
  r.artifact_sha256 = Sha256::Of("abc");
  r.created_by = "alice";
  return r;
}

// Folds one draft (sequence 0) into a fresh state, as its first event.
void Fold(projection::State& s, const EventBuffer& e) {
  auto delta = projection::PlanUnchecked(s, e);
  ASSERT_TRUE(delta) << delta.error().ToString();
  projection::Commit(s, *delta);
}

EventBuffer Parsed(const std::string& draft) {
  auto e = EventBuffer::Parse(draft);
  EXPECT_TRUE(e) << e.error().ToString();
  return std::move(*e);
}

// A file's registration writes neither later field (its bytes are what
// they always were); a directory's writes both, and both reach the row.
TEST(DirectoryEvent, FileEventsCarryNoKindAndDirectoryEventsDo) {
  Envelope env;
  env.actor = "alice";
  env.event_id = "e1";
  const EventBuffer file = Parsed(events::Draft(env, Reg()));
  const auto* fp = file.event().payload_as_ModelRegistered();
  ASSERT_NE(fp, nullptr);
  EXPECT_EQ(fp->artifact_kind(), nullptr);
  EXPECT_EQ(fp->artifact_files(), 0u);
  EXPECT_FALSE(events::ToJson(file)["payload"].contains("artifact_kind"));

  events::Registration d = Reg();
  d.artifact_name = "savedmodel";
  d.artifact_kind = events::kArtifactDirectory;
  d.artifact_files = 4;
  const EventBuffer dir = Parsed(events::Draft(env, d));
  const auto* dp = dir.event().payload_as_ModelRegistered();
  ASSERT_NE(dp, nullptr);
  ASSERT_NE(dp->artifact_kind(), nullptr);
  EXPECT_EQ(dp->artifact_kind()->str(), "directory");
  EXPECT_EQ(dp->artifact_files(), 4u);
  EXPECT_EQ(events::ToJson(dir)["payload"]["artifact_files"], 4);

  projection::State s;
  Fold(s, file);
  const std::string file_row = projection::EncodeVersionRow(*s.Find("risk_model", "v1.0.0"));

  projection::State s2;
  Fold(s2, dir);
  const projection::VersionRecord* rec = s2.Find("risk_model", "v1.0.0");
  ASSERT_NE(rec, nullptr);
  EXPECT_EQ(rec->artifact_kind, projection::ArtifactKind::kDirectory);
  const std::string dir_row = projection::EncodeVersionRow(*rec);
  // The kind is part of the state digest: the same record as a file
  // artifact encodes differently.
  projection::VersionRecord as_file = *rec;
  as_file.artifact_kind = projection::ArtifactKind::kFile;
  EXPECT_NE(projection::CanonicalValue(as_file), projection::CanonicalValue(*rec));
  auto back = projection::DecodeVersionRow(dir_row);
  ASSERT_TRUE(back);
  EXPECT_EQ(*back, *rec);
  auto file_back = projection::DecodeVersionRow(file_row);
  ASSERT_TRUE(file_back);
  EXPECT_EQ(file_back->artifact_kind, projection::ArtifactKind::kFile);
}

}  // namespace
}  // namespace modelreg
