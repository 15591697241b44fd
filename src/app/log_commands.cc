#include "app/log_commands.h"

#include <filesystem>

#include "events/model_events.h"
#include "events/sample.h"
#include "log/event_store.h"

namespace modelreg::app {

namespace {

Result<std::unique_ptr<EventStore>> OpenExisting(const std::string& root) {
  std::error_code ec;
  if (!std::filesystem::is_directory(root, ec)) {
    return Err(Status::NotFound("registry directory " + root + " does not exist"));
  }
  StoreOptions options;
  options.create_if_missing = false;
  options.read_only = true;  // works beside a running writer
  auto store = EventStore::Open(LogDir(root), options);
  if (!store && store.error().code() == Code::kNotFound) {
    return Err(Status::NotFound(root + " is not a modelreg registry (no " + LogDir(root) + ")"));
  }
  return store;
}

}  // namespace

std::string LogDir(const std::string& root) {
  return (std::filesystem::path(root) / "registry").string();
}

int ExitCode(const Status& status) {
  switch (status.code()) {
    case Code::kOk: return 0;
    case Code::kInvalidArgument: return 2;
    case Code::kNotFound: return 3;
    case Code::kAlreadyExists:
    case Code::kConflict:
    case Code::kFailedPrecondition: return 4;
    case Code::kCorruption: return 5;
    case Code::kIOError: return 6;
    case Code::kBusy: return 7;
    case Code::kInternal: return 1;
  }
  return 1;
}

Status RunEvents(const std::string& root, const EventsQuery& query, std::ostream& out) {
  auto store = OpenExisting(root);
  if (!store) return store.error();
  auto print = [&](Seq, const EventBuffer& e) {
    if (query.json) {
      out << events::ToJson(e).dump() << '\n';
    } else {
      out << events::Summary(e) << '\n';
    }
    return true;
  };
  if (query.since || query.until) {
    return (*store)->ScanTime(query.since.value_or(INT64_MIN), query.until.value_or(INT64_MAX),
                              print);
  }
  return (*store)->Scan(1, UINT64_MAX, print);
}

Status RunVerify(const std::string& root, bool json, std::ostream& out) {
  auto store = OpenExisting(root);
  if (!store) return store.error();
  auto report = (*store)->Verify();
  if (!report) return report.error();
  if (json) {
    nlohmann::json j{{"ok", report->ok},
                     {"events", report->events},
                     {"head_seq", report->head.seq},
                     {"head_hash", ToHex(report->head.hash)}};
    if (!report->ok) {
      j["first_bad_seq"] = report->first_bad_seq;
      j["problem"] = report->problem;
    }
    out << j.dump() << '\n';
  } else if (report->ok) {
    out << "chain OK: " << report->events << " events, head " << report->head.seq << " "
        << ToHex(report->head.hash) << '\n';
  }
  if (!report->ok) {
    return Status::Corruption("hash chain broken at event " +
                              std::to_string(report->first_bad_seq) + ": " + report->problem);
  }
  return Status::OK();
}

Status RunDemo(const std::string& root, const std::string& actor, std::ostream& out) {
  std::error_code ec;
  std::filesystem::create_directories(root, ec);
  if (ec) return Status::IOError("cannot create " + root + ": " + ec.message());
  auto opened = EventStore::Open(LogDir(root));
  if (!opened) return opened.error();
  EventStore& store = **opened;
  if (store.head().seq != 0) {
    return Status::FailedPrecondition("the demo needs an empty registry, but " + root +
                                      " already holds " + std::to_string(store.head().seq) +
                                      " events; remove it or pick another --root");
  }
  out << "modelreg demo: event log at " << LogDir(root) << "\n\n";

  std::uint64_t seed = 1;
  auto append = [&](const std::string& draft) -> Status {
    auto r = store.Append({draft, store.head().seq, nullptr});
    if (!r) return r.error();
    auto e = store.Get(r->seq);
    if (!e) return e.error();
    out << "  " << events::Summary(*e) << '\n';
    return Status::OK();
  };
  auto envelope = [&actor](const std::string& id) { return Envelope{actor, id, 0}; };
  auto gates_for = [](const events::Registration& r) {
    std::vector<events::Gate> gates;
    for (auto [name, threshold] : {std::pair{"ic", 0.02}, std::pair{"sharpe", 0.5}}) {
      const double v = r.metrics.at(name);
      gates.push_back({name, ">", threshold, v, true, v > threshold, ""});
    }
    return gates;
  };
  auto reg = [&](const std::string& type, const std::string& version) {
    events::Registration r = events::SampleRegistration(type, version, seed++);
    r.metrics["ic"] = 0.03 + 0.01 * static_cast<double>(seed % 5);
    r.metrics["sharpe"] = 0.9 + 0.15 * static_cast<double>(seed % 4);
    return r;
  };

  out << "Week 1: first models trained, registered and promoted\n";
  auto risk1 = reg("risk_model", "v1.0.0");
  auto alpha1 = reg("alpha_weights", "v1.0.0");
  MODELREG_RETURN_IF_ERROR(append(events::Draft(envelope(NewEventId()), risk1)));
  MODELREG_RETURN_IF_ERROR(append(events::Draft(envelope(NewEventId()), alpha1)));
  MODELREG_RETURN_IF_ERROR(append(events::Draft(
      envelope(NewEventId()),
      events::Promotion{"risk_model", "v1.0.0", "", gates_for(risk1), false, "", "first model",
                        "ic>0.02 sharpe>0.5 paper>=24h"})));
  MODELREG_RETURN_IF_ERROR(append(events::Draft(
      envelope(NewEventId()),
      events::Promotion{"alpha_weights", "v1.0.0", "", gates_for(alpha1), false, "",
                        "first model", "ic>0.02 sharpe>0.5 paper>=24h"})));

  out << "\nWeek 2: retrained risk model replaces v1.0.0\n";
  auto risk2 = reg("risk_model", "v1.1.0");
  MODELREG_RETURN_IF_ERROR(append(events::Draft(envelope(NewEventId()), risk2)));
  MODELREG_RETURN_IF_ERROR(append(events::Draft(
      envelope(NewEventId()), events::Validation{"risk_model", "v1.1.0", true,
                                                 risk2.artifact_sha256, risk2.artifact_sha256,
                                                 risk2.artifact_size, ""})));
  MODELREG_RETURN_IF_ERROR(append(events::Draft(
      envelope(NewEventId()),
      events::Promotion{"risk_model", "v1.1.0", "v1.0.0", gates_for(risk2), false, "",
                        "weekly retrain", "ic>0.02 sharpe>0.5 paper>=24h"})));

  out << "\nWeek 3: v1.2.0 goes live, loses money, emergency rollback to v1.1.0\n";
  auto risk3 = reg("risk_model", "v1.2.0");
  MODELREG_RETURN_IF_ERROR(append(events::Draft(envelope(NewEventId()), risk3)));
  MODELREG_RETURN_IF_ERROR(append(events::Draft(
      envelope(NewEventId()),
      events::Promotion{"risk_model", "v1.2.0", "v1.1.0", gates_for(risk3), false, "",
                        "weekly retrain", "ic>0.02 sharpe>0.5 paper>=24h"})));
  MODELREG_RETURN_IF_ERROR(append(events::Draft(
      envelope(NewEventId()), events::Rollback{"risk_model", "v1.2.0", "v1.1.0", true,
                                               "strategy losing money since 10:00"})));
  auto alpha2 = reg("alpha_weights", "v1.1.0");
  MODELREG_RETURN_IF_ERROR(append(events::Draft(envelope(NewEventId()), alpha2)));
  MODELREG_RETURN_IF_ERROR(append(events::Draft(
      envelope(NewEventId()),
      events::Failure{"alpha_weights", "v1.1.0", "test prediction returned NaN"})));

  out << "\nRetrying an append with the same event_id is idempotent:\n";
  const std::string retry_id = NewEventId();
  const std::string draft = events::Draft(
      envelope(retry_id), events::Archive{"risk_model", "v1.0.0", "superseded"});
  auto first = store.Append({draft, std::nullopt, nullptr});
  if (!first) return first.error();
  auto again = store.Append({draft, std::nullopt, nullptr});
  if (!again) return again.error();
  out << "  first append -> event " << first->seq << ", retry -> event " << again->seq
      << (again->duplicate ? " (duplicate, nothing written)" : "") << '\n';

  out << "\nA writer holding a stale head is refused:\n";
  auto stale = store.Append({events::Draft(envelope(NewEventId()),
                                           events::Archive{"alpha_weights", "v1.0.0", ""}),
                             Seq{3}, nullptr});
  out << "  " << (stale ? std::string("unexpectedly accepted") : stale.error().ToString())
      << '\n';

  auto report = store.Verify();
  if (!report) return report.error();
  out << "\nverify: " << (report->ok ? "chain OK" : "BROKEN: " + report->problem) << ", "
      << report->events << " events, head hash " << ToHex(report->head.hash) << '\n';
  out << "\nInspect it yourself:\n  modelreg --root " << root << " events --json\n"
      << "  modelreg --root " << root << " verify\n";
  return report->ok ? Status::OK() : Status::Corruption(report->problem);
}

}  // namespace modelreg::app
