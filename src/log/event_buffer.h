// EventBuffer: the owned, aligned and verified bytes of one Event.
//
// Every byte that reaches an Event accessor has passed the FlatBuffers
// Verifier first: RocksDB values, files and network input are untrusted.
// Bytes are copied into 8-byte-aligned storage because the Verifier checks
// alignment relative to the buffer start and unaligned reads are undefined.
// Thread-safety: a plain value; one writer or many readers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "events_generated.h"

namespace modelreg {


// Largest event accepted anywhere (events hold metadata, not artifacts).
inline constexpr std::size_t kMaxEventBytes = 4u << 20;

class EventBuffer {
 public:
  EventBuffer() = default;

  // Copies and verifies `bytes`. On error the buffer is empty and the
  // message says what failed (size, identifier, structure).
  Status Assign(std::string_view bytes);
  static Result<EventBuffer> Parse(std::string_view bytes);

  bool empty() const { return size_ == 0; }
  // Requires !empty().
  const fb::Event& event() const;
  fb::Event& mutable_event();
  std::string_view bytes() const;

 private:
  std::vector<std::uint64_t> storage_;
  std::size_t size_ = 0;
};

// Name of a payload type ("ModelRegistered", "unknown(12)" for newer ones).
std::string PayloadTypeName(fb::Payload type);

}  // namespace modelreg
