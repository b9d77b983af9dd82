// Which function calls force a statement to the primary. Built-in knowledge
// of PostgreSQL's functions with side effects (nextval, setval, advisory
// locks, set_config, pg_notify, lo_*, WAL and replication-slot control, ...)
// and of common read-only built-ins, extended by the configuration:
// routing.write_functions and routing.read_only_functions (entries "name" or
// "schema.name", case-insensitive; a bare name matches in every schema).
//
// Precedence: configured write > configured read-only > built-in write >
// built-in primary-state read (FunctionInfo::primary_state) > built-in read-only (only when
// unqualified or pg_catalog-qualified: a function in another schema shadows nothing) > unknown.
// Immutable after construction; safe to share between threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"

namespace pgregion::routing {

enum class FunctionEffect : uint8_t { kRead, kWrite, kUnknown };

// routing.unknown_functions: where a statement calling a function that is in
// no list goes.
enum class UnknownFunctionPolicy : uint8_t { kPrimary, kReplica };

// Session state a built-in function call creates or removes.
enum class FunctionSessionEffect : uint8_t {
  kNone,
  kAdvisoryLock,       // pg_[try_]advisory_lock[_shared]: session-level lock
  kAdvisoryUnlock,     // pg_advisory_unlock[_shared]
  kAdvisoryUnlockAll,  // pg_advisory_unlock_all
  kSetConfig,          // set_config(): a setting the proxy does not see
};

struct FunctionInfo {
  FunctionEffect effect = FunctionEffect::kUnknown;
  FunctionSessionEffect session = FunctionSessionEffect::kNone;
  // kRead, but returns the node's own state (pg_is_in_recovery(), pg_stat_*,
  // pg_current_snapshot(), ...): runs on the primary. Built-ins only.
  bool primary_state = false;
  // Known from PostgreSQL's own functions (not configured, not unknown):
  // it runs no user code.
  bool builtin = false;
};

class FunctionCatalog {
 public:
  FunctionCatalog(const std::vector<std::string>& write_functions,
                  const std::vector<std::string>& read_only_functions);

  // `schema` is empty for an unqualified call. Case-insensitive.
  FunctionInfo Lookup(std::string_view schema, std::string_view name) const;

  // Number of built-in names (exact entries, not prefixes), for reports.
  static size_t BuiltinReadCount();
  static size_t BuiltinWriteCount();
  static size_t BuiltinPrimaryStateCount();

 private:
  bool Configured(const absl::flat_hash_set<std::string>& set, std::string_view schema,
                  std::string_view name) const;

  absl::flat_hash_set<std::string> write_;  // configured, lower case
  absl::flat_hash_set<std::string> read_;   // configured, lower case
  absl::flat_hash_set<std::string> builtin_write_;
  absl::flat_hash_set<std::string> builtin_read_;
  absl::flat_hash_set<std::string> builtin_primary_state_;
};

}  // namespace pgregion::routing
