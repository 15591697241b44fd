#include "common/json_input.h"

#include <string>

namespace modelreg {

Status CheckJsonDepth(std::string_view text, std::string_view what) {
  int depth = 0;
  bool in_string = false;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
      continue;
    }
    switch (c) {
      case '"':
        in_string = true;
        break;
      case '[':
      case '{':
        if (++depth > kMaxJsonDepth) {
          return Status::InvalidArgument(std::string(what) + " nests deeper than " +
                                         std::to_string(kMaxJsonDepth) +
                                         " levels, the limit for JSON input");
        }
        break;
      case ']':
      case '}':
        // Unbalanced closers are the parser's to report; never go negative.
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return Status::OK();
}

Result<nlohmann::json> ParseJsonInput(std::string_view text, std::string_view what) {
  MODELREG_RETURN_IF_ERROR(CheckJsonDepth(text, what));
  nlohmann::json j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Err(Status::InvalidArgument(std::string(what) + " is not valid JSON"));
  }
  return j;
}

nlohmann::json ParseJsonOrDiscarded(std::string_view text) {
  if (!CheckJsonDepth(text, "").ok()) return nlohmann::json(nlohmann::json::value_t::discarded);
  return nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
}

}  // namespace modelreg
