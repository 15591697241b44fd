// libFuzzer target for the event codec: arbitrary bytes go where RocksDB
// values, files and network drafts go (EventBuffer::Parse), and whatever
// parses is rendered the way `modelreg events [--json]` renders it, so every
// accessor runs on verified-but-hostile data.
//
// Each input is tried twice:
//   1. as event bytes (a draft from a client, or an exported event);
//   2. as a stored `events` column-family value: event bytes || 32-byte hash.
// Build and run: tools/run-fuzz.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>

#include "common/sha256.h"
#include "events/model_events.h"
#include "log/event_buffer.h"

namespace {

constexpr std::size_t kHashBytes = 32;

// What the CLI does with an event: `events --json` dumps ToJson, `events`
// prints Summary. Exceptions are not caught: none may escape these.
void Render(const modelreg::EventBuffer& buf) {
  const std::string json = modelreg::events::ToJson(buf).dump();
  const std::string line = modelreg::events::Summary(buf);
  if (json.empty() || line.empty()) __builtin_trap();
}

// What EventStore::Append does to a client's draft: the store-assigned
// fields are patched in place. The Verifier checks bounds, not overlap, so a
// crafted draft can lay other fields over the patched ones; the patched bytes
// are parsed again (the store must reject a draft that fails this) and
// rendered, never read through the stale verification.
void PatchLikeTheStore(std::string_view bytes) {
  auto draft = modelreg::EventBuffer::Parse(bytes);
  if (!draft) __builtin_trap();  // the same bytes parsed a moment ago
  modelreg::fb::Event& e = draft->mutable_event();
  const bool patched = e.mutate_sequence(7) && e.mutate_recorded_at(1'736'933'400'000'000'000);
  if (!patched || e.prev_hash() == nullptr) return;  // Append rejects these drafts
  auto* prev = e.mutable_prev_hash()->mutable_bytes();
  for (std::size_t k = 0; k < kHashBytes; ++k) {
    prev->Mutate(k, static_cast<std::uint8_t>(0xa5 ^ k));
  }
  auto stored = modelreg::EventBuffer::Parse(draft->bytes());
  if (!stored) return;
  Render(*stored);
}

void TryEvent(std::string_view bytes) {
  auto buf = modelreg::EventBuffer::Parse(bytes);
  if (!buf) return;
  if (buf->bytes() != bytes) __builtin_trap();
  Render(*buf);
  PatchLikeTheStore(bytes);
}

// A stored value as EventStore::Get/Scan/Verify read it.
void TryStoredValue(std::string_view value) {
  if (value.size() <= kHashBytes) return;
  const std::string_view bytes = value.substr(0, value.size() - kHashBytes);
  auto buf = modelreg::EventBuffer::Parse(bytes);
  if (!buf) return;
  // The chain rule: hash(n) = SHA-256(prev_hash(n) || bytes(n)).
  modelreg::Digest prev{};
  if (const modelreg::fb::Hash32* h = buf->event().prev_hash()) {
    std::copy(h->bytes()->begin(), h->bytes()->end(), prev.begin());
  }
  modelreg::Sha256 sha;
  sha.Update(std::span<const std::uint8_t>(prev.data(), prev.size()));
  sha.Update(buf->bytes());
  const modelreg::Digest hash = sha.Finish();
  const bool chained = std::memcmp(hash.data(), value.data() + bytes.size(), kHashBytes) == 0;
  (void)chained;  // Scan and Get render events without checking the hash.
  Render(*buf);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  TryEvent(input);
  TryStoredValue(input);
  return 0;
}
