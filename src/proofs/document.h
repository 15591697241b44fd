// Proof documents (docs/proofs.md): one JSON file a regulator keeps and
// checks without the registry. Format "modelreg-proof/1":
//
//   {"format": "modelreg-proof/1",
//    "checkpoint": "<signed note: origin, tree size, root, time>",
//    "events": [{"seq": 5, "leaf_index": 4,
//                "event_base64": "<the event's stored bytes>",
//                "event": {<the same event as JSON, for reading>},
//                "inclusion_path": ["<hex>", ...]}],
//    "consistency": {"from_checkpoint": "<signed note>" | absent,
//                    "from_size": N, "from_root": "<hex>",
//                    "path": ["<hex>", ...]},          (optional)
//    "answer": {...}}                                   (optional: what the proof is for)
//
// Every hash is RFC 6962 (merkle/tree.h); the leaf of event n is
// SHA-256(0x00 || its bytes) at index n - 1.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "common/status.h"
#include "log/event_store.h"
#include "note/checkpoint.h"

namespace modelreg::proofs {

inline constexpr char kFormat[] = "modelreg-proof/1";

// The inclusion proofs of events `seqs` in the tree of `checkpoint`
// (signed note `signed_checkpoint`), which must be this log's tree at that
// size: FailedPrecondition otherwise (the log no longer extends it).
Result<nlohmann::json> ProveEvents(const EventStore& log, const std::string& signed_checkpoint,
                                   const note::Checkpoint& checkpoint,
                                   const std::vector<Seq>& seqs);

// The consistency proof from the tree of `from_size` events (signed in
// `from_checkpoint` when given, "" otherwise) to that of `checkpoint`.
Result<nlohmann::json> ProveConsistency(const EventStore& log,
                                        const std::string& from_checkpoint,
                                        std::uint64_t from_size,
                                        const std::string& signed_checkpoint,
                                        const note::Checkpoint& checkpoint);

// What `modelreg verify-proof` does: checks the signatures, every
// inclusion proof (and that each event's bytes are a well-formed event of
// that sequence number whose JSON is the one shown), and the consistency
// proof. Returns a one-line summary, or InvalidArgument /
// PermissionDenied with a one-line reason.
Result<std::string> CheckDocument(const nlohmann::json& doc, const note::VerifierKey& key);

}  // namespace modelreg::proofs
