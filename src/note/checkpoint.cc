#include "note/checkpoint.h"

#include <charconv>
#include <vector>

#include "common/base64.h"

namespace modelreg::note {

namespace {

constexpr std::string_view kTimePrefix = "time ";

Status Bad(std::string what) { return Status::InvalidArgument("checkpoint: " + what); }

std::vector<std::string_view> Lines(std::string_view text) {
  std::vector<std::string_view> out;
  while (!text.empty()) {
    const auto eol = text.find('\n');
    if (eol == std::string_view::npos) {
      out.push_back(text);
      break;
    }
    out.push_back(text.substr(0, eol));
    text.remove_prefix(eol + 1);
  }
  return out;
}

}  // namespace

Result<std::string> CheckpointText(const Checkpoint& checkpoint) {
  if (checkpoint.origin.empty() || checkpoint.origin.find('\n') != std::string::npos) {
    return Err(Bad("the origin must be one non-empty line"));
  }
  std::string text = checkpoint.origin + "\n" + std::to_string(checkpoint.size) + "\n" +
                     Base64Encode(std::string_view(reinterpret_cast<const char*>(checkpoint.root.data()),
                                                   checkpoint.root.size())) +
                     "\n";
  if (checkpoint.time) text += std::string(kTimePrefix) + FormatUtc(*checkpoint.time) + "\n";
  return text;
}

Result<Checkpoint> ParseCheckpoint(std::string_view text) {
  if (text.empty() || text.back() != '\n') return Err(Bad("the text must end with a newline"));
  const auto lines = Lines(text);
  if (lines.size() < 3) return Err(Bad("fewer than three lines (origin, size, root hash)"));
  Checkpoint c;
  c.origin = std::string(lines[0]);
  if (c.origin.empty()) return Err(Bad("the origin line is empty"));
  const std::string_view size = lines[1];
  const auto [end, ec] = std::from_chars(size.data(), size.data() + size.size(), c.size);
  if (size.empty() || ec != std::errc() || end != size.data() + size.size() ||
      (size.size() > 1 && size[0] == '0')) {
    return Err(Bad("the tree size '" + std::string(size.substr(0, 40)) +
                   "' is not a decimal number"));
  }
  auto root = Base64Decode(lines[2]);
  if (!root || root->size() != c.root.size()) {
    return Err(Bad("the root hash is not base64 of 32 bytes"));
  }
  std::copy(root->begin(), root->end(), c.root.begin());
  for (std::size_t i = 3; i < lines.size(); ++i) {
    if (lines[i].empty()) return Err(Bad("an extension line is empty"));
    if (lines[i].substr(0, kTimePrefix.size()) == kTimePrefix) {
      c.time = ParseTime(lines[i].substr(kTimePrefix.size()));
      if (!c.time) return Err(Bad("the time line is not a UTC ISO-8601 time"));
    }
  }
  return c;
}

Result<std::string> SignCheckpoint(const Checkpoint& checkpoint, const SignerKey& key) {
  auto text = CheckpointText(checkpoint);
  if (!text) return text;
  return Sign(*text, key);
}

Result<Checkpoint> OpenCheckpoint(std::string_view signed_note, const VerifierKey& key) {
  auto text = Open(signed_note, key);
  if (!text) return Err(text.error());
  return ParseCheckpoint(*text);
}

}  // namespace modelreg::note
