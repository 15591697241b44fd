// Small helpers every benchmark uses: percentiles and turning a failed
// Status/Result into an exception that main() reports.
#pragma once

#include <algorithm>
#include <cstddef>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "common/status.h"

namespace modelreg::bench {

// The p-quantile (0..1) of `v` by the nearest-rank-below rule; 0 if empty.
inline double Percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[static_cast<std::size_t>(p * static_cast<double>(v.size() - 1))];
}

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

template <typename T>
T Check(Result<T> r, const std::string& what) {
  if (!r) throw BenchError(what + ": " + r.error().ToString());
  return std::move(*r);
}

inline void Check(const Status& st, const std::string& what) {
  if (!st.ok()) throw BenchError(what + ": " + st.ToString());
}

}  // namespace modelreg::bench
