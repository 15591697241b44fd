#include "artifacts/manifest.h"

#include <filesystem>
#include <fstream>
#include <utility>

#include <nlohmann/json.hpp>

namespace modelreg::artifacts {

namespace {

std::string JsonString(std::string_view s) {
  return nlohmann::json(s).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

// Reads the top-level "head_seq" of a manifest and stops there.
class HeadSeqReader : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::optional<std::uint64_t> head_seq;

  bool null() override { return Value(); }
  bool boolean(bool) override { return Value(); }
  bool number_integer(number_integer_t) override { return Value(); }
  bool number_unsigned(number_unsigned_t v) override {
    if (want_) {
      head_seq = v;
      return false;  // found: stop reading
    }
    return true;
  }
  bool number_float(number_float_t, const string_t&) override { return Value(); }
  bool string(string_t&) override { return Value(); }
  bool binary(binary_t&) override { return Value(); }
  bool start_object(std::size_t) override { return Open(); }
  bool key(string_t& k) override {
    want_ = depth_ == 1 && k == "head_seq";
    return true;
  }
  bool end_object() override { return Close(); }
  bool start_array(std::size_t) override { return Open(); }
  bool end_array() override { return Close(); }
  bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override {
    return false;
  }

 private:
  bool Value() { return !want_; }  // head_seq of another type: stop, not current
  bool Open() {
    if (want_) return false;
    ++depth_;
    return true;
  }
  bool Close() {
    --depth_;
    return true;
  }
  int depth_ = 0;
  bool want_ = false;
};

}  // namespace

std::string ManifestPath(const std::string& root) {
  return (std::filesystem::path(root) / "manifest.json").string();
}

ManifestWriter::ManifestWriter(std::uint64_t head_seq, const Digest& head_hash) {
  out_ += "{\n  \"format_version\": 1,\n  \"head_hash\": \"";
  out_ += ToHex(head_hash);
  out_ += "\",\n  \"head_seq\": " + std::to_string(head_seq) + ",\n  \"types\": {";
}

void ManifestWriter::Type(std::string_view type, std::string_view production) {
  CloseType();
  out_ += first_type_ ? "\n    " : ",\n    ";
  first_type_ = false;
  out_ += JsonString(type) + ": {\n      \"production\": ";
  out_ += production.empty() ? std::string("null") : JsonString(production);
  out_ += ",\n      \"versions\": [";
  type_ = std::string(type);
  in_type_ = true;
  first_version_ = true;
}

void ManifestWriter::Version(const ManifestVersion& v) {
  out_ += first_version_ ? "\n        " : ",\n        ";
  first_version_ = false;
  out_ += "{\"artifact_path\": ";
  out_ += v.purged ? std::string("null")
                   : JsonString("artifacts/" + type_ + "/" + std::string(v.version) + "/" +
                                std::string(v.artifact_name));
  out_ += ", \"sha256\": " + JsonString(v.sha256);
  out_ += ", \"size\": " + std::to_string(v.size);
  out_ += ", \"status\": \"" + std::string(v.status) + "\"";
  out_ += ", \"version\": " + JsonString(v.version) + "}";
}

void ManifestWriter::CloseType() {
  if (!in_type_) return;
  out_ += first_version_ ? "]\n    }" : "\n      ]\n    }";
  in_type_ = false;
}

std::string ManifestWriter::Finish(TimeNs updated_at) {
  CloseType();
  out_ += first_type_ ? "},\n" : "\n  },\n";
  out_ += "  \"updated_at\": " + JsonString(FormatUtc(updated_at)) + "\n}\n";
  return std::move(out_);
}

std::optional<std::uint64_t> ReadManifestHeadSeq(const std::string& path) {
  // Only a regular file: reading a directory (or a FIFO) that stands in its
  // place would throw from the stream buffer, or block.
  std::error_code ec;
  if (!std::filesystem::is_regular_file(std::filesystem::symlink_status(path, ec))) {
    return std::nullopt;
  }
  std::ifstream in(path, std::ios::binary);
  HeadSeqReader reader;
  if (in) nlohmann::json::sax_parse(in, &reader);
  return reader.head_seq;
}

}  // namespace modelreg::artifacts
