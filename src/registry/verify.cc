// Verify: the hash chain, then the stored projection rows (state rows and
// versioned record rows) against a fold of the whole log.
#include <string>
#include <utility>

#include "registry/internal.h"
#include "registry/registry.h"

namespace modelreg::registry {

using internal::kProjectionCf;

std::string DescribeProjectionMismatch(const VerifyResult& v) {
  if (!v.records_complete) {
    // No marker row: a rewrite that never finished (its rows are partial by
    // design), or a projection written before the record rows existed.
    return "the stored projection is incomplete (a rebuild was interrupted, or an older "
           "modelreg wrote it in another row format); reads fold the log until it is rewritten by a rebuild or the "
           "next writable open";
  }
  if (v.stored_digest != v.state_digest) {
    return "the stored projection (digest " + ToHex(v.stored_digest) +
           ") differs from the fold of the log (" + ToHex(v.state_digest) + ")";
  }
  return "the stored versioned record rows (digest " + ToHex(v.stored_records_digest) +
         ") differ from the fold of the log (" + ToHex(v.records_digest) + ")";
}

Result<VerifyResult> Registry::Verify(
    const std::function<void(Seq done, Seq total)>& progress) const {
  VerifyResult out;
  auto chain = store_->Verify();
  if (!chain) return Err(chain.error());
  out.chain = *chain;
  State fold;
  Status st;
  projection::RowSetDigest expected_records;
  Status scan = store_->Scan(1, chain->head.seq, [&](Seq seq, const EventBuffer& e) {
    if (progress && seq % 4096 == 0) progress(seq, chain->head.seq);
    auto delta = projection::Plan(fold, e);
    if (!delta) {
      st = delta.error();
      return false;
    }
    for (const VersionRecord& r : delta->versions) {
      expected_records.AddCanonical(projection::RecordKey(r.model_type, r.version, seq),
                                    projection::CanonicalValue(r));
    }
    projection::Commit(fold, *delta);
    return true;
  });
  if (!chain->ok) return out;  // the fold of a broken chain proves nothing
  MODELREG_RETURN_IF_ERROR(scan);
  MODELREG_RETURN_IF_ERROR(st);
  out.state_digest = projection::StateDigest(fold);
  out.records_digest = expected_records.Finish();
  projection::Rows rows;
  projection::RowSetDigest stored_records;
  bool marker = false;
  Status rs = store_->ScanRows(kProjectionCf, [&](std::string_view k, std::string_view v) {
    if (k.substr(0, 2) == "r/") {
      stored_records.Add(k, v);
    } else if (k == projection::kIndexMarkerKey) {
      marker = v == projection::kRowFormat;
    } else {
      rows.emplace_back(std::string(k), std::string(v));
    }
    return true;
  });
  if (rs.ok()) {
    out.stored_digest = projection::RowsDigest(std::move(rows));
    out.stored_records_digest = stored_records.Finish();
  } else if (rs.code() != Code::kNotFound) {
    return Err(rs);
  }
  out.records_complete = marker;
  out.records_ok = marker && out.stored_records_digest == out.records_digest;
  out.projection_ok = out.stored_digest == out.state_digest && out.records_ok;
  return out;
}

}  // namespace modelreg::registry
