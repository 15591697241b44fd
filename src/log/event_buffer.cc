#include "log/event_buffer.h"

#include <cstring>
#include <string>

#include <flatbuffers/flatbuffers.h>

namespace modelreg {

Status EventBuffer::Assign(std::string_view bytes) {
  size_ = 0;
  if (bytes.size() < 8) {
    return Status::Corruption("event is " + std::to_string(bytes.size()) +
                              " bytes, too short to be an event");
  }
  if (bytes.size() > kMaxEventBytes) {
    return Status::Corruption("event is " + std::to_string(bytes.size()) +
                              " bytes, larger than the limit of " +
                              std::to_string(kMaxEventBytes));
  }
  storage_.resize((bytes.size() + 7) / 8);
  std::memcpy(storage_.data(), bytes.data(), bytes.size());
  const auto* data = reinterpret_cast<const std::uint8_t*>(storage_.data());
  if (!fb::EventBufferHasIdentifier(data)) {
    return Status::Corruption("bytes are not a modelreg event (file identifier is not MREV)");
  }
  flatbuffers::Verifier verifier(data, bytes.size(), /*max_depth=*/32,
                                 /*max_tables=*/100000);
  if (!fb::VerifyEventBuffer(verifier)) {
    return Status::Corruption("event fails FlatBuffers verification (truncated or damaged)");
  }
  size_ = bytes.size();
  return Status::OK();
}

Result<EventBuffer> EventBuffer::Parse(std::string_view bytes) {
  EventBuffer buf;
  Status st = buf.Assign(bytes);
  if (!st.ok()) return Err(std::move(st));
  return buf;
}

const fb::Event& EventBuffer::event() const {
  return *fb::GetEvent(storage_.data());
}

fb::Event& EventBuffer::mutable_event() {
  return *fb::GetMutableEvent(storage_.data());
}

std::string_view EventBuffer::bytes() const {
  return {reinterpret_cast<const char*>(storage_.data()), size_};
}

std::string PayloadTypeName(fb::Payload type) {
  if (type >= fb::Payload::MIN && type <= fb::Payload::MAX) {
    const char* name = fb::EnumNamePayload(type);
    if (name != nullptr && *name != '\0') return name;
  }
  return "unknown(" + std::to_string(static_cast<unsigned>(type)) + ")";
}

}  // namespace modelreg
