// TOML text -> Config: toml11 parses, the Section helper below reads and
// checks every key, and all problems are reported together, sorted by line.
// The rest of the config API (listen addresses, files) is in config.cc.

#include <algorithm>
#include <initializer_list>
#include <limits>
#include <sstream>
#include <toml.hpp>
#include <utility>

#include "absl/status/status.h"
#include "protocol/str_util.h"
#include "proxy/config/config.h"
#include "proxy/config/config_section.h"

namespace pgregion::proxy {
namespace {

using namespace config_internal;  // NOLINT: the reading helpers

// Smallest accepted proxy.max_message_bytes: startup packets and ordinary
// queries must fit.
constexpr uint64_t kMinMessageBytes = 1024;
constexpr std::string_view kScramPrefix = "SCRAM-SHA-256$";

bool IsScramVerifier(std::string_view password) { return password.starts_with(kScramPrefix); }

// As PostgreSQL recognizes a stored md5 password: "md5" + 32 lowercase hex digits.
bool IsMd5Hash(std::string_view password) {
  if (password.size() != 35 || !password.starts_with("md5")) return false;
  return std::all_of(password.begin() + 3, password.end(),
                     [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

void ReadProxy(Section& s, ProxySection* p) {
  s.Listen("listen", &p->listen);
  s.String("region", &p->region, Presence::kNonEmpty);
  s.Uint("max_client_connections", &p->max_client_connections, 1);
  s.Uint("max_message_bytes", &p->max_message_bytes, kMinMessageBytes);
  s.Uint("client_login_timeout_ms", &p->client_login_timeout_ms, 1);
  s.Uint("max_unauthenticated_connections", &p->max_unauthenticated_connections, 1);
  s.Uint("startup_packet_timeout_ms", &p->startup_packet_timeout_ms, 1);
  s.Uint("auth_failure_delay_ms", &p->auth_failure_delay_ms, 0);
  s.Uint("shutdown_timeout_s", &p->shutdown_timeout_s, 0);
}

void ReadAdmin(Section& s, AdminSection* a) {
  if (s.Listen("listen", &a->listen)) a->enabled = true;
  s.String("bearer_token", &a->bearer_token);
}

void ReadTls(Section& s, TlsSection* t) {
  s.Enum<TlsMode>(
      "mode", &t->mode,
      {{"disable", TlsMode::kDisable}, {"allow", TlsMode::kAllow}, {"require", TlsMode::kRequire}});
  s.String("cert_file", &t->cert_file);
  s.String("key_file", &t->key_file);
  if (t->mode == TlsMode::kDisable) return;
  std::string why = StrCat("required when tls.mode is ",
                           Quoted(t->mode == TlsMode::kAllow ? "allow" : "require"));
  if (t->cert_file.empty()) s.Error(s.Find("cert_file"), "cert_file", why);
  if (t->key_file.empty()) s.Error(s.Find("key_file"), "key_file", why);
}

void ReadServerTls(Section& s, ServerTlsSection* t) {
  s.Enum<ServerTlsMode>("mode", &t->mode,
                        {{"disable", ServerTlsMode::kDisable},
                         {"prefer", ServerTlsMode::kPrefer},
                         {"require", ServerTlsMode::kRequire},
                         {"verify-full", ServerTlsMode::kVerifyFull}});
  s.String("ca_file", &t->ca_file);
  if (t->mode == ServerTlsMode::kVerifyFull && t->ca_file.empty()) {
    s.Error(s.Find("ca_file"), "ca_file", "required when server_tls.mode is \"verify-full\"");
  }
}

void ReadPool(Section& s, PoolSection* p) {
  s.Enum<PoolMode>("mode", &p->mode,
                   {{"transaction", PoolMode::kTransaction}, {"session", PoolMode::kSession}});
  bool size_ok = s.Uint("size", &p->size, 1);
  s.Uint("min_idle", &p->min_idle, 0);
  s.Uint("acquire_timeout_ms", &p->acquire_timeout_ms, 1);
  s.Uint("idle_timeout_s", &p->idle_timeout_s, 1);
  s.Uint("connect_timeout_ms", &p->connect_timeout_ms, 1);
  if (p->min_idle > p->size && (size_ok || s.Find("size") == nullptr)) {
    s.Error(s.Find("min_idle"), "min_idle",
            StrCat("must be at most pool.size (", p->size, "), got ", p->min_idle));
  }
}

// A per-user or per-database override of routing.optimistic_transactions.
void ReadOptimistic(Section& s, std::optional<bool>* out) {
  bool value = false;
  if (s.Bool("optimistic_transactions", &value)) *out = value;
}

// pgregion.route and pgregion.consistency values, as session defaults.
void ReadSessionDefaults(Section& s, std::string* route, std::string* consistency) {
  s.Enum<std::string>("route", route,
                      {{"auto", "auto"}, {"primary", "primary"}, {"replica", "replica"}});
  s.Enum<std::string>("consistency", consistency,
                      {{"strong", "strong"},
                       {"causal", "causal"},
                       {"bounded", "bounded"},
                       {"eventual", "eventual"}});
}

void ReadRouting(Section& s, RoutingSection* r) {
  ReadSessionDefaults(s, &r->route, &r->consistency);
  s.Uint("max_staleness_ms", &r->max_staleness_ms, 0);
  s.Uint("max_replica_lag_ms", &r->max_replica_lag_ms, 0);
  s.Uint("ryw_wait_ms", &r->ryw_wait_ms, 0);
  s.Uint("read_deadline_ms", &r->read_deadline_ms, 0);
  s.Bool("optimistic_transactions", &r->optimistic_transactions);
  s.Uint("optimistic_max_statements", &r->optimistic_max_statements, 1);
  s.Uint("optimistic_max_bytes", &r->optimistic_max_bytes, 1);
  s.Enum<std::string>("unknown_functions", &r->unknown_functions,
                      {{"primary", "primary"}, {"replica", "replica"}});
  s.StringList("read_only_functions", &r->read_only_functions);
  s.StringList("write_functions", &r->write_functions);
  s.Uint("statement_cache_size", &r->statement_cache_size, 0);
  s.Uint("classify_max_bytes", &r->classify_max_bytes, 0);
  s.Uint("classify_max_depth", &r->classify_max_depth, 0);
  for (const std::string& name : r->write_functions) {
    if (std::find(r->read_only_functions.begin(), r->read_only_functions.end(), name) !=
        r->read_only_functions.end()) {
      s.Error(s.Find("write_functions"), "write_functions",
              StrCat(Quoted(name), " is also listed in routing.read_only_functions"));
    }
  }
}

void ReadHealth(Section& s, HealthSection* h) {
  s.Uint("interval_ms", &h->interval_ms, 1);
  s.Uint("timeout_ms", &h->timeout_ms, 1);
  s.Uint("failures_to_down", &h->failures_to_down, 1);
  s.Uint("successes_to_up", &h->successes_to_up, 1);
  s.Uint("recover_hold_s", &h->recover_hold_s, 0);
  s.String("user", &h->user, Presence::kNonEmpty);
  bool has_password = s.String("password", &h->password);
  s.String("database", &h->database, Presence::kNonEmpty);
  if (has_password && h->user.empty()) {
    s.Error(s.Find("password"), "password", "requires health.user");
  } else if (IsScramVerifier(h->password) || IsMd5Hash(h->password)) {
    // libpq hashes what it is given: a stored hash cannot answer a challenge.
    s.Error(s.Find("password"), "password",
            "must be the plaintext password (libpq cannot log in with a hash or verifier)");
  }
}

void ReadFailover(Section& s, FailoverSection* f) { s.Uint("write_wait_ms", &f->write_wait_ms, 0); }

void ReadLog(Section& s, LogSection* l) {
  s.Enum<std::string>("level", &l->level,
                      {{"debug", "debug"}, {"info", "info"}, {"warn", "warn"}, {"error", "error"}});
  s.Enum<std::string>("format", &l->format, {{"logfmt", "logfmt"}, {"json", "json"}});
}

void ReadUser(Section& s, UserConfig* u) {
  s.String("name", &u->name, Presence::kRequired);
  bool has_password = s.String("password", &u->password);
  s.Enum<AuthMethod>("auth", &u->auth,
                     {{"scram-sha-256", AuthMethod::kScramSha256},
                      {"md5", AuthMethod::kMd5},
                      {"trust", AuthMethod::kTrust}});
  s.String("server_user", &u->server_user, Presence::kNonEmpty);
  bool has_server_password = s.String("server_password", &u->server_password);
  s.Bool("admin", &u->admin);
  ReadSessionDefaults(s, &u->route, &u->consistency);
  ReadOptimistic(s, &u->optimistic_transactions);

  const toml::value* at = s.Find("password");
  bool verifier = IsScramVerifier(u->password);
  switch (u->auth) {
    case AuthMethod::kScramSha256:
      if (u->password.empty()) {
        s.Error(at, "password",
                has_password ? "must not be empty with auth = \"scram-sha-256\""
                             : "required with auth = \"scram-sha-256\"");
      } else if (IsMd5Hash(u->password)) {
        s.Error(at, "password",
                "an md5 hash cannot check SCRAM logins; give the plaintext or a SCRAM-SHA-256 "
                "verifier");
      }
      break;
    case AuthMethod::kMd5:
      if (u->password.empty()) {
        s.Error(at, "password",
                has_password ? "must not be empty with auth = \"md5\""
                             : "required with auth = \"md5\"");
      } else if (verifier) {
        s.Error(at, "password",
                "a SCRAM verifier cannot check md5 logins; give the plaintext or an md5 hash");
      }
      break;
    case AuthMethod::kTrust:
      break;
  }
  // pgregion answers the backends' password challenges with server_password:
  // plaintext works for every method, an md5 hash for md5 only, a SCRAM
  // verifier for none.
  if (has_server_password && IsScramVerifier(u->server_password)) {
    s.Error(s.Find("server_password"), "server_password",
            "a SCRAM verifier cannot log in to a backend; give the plaintext password");
  }
  if (u->server_user.empty()) u->server_user = u->name;
  if (!has_server_password && !verifier) u->server_password = u->password;
}

void ReadNode(Section& s, NodeConfig* n) {
  s.String("name", &n->name, Presence::kRequired);
  s.String("region", &n->region, Presence::kRequired);
  if (s.String("host", &n->host, Presence::kRequired) &&
      std::any_of(n->host.begin(), n->host.end(),
                  [](char c) { return c == ' ' || (c >= '\t' && c <= '\r'); })) {
    s.Error(s.Find("host"), "host", StrCat("must not contain spaces (got ", Quoted(n->host), ")"));
  }
  s.Uint("port", &n->port, 1);
}

void ReadDatabase(Section& s, DatabaseConfig* d) {
  s.String("name", &d->name, Presence::kRequired);
  ReadSessionDefaults(s, &d->route, &d->consistency);
  ReadOptimistic(s, &d->optimistic_transactions);
}

absl::StatusOr<std::shared_ptr<const Config>> Build(const toml::value& root,
                                                    const std::string& source) {
  Errors errors(source);
  auto config = std::make_shared<Config>();
  config->source_path = source;
  Section top(&errors, &root, "");

  struct Part {
    std::string_view name;
    void (*read)(Section&, Config*);
  };
  static constexpr Part kParts[] = {
      {"proxy", [](Section& s, Config* c) { ReadProxy(s, &c->proxy); }},
      {"admin", [](Section& s, Config* c) { ReadAdmin(s, &c->admin); }},
      {"tls", [](Section& s, Config* c) { ReadTls(s, &c->tls); }},
      {"server_tls", [](Section& s, Config* c) { ReadServerTls(s, &c->server_tls); }},
      {"pool", [](Section& s, Config* c) { ReadPool(s, &c->pool); }},
      {"routing", [](Section& s, Config* c) { ReadRouting(s, &c->routing); }},
      {"health", [](Section& s, Config* c) { ReadHealth(s, &c->health); }},
      {"failover", [](Section& s, Config* c) { ReadFailover(s, &c->failover); }},
      {"log", [](Section& s, Config* c) { ReadLog(s, &c->log); }},
      {"tenancy", [](Section& s, Config* c) { ReadTenancy(s, &c->tenancy); }},
  };
  for (const Part& part : kParts) {
    Section s(&errors, top.SubTable(part.name), std::string(part.name));
    part.read(s, config.get());
    s.Finish();
  }
  std::vector<const toml::value*> user_tables;
  std::vector<const toml::value*> node_tables;
  config->users = ReadEntries<UserConfig>(&errors, top, "users", ReadUser, &user_tables);
  config->nodes = ReadEntries<NodeConfig>(&errors, top, "nodes", ReadNode, &node_tables);
  std::vector<const toml::value*> database_tables;
  config->databases =
      ReadEntries<DatabaseConfig>(&errors, top, "databases", ReadDatabase, &database_tables);
  std::vector<const toml::value*> tenant_tables;
  config->tenants = ReadTenants(&errors, top, &tenant_tables);
  const toml::value* tenancy_table = top.Find("tenancy");
  top.Finish(/*top_level=*/true);

  if (top.Find("users") == nullptr || (config->users.empty() && errors.empty())) {
    errors.Add(nullptr, "users", "at least one [[users]] entry is required");
  }
  if (top.Find("nodes") == nullptr || (config->nodes.empty() && errors.empty())) {
    errors.Add(nullptr, "nodes", "at least one [[nodes]] entry is required");
  }
  // Two entries for one server would double its pools and skew routing.
  // Checked only on an otherwise clean file, where entry i is nodes[i].
  for (size_t i = 0; errors.empty() && i < config->nodes.size(); ++i) {
    for (size_t j = 0; j < i; ++j) {
      const NodeConfig& a = config->nodes[j];
      const NodeConfig& b = config->nodes[i];
      if (!a.host.empty() && a.host == b.host && a.port == b.port) {
        errors.Add(node_tables[i], StrCat("nodes[", i, "]"),
                   StrCat("same host and port as nodes[", j, "] (", Quoted(a.name), ")"));
      }
    }
  }
  if (errors.empty()) CheckTenantRegions(&errors, *config, tenant_tables, tenancy_table);
  if (!errors.empty()) return errors.ToStatus();
  return std::shared_ptr<const Config>(std::move(config));
}

std::string_view StripErrorPrefix(std::string_view what) {
  if (what.starts_with("[error] ")) what.remove_prefix(8);
  return what;
}

}  // namespace

absl::StatusOr<std::shared_ptr<const Config>> LoadConfigString(std::string_view toml_text,
                                                               const std::string& source_name) {
  try {
    std::istringstream in{std::string(toml_text)};
    toml::value root = toml::parse(in, source_name);
    return Build(root, source_name);
  } catch (const toml::exception& e) {
    return absl::InvalidArgumentError(
        StrCat(source_name, ":", e.location().line(), ": ", StripErrorPrefix(e.what())));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(StrCat(source_name, ": ", e.what()));
  }
}

}  // namespace pgregion::proxy
