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

namespace pgregion::proxy {
namespace {

// absl::StrJoin does not take std::string_view (see protocol/strings.h).
template <typename Range>
std::string Join(const Range& parts, std::string_view separator) {
  std::string out;
  for (const auto& part : parts) {
    if (!out.empty()) out.append(separator);
    out.append(part);
  }
  return out;
}

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

std::string_view KindName(const toml::value& v) {
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

std::string Quoted(std::string_view s) { return StrCat("\"", s, "\""); }

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
    return absl::InvalidArgumentError(Join(texts, "\n"));
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
          StrCat("must be one of ", Join(names, ", "), " (got ", Quoted(text), ")"));
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
      Error(&value, key, StrCat(what, "; expected one of: ", Join(known_, ", ")));
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

// Reads every element of an array of tables and checks that `name` is unique.
template <typename T>
std::vector<T> ReadEntries(Errors* errors, Section& top, std::string_view key,
                           void (*read)(Section&, T*), std::vector<const toml::value*>* where_out) {
  std::vector<T> entries;
  std::vector<std::pair<std::string, const toml::value*>> seen;  // name, where
  std::vector<const toml::value*> tables = top.TableArray(key);
  for (size_t i = 0; i < tables.size(); ++i) {
    if (tables[i] == nullptr) continue;
    Section s(errors, tables[i], StrCat(key, "[", i, "]"));
    T entry;
    read(s, &entry);
    s.Finish();
    const toml::value* name_at = s.Find("name");
    for (const auto& [name, where] : seen) {
      if (!entry.name.empty() && entry.name == name) {
        s.Error(name_at, "name",
                StrCat("duplicate name ", Quoted(name), " (first defined on line ",
                       where->location().line(), ")"));
      }
    }
    seen.emplace_back(entry.name, name_at);
    entries.push_back(std::move(entry));
    where_out->push_back(tables[i]);
  }
  return entries;
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
