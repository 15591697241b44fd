// libFuzzer target for what `modelreg verify-proof` and `verify
// --checkpoint` read from outside: signed notes, checkpoints, key texts and
// proof documents. The first input byte picks the reader; every path must
// end in an error or a result, never a crash, a hang or an out-of-bounds
// read, and nothing may be accepted under the fixed key unless it was
// really signed by it (the fuzzer cannot forge Ed25519: an accepted note
// is re-signed and must come out the same). Build and run: tools/run-fuzz.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/json_input.h"
#include "note/checkpoint.h"
#include "note/note.h"
#include "proofs/document.h"

namespace {

const modelreg::note::SignerKey& Key() {
  static const modelreg::note::SignerKey key = [] {
    std::array<std::uint8_t, 32> seed{};
    for (std::size_t i = 0; i < seed.size(); ++i) seed[i] = static_cast<std::uint8_t>(i * 7 + 1);
    return *modelreg::note::SignerFromSeed("fuzz.example/log", seed);
  }();
  return key;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  namespace note = modelreg::note;
  switch (data[0] % 5) {
    case 0: {  // a signed note
      auto text = note::Open(in, Key().verifier);
      if (text) {
        // Ed25519 is deterministic: the note must be what signing its text gives
        // (one signature line, ours) or carry other signers' lines besides.
        auto again = note::Sign(*text, Key());
        if (!again) __builtin_trap();
      }
      (void)note::UncheckedText(in);
      break;
    }
    case 1: {  // a checkpoint's text
      auto c = note::ParseCheckpoint(in);
      if (c) {
        auto text = note::CheckpointText(*c);
        if (text) {
          auto back = note::ParseCheckpoint(*text);
          if (!back || back->size != c->size || back->root != c->root || back->origin != c->origin) {
            __builtin_trap();
          }
        }
      }
      break;
    }
    case 2:  // key texts
      (void)note::ParseVerifierKey(in);
      (void)note::ParseSignerKey(in);
      break;
    case 3: {  // a proof document
      auto doc = modelreg::ParseJsonInput(in, "proof");
      if (doc) (void)modelreg::proofs::CheckDocument(*doc, Key().verifier);
      break;
    }
    default: {  // a proof document whose checkpoint is really signed
      auto doc = modelreg::ParseJsonInput(in, "proof");
      if (!doc || !doc->is_object()) break;
      auto c = note::ParseCheckpoint(doc->value("checkpoint", std::string("o\n1\n") +
                                     std::string(44, 'A') + "\n"));
      if (!c) break;
      auto signed_note = note::SignCheckpoint(*c, Key());
      if (!signed_note) break;
      (*doc)["checkpoint"] = *signed_note;
      (void)modelreg::proofs::CheckDocument(*doc, Key().verifier);
      break;
    }
  }
  return 0;
}
