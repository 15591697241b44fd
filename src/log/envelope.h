// Building event drafts: the client half of an append.
//
// A draft is a complete Event buffer whose store-assigned fields
// (sequence, recorded_at, prev_hash) hold placeholders; EventStore::Append
// patches them in place. Build the payload table in `fbb` first, then call
// FinishDraft. Thread-safety: free functions, no shared state.
#pragma once

#include <string>
#include <string_view>

#include <flatbuffers/flatbuffers.h>

#include "common/clock.h"
#include "events_generated.h"

namespace modelreg {

inline constexpr std::uint16_t kSchemaVersion = 1;
inline constexpr std::size_t kMaxEventIdBytes = 128;
inline constexpr std::size_t kMaxActorBytes = 256;

struct Envelope {
  std::string_view actor;     // who did it; required
  std::string_view event_id;  // idempotency key; required, <= 128 bytes
  TimeNs occurred_at = 0;     // optional client time; 0 = not given
};

// Finishes `fbb` with an Event around `payload` and returns the bytes.
std::string FinishDraft(flatbuffers::FlatBufferBuilder& fbb, const Envelope& env,
                        fb::Payload type, flatbuffers::Offset<void> payload);

// A random 128-bit idempotency key, 32 hex characters.
std::string NewEventId();

}  // namespace modelreg
