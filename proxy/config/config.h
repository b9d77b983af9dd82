// pgregion's configuration: an immutable value loaded from TOML.
//
// Loading validates everything: unknown keys and bad values are errors that name
// the key and its line. toml11 exceptions are caught inside LoadConfig only. A
// reload builds a new Config and swaps the shared_ptr; nothing mutates one.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace pgregion::proxy {

enum class TlsMode { kDisable, kAllow, kRequire };                      // client-facing
enum class ServerTlsMode { kDisable, kPrefer, kRequire, kVerifyFull };  // to backends
enum class PoolMode { kTransaction, kSession };
enum class AuthMethod { kScramSha256, kMd5, kTrust };

struct ListenAddress {
  std::string host = "127.0.0.1";
  uint16_t port = 6432;
};

struct ProxySection {
  ListenAddress listen;
  std::string region = "local";
  uint32_t max_client_connections = 1000;
  uint32_t max_message_bytes = 64u << 20;  // 64 MiB
  uint32_t client_login_timeout_ms = 15000;
  // Connections accepted but not yet authenticated (pre_auth_budget.h).
  uint32_t max_unauthenticated_connections = 200;
  // Time a new connection has to send its StartupMessage (within the login timeout).
  uint32_t startup_packet_timeout_ms = 5000;
  // Delay before a failed login is answered (like PostgreSQL's auth_delay).
  uint32_t auth_failure_delay_ms = 300;
  uint32_t shutdown_timeout_s = 30;
};

struct AdminSection {
  bool enabled = false;
  ListenAddress listen{"127.0.0.1", 9187};
  std::string bearer_token;  // optional, guards /status
};

struct TlsSection {
  TlsMode mode = TlsMode::kDisable;
  std::string cert_file;
  std::string key_file;
};

struct ServerTlsSection {
  ServerTlsMode mode = ServerTlsMode::kDisable;
  std::string ca_file;
};

struct UserConfig {
  std::string name;
  // Plaintext, "SCRAM-SHA-256$..." verifier, or "md5..." hash. Empty with auth = trust.
  std::string password;
  AuthMethod auth = AuthMethod::kScramSha256;
  // Credentials pgregion uses towards the backends; default: name / password
  // (a verifier or md5 hash cannot be used towards a backend asking SCRAM).
  // The loader fills these in: server_user is never empty; server_password
  // defaults to `password` (plaintext, or an md5 hash, usable against md5
  // backends only) and stays empty when `password` is a SCRAM verifier (the
  // backend must then not ask for a password). Never a SCRAM verifier.
  std::string server_user;
  std::string server_password;
  bool admin = false;
  // Session defaults for this user ("" = the database's, else [routing]'s);
  // a client's startup options and SET override them.
  std::string route;        // auto | primary | replica
  std::string consistency;  // strong | causal | bounded | eventual
  std::optional<bool> optimistic_transactions;
};

// Per-database session defaults ([[databases]]); a user's own beat these.
struct DatabaseConfig {
  std::string name;
  std::string route;
  std::string consistency;
  std::optional<bool> optimistic_transactions;
};

struct PoolSection {
  PoolMode mode = PoolMode::kTransaction;
  uint32_t size = 20;  // server connections per (node, database, user)
  uint32_t min_idle = 0;
  uint32_t acquire_timeout_ms = 5000;
  uint32_t idle_timeout_s = 600;
  uint32_t connect_timeout_ms = 5000;
};

struct RoutingSection {
  std::string route = "auto";  // session default for pgregion.route
  std::string consistency = "causal";
  uint32_t max_staleness_ms = 1000;
  uint32_t max_replica_lag_ms = 5000;
  uint32_t ryw_wait_ms = 50;
  // Per-read deadline (client_session_retry.cc): an autocommit read that has
  // run this long on a replica with nothing of its result delivered is
  // cancelled there and retried elsewhere. 0 = off (the default: a long
  // analytical read on a healthy replica must not be re-run on the primary).
  uint32_t read_deadline_ms = 0;
  // Optimistic read transactions (client_session_optimistic.cc): a transaction
  // not declared read-write starts on a replica and moves to the primary at
  // its first write. The session default of pgregion.optimistic; the caps
  // bound what a transaction on a replica remembers for its replay.
  bool optimistic_transactions = true;
  uint32_t optimistic_max_statements = 1000;
  uint32_t optimistic_max_bytes = 1024 * 1024;
  std::string unknown_functions = "primary";
  std::vector<std::string> read_only_functions;
  std::vector<std::string> write_functions;
  uint32_t statement_cache_size = 10000;
  // Classification budget (routing::ClassifierOptions): longer or deeper
  // statements are not parsed and go to the primary (fail closed). 0 = no limit.
  uint32_t classify_max_bytes = 64 * 1024;
  uint32_t classify_max_depth = 1000;
};

struct HealthSection {
  uint32_t interval_ms = 500;
  uint32_t timeout_ms = 1000;
  uint32_t failures_to_down = 3;
  uint32_t successes_to_up = 3;
  uint32_t recover_hold_s = 10;
  // The probe connections' login. Empty `user`: the first [[users]] entry's
  // server_user / server_password. `password` is plaintext (libpq answers the
  // challenge itself, so neither an md5 hash nor a SCRAM verifier works).
  std::string user;
  std::string password;
  std::string database = "postgres";
};

struct FailoverSection {
  uint32_t write_wait_ms = 5000;
};

struct NodeConfig {
  std::string name;
  std::string region;
  std::string host;
  uint16_t port = 5432;
};

// Tenant-aware read routing (issue 20; routing/tenant_policy.h).
struct TenancySection {
  // The application's run-time setting that names the tenant (row-level
  // security style: SET app.tenant_id = '42'); empty = none. pgregion follows
  // it through SET, SET LOCAL, RESET and set_config() with PostgreSQL's
  // transaction scoping.
  std::string setting;
  // The policy of a tenant without an entry.
  std::vector<std::string> default_prefer_regions;
  std::vector<std::string> default_allow_regions;
  // The mapping from the application's own table (proxy/backend/
  // tenant_map_loader.h): a query returning id, preferred region(s) and
  // optionally allowed region(s) and a consistency level, run on the primary
  // every refresh_s and on RELOAD; empty = no mapping. [[tenants]] entries
  // override its rows.
  std::string query;
  uint32_t refresh_s = 30;
  uint32_t query_timeout_ms = 10000;
  // The database the query runs in; empty: [health] database. The login is
  // the health probes' ([health] user, else the first [[users]] entry's).
  std::string database;
};

struct TenantConfig {
  std::string id;
  std::vector<std::string> prefer_regions;
  std::vector<std::string> allow_regions;
  std::string consistency;  // empty: the session's
};

struct LogSection {
  std::string level = "info";     // debug, info, warn, error
  std::string format = "logfmt";  // logfmt | json
};

struct Config {
  ProxySection proxy;
  AdminSection admin;
  TlsSection tls;
  ServerTlsSection server_tls;
  std::vector<UserConfig> users;
  std::vector<DatabaseConfig> databases;
  PoolSection pool;
  RoutingSection routing;
  HealthSection health;
  FailoverSection failover;
  std::vector<NodeConfig> nodes;
  TenancySection tenancy;
  std::vector<TenantConfig> tenants;
  LogSection log;
  std::string source_path;  // file it was loaded from

  const UserConfig* FindUser(std::string_view name) const;
  const DatabaseConfig* FindDatabase(std::string_view name) const;
  // The session defaults for `user` in `database`: the user's, else the
  // database's, else [routing]'s.
  std::string_view DefaultRoute(const UserConfig* user, std::string_view database) const;
  std::string_view DefaultConsistency(const UserConfig* user, std::string_view database) const;
  bool DefaultOptimistic(const UserConfig* user, std::string_view database) const;
};

// "host:port" or "[ipv6]:port"; host is a numeric IPv4 or IPv6 address
// (returned without brackets), port 1..65535.
[[nodiscard]] absl::StatusOr<ListenAddress> ParseListenAddress(std::string_view text);
// The inverse: "127.0.0.1:6432", "[::1]:6432".
std::string FormatListenAddress(const ListenAddress& address);

// Parses and validates. The error message names the file, the key and the line.
[[nodiscard]] absl::StatusOr<std::shared_ptr<const Config>> LoadConfigFile(const std::string& path);
[[nodiscard]] absl::StatusOr<std::shared_ptr<const Config>> LoadConfigString(
    std::string_view toml_text, const std::string& source_name);

}  // namespace pgregion::proxy
