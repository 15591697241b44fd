// Signed notes (note/note.h) against the reference example of Go's
// golang.org/x/mod/sumdb/note (the PeterNeumann key and note published in
// its package documentation and note_test.go), copied as data: Ed25519 is
// deterministic, so our signature must be that note byte for byte.
#include "note/note.h"

#include "note/checkpoint.h"

#include <gtest/gtest.h>

#include <string>

#include "common/base64.h"
#include "common/sha256.h"

namespace modelreg::note {
namespace {

const std::string kSigner =
    "PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
const std::string kVerifier = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
const std::string kText =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
const std::string kNote =
    kText + "\n" +
    "\xE2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";

TEST(NoteTest, TheGoReferenceNoteIsReproducedByteForByte) {
  auto signer = ParseSignerKey(kSigner);
  ASSERT_TRUE(signer) << signer.error().ToString();
  EXPECT_EQ(EncodeSignerKey(*signer), kSigner);
  EXPECT_EQ(EncodeVerifierKey(signer->verifier), kVerifier);
  auto note = Sign(kText, *signer);
  ASSERT_TRUE(note) << note.error().ToString();
  EXPECT_EQ(*note, kNote);
  auto verifier = ParseVerifierKey(kVerifier);
  ASSERT_TRUE(verifier);
  auto text = Open(kNote, *verifier);
  ASSERT_TRUE(text) << text.error().ToString();
  EXPECT_EQ(*text, kText);
}

TEST(NoteTest, AlteredNotesAndOtherKeysAreRefused) {
  auto verifier = ParseVerifierKey(kVerifier);
  ASSERT_TRUE(verifier);
  // Every single-byte change of the text fails (or no longer parses).
  for (std::size_t i = 0; i < kText.size(); ++i) {
    std::string bad = kNote;
    bad[i] = static_cast<char>(bad[i] ^ 0x01);
    EXPECT_FALSE(Open(bad, *verifier)) << "byte " << i;
  }
  std::string flipped_sig = kNote;
  flipped_sig[flipped_sig.size() - 10] = flipped_sig[flipped_sig.size() - 10] == 'A' ? 'B' : 'A';
  auto r = Open(flipped_sig, *verifier);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kPermissionDenied);

  auto other = GenerateKey("PeterNeumann");
  ASSERT_TRUE(other);
  auto by_other = Open(kNote, other->verifier);
  ASSERT_FALSE(by_other);
  EXPECT_EQ(by_other.error().code(), Code::kNotFound) << by_other.error().ToString();
  // A note signed by another key under the same name does not pass either.
  auto forged = Sign(kText, *other);
  ASSERT_TRUE(forged);
  EXPECT_FALSE(Open(*forged, *verifier));
  // Another signer's line beside ours is ignored.
  auto two = Sign(kText, *other);
  ASSERT_TRUE(two);
  std::string both = kNote + two->substr(kText.size() + 1);
  EXPECT_TRUE(Open(both, *verifier)) << both;
  EXPECT_TRUE(Open(both, other->verifier));

  for (const std::string& malformed :
       {std::string(), kText, kText + "\n", kText + "\n-- PeterNeumann abc=\n",
        kNote.substr(0, kNote.size() - 1), "\n\n" + kNote.substr(kText.size() + 1)}) {
    EXPECT_FALSE(Open(malformed, *verifier)) << malformed;
  }
  EXPECT_EQ(Open(std::string(2u << 20, 'a'), *verifier).error().code(), Code::kInvalidArgument);
}

TEST(NoteTest, TextsAndKeysAreChecked) {
  auto key = GenerateKey("registry.example/models");
  ASSERT_TRUE(key);
  for (const std::string& bad : {std::string(), std::string("no newline"), std::string("a\n\nb\n"),
                                 std::string("tab\there\n"), std::string("\xff\xfe\n")}) {
    EXPECT_FALSE(Sign(bad, *key)) << bad;
  }
  EXPECT_FALSE(GenerateKey("has space"));
  EXPECT_FALSE(GenerateKey("has+plus"));
  EXPECT_FALSE(GenerateKey(""));
  // A generated key round-trips through its text forms.
  auto again = ParseSignerKey(EncodeSignerKey(*key) + "\n");
  ASSERT_TRUE(again);
  EXPECT_EQ(again->verifier.public_key, key->verifier.public_key);
  auto v = ParseVerifierKey(EncodeVerifierKey(key->verifier));
  ASSERT_TRUE(v);
  auto note = Sign("hello\n", *key);
  ASSERT_TRUE(note);
  EXPECT_EQ(*Open(*note, *v), "hello\n");
  // Mangled keys: a wrong id, a wrong algorithm, a truncated key.
  EXPECT_FALSE(ParseVerifierKey("PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"));
  EXPECT_FALSE(ParseVerifierKey("PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"));
  EXPECT_FALSE(ParseVerifierKey("PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10"));
  EXPECT_FALSE(ParseSignerKey(kVerifier));
  auto err = ParseSignerKey("PRIVATE+KEY+PeterNeumann+c74f20a3+AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFy");
  ASSERT_FALSE(err);
  EXPECT_EQ(err.error().message().find("AYEKF"), std::string::npos) << "never echo a private key";
}

// The checkpoint text of C2SP tlog-checkpoint: origin, size, base64 root,
// then extension lines; signed as a note and read back.
TEST(CheckpointTest, SignedCheckpointsRoundTripAndRefuseChanges) {
  auto key = ParseSignerKey(kSigner);
  ASSERT_TRUE(key);
  Checkpoint c;
  c.origin = "modelreg.example/registry/0f3a";
  c.size = 1234;
  c.root = Sha256::Of("root");
  c.time = 1'736'933'400'000'000'000LL;
  auto text = CheckpointText(c);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text, "modelreg.example/registry/0f3a\n1234\n" +
                       Base64Encode(std::string(reinterpret_cast<const char*>(c.root.data()), 32)) +
                       "\ntime 2025-01-15T09:30:00Z\n");
  auto signed_note = SignCheckpoint(c, *key);
  ASSERT_TRUE(signed_note);
  auto back = OpenCheckpoint(*signed_note, key->verifier);
  ASSERT_TRUE(back) << back.error().ToString();
  EXPECT_EQ(back->origin, c.origin);
  EXPECT_EQ(back->size, c.size);
  EXPECT_EQ(back->root, c.root);
  EXPECT_EQ(back->time, c.time);
  // A size changed after signing: the signature no longer verifies.
  std::string grown = *signed_note;
  grown.replace(grown.find("\n1234\n"), 6, "\n1235\n");
  EXPECT_EQ(OpenCheckpoint(grown, key->verifier).error().code(), Code::kPermissionDenied);
  // Malformed texts.
  for (const std::string& bad : {std::string("o\n12\n"), std::string("o\n012\nAAAA\n"),
                                 std::string("o\n-1\n") + text->substr(text->find('\n', 32) + 1),
                                 std::string("o\n1\nnotbase64\n"), std::string("\n1\nAAAA\n")}) {
    EXPECT_FALSE(ParseCheckpoint(bad)) << bad;
  }
  Checkpoint two_lines = c;
  two_lines.origin = "a\nb";
  EXPECT_FALSE(CheckpointText(two_lines));
}

TEST(Base64Test, OnlyTheCanonicalEncodingDecodes) {
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  EXPECT_EQ(*Base64Decode("aGVsbG8="), "hello");
  EXPECT_EQ(*Base64Decode(""), "");
  for (const char* bad : {"aGVsbG8", "aGVsbG9=", "aGVs bG8=", "aGVsbG8=\n", "a=Vs", "aGVsbG8==",
                          "aGV-bG8="}) {
    EXPECT_FALSE(Base64Decode(bad)) << bad;
  }
}

}  // namespace
}  // namespace modelreg::note
