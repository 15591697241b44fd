// The proof checker behind `modelreg verify-proof` (docs/proofs.md). Kept
// short on purpose, so that whoever relies on it can read all of it:
//   1. the checkpoint's signature, with the verifier key given;
//   2. each event: its bytes are a well-formed event with that sequence
//      number, the JSON shown is those bytes' JSON, and its inclusion path
//      leads from SHA-256(0x00 || bytes) to the signed root;
//   3. the consistency proof, if any: an earlier tree (signed too, when its
//      checkpoint is included) is a prefix of the signed one.
// The hashing and the proof algorithms are merkle/tree.cc (RFC 6962 and
// RFC 9162), the note format note/note.cc (C2SP signed-note).
#include "common/base64.h"
#include "events/model_events.h"
#include "log/event_buffer.h"
#include "merkle/tree.h"
#include "proofs/document.h"

namespace modelreg::proofs {

namespace {

Status Bad(const std::string& why) { return Status::InvalidArgument(why); }

Result<std::vector<Digest>> Hashes(const nlohmann::json& list, const std::string& what) {
  if (!list.is_array() || list.size() > 64) return Err(Bad(what + " is not a list of hashes"));
  std::vector<Digest> out;
  for (const auto& h : list) {
    auto d = h.is_string() ? DigestFromHex(h.get<std::string>()) : std::nullopt;
    if (!d) return Err(Bad(what + " holds something that is not a 64-digit hex hash"));
    out.push_back(*d);
  }
  return out;
}

Result<std::uint64_t> Number(const nlohmann::json& obj, const char* key, const std::string& what) {
  if (!obj.is_object() || !obj.contains(key) || !obj[key].is_number_unsigned()) {
    return Err(Bad(what + " has no " + key));
  }
  return obj[key].get<std::uint64_t>();
}

}  // namespace

Result<std::string> CheckDocument(const nlohmann::json& doc, const note::VerifierKey& key) {
  if (!doc.is_object() || doc.value("format", "") != kFormat) {
    return Err(Bad(std::string("not a proof document (format is not ") + kFormat + ")"));
  }
  if (!doc.contains("checkpoint") || !doc["checkpoint"].is_string()) {
    return Err(Bad("the proof has no checkpoint"));
  }
  // 1. The signed tree head.
  auto cp = note::OpenCheckpoint(doc["checkpoint"].get<std::string>(), key);
  if (!cp) return Err(cp.error().WithContext("checkpoint"));

  // 2. The events.
  const nlohmann::json events = doc.value("events", nlohmann::json::array());
  if (!events.is_array()) return Err(Bad("events is not a list"));
  for (const auto& e : events) {
    auto seq = Number(e, "seq", "an event");
    if (!seq) return Err(seq.error());
    const std::string what = "event " + std::to_string(*seq);
    auto index = Number(e, "leaf_index", what);
    if (!index) return Err(index.error());
    if (*seq == 0 || *index != *seq - 1) return Err(Bad(what + ": its leaf index is not seq - 1"));
    auto bytes = e.contains("event_base64") && e["event_base64"].is_string()
                     ? Base64Decode(e["event_base64"].get<std::string>())
                     : std::nullopt;
    if (!bytes) return Err(Bad(what + ": event_base64 is missing or not base64"));
    auto parsed = EventBuffer::Parse(*bytes);
    if (!parsed) return Err(Bad(what + ": its bytes are not a well-formed event"));
    if (parsed->event().sequence() != *seq) {
      return Err(Bad(what + ": its bytes are event " +
                     std::to_string(parsed->event().sequence())));
    }
    if (e.contains("event") && e["event"] != events::ToJson(*parsed)) {
      return Err(Bad(what + ": the JSON shown is not what its bytes say"));
    }
    auto path = Hashes(e.value("inclusion_path", nlohmann::json()), what + ": inclusion_path");
    if (!path) return Err(path.error());
    Status in = merkle::VerifyInclusion(*index, cp->size, merkle::HashLeaf(*bytes), *path, cp->root);
    if (!in.ok()) {
      return Err(Bad(what + " is not in the signed tree of " + std::to_string(cp->size) +
                     " events: " + in.message()));
    }
  }

  // 3. The consistency proof.
  std::string consistency;
  if (doc.contains("consistency")) {
    const nlohmann::json& c = doc["consistency"];
    auto from_size = Number(c, "from_size", "the consistency proof");
    if (!from_size) return Err(from_size.error());
    auto from_root = c.contains("from_root") && c["from_root"].is_string()
                         ? DigestFromHex(c["from_root"].get<std::string>())
                         : std::nullopt;
    if (!from_root) return Err(Bad("the consistency proof has no from_root"));
    if (c.contains("from_checkpoint")) {
      if (!c["from_checkpoint"].is_string()) return Err(Bad("from_checkpoint is not a note"));
      auto from = note::OpenCheckpoint(c["from_checkpoint"].get<std::string>(), key);
      if (!from) return Err(from.error().WithContext("from_checkpoint"));
      if (from->size != *from_size || from->root != *from_root) {
        return Err(Bad("from_size/from_root are not those of from_checkpoint"));
      }
      consistency = ", and the signed tree of " + std::to_string(*from_size) +
                    " events is a prefix of it";
    } else {
      consistency = ", and the tree of " + std::to_string(*from_size) + " events (root " +
                    ToHex(*from_root).substr(0, 16) + "...) is a prefix of it";
    }
    auto path = Hashes(c.value("path", nlohmann::json()), "the consistency path");
    if (!path) return Err(path.error());
    Status ok = merkle::VerifyConsistency(*from_size, cp->size, *from_root, cp->root, *path);
    if (!ok.ok()) return Err(Bad("consistency: " + ok.message()));
  }

  return "proof OK: " + std::to_string(events.size()) + " event(s) in the tree of " +
         std::to_string(cp->size) + " events signed by " + key.name + " for " + cp->origin +
         (cp->time ? " at " + FormatUtc(*cp->time) : std::string()) + consistency;
}

}  // namespace modelreg::proofs
