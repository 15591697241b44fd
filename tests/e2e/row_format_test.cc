// End-to-end (issue 18, "a registry written by the previous version opens
// and converts"): tests/fixtures/registry-format1.tar.gz is a real registry
// written by modelreg at commit 68cd749, whose projection rows are JSON
// (format 1). tests/fixtures/make-registry-format1 made it with that
// release's binary. The current binary reads it (folding the log), converts
// its rows once on the first writable open, saying so, and answers the same
// before and after.
#include <filesystem>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

using nlohmann::json;
using testing::Has;
using testing::RunCmd;
using testing::RunResult;

std::string Bin() { return testing::EnvOr("MODELREG_BIN", "modelreg"); }
std::string Replay() { return testing::EnvOr("MODELREG_REPLAY_BIN", "modelreg-replay"); }
std::string Fixture(const std::string& name) {
  return testing::EnvOr("MODELREG_FIXTURES", "tests/fixtures") + "/" + name;
}

const char kConversion[] = "converting the projection rows from format 1 to format 2";

class FormatOneRegistry : public ::testing::Test {
 protected:
  void SetUp() override {
    RunResult x = RunCmd("tar -xzf " + Fixture("registry-format1.tar.gz") + " -C " + dir_.path());
    ASSERT_EQ(x.rc, 0) << x.err;
    root_ = dir_.sub("reg");
    ASSERT_TRUE(std::filesystem::exists(root_ + "/registry")) << "fixture holds no registry";
    mr_ = Bin() + " --root " + root_ + " ";
  }
  RunResult Mr(const std::string& args) { return RunCmd(mr_ + args); }
  // What a user sees of the whole registry, as JSON text.
  std::string Answers() {
    std::string all;
    for (const char* q : {"--json list", "--json current risk_model", "--json history risk_model",
                          "--json audit --at 2100-01-01T00:00:00Z", "--json show risk_model v1.1.0",
                          "--json consumers alpha_weights", "--json policy show"}) {
      RunResult r = Mr(q);
      EXPECT_EQ(r.rc, 0) << q << ": " << r.err;
      EXPECT_FALSE(Has(r.err, "converting")) << q << " (a read) converted: " << r.err;
      all += std::string(q) + "\n" + r.out + "\n";
    }
    return all;
  }

  testing::TempDir dir_;
  std::string root_;
  std::string mr_;
};

TEST_F(FormatOneRegistry, ReadsFoldTheLogAndARebuildConvertsOnce) {
  const std::string before = Answers();
  // The fixture's story: v1.1.0 promoted then rolled back, so v1.0.0 runs.
  EXPECT_TRUE(Has(before, "\"v1.0.0\"")) << before;
  EXPECT_TRUE(Has(before, "hit_rate")) << before;
  EXPECT_TRUE(Has(before, "pricing-1")) << before;
  // verify (read-only) says the rows are not this build's, without
  // touching them.
  RunResult v = Mr("verify");
  EXPECT_NE(v.rc, 0) << v.out;
  EXPECT_TRUE(Has(v.out + v.err, "another row format")) << v.out << v.err;

  RunResult rb = RunCmd(Replay() + " rebuild --root " + root_);
  ASSERT_EQ(rb.rc, 0) << rb.out << rb.err;
  EXPECT_TRUE(Has(rb.err, kConversion)) << rb.err;
  // The same answers from the converted rows.
  EXPECT_EQ(Answers(), before);
  RunResult v2 = Mr("--json verify");
  ASSERT_EQ(v2.rc, 0) << v2.out << v2.err;
  const json j = json::parse(v2.out);
  EXPECT_EQ(j.value("projection_ok", false), true) << v2.out;
  // Once: the next rebuild has nothing to convert, and leaves the digest.
  RunResult rb2 = RunCmd(Replay() + " rebuild --root " + root_);
  ASSERT_EQ(rb2.rc, 0) << rb2.err;
  EXPECT_FALSE(Has(rb2.err, "converting")) << rb2.err;
}

TEST_F(FormatOneRegistry, TheFirstWriteConvertsThenAppends) {
  const std::string before = Answers();
  RunResult w = Mr("--actor tester --reason note annotate alpha_weights v1.0.0 --description "
                   "converted");
  ASSERT_EQ(w.rc, 0) << w.err;
  EXPECT_TRUE(Has(w.err, kConversion)) << w.err;
  RunResult w2 = Mr("--actor tester --reason again annotate alpha_weights v1.0.0 --description "
                    "twice");
  ASSERT_EQ(w2.rc, 0) << w2.err;
  EXPECT_FALSE(Has(w2.err, "converting")) << w2.err;
  RunResult v = Mr("--json verify");
  ASSERT_EQ(v.rc, 0) << v.out << v.err;
  EXPECT_EQ(json::parse(v.out).value("projection_ok", false), true) << v.out;
  // Everything else reads as before the conversion.
  RunResult cur = Mr("--json current risk_model");
  ASSERT_EQ(cur.rc, 0) << cur.err;
  EXPECT_TRUE(Has(before, cur.out)) << cur.out;
  RunResult show = Mr("--json show alpha_weights v1.0.0");
  ASSERT_EQ(show.rc, 0) << show.err;
  EXPECT_TRUE(Has(show.out, "twice")) << show.out;
}

}  // namespace
}  // namespace modelreg
