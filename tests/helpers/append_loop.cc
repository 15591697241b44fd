// Test helper: opens the log at argv[1] and appends sample events forever
// (or argv[2] of them), printing "<seq>\n" after each acknowledged append,
// flushed, so a parent that kills it knows what was acknowledged.
// With argv[2] == "hold" it opens the log, prints "open", and sleeps.
// With argv[2] == "threads" it opens a read-only view, scans every event,
// and prints how many threads the process has (a fresh process: RocksDB's
// shared thread pools have started nothing yet).
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iterator>
#include <string>

#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: append_loop DIR [COUNT|hold]\n");
    return 2;
  }
  if (argc > 2 && std::string(argv[2]) == "threads") {
    modelreg::StoreOptions o;
    o.read_only = true;
    auto view = modelreg::EventStore::Open(argv[1], o);
    if (!view) {
      std::fprintf(stderr, "%s\n", view.error().ToString().c_str());
      return 1;
    }
    std::size_t events = 0;
    modelreg::Status st = (*view)->Scan(1, (*view)->head().seq,
                                        [&](modelreg::Seq, const modelreg::EventBuffer&) {
                                          ++events;
                                          return true;
                                        });
    if (!st.ok()) {
      std::fprintf(stderr, "%s\n", st.ToString().c_str());
      return 1;
    }
    const auto threads = std::distance(std::filesystem::directory_iterator("/proc/self/task"),
                                       std::filesystem::directory_iterator());
    std::printf("%zu events, %ld threads\n", events, static_cast<long>(threads));
    return 0;
  }
  auto store = modelreg::EventStore::Open(argv[1]);
  if (!store) {
    std::fprintf(stderr, "%s\n", store.error().ToString().c_str());
    return 1;
  }
  if (argc > 2 && std::string(argv[2]) == "hold") {
    std::printf("open\n");
    std::fflush(stdout);
    for (;;) pause();
  }
  const long limit = argc > 2 ? std::atol(argv[2]) : -1;
  for (long i = 0; limit < 0 || i < limit; ++i) {
    auto reg = modelreg::events::SampleRegistration("risk_model", "v1.0." + std::to_string(i),
                                                    static_cast<std::uint64_t>(i));
    auto r = (*store)->Append(
        {modelreg::events::Draft({"crash-test", modelreg::NewEventId(), 0}, reg), std::nullopt,
         nullptr});
    if (!r) {
      std::fprintf(stderr, "%s\n", r.error().ToString().c_str());
      return 1;
    }
    std::printf("%llu\n", static_cast<unsigned long long>(r->seq));
    std::fflush(stdout);
  }
  return 0;
}
