#include "portable/export_format.h"

#include <fstream>
#include <optional>

#include <nlohmann/json.hpp>

#include "artifacts/artifact_store.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/json_input.h"
#include "model/naming.h"

namespace modelreg::portable {

namespace {

using nlohmann::json;

// An exported event line is base64 of at most kMaxEventBytes plus a little
// JSON; anything longer is not one of ours.
constexpr std::size_t kMaxLineBytes = kMaxEventBytes / 3 * 4 + 4096;

Digest PrevHashOf(const fb::Event& e) {
  Digest d{};
  if (const fb::Hash32* h = e.prev_hash()) std::copy(h->bytes()->begin(), h->bytes()->end(), d.begin());
  return d;
}

Digest Chain(const Digest& prev, std::string_view bytes) {
  Sha256 h;
  h.Update(std::span<const std::uint8_t>(prev.data(), prev.size()));
  h.Update(bytes);
  return h.Finish();
}

// Typed reads of a field of an untrusted JSON object: nullopt when it is
// absent or of another JSON type (json::value() and get<>() throw there).
std::optional<std::string> StringField(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_string()) return std::nullopt;
  return it->get<std::string>();
}

std::optional<Seq> CountField(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end() || !it->is_number_unsigned()) return std::nullopt;
  return it->get<Seq>();
}

// A field's value for a message: JSON text, cut short, "absent" if absent.
std::string Shown(const json& obj, const char* key) {
  auto it = obj.find(key);
  if (it == obj.end()) return "absent";
  std::string text = it->dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 40) text = text.substr(0, 37) + "...";
  return text;
}

// Reads one line of at most kMaxLineBytes; false at the end of the file.
Result<bool> ReadLine(std::istream& in, std::string* line, std::size_t line_no,
                      const std::string& path) {
  line->clear();
  char c;
  while (in.get(c)) {
    if (c == '\n') return true;
    line->push_back(c);
    if (line->size() > kMaxLineBytes) {
      return Err(Status::InvalidArgument(path + " line " + std::to_string(line_no) +
                                         " is longer than any exported event"));
    }
  }
  return !line->empty();
}

// Walks an export file: header, events (each passed to `on_event` with its
// bytes once checked), trailer. Every check error names the line.
Result<ImportSummary> Walk(const std::string& path,
                           const std::function<Status(std::string&&)>& on_event) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err(Status::NotFound("cannot read export file " + path));
  auto bad = [&path](std::size_t line, const std::string& what) {
    return Err(Status::InvalidArgument(path + " line " + std::to_string(line) + ": " + what +
                                       "; nothing was imported"));
  };
  std::string line;
  std::size_t line_no = 1;
  auto got = ReadLine(in, &line, line_no, path);
  if (!got) return Err(got.error());
  if (*got) {
    if (Status depth = CheckJsonDepth(line, "the header"); !depth.ok()) {
      return bad(1, depth.message());
    }
  }
  json header = *got ? json::parse(line, nullptr, false) : json();
  // Every field is type-checked before use: the file is untrusted input.
  if (!header.is_object() || StringField(header, "format") != kFormatName) {
    return bad(1, "not a modelreg export (the first line must be its header)");
  }
  if (CountField(header, "format_version") != Seq{kFormatVersion}) {
    return bad(1, "export format version " + Shown(header, "format_version") +
                      " is not one this modelreg reads (" + std::to_string(kFormatVersion) + ")");
  }
  const std::optional<Seq> header_events = CountField(header, "events");
  if (!header_events) {
    return bad(1, "the header's event count is " + Shown(header, "events") +
                      ", not a non-negative integer");
  }
  ImportSummary summary;
  TimeNs last_time = 0;
  EventBuffer buf;
  for (;;) {
    ++line_no;
    got = ReadLine(in, &line, line_no, path);
    if (!got) return Err(got.error());
    if (!*got) return bad(line_no, "the file ends without its trailer (truncated?)");
    if (Status depth = CheckJsonDepth(line, "the line"); !depth.ok()) {
      return bad(line_no, depth.message());
    }
    const json j = json::parse(line, nullptr, false);
    if (!j.is_object()) return bad(line_no, "not a JSON object");
    if (j.contains("end")) {
      if (StringField(j, "end") != kFormatName) {
        return bad(line_no, "the trailer's \"end\" is " + Shown(j, "end") + ", not \"" +
                                kFormatName + "\"");
      }
      if (CountField(j, "events") != summary.events) {
        return bad(line_no, "the trailer counts " + Shown(j, "events") +
                                " events but the file holds " + std::to_string(summary.events));
      }
      if (StringField(j, "head_hash") != ToHex(summary.head_hash)) {
        return bad(line_no, "the trailer's head hash does not match the events");
      }
      break;
    }
    const Seq seq = summary.events + 1;
    if (CountField(j, "seq") != seq) return bad(line_no, "expected event " + std::to_string(seq));
    const std::optional<std::string> encoded = StringField(j, "event");
    if (!encoded) return bad(line_no, "no event bytes");
    auto bytes = Base64Decode(*encoded);
    if (!bytes) return bad(line_no, "event bytes are not base64");
    Status st = buf.Assign(*bytes);
    if (!st.ok()) return bad(line_no, st.message());
    if (buf.event().sequence() != seq) return bad(line_no, "the event says it is another sequence");
    // The chain proves the bytes are what some writer wrote, not that the
    // writer was modelreg: check what later becomes paths and keys.
    const fb::Event& ev = buf.event();
    if (ev.prev_hash() == nullptr || ev.event_id() == nullptr || ev.event_id()->size() == 0 ||
        ev.actor() == nullptr || ev.actor()->size() == 0) {
      return bad(line_no, "the event lacks prev_hash, event_id or actor");
    }
    if (const auto* reg = ev.payload_as_ModelRegistered()) {
      const std::string type = reg->model_type() ? reg->model_type()->str() : "";
      const std::string version = reg->version() ? reg->version()->str() : "";
      const std::string file = reg->artifact_name() ? reg->artifact_name()->str() : "";
      for (const Status& check : {model::ValidateModelType(type),
                                  model::ValidateVersion(version),
                                  artifacts::ValidateFileName(file)}) {
        if (!check.ok()) return bad(line_no, "registration: " + check.message());
      }
    }
    if (PrevHashOf(buf.event()) != summary.head_hash) {
      return bad(line_no, "prev_hash does not match the previous event (chain broken)");
    }
    if (seq > 1 && buf.event().recorded_at() <= last_time) {
      return bad(line_no, "recorded_at does not increase");
    }
    const Digest hash = Chain(summary.head_hash, buf.bytes());
    if (StringField(j, "hash") != ToHex(hash)) {
      return bad(line_no, "the event's bytes do not match its hash (altered)");
    }
    last_time = buf.event().recorded_at();
    summary.head_hash = hash;
    summary.events = seq;
    if (on_event) MODELREG_RETURN_IF_ERROR(on_event(std::move(*bytes)));
  }
  if (*header_events != summary.events) {
    return bad(1, "the header counts " + std::to_string(*header_events) + " events");
  }
  return summary;
}

}  // namespace

Status ExportLog(const EventStore& store, std::ostream& out, const ProgressFn& progress) {
  const Head head = store.head();
  out << json{{"format", kFormatName},
              {"format_version", kFormatVersion},
              {"description",
               "modelreg event log. One JSON object per line: this header; then per event its "
               "seq, type, recorded_at (informative), hash (hex SHA-256 of the previous hash "
               "followed by the event bytes) and event (base64 of the FlatBuffers bytes exactly "
               "as stored, schema modelreg.fb.Event, file identifier MREV); then a trailer "
               "{\"end\": ...} with the count and the head hash. See docs/export.md."},
              {"events", head.seq},
              {"head_seq", head.seq},
              {"head_hash", ToHex(head.hash)}}
             .dump()
      << '\n';
  Digest running{};
  Status chain;
  MODELREG_RETURN_IF_ERROR(store.Scan(1, head.seq, [&](Seq seq, const EventBuffer& e) {
    if (PrevHashOf(e.event()) != running) {
      chain = Status::Corruption("hash chain broken at event " + std::to_string(seq) +
                                 "; run `modelreg verify`");
      return false;
    }
    running = Chain(running, e.bytes());
    if (progress && seq % 4096 == 0) progress(seq, head.seq);
    out << json{{"seq", seq},
                {"type", PayloadTypeName(e.event().payload_type())},
                {"recorded_at", FormatUtc(e.event().recorded_at())},
                {"hash", ToHex(running)},
                {"event", Base64Encode(e.bytes())}}
               .dump()
        << '\n';
    return true;
  }));
  MODELREG_RETURN_IF_ERROR(chain);
  if (running != head.hash) return Status::Corruption("the head hash does not match the events");
  out << json{{"end", kFormatName}, {"events", head.seq}, {"head_hash", ToHex(head.hash)}}.dump()
      << '\n';
  out.flush();
  if (!out) return Status::IOError("writing the export failed");
  return Status::OK();
}

Result<ImportSummary> CheckExport(const std::string& path) { return Walk(path, nullptr); }

Status ImportInto(const std::string& path, EventStore& store, Seq total,
                  const ProgressFn& progress) {
  if (store.head().seq != 0) {
    return Status::FailedPrecondition("imports go into an empty registry");
  }
  // The events come from a second walk of the (already checked) file.
  std::vector<std::string> pending;
  Status append_status;
  std::size_t next_index = 0;
  auto drain = [&]() -> Status {
    next_index = 0;
    Status st = store.AppendVerbatim([&]() -> Result<std::optional<std::string>> {
      if (next_index == pending.size()) return std::optional<std::string>();
      return std::optional<std::string>(std::move(pending[next_index++]));
    });
    pending.clear();
    if (st.ok() && progress) progress(store.head().seq, total);
    return st;
  };
  // Appended in batches of 4096 events or 64 MiB, whichever comes first
  // (events may be up to kMaxEventBytes each: 4096 of those would be 16 GiB).
  constexpr std::size_t kBatchEvents = 4096, kBatchBytes = 64u << 20;
  std::size_t pending_bytes = 0;
  auto walked = Walk(path, [&](std::string&& bytes) -> Status {
    pending_bytes += bytes.size();
    pending.push_back(std::move(bytes));
    if (pending.size() >= kBatchEvents || pending_bytes >= kBatchBytes) {
      pending_bytes = 0;
      return drain();
    }
    return Status::OK();
  });
  if (!walked) return walked.error();
  return drain();
}

}  // namespace modelreg::portable
