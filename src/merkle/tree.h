// The Merkle tree over the event log, hashed as RFC 6962 §2.1 (and RFC 9162
// §2.1) defines, so that proofs check with any Certificate Transparency
// verifier:
//   empty tree  = SHA-256("")
//   leaf hash   = SHA-256(0x00 || leaf data)
//   node hash   = SHA-256(0x01 || left || right)
// and the tree over n > 1 leaves splits at k, the largest power of two
// smaller than n (not the midpoint).
//
// Nodes are named (level, index): the complete subtree of 2^level leaves
// starting at leaf index << level. Only complete subtrees are ever stored
// (a CompactRange says which appear with each new leaf); every other hash a
// root or proof needs is computed from them, so a proof reads O(log n)
// stored nodes.
//
// Thread-safety: free functions; a CompactRange is used by one thread at a
// time.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "common/sha256.h"
#include "common/status.h"

namespace modelreg::merkle {

Digest EmptyRoot();
Digest HashLeaf(std::string_view leaf_data);
Digest HashChildren(const Digest& left, const Digest& right);

// The largest power of two smaller than n (n >= 2): RFC 6962's split.
std::uint64_t SplitPoint(std::uint64_t n);

struct NodeId {
  int level = 0;
  std::uint64_t index = 0;
  bool operator==(const NodeId&) const = default;
};

// Reads one stored complete-subtree hash (NotFound / Corruption / IOError
// when it cannot).
using NodeFn = std::function<Result<Digest>(NodeId)>;

// MTH(D[begin:end]) for 0 <= begin < end, from the stored nodes.
Result<Digest> RangeHash(std::uint64_t begin, std::uint64_t end, const NodeFn& node);
// The root of the tree of the first `size` leaves (EmptyRoot() for 0).
Result<Digest> RootAt(std::uint64_t size, const NodeFn& node);

// RFC 6962 §2.1.1 PATH(index, D[0:size]), leaf side first. index < size.
Result<std::vector<Digest>> InclusionProof(std::uint64_t index, std::uint64_t size,
                                           const NodeFn& node);
// RFC 6962 §2.1.2 PROOF(size1, D[0:size2]); empty for size1 == size2.
// 0 < size1 <= size2.
Result<std::vector<Digest>> ConsistencyProof(std::uint64_t size1, std::uint64_t size2,
                                             const NodeFn& node);

// RFC 9162 §2.1.3.2. OK, or InvalidArgument saying what does not hold.
Status VerifyInclusion(std::uint64_t index, std::uint64_t size, const Digest& leaf_hash,
                       std::span<const Digest> proof, const Digest& root);
// RFC 9162 §2.1.4.2. Equal sizes need equal roots and an empty proof; a
// proof from the empty tree to a larger one proves nothing and is refused.
Status VerifyConsistency(std::uint64_t size1, std::uint64_t size2, const Digest& root1,
                         const Digest& root2, std::span<const Digest> proof);

// The right edge of a growing tree: the roots of its complete subtrees
// (one per set bit of the size, largest first). Appending a leaf yields the
// complete subtrees it finishes; those are what a store keeps.
class CompactRange {
 public:
  struct Node {
    NodeId id;
    Digest hash;
  };

  CompactRange() = default;
  // From stored nodes: the complete subtrees of a tree of `size` leaves.
  static Result<CompactRange> Load(std::uint64_t size, const NodeFn& node);

  std::uint64_t size() const { return size_; }
  // Appends a leaf hash; returns every node it completes, leaf first.
  std::vector<Node> Append(const Digest& leaf_hash);
  Digest Root() const;
  // The node ids of the right edge of a tree of `size` leaves.
  static std::vector<NodeId> EdgeOf(std::uint64_t size);

 private:
  std::uint64_t size_ = 0;
  std::vector<Digest> edge_;  // largest subtree first
};

}  // namespace modelreg::merkle
