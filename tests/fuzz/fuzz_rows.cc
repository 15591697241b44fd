// libFuzzer target for the projection rows (schemas/projection.fbs): the
// bytes a damaged or hostile projection column family could hold. The first
// input byte picks the kind of row (its key prefix), the rest is the value.
// Every path must end in a Corruption or a record, never a crash or an
// out-of-bounds read; a value that decodes re-encodes to a row that decodes
// to the same record (compared by canonical encoding, which is bit-exact:
// NaN metrics compare too). Build and run: tools/run-fuzz.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "projection/state.h"

namespace mp = modelreg::projection;

namespace {

const char* const kKeys[] = {"s", "v/t/v", "r/t/v/12345678", "p/t", "t/t/1234567812345678",
                             "h/t/12345678", "c/t/svc", "g/12345678"};
constexpr std::size_t kKinds = sizeof(kKeys) / sizeof(kKeys[0]);

template <class R, class Encode>
void RoundTrip(const modelreg::Result<R>& got, Encode encode,
               modelreg::Result<R> (*decode)(std::string_view)) {
  if (!got) return;
  const std::string again = encode(*got);
  auto back = decode(again);
  if (!back) __builtin_trap();
  if (mp::CanonicalValue(*back) != mp::CanonicalValue(*got)) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::string key = kKeys[data[0] % kKinds];
  const std::string_view value(reinterpret_cast<const char*>(data + 1), size - 1);
  switch (data[0] % kKinds) {
    case 0: {
      auto head = mp::DecodeHeadRow(value);
      if (head) {
        auto back = mp::DecodeHeadRow(mp::EncodeHeadRow(head->first, head->second));
        if (!back || *back != *head) __builtin_trap();
      }
      break;
    }
    case 1:
    case 2:
      RoundTrip(mp::DecodeVersionRow(value), mp::EncodeVersionRow, mp::DecodeVersionRow);
      break;
    case 3:
    case 4: {
      auto v = mp::DecodeTypeRow(value);
      if (v) {
        auto back = mp::DecodeTypeRow(mp::EncodeTypeRow(*v));
        if (!back || *back != *v) __builtin_trap();
      }
      break;
    }
    case 5:
      RoundTrip(mp::DecodeHistoryRow(value), mp::EncodeHistoryRow, mp::DecodeHistoryRow);
      break;
    case 6:
      RoundTrip(mp::DecodeConsumerRow(value), mp::EncodeConsumerRow, mp::DecodeConsumerRow);
      break;
    default:
      RoundTrip(mp::DecodePolicyRow(value), mp::EncodePolicyRow, mp::DecodePolicyRow);
      break;
  }
  // What verify and rebuild do with any stored row: digest it, decode a state.
  mp::RowSetDigest set;
  set.Add(key, value);
  mp::RowsDigester digester;
  digester.Add(key, value);
  (void)digester.Finish();
  (void)mp::DecodeState(mp::Rows{{key, std::string(value)}});
  return 0;
}
