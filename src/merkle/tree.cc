#include "merkle/tree.h"

#include <bit>
#include <string>

namespace modelreg::merkle {

namespace {

constexpr std::uint8_t kLeafPrefix = 0x00;
constexpr std::uint8_t kNodePrefix = 0x01;

bool IsPowerOfTwo(std::uint64_t n) { return n != 0 && (n & (n - 1)) == 0; }

Status Fail(std::string what) { return Status::InvalidArgument(std::move(what)); }

// PATH(m, D[begin:end]) of RFC 6962 §2.1.1, appended leaf side first.
Status AppendPath(std::uint64_t m, std::uint64_t begin, std::uint64_t end, const NodeFn& node,
                  std::vector<Digest>* out) {
  const std::uint64_t n = end - begin;
  if (n <= 1) return Status::OK();
  const std::uint64_t k = SplitPoint(n);
  if (m < k) {
    MODELREG_RETURN_IF_ERROR(AppendPath(m, begin, begin + k, node, out));
    auto right = RangeHash(begin + k, end, node);
    if (!right) return right.error();
    out->push_back(*right);
  } else {
    MODELREG_RETURN_IF_ERROR(AppendPath(m - k, begin + k, end, node, out));
    auto left = RangeHash(begin, begin + k, node);
    if (!left) return left.error();
    out->push_back(*left);
  }
  return Status::OK();
}

// SUBPROOF(m, D[begin:end], b) of RFC 6962 §2.1.2.
Status AppendSubproof(std::uint64_t m, std::uint64_t begin, std::uint64_t end, bool complete,
                      const NodeFn& node, std::vector<Digest>* out) {
  const std::uint64_t n = end - begin;
  if (m == n) {
    if (complete) return Status::OK();
    auto whole = RangeHash(begin, end, node);
    if (!whole) return whole.error();
    out->push_back(*whole);
    return Status::OK();
  }
  const std::uint64_t k = SplitPoint(n);
  if (m <= k) {
    MODELREG_RETURN_IF_ERROR(AppendSubproof(m, begin, begin + k, complete, node, out));
    auto right = RangeHash(begin + k, end, node);
    if (!right) return right.error();
    out->push_back(*right);
  } else {
    MODELREG_RETURN_IF_ERROR(AppendSubproof(m - k, begin + k, end, false, node, out));
    auto left = RangeHash(begin, begin + k, node);
    if (!left) return left.error();
    out->push_back(*left);
  }
  return Status::OK();
}

}  // namespace

Digest EmptyRoot() { return Sha256::Of(""); }

Digest HashLeaf(std::string_view leaf_data) {
  Sha256 h;
  const std::uint8_t prefix = kLeafPrefix;
  h.Update(std::span<const std::uint8_t>(&prefix, 1));
  h.Update(leaf_data);
  return h.Finish();
}

Digest HashChildren(const Digest& left, const Digest& right) {
  // One buffer, one update: this runs ~2 times per append and ~20 times
  // per proof.
  std::array<std::uint8_t, 65> buf;
  buf[0] = kNodePrefix;
  std::copy(left.begin(), left.end(), buf.begin() + 1);
  std::copy(right.begin(), right.end(), buf.begin() + 33);
  Sha256 h;
  h.Update(std::span<const std::uint8_t>(buf));
  return h.Finish();
}

std::uint64_t SplitPoint(std::uint64_t n) {
  // n >= 2: the highest set bit of n - 1.
  return std::uint64_t{1} << (63 - std::countl_zero(n - 1));
}

Result<Digest> RangeHash(std::uint64_t begin, std::uint64_t end, const NodeFn& node) {
  if (end <= begin) return Err(Status::Internal("empty Merkle range"));
  const std::uint64_t n = end - begin;
  if (IsPowerOfTwo(n) && begin % n == 0) {
    const int level = std::countr_zero(n);
    return node(NodeId{level, begin >> level});
  }
  const std::uint64_t k = SplitPoint(n);
  auto left = RangeHash(begin, begin + k, node);
  if (!left) return left;
  auto right = RangeHash(begin + k, end, node);
  if (!right) return right;
  return HashChildren(*left, *right);
}

Result<Digest> RootAt(std::uint64_t size, const NodeFn& node) {
  if (size == 0) return EmptyRoot();
  return RangeHash(0, size, node);
}

Result<std::vector<Digest>> InclusionProof(std::uint64_t index, std::uint64_t size,
                                           const NodeFn& node) {
  if (index >= size) {
    return Err(Status::InvalidArgument("leaf index " + std::to_string(index) +
                                       " is not in a tree of size " + std::to_string(size)));
  }
  std::vector<Digest> out;
  MODELREG_RETURN_IF_ERROR(AppendPath(index, 0, size, node, &out));
  return out;
}

Result<std::vector<Digest>> ConsistencyProof(std::uint64_t size1, std::uint64_t size2,
                                             const NodeFn& node) {
  if (size1 == 0 || size1 > size2) {
    return Err(Status::InvalidArgument("no consistency proof from size " + std::to_string(size1) +
                                       " to size " + std::to_string(size2)));
  }
  std::vector<Digest> out;
  if (size1 == size2) return out;
  MODELREG_RETURN_IF_ERROR(AppendSubproof(size1, 0, size2, true, node, &out));
  return out;
}

Status VerifyInclusion(std::uint64_t index, std::uint64_t size, const Digest& leaf_hash,
                       std::span<const Digest> proof, const Digest& root) {
  if (index >= size) {
    return Fail("leaf index " + std::to_string(index) + " is not in a tree of size " +
                std::to_string(size));
  }
  std::uint64_t fn = index;
  std::uint64_t sn = size - 1;
  Digest r = leaf_hash;
  for (const Digest& p : proof) {
    if (sn == 0) return Fail("the inclusion proof is longer than the tree is deep");
    if ((fn & 1) != 0 || fn == sn) {
      r = HashChildren(p, r);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      r = HashChildren(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return Fail("the inclusion proof is shorter than the tree is deep");
  if (r != root) return Fail("the inclusion proof leads to another root hash");
  return Status::OK();
}

Status VerifyConsistency(std::uint64_t size1, std::uint64_t size2, const Digest& root1,
                         const Digest& root2, std::span<const Digest> proof) {
  if (size1 > size2) {
    return Fail("tree size " + std::to_string(size2) + " is smaller than " +
                std::to_string(size1) + ": the log lost entries");
  }
  if (size1 == size2) {
    if (!proof.empty()) return Fail("a consistency proof between equal sizes must be empty");
    if (root1 != root2) return Fail("same tree size, different root hashes");
    return Status::OK();
  }
  if (size1 == 0) return Fail("a consistency proof from the empty tree proves nothing");
  if (proof.empty()) return Fail("the consistency proof is empty");

  std::vector<Digest> path;
  path.reserve(proof.size() + 1);
  if (IsPowerOfTwo(size1)) path.push_back(root1);
  path.insert(path.end(), proof.begin(), proof.end());

  std::uint64_t fn = size1 - 1;
  std::uint64_t sn = size2 - 1;
  while ((fn & 1) != 0) {
    fn >>= 1;
    sn >>= 1;
  }
  Digest fr = path[0];
  Digest sr = path[0];
  for (std::size_t i = 1; i < path.size(); ++i) {
    const Digest& c = path[i];
    if (sn == 0) return Fail("the consistency proof is longer than the tree is deep");
    if ((fn & 1) != 0 || fn == sn) {
      fr = HashChildren(c, fr);
      sr = HashChildren(c, sr);
      if ((fn & 1) == 0) {
        while ((fn & 1) == 0 && fn != 0) {
          fn >>= 1;
          sn >>= 1;
        }
      }
    } else {
      sr = HashChildren(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  if (sn != 0) return Fail("the consistency proof is shorter than the tree is deep");
  if (fr != root1) {
    return Fail("the tree of size " + std::to_string(size1) +
                " is not a prefix of this one: its root hash differs");
  }
  if (sr != root2) return Fail("the consistency proof leads to another root hash");
  return Status::OK();
}

std::vector<NodeId> CompactRange::EdgeOf(std::uint64_t size) {
  std::vector<NodeId> out;
  std::uint64_t begin = 0;
  for (int level = 63; level >= 0; --level) {
    const std::uint64_t width = std::uint64_t{1} << level;
    if ((size & width) != 0) {
      out.push_back(NodeId{level, begin >> level});
      begin += width;
    }
  }
  return out;
}

Result<CompactRange> CompactRange::Load(std::uint64_t size, const NodeFn& node) {
  CompactRange range;
  range.size_ = size;
  for (const NodeId& id : EdgeOf(size)) {
    auto hash = node(id);
    if (!hash) return Err(hash.error());
    range.edge_.push_back(*hash);
  }
  return range;
}

std::vector<CompactRange::Node> CompactRange::Append(const Digest& leaf_hash) {
  std::vector<Node> done;
  std::uint64_t index = size_;
  int level = 0;
  Digest hash = leaf_hash;
  done.push_back(Node{NodeId{0, index}, hash});
  // Every trailing set bit of the old size is a subtree this leaf completes.
  while ((index & 1) != 0) {
    hash = HashChildren(edge_.back(), hash);
    edge_.pop_back();
    index >>= 1;
    ++level;
    done.push_back(Node{NodeId{level, index}, hash});
  }
  edge_.push_back(hash);
  ++size_;
  return done;
}

Digest CompactRange::Root() const {
  if (edge_.empty()) return EmptyRoot();
  Digest r = edge_.back();
  for (std::size_t i = edge_.size() - 1; i-- > 0;) r = HashChildren(edge_[i], r);
  return r;
}

}  // namespace modelreg::merkle
