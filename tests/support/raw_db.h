// Test-only access around the event store: options shorthands, and a raw
// RocksDB rewrite of one stored value, to damage a log the way an attacker
// or a bad disk would.
#pragma once

#include <gtest/gtest.h>
#include <rocksdb/db.h>

#include <functional>
#include <string>
#include <vector>

#include "log/event_store.h"

namespace modelreg::testing {

inline StoreOptions NoCreate() {
  StoreOptions o;
  o.create_if_missing = false;
  return o;
}
inline StoreOptions ReadOnly() {
  StoreOptions o;
  o.read_only = true;
  return o;
}
inline StoreOptions WithFamilies(std::vector<std::string> families) {
  StoreOptions o;
  o.extra_column_families = std::move(families);
  return o;
}

// Replaces the value at `key` in column family `cf_name` of the closed
// RocksDB database `dir` with change(old value).
inline void RawPut(const std::string& dir, const std::string& cf_name, const std::string& key,
                   const std::function<std::string(std::string)>& change) {
  std::vector<std::string> names;
  ASSERT_TRUE(rocksdb::DB::ListColumnFamilies(rocksdb::Options(), dir, &names).ok());
  std::vector<rocksdb::ColumnFamilyDescriptor> descs;
  for (const auto& n : names) descs.emplace_back(n, rocksdb::ColumnFamilyOptions());
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* db = nullptr;
  ASSERT_TRUE(rocksdb::DB::Open(rocksdb::Options(), dir, descs, &handles, &db).ok());
  rocksdb::ColumnFamilyHandle* cf = nullptr;
  for (auto* h : handles) {
    if (h->GetName() == cf_name) cf = h;
  }
  ASSERT_NE(cf, nullptr);
  std::string value;
  ASSERT_TRUE(db->Get(rocksdb::ReadOptions(), cf, key, &value).ok());
  ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), cf, key, change(value)).ok());
  for (auto* h : handles) ASSERT_TRUE(db->DestroyColumnFamilyHandle(h).ok());
  delete db;
}

}  // namespace modelreg::testing
