// The projection rows in and out: reading the state from them, rewriting
// them all from the log, and their digest. Row layout: projection/state.h.
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "registry/internal.h"

namespace modelreg::registry::internal {

std::vector<Row> ToRows(const projection::Rows& rows) {
  std::vector<Row> out;
  out.reserve(rows.size());
  for (const auto& [key, value] : rows) {
    const bool delete_row = key.rfind("p/", 0) == 0 && value.empty();
    out.push_back(Row{kProjectionCf, key,
                      delete_row ? std::nullopt : std::optional<std::string>(value)});
  }
  return out;
}

Status RowBatches::Flush() {
  if (rows_.empty()) return Status::OK();
  Status st = store_.IngestRows(kProjectionCf, rows_, head_);
  rows_.clear();
  bytes_ = 0;
  return st;
}

Status DropProjectionRows(EventStore& store, Seq head) {
  return store.ClearRows(kProjectionCf, head);
}

Status FinishRewrite(EventStore& store, const State& state, RowBatches& out, Seq head) {
  Status st;
  projection::EncodeState(state, [&](std::string&& key, std::string&& value) {
    if (!st.ok()) return;
    out.Add(std::move(key), std::move(value));
    if (out.full()) st = out.Flush();
  });
  MODELREG_RETURN_IF_ERROR(st);
  MODELREG_RETURN_IF_ERROR(out.Flush());
  MODELREG_RETURN_IF_ERROR(store.ReplaceRows(
      kProjectionCf,
      {Row{kProjectionCf, projection::kIndexMarkerKey, std::string(projection::kRowFormat)}}, head,
      {}));
  // The rows are complete and trusted; the runs are merged into the bottom
  // level now (a kill during the merge loses nothing: RocksDB finishes it
  // later).
  return out.Finish();
}

Result<bool> RowsCurrent(const EventStore& store) {
  auto marker = store.GetRow(kProjectionCf, projection::kIndexMarkerKey);
  if (!marker) return Err(marker.error());
  if (!*marker || **marker != projection::kRowFormat) return false;
  auto s = store.GetRow(kProjectionCf, "s");
  if (!s) return Err(s.error());
  if (!*s) return false;
  auto head = projection::DecodeHeadRow(**s);
  return head && head->first == store.head().seq;
}

Result<std::string> RowFormat(const EventStore& store) {
  auto marker = store.GetRow(kProjectionCf, projection::kIndexMarkerKey);
  if (!marker) return Err(marker.error());
  return marker->value_or(std::string());
}

Result<State> ReadState(const EventStore& store, bool* rows_current, bool fold_if_stale) {
  // The state rows only: the record rows ("r/") are an index beside them.
  projection::Rows rows;
  auto collect = [&rows](std::string_view k, std::string_view v) {
    rows.emplace_back(std::string(k), std::string(v));
    return true;
  };
  // Rows of another format (or none, or an interrupted rewrite) are not
  // read at all.
  auto marker = store.GetRow(kProjectionCf, projection::kIndexMarkerKey);
  if (!marker) return Err(marker.error());
  const Seq head = store.head().seq;
  if (*marker && **marker == projection::kRowFormat) {
    Status st = store.ScanRows(kProjectionCf, collect, "", "r/");
    if (st.ok()) st = store.ScanRows(kProjectionCf, collect, "s", "x/");
    if (!st.ok() && st.code() != Code::kNotFound) return Err(st);
    auto decoded = projection::DecodeState(rows);
    if (decoded && decoded->seq == head) {
      *rows_current = true;
      return decoded;
    }
  }
  Status st;
  // Missing, stale or damaged projection rows: fold the log instead.
  *rows_current = false;
  State fresh;
  if (!fold_if_stale) return fresh;
  Status fold = store.Scan(1, head, [&fresh, &st](Seq, const EventBuffer& e) {
    st = projection::Apply(fresh, e);
    return st.ok();
  });
  MODELREG_RETURN_IF_ERROR(fold);
  MODELREG_RETURN_IF_ERROR(st);
  return fresh;
}

Result<State> RewriteProjection(EventStore& store, Seq head,
                                const std::function<void(Seq)>& progress, Digest* digest) {
  // 1. Untrust the rows: drop every row, the marker included.
  MODELREG_RETURN_IF_ERROR(DropProjectionRows(store, head));
  RowBatches out(store, head);
  // 2. Fold, writing the record rows as they come.
  State fresh;
  Status st;
  Status fold = store.Scan(1, head, [&](Seq seq, const EventBuffer& e) {
    auto delta = projection::Plan(fresh, e);
    if (!delta) {
      st = delta.error();
      return false;
    }
    for (auto& [k, v] : projection::RecordRows(*delta)) out.Add(std::move(k), std::move(v));
    projection::Commit(fresh, *delta);
    if (out.full()) {
      st = out.Flush();
      if (!st.ok()) return false;
    }
    if (progress && seq % 65536 == 0) progress(seq);
    return true;
  });
  MODELREG_RETURN_IF_ERROR(fold);
  MODELREG_RETURN_IF_ERROR(st);
  // 3. The state rows, streamed the same way; 4. the marker, synced.
  MODELREG_RETURN_IF_ERROR(FinishRewrite(store, fresh, out, head));
  if (digest != nullptr) {
    auto stored = StoredRowsDigest(store);
    if (!stored) return Err(stored.error());
    *digest = *stored;
  }
  if (progress) progress(head);
  return fresh;
}

Result<Digest> StoredRowsDigest(const EventStore& store) {
  // Key order, constant memory; the digest skips the record rows.
  projection::RowsDigester digester;
  auto add = [&digester](std::string_view k, std::string_view v) {
    digester.Add(k, v);
    return true;
  };
  Status st = store.ScanRows(kProjectionCf, add, "", "r/");
  if (st.ok()) st = store.ScanRows(kProjectionCf, add, "r0", "");
  if (!st.ok() && st.code() != Code::kNotFound) return Err(st);
  return digester.Finish();
}

}  // namespace modelreg::registry::internal
