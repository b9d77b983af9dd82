#include "routing/function_catalog.h"

#include <algorithm>
#include <iterator>

#include "protocol/str_util.h"

namespace pgregion::routing {
namespace {

// Side effects, or meaningful only on the primary (WAL positions, backends,
// slots), or tied to state another call left in the session (currval,
// lastval: they fail where nextval did not run).
constexpr std::string_view kBuiltinWrite[] = {
    "nextval",
    "setval",
    "currval",
    "lastval",
    "set_config",
    "pg_notify",
    "txid_current",
    "txid_current_if_assigned",
    "pg_current_xact_id",
    "pg_current_xact_id_if_assigned",
    "pg_advisory_lock",
    "pg_advisory_lock_shared",
    "pg_advisory_xact_lock",
    "pg_advisory_xact_lock_shared",
    "pg_try_advisory_lock",
    "pg_try_advisory_lock_shared",
    "pg_try_advisory_xact_lock",
    "pg_try_advisory_xact_lock_shared",
    "loread",
    "lowrite",
    "pg_switch_wal",
    "pg_create_restore_point",
    "pg_start_backup",
    "pg_stop_backup",
    "pg_backup_start",
    "pg_backup_stop",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "pg_promote",
    "pg_log_backend_memory_contexts",
    "pg_logical_emit_message",
    "pg_import_system_collations",
    "pg_stat_statements_reset",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_truncate_visibility_map",
    "dblink_exec",
    "dblink_send_query",
};

// Prefixes of function families that all have side effects (lo_import,
// lo_create, lo_unlink, lo_put, lo_from_bytea, ...; pg_current_wal_lsn,
// pg_current_wal_insert_lsn, ...; pg_stat_reset_*).
constexpr std::string_view kBuiltinWritePrefixes[] = {
    "lo_", "pg_current_wal_", "pg_stat_reset", "pg_logical_slot_", "pg_replication_origin_",
};

// Common read-only built-ins. Aggregates and window functions are calls in
// the raw parse tree, so they are listed too.
constexpr std::string_view kBuiltinRead[] = {
    // time
    "now",
    "clock_timestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "timeofday",
    "age",
    "date_trunc",
    "date_part",
    "date_bin",
    "extract",
    "timezone",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "isfinite",
    "to_char",
    "to_date",
    "to_timestamp",
    "to_number",
    "overlaps",
    // aggregates and window functions
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "bool_and",
    "bool_or",
    "every",
    "bit_and",
    "bit_or",
    "bit_xor",
    "array_agg",
    "string_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "xmlagg",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "regr_slope",
    "regr_intercept",
    "regr_count",
    "regr_r2",
    "regr_avgx",
    "regr_avgy",
    "mode",
    "percentile_cont",
    "percentile_disc",
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    "grouping",
    // conditional
    "coalesce",
    "nullif",
    "greatest",
    "least",
    "num_nulls",
    "num_nonnulls",
    // strings
    "lower",
    "upper",
    "initcap",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "bit_length",
    "substr",
    "substring",
    "position",
    "strpos",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "lpad",
    "rpad",
    "replace",
    "translate",
    "concat",
    "concat_ws",
    "format",
    "left",
    "right",
    "repeat",
    "reverse",
    "split_part",
    "starts_with",
    "string_to_array",
    "string_to_table",
    "array_to_string",
    "regexp_replace",
    "regexp_match",
    "regexp_matches",
    "regexp_split_to_array",
    "regexp_split_to_table",
    "regexp_like",
    "regexp_count",
    "regexp_instr",
    "regexp_substr",
    "md5",
    "sha224",
    "sha256",
    "sha384",
    "sha512",
    "encode",
    "decode",
    "quote_ident",
    "quote_literal",
    "quote_nullable",
    "to_hex",
    "ascii",
    "chr",
    "overlay",
    "normalize",
    "unistr",
    "convert",
    "convert_from",
    "convert_to",
    "text",
    "varchar",
    "bpchar",
    // numbers
    "abs",
    "ceil",
    "ceiling",
    "floor",
    "round",
    "trunc",
    "sign",
    "sqrt",
    "cbrt",
    "power",
    "pow",
    "exp",
    "ln",
    "log",
    "log10",
    "mod",
    "div",
    "pi",
    "degrees",
    "radians",
    "sin",
    "cos",
    "tan",
    "asin",
    "acos",
    "atan",
    "atan2",
    "random",
    "width_bucket",
    "gcd",
    "lcm",
    "factorial",
    "scale",
    "min_scale",
    "trim_scale",
    "int2",
    "int4",
    "int8",
    "float4",
    "float8",
    "numeric",
    // arrays, sets, ranges
    "generate_series",
    "generate_subscripts",
    "unnest",
    "array_length",
    "array_lower",
    "array_upper",
    "array_dims",
    "array_ndims",
    "cardinality",
    "array_append",
    "array_prepend",
    "array_cat",
    "array_position",
    "array_positions",
    "array_remove",
    "array_replace",
    "array_fill",
    "int4range",
    "int8range",
    "numrange",
    "tsrange",
    "tstzrange",
    "daterange",
    "lower_inc",
    "upper_inc",
    "lower_inf",
    "upper_inf",
    "isempty",
    "range_merge",
    // json (json_* and jsonb_* are matched by prefix too)
    "to_json",
    "to_jsonb",
    "row_to_json",
    "array_to_json",
    // full text search
    "to_tsvector",
    "to_tsquery",
    "plainto_tsquery",
    "phraseto_tsquery",
    "websearch_to_tsquery",
    "ts_rank",
    "ts_rank_cd",
    "ts_headline",
    "setweight",
    "strip",
    "numnode",
    "querytree",
    "tsvector_to_array",
    "array_to_tsvector",
    // uuid, network, xml
    "gen_random_uuid",
    "host",
    "hostmask",
    "network",
    "netmask",
    "masklen",
    "broadcast",
    "family",
    "abbrev",
    "inet_same_family",
    "inet_merge",
    "xpath",
    "xpath_exists",
    "xmlparse",
    "xmlserialize",
    // system information
    "version",
    "current_setting",
    "current_database",
    "current_schema",
    "current_schemas",
    "current_query",
    "pg_wal_lsn_diff",
    "inet_client_addr",
    "inet_client_port",
    "pg_snapshot_xmin",
    "pg_snapshot_xmax",
    "pg_typeof",
    "format_type",
    "pg_table_size",
    "pg_relation_size",
    "pg_total_relation_size",
    "pg_indexes_size",
    "pg_database_size",
    "pg_tablespace_size",
    "pg_size_pretty",
    "pg_size_bytes",
    "pg_column_size",
    "pg_relation_filenode",
    "pg_relation_filepath",
    "pg_tablespace_location",
    "pg_table_is_visible",
    "pg_type_is_visible",
    "pg_function_is_visible",
    "pg_has_role",
    "obj_description",
    "col_description",
    "shobj_description",
    "pg_encoding_to_char",
    "pg_char_to_encoding",
    "pg_client_encoding",
    "pg_sleep",
    "pg_sleep_for",
    "pg_sleep_until",
    "pg_listening_channels",
    "pg_jit_available",
    "to_regclass",
    "to_regtype",
    "to_regproc",
    "to_regprocedure",
    "to_regnamespace",
    "to_regrole",
    "row_security_active",
    "pg_advisory_unlock",
    "pg_advisory_unlock_shared",
    "pg_advisory_unlock_all",
};

// Prefixes of read-only built-in families.
constexpr std::string_view kBuiltinReadPrefixes[] = {
    "json_",
    "jsonb_",
    "pg_get_",
    "has_",
};

// Read-only, but what they return is the node's own state: a standby answers
// differently from the primary (pg_is_in_recovery(), WAL replay positions,
// its own locks, backends, statistics counters, snapshots, sequence caches,
// settings files), or refuses (pg_is_wal_replay_paused() is an error on the
// primary). The oracle is a client connected to the primary directly, so
// these run there (StatementInfo::primary_state). Matched when unqualified or
// pg_catalog-qualified; a configured read_only_functions entry overrides.
constexpr std::string_view kBuiltinPrimaryState[] = {
    "pg_is_in_recovery",
    "pg_is_wal_replay_paused",
    "pg_get_wal_replay_pause_state",
    "pg_wal_replay_pause",
    "pg_wal_replay_resume",
    "pg_backend_pid",
    "pg_postmaster_start_time",
    "pg_conf_load_time",
    "inet_server_addr",
    "inet_server_port",
    "pg_current_snapshot",
    "txid_current_snapshot",
    "pg_export_snapshot",
    "pg_sequence_last_value",
    "pg_notification_queue_usage",
    "pg_current_logfile",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_blocking_pids",
    "pg_safe_snapshot_blocking_pids",
    "pg_lock_status",
    "pg_prepared_xact",
    "pg_show_all_settings",
    "pg_show_all_file_settings",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_cursor",
    "pg_prepared_statement",
    "pg_get_backend_memory_contexts",
    "pg_get_shmem_allocations",
    "pg_walfile_name",
    "pg_walfile_name_offset",
    "pg_xact_status",
    "txid_status",
    "pg_xact_commit_timestamp",
    "pg_xact_commit_timestamp_origin",
    "pg_show_replication_origin_status",
};

// Prefixes of such families: pg_stat_* (pg_stat_get_*, pg_stat_get_xact_*,
// pg_stat_file, pg_stat_statements(); pg_stat_reset* is a write, matched
// first), pg_last_* (replay positions, pg_last_committed_xact), pg_ls_*
// (the node's directories), pg_control_* (its control file).
constexpr std::string_view kBuiltinPrimaryStatePrefixes[] = {
    "pg_stat_",
    "pg_last_",
    "pg_ls_",
    "pg_control_",
};

bool HasPrefix(std::string_view name, std::string_view prefix) {
  return name.size() >= prefix.size() && name.substr(0, prefix.size()) == prefix;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

FunctionSessionEffect SessionEffectOf(std::string_view name) {
  if (name == "pg_advisory_lock" || name == "pg_advisory_lock_shared" ||
      name == "pg_try_advisory_lock" || name == "pg_try_advisory_lock_shared") {
    return FunctionSessionEffect::kAdvisoryLock;
  }
  if (name == "pg_advisory_unlock" || name == "pg_advisory_unlock_shared") {
    return FunctionSessionEffect::kAdvisoryUnlock;
  }
  if (name == "pg_advisory_unlock_all") return FunctionSessionEffect::kAdvisoryUnlockAll;
  if (name == "set_config") return FunctionSessionEffect::kSetConfig;
  return FunctionSessionEffect::kNone;
}

}  // namespace

size_t FunctionCatalog::BuiltinReadCount() { return std::size(kBuiltinRead); }
size_t FunctionCatalog::BuiltinWriteCount() { return std::size(kBuiltinWrite); }
size_t FunctionCatalog::BuiltinPrimaryStateCount() { return std::size(kBuiltinPrimaryState); }

FunctionCatalog::FunctionCatalog(const std::vector<std::string>& write_functions,
                                 const std::vector<std::string>& read_only_functions) {
  for (const std::string& f : write_functions) write_.insert(Lower(f));
  for (const std::string& f : read_only_functions) read_.insert(Lower(f));
  for (std::string_view f : kBuiltinWrite) builtin_write_.insert(std::string(f));
  for (std::string_view f : kBuiltinRead) builtin_read_.insert(std::string(f));
  for (std::string_view f : kBuiltinPrimaryState) builtin_primary_state_.insert(std::string(f));
}

bool FunctionCatalog::Configured(const absl::flat_hash_set<std::string>& set,
                                 std::string_view schema, std::string_view name) const {
  if (set.empty()) return false;
  if (set.contains(std::string(name))) return true;
  return !schema.empty() && set.contains(StrCat(schema, ".", name));
}

FunctionInfo FunctionCatalog::Lookup(std::string_view raw_schema, std::string_view raw_name) const {
  const std::string name = Lower(raw_name);
  const std::string schema = Lower(raw_schema);
  const bool catalog = schema.empty() || schema == "pg_catalog";
  FunctionInfo info;
  if (catalog) info.session = SessionEffectOf(name);

  if (Configured(write_, schema, name)) {
    info.effect = FunctionEffect::kWrite;
  } else if (Configured(read_, schema, name)) {
    info.effect = FunctionEffect::kRead;
  } else if (builtin_write_.contains(name)) {
    // Also in other schemas: a user's nextval() is not trusted to be pure.
    info.effect = FunctionEffect::kWrite;
    info.builtin = catalog;
  } else if (std::any_of(std::begin(kBuiltinWritePrefixes), std::end(kBuiltinWritePrefixes),
                         [&](std::string_view p) { return HasPrefix(name, p); }) ||
             (HasPrefix(name, "pg_") && name.find("replication_slot") != std::string::npos)) {
    info.effect = FunctionEffect::kWrite;
    info.builtin = catalog;
  } else if (catalog && (builtin_primary_state_.contains(name) ||
                         std::any_of(std::begin(kBuiltinPrimaryStatePrefixes),
                                     std::end(kBuiltinPrimaryStatePrefixes),
                                     [&](std::string_view p) { return HasPrefix(name, p); }))) {
    info.effect = FunctionEffect::kRead;
    info.primary_state = true;
    info.builtin = true;
  } else if (catalog &&
             (builtin_read_.contains(name) ||
              std::any_of(std::begin(kBuiltinReadPrefixes), std::end(kBuiltinReadPrefixes),
                          [&](std::string_view p) { return HasPrefix(name, p); }))) {
    info.effect = FunctionEffect::kRead;
    info.builtin = true;
  }
  return info;
}

}  // namespace pgregion::routing
