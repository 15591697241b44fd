#include <gtest/gtest.h>

#include <rocksdb/db.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <set>
#include <thread>

#include "common/bytes.h"
#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"
#include "merkle/tree.h"
#include "support/raw_db.h"
#include "support/run.h"
#include "support/temp_dir.h"

namespace modelreg {
namespace {

using testing::NoCreate;
using testing::ReadOnly;
[[maybe_unused]] constexpr auto WithFamilies = testing::WithFamilies;

constexpr TimeNs kT0 = 1'736'933'400'000'000'000LL;  // 2025-01-15T09:30:00Z
constexpr TimeNs kSec = 1'000'000'000LL;

std::string SampleDraft(std::uint64_t i, const std::string& id = NewEventId()) {
  return events::Draft({"tester", id, 0},
                       events::SampleRegistration("risk_model", "v1.0." + std::to_string(i), i));
}

class EventStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { Reopen(); }

  void Reopen(StoreOptions options = {}) {
    store_.reset();
    options.clock = &clock_;
    auto s = EventStore::Open(dir_.sub("log"), options);
    ASSERT_TRUE(s) << s.error().ToString();
    store_ = std::move(*s);
  }

  AppendResult Append(std::uint64_t i) {
    auto r = store_->Append({SampleDraft(i), std::nullopt, nullptr});
    EXPECT_TRUE(r) << r.error().ToString();
    return r.value_or(AppendResult{});
  }

  std::vector<Seq> ScanSeqs(Seq from, Seq to) {
    std::vector<Seq> out;
    Status st = store_->Scan(from, to, [&](Seq s, const EventBuffer& e) {
      EXPECT_EQ(e.event().sequence(), s);
      out.push_back(s);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  std::vector<Seq> ScanTimeSeqs(TimeNs from, TimeNs to) {
    std::vector<Seq> out;
    Status st = store_->ScanTime(from, to, [&](Seq s, const EventBuffer&) {
      out.push_back(s);
      return true;
    });
    EXPECT_TRUE(st.ok()) << st.ToString();
    return out;
  }

  testing::TempDir dir_;
  ManualClock clock_{kT0};
  std::unique_ptr<EventStore> store_;
};

TEST_F(EventStoreTest, EmptyLog) {
  EXPECT_EQ(store_->head().seq, 0u);
  EXPECT_EQ(store_->Get(1).error().code(), Code::kNotFound);
  EXPECT_TRUE(ScanSeqs(1, 100).empty());
  EXPECT_EQ(*store_->SeqAtOrBefore(kT0), 0u);
  auto v = store_->Verify();
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok);
  EXPECT_EQ(v->events, 0u);
}

TEST_F(EventStoreTest, AppendAssignsSequenceTimeAndChain) {
  const std::string draft = SampleDraft(1, "id-1");
  auto r1 = store_->Append({draft, Seq{0}, nullptr});
  ASSERT_TRUE(r1) << r1.error().ToString();
  EXPECT_EQ(r1->seq, 1u);
  EXPECT_EQ(r1->recorded_at, kT0);
  EXPECT_FALSE(r1->duplicate);
  clock_.Advance(kSec);
  auto r2 = Append(2);
  EXPECT_EQ(r2.seq, 2u);

  auto e1 = store_->Get(1);
  ASSERT_TRUE(e1);
  EXPECT_EQ(e1->event().sequence(), 1u);
  EXPECT_EQ(e1->event().recorded_at(), kT0);
  EXPECT_EQ(e1->event().event_id()->str(), "id-1");
  EXPECT_EQ(e1->event().actor()->str(), "tester");
  const auto* prev1 = e1->event().prev_hash()->bytes();
  EXPECT_TRUE(std::all_of(prev1->begin(), prev1->end(), [](auto b) { return b == 0; }));
  auto e2 = store_->Get(2);
  ASSERT_TRUE(e2);
  Digest prev2{};
  std::copy(e2->event().prev_hash()->bytes()->begin(), e2->event().prev_hash()->bytes()->end(),
            prev2.begin());
  EXPECT_EQ(prev2, r1->hash);
  // hash(n) = SHA-256(prev_hash(n) || bytes(n))
  Sha256 h;
  h.Update(std::span<const std::uint8_t>(prev2.data(), prev2.size()));
  h.Update(e2->bytes());
  EXPECT_EQ(h.Finish(), r2.hash);
  EXPECT_EQ(store_->head().seq, 2u);
  EXPECT_EQ(store_->head().hash, r2.hash);
  // Payload intact.
  auto j = events::ToJson(*e2);
  EXPECT_EQ(j["payload"]["version"], "v1.0.2");
}

TEST_F(EventStoreTest, RecordedAtNeverGoesBackwards) {
  Append(1);
  clock_.Set(kT0 - 3600 * kSec);  // wall clock steps back an hour
  auto r2 = Append(2);
  EXPECT_EQ(r2.recorded_at, kT0 + 1);
  auto r3 = Append(3);
  EXPECT_EQ(r3.recorded_at, kT0 + 2);
  clock_.Set(kT0 + kSec);
  EXPECT_EQ(Append(4).recorded_at, kT0 + kSec);
}

TEST_F(EventStoreTest, ScanBySequenceAtTheBoundaries) {
  for (int i = 1; i <= 10; ++i) Append(static_cast<std::uint64_t>(i));
  EXPECT_EQ(ScanSeqs(1, 10).size(), 10u);
  EXPECT_EQ(ScanSeqs(0, UINT64_MAX).size(), 10u);
  EXPECT_EQ(ScanSeqs(3, 5), (std::vector<Seq>{3, 4, 5}));
  EXPECT_EQ(ScanSeqs(10, 10), (std::vector<Seq>{10}));
  EXPECT_EQ(ScanSeqs(7, 100), (std::vector<Seq>{7, 8, 9, 10}));
  EXPECT_TRUE(ScanSeqs(11, 20).empty());
  EXPECT_TRUE(ScanSeqs(5, 4).empty());
  // Early stop.
  int seen = 0;
  ASSERT_TRUE(store_->Scan(1, 10, [&](Seq, const EventBuffer&) { return ++seen < 3; }).ok());
  EXPECT_EQ(seen, 3);
}

TEST_F(EventStoreTest, ScanByTimeAtTheBoundaries) {
  // Events at T0, T0+10s, T0+20s, ... T0+40s.
  for (int i = 0; i < 5; ++i) {
    clock_.Set(kT0 + i * 10 * kSec);
    Append(static_cast<std::uint64_t>(i));
  }
  EXPECT_EQ(ScanTimeSeqs(kT0, kT0 + 40 * kSec), (std::vector<Seq>{1, 2, 3, 4, 5}));
  EXPECT_EQ(ScanTimeSeqs(kT0 + 10 * kSec, kT0 + 30 * kSec), (std::vector<Seq>{2, 3, 4}));
  EXPECT_EQ(ScanTimeSeqs(kT0 + 10 * kSec + 1, kT0 + 30 * kSec - 1), (std::vector<Seq>{3}));
  EXPECT_TRUE(ScanTimeSeqs(kT0 - 100 * kSec, kT0 - 1).empty());          // before the first
  EXPECT_TRUE(ScanTimeSeqs(kT0 + 40 * kSec + 1, kT0 + 100 * kSec).empty());  // after the last
  EXPECT_EQ(ScanTimeSeqs(INT64_MIN, INT64_MAX).size(), 5u);

  EXPECT_EQ(*store_->SeqAtOrBefore(kT0 - 1), 0u);
  EXPECT_EQ(*store_->SeqAtOrBefore(kT0), 1u);
  EXPECT_EQ(*store_->SeqAtOrBefore(kT0 + 10 * kSec - 1), 1u);
  EXPECT_EQ(*store_->SeqAtOrBefore(kT0 + 10 * kSec), 2u);
  EXPECT_EQ(*store_->SeqAtOrBefore(kT0 + 1000 * kSec), 5u);
}

TEST_F(EventStoreTest, StaleExpectedHeadIsRejectedAndChangesNothing) {
  Append(1);
  Append(2);
  const Head before = store_->head();
  auto r = store_->Append({SampleDraft(3), Seq{1}, nullptr});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code(), Code::kConflict);
  EXPECT_NE(r.error().message().find("expected the log head at 1 but it is at 2"),
            std::string::npos);
  EXPECT_EQ(store_->head().seq, before.seq);
  EXPECT_EQ(store_->head().hash, before.hash);
  EXPECT_EQ(store_->Get(3).error().code(), Code::kNotFound);
  Reopen();
  EXPECT_EQ(store_->head().seq, 2u);
  auto ok = store_->Append({SampleDraft(3), Seq{2}, nullptr});
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->seq, 3u);
}

TEST_F(EventStoreTest, IdempotentRetryAndConflictingReuse) {
  const std::string draft = SampleDraft(1, "retry-me");
  auto first = store_->Append({draft, std::nullopt, nullptr});
  ASSERT_TRUE(first);
  Append(2);
  // Even with an expected head that no longer holds, a retry is answered.
  auto again = store_->Append({draft, Seq{0}, nullptr});
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->seq, first->seq);
  EXPECT_EQ(again->hash, first->hash);
  EXPECT_EQ(again->recorded_at, first->recorded_at);
  EXPECT_EQ(store_->head().seq, 2u);

  auto reuse = store_->Append({SampleDraft(99, "retry-me"), std::nullopt, nullptr});
  ASSERT_FALSE(reuse);
  EXPECT_EQ(reuse.error().code(), Code::kConflict);
  EXPECT_EQ(store_->head().seq, 2u);

  Reopen();  // permanent: survives reopening
  auto after = store_->Append({draft, std::nullopt, nullptr});
  ASSERT_TRUE(after);
  EXPECT_TRUE(after->duplicate);
  EXPECT_EQ(after->seq, 1u);
}

TEST_F(EventStoreTest, BadDraftsAreRejected) {
  auto garbage = store_->Append({"not an event", std::nullopt, nullptr});
  ASSERT_FALSE(garbage);
  EXPECT_EQ(garbage.error().code(), Code::kInvalidArgument);
  auto no_id = store_->Append(
      {events::Draft({"tester", "", 0}, events::Archive{"t", "v", ""}), std::nullopt, nullptr});
  ASSERT_FALSE(no_id);
  EXPECT_NE(no_id.error().message().find("event_id"), std::string::npos);
  auto no_actor = store_->Append(
      {events::Draft({"", "x", 0}, events::Archive{"t", "v", ""}), std::nullopt, nullptr});
  ASSERT_FALSE(no_actor);
  EXPECT_NE(no_actor.error().message().find("actor"), std::string::npos);
  // A hand-built Event without the store-assigned fields.
  flatbuffers::FlatBufferBuilder fbb;
  auto actor = fbb.CreateString("a");
  auto id = fbb.CreateString("b");
  auto payload = fb::CreateModelArchivedDirect(fbb, "t", "v", "");
  fb::EventBuilder b(fbb);
  b.add_actor(actor);
  b.add_event_id(id);
  b.add_payload_type(fb::Payload::ModelArchived);
  b.add_payload(payload.Union());
  fb::FinishEventBuffer(fbb, b.Finish());
  auto handmade = store_->Append(
      {std::string(reinterpret_cast<const char*>(fbb.GetBufferPointer()), fbb.GetSize()),
       std::nullopt, nullptr});
  ASSERT_FALSE(handmade);
  EXPECT_EQ(handmade.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->head().seq, 0u);
}

TEST_F(EventStoreTest, RowsAreWrittenAtomicallyWithTheEvent) {
  Reopen(WithFamilies({"projection"}));
  RowsFn rows = [](const AppendedEvent& e) -> Result<std::vector<Row>> {
    return std::vector<Row>{{"projection", "last", std::to_string(e.seq)},
                            {"projection", "at:" + std::to_string(e.seq), "x"}};
  };
  auto r = store_->Append({SampleDraft(1), std::nullopt, rows});
  ASSERT_TRUE(r);
  EXPECT_EQ(**store_->GetRow("projection", "last"), "1");
  // A failing callback rejects that append only: no event, no rows.
  RowsFn failing = [](const AppendedEvent&) -> Result<std::vector<Row>> {
    return Err(Status::FailedPrecondition("illegal transition"));
  };
  auto bad = store_->Append({SampleDraft(2), std::nullopt, failing});
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ(store_->head().seq, 1u);
  // A delete row.
  RowsFn del = [](const AppendedEvent&) -> Result<std::vector<Row>> {
    return std::vector<Row>{{"projection", "at:1", std::nullopt}};
  };
  ASSERT_TRUE(store_->Append({SampleDraft(3), std::nullopt, del}));
  EXPECT_FALSE(store_->GetRow("projection", "at:1")->has_value());
  // Rows may not touch the log's own families.
  RowsFn sneaky = [](const AppendedEvent&) -> Result<std::vector<Row>> {
    return std::vector<Row>{{"events", "x", "y"}};
  };
  auto s = store_->Append({SampleDraft(4), std::nullopt, sneaky});
  ASSERT_FALSE(s);
  EXPECT_EQ(s.error().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->head().seq, 2u);
  EXPECT_EQ(store_->GetRow("events", "x").error().code(), Code::kInvalidArgument);
}

TEST_F(EventStoreTest, ReplaceRowsAndRangedScans) {
  Reopen(WithFamilies({"projection"}));
  ASSERT_TRUE(store_->Append({SampleDraft(1), std::nullopt, nullptr}));
  auto put = [](std::string k, std::string v) { return Row{"projection", std::move(k), std::move(v)}; };
  ASSERT_TRUE(store_->ReplaceRows("projection", {put("a", "1"), put("b/1", "2"), put("b/2", "3"),
                                                 put("c", "4")}, 1).ok());
  auto keys = [&](std::string_view begin, std::string_view end) {
    std::string out;
    EXPECT_TRUE(store_->ScanRows("projection", [&](std::string_view k, std::string_view) {
      out += std::string(k) + ";";
      return true;
    }, begin, end).ok());
    return out;
  };
  EXPECT_EQ(keys("", ""), "a;b/1;b/2;c;");
  EXPECT_EQ(keys("b/", "b0"), "b/1;b/2;");
  EXPECT_EQ(keys("b/2", ""), "b/2;c;");
  // Only the given ranges are cleared; a row without a value is deleted.
  ASSERT_TRUE(store_->ReplaceRows("projection", {put("b/3", "5"), Row{"projection", "c", std::nullopt}},
                                  1, {{"b/", "b0"}}).ok());
  EXPECT_EQ(keys("", ""), "a;b/3;");
  // Nothing is written when the head moved.
  Status stale = store_->ReplaceRows("projection", {put("z", "1")}, 7);
  EXPECT_EQ(stale.code(), Code::kConflict);
  EXPECT_EQ(keys("", ""), "a;b/3;");
  // The default range is every row.
  ASSERT_TRUE(store_->ReplaceRows("projection", {put("d", "6")}, 1).ok());
  EXPECT_EQ(keys("", ""), "d;");
}

TEST_F(EventStoreTest, BulkRewriteClearsIngestsAndMerges) {
  Reopen(WithFamilies({"projection"}));
  ASSERT_TRUE(store_->Append({SampleDraft(1), std::nullopt, nullptr}));
  auto put = [](std::string k, std::string v) { return Row{"projection", std::move(k), std::move(v)}; };
  auto rows = [&] {
    std::string out;
    EXPECT_TRUE(store_->ScanRows("projection", [&](std::string_view k, std::string_view v) {
      out += std::string(k) + "=" + std::string(v) + ";";
      return true;
    }).ok());
    return out;
  };
  ASSERT_TRUE(store_->ReplaceRows("projection", {put("old", "1"), put("x/marker", "m")}, 1).ok());
  ASSERT_TRUE(store_->ClearRows("projection", 1).ok());
  EXPECT_EQ(rows(), "");
  // Unsorted input; of equal keys the last wins; a row without a value
  // deletes what an earlier run wrote.
  std::vector<Row> first = {put("b", "1"), put("a", "1"), put("b", "2"), put("c", "1")};
  ASSERT_TRUE(store_->IngestRows("projection", first, 1).ok());
  EXPECT_EQ(rows(), "a=1;b=2;c=1;");
  // A file left under the ingest name (a killed process: a hard link to a
  // live table file) is unlinked, not truncated, by the next ingest.
  const std::filesystem::path leftover = std::filesystem::path(dir_.sub("log")) / "ingest.sst.tmp";
  for (const auto& entry : std::filesystem::directory_iterator(dir_.sub("log"))) {
    if (entry.path().extension() == ".sst") {
      std::filesystem::create_hard_link(entry.path(), leftover);
      break;
    }
  }
  ASSERT_TRUE(std::filesystem::exists(leftover));
  std::vector<Row> second = {Row{"projection", "c", std::nullopt}, put("d", "1")};
  ASSERT_TRUE(store_->IngestRows("projection", second, 1).ok());
  EXPECT_FALSE(std::filesystem::exists(leftover));
  EXPECT_EQ(rows(), "a=1;b=2;d=1;");
  // Refused: another family's row, a moved head; nothing written.
  std::vector<Row> wrong = {Row{"events", "z", "1"}};
  EXPECT_EQ(store_->IngestRows("projection", wrong, 1).code(), Code::kInvalidArgument);
  std::vector<Row> stale = {put("z", "1")};
  EXPECT_EQ(store_->IngestRows("projection", stale, 7).code(), Code::kConflict);
  ASSERT_TRUE(store_->FinishBulkRows("projection").ok());
  EXPECT_EQ(rows(), "a=1;b=2;d=1;");
  // Ordinary writes after the merge, and the rows survive a reopen.
  ASSERT_TRUE(store_->ReplaceRows("projection", {put("e", "1")}, 1, {}).ok());
  Reopen(WithFamilies({"projection"}));
  EXPECT_EQ(rows(), "a=1;b=2;d=1;e=1;");
}

TEST_F(EventStoreTest, ConcurrentAppendersGetContiguousSequenceNumbers) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 1000;
  std::vector<std::vector<Seq>> got(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        auto r = store_->Append(
            {SampleDraft(static_cast<std::uint64_t>(t * kPerThread + i)), std::nullopt, nullptr});
        if (r) got[t].push_back(r->seq);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<Seq> all;
  for (const auto& v : got) {
    EXPECT_EQ(v.size(), static_cast<std::size_t>(kPerThread));
    EXPECT_TRUE(std::is_sorted(v.begin(), v.end()));  // each thread sees increasing seqs
    all.insert(v.begin(), v.end());
  }
  EXPECT_EQ(all.size(), static_cast<std::size_t>(kThreads * kPerThread));  // no duplicates
  EXPECT_EQ(*all.begin(), 1u);
  EXPECT_EQ(*all.rbegin(), static_cast<Seq>(kThreads * kPerThread));  // contiguous
  auto v = store_->Verify();
  ASSERT_TRUE(v);
  EXPECT_TRUE(v->ok) << v->problem;
  EXPECT_EQ(v->events, static_cast<Seq>(kThreads * kPerThread));
}

TEST_F(EventStoreTest, ConcurrentConditionalAppendsOneWinnerPerHead) {
  constexpr int kThreads = 4;
  std::atomic<int> winners{0}, conflicts{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      auto r = store_->Append({SampleDraft(static_cast<std::uint64_t>(t)), Seq{0}, nullptr});
      if (r) {
        ++winners;
      } else if (r.error().code() == Code::kConflict) {
        ++conflicts;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(winners.load(), 1);
  EXPECT_EQ(conflicts.load(), kThreads - 1);
  EXPECT_EQ(store_->head().seq, 1u);
}

TEST_F(EventStoreTest, SurvivesReopen) {
  for (int i = 1; i <= 5; ++i) Append(static_cast<std::uint64_t>(i));
  const Head before = store_->head();
  Reopen();
  EXPECT_EQ(store_->head().seq, before.seq);
  EXPECT_EQ(store_->head().hash, before.hash);
  EXPECT_EQ(store_->head().recorded_at, before.recorded_at);
  EXPECT_EQ(Append(6).seq, 6u);
  EXPECT_TRUE(store_->Verify()->ok);
}

TEST_F(EventStoreTest, ReadOnlyViewAndOpenErrors) {
  Append(1);
  {
    // Same process, second writer: a clear Busy error.
    auto second = EventStore::Open(dir_.sub("log"));
    ASSERT_FALSE(second);
    EXPECT_EQ(second.error().code(), Code::kBusy);
    EXPECT_NE(second.error().message().find("already open in this process"), std::string::npos);
  }
  {
    auto ro = EventStore::Open(dir_.sub("log"), ReadOnly());
    ASSERT_TRUE(ro) << ro.error().ToString();
    EXPECT_EQ((*ro)->head().seq, 1u);
    auto w = (*ro)->Append({SampleDraft(2), std::nullopt, nullptr});
    ASSERT_FALSE(w);
    EXPECT_EQ(w.error().code(), Code::kFailedPrecondition);
  }
  auto missing = EventStore::Open(dir_.sub("nope"), NoCreate());
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound);
  auto reserved = EventStore::Open(dir_.sub("other"), WithFamilies({"meta"}));
  ASSERT_FALSE(reserved);
  EXPECT_EQ(reserved.error().code(), Code::kInvalidArgument);
}

// RocksDB asks for a flush and a compaction thread at every open, read-only
// or not; a read-only view never uses them, and a one-shot CLI read paid
// for starting and joining both. A fresh process (the append_loop helper)
// opens a view, scans every event and counts its own threads: only its
// main thread.
TEST_F(EventStoreTest, ReadOnlyViewStartsNoBackgroundThreads) {
  const char* helper = std::getenv("MODELREG_APPEND_LOOP");
  ASSERT_NE(helper, nullptr) << "MODELREG_APPEND_LOOP not set";
  for (int i = 1; i <= 3; ++i) Append(static_cast<std::uint64_t>(i));
  store_.reset();  // closed: the table files are written
  const testing::RunResult r =
      testing::RunCmd(std::string(helper) + " " + dir_.sub("log") + " threads");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, "3 events, 1 threads\n");
}

// Each CLI write is a writer process of its own: it opens the log, appends
// and closes. Those sessions used to leave a table file per family each
// (RocksDB moves them down without merging: the keys only grow), 65 files
// for 19 CLI writes, every one of them opened by every later reader. A
// closing writer now merges a small family's files, with a reader's view
// open beside it that must keep reading what it saw.
TEST_F(EventStoreTest, ShortWriterSessionsLeaveABoundedNumberOfTableFiles) {
  namespace fs = std::filesystem;
  auto table_files = [&] {
    std::size_t n = 0;
    for (const auto& e : fs::directory_iterator(dir_.sub("log"))) {
      n += e.path().extension() == ".sst" ? 1 : 0;
    }
    return n;
  };
  std::unique_ptr<EventStore> view;
  for (std::uint64_t i = 1; i <= 30; ++i) {
    Reopen();
    EXPECT_EQ(Append(i).seq, i);
    store_.reset();
    if (i == 10) {
      auto ro = EventStore::Open(dir_.sub("log"), ReadOnly());
      ASSERT_TRUE(ro) << ro.error().ToString();
      view = std::move(*ro);
    }
    if (i == 20) {
      // The view saw 10 events; the merges since then deleted nothing it
      // needs (they are held back while it is open).
      EXPECT_EQ(view->head().seq, 10u);
      std::uint64_t seen = 0;
      ASSERT_TRUE(view->Scan(1, UINT64_MAX, [&](Seq, const EventBuffer&) {
                        ++seen;
                        return true;
                      }).ok());
      EXPECT_EQ(seen, 10u);
      auto v = view->Verify();
      ASSERT_TRUE(v) << v.error().ToString();
      EXPECT_TRUE(v->ok);
      view.reset();
    }
    // 5 families (default, events, by_time, by_event_id, meta), fewer than
    // 4 files each once merged; 3-4 more per session without the merge.
    if (i <= 10 || i > 20) {
      EXPECT_LE(table_files(), 15u) << "after writer session " << i;
    }
  }
  auto ro = EventStore::Open(dir_.sub("log"), ReadOnly());
  ASSERT_TRUE(ro) << ro.error().ToString();
  EXPECT_EQ((*ro)->head().seq, 30u);
  auto v = (*ro)->Verify();
  ASSERT_TRUE(v) << v.error().ToString();
  EXPECT_TRUE(v->ok);
  EXPECT_EQ(v->events, 30u);
}

// The Merkle tree (merkle/tree.h) is kept in the append's batch: its root is
// the one computed from the stored events, every proof it gives checks, and
// it is the same tree after a reopen and in a read-only view.
TEST_F(EventStoreTest, MerkleTreeFollowsTheLogAndItsProofsCheck) {
  EXPECT_EQ(store_->TreeAt()->root, merkle::EmptyRoot());
  constexpr Seq kEvents = 37;
  for (Seq i = 1; i <= kEvents; ++i) Append(i);
  std::vector<Digest> leaves;
  merkle::CompactRange reference;
  std::vector<Digest> roots = {merkle::EmptyRoot()};
  for (Seq i = 1; i <= kEvents; ++i) {
    auto e = store_->Get(i);
    ASSERT_TRUE(e);
    leaves.push_back(merkle::HashLeaf(e->bytes()));
    reference.Append(leaves.back());
    roots.push_back(reference.Root());
  }
  for (Seq n = 1; n <= kEvents; ++n) {
    auto t = store_->TreeAt(n);
    ASSERT_TRUE(t) << t.error().ToString();
    ASSERT_EQ(t->root, roots[n]) << "size " << n;
    for (Seq seq = 1; seq <= n; ++seq) {
      auto proof = store_->InclusionProof(seq, n);
      ASSERT_TRUE(proof) << proof.error().ToString();
      ASSERT_TRUE(merkle::VerifyInclusion(seq - 1, n, leaves[seq - 1], *proof, roots[n]).ok());
    }
    for (Seq m = 1; m <= n; ++m) {
      auto proof = store_->ConsistencyProof(m, n);
      ASSERT_TRUE(proof) << proof.error().ToString();
      ASSERT_TRUE(merkle::VerifyConsistency(m, n, roots[m], roots[n], *proof).ok());
    }
  }
  EXPECT_EQ(store_->TreeAt()->size, kEvents);
  EXPECT_EQ(store_->TreeAt(kEvents + 1).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->InclusionProof(0, kEvents).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->InclusionProof(5, 4).error().code(), Code::kInvalidArgument);
  EXPECT_EQ(store_->ConsistencyProof(0, 4).error().code(), Code::kInvalidArgument);

  auto v = store_->Verify();
  ASSERT_TRUE(v && v->ok);
  EXPECT_TRUE(v->tree_checked);
  EXPECT_EQ(v->tree_root, roots[kEvents]);

  // Import (AppendVerbatim) builds the same tree.
  testing::TempDir other;
  {
    auto copy = EventStore::Open(other.sub("log"));
    ASSERT_TRUE(copy);
    Seq next = 1;
    ASSERT_TRUE((*copy)->AppendVerbatim([&]() -> Result<std::optional<std::string>> {
      if (next > kEvents) return std::optional<std::string>();
      auto e = store_->Get(next++);
      if (!e) return Err(e.error());
      return std::optional<std::string>(std::string(e->bytes()));
    }).ok());
    EXPECT_EQ((*copy)->TreeAt()->root, roots[kEvents]);
  }

  Reopen();
  Append(kEvents + 1);
  reference.Append(merkle::HashLeaf(store_->Get(kEvents + 1)->bytes()));
  EXPECT_EQ(store_->TreeAt()->root, reference.Root());
  store_.reset();
  auto ro = EventStore::Open(dir_.sub("log"), ReadOnly());
  ASSERT_TRUE(ro);
  EXPECT_EQ((*ro)->TreeAt()->root, reference.Root());
  EXPECT_EQ((*ro)->TreeAt(kEvents)->root, roots[kEvents]);
}

// A registry written before the tree existed (or by an older modelreg): a
// read-only view says the tree is not built, the first writable open
// builds it, and it is the tree the appends would have built.
TEST_F(EventStoreTest, MerkleTreeIsBuiltForAnOlderRegistry) {
  for (Seq i = 1; i <= 20; ++i) Append(i);
  const Digest root = store_->TreeAt()->root;
  store_.reset();
  {
    // What an older modelreg leaves: no merkle family, no tree size.
    std::vector<std::string> names;
    ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::Options(), dir_.sub("log"), &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descs;
    for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* db = nullptr;
    ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir_.sub("log"), descs, &handles, &db).ok());
    for (auto* h : handles) {
      if (h->GetName() == "merkle") {
        ASSERT_TRUE(db->DropColumnFamily(h).ok());
      }
      if (h->GetName() == "meta") {
        ASSERT_TRUE(db->Delete(rocksdb::WriteOptions(), h, "tree_size").ok());
      }
    }
    for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
    delete db;
  }
  {
    auto ro = EventStore::Open(dir_.sub("log"), ReadOnly());
    ASSERT_TRUE(ro);
    auto t = (*ro)->TreeAt();
    ASSERT_FALSE(t);
    EXPECT_EQ(t.error().code(), Code::kFailedPrecondition);
    EXPECT_NE(t.error().message().find("covers 0 of 20 events"), std::string::npos)
        << t.error().message();
    auto v = (*ro)->Verify();
    ASSERT_TRUE(v && v->ok);
    EXPECT_FALSE(v->tree_checked);
  }
  Reopen();
  auto t = store_->TreeAt();
  ASSERT_TRUE(t) << t.error().ToString();
  EXPECT_EQ(t->root, root);
  auto v = store_->Verify();
  ASSERT_TRUE(v && v->ok);
  EXPECT_TRUE(v->tree_checked);
}

using testing::RawPut;

class TamperTest : public EventStoreTest {
 protected:
  void SetUp() override {
    EventStoreTest::SetUp();
    for (int i = 1; i <= 20; ++i) Append(static_cast<std::uint64_t>(i));
    store_.reset();
  }
  VerifyReport VerifyAfterReopen() {
    Reopen();
    auto v = store_->Verify();
    EXPECT_TRUE(v) << v.error().ToString();
    return v.value_or(VerifyReport{});
  }
};

TEST_F(TamperTest, FlippedPayloadByteIsFoundAtItsSequence) {
  // Every offset class: header, vtable, strings, hash suffix.
  for (std::size_t offset : {std::size_t{0}, std::size_t{40}, std::size_t{300}, std::size_t{700}}) {
    SCOPED_TRACE(offset);
    RawPut(dir_.sub("log"), "events", Be64(7), [offset](std::string v) {
      v[offset % v.size()] = static_cast<char>(v[offset % v.size()] ^ 0x01);
      return v;
    });
    VerifyReport v = VerifyAfterReopen();
    EXPECT_FALSE(v.ok);
    EXPECT_FALSE(v.tree_damaged);
    EXPECT_EQ(v.first_bad_seq, 7u) << v.problem;
    store_.reset();
    // Put the byte back for the next round.
    RawPut(dir_.sub("log"), "events", Be64(7), [offset](std::string v) {
      v[offset % v.size()] = static_cast<char>(v[offset % v.size()] ^ 0x01);
      return v;
    });
    EXPECT_TRUE(VerifyAfterReopen().ok);
    store_.reset();
  }
}

// A stored tree node that no longer matches the events: verify names it,
// and a proof built from it does not check against the events' root.
TEST_F(TamperTest, AlteredMerkleNodeIsFound) {
  // Level 1, index 2: the subtree over events 5 and 6.
  std::string key(1, '\x01');
  key += Be64(2);
  RawPut(dir_.sub("log"), "merkle", key, [](std::string v) {
    v[3] = static_cast<char>(v[3] ^ 0x10);
    return v;
  });
  VerifyReport v = VerifyAfterReopen();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 6u) << v.problem;
  EXPECT_NE(v.problem.find("Merkle tree node (level 1, index 2) does not match"),
            std::string::npos) << v.problem;
  merkle::CompactRange honest;
  for (Seq i = 1; i <= 20; ++i) honest.Append(merkle::HashLeaf(store_->Get(i)->bytes()));
  // Event 7's path holds that node (its sibling subtree).
  auto proof = store_->InclusionProof(7, 20);
  ASSERT_TRUE(proof);
  EXPECT_FALSE(merkle::VerifyInclusion(6, 20, merkle::HashLeaf(store_->Get(7)->bytes()), *proof,
                                       honest.Root()).ok());
  auto intact = store_->InclusionProof(1, 20);  // a path around it still checks
  ASSERT_TRUE(intact);
  EXPECT_TRUE(merkle::VerifyInclusion(0, 20, merkle::HashLeaf(store_->Get(1)->bytes()), *intact,
                                      honest.Root()).ok());
  EXPECT_TRUE(v.tree_damaged);
  // The tree is derived from the events: rebuilt, it verifies again.
  ASSERT_TRUE(store_->RebuildTree().ok());
  auto again = store_->Verify();
  ASSERT_TRUE(again && again->ok) << again->problem;
  EXPECT_EQ(again->tree_root, honest.Root());
  auto fixed = store_->InclusionProof(7, 20);
  ASSERT_TRUE(fixed);
  EXPECT_TRUE(merkle::VerifyInclusion(6, 20, merkle::HashLeaf(store_->Get(7)->bytes()), *fixed,
                                      honest.Root()).ok());
}

TEST_F(TamperTest, FlippedStoredHashAndPrevHashAreFound) {
  RawPut(dir_.sub("log"), "events", Be64(12), [](std::string v) {
    v.back() = static_cast<char>(v.back() ^ 0x80);  // the stored hash suffix
    return v;
  });
  VerifyReport v = VerifyAfterReopen();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 12u);
}

TEST_F(TamperTest, DamagedEventIsAnErrorOnReadNotACrash) {
  RawPut(dir_.sub("log"), "events", Be64(5), [](std::string v) { return v.substr(0, 50); });
  Reopen();
  auto e = store_->Get(5);
  ASSERT_FALSE(e);
  EXPECT_EQ(e.error().code(), Code::kCorruption);
  EXPECT_NE(e.error().message().find("event 5"), std::string::npos) << e.error().message();
  Status scan = store_->Scan(1, 100, [](Seq, const EventBuffer&) { return true; });
  EXPECT_EQ(scan.code(), Code::kCorruption);
  EXPECT_NE(scan.message().find("event 5"), std::string::npos);
  auto v = store_->Verify();
  ASSERT_TRUE(v);
  EXPECT_EQ(v->first_bad_seq, 5u);
}

TEST_F(TamperTest, EventReplacedByAnotherValidEventIsFound) {
  // Swap in event 3's bytes under key 4: structurally valid, wrong chain.
  std::string three;
  RawPut(dir_.sub("log"), "events", Be64(3), [&three](std::string v) {
    three = v;
    return v;
  });
  RawPut(dir_.sub("log"), "events", Be64(4), [&three](std::string) { return three; });
  VerifyReport v = VerifyAfterReopen();
  EXPECT_FALSE(v.ok);
  EXPECT_EQ(v.first_bad_seq, 4u);
}

}  // namespace
}  // namespace modelreg

namespace modelreg {
namespace {

// A follower (secondary instance) of a log whose writers are short-lived
// processes, as with the CLI: every writable open recovers and flushes the
// last session's WAL, switches to a new MANIFEST, and every fourth flush
// triggers a compaction that deletes table files. RocksDB has had bugs
// here (facebook/rocksdb#7815: a MANIFEST switched twice between two
// catch-ups). After rounds of one to four writer sessions, the follower
// must see every event.
TEST(Follower, SeesEveryEventAcrossWriterReopens) {
  testing::TempDir dir;
  const std::string log = dir.sub("log");
  Seq appended = 0;
  auto session = [&]() {
    StoreOptions wo;
    wo.extra_column_families = {"projection"};  // as the registry opens it
    auto w = EventStore::Open(log, wo);
    ASSERT_TRUE(w) << w.error().ToString();
    auto r = (*w)->Append({SampleDraft(++appended), std::nullopt, nullptr});
    ASSERT_TRUE(r) << r.error().ToString();
  };
  session();
  StoreOptions so;
  so.secondary = true;
  auto follower = EventStore::Open(log, so);
  ASSERT_TRUE(follower) << follower.error().ToString();
  for (int round = 0; round < 40; ++round) {
    for (int i = 0; i <= round % 4; ++i) session();
    ASSERT_TRUE((*follower)->CatchUp().ok());
    EXPECT_EQ((*follower)->head().seq, appended) << "round " << round;
    auto last = (*follower)->Get(appended);
    EXPECT_TRUE(last) << "round " << round << ": " << last.error().ToString();
  }
}

}  // namespace
}  // namespace modelreg
