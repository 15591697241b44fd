// Test helper: one GetOrCompute on the cache at DIR from a separate process.
//
//   cache_worker DIR FACTOR DATE SNAPSHOT CONFIG COUNTER_FILE SLEEP_MS [NAME=VERSION...]
//
// The compute function appends "<pid>\n" to COUNTER_FILE, prints
// "computing" (flushed, so a parent knows the key's lock is held), sleeps
// SLEEP_MS and returns "value from pid <pid>". At the end it prints
// "cached=<0|1> value=<value>" and "store=<status>". Exit 1 on an error.
#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>

#include "cache/expression_cache.h"

int main(int argc, char** argv) {
  if (argc < 8) {
    std::fprintf(stderr,
                 "usage: cache_worker DIR FACTOR DATE SNAPSHOT CONFIG COUNTER_FILE SLEEP_MS "
                 "[NAME=VERSION...]\n");
    return 2;
  }
  modelreg::cache::CacheKey key;
  key.factor_name = argv[2];
  key.as_of_date = argv[3];
  key.snapshot_id = argv[4];
  key.config_hash = argv[5];
  const std::string counter = argv[6];
  const int sleep_ms = std::atoi(argv[7]);
  for (int i = 8; i < argc; ++i) {
    const std::string kv = argv[i];
    const auto eq = kv.find('=');
    if (eq == std::string::npos) return 2;
    key.dataset_versions[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  modelreg::cache::DiskExpressionCache cache(argv[1], modelreg::cache::kDefaultTtl);
  const std::string pid = std::to_string(getpid());
  auto r = cache.GetOrCompute(key, [&]() -> modelreg::Result<std::string> {
    const int fd = ::open(counter.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) return modelreg::Err(modelreg::Status::IOError("cannot open " + counter));
    const std::string line = pid + "\n";
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    ::close(fd);
    if (!ok) return modelreg::Err(modelreg::Status::IOError("cannot append to " + counter));
    std::printf("computing\n");
    std::fflush(stdout);
    // A deliberately slow computation (what the tests need: a holder of the
    // key's lock that others wait for, or that is killed mid-compute). The
    // tests wait for the "computing" line above, not for this sleep.
    std::this_thread::sleep_for(std::chrono::milliseconds(sleep_ms));
    return "value from pid " + pid;
  });
  if (!r) {
    std::fprintf(stderr, "%s\n", r.error().ToString().c_str());
    return 1;
  }
  std::printf("cached=%d value=%s\nstore=%s\n", r->was_cached ? 1 : 0, r->value.c_str(),
              r->store_status.ToString().c_str());
  std::fflush(stdout);
  return 0;
}
