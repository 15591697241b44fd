// The JetStream wrapper (src/replication/jetstream.h) against a real
// 3-node nats-server cluster (tests/support/nats_cluster.h): streams with
// 3 replicas, the expected-last-sequence check, de-duplication, reads by
// sequence, durable pull consumers, a node killed, and no server at all.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "replication/jetstream.h"
#include "support/nats_cluster.h"

namespace modelreg::replication {
namespace {

using Clock = std::chrono::steady_clock;
using testing::NatsCluster;

long long MsSince(Clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start).count();
}

JetStreamOptions Options(const NatsCluster& cluster, const std::string& stream,
                         std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  JetStreamOptions o;
  o.urls = cluster.Urls();
  o.stream = stream;
  o.replicas = 3;
  o.timeout = timeout;
  return o;
}

// Publishes "event <i>" for i = first..last, each expecting the one before.
void PublishRange(JetStream& js, std::uint64_t first, std::uint64_t last) {
  for (std::uint64_t i = first; i <= last; ++i) {
    auto ack = js.Publish("id-" + std::to_string(i), i - 1, "event " + std::to_string(i), {});
    ASSERT_TRUE(ack) << ack.error().ToString();
    ASSERT_EQ(ack->seq, i);
  }
}

// Fetches until `count` messages came or 10 s passed.
std::vector<StreamMessage> FetchN(JetStream& js, std::size_t count) {
  std::vector<StreamMessage> got;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (got.size() < count && Clock::now() < deadline) {
    auto batch = js.Fetch(static_cast<int>(count - got.size()), std::chrono::milliseconds(500));
    EXPECT_TRUE(batch) << batch.error().ToString();
    if (!batch) break;
    for (auto& m : *batch) got.push_back(std::move(m));
  }
  return got;
}

// One cluster for the tests that do not stop nodes; each uses its own stream.
class JetStreamTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    cluster_ = new NatsCluster(3);
    const auto started = Clock::now();
    *started_ = cluster_->Start();
    std::printf("3-node cluster ready in %lld ms\n", MsSince(started));
  }
  static void TearDownTestSuite() {
    delete cluster_;
    cluster_ = nullptr;
  }
  void SetUp() override { ASSERT_TRUE(*started_); }

  static NatsCluster* cluster_;
  static std::unique_ptr<::testing::AssertionResult> started_;
};

NatsCluster* JetStreamTest::cluster_ = nullptr;
std::unique_ptr<::testing::AssertionResult> JetStreamTest::started_ =
    std::make_unique<::testing::AssertionResult>(::testing::AssertionFailure() << "not started");

TEST_F(JetStreamTest, PublishExpectsLastSequenceDeduplicatesAndReads) {
  auto js = JetStream::Connect(Options(*cluster_, "pub"), /*create=*/true);
  ASSERT_TRUE(js) << js.error().ToString();
  EXPECT_EQ((*js)->Subject(), "modelreg.pub.events");
  EXPECT_TRUE((*js)->Connected());
  auto last = (*js)->LastSeq();
  ASSERT_TRUE(last) << last.error().ToString();
  EXPECT_EQ(*last, 0u);

  // The first message expects an empty stream: an explicit "0".
  auto first = (*js)->Publish("m1", 0, "hello", {{"Modelreg-Kind", "register"}, {"X-Two", "a  b"}});
  ASSERT_TRUE(first) << first.error().ToString();
  EXPECT_EQ(first->seq, 1u);
  EXPECT_FALSE(first->duplicate);

  // Another message expecting 0 again: the stream is at 1.
  auto stale = (*js)->Publish("m2", 0, "other", {});
  ASSERT_FALSE(stale);
  EXPECT_EQ(stale.error().code(), Code::kConflict) << stale.error().ToString();
  EXPECT_NE(stale.error().message().find("stream pub: the last sequence is 1, not the expected 0"),
            std::string::npos)
      << stale.error().message();
  std::printf("conflict: %s\n", stale.error().ToString().c_str());

  // The same message again, as a retry after a lost acknowledgement would
  // send it (same id, same expectation): a duplicate, nothing stored.
  auto again = (*js)->Publish("m1", 0, "hello", {{"Modelreg-Kind", "register"}});
  ASSERT_TRUE(again) << again.error().ToString();
  EXPECT_TRUE(again->duplicate);
  EXPECT_EQ(again->seq, 1u);
  // The same id with the right expectation: a duplicate too.
  auto again2 = (*js)->Publish("m1", 1, "hello", {});
  ASSERT_TRUE(again2) << again2.error().ToString();
  EXPECT_TRUE(again2->duplicate);
  EXPECT_EQ(again2->seq, 1u);
  last = (*js)->LastSeq();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 1u);

  auto second = (*js)->Publish("m2", 1, std::string("bin\0ary", 7), {});
  ASSERT_TRUE(second) << second.error().ToString();
  EXPECT_EQ(second->seq, 2u);
  EXPECT_FALSE(second->duplicate);
  last = (*js)->LastSeq();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 2u);

  auto m1 = (*js)->Get(1);
  ASSERT_TRUE(m1) << m1.error().ToString();
  EXPECT_EQ(m1->seq, 1u);
  EXPECT_EQ(m1->data, "hello");
  EXPECT_EQ(m1->headers["Modelreg-Kind"], "register");
  EXPECT_EQ(m1->headers["X-Two"], "a  b");
  EXPECT_EQ(m1->headers["Nats-Msg-Id"], "m1");
  EXPECT_EQ(m1->headers["Nats-Expected-Last-Sequence"], "0");
  auto m2 = (*js)->Get(2);
  ASSERT_TRUE(m2) << m2.error().ToString();
  EXPECT_EQ(m2->data, std::string("bin\0ary", 7));

  for (const std::uint64_t absent : {std::uint64_t{0}, std::uint64_t{3}, std::uint64_t{99}}) {
    auto missing = (*js)->Get(absent);
    ASSERT_FALSE(missing) << absent;
    EXPECT_EQ(missing.error().code(), Code::kNotFound) << missing.error().ToString();
    EXPECT_NE(missing.error().message().find("stream pub"), std::string::npos);
  }

  // Headers the wrapper sets itself, or that would cut the header block.
  for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
           {"Nats-Msg-Id", "x"}, {"nats-expected-last-sequence", "9"}, {"Bad:Name", "v"},
           {"Bad Name", "v"}, {"", "v"}, {"Ok", "line\r\nInjected: 1"}, {"Ok", ""},
           {"Ok", " lead"}, {"Ok", "trail\t"}}) {
    auto bad = (*js)->Publish("m3", 2, "x", {{name, value}});
    ASSERT_FALSE(bad) << name;
    EXPECT_EQ(bad.error().code(), Code::kInvalidArgument) << bad.error().ToString();
  }
  auto no_id = (*js)->Publish("", 2, "x", {});
  ASSERT_FALSE(no_id);
  EXPECT_EQ(no_id.error().code(), Code::kInvalidArgument);

  // A second connection sees the same stream (create=false).
  auto reader = JetStream::Connect(Options(*cluster_, "pub"), /*create=*/false);
  ASSERT_TRUE(reader) << reader.error().ToString();
  last = (*reader)->LastSeq();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 2u);
  // Connecting with create=true to an existing stream keeps it.
  auto again_create = JetStream::Connect(Options(*cluster_, "pub"), /*create=*/true);
  ASSERT_TRUE(again_create) << again_create.error().ToString();
  last = (*again_create)->LastSeq();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 2u);
}

TEST_F(JetStreamTest, ConnectRefusesMissingStreamsBadNamesAndNoServer) {
  auto missing = JetStream::Connect(Options(*cluster_, "no_such_stream"), /*create=*/false);
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().code(), Code::kNotFound) << missing.error().ToString();
  EXPECT_NE(missing.error().message().find("no_such_stream"), std::string::npos);

  for (const std::string& name : std::vector<std::string>{"", "a.b", "a b", "a*", "a>", "modelreg/x", "\xc3\xa4", std::string(65, 'x')}) {
    auto bad = JetStream::Connect(Options(*cluster_, name), /*create=*/true);
    ASSERT_FALSE(bad) << name;
    EXPECT_EQ(bad.error().code(), Code::kInvalidArgument) << bad.error().ToString();
  }
  auto longest = JetStream::Connect(Options(*cluster_, std::string(64, 'x')), /*create=*/false);
  ASSERT_FALSE(longest);
  EXPECT_EQ(longest.error().code(), Code::kNotFound) << longest.error().ToString();

  // Nothing listens there.
  JetStreamOptions o = Options(*cluster_, "pub", std::chrono::seconds(1));
  o.urls = {"nats://127.0.0.1:1"};
  const auto start = Clock::now();
  auto unreachable = JetStream::Connect(o, /*create=*/true);
  ASSERT_FALSE(unreachable);
  EXPECT_EQ(unreachable.error().code(), Code::kIOError) << unreachable.error().ToString();
  EXPECT_NE(unreachable.error().message().find("nats://127.0.0.1:1"), std::string::npos);
  EXPECT_LT(MsSince(start), 5000);
}

TEST_F(JetStreamTest, DurableConsumerFetchesFromASequenceInOrder) {
  auto js = JetStream::Connect(Options(*cluster_, "cons"), /*create=*/true);
  ASSERT_TRUE(js) << js.error().ToString();
  PublishRange(**js, 1, 5);
  if (HasFatalFailure()) return;

  auto no_consumer = (*js)->Fetch(1, std::chrono::milliseconds(10));
  ASSERT_FALSE(no_consumer);
  EXPECT_EQ(no_consumer.error().code(), Code::kFailedPrecondition);
  EXPECT_EQ((*js)->StartConsumer("bad.name", 1).code(), Code::kInvalidArgument);

  const Status started = (*js)->StartConsumer("follower", 2);
  ASSERT_TRUE(started.ok()) << started.ToString();
  auto got = FetchN(**js, 4);
  ASSERT_EQ(got.size(), 4u);
  for (std::size_t k = 0; k < got.size(); ++k) {
    EXPECT_EQ(got[k].seq, k + 2);
    EXPECT_EQ(got[k].data, "event " + std::to_string(k + 2));
    EXPECT_EQ(got[k].headers["Nats-Msg-Id"], "id-" + std::to_string(k + 2));
  }
  for (const auto& m : got) {
    const Status acked = (*js)->Ack(m.seq);
    EXPECT_TRUE(acked.ok()) << acked.ToString();
  }
  EXPECT_EQ((*js)->Ack(3).code(), Code::kNotFound);  // already acked
  EXPECT_EQ((*js)->Ack(1).code(), Code::kNotFound);  // never fetched
  // Everything acked: nothing more, and no redelivery.
  auto empty = (*js)->Fetch(10, std::chrono::milliseconds(300));
  ASSERT_TRUE(empty) << empty.error().ToString();
  EXPECT_TRUE(empty->empty());

  // New messages reach the running consumer.
  PublishRange(**js, 6, 6);
  if (HasFatalFailure()) return;
  auto sixth = FetchN(**js, 1);
  ASSERT_EQ(sixth.size(), 1u);
  EXPECT_EQ(sixth[0].seq, 6u);
  EXPECT_TRUE((*js)->Ack(6).ok());

  // Restarted from 4: 4, 5, 6 again (the consumer is recreated).
  ASSERT_TRUE((*js)->StartConsumer("follower", 4).ok());
  got = FetchN(**js, 3);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].seq, 4u);
  EXPECT_EQ(got[1].seq, 5u);
  EXPECT_EQ(got[2].seq, 6u);
  EXPECT_TRUE((*js)->Ack(4).ok());
  // 5 and 6 not acked: held until the object goes (no leak under ASan).

  // The durable outlives this object: another one starting it afresh at 1
  // gets the whole stream.
  js->reset();
  auto other = JetStream::Connect(Options(*cluster_, "cons"), /*create=*/false);
  ASSERT_TRUE(other) << other.error().ToString();
  ASSERT_TRUE((*other)->StartConsumer("follower", 0).ok());
  got = FetchN(**other, 6);
  ASSERT_EQ(got.size(), 6u);
  EXPECT_EQ(got.front().seq, 1u);
  EXPECT_EQ(got.back().seq, 6u);
}

TEST_F(JetStreamTest, PublishAndLastSeqFromTwoThreads) {
  auto js = JetStream::Connect(Options(*cluster_, "threads"), /*create=*/true);
  ASSERT_TRUE(js) << js.error().ToString();
  std::atomic<bool> done{false};
  std::atomic<int> read_errors{0};
  std::atomic<std::uint64_t> went_back{0};
  std::thread reader([&] {
    std::uint64_t seen = 0;
    while (!done.load()) {
      auto last = (*js)->LastSeq();
      if (!last) {
        ++read_errors;
        continue;
      }
      if (*last < seen) went_back = *last + 1;
      seen = *last;
    }
  });
  PublishRange(**js, 1, 40);
  done = true;
  reader.join();
  EXPECT_EQ(read_errors.load(), 0);
  EXPECT_EQ(went_back.load(), 0u);
  auto last = (*js)->LastSeq();
  ASSERT_TRUE(last);
  EXPECT_EQ(*last, 40u);
}

// Publishes (id, expected) until it is stored or `limit` passes, as a
// shipper would: the same id and expectation at every attempt.
Result<PublishAck> PublishRetrying(JetStream& js, const std::string& id, std::uint64_t expected,
                                   std::chrono::milliseconds limit, int* attempts) {
  const auto deadline = Clock::now() + limit;
  for (;;) {
    ++*attempts;
    auto ack = js.Publish(id, expected, "payload " + id, {});
    if (ack || ack.error().code() != Code::kIOError || Clock::now() >= deadline) return ack;
    if (*attempts == 1) std::printf("  first attempt: %s\n", ack.error().ToString().c_str());
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

TEST(JetStreamClusterTest, KeepsPublishingWhenTheStreamLeaderIsKilled) {
  NatsCluster cluster(3);
  ASSERT_TRUE(cluster.Start());
  auto js = JetStream::Connect(Options(cluster, "failover", std::chrono::seconds(2)),
                               /*create=*/true);
  ASSERT_TRUE(js) << js.error().ToString();
  PublishRange(**js, 1, 3);
  if (HasFatalFailure()) return;

  int leader = -1;
  const auto look = Clock::now() + std::chrono::seconds(10);
  while ((leader = cluster.StreamLeader("failover")) < 0 && Clock::now() < look) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ASSERT_GE(leader, 0) << "no node reports a leader of stream failover";

  // A second client given only the leader's url: when it dies, the client
  // reconnects to the servers the cluster told it about.
  JetStreamOptions pinned_options = Options(cluster, "failover", std::chrono::seconds(2));
  pinned_options.urls = {cluster.Url(leader)};
  auto pinned = JetStream::Connect(pinned_options, /*create=*/false);
  ASSERT_TRUE(pinned) << pinned.error().ToString();

  // SIGKILL: no goodbye to the clients or the other nodes. R3 keeps a
  // quorum of 2, which elects a new stream leader.
  cluster.Kill(leader);
  const auto killed = Clock::now();
  int attempts = 0;
  auto ack = PublishRetrying(**js, "id-4", 3, std::chrono::seconds(15), &attempts);
  ASSERT_TRUE(ack) << ack.error().ToString();
  EXPECT_EQ(ack->seq, 4u);
  EXPECT_FALSE(ack->duplicate);
  std::printf("stream leader n%d killed: publish stored after %lld ms, %d attempt(s)\n",
              leader + 1, MsSince(killed), attempts);
  attempts = 0;
  ack = PublishRetrying(**pinned, "id-5", 4, std::chrono::seconds(10), &attempts);
  ASSERT_TRUE(ack) << ack.error().ToString();
  EXPECT_EQ(ack->seq, 5u);
  std::printf("the client that was connected to n%d: stored after %lld ms, %d attempt(s)\n",
              leader + 1, MsSince(killed), attempts);
  EXPECT_TRUE((*pinned)->Connected());
  PublishRange(**js, 6, 8);
  if (HasFatalFailure()) return;
  EXPECT_TRUE((*js)->Connected());

  const auto restarting = Clock::now();
  ASSERT_TRUE(cluster.Restart(leader));
  std::printf("n%d restarted and ready in %lld ms\n", leader + 1, MsSince(restarting));
  PublishRange(**js, 9, 10);
  if (HasFatalFailure()) return;

  // Every message once, in order, read through a client of the restarted
  // node only.
  JetStreamOptions o = Options(cluster, "failover", std::chrono::seconds(2));
  o.urls = {cluster.Url(leader)};
  auto back = JetStream::Connect(o, /*create=*/false);
  ASSERT_TRUE(back) << back.error().ToString();
  auto last = (*back)->LastSeq();
  ASSERT_TRUE(last) << last.error().ToString();
  EXPECT_EQ(*last, 10u);
  for (std::uint64_t i = 1; i <= 10; ++i) {
    auto m = (*back)->Get(i);
    ASSERT_TRUE(m) << m.error().ToString();
    EXPECT_EQ(m->headers["Nats-Msg-Id"], "id-" + std::to_string(i));
  }
}

TEST(JetStreamClusterTest, NoServerLeftIsAnIOErrorWithinTheTimeout) {
  NatsCluster cluster(3);
  ASSERT_TRUE(cluster.Start());
  auto js = JetStream::Connect(Options(cluster, "down", std::chrono::seconds(1)), /*create=*/true);
  ASSERT_TRUE(js) << js.error().ToString();
  PublishRange(**js, 1, 1);
  if (HasFatalFailure()) return;
  ASSERT_TRUE((*js)->StartConsumer("follower", 1).ok());

  for (int i = 0; i < cluster.size(); ++i) ASSERT_TRUE(cluster.Stop(i));
  auto start = Clock::now();
  auto ack = (*js)->Publish("id-2", 1, "lost", {});
  const long long publish_ms = MsSince(start);
  ASSERT_FALSE(ack);
  EXPECT_EQ(ack.error().code(), Code::kIOError) << ack.error().ToString();
  EXPECT_NE(ack.error().message().find("stream down"), std::string::npos);
  EXPECT_LT(publish_ms, 3000);
  std::printf("all stopped: publish failed after %lld ms: %s\n", publish_ms,
              ack.error().ToString().c_str());

  start = Clock::now();
  auto last = (*js)->LastSeq();
  ASSERT_FALSE(last);
  EXPECT_EQ(last.error().code(), Code::kIOError) << last.error().ToString();
  EXPECT_LT(MsSince(start), 3000);
  EXPECT_FALSE((*js)->Connected());

  // A fetch without a server: nothing, or an IOError; never a hang.
  start = Clock::now();
  auto fetched = (*js)->Fetch(1, std::chrono::milliseconds(300));
  EXPECT_TRUE(!fetched || fetched->empty());
  if (!fetched) {
    EXPECT_EQ(fetched.error().code(), Code::kIOError) << fetched.error().ToString();
  }
  EXPECT_LT(MsSince(start), 3000);

  // Connecting while no server runs fails at once.
  start = Clock::now();
  auto again = JetStream::Connect(Options(cluster, "down", std::chrono::seconds(1)), false);
  ASSERT_FALSE(again);
  EXPECT_EQ(again.error().code(), Code::kIOError) << again.error().ToString();
  EXPECT_LT(MsSince(start), 3000);
}

}  // namespace
}  // namespace modelreg::replication
