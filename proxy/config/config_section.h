// Internal to proxy/config: the helpers that read TOML tables into Config
// with every problem collected (Errors) and unknown keys reported (Section).
// Shared by config_parse.cc and the readers of larger sections in their own
// files (config_tenancy.cc).
#pragma once

#include <algorithm>
#include <cstdint>
#include <initializer_list>
#include <limits>
#include <string>
#include <string_view>
#include <toml.hpp>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "protocol/str_util.h"
#include "proxy/config/config.h"

namespace pgregion::proxy::config_internal {

inline std::string_view KindName(const toml::value& v) {
  switch (v.type()) {
    case toml::value_t::empty:
      return "nothing";
    case toml::value_t::boolean:
      return "a boolean";
    case toml::value_t::integer:
      return "an integer";
    case toml::value_t::floating:
      return "a float";
    case toml::value_t::string:
      return "a string";
    case toml::value_t::offset_datetime:
    case toml::value_t::local_datetime:
    case toml::value_t::local_date:
    case toml::value_t::local_time:
      return "a date/time";
    case toml::value_t::array:
      return "an array";
    case toml::value_t::table:
      return "a table";
  }
  return "an unknown type";
}

inline std::string Quoted(std::string_view s) { return StrCat("\"", s, "\""); }

// Collects every problem; the status lists them ordered by line.
class Errors {
 public:
  explicit Errors(std::string file) : file_(std::move(file)) {}

  // `at` supplies the line; null when there is none (a missing section).
  void Add(const toml::value* at, std::string_view key, std::string_view message) {
    uint32_t line = at != nullptr ? static_cast<uint32_t>(at->location().line()) : 0;
    std::string where = line > 0 ? StrCat(file_, ":", line) : file_;
    issues_.push_back({line, StrCat(where, ": ", key, ": ", message)});
  }
  bool empty() const { return issues_.empty(); }

  absl::Status ToStatus() {
    std::stable_sort(issues_.begin(), issues_.end(),
                     [](const Issue& a, const Issue& b) { return a.line < b.line; });
    std::vector<std::string_view> texts;
    for (const Issue& issue : issues_) texts.push_back(issue.text);
    return absl::InvalidArgumentError(StrJoin(texts, "\n"));
  }

 private:
  struct Issue {
    uint32_t line;
    std::string text;
  };
  std::string file_;
  std::vector<Issue> issues_;
};

enum class Presence {
  kOptional,  // may be absent or empty
  kNonEmpty,  // may be absent; if present, not empty
  kRequired,  // must be present and not empty
};

// Reads the keys of one table. Each read registers its key as known, so
// Finish() can report the rest as unknown. Reads of an absent table (null)
// keep the defaults. A value of the wrong type or out of range is reported and
// leaves the default in place.
class Section {
 public:
  Section(Errors* errors, const toml::value* table, std::string path)
      : errors_(errors), table_(table), path_(std::move(path)) {}

  const toml::value* table() const { return table_; }

  std::string KeyPath(std::string_view key) const {
    return path_.empty() ? std::string(key) : StrCat(path_, ".", key);
  }

  // `at` null: the error is placed at the table's line.
  void Error(const toml::value* at, std::string_view key, std::string_view message) {
    errors_->Add(at != nullptr ? at : table_, KeyPath(key), message);
  }

  const toml::value* Find(std::string_view key) {
    if (std::find(known_.begin(), known_.end(), key) == known_.end()) known_.emplace_back(key);
    if (table_ == nullptr) return nullptr;
    const auto& t = table_->as_table();
    auto it = t.find(std::string(key));
    return it == t.end() ? nullptr : &it->second;
  }

  bool String(std::string_view key, std::string* out, Presence presence = Presence::kOptional) {
    const toml::value* v = Find(key);
    if (v == nullptr) {
      if (presence == Presence::kRequired && table_ != nullptr) {
        Error(nullptr, key, "missing required key");
      }
      return false;
    }
    if (!v->is_string()) return TypeError(v, key, "a string");
    const std::string& s = v->as_string().str;
    if (s.empty() && presence != Presence::kOptional) {
      Error(v, key, "must not be empty");
      return false;
    }
    *out = s;
    return true;
  }

  // Integers must fit T; `min` rules out values that make no sense.
  template <typename T>
  bool Uint(std::string_view key, T* out, uint64_t min) {
    const toml::value* v = Find(key);
    if (v == nullptr) return false;
    if (!v->is_integer()) return TypeError(v, key, "an integer");
    int64_t n = v->as_integer();
    constexpr uint64_t kMax = std::numeric_limits<T>::max();
    if (n < 0 || static_cast<uint64_t>(n) < min) {
      Error(v, key, StrCat("must be at least ", min, " (got ", n, ")"));
      return false;
    }
    if (static_cast<uint64_t>(n) > kMax) {
      Error(v, key, StrCat("must be at most ", kMax, " (got ", n, ")"));
      return false;
    }
    *out = static_cast<T>(n);
    return true;
  }

  bool Bool(std::string_view key, bool* out) {
    const toml::value* v = Find(key);
    if (v == nullptr) return false;
    if (!v->is_boolean()) return TypeError(v, key, "a boolean (true or false)");
    *out = v->as_boolean();
    return true;
  }

  template <typename T>
  bool Enum(std::string_view key, T* out,
            std::initializer_list<std::pair<std::string_view, T>> choices) {
    std::string text;
    if (!String(key, &text)) return false;
    std::vector<std::string> names;
    for (const auto& [name, value] : choices) {
      if (text == name) {
        *out = value;
        return true;
      }
      names.push_back(Quoted(name));
    }
    Error(Find(key), key,
          StrCat("must be one of ", StrJoin(names, ", "), " (got ", Quoted(text), ")"));
    return false;
  }

  bool StringList(std::string_view key, std::vector<std::string>* out) {
    const toml::value* v = Find(key);
    if (v == nullptr) return false;
    if (!v->is_array()) return TypeError(v, key, "an array of strings");
    std::vector<std::string> list;
    bool ok = true;
    const auto& array = v->as_array();
    for (size_t i = 0; i < array.size(); ++i) {
      std::string elem_key = StrCat(key, "[", i, "]");
      if (!array[i].is_string()) {
        ok = TypeError(&array[i], elem_key, "a string");
      } else if (array[i].as_string().str.empty()) {
        Error(&array[i], elem_key, "must not be empty");
        ok = false;
      } else {
        list.push_back(array[i].as_string().str);
      }
    }
    if (ok) *out = std::move(list);
    return ok;
  }

  bool Listen(std::string_view key, ListenAddress* out) {
    std::string text;
    if (!String(key, &text)) return false;
    absl::StatusOr<ListenAddress> address = ParseListenAddress(text);
    if (!address.ok()) {
      Error(Find(key), key, std::string(address.status().message()));
      return false;
    }
    *out = *std::move(address);
    return true;
  }

  const toml::value* SubTable(std::string_view key) {
    const toml::value* v = Find(key);
    if (v == nullptr) return nullptr;
    if (!v->is_table()) {
      TypeError(v, key, StrCat("a table ([", key, "])"));
      return nullptr;
    }
    return v;
  }

  // Elements that are not tables are reported and come back as null, so
  // indexes still match the file.
  std::vector<const toml::value*> TableArray(std::string_view key) {
    const toml::value* v = Find(key);
    if (v == nullptr) return {};
    if (!v->is_array()) {
      TypeError(v, key, StrCat("an array of tables ([[", key, "]])"));
      return {};
    }
    std::vector<const toml::value*> elems;
    for (const toml::value& elem : v->as_array()) {
      if (elem.is_table()) {
        elems.push_back(&elem);
      } else {
        TypeError(&elem, StrCat(key, "[", elems.size(), "]"), "a table");
        elems.push_back(nullptr);
      }
    }
    return elems;
  }

  // Reports the keys no read asked for.
  void Finish(bool top_level = false) {
    if (table_ == nullptr) return;
    for (const auto& [key, value] : table_->as_table()) {
      if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
      std::string_view what = top_level && value.is_table() ? "unknown section" : "unknown key";
      Error(&value, key, StrCat(what, "; expected one of: ", StrJoin(known_, ", ")));
    }
  }

 private:
  bool TypeError(const toml::value* v, std::string_view key, std::string_view expected) {
    Error(v, key, StrCat("expected ", expected, ", got ", KindName(*v)));
    return false;
  }

  Errors* errors_;
  const toml::value* table_;
  std::string path_;
  std::vector<std::string> known_;
};

// Reads every element of an array of tables and checks that the identifying
// key (`name`, or `id` for [[tenants]]) is unique.
template <typename T>
std::vector<T> ReadEntries(Errors* errors, Section& top, std::string_view key,
                           void (*read)(Section&, T*), std::vector<const toml::value*>* where_out,
                           std::string T::*id = &T::name, std::string_view id_key = "name") {
  std::vector<T> entries;
  std::vector<std::pair<std::string, const toml::value*>> seen;  // id, where
  std::vector<const toml::value*> tables = top.TableArray(key);
  for (size_t i = 0; i < tables.size(); ++i) {
    if (tables[i] == nullptr) continue;
    Section s(errors, tables[i], StrCat(key, "[", i, "]"));
    T entry;
    read(s, &entry);
    s.Finish();
    const toml::value* id_at = s.Find(id_key);
    for (const auto& [seen_id, where] : seen) {
      if (!(entry.*id).empty() && entry.*id == seen_id) {
        s.Error(id_at, id_key,
                StrCat("duplicate ", id_key, " ", Quoted(seen_id), " (first defined on line ",
                       where->location().line(), ")"));
      }
    }
    seen.emplace_back(entry.*id, id_at);
    entries.push_back(std::move(entry));
    where_out->push_back(tables[i]);
  }
  return entries;
}

// [tenancy] and [[tenants]] (config_tenancy.cc). ReadTenants checks ids are
// unique; CheckTenantRegions (on an otherwise clean file) that every region
// named is one of the nodes' regions: a typo in allow_regions would refuse
// every read of the tenant.
void ReadTenancy(Section& s, TenancySection* t);
std::vector<TenantConfig> ReadTenants(Errors* errors, Section& top,
                                      std::vector<const toml::value*>* where_out);
void CheckTenantRegions(Errors* errors, const Config& config,
                        const std::vector<const toml::value*>& tenant_tables,
                        const toml::value* tenancy_table);

}  // namespace pgregion::proxy::config_internal
