// libFuzzer target for registration metadata: arbitrary bytes go where the
// text of `register --metadata FILE`, `--config FILE` and an HTTP upload's
// `metadata` part go. Whatever is accepted is encoded as a registration
// draft, parsed back and rendered the way `modelreg show` renders it, so a
// value that passes validation must also survive the codec. The same bytes
// are tried as a number (`--metric`), a dataset map (`compat
// --current-file`) and as bounded JSON input.
// Build and run: tools/run-fuzz.
#include <cstddef>
#include <cstdint>
#include <string>

#include "common/clock.h"
#include "common/json_input.h"
#include "compat/compatibility.h"
#include "events/model_events.h"
#include "log/event_buffer.h"
#include "registry/metadata.h"

namespace {

void Encode(const modelreg::events::Registration& r) {
  const std::string draft = modelreg::events::Draft({"fuzz", "evt-fuzz", 0}, r);
  auto buf = modelreg::EventBuffer::Parse(draft);
  // Everything BuildRegistration accepts must encode to a verifiable event.
  if (!buf) __builtin_trap();
  if (modelreg::events::ToJson(*buf).dump().empty()) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const modelreg::TimeNs now = 1'700'000'000'000'000'000;

  modelreg::registry::MetadataInput as_metadata;
  as_metadata.metadata_json = text;
  if (auto r = modelreg::registry::BuildRegistration("risk_model", "v1.0.0", as_metadata,
                                                     "fuzz", now)) {
    Encode(*r);
  }
  modelreg::registry::MetadataInput as_config;
  as_config.config_json = text;
  as_config.params["p"] = text;
  if (auto r = modelreg::registry::BuildRegistration("risk_model", "v1.0.0", as_config, "fuzz",
                                                     now)) {
    Encode(*r);
  }
  if (auto j = modelreg::ParseJsonInput(text, "input")) (void)j->dump();
  (void)modelreg::registry::ParseFiniteNumber(text, "metric");
  (void)modelreg::compat::ParseDatasetVersions(text, "datasets");
  return 0;
}
