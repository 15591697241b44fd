// End-to-end (issue 16, "Models that are directories"): the real modelreg
// and modelreg-replay binaries register, check, validate, back up,
// restore, materialize, export/import and garbage-collect a directory
// artifact; `sha256sum -c` (the real tool) checks the version directory;
// refused trees append nothing and leave nothing; the loader is handed the
// directory.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "loader/production_loader.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using testing::RunCmd;
using testing::Lines;
using testing::Has;
using testing::RunResult;

std::string Quote(const std::string& s) { return "'" + s + "'"; }

class DirectoryCli : public ::testing::Test {
 protected:
  std::string Bin() const { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
  std::string Replay() const { return testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay"); }
  void SetUp() override {
    fs::create_directories(root_);
    std::ofstream(root_ + "/policy.toml") << "[default]\npaper_trading_hours = \"off\"\n";
  }
  RunResult Mr(const std::string& args, const std::string& root = "") const {
    return RunCmd("MODELREG_ACTOR=alice " + Bin() + " --root " + Quote(root.empty() ? root_ : root) +
                  " " + args);
  }
  RunResult Ok(const std::string& args, const std::string& root = "") const {
    RunResult r = Mr(args, root);
    EXPECT_EQ(r.rc, 0) << args << "\n" << r.err;
    return r;
  }
  json Json(const std::string& args, const std::string& root = "") const {
    RunResult r = Ok("--json " + args, root);
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << args << ": " << r.out;
    return j;
  }
  static void Write(const std::string& path, const std::string& content) {
    fs::create_directories(fs::path(path).parent_path());
    std::ofstream(path, std::ios::binary) << content;
  }
  // A SavedModel-like tree: nested directories, several files, a name
  // with spaces, a name with a backslash, an empty assets/ directory.
  std::string Model(const std::string& name, const std::string& salt = "") const {
    const std::string d = dir_.sub(name);
    Write(d + "/saved_model.pb", "graph " + salt);
    Write(d + "/variables/variables.index", "index " + salt);
    Write(d + "/variables/variables.data-00000-of-00001", std::string(100000, 'w') + salt);
    Write(d + "/MLmodel", "flavors: {}\n");
    Write(d + "/extra/deeper/name with spaces.txt", "spaces");
    Write(d + "/extra/back\\slash.json", "{}");
    fs::create_directories(d + "/assets");
    return d;
  }
  void Register(const std::string& version, const std::string& salt = "") const {
    Ok("register risk_model " + Model("savedmodel-" + version, salt) + "/ --version " + version +
       " --metric sharpe=1.2 --metric ic=0.05");
  }
  std::string VersionDir(const std::string& version, const std::string& root = "") const {
    return (root.empty() ? root_ : root) + "/artifacts/risk_model/" + version;
  }
  std::size_t EventCount() const {
    RunResult r = Mr("events");
    return r.rc == 0 ? Lines(r.out).size() : 0;
  }
  json LastEvent() const { return json::parse(Lines(Ok("--json events").out).back()); }
  std::vector<std::string> ArtifactTree() const {
    std::vector<std::string> out;
    std::error_code ec;
    if (!fs::exists(root_ + "/artifacts")) return out;
    for (const auto& e : fs::recursive_directory_iterator(root_ + "/artifacts", ec)) {
      out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
  // `sha256sum -c checksum.sha256` run inside the version directory.
  static RunResult Sha256sumCheck(const std::string& version_dir) {
    return RunCmd("cd " + Quote(version_dir) + " && sha256sum -c checksum.sha256");
  }
  static void MakeWritable(const std::string& path) {
    fs::permissions(path, fs::perms::owner_write, fs::perm_options::add);
  }

  testing::TempDir dir_;
  std::string root_ = dir_.sub("reg");
};

TEST_F(DirectoryCli, RegistersATreeThatSha256sumChecks) {
  json r = Json("register risk_model " + Model("savedmodel") +
                "/ --version v1.0.0 --metric sharpe=1.2 --metric ic=0.05");
  EXPECT_EQ(r["artifact_kind"], "directory");
  EXPECT_EQ(r["artifact_name"], "savedmodel");
  EXPECT_EQ(r["artifact_path"], "artifacts/risk_model/v1.0.0/savedmodel");
  const std::string vdir = VersionDir("v1.0.0");
  EXPECT_TRUE(fs::is_directory(vdir + "/savedmodel/variables"));
  EXPECT_TRUE(fs::is_directory(vdir + "/savedmodel/assets"));  // empty, still copied
  EXPECT_TRUE(fs::exists(vdir + "/savedmodel/extra/deeper/name with spaces.txt"));

  // The real sha256sum checks every file of the tree from the version dir.
  RunResult check = Sha256sumCheck(vdir);
  EXPECT_EQ(check.rc, 0) << check.out << check.err;
  EXPECT_EQ(Lines(check.out).size(), 6u) << check.out;
  EXPECT_TRUE(Has(check.out, "savedmodel/extra/deeper/name with spaces.txt: OK")) << check.out;
  EXPECT_TRUE(Has(check.out, "savedmodel/extra/back\\slash.json: OK")) << check.out;

  // The event: the tree digest, the kind and the file count.
  json ev = LastEvent();
  EXPECT_EQ(ev["type"], "ModelRegistered");
  EXPECT_EQ(ev["payload"]["artifact_kind"], "directory");
  EXPECT_EQ(ev["payload"]["artifact_files"], 6);
  EXPECT_EQ(ev["payload"]["artifact_sha256"], r["artifact_sha256"]);
  EXPECT_EQ(ev["payload"]["artifact_size"], r["artifact_size"]);

  // show and current say what and where it is.
  json shown = Json("show risk_model v1.0.0");
  EXPECT_EQ(shown["artifact_kind"], "directory");
  EXPECT_EQ(shown["artifact_path"], "artifacts/risk_model/v1.0.0/savedmodel");
  EXPECT_TRUE(Has(Ok("show risk_model v1.0.0").out,
                  "artifacts/risk_model/v1.0.0/savedmodel/ (directory, 6 files)"));
  Ok("promote risk_model v1.0.0");
  json cur = Json("current risk_model");
  EXPECT_EQ(cur["record"]["artifact_kind"], "directory");
  EXPECT_EQ(cur["record"]["artifact_path"], "artifacts/risk_model/v1.0.0/savedmodel");

  // The same registration again is recognised; a changed tree conflicts.
  RunResult again = Ok("register risk_model " + dir_.sub("savedmodel") +
                       " --version v1.0.0 --metric sharpe=1.2 --metric ic=0.05");
  EXPECT_TRUE(Has(again.out, "already registered")) << again.out;
  Write(dir_.sub("savedmodel/variables/variables.index"), "retrained");
  RunResult conflict = Mr("register risk_model " + dir_.sub("savedmodel") +
                          " --version v1.0.0 --metric sharpe=1.2 --metric ic=0.05");
  EXPECT_NE(conflict.rc, 0);
  EXPECT_TRUE(Has(conflict.err, "different artifact")) << conflict.err;

  // A file artifact still looks as it always did.
  Write(dir_.sub("model.pkl"), "weights");
  json file = Json("register risk_model " + dir_.sub("model.pkl") + " --version v2.0.0");
  EXPECT_EQ(file["artifact_kind"], "file");
  EXPECT_FALSE(LastEvent()["payload"].contains("artifact_kind"));
  Ok("verify");
}

// The shell recipe of docs/events.md ("Directory artifacts"), run as
// written on a registered tree (its cd path pointed at this registry),
// gives the tree digest the event recorded.
TEST_F(DirectoryCli, TheDocumentedShellRecipeGivesTheTreeDigest) {
  Register("v1.0.0");
  std::ifstream in(testing::EnvOr("MODELREG_DOCS", "docs") + "/events.md");
  ASSERT_TRUE(in);
  std::string recipe, line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (line.rfind("cd artifacts/risk_model/v1.0.0/savedmodel &&", 0) == 0) inside = true;
    if (inside && line == "```") break;
    if (inside) recipe += line + "\n";
  }
  ASSERT_FALSE(recipe.empty()) << "no recipe in docs/events.md";
  recipe.replace(0, std::string("cd artifacts/risk_model/v1.0.0/savedmodel").size(),
                 "cd " + Quote(VersionDir("v1.0.0") + "/savedmodel-v1.0.0"));
  const std::string script = dir_.sub("recipe.sh");
  std::ofstream(script) << recipe;
  RunResult r = RunCmd("bash " + script);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out.substr(0, 64), Json("show risk_model v1.0.0")["artifact_sha256"]) << recipe;
}

TEST_F(DirectoryCli, ValidateFindsAChangedAddedOrRemovedFileAsAMismatch) {
  Register("v1.0.0");
  RunResult ok = Ok("validate risk_model v1.0.0");
  EXPECT_TRUE(Has(ok.out, "valid: risk_model v1.0.0")) << ok.out;

  struct Case {
    std::string version;
    std::function<void(const std::string&)> tamper;
    std::string says;
    bool sha256sum_sees_it;  // it checks the files listed, not what was added
  };
  const std::vector<Case> cases = {
      {"v1.1.0",
       [](const std::string& tree) {
         const std::string f = tree + "/variables/variables.index";
         MakeWritable(f);
         std::ofstream(f, std::ios::app) << "x";
       },
       "changed savedmodel-v1.1.0/variables/variables.index", true},
      {"v1.2.0",
       [](const std::string& tree) {
         MakeWritable(tree + "/extra");
         std::ofstream(tree + "/extra/new.txt") << "new";
       },
       "added savedmodel-v1.2.0/extra/new.txt", false},
      {"v1.3.0",
       [](const std::string& tree) { fs::remove(tree + "/extra/deeper/name with spaces.txt"); },
       "missing savedmodel-v1.3.0/extra/deeper/name with spaces.txt", true},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.version);
    Register(c.version, c.version);
    c.tamper(VersionDir(c.version) + "/savedmodel-" + c.version);
    if (c.sha256sum_sees_it) {
      EXPECT_NE(Sha256sumCheck(VersionDir(c.version)).rc, 0);
    }
    // validate records the mismatch (exit 5) and leaves the status alone...
    const std::size_t n = EventCount();
    RunResult v = Mr("validate risk_model " + c.version);
    EXPECT_EQ(v.rc, 5) << v.out << v.err;
    EXPECT_EQ(EventCount(), n + 1);
    json shown = Json("show risk_model " + c.version);
    EXPECT_EQ(shown["status"], "staged");
    EXPECT_EQ(shown["validation_ok"], false);
    EXPECT_TRUE(Has(shown["validation_detail"].get<std::string>(), c.says))
        << shown["validation_detail"];
    // ...and a promotion marks the version failed, as for a changed file.
    RunResult p = Mr("promote risk_model " + c.version);
    EXPECT_EQ(p.rc, 5) << p.err;
    EXPECT_EQ(Json("show risk_model " + c.version)["status"], "failed");
    // The ArtifactValidated event says "mismatch".
    bool found = false;
    for (const std::string& line : Lines(Ok("--json events").out)) {
      json e = json::parse(line);
      if (e["type"] == "ArtifactValidated" && e["payload"]["version"] == c.version) {
        EXPECT_EQ(e["payload"]["result"], "mismatch");
        found = true;
      }
    }
    EXPECT_TRUE(found);
  }
  EXPECT_EQ(Json("show risk_model v1.0.0")["status"], "staged");  // untouched
}

TEST_F(DirectoryCli, AWholeMissingDirectoryIsMissingAndLeavesTheStatusAlone) {
  Register("v1.0.0");
  const std::string saved = dir_.sub("saved-version");
  RunCmd("cp -a " + Quote(VersionDir("v1.0.0")) + " " + Quote(saved));
  fs::remove_all(VersionDir("v1.0.0"));
  RunResult v = Mr("validate risk_model v1.0.0");
  EXPECT_EQ(v.rc, 4) << v.out << v.err;
  EXPECT_EQ(LastEvent()["payload"]["result"], "missing");
  EXPECT_EQ(Json("show risk_model v1.0.0")["status"], "staged");
  RunResult p = Mr("promote risk_model v1.0.0");
  EXPECT_EQ(p.rc, 4) << p.err;
  EXPECT_TRUE(Has(p.err, "is missing")) << p.err;
  EXPECT_EQ(Json("show risk_model v1.0.0")["status"], "staged");

  // Put back, it validates and promotes.
  RunCmd("cp -a " + Quote(saved) + " " + Quote(VersionDir("v1.0.0")));
  Ok("validate risk_model v1.0.0");
  Ok("promote risk_model v1.0.0");
  EXPECT_EQ(Json("current risk_model")["production"], "v1.0.0");
}

TEST_F(DirectoryCli, RefusesTreesItCannotKeepAndLeavesNothing) {
  Register("v1.0.0");
  const std::size_t events = EventCount();
  const std::vector<std::string> files = ArtifactTree();

  struct Case {
    std::string name;
    std::function<void(const std::string&)> make;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"inside-link",
       [](const std::string& d) { fs::create_symlink("MLmodel", d + "/variables/link"); },
       "inside-link/variables/link is a symbolic link"},
      {"outside-link",
       [](const std::string& d) { fs::create_directory_symlink("/etc", d + "/extra/etc"); },
       "outside-link/extra/etc is a symbolic link"},
      {"fifo",
       [](const std::string& d) { ASSERT_EQ(::mkfifo((d + "/extra/pipe").c_str(), 0644), 0); },
       "fifo/extra/pipe is a FIFO"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string d = Model(c.name);
    c.make(d);
    RunResult r = Mr("register risk_model " + d + " --version v9.0.0");
    EXPECT_EQ(r.rc, 2) << r.err;
    EXPECT_TRUE(Has(r.err, c.says)) << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
    EXPECT_EQ(EventCount(), events);
    EXPECT_EQ(ArtifactTree(), files);
  }
  fs::create_directories(dir_.sub("hollow/a/b"));
  RunResult hollow = Mr("register risk_model " + dir_.sub("hollow") + " --version v9.0.0");
  EXPECT_EQ(hollow.rc, 2);
  EXPECT_TRUE(Has(hollow.err, "hollow contains no files")) << hollow.err;
  EXPECT_EQ(EventCount(), events);
  EXPECT_EQ(ArtifactTree(), files);
}

TEST_F(DirectoryCli, BackupRestoreMaterializeAndImportKeepTheTree) {
  Register("v1.0.0");
  Ok("promote risk_model v1.0.0");
  Ok("backup create");
  RunResult verified = Ok("backup verify latest");
  EXPECT_TRUE(Has(verified.out, "1 artifacts match")) << verified.out;
  EXPECT_TRUE(fs::exists(root_ + "/backups/artifacts/risk_model/v1.0.0/savedmodel-v1.0.0/"
                                 "extra/deeper/name with spaces.txt"));

  const std::string restored = dir_.sub("restored");
  Ok("backup restore 1 --to " + restored);
  EXPECT_EQ(Sha256sumCheck(VersionDir("v1.0.0", restored)).rc, 0);
  Ok("validate risk_model v1.0.0", restored);

  const std::string mat = dir_.sub("materialized");
  RunResult m = RunCmd(Replay() + " --root " + root_ + " materialize --at 2100-01-01 --to " + mat);
  ASSERT_EQ(m.rc, 0) << m.err;
  EXPECT_EQ(Sha256sumCheck(VersionDir("v1.0.0", mat)).rc, 0);
  Ok("validate risk_model v1.0.0", mat);

  // An export carries no artifacts: the tree is missing until copied.
  const std::string exported = dir_.sub("log.jsonl"), imported = dir_.sub("imported");
  ASSERT_EQ(RunCmd(Replay() + " --root " + root_ + " export --to " + exported).rc, 0);
  ASSERT_EQ(RunCmd(Replay() + " import " + exported + " --to " + imported).rc, 0);
  EXPECT_EQ(Mr("validate risk_model v1.0.0", imported).rc, 4);
  ASSERT_EQ(RunCmd("cp -a " + Quote(root_ + "/artifacts") + " " + Quote(imported + "/")).rc, 0);
  Ok("validate risk_model v1.0.0", imported);

  // A file changed in the backup is found by backup verify.
  const std::string backed =
      root_ + "/backups/artifacts/risk_model/v1.0.0/savedmodel-v1.0.0/MLmodel";
  fs::remove(backed);
  std::ofstream(backed) << "changed";
  RunResult bad = Mr("backup verify latest");
  EXPECT_NE(bad.rc, 0);
  EXPECT_TRUE(Has(bad.err, "missing or altered")) << bad.err;
}

TEST_F(DirectoryCli, GcPurgesAWholeTree) {
  for (const std::string v : {"v1.0.0", "v2.0.0", "v3.0.0"}) {
    Register(v, v);
    Ok("promote risk_model " + v);
  }
  RunResult gc = Ok("gc --keep 0 --retention-days 0");
  EXPECT_TRUE(Has(gc.out, "v1.0.0")) << gc.out;
  EXPECT_FALSE(fs::exists(VersionDir("v1.0.0") + "/savedmodel-v1.0.0"));
  EXPECT_TRUE(Json("show risk_model v1.0.0")["purged"].get<bool>());
  EXPECT_EQ(Sha256sumCheck(VersionDir("v2.0.0")).rc, 0);  // the rollback target stays
}

TEST_F(DirectoryCli, TheLoaderIsHandedTheDirectory) {
  Register("v1.0.0");
  Ok("promote risk_model v1.0.0");
  loader::LoaderOptions o;
  o.model_type = "risk_model";
  o.consumer_id = "svc@test";
  o.root = root_;
  o.acknowledge = false;
  std::atomic<int> loads{0};
  loader::ModelFile seen;
  auto l = loader::ProductionModelLoader::Start(
      o, [&](const loader::ModelFile& f) -> Result<std::shared_ptr<const void>> {
        seen = f;
        ++loads;
        return std::shared_ptr<const void>(std::make_shared<int>(1));
      });
  ASSERT_TRUE(l) << l.error().ToString();
  ASSERT_EQ(loads.load(), 1);
  EXPECT_TRUE(seen.directory);
  EXPECT_EQ(fs::path(seen.path), fs::path(VersionDir("v1.0.0") + "/savedmodel-v1.0.0"));
  EXPECT_TRUE(fs::is_regular_file(seen.path + "/variables/variables.index"));
  EXPECT_EQ(seen.sha256, Json("show risk_model v1.0.0")["artifact_sha256"]);
}

}  // namespace
}  // namespace modelreg
