#include "sql_baseline.h"

#include <sqlite3.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <set>

#include "events/model_events.h"

#if MODELREG_HAVE_LIBPQ
#include <libpq-fe.h>
#endif

namespace modelreg::bench {

namespace {

std::string Str(const flatbuffers::String* s) { return s == nullptr ? "" : s->str(); }

// The schema, the same for both engines (TEXT/BIGINT are valid in both).
constexpr std::array<const char*, 5> kSchema = {
    "CREATE TABLE models ("
    " model_type TEXT NOT NULL, version TEXT NOT NULL,"
    " artifact_path TEXT NOT NULL, checksum TEXT NOT NULL,"
    " status TEXT NOT NULL,"  // staged | production | archived | failed
    " metadata TEXT NOT NULL,"  // metrics, datasets, factors, parameters, env, config (JSON)
    " created_by TEXT NOT NULL, registered_at BIGINT NOT NULL,"
    " activated_at BIGINT, deactivated_at BIGINT,"
    " PRIMARY KEY (model_type, version))",
    // current production per type: one partial index lookup
    "CREATE INDEX models_production ON models (model_type) WHERE status = 'production'",
    "CREATE TABLE promotion_history ("
    " id BIGINT PRIMARY KEY, model_type TEXT NOT NULL, version TEXT NOT NULL,"
    " previous_version TEXT, kind TEXT NOT NULL,"  // promote | rollback
    " promoted_at BIGINT NOT NULL, promoted_by TEXT NOT NULL, reason TEXT NOT NULL)",
    // as-of: the last row at or before T for a type, one descending seek; the
    // index covers the answer so the table is never touched
    "CREATE INDEX history_as_of ON promotion_history"
    " (model_type, promoted_at DESC, id DESC, version, promoted_by, reason)",
    "SELECT 1",
};

}  // namespace

void SqlRegistry::LoadActivate(const std::string& type, const std::string& version,
                               const std::string& old_status, const std::string& kind,
                               const std::string& actor, const std::string& reason,
                               std::int64_t at) {
  std::string& production = load_production_[type];
  if (!production.empty()) {
    ModelRow& old = load_models_.at({type, production});
    old.status = old_status;
    old.deactivated_at = at;
  }
  ModelRow& row = load_models_.at({type, version});
  row.status = "production";
  row.activated_at = at;
  load_history_.push_back({static_cast<std::int64_t>(load_history_.size()) + 1, type, version,
                           production, kind, at, actor, reason});
  production = version;
}

void SqlRegistry::Apply(const EventBuffer& event) {
  const fb::Event& e = event.event();
  const std::int64_t at = e.recorded_at();
  const std::string actor = Str(e.actor());
  auto status = [&](const std::string& type, const std::string& version, const char* to) {
    ModelRow& row = load_models_.at({type, version});
    row.status = to;
    row.deactivated_at = at;
    if (load_production_[type] == version) load_production_[type].clear();
  };
  switch (e.payload_type()) {
    case fb::Payload::ModelRegistered: {
      const auto* p = e.payload_as_ModelRegistered();
      const std::string type = Str(p->model_type()), version = Str(p->version());
      const nlohmann::json payload = events::ToJson(event)["payload"];
      ModelRow row;
      row.model_type = type;
      row.version = version;
      row.artifact_path = "artifacts/" + type + "/" + version + "/" + Str(p->artifact_name());
      row.checksum = payload.value("artifact_sha256", "");
      row.status = "staged";
      row.metadata = payload.dump();
      row.created_by = actor;
      row.registered_at = at;
      load_models_.emplace(std::make_pair(type, version), std::move(row));
      break;
    }
    case fb::Payload::ModelPromoted: {
      const auto* p = e.payload_as_ModelPromoted();
      LoadActivate(Str(p->model_type()), Str(p->version()), "archived", "promote", actor,
                   Str(p->reason()), at);
      break;
    }
    case fb::Payload::ModelRolledBack: {
      const auto* p = e.payload_as_ModelRolledBack();
      LoadActivate(Str(p->model_type()), Str(p->to_version()),
                   p->current_failed() ? "failed" : "archived", "rollback", actor,
                   Str(p->reason()), at);
      break;
    }
    case fb::Payload::ModelArchived: {
      const auto* p = e.payload_as_ModelArchived();
      status(Str(p->model_type()), Str(p->version()), "archived");
      break;
    }
    case fb::Payload::ModelFailed: {
      const auto* p = e.payload_as_ModelFailed();
      status(Str(p->model_type()), Str(p->version()), "failed");
      break;
    }
    default:  // validations, acknowledgements: the SQL design keeps no record
      break;
  }
}

void SqlRegistry::FinishLoad() {
  std::vector<ModelRow> models;
  models.reserve(load_models_.size());
  for (auto& [key, row] : load_models_) models.push_back(std::move(row));
  load_models_.clear();
  load_production_.clear();
  BulkLoad(models, load_history_);
  load_history_.clear();
}

// ---------------------------------------------------------------- SQLite

namespace {

class Sqlite final : public SqlRegistry {
 public:
  explicit Sqlite(const std::string& path) : path_(path) {
    if (sqlite3_open(path.c_str(), &db_) != SQLITE_OK) {
      throw SqlError("sqlite: cannot open " + path + ": " + sqlite3_errmsg(db_));
    }
    sqlite3_busy_timeout(db_, 60'000);
    Exec("PRAGMA journal_mode=WAL");
    Exec("PRAGMA synchronous=FULL");
  }
  ~Sqlite() override {
    for (sqlite3_stmt* s : stmts_) sqlite3_finalize(s);
    sqlite3_close(db_);
  }

  std::string name() const override { return "SQLite"; }

  void CreateSchema() override {
    Exec("DROP TABLE IF EXISTS models");
    Exec("DROP TABLE IF EXISTS promotion_history");
    for (const char* sql : kSchema) Exec(sql);
  }

  void Register(const std::string& type, const std::string& version,
                const std::string& artifact_path, const std::string& sha256_hex,
                const std::string& metadata_json, const std::string& actor,
                std::int64_t now) override {
    Insert(type, version, artifact_path, sha256_hex, metadata_json, actor, now);  // autocommit
  }

  void Promote(const std::string& type, const std::string& version, const std::string& actor,
               const std::string& reason, std::int64_t now) override {
    Exec("BEGIN IMMEDIATE");
    try {
      Activate(type, version, "archived", "promote", actor, reason, now);
    } catch (...) {
      Exec("ROLLBACK");
      throw;
    }
    Exec("COMMIT");
  }

  void BulkLoad(const std::vector<ModelRow>& models,
                const std::vector<HistoryRow>& history) override {
    Exec("PRAGMA synchronous=OFF");  // a bulk load, not the measured path
    Exec("BEGIN IMMEDIATE");
    sqlite3_stmt* m = nullptr;
    sqlite3_stmt* h = nullptr;
    if (sqlite3_prepare_v2(db_,
                           "INSERT INTO models (model_type, version, artifact_path, checksum,"
                           " status, metadata, created_by, registered_at, activated_at,"
                           " deactivated_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                           -1, &m, nullptr) != SQLITE_OK ||
        sqlite3_prepare_v2(db_,
                           "INSERT INTO promotion_history (id, model_type, version,"
                           " previous_version, kind, promoted_at, promoted_by, reason)"
                           " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                           -1, &h, nullptr) != SQLITE_OK) {
      sqlite3_finalize(m);
      Fail("prepare bulk load");
    }
    auto nullable = [](sqlite3_stmt* s, int i, std::int64_t v) {
      if (v < 0) {
        sqlite3_bind_null(s, i);
      } else {
        sqlite3_bind_int64(s, i, v);
      }
    };
    for (const ModelRow& r : models) {
      sqlite3_reset(m);
      Bind(m, 1, r.model_type);
      Bind(m, 2, r.version);
      Bind(m, 3, r.artifact_path);
      Bind(m, 4, r.checksum);
      Bind(m, 5, r.status);
      Bind(m, 6, r.metadata);
      Bind(m, 7, r.created_by);
      sqlite3_bind_int64(m, 8, r.registered_at);
      nullable(m, 9, r.activated_at);
      nullable(m, 10, r.deactivated_at);
      if (sqlite3_step(m) != SQLITE_DONE) Fail("bulk insert models");
    }
    for (const HistoryRow& r : history) {
      sqlite3_reset(h);
      sqlite3_bind_int64(h, 1, r.id);
      Bind(h, 2, r.model_type);
      Bind(h, 3, r.version);
      Bind(h, 4, r.previous_version);
      Bind(h, 5, r.kind);
      sqlite3_bind_int64(h, 6, r.promoted_at);
      Bind(h, 7, r.promoted_by);
      Bind(h, 8, r.reason);
      if (sqlite3_step(h) != SQLITE_DONE) Fail("bulk insert history");
    }
    sqlite3_finalize(m);
    sqlite3_finalize(h);
    Exec("COMMIT");
    Exec("PRAGMA synchronous=FULL");
    Exec("ANALYZE");
  }

  std::vector<SqlProduction> AsOf(const std::vector<std::string>& types,
                                  std::int64_t t) override {
    sqlite3_stmt* s = Prepared(kAsOf,
                               "SELECT h.version, h.promoted_at, h.promoted_by, h.reason, m.metadata"
                               " FROM (SELECT version, promoted_at, promoted_by, reason"
                               "  FROM promotion_history WHERE model_type = ?1 AND promoted_at <= ?2"
                               "  ORDER BY promoted_at DESC, id DESC LIMIT 1) h"
                               " JOIN models m ON m.model_type = ?1 AND m.version = h.version");
    std::vector<SqlProduction> out;
    out.reserve(types.size());
    for (const std::string& type : types) {
      sqlite3_reset(s);
      sqlite3_bind_text(s, 1, type.data(), static_cast<int>(type.size()), SQLITE_STATIC);
      sqlite3_bind_int64(s, 2, t);
      SqlProduction p;
      const int rc = sqlite3_step(s);
      if (rc == SQLITE_ROW) {
        p.version = Text(s, 0);
        p.promoted_at = sqlite3_column_int64(s, 1);
        p.promoted_by = Text(s, 2);
        p.reason = Text(s, 3);
        p.metadata = Text(s, 4);
      } else if (rc != SQLITE_DONE) {
        Fail("as-of");
      }
      out.push_back(std::move(p));
    }
    sqlite3_reset(s);  // a statement left mid-result would block checkpoints
    return out;
  }

  std::uint64_t Bytes() override {
    Exec("PRAGMA wal_checkpoint(TRUNCATE)");
    std::error_code ec;
    const auto size = std::filesystem::file_size(path_, ec);
    return ec ? 0 : size;
  }

 protected:
  void Insert(const std::string& type, const std::string& version,
              const std::string& artifact_path, const std::string& sha256_hex,
              const std::string& metadata_json, const std::string& actor,
              std::int64_t now) override {
    sqlite3_stmt* s = Prepared(kInsert,
                               "INSERT INTO models (model_type, version, artifact_path, checksum,"
                               " status, metadata, created_by, registered_at)"
                               " VALUES (?1, ?2, ?3, ?4, 'staged', ?5, ?6, ?7)");
    Bind(s, 1, type);
    Bind(s, 2, version);
    Bind(s, 3, artifact_path);
    Bind(s, 4, sha256_hex);
    Bind(s, 5, metadata_json);
    Bind(s, 6, actor);
    sqlite3_bind_int64(s, 7, now);
    Done(s, "insert");
  }

  void Activate(const std::string& type, const std::string& version,
                const std::string& old_status, const std::string& kind, const std::string& actor,
                const std::string& reason, std::int64_t now) override {
    // 1. the current production row steps down (RETURNING: which one it was)
    sqlite3_stmt* down = Prepared(kDown,
                                  "UPDATE models SET status = ?3, deactivated_at = ?2"
                                  " WHERE model_type = ?1 AND status = 'production'"
                                  " RETURNING version");
    Bind(down, 1, type);
    sqlite3_bind_int64(down, 2, now);
    Bind(down, 3, old_status);
    std::string previous;
    int rc = sqlite3_step(down);
    if (rc == SQLITE_ROW) {
      previous = Text(down, 0);
      rc = sqlite3_step(down);
    }
    if (rc != SQLITE_DONE) Fail("step down");
    sqlite3_reset(down);
    // 2. the new one goes up, only from a legal state
    sqlite3_stmt* up = Prepared(kUp,
                                "UPDATE models SET status = 'production', activated_at = ?3"
                                " WHERE model_type = ?1 AND version = ?2"
                                " AND status IN ('staged', 'archived')");
    Bind(up, 1, type);
    Bind(up, 2, version);
    sqlite3_bind_int64(up, 3, now);
    Done(up, "activate");
    if (sqlite3_changes(db_) != 1) {
      throw SqlError("sqlite: " + type + " " + version + " cannot be promoted");
    }
    // 3. the history row
    sqlite3_stmt* h = Prepared(kHistory,
                               "INSERT INTO promotion_history (id, model_type, version,"
                               " previous_version, kind, promoted_at, promoted_by, reason)"
                               " VALUES ((SELECT coalesce(max(id), 0) + 1 FROM promotion_history),"
                               " ?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    Bind(h, 1, type);
    Bind(h, 2, version);
    Bind(h, 3, previous);
    Bind(h, 4, kind);
    sqlite3_bind_int64(h, 5, now);
    Bind(h, 6, actor);
    Bind(h, 7, reason);
    Done(h, "history");
  }

  void SetStatus(const std::string& type, const std::string& version, const std::string& status,
                 std::int64_t now) override {
    sqlite3_stmt* s = Prepared(kStatus,
                               "UPDATE models SET status = ?3, deactivated_at = ?4"
                               " WHERE model_type = ?1 AND version = ?2");
    Bind(s, 1, type);
    Bind(s, 2, version);
    Bind(s, 3, status);
    sqlite3_bind_int64(s, 4, now);
    Done(s, "status");
  }

 private:
  enum Stmt { kInsert, kDown, kUp, kHistory, kStatus, kAsOf, kStmtCount };

  sqlite3_stmt* Prepared(Stmt which, const char* sql) {
    sqlite3_stmt*& s = stmts_[which];
    if (s == nullptr && sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &s, nullptr) !=
                            SQLITE_OK) {
      Fail(std::string("prepare ") + sql);
    }
    sqlite3_reset(s);
    sqlite3_clear_bindings(s);
    return s;
  }
  static void Bind(sqlite3_stmt* s, int i, const std::string& v) {
    sqlite3_bind_text(s, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
  }
  static std::string Text(sqlite3_stmt* s, int col) {
    const auto* p = sqlite3_column_text(s, col);
    return p == nullptr ? "" : reinterpret_cast<const char*>(p);
  }
  void Done(sqlite3_stmt* s, const char* what) {
    if (sqlite3_step(s) != SQLITE_DONE) Fail(what);
    sqlite3_reset(s);
  }
  void Exec(const char* sql) {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
      const std::string msg = err == nullptr ? "?" : err;
      sqlite3_free(err);
      throw SqlError(std::string("sqlite: ") + sql + ": " + msg);
    }
  }
  [[noreturn]] void Fail(const std::string& what) {
    throw SqlError("sqlite: " + what + ": " + sqlite3_errmsg(db_));
  }

  std::string path_;
  sqlite3* db_ = nullptr;
  std::array<sqlite3_stmt*, kStmtCount> stmts_{};
};

}  // namespace

std::unique_ptr<SqlRegistry> OpenSqlite(const std::string& path) {
  return std::make_unique<Sqlite>(path);
}

// ------------------------------------------------------------ PostgreSQL

#if MODELREG_HAVE_LIBPQ
namespace {

class Postgres final : public SqlRegistry {
 public:
  explicit Postgres(const std::string& conninfo) : conn_(PQconnectdb(conninfo.c_str())) {
    if (PQstatus(conn_) != CONNECTION_OK) {
      const std::string msg = PQerrorMessage(conn_);
      PQfinish(conn_);
      throw SqlError("postgres: cannot connect (" + conninfo + "): " + msg);
    }
    Exec("SET client_min_messages = warning");
  }
  ~Postgres() override { PQfinish(conn_); }

  std::string name() const override { return "PostgreSQL"; }

  void CreateSchema() override {
    Exec("DROP TABLE IF EXISTS models");
    Exec("DROP TABLE IF EXISTS promotion_history");
    Exec("DROP SEQUENCE IF EXISTS history_id");
    for (const char* sql : kSchema) Exec(sql);
    Exec("CREATE SEQUENCE history_id");
  }

  void Register(const std::string& type, const std::string& version,
                const std::string& artifact_path, const std::string& sha256_hex,
                const std::string& metadata_json, const std::string& actor,
                std::int64_t now) override {
    Insert(type, version, artifact_path, sha256_hex, metadata_json, actor, now);
  }

  void Promote(const std::string& type, const std::string& version, const std::string& actor,
               const std::string& reason, std::int64_t now) override {
    Exec("BEGIN");
    try {
      Activate(type, version, "archived", "promote", actor, reason, now);
    } catch (...) {
      Exec("ROLLBACK");
      throw;
    }
    Exec("COMMIT");
  }

  // COPY, as a bulk load of history would be done.
  void BulkLoad(const std::vector<ModelRow>& models,
                const std::vector<HistoryRow>& history) override {
    auto field = [](std::string& line, const std::string& v) {
      for (char c : v) {  // COPY text format escapes
        switch (c) {
          case '\\': line += "\\\\"; break;
          case '\t': line += "\\t"; break;
          case '\n': line += "\\n"; break;
          case '\r': line += "\\r"; break;
          default: line += c;
        }
      }
      line += '\t';
    };
    auto number = [](std::string& line, std::int64_t v) {
      line += v < 0 ? std::string("\\N") : std::to_string(v);
      line += '\t';
    };
    std::string data;
    for (const ModelRow& r : models) {
      field(data, r.model_type);
      field(data, r.version);
      field(data, r.artifact_path);
      field(data, r.checksum);
      field(data, r.status);
      field(data, r.metadata);
      field(data, r.created_by);
      number(data, r.registered_at);
      number(data, r.activated_at);
      number(data, r.deactivated_at);
      data.back() = '\n';
    }
    Copy("COPY models (model_type, version, artifact_path, checksum, status, metadata,"
         " created_by, registered_at, activated_at, deactivated_at) FROM STDIN",
         data);
    data.clear();
    for (const HistoryRow& r : history) {
      number(data, r.id);
      field(data, r.model_type);
      field(data, r.version);
      field(data, r.previous_version);
      field(data, r.kind);
      number(data, r.promoted_at);
      field(data, r.promoted_by);
      field(data, r.reason);
      data.back() = '\n';
    }
    Copy("COPY promotion_history (id, model_type, version, previous_version, kind, promoted_at,"
         " promoted_by, reason) FROM STDIN",
         data);
    Exec(("SELECT setval('history_id', " + std::to_string(history.size() + 1) + ")").c_str());
    Exec("ANALYZE");
  }

  std::vector<SqlProduction> AsOf(const std::vector<std::string>& types,
                                  std::int64_t t) override {
    // One round trip: a descending index seek per type (LATERAL).
    std::string array = "{";
    for (std::size_t i = 0; i < types.size(); ++i) array += (i ? "," : "") + types[i];
    array += "}";
    const std::string ts = std::to_string(t);
    Result r = Run("as_of",
                   "SELECT t.type, h.version, h.promoted_at, h.promoted_by, h.reason, m.metadata"
                   " FROM unnest($1::text[]) WITH ORDINALITY AS t(type, n)"
                   " LEFT JOIN LATERAL (SELECT version, promoted_at, promoted_by, reason"
                   "  FROM promotion_history WHERE model_type = t.type AND promoted_at <= $2"
                   "  ORDER BY promoted_at DESC, id DESC LIMIT 1) h ON true"
                   " LEFT JOIN models m ON m.model_type = t.type AND m.version = h.version"
                   " ORDER BY t.n",
                   {array, ts}, PGRES_TUPLES_OK);
    std::vector<SqlProduction> out(types.size());
    const int rows = PQntuples(r.get());
    for (int i = 0; i < rows && i < static_cast<int>(out.size()); ++i) {
      if (PQgetisnull(r.get(), i, 1)) continue;
      out[static_cast<std::size_t>(i)] = {PQgetvalue(r.get(), i, 1),
                                          std::stoll(PQgetvalue(r.get(), i, 2)),
                                          PQgetvalue(r.get(), i, 3), PQgetvalue(r.get(), i, 4),
                                          PQgetvalue(r.get(), i, 5)};
    }
    return out;
  }

  std::uint64_t Bytes() override {
    Result r = Run("bytes",
                   "SELECT pg_total_relation_size('models') +"
                   " pg_total_relation_size('promotion_history')",
                   {}, PGRES_TUPLES_OK);
    return std::stoull(PQgetvalue(r.get(), 0, 0));
  }

 protected:
  void Insert(const std::string& type, const std::string& version,
              const std::string& artifact_path, const std::string& sha256_hex,
              const std::string& metadata_json, const std::string& actor,
              std::int64_t now) override {
    Run("insert",
        "INSERT INTO models (model_type, version, artifact_path, checksum, status, metadata,"
        " created_by, registered_at) VALUES ($1, $2, $3, $4, 'staged', $5, $6, $7)",
        {type, version, artifact_path, sha256_hex, metadata_json, actor, std::to_string(now)},
        PGRES_COMMAND_OK);
  }

  void Activate(const std::string& type, const std::string& version,
                const std::string& old_status, const std::string& kind, const std::string& actor,
                const std::string& reason, std::int64_t now) override {
    const std::string ts = std::to_string(now);
    Result down = Run("down",
                      "UPDATE models SET status = $3, deactivated_at = $2"
                      " WHERE model_type = $1 AND status = 'production' RETURNING version",
                      {type, ts, old_status}, PGRES_TUPLES_OK);
    const std::string previous = PQntuples(down.get()) > 0 ? PQgetvalue(down.get(), 0, 0) : "";
    Result up = Run("up",
                    "UPDATE models SET status = 'production', activated_at = $3"
                    " WHERE model_type = $1 AND version = $2 AND status IN ('staged', 'archived')",
                    {type, version, ts}, PGRES_COMMAND_OK);
    if (std::string(PQcmdTuples(up.get())) != "1") {
      throw SqlError("postgres: " + type + " " + version + " cannot be promoted");
    }
    Run("history",
        "INSERT INTO promotion_history (id, model_type, version, previous_version, kind,"
        " promoted_at, promoted_by, reason) VALUES (nextval('history_id'), $1, $2, $3, $4, $5,"
        " $6, $7)",
        {type, version, previous, kind, ts, actor, reason}, PGRES_COMMAND_OK);
  }

  void SetStatus(const std::string& type, const std::string& version, const std::string& status,
                 std::int64_t now) override {
    Run("status",
        "UPDATE models SET status = $3, deactivated_at = $4 WHERE model_type = $1 AND"
        " version = $2",
        {type, version, status, std::to_string(now)}, PGRES_COMMAND_OK);
  }

 private:
  struct Clear {
    void operator()(PGresult* r) const { PQclear(r); }
  };
  using Result = std::unique_ptr<PGresult, Clear>;

  // Prepares `sql` under `name` once per connection, then executes it.
  Result Run(const std::string& name, const char* sql, const std::vector<std::string>& params,
             ExecStatusType expect) {
    if (prepared_.insert(name).second) {
      Result p(PQprepare(conn_, name.c_str(), sql, static_cast<int>(params.size()), nullptr));
      if (PQresultStatus(p.get()) != PGRES_COMMAND_OK) {
        throw SqlError("postgres: prepare " + name + ": " + PQerrorMessage(conn_));
      }
    }
    std::vector<const char*> values;
    for (const auto& v : params) values.push_back(v.c_str());
    Result r(PQexecPrepared(conn_, name.c_str(), static_cast<int>(values.size()), values.data(),
                            nullptr, nullptr, 0));
    if (PQresultStatus(r.get()) != expect) {
      throw SqlError("postgres: " + name + ": " + PQerrorMessage(conn_));
    }
    return r;
  }
  void Copy(const char* sql, const std::string& data) {
    Result start(PQexec(conn_, sql));
    if (PQresultStatus(start.get()) != PGRES_COPY_IN) {
      throw SqlError(std::string("postgres: ") + sql + ": " + PQerrorMessage(conn_));
    }
    if (PQputCopyData(conn_, data.data(), static_cast<int>(data.size())) != 1 ||
        PQputCopyEnd(conn_, nullptr) != 1) {
      throw SqlError(std::string("postgres: copy: ") + PQerrorMessage(conn_));
    }
    Result end(PQgetResult(conn_));
    if (PQresultStatus(end.get()) != PGRES_COMMAND_OK) {
      throw SqlError(std::string("postgres: copy: ") + PQerrorMessage(conn_));
    }
    while (PGresult* rest = PQgetResult(conn_)) PQclear(rest);
  }
  void Exec(const char* sql) {
    Result r(PQexec(conn_, sql));
    const ExecStatusType st = PQresultStatus(r.get());
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
      throw SqlError(std::string("postgres: ") + sql + ": " + PQerrorMessage(conn_));
    }
  }

  PGconn* conn_;
  std::set<std::string> prepared_;
};

}  // namespace

std::unique_ptr<SqlRegistry> OpenPostgres(const std::string& conninfo) {
  return std::make_unique<Postgres>(conninfo);
}
bool HavePostgres() { return true; }
#else
std::unique_ptr<SqlRegistry> OpenPostgres(const std::string&) { return nullptr; }
bool HavePostgres() { return false; }
#endif

}  // namespace modelreg::bench
