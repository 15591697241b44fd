#include "log/envelope.h"

#include "common/random_id.h"

namespace modelreg {

std::string FinishDraft(flatbuffers::FlatBufferBuilder& fbb, const Envelope& env,
                        fb::Payload type, flatbuffers::Offset<void> payload) {
  auto actor = fbb.CreateString(env.actor.data(), env.actor.size());
  auto event_id = fbb.CreateString(env.event_id.data(), env.event_id.size());
  const fb::Hash32 zero_hash;
  // Store-assigned scalars must be physically present so the store can
  // patch them in place: force defaults for the envelope table.
  fbb.ForceDefaults(true);
  fb::EventBuilder b(fbb);
  b.add_sequence(0);
  b.add_recorded_at(0);
  b.add_occurred_at(env.occurred_at);
  b.add_schema_version(kSchemaVersion);
  b.add_actor(actor);
  b.add_prev_hash(&zero_hash);
  b.add_event_id(event_id);
  b.add_payload_type(type);
  b.add_payload(payload);
  auto root = b.Finish();
  fbb.ForceDefaults(false);
  fb::FinishEventBuffer(fbb, root);
  return std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize());
}

std::string NewEventId() { return RandomHex(16); }

}  // namespace modelreg
