// The `modelreg._modelreg` extension module: the C++ library as the Python
// package (src/python/modelreg) calls it. Deliberately thin — every rule
// (names, metadata, gates, transitions, the cache key, compatibility)
// runs in the C++ functions called here, the same ones the CLI calls, and
// every answer is the JSON the CLI's --json and the HTTP API give
// (src/query/render.h). docs/python.md describes the Python side.
//
// Errors: a non-OK Status becomes the exception class of its code, made by
// modelreg.errors.from_status (the hierarchy lives in Python). The GIL is
// released around every call into the library; callbacks (a loader's
// load_fn, a cache's compute_fn) take it back while Python code runs.
#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/exit_codes.h"
#include "app/loader_commands.h"
#include "app/registry_commands.h"
#include "app/replication_commands.h"
#include "cache/expression_cache.h"
#include "client/remote.h"
#include "common/json_input.h"
#include "compat/compatibility.h"
#include "events/model_events.h"
#include "loader/production_loader.h"
#include "log/envelope.h"
#include "model/naming.h"
#include "query/query.h"
#include "registry/metadata.h"
#include "registry/registry.h"

namespace py = pybind11;
using nlohmann::json;

namespace modelreg::python {
namespace {

// A Status on its way to Python (translated in the module's init).
struct StatusError {
  Status status;
};

[[noreturn]] void Raise(Status st) { throw StatusError{std::move(st)}; }

template <typename T>
T Take(Result<T> r) {
  if (!r) Raise(r.error());
  return std::move(*r);
}

// A Python exception raised by a callback, kept while the C++ call unwinds
// and raised again once it returned.
struct PendingError {
  std::optional<py::error_already_set> error;
  void RaiseIfAny() {
    if (error) {
      py::error_already_set e = std::move(*error);
      error.reset();
      throw e;
    }
  }
};

struct Notices {
  std::mutex mu;
  std::vector<std::string> lines;
};

void Warn(Notices& n) {
  std::vector<std::string> lines;
  {
    std::lock_guard<std::mutex> lock(n.mu);
    lines.swap(n.lines);
  }
  if (lines.empty()) return;
  py::object category = py::module_::import("modelreg.errors").attr("RegistryWarning");
  for (const std::string& line : lines) {
    if (PyErr_WarnEx(category.ptr(), line.c_str(), 2) != 0) throw py::error_already_set();
  }
}

// One registry, embedded (root) or through a server (url + token): the
// CLI's Globals, with --json.
class Session {
 public:
  Session(std::string root, std::string url, std::string token, std::string actor,
          bool actor_given, int lock_wait_ms) {
    g_.root = std::move(root);
    g_.url = std::move(url);
    g_.token = std::move(token);
    g_.actor = std::move(actor);
    g_.actor_given = actor_given;
    g_.lock_wait_ms = lock_wait_ms;
    g_.json = true;
  }

  // Runs one of the CLI's Run* functions without the GIL; its JSON output.
  // Its warnings and notes become Python warnings (modelreg.RegistryWarning)
  // once it returned.
  template <typename F>
  std::string Run(const std::string& reason, F&& f) {
    std::ostringstream out;
    std::ostringstream err;
    Status st;
    auto notices = std::make_shared<Notices>();
    {
      py::gil_scoped_release nogil;
      app::Globals g = g_;
      g.reason = reason;
      g.notice = [notices](const std::string& kind, const std::string& message) {
        std::lock_guard<std::mutex> lock(notices->mu);
        notices->lines.push_back(kind == "warning" ? message : kind + ": " + message);
      };
      st = f(g, out, err);
    }
    Warn(*notices);
    if (!st.ok()) Raise(st);
    return out.str();
  }

  std::string Register(const std::string& type, const std::string& version,
                       const std::string& path, std::optional<std::string> metadata_json,
                       std::optional<std::string> config_json) {
    app::RegisterOptions o;
    o.type = type;
    o.version = version;
    o.path = path;
    o.metadata_json = std::move(metadata_json);
    o.config_json = std::move(config_json);
    return Run("", [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunRegister(g, o, out);
    });
  }

  std::string Promote(const std::string& type, const std::string& version,
                      const std::string& reason, std::optional<std::string> expect_current,
                      bool override_gates) {
    return Run(reason, [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      Status st = app::RunPromote(g, type, version, expect_current, override_gates, out);
      // The CLI names its flag; here the argument is expect_current.
      const std::string flag = " (--expect-current)";
      if (const auto at = st.message().find(flag); at != std::string::npos) {
        std::string m = st.message();
        m.replace(at, flag.size(), " (expect_current)");
        st = Status(st.code(), m);
      }
      return st;
    });
  }

  std::string Archive(const std::string& type, const std::string& version,
                      const std::string& reason) {
    return Run(reason, [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunArchive(g, type, version, out);
    });
  }

  std::string Fail(const std::string& type, const std::string& version, const std::string& reason,
                   bool force) {
    return Run(reason, [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunFail(g, type, version, force, out);
    });
  }

  std::string Rollback(const std::string& type, const std::string& reason, const std::string& to,
                       bool fail_current, bool dry_run) {
    return Run(reason, [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunRollback(g, type, app::RollbackCliOptions{fail_current, to, dry_run}, out);
    });
  }

  std::string Validate(const std::string& type, const std::string& version,
                       const std::string& reason) {
    return Run(reason, [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunValidate(g, type, version, out);
    });
  }

  std::string Annotate(const std::string& type, const std::string& version,
                       const std::string& reason, const std::vector<std::string>& tags,
                       const std::vector<std::string>& untags,
                       std::optional<std::string> description,
                       const std::vector<std::string>& metrics, const std::string& source) {
    app::AnnotateOptions o;
    o.type = type;
    o.version = version;
    o.tags = tags;
    o.untags = untags;
    o.description = std::move(description);
    o.metrics = metrics;
    o.source = source;
    return Run(reason, [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunAnnotate(g, o, out);
    });
  }

  // The production version now or at `at`; the JSON with "production":
  // null when there is none (the CLI's NotFound).
  std::string Current(const std::string& type, std::optional<TimeNs> at) {
    return Run("", [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      Status st = app::RunCurrent(g, type, at, out);
      // No production version: the answer says so ("production": null).
      return st.code() == Code::kNotFound && out.tellp() > 0 ? Status::OK() : st;
    });
  }

  std::string Consumers(const std::string& type) {
    return Run("", [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunConsumers(g, type, out);
    });
  }

  std::string Show(const std::string& type, const std::string& version,
                   std::optional<TimeNs> at) {
    return Run("", [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunShow(g, type, version, at, out);
    });
  }

  std::string List(const std::string& type, const std::string& status, const std::string& sort,
                   std::optional<TimeNs> at, const std::vector<std::string>& tags,
                   std::optional<TimeNs> since, std::optional<TimeNs> until, std::size_t limit) {
    app::ListOptions o;
    o.type = type;
    o.status = status;
    o.sort = sort;
    o.at = at;
    o.tags = tags;
    o.rows = Rows(since, until, limit);
    return Run("", [&](const app::Globals& g, std::ostream& out, std::ostream& err) {
      return app::RunList(g, o, out, err);
    });
  }

  std::string History(const std::string& type, std::optional<TimeNs> since,
                      std::optional<TimeNs> until, std::size_t limit) {
    const app::RowOptions rows = Rows(since, until, limit);
    return Run("", [&](const app::Globals& g, std::ostream& out, std::ostream& err) {
      return app::RunHistory(g, type, rows, out, err);
    });
  }

  std::string Audit(TimeNs at, const std::string& type) {
    return Run("", [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunAudit(g, at, type, out);
    });
  }

  std::string Diff(TimeNs from, TimeNs to) {
    return Run("", [&](const app::Globals& g, std::ostream& out, std::ostream&) {
      return app::RunDiff(g, from, to, out);
    });
  }

  // Events after sequence `after` (at most `limit`, 0 = all), from the
  // registry directory: {"events": [...], "last": the last seq looked at}.
  std::string Events(Seq after, const std::string& type, std::size_t limit) {
    json reply;
    Status st;
    {
      py::gil_scoped_release nogil;
      st = [&]() -> Status {
        if (!type.empty()) MODELREG_RETURN_IF_ERROR(model::ValidateModelType(type));
        registry::RegistryOptions o;
        o.root = g_.root;
        o.read_only = true;
        o.on_warning = [](const std::string&) {};
        auto reg = registry::Registry::Open(o);
        if (!reg) return reg.error();
        query::EventFilter filter;
        filter.model_type = type;
        json events = json::array();
        auto last = query::Query(**reg).Events(after + 1, filter, limit,
                                               [&](const EventBuffer& e) {
                                                 events.push_back(events::ToJson(e));
                                                 return true;
                                               });
        if (!last) return last.error();
        reply = {{"events", std::move(events)}, {"last", std::max<Seq>(*last, after)}};
        return Status::OK();
      }();
    }
    if (!st.ok()) Raise(st);
    return reply.dump();
  }

  // GET `path` of the server (the remote reads).
  std::string Get(const std::string& path) {
    Result<json> r = json();
    {
      py::gil_scoped_release nogil;
      client::RemoteRegistry remote(g_.url, g_.token);
      r = remote.Get(path);
    }
    return Take(std::move(r)).dump();
  }

  const std::string& root() const { return g_.root; }
  const std::string& url() const { return g_.url; }
  const std::string& actor() const { return g_.actor; }
  const std::string& token() const { return g_.token; }

 private:
  static app::RowOptions Rows(std::optional<TimeNs> since, std::optional<TimeNs> until,
                              std::size_t limit) {
    auto rows = app::ResolveRows(since, until, limit, /*json=*/true, /*stdout_is_terminal=*/false);
    if (!rows) Raise(rows.error());
    return *rows;
  }
  app::Globals g_;
};


// --- the spec's helpers ---

// capture_environment(): where this process runs (registry/metadata.h).
std::map<std::string, std::string> CaptureEnvironmentMap() {
  const events::Environment e = registry::CaptureEnvironment();
  std::map<std::string, std::string> m = e.extra;
  m["hostname"] = e.hostname;
  m["user"] = e.user;
  m["os"] = e.os;
  m["tool_version"] = e.tool_version;
  m["git_commit"] = e.git_commit;
  return m;
}

// compute_config_hash(config): SHA-256 of the canonical JSON of `config`
// (JSON text from Python's json.dumps), as registration checks it.
std::string ConfigHashOf(const std::string& config_json) {
  json config = Take(ParseJsonInput(config_json, "config"));
  return registry::ConfigHash(config);
}

py::tuple CheckCompatibility(const std::map<std::string, std::string>& model_versions,
                             const std::map<std::string, std::string>& current_versions,
                             bool strict) {
  const compat::Result r =
      compat::VersionCompatibilityChecker(strict).Check(model_versions, current_versions);
  return py::make_tuple(r.compatible, std::string(compat::LevelName(r.level)), r.warnings);
}

// --- the factor cache ---

class Cache {
 public:
  Cache(std::string dir, TimeNs ttl, std::uint64_t max_value_bytes) {
    cache::CacheOptions o;
    o.dir = std::move(dir);
    o.ttl = ttl;
    o.max_value_bytes = max_value_bytes;
    cache_ = std::make_unique<cache::DiskExpressionCache>(std::move(o));
  }

  // (value, was_cached, store_error or None, dropped_corrupt)
  py::tuple GetOrCompute(const std::string& factor_name, const std::string& as_of_date,
                         const std::string& snapshot_id,
                         const std::map<std::string, std::string>& version_ids,
                         const std::string& config_hash, const py::function& compute) {
    PendingError pending;
    Result<cache::Lookup> r = Err(Status::Internal("not run"));
    {
      py::gil_scoped_release nogil;
      r = cache_->GetOrCompute(
          factor_name, as_of_date, snapshot_id, version_ids, config_hash,
          [&]() -> Result<std::string> {
            py::gil_scoped_acquire gil;
            try {
              py::object v = compute();
              if (!py::isinstance<py::bytes>(v)) {
                throw py::type_error("compute_fn must return bytes (or use a codec), got " +
                                     std::string(py::str(py::type::of(v).attr("__name__"))));
              }
              return std::string(v.cast<py::bytes>());
            } catch (py::error_already_set& e) {
              pending.error = std::move(e);
            } catch (const py::builtin_exception& e) {
              e.set_error();
              pending.error = py::error_already_set();
            }
            return Err(Status::Internal("compute_fn raised an exception"));
          });
    }
    pending.RaiseIfAny();
    cache::Lookup l = Take(std::move(r));
    py::object store_error = py::none();
    if (!l.store_status.ok()) store_error = py::str(l.store_status.ToString());
    return py::make_tuple(py::bytes(l.value), l.was_cached, store_error, l.dropped_corrupt);
  }

  // {"entries", "bytes", "expired", "corrupt", "hits", "misses", ...}
  std::string Stats() const {
    Result<cache::CacheStats> r = Err(Status::Internal("not run"));
    {
      py::gil_scoped_release nogil;
      r = cache_->Stats();
    }
    const cache::CacheStats s = Take(std::move(r));
    json j = {{"entries", s.entries},       {"bytes", s.bytes},
              {"expired", s.expired},       {"corrupt", s.corrupt},
              {"temp_files", s.temp_files}, {"lock_files", s.lock_files},
              {"hits", s.hits},             {"misses", s.misses},
              {"store_failures", s.store_failures}, {"corrupt_dropped", s.corrupt_dropped}};
    json factors = json::object();
    for (const auto& [name, f] : s.factors) {
      factors[name] = {{"entries", f.entries}, {"bytes", f.bytes}, {"expired", f.expired}};
    }
    j["factors"] = std::move(factors);
    return j.dump();
  }

  // Entries removed: of a factor, or built on a dataset version.
  std::uint64_t Invalidate(std::optional<std::string> factor,
                           std::optional<std::pair<std::string, std::string>> dataset) {
    Result<cache::PurgeResult> r = Err(Status::Internal("not run"));
    {
      py::gil_scoped_release nogil;
      r = cache_->Purge(cache::PurgeFilter{std::move(factor), std::move(dataset)});
    }
    return Take(std::move(r)).removed;
  }

  const std::string& dir() const { return cache_->dir(); }

 private:
  std::unique_ptr<cache::DiskExpressionCache> cache_;
};

// --- the loader ---

// A Python object held by the C++ loader (its Loaded::model): released
// with the GIL, or left alone once the interpreter is shutting down.
std::shared_ptr<const void> Hold(py::object o) {
  return std::shared_ptr<const void>(new py::object(std::move(o)), [](const void* p) {
    auto* obj = static_cast<py::object*>(const_cast<void*>(p));
    if (!Py_IsInitialized() || _Py_IsFinalizing()) return;  // leaked at exit: harmless
    py::gil_scoped_acquire gil;
    delete obj;
  });
}

py::dict FileDict(const loader::ModelFile& f) {
  py::dict d;
  d["model_type"] = f.model_type;
  d["version"] = f.version;
  d["sha256"] = f.sha256;
  d["path"] = f.path;
  d["dataset_version_ids"] = f.dataset_version_ids;
  d["directory"] = f.directory;
  return d;
}

class Loader {
 public:
  // `load(path, info)` returns the model; `on_error(line)` and
  // `on_swap(info)` are optional.
  Loader(const std::string& model_type, const std::string& consumer_id, const std::string& root,
         const std::string& url, const std::string& token, const std::string& cache_dir,
         const std::map<std::string, std::string>& current_datasets, bool strict,
         double poll_interval_s, int wait_seconds, bool acknowledge, py::function load,
         py::object on_error, py::object on_swap) {
    loader::LoaderOptions o;
    o.model_type = model_type;
    o.consumer_id = consumer_id;
    o.root = root;
    o.url = url;
    o.token = token;
    o.cache_dir = cache_dir;
    o.current_datasets = current_datasets;
    o.strict_compatibility = strict;
    o.poll_interval = std::chrono::milliseconds(
        std::max<long long>(1, static_cast<long long>(poll_interval_s * 1000.0)));
    o.wait_seconds = wait_seconds;
    o.acknowledge = acknowledge;
    // The callables are kept by shared pointers whose last release takes
    // the GIL (they may be dropped on the loader's thread).
    auto load_fn = std::static_pointer_cast<const py::object>(Hold(std::move(load)));
    if (!on_error.is_none()) {
      auto cb = std::static_pointer_cast<const py::object>(Hold(std::move(on_error)));
      o.on_error = [cb](const std::string& line) {
        py::gil_scoped_acquire gil;
        try {
          (*cb)(line);
        } catch (py::error_already_set& e) {
          e.discard_as_unraisable("modelreg loader on_error callback");
        }
      };
    }
    if (!on_swap.is_none()) {
      auto cb = std::static_pointer_cast<const py::object>(Hold(std::move(on_swap)));
      o.on_swap = [cb](const loader::Loaded& l) {
        py::gil_scoped_acquire gil;
        try {
          (*cb)(FileDict(l.file));
        } catch (py::error_already_set& e) {
          e.discard_as_unraisable("modelreg loader on_swap callback");
        }
      };
    }
    loader::LoadFn fn = [load_fn](const loader::ModelFile& f) -> Result<std::shared_ptr<const void>> {
      py::gil_scoped_acquire gil;
      try {
        py::object model = (*load_fn)(f.path, FileDict(f));
        return Hold(std::move(model));
      } catch (py::error_already_set& e) {
        std::string what = e.what();
        if (const auto nl = what.find('\n'); nl != std::string::npos) what.resize(nl);
        return Err(Status::FailedPrecondition("load_fn raised " + what));
      }
    };
    Result<std::unique_ptr<loader::ProductionModelLoader>> r = Err(Status::Internal("not run"));
    {
      py::gil_scoped_release nogil;
      r = loader::ProductionModelLoader::Start(std::move(o), std::move(fn));
    }
    loader_ = Take(std::move(r));
  }

  ~Loader() { Close(); }

  // Stops following (waits for a load in progress).
  void Close() {
    if (!loader_) return;
    last_ = loader_->Current();
    last_stats_ = loader_->stats();
    py::gil_scoped_release nogil;
    loader_.reset();
  }

  // (model, info) of the model in use, or None.
  py::object Current() const {
    std::shared_ptr<const loader::Loaded> l = loader_ ? loader_->Current() : last_;
    if (!l) return py::none();
    const auto* obj = static_cast<const py::object*>(l->model.get());
    py::dict info = FileDict(l->file);
    info["loaded_at_ns"] = l->loaded_at;
    return py::make_tuple(*obj, info);
  }

  void ReloadNow() {
    if (!loader_) Raise(Status::FailedPrecondition("the loader is closed"));
    Status st;
    {
      py::gil_scoped_release nogil;
      st = loader_->ReloadNow();
    }
    if (!st.ok()) Raise(st);
  }

  py::dict Stats() const {
    const auto s = loader_ ? loader_->stats() : last_stats_;
    py::dict d;
    d["swaps"] = s.swaps;
    d["failures"] = s.failures;
    d["last_error"] = s.last_error;
    return d;
  }

 private:
  std::unique_ptr<loader::ProductionModelLoader> loader_;
  std::shared_ptr<const loader::Loaded> last_;  // after Close
  loader::ProductionModelLoader::Stats last_stats_;
};

}  // namespace
}  // namespace modelreg::python

PYBIND11_MODULE(_modelreg, m) {
  using namespace modelreg;
  using namespace modelreg::python;
  m.doc() = "The modelreg C++ library as the modelreg package calls it (docs/python.md).";
  m.attr("__version__") = MODELREG_VERSION;
  // Writes to a replicated registry ship through NATS (docs/replication.md).
  app::InstallReplication();

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const StatusError& e) {
      py::object from_status = py::module_::import("modelreg.errors").attr("from_status");
      py::object exc = from_status(std::string(CodeName(e.status.code())), e.status.message(),
                                   app::ExitCode(e.status));
      PyErr_SetObject(reinterpret_cast<PyObject*>(Py_TYPE(exc.ptr())), exc.ptr());
    }
  });

  py::class_<Session>(m, "Session")
      .def(py::init<std::string, std::string, std::string, std::string, bool, int>(),
           py::arg("root"), py::arg("url"), py::arg("token"), py::arg("actor"),
           py::arg("actor_given"), py::arg("lock_wait_ms"))
      .def("register", &Session::Register)
      .def("promote", &Session::Promote)
      .def("archive", &Session::Archive)
      .def("fail", &Session::Fail)
      .def("rollback", &Session::Rollback)
      .def("validate", &Session::Validate)
      .def("annotate", &Session::Annotate)
      .def("current", &Session::Current)
      .def("show", &Session::Show)
      .def("consumers", &Session::Consumers)
      .def("list", &Session::List)
      .def("history", &Session::History)
      .def("audit", &Session::Audit)
      .def("diff", &Session::Diff)
      .def("events", &Session::Events)
      .def("get", &Session::Get)
      .def_property_readonly("root", &Session::root)
      .def_property_readonly("url", &Session::url)
      .def_property_readonly("actor", &Session::actor)
      .def_property_readonly("token", &Session::token);

  m.def("capture_environment", &CaptureEnvironmentMap);
  m.def("config_hash", &ConfigHashOf, py::arg("config_json"));
  m.def("generate_model_id", [] { return "mdl_" + NewEventId(); });
  m.def("check_compatibility", &CheckCompatibility, py::arg("model_versions"),
        py::arg("current_versions"), py::arg("strict"));
  m.def("strict_from_environment",
        [] { return compat::VersionCompatibilityChecker::FromEnvironment().strict(); });
  m.def("parse_time", [](const std::string& text) {
        auto t = ParseTime(text);
        if (!t) Raise(Status::InvalidArgument("'" + text + "' is not an ISO-8601 UTC time"));
        return *t;
      }, py::arg("text"));
  m.def("format_time", [](TimeNs t) { return FormatUtc(t); }, py::arg("ns"));

  py::class_<Cache>(m, "Cache")
      .def(py::init<std::string, TimeNs, std::uint64_t>(), py::arg("dir"), py::arg("ttl_ns"),
           py::arg("max_value_bytes"))
      .def("get_or_compute", &Cache::GetOrCompute)
      .def("stats", &Cache::Stats)
      .def("invalidate", &Cache::Invalidate)
      .def_property_readonly("dir", &Cache::dir);

  py::class_<Loader>(m, "Loader")
      .def(py::init<const std::string&, const std::string&, const std::string&,
                    const std::string&, const std::string&, const std::string&,
                    const std::map<std::string, std::string>&, bool, double, int, bool,
                    py::function, py::object, py::object>())
      .def("current", &Loader::Current)
      .def("reload_now", &Loader::ReloadNow)
      .def("stats", &Loader::Stats)
      .def("close", &Loader::Close);
}
