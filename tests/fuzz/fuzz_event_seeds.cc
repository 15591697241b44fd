// Writes the seed corpus for fuzz_event into DIR: for every payload type a
// draft (as a client builds it), the same event as the store records it
// (sequence, recorded_at and prev_hash patched, chained), and its stored
// `events` value (event bytes || 32-byte hash).
// Usage: fuzz_event_seeds DIR
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "common/sha256.h"
#include "events/model_events.h"
#include "events/sample.h"
#include "log/envelope.h"
#include "log/event_buffer.h"

namespace ev = modelreg::events;

namespace {

bool WriteFile(const std::filesystem::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

std::vector<std::pair<std::string, std::string>> Drafts() {
  const modelreg::Envelope plain{"alice", "0123456789abcdef0123456789abcdef", 0};
  const modelreg::Envelope imported{"importer@example.com", "import-0007",
                                    1'736'933'400'500'000'000LL};
  ev::Promotion promotion{"risk_model", "v1.1.0", "v1.0.0", {}, false, "", "weekly retrain",
                          "ic>0.02 sharpe>0.5 paper>=24h"};
  promotion.gates = {{"ic", ">", 0.02, 0.05, true, true, ""},
                     {"paper_trading_hours", ">=", 24, 0, false, false, "no paper trading"}};
  ev::Promotion overridden = promotion;
  overridden.gates_overridden = true;
  overridden.override_reason = "incident INC-42, approved by risk";
  ev::Validation validation{"risk_model", "v1.1.0", false,
                            modelreg::Sha256::Of("expected"), modelreg::Sha256::Of("observed"),
                            1234, "checksum mismatch"};
  ev::Registration odd = ev::SampleRegistration("alpha_weights", "v2.0.0-rc.1", 9);
  odd.parameters_json = "not json {";
  odd.metrics.clear();
  odd.factor_list.clear();
  ev::Annotation annotation{"alpha_weights", "v1.1.0", {{"desk", "eq"}}, {"stage"},
                            std::string(), {{"hit_rate", 0.56}}, "paper-trading", "ten days"};
  return {
      {"registered", ev::Draft(plain, ev::SampleRegistration("risk_model", "v1.0.0", 1))},
      {"registered-odd", ev::Draft(imported, odd)},
      {"promoted", ev::Draft(plain, promotion)},
      {"promoted-overridden", ev::Draft(plain, overridden)},
      {"archived", ev::Draft(plain, ev::Archive{"risk_model", "v1.0.0", "superseded"})},
      {"failed", ev::Draft(plain, ev::Failure{"alpha_weights", "v1.1.0", "NaN predictions"})},
      {"rolled-back",
       ev::Draft(plain, ev::Rollback{"risk_model", "v1.2.0", "v1.1.0", true, "losing money"})},
      {"validated", ev::Draft(imported, validation)},
      {"purged", ev::Draft(plain, ev::Purge{"risk_model", "v0.9.0", 23'341'133, "retention"})},
      {"annotated", ev::Draft(plain, annotation)},
  };
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_event_seeds DIR\n");
    return 2;
  }
  const std::filesystem::path dir = argv[1];
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "fuzz_event_seeds: %s: %s\n", argv[1], ec.message().c_str());
    return 1;
  }
  modelreg::Digest prev{};
  std::uint64_t seq = 0;
  int written = 0;
  for (const auto& [name, draft] : Drafts()) {
    auto buf = modelreg::EventBuffer::Parse(draft);
    if (!buf) {
      std::fprintf(stderr, "fuzz_event_seeds: draft %s does not parse: %s\n", name.c_str(),
                   buf.error().message().c_str());
      return 1;
    }
    // Patch the store-assigned fields the way EventStore::Append does.
    ++seq;
    modelreg::fb::Event& e = buf->mutable_event();
    e.mutate_sequence(seq);
    e.mutate_recorded_at(1'736'933'400'000'000'000LL + static_cast<std::int64_t>(seq) * 1'000);
    auto* prev_bytes = e.mutable_prev_hash()->mutable_bytes();
    for (std::size_t k = 0; k < prev.size(); ++k) prev_bytes->Mutate(k, prev[k]);
    const std::string event(buf->bytes());
    modelreg::Sha256 sha;
    sha.Update(std::span<const std::uint8_t>(prev.data(), prev.size()));
    sha.Update(event);
    prev = sha.Finish();
    std::string stored = event;
    stored.append(reinterpret_cast<const char*>(prev.data()), prev.size());

    const std::string stem = std::to_string(seq) + "-" + name;
    if (!WriteFile(dir / (stem + ".draft"), draft) ||
        !WriteFile(dir / (stem + ".event"), event) ||
        !WriteFile(dir / (stem + ".stored"), stored)) {
      std::fprintf(stderr, "fuzz_event_seeds: cannot write into %s\n", argv[1]);
      return 1;
    }
    written += 3;
  }
  std::printf("fuzz_event_seeds: wrote %d seeds to %s\n", written, argv[1]);
  return 0;
}
