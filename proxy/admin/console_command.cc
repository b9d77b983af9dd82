#include "proxy/admin/console_command.h"

#include <cctype>

#include "protocol/message_builder.h"
#include "protocol/str_util.h"

namespace pgregion::proxy {

namespace {

std::vector<std::string_view> Words(std::string_view text) {
  std::vector<std::string_view> out;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t start = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > start) out.push_back(text.substr(start, i - start));
  }
  return out;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

std::string_view ModeName(PoolMode m) {
  return m == PoolMode::kSession ? "session" : "transaction";
}

std::string_view TlsModeName(TlsMode m) {
  switch (m) {
    case TlsMode::kDisable:
      return "disable";
    case TlsMode::kAllow:
      return "allow";
    case TlsMode::kRequire:
      return "require";
  }
  return "?";
}

std::string_view ServerTlsModeName(ServerTlsMode m) {
  switch (m) {
    case ServerTlsMode::kDisable:
      return "disable";
    case ServerTlsMode::kPrefer:
      return "prefer";
    case ServerTlsMode::kRequire:
      return "require";
    case ServerTlsMode::kVerifyFull:
      return "verify-full";
  }
  return "?";
}

std::string_view AuthName(AuthMethod m) {
  switch (m) {
    case AuthMethod::kScramSha256:
      return "scram-sha-256";
    case AuthMethod::kMd5:
      return "md5";
    case AuthMethod::kTrust:
      return "trust";
  }
  return "?";
}

std::string List(const std::vector<std::string>& items) {
  return StrCat("[", StrJoin(items, ", "), "]");
}

}  // namespace

absl::StatusOr<ConsoleCommand> ParseConsoleCommand(std::string_view text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back()))) {
    text.remove_suffix(1);
  }
  if (!text.empty() && text.back() == ';') text.remove_suffix(1);
  if (text.find(';') != std::string_view::npos) {
    return absl::InvalidArgumentError("one command at a time");
  }
  std::vector<std::string_view> words = Words(text);
  if (words.empty()) return absl::InvalidArgumentError("empty command; try SHOW HELP");
  std::string verb = Lower(words[0]);
  ConsoleCommand cmd;
  if (verb == "show") {
    if (words.size() != 2) return absl::InvalidArgumentError("SHOW takes one word; try SHOW HELP");
    cmd.verb = ConsoleCommand::Verb::kShow;
    cmd.argument = Lower(words[1]);
    for (std::string_view known : kConsoleShowObjects) {
      if (cmd.argument == known) return cmd;
    }
    return absl::InvalidArgumentError(
        StrCat("unknown SHOW object \"", words[1], "\"; try SHOW HELP"));
  }
  if (verb == "reload") {
    if (words.size() != 1) return absl::InvalidArgumentError("RELOAD takes no argument");
    cmd.verb = ConsoleCommand::Verb::kReload;
    return cmd;
  }
  if (verb == "pause" || verb == "resume") {
    if (words.size() > 2) {
      return absl::InvalidArgumentError(StrCat(Lower(verb), " takes at most one node name"));
    }
    cmd.verb = verb == "pause" ? ConsoleCommand::Verb::kPause : ConsoleCommand::Verb::kResume;
    if (words.size() == 2) cmd.argument = std::string(words[1]);
    return cmd;
  }
  return absl::InvalidArgumentError(StrCat("unknown command \"", words[0], "\"; try SHOW HELP"));
}

void AppendConsoleTable(std::string* out, const ConsoleTable& table) {
  if (table.columns.empty()) {  // a command without rows, such as RELOAD
    protocol::AppendCommandComplete(out, table.tag);
    return;
  }
  std::vector<std::string_view> columns(table.columns.begin(), table.columns.end());
  protocol::AppendRowDescription(out, columns);
  std::vector<std::pair<bool, std::string_view>> values;
  for (const auto& row : table.rows) {
    values.clear();
    for (const std::optional<std::string>& v : row) {
      values.emplace_back(!v.has_value(), v.has_value() ? std::string_view(*v) : "");
    }
    protocol::AppendDataRowNullable(out, values);
  }
  protocol::AppendCommandComplete(out, table.tag.empty() ? "SHOW" : table.tag);
}

ConsoleTable ConfigTable(const Config& c) {
  ConsoleTable t;
  t.columns = {"key", "value"};
  auto add = [&t](std::string key, std::string value) {
    t.AddRow({std::move(key), std::move(value)});
  };
  auto num = [](uint64_t v) { return StrCat(v); };
  add("proxy.listen", FormatListenAddress(c.proxy.listen));
  add("proxy.region", c.proxy.region);
  add("proxy.max_client_connections", num(c.proxy.max_client_connections));
  add("proxy.max_message_bytes", num(c.proxy.max_message_bytes));
  add("proxy.client_login_timeout_ms", num(c.proxy.client_login_timeout_ms));
  add("proxy.max_unauthenticated_connections", num(c.proxy.max_unauthenticated_connections));
  add("proxy.startup_packet_timeout_ms", num(c.proxy.startup_packet_timeout_ms));
  add("proxy.auth_failure_delay_ms", num(c.proxy.auth_failure_delay_ms));
  add("proxy.shutdown_timeout_s", num(c.proxy.shutdown_timeout_s));
  add("admin.listen", c.admin.enabled ? FormatListenAddress(c.admin.listen) : "");
  add("admin.bearer_token", c.admin.bearer_token.empty() ? "" : "(set)");
  add("tls.mode", std::string(TlsModeName(c.tls.mode)));
  add("tls.cert_file", c.tls.cert_file);
  add("tls.key_file", c.tls.key_file);
  add("server_tls.mode", std::string(ServerTlsModeName(c.server_tls.mode)));
  add("server_tls.ca_file", c.server_tls.ca_file);
  for (const UserConfig& u : c.users) {
    add(StrCat("users.", u.name), StrCat("auth=", AuthName(u.auth), " server_user=", u.server_user,
                                         " admin=", u.admin ? "true" : "false"));
  }
  add("pool.mode", std::string(ModeName(c.pool.mode)));
  add("pool.size", num(c.pool.size));
  add("pool.min_idle", num(c.pool.min_idle));
  add("pool.acquire_timeout_ms", num(c.pool.acquire_timeout_ms));
  add("pool.idle_timeout_s", num(c.pool.idle_timeout_s));
  add("pool.connect_timeout_ms", num(c.pool.connect_timeout_ms));
  add("routing.consistency", c.routing.consistency);
  add("routing.max_staleness_ms", num(c.routing.max_staleness_ms));
  add("routing.max_replica_lag_ms", num(c.routing.max_replica_lag_ms));
  add("routing.ryw_wait_ms", num(c.routing.ryw_wait_ms));
  add("routing.read_deadline_ms", num(c.routing.read_deadline_ms));
  add("routing.unknown_functions", c.routing.unknown_functions);
  add("routing.read_only_functions", List(c.routing.read_only_functions));
  add("routing.write_functions", List(c.routing.write_functions));
  add("routing.statement_cache_size", num(c.routing.statement_cache_size));
  add("routing.classify_max_bytes", num(c.routing.classify_max_bytes));
  add("routing.classify_max_depth", num(c.routing.classify_max_depth));
  add("health.interval_ms", num(c.health.interval_ms));
  add("health.timeout_ms", num(c.health.timeout_ms));
  add("health.failures_to_down", num(c.health.failures_to_down));
  add("health.successes_to_up", num(c.health.successes_to_up));
  add("health.recover_hold_s", num(c.health.recover_hold_s));
  add("health.user", c.health.user);
  add("health.database", c.health.database);
  add("failover.write_wait_ms", num(c.failover.write_wait_ms));
  for (const NodeConfig& n : c.nodes) {
    add(StrCat("nodes.", n.name), StrCat("region=", n.region, " host=", n.host, " port=", n.port));
  }
  add("tenancy.setting", c.tenancy.setting);
  add("tenancy.default_prefer_regions", List(c.tenancy.default_prefer_regions));
  add("tenancy.default_allow_regions", List(c.tenancy.default_allow_regions));
  add("tenancy.query", c.tenancy.query);
  add("tenancy.refresh_s", num(c.tenancy.refresh_s));
  add("tenancy.query_timeout_ms", num(c.tenancy.query_timeout_ms));
  add("tenancy.database", c.tenancy.database);
  for (const TenantConfig& t : c.tenants) {
    add(StrCat("tenants.", t.id),
        StrCat("prefer_regions=", List(t.prefer_regions), " allow_regions=", List(t.allow_regions),
               " consistency=", t.consistency));
  }
  add("log.level", c.log.level);
  add("log.format", c.log.format);
  return t;
}

}  // namespace pgregion::proxy
