#include "events/sample.h"

#include <cstdio>

namespace modelreg::events {

namespace {
// SplitMix64: tiny deterministic generator for sample numbers.
std::uint64_t Mix(std::uint64_t& state) {
  std::uint64_t z = (state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}
double Uniform(std::uint64_t& state, double lo, double hi) {
  return lo + (hi - lo) * static_cast<double>(Mix(state) >> 11) / 9007199254740992.0;
}
}  // namespace

Registration SampleRegistration(const std::string& model_type, const std::string& version,
                                std::uint64_t seed) {
  std::uint64_t st = seed * 7919 + 17;
  Registration r;
  char id[40];
  std::snprintf(id, sizeof id, "mdl_%016llx", static_cast<unsigned long long>(Mix(st)));
  r.model_id = id;
  r.model_type = model_type;
  r.version = version;
  r.artifact_name = "model.pkl";
  r.artifact_size = 1'000'000 + Mix(st) % 50'000'000;
  r.artifact_sha256 = Sha256::Of(model_type + version + std::to_string(seed));
  r.dataset_version_ids = {{"compustat", "v1.0." + std::to_string(seed % 7)},
                           {"crsp", "v1.2." + std::to_string(seed % 5)},
                           {"taq", "v2.0." + std::to_string(seed % 3)}};
  r.snapshot_id = "snap_2025" + std::to_string(1000 + seed % 9000);
  r.factor_list = {"momentum_12m", "value_bm", "size_log_mcap", "quality_roe",
                   "low_vol_60d", "short_term_reversal"};
  char params[256];
  std::snprintf(params, sizeof params,
                R"({"factor_list":["momentum_12m","value_bm","size_log_mcap"],)"
                R"("halflife_days":%d,"shrinkage_intensity":%.3f,"universe":"us_top3000"})",
                30 + static_cast<int>(Mix(st) % 90), Uniform(st, 0.1, 0.9));
  r.parameters_json = params;
  r.metrics = {{"annualized_return", Uniform(st, 0.02, 0.25)},
               {"ic", Uniform(st, 0.0, 0.1)},
               {"max_drawdown", Uniform(st, -0.3, -0.05)},
               {"sharpe", Uniform(st, 0.2, 2.0)},
               {"win_rate", Uniform(st, 0.45, 0.6)}};
  r.env = {"trainer-07.research.internal", "training_pipeline", "Linux 6.1.0-18-amd64 x86_64",
           "modelreg " MODELREG_VERSION, "3f9c2a1d5e7b8c9d0a1b2c3d4e5f60718293a4b5",
           {{"python", "3.11.7"}, {"numpy", "1.26.4"}, {"lightgbm", "4.3.0"}}};
  char config[160];
  std::snprintf(config, sizeof config, R"({"epochs":%d,"learning_rate":%.4f,"seed":%llu})",
                50 + static_cast<int>(Mix(st) % 150), Uniform(st, 0.001, 0.1),
                static_cast<unsigned long long>(seed));
  r.config_json = config;
  r.config_hash = ToHex(Sha256::Of(r.config_json));
  r.created_by = "training_pipeline";
  r.created_at = 1'735'689'600'000'000'000LL + static_cast<TimeNs>(seed) * 3'600'000'000'000LL;
  return r;
}

}  // namespace modelreg::events
