// The Merkle tree (merkle/tree.h) against published RFC 6962 test data and
// against a plain recursive reference over every small tree shape.
//
// Test vectors: the leaf inputs, node hashes and root hashes of
// transparency-dev/merkle testonly/constants.go (LeafInputs, NodeHashes,
// RootHashes), and the inclusion and consistency proofs of
// transparency-dev/merkle proof/verify_test.go (inclusionProofs,
// consistencyProofs) — the same data Certificate Transparency's and
// Trillian's test suites publish. Copied as data only.
#include "merkle/tree.h"

#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <vector>

namespace modelreg::merkle {
namespace {

std::string Unhex(std::string_view hex) {
  std::string out;
  for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(std::string(hex.substr(i, 2)), nullptr, 16)));
  }
  return out;
}

Digest D(std::string_view hex) {
  auto d = DigestFromHex(hex);
  EXPECT_TRUE(d.has_value()) << hex;
  return d.value_or(Digest{});
}

const std::vector<std::string> kLeafInputs = {
    "", "00", "10", "2021", "3031", "40414243", "5051525354555657",
    "606162636465666768696a6b6c6d6e6f"};

// RootHashes(), tree sizes 0..8.
const std::vector<std::string> kRoots = {
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"};

// NodeHashes(): [level][index] of every complete subtree of the 8 leaves.
const std::vector<std::vector<std::string>> kNodes = {
    {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
     "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
     "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
     "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
     "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
     "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
     "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
     "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1"},
    {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
     "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
     "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
     "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"},
    {"d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
     "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"},
    {"5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"}};

struct ProofVector {
  std::uint64_t a;  // inclusion: leaf number (1-based, as published); consistency: size1
  std::uint64_t b;  // tree size / size2
  std::vector<std::string> proof;
};

const std::vector<ProofVector> kInclusion = {
    {1, 1, {}},
    {1, 8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6, 8,
     {"bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {3, 3, {"fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"}},
    {2, 5,
     {"6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
};

const std::vector<ProofVector> kConsistency = {
    {1, 1, {}},
    {1, 8,
     {"96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"}},
    {6, 8,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
    {2, 5,
     {"5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"}},
    {6, 7,
     {"0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"}},
};

std::vector<Digest> Digests(const std::vector<std::string>& hex) {
  std::vector<Digest> out;
  for (const auto& h : hex) out.push_back(D(h));
  return out;
}

// A tree grown leaf by leaf through CompactRange, its nodes kept in a map:
// what the event store does with RocksDB rows.
struct MapTree {
  CompactRange range;
  std::map<std::pair<int, std::uint64_t>, Digest> nodes;
  std::vector<Digest> leaves;

  void Add(const Digest& leaf) {
    leaves.push_back(leaf);
    for (const auto& n : range.Append(leaf)) nodes[{n.id.level, n.id.index}] = n.hash;
  }
  NodeFn Fn() const {
    return [this](NodeId id) -> Result<Digest> {
      auto it = nodes.find({id.level, id.index});
      if (it == nodes.end()) return Err(Status::NotFound("no node"));
      return it->second;
    };
  }
};

// RFC 6962 MTH, written out as the RFC states it.
Digest ReferenceRoot(const std::vector<Digest>& leaves, std::size_t begin, std::size_t end) {
  if (end - begin == 1) return leaves[begin];
  std::size_t k = 1;
  while (k * 2 < end - begin) k *= 2;
  return HashChildren(ReferenceRoot(leaves, begin, begin + k), ReferenceRoot(leaves, begin + k, end));
}

MapTree ReferenceTree() {
  MapTree t;
  for (const auto& in : kLeafInputs) t.Add(HashLeaf(Unhex(in)));
  return t;
}

TEST(MerkleTest, RootsAndNodesMatchThePublishedVectors) {
  EXPECT_EQ(ToHex(EmptyRoot()), kRoots[0]);
  MapTree t;
  EXPECT_EQ(ToHex(t.range.Root()), kRoots[0]);
  for (std::size_t i = 0; i < kLeafInputs.size(); ++i) {
    t.Add(HashLeaf(Unhex(kLeafInputs[i])));
    EXPECT_EQ(ToHex(t.range.Root()), kRoots[i + 1]) << "size " << i + 1;
    auto root = RootAt(i + 1, t.Fn());
    ASSERT_TRUE(root.has_value()) << root.error().ToString();
    EXPECT_EQ(ToHex(*root), kRoots[i + 1]) << "size " << i + 1;
  }
  std::size_t count = 0;
  for (std::size_t level = 0; level < kNodes.size(); ++level) {
    for (std::size_t index = 0; index < kNodes[level].size(); ++index, ++count) {
      auto it = t.nodes.find({static_cast<int>(level), index});
      ASSERT_NE(it, t.nodes.end()) << level << "/" << index;
      EXPECT_EQ(ToHex(it->second), kNodes[level][index]) << level << "/" << index;
    }
  }
  EXPECT_EQ(t.nodes.size(), count) << "every complete subtree, nothing else";
  // A range reloaded from the stored nodes continues the same tree.
  auto loaded = CompactRange::Load(5, t.Fn());
  ASSERT_TRUE(loaded.has_value());
  EXPECT_EQ(ToHex(loaded->Root()), kRoots[5]);
}

TEST(MerkleTest, TheSplitIsTheLargestPowerOfTwoBelow) {
  const std::map<std::uint64_t, std::uint64_t> want = {
      {2, 1}, {3, 2}, {4, 2}, {5, 4}, {8, 4}, {9, 8}, {1000, 512}, {(1ULL << 63) + 1, 1ULL << 63}};
  for (const auto& [n, k] : want) EXPECT_EQ(SplitPoint(n), k) << n;
}

TEST(MerkleTest, InclusionProofsMatchThePublishedVectors) {
  const MapTree t = ReferenceTree();
  for (const auto& v : kInclusion) {
    const std::uint64_t index = v.a - 1;
    auto proof = InclusionProof(index, v.b, t.Fn());
    ASSERT_TRUE(proof.has_value()) << proof.error().ToString();
    EXPECT_EQ(*proof, Digests(v.proof)) << "leaf " << v.a << " of " << v.b;
    EXPECT_TRUE(VerifyInclusion(index, v.b, t.leaves[index], Digests(v.proof), D(kRoots[v.b])).ok());
  }
}

TEST(MerkleTest, ConsistencyProofsMatchThePublishedVectors) {
  const MapTree t = ReferenceTree();
  for (const auto& v : kConsistency) {
    auto proof = ConsistencyProof(v.a, v.b, t.Fn());
    ASSERT_TRUE(proof.has_value()) << proof.error().ToString();
    EXPECT_EQ(*proof, Digests(v.proof)) << v.a << " -> " << v.b;
    Status ok = VerifyConsistency(v.a, v.b, D(kRoots[v.a]), D(kRoots[v.b]), Digests(v.proof));
    EXPECT_TRUE(ok.ok()) << v.a << " -> " << v.b << ": " << ok.ToString();
  }
}

// The corruptions the published test generator applies to every vector.
TEST(MerkleTest, CorruptedInclusionProofsFail) {
  const MapTree t = ReferenceTree();
  const Digest some = D("abacaba000000000000000000000000000000000000000000060061e00123456");
  for (const auto& v : kInclusion) {
    const std::uint64_t i = v.a - 1;
    const std::uint64_t n = v.b;
    const Digest root = D(kRoots[n]);
    const Digest leaf = t.leaves[i];
    const std::vector<Digest> p = Digests(v.proof);
    auto fails = [&](std::uint64_t index, std::uint64_t size, const Digest& l,
                     const std::vector<Digest>& proof, const Digest& r, const char* what) {
      EXPECT_FALSE(VerifyInclusion(index, size, l, proof, r).ok())
          << what << " (leaf " << v.a << " of " << v.b << ")";
    };
    fails(i - 1, n, leaf, p, root, "index - 1");
    fails(i + 1, n, leaf, p, root, "index + 1");
    fails(i ^ 2, n, leaf, p, root, "index ^ 2");
    fails(i, n * 2, leaf, p, root, "size * 2");
    fails(i, n / 2, leaf, p, root, "size / 2");
    fails(i, n, HashLeaf("WrongLeaf"), p, root, "wrong leaf");
    fails(i, n, leaf, p, EmptyRoot(), "empty root");
    fails(i, n, leaf, p, some, "random root");
    auto with_end = p;
    with_end.push_back(root);
    fails(i, n, leaf, with_end, root, "trailing root");
    auto with_front = p;
    with_front.insert(with_front.begin(), root);
    fails(i, n, leaf, with_front, root, "preceding root");
    for (std::size_t k = 0; k < p.size(); ++k) {
      auto flipped = p;
      flipped[k][0] ^= 8;
      fails(i, n, leaf, flipped, root, "bit flipped");
    }
    if (!p.empty()) fails(i, n, leaf, {p.begin(), p.end() - 1}, root, "removed component");
    if (p.size() > 1) {
      std::vector<Digest> inserted = {p[0], some};
      inserted.insert(inserted.end(), p.begin() + 1, p.end());
      fails(i, n, leaf, inserted, root, "inserted component");
    }
  }
}

TEST(MerkleTest, CorruptedConsistencyProofsFail) {
  const Digest some = D("abacaba000000000000000000000000000000000000000000060061e00123456");
  for (const auto& v : kConsistency) {
    if (v.proof.empty()) continue;
    const std::uint64_t m = v.a;
    const std::uint64_t n = v.b;
    const Digest r1 = D(kRoots[m]);
    const Digest r2 = D(kRoots[n]);
    const std::vector<Digest> p = Digests(v.proof);
    auto fails = [&](std::uint64_t s1, std::uint64_t s2, const Digest& a, const Digest& b,
                     const std::vector<Digest>& proof, const char* what) {
      EXPECT_FALSE(VerifyConsistency(s1, s2, a, b, proof).ok())
          << what << " (" << v.a << " -> " << v.b << ")";
    };
    fails(m - 1, n, r1, r2, p, "size1 - 1");
    fails(m + 1, n, r1, r2, p, "size1 + 1");
    fails(m ^ 2, n, r1, r2, p, "size1 ^ 2");
    fails(m, n * 2, r1, r2, p, "size2 * 2");
    fails(m, n / 2, r1, r2, p, "size2 / 2");
    fails(m, n, some, r2, p, "wrong root1");
    fails(m, n, r1, some, p, "wrong root2");
    fails(m, n, r2, r1, p, "swapped roots");
    fails(m, n, r1, r2, {}, "empty proof");
    for (const Digest& extra : {r1, r2}) {
      auto end = p;
      end.push_back(extra);
      fails(m, n, r1, r2, end, "trailing root");
      auto front = p;
      front.insert(front.begin(), extra);
      fails(m, n, r1, r2, front, "preceding root");
    }
    auto front0 = p;
    front0.insert(front0.begin(), p[0]);
    fails(m, n, r1, r2, front0, "preceding proof[0]");
    fails(m, n, r1, r2, {p.begin(), p.end() - 1}, "truncated proof");
    for (std::size_t k = 0; k < p.size(); ++k) {
      auto flipped = p;
      flipped[k][0] ^= 16;
      fails(m, n, r1, r2, flipped, "bit flipped");
    }
  }
  // The static cases of the same generator.
  const Digest a = Sha256::Of("don't care 1");
  const Digest b = Sha256::Of("don't care 2");
  EXPECT_FALSE(VerifyConsistency(0, 0, a, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(1, 1, a, b, {}).ok());
  EXPECT_TRUE(VerifyConsistency(0, 0, a, a, {}).ok());
  EXPECT_FALSE(VerifyConsistency(0, 1, a, b, {}).ok());
  EXPECT_TRUE(VerifyConsistency(1, 1, b, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(1, 0, a, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(2, 1, a, b, {}).ok());
  EXPECT_FALSE(VerifyConsistency(1, 2, a, b, {}).ok());
  const std::vector<Digest> one = {EmptyRoot()};
  EXPECT_FALSE(VerifyConsistency(0, 0, EmptyRoot(), EmptyRoot(), one).ok());
  EXPECT_FALSE(VerifyConsistency(1, 1, EmptyRoot(), EmptyRoot(), one).ok());
  EXPECT_FALSE(VerifyConsistency(0, 1, EmptyRoot(), EmptyRoot(), one).ok());
}

// Every tree size up to 70 (every shape of the recursion, several levels
// deep) against the RFC's recursion: roots, every inclusion proof, every
// consistency proof, and a proof for one tree never checks against another.
TEST(MerkleTest, EverySmallTreeAgreesWithTheReferenceRecursion) {
  MapTree t;
  std::mt19937_64 rng(19);
  constexpr std::size_t kMax = 70;
  for (std::size_t i = 0; i < kMax; ++i) t.Add(HashLeaf(std::to_string(rng())));
  std::vector<Digest> roots = {EmptyRoot()};
  for (std::size_t n = 1; n <= kMax; ++n) {
    roots.push_back(ReferenceRoot(t.leaves, 0, n));
    auto root = RootAt(n, t.Fn());
    ASSERT_TRUE(root.has_value());
    ASSERT_EQ(*root, roots[n]) << "size " << n;
  }
  for (std::size_t n = 1; n <= kMax; ++n) {
    for (std::size_t i = 0; i < n; ++i) {
      auto proof = InclusionProof(i, n, t.Fn());
      ASSERT_TRUE(proof.has_value());
      ASSERT_TRUE(VerifyInclusion(i, n, t.leaves[i], *proof, roots[n]).ok()) << i << "/" << n;
      if (n > 1) {
        ASSERT_FALSE(VerifyInclusion(i, n, t.leaves[(i + 1) % n], *proof, roots[n]).ok());
        ASSERT_FALSE(VerifyInclusion(i, n, t.leaves[i], *proof, roots[n - 1]).ok());
      }
    }
    for (std::size_t m = 1; m <= n; ++m) {
      auto proof = ConsistencyProof(m, n, t.Fn());
      ASSERT_TRUE(proof.has_value());
      Status ok = VerifyConsistency(m, n, roots[m], roots[n], *proof);
      ASSERT_TRUE(ok.ok()) << m << " -> " << n << ": " << ok.ToString();
      if (m < n) {
        // Another log's prefix of the same size does not pass.
        ASSERT_FALSE(VerifyConsistency(m, n, Sha256::Of("other"), roots[n], *proof).ok());
      }
    }
  }
}

TEST(MerkleTest, ProofsRefuseIndexesOutsideTheTree) {
  const MapTree t = ReferenceTree();
  EXPECT_FALSE(InclusionProof(8, 8, t.Fn()).has_value());
  EXPECT_FALSE(ConsistencyProof(0, 8, t.Fn()).has_value());
  EXPECT_FALSE(ConsistencyProof(5, 4, t.Fn()).has_value());
  // A missing stored node is an error, not a wrong hash.
  auto missing = InclusionProof(3, 9, t.Fn());
  ASSERT_FALSE(missing.has_value());
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
}

}  // namespace
}  // namespace modelreg::merkle
