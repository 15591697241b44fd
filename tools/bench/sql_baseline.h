// The spec's SQL design, as its best user would write it, for
// compare_bench: a `models` table updated in place (status, activated_at,
// deactivated_at, metadata as JSON text) and a `promotion_history` table
// with an index that answers "production of TYPE as of T" with one seek.
//
// Two engines behind one interface: SQLite (WAL, synchronous=FULL, prepared
// statements) and PostgreSQL through libpq (prepared statements, one round
// trip per operation where SQL allows it). One object = one connection;
// give each client thread its own.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "log/event_buffer.h"

namespace modelreg::bench {

struct SqlError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// What as-of returns per type: the promotion (or rollback) in force at T
// and the model it made production (as modelreg's audit answers: who, when,
// why, and the model's metrics and datasets).
struct SqlProduction {
  std::string version;  // "" = none
  std::int64_t promoted_at = 0;
  std::string promoted_by;
  std::string reason;
  std::string metadata;  // the model row's metadata (metrics, datasets, ...)
};

class SqlRegistry {
 public:
  virtual ~SqlRegistry() = default;
  virtual std::string name() const = 0;
  // Drops and creates the tables and indexes.
  virtual void CreateSchema() = 0;

  // Durable operations, each its own transaction (what a client does).
  // Register stores the metadata row (the artifact file is the caller's).
  virtual void Register(const std::string& type, const std::string& version,
                        const std::string& artifact_path, const std::string& sha256_hex,
                        const std::string& metadata_json, const std::string& actor,
                        std::int64_t now) = 0;
  // The spec's activation transaction: the old production row archived,
  // the new one made production, a promotion_history row; refuses (throws)
  // an unknown version or one that is not staged/archived.
  virtual void Promote(const std::string& type, const std::string& version,
                       const std::string& actor, const std::string& reason,
                       std::int64_t now) = 0;

  // Bulk load of the same history as a modelreg log: Apply() every event
  // (folded here, in memory, with the SQL design's semantics), then
  // FinishLoad() writes the resulting rows as a bulk load would (SQLite: one
  // transaction of prepared inserts; PostgreSQL: COPY) and ANALYZEs.
  void Apply(const EventBuffer& event);
  void FinishLoad();

  // Production of each of `types` as of `t`.
  virtual std::vector<SqlProduction> AsOf(const std::vector<std::string>& types,
                                          std::int64_t t) = 0;
  // Bytes of the tables and indexes (SQLite: the database file after a
  // checkpoint; PostgreSQL: pg_total_relation_size of both tables).
  virtual std::uint64_t Bytes() = 0;

 protected:
  struct ModelRow {
    std::string model_type, version, artifact_path, checksum, status, metadata, created_by;
    std::int64_t registered_at = 0, activated_at = -1, deactivated_at = -1;  // -1 = NULL
  };
  struct HistoryRow {
    std::int64_t id = 0;
    std::string model_type, version, previous_version, kind;
    std::int64_t promoted_at = 0;
    std::string promoted_by, reason;
  };
  virtual void BulkLoad(const std::vector<ModelRow>& models,
                        const std::vector<HistoryRow>& history) = 0;
  // Statements the durable operations use.
  virtual void Insert(const std::string& type, const std::string& version,
                      const std::string& artifact_path, const std::string& sha256_hex,
                      const std::string& metadata_json, const std::string& actor,
                      std::int64_t now) = 0;
  // Makes `version` production (previous production -> `old_status`), and
  // records a history row of `kind` (promote | rollback).
  virtual void Activate(const std::string& type, const std::string& version,
                        const std::string& old_status, const std::string& kind,
                        const std::string& actor, const std::string& reason,
                        std::int64_t now) = 0;
  virtual void SetStatus(const std::string& type, const std::string& version,
                         const std::string& status, std::int64_t now) = 0;

 private:
  // The load's fold: rows by (type, version), production per type.
  std::map<std::pair<std::string, std::string>, ModelRow> load_models_;
  std::map<std::string, std::string> load_production_;
  std::vector<HistoryRow> load_history_;
  void LoadActivate(const std::string& type, const std::string& version,
                    const std::string& old_status, const std::string& kind,
                    const std::string& actor, const std::string& reason, std::int64_t at);
};

// SQLite at `path` (created if missing), WAL mode, synchronous=FULL.
std::unique_ptr<SqlRegistry> OpenSqlite(const std::string& path);

// PostgreSQL at `conninfo` (e.g. "host=/tmp/pg port=5432 dbname=postgres").
// Null when this build has no libpq.
std::unique_ptr<SqlRegistry> OpenPostgres(const std::string& conninfo);
bool HavePostgres();

}  // namespace modelreg::bench
