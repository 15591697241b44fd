// Writes fuzz_rows' seed corpus into DIR: one valid row of every kind,
// prefixed with the byte that makes fuzz_rows read it as that kind.
// Usage: fuzz_rows_seeds DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "projection/state.h"

namespace mp = modelreg::projection;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_rows_seeds DIR\n");
    return 2;
  }
  mp::VersionRecord r;
  r.model_type = "risk_model";
  r.version = "v1.0.0";
  r.model_id = "risk_model_v1.0.0_abc";
  r.status = mp::ModelStatus::kProduction;
  r.metrics = {{"ic", 0.05}, {"sharpe", -0.0}};
  r.dataset_version_ids = {{"crsp", "v1.2.3"}};
  r.annotations.seq = 4;
  r.annotations.tags = {{"desk", "eq"}};
  r.annotations.metrics["hit_rate"] = mp::LateMetric{0.56, "paper-trading", "carol", 3, 4};
  mp::PromotionRecord p;
  p.seq = 5;
  p.model_type = "risk_model";
  p.version = "v1.0.0";
  p.reason = "weekly retrain";
  p.gates_passed = 3;
  p.gates_total = 3;
  mp::ConsumerRecord c{"pricing-1", "v1.0.0", false, "v1.1.0", "load failed", 6, 7};
  mp::PolicyRecord g{8, 9, "alice", "tighter", "policy.toml", std::string(64, 'a'),
                     "[default]\nic = \"> 0.02\"\n"};
  const std::vector<std::pair<int, std::string>> rows = {
      {0, mp::EncodeHeadRow(12, 34)},   {1, mp::EncodeVersionRow(r)},
      {2, mp::EncodeVersionRow(mp::VersionRecord{})},
      {3, mp::EncodeTypeRow("v1.0.0")}, {4, mp::EncodeTypeRow("")},
      {5, mp::EncodeHistoryRow(p)},     {6, mp::EncodeConsumerRow(c)},
      {7, mp::EncodePolicyRow(g)}};
  int n = 0;
  for (const auto& [kind, bytes] : rows) {
    std::ofstream out(std::filesystem::path(argv[1]) / ("row" + std::to_string(n++)),
                      std::ios::binary | std::ios::trunc);
    out.put(static_cast<char>(kind));
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "fuzz_rows_seeds: cannot write into %s\n", argv[1]);
      return 1;
    }
  }
  return 0;
}
