#include "proofs/document.h"

#include "common/base64.h"
#include "events/model_events.h"
#include "merkle/tree.h"

namespace modelreg::proofs {

namespace {

nlohmann::json HexList(const std::vector<Digest>& path) {
  nlohmann::json out = nlohmann::json::array();
  for (const Digest& d : path) out.push_back(ToHex(d));
  return out;
}

// The log's tree at the checkpoint's size must be the signed one.
Status CheckLogExtends(const EventStore& log, const note::Checkpoint& c) {
  auto tree = log.TreeAt(c.size);
  if (!tree) return tree.error();
  if (tree->root != c.root) {
    return Status::FailedPrecondition(
        "this log's first " + std::to_string(c.size) +
        " events are not the ones the checkpoint signed: run modelreg verify --checkpoint");
  }
  return Status::OK();
}

}  // namespace

Result<nlohmann::json> ProveEvents(const EventStore& log, const std::string& signed_checkpoint,
                                   const note::Checkpoint& checkpoint,
                                   const std::vector<Seq>& seqs) {
  MODELREG_RETURN_IF_ERROR(CheckLogExtends(log, checkpoint));
  nlohmann::json events = nlohmann::json::array();
  for (Seq seq : seqs) {
    if (seq == 0 || seq > checkpoint.size) {
      return Err(Status::InvalidArgument("event " + std::to_string(seq) +
                                         " is not in the checkpoint's tree of " +
                                         std::to_string(checkpoint.size) + " events"));
    }
    auto event = log.Get(seq);
    if (!event) return Err(event.error());
    auto path = log.InclusionProof(seq, checkpoint.size);
    if (!path) return Err(path.error());
    // Never hand out a proof that does not check: an event altered after
    // it was recorded no longer leads to the signed root.
    if (!merkle::VerifyInclusion(seq - 1, checkpoint.size, merkle::HashLeaf(event->bytes()), *path,
                                 checkpoint.root)
             .ok()) {
      return Err(Status::Corruption("event " + std::to_string(seq) +
                                    " does not match the log's Merkle tree (altered after it was "
                                    "recorded): run modelreg verify"));
    }
    events.push_back({{"seq", seq},
                      {"leaf_index", seq - 1},
                      {"event_base64", Base64Encode(event->bytes())},
                      {"event", events::ToJson(*event)},
                      {"inclusion_path", HexList(*path)}});
  }
  return nlohmann::json{{"format", kFormat}, {"checkpoint", signed_checkpoint}, {"events", events}};
}

Result<nlohmann::json> ProveConsistency(const EventStore& log,
                                        const std::string& from_checkpoint,
                                        std::uint64_t from_size,
                                        const std::string& signed_checkpoint,
                                        const note::Checkpoint& checkpoint) {
  MODELREG_RETURN_IF_ERROR(CheckLogExtends(log, checkpoint));
  if (from_size == 0 || from_size > checkpoint.size) {
    return Err(Status::InvalidArgument("no consistency proof from " + std::to_string(from_size) +
                                       " events to " + std::to_string(checkpoint.size)));
  }
  auto from = log.TreeAt(from_size);
  if (!from) return Err(from.error());
  auto path = log.ConsistencyProof(from_size, checkpoint.size);
  if (!path) return Err(path.error());
  nlohmann::json consistency{
      {"from_size", from_size}, {"from_root", ToHex(from->root)}, {"path", HexList(*path)}};
  if (!from_checkpoint.empty()) consistency["from_checkpoint"] = from_checkpoint;
  return nlohmann::json{{"format", kFormat},
                        {"checkpoint", signed_checkpoint},
                        {"events", nlohmann::json::array()},
                        {"consistency", consistency}};
}

}  // namespace modelreg::proofs
