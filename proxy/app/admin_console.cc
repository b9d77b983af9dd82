#include "proxy/app/admin_console.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>

#include "absl/container/flat_hash_set.h"
#include "protocol/message_builder.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/app/proxy_app.h"
#include "proxy/backend/pool.h"
#include "proxy/backend/server_connection.h"
#include "proxy/net/log.h"
#include "proxy/session/client_session.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;

namespace {

using Row = std::vector<std::optional<std::string>>;

std::string_view ClientStateName(ClientSession::State s) {
  switch (s) {
    case ClientSession::State::kStartup:
    case ClientSession::State::kTlsHandshake:
    case ClientSession::State::kAuth:
    case ClientSession::State::kAuthFailing:
    case ClientSession::State::kLoginWait:
      return "login";
    case ClientSession::State::kIdle:
      return "idle";
    case ClientSession::State::kWaitRoute:
    case ClientSession::State::kWaitReplay:
    case ClientSession::State::kWaitServer:
      return "waiting";
    case ClientSession::State::kRestoring:
    case ClientSession::State::kActive:
      return "active";
    case ClientSession::State::kClosed:
      return "closed";
  }
  return "?";
}

std::string_view ServerStateName(ServerConnection::State s) {
  switch (s) {
    case ServerConnection::State::kConnecting:
    case ServerConnection::State::kSslRequest:
    case ServerConnection::State::kTlsHandshake:
    case ServerConnection::State::kLogin:
      return "login";
    case ServerConnection::State::kIdle:
      return "idle";
    case ServerConnection::State::kActive:
      return "active";
    case ServerConnection::State::kResetting:
      return "resetting";
    case ServerConnection::State::kClosed:
      return "closed";
  }
  return "?";
}

// "10.0.0.1:5432" / "[::1]:5432" -> host, port.
std::pair<std::string, std::string> SplitHostPort(std::string_view addr) {
  size_t colon = addr.rfind(':');
  if (colon == std::string_view::npos) return {std::string(addr), ""};
  std::string_view host = addr.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return {std::string(host), std::string(addr.substr(colon + 1))};
}

// v / 1000 with three decimals: microseconds as ms, milliseconds as s.
std::string Thousandths(uint64_t v) {
  char buf[32];
  snprintf(buf, sizeof(buf), "%.3f", static_cast<double>(v) / 1000.0);
  return buf;
}

std::optional<std::string> Opt(bool known, std::string value) {
  if (!known) return std::nullopt;
  return value;
}

std::string_view QueryText(std::string_view body) {
  size_t nul = body.find('\0');
  return nul == std::string_view::npos ? body : body.substr(0, nul);
}

bool OnlySpaceAndSemicolons(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    return c == ';' || std::isspace(static_cast<unsigned char>(c));
  });
}

}  // namespace

std::unique_ptr<AdminConsole> AdminConsole::Open(ProxyApp* app, const UserConfig* user,
                                                 std::string* error) {
  if (user == nullptr || !user->admin) {
    *error = StrCat("the \"", kDatabase,
                    "\" admin console is only for users with admin = true in [[users]]");
    return nullptr;
  }
  return std::unique_ptr<AdminConsole>(new AdminConsole(app, user->name));
}

std::string AdminConsole::Welcome(uint32_t pid, uint32_t secret) const {
  std::string out;
  // Enough for psql: a version it understands (PQserverVersion), UTF-8, and
  // the settings libpq and drivers look at.
  for (auto [name, value] : std::initializer_list<std::pair<std::string_view, std::string_view>>{
           {"server_version", "15.0 (pgregion " PGREGION_VERSION " admin console)"},
           {"server_encoding", "UTF8"},
           {"client_encoding", "UTF8"},
           {"DateStyle", "ISO, MDY"},
           {"integer_datetimes", "on"},
           {"standard_conforming_strings", "on"},
           {"TimeZone", "UTC"},
           {"is_superuser", "off"},
           {"application_name", ""}}) {
    p::AppendParameterStatus(&out, name, value);
  }
  p::AppendParameterStatus(&out, "session_authorization", user_);
  p::AppendBackendKeyData(&out, pid, secret);
  p::AppendReadyForQuery(&out, 'I');
  return out;
}

std::string AdminConsole::Handle(const p::Frame& frame) {
  std::string out;
  if (!frame.first || !frame.last) return out;  // pieces of an oversized message: ignored
  switch (frame.type) {
    case 'Q':
      return Query(QueryText(frame.body));
    case 'S':
      extended_error_ = false;
      p::AppendReadyForQuery(&out, 'I');
      return out;
    case 'P':
    case 'B':
    case 'D':
    case 'E':
    case 'C':
    case 'H':
      if (!extended_error_) {
        extended_error_ = true;
        p::AppendErrorResponse(
            &out, {.sqlstate = p::sqlstate::kFeatureNotSupported,
                   .message = "the pgregion admin console accepts simple queries only"});
      }
      return out;
    case 'F':
      p::AppendErrorResponse(&out, {.sqlstate = p::sqlstate::kFeatureNotSupported,
                                    .message = "the pgregion admin console has no functions"});
      p::AppendReadyForQuery(&out, 'I');
      return out;
    default:
      return out;  // CopyData and friends: there is no COPY here
  }
}

std::string AdminConsole::Query(std::string_view text) {
  std::string out;
  if (OnlySpaceAndSemicolons(text)) {
    p::AppendEmptyQueryResponse(&out);
    p::AppendReadyForQuery(&out, 'I');
    return out;
  }
  absl::StatusOr<ConsoleCommand> cmd = ParseConsoleCommand(text);
  ConsoleTable table;
  std::string sqlstate = p::sqlstate::kSyntaxError;
  std::string error =
      cmd.ok() ? Execute(*cmd, &table, &sqlstate) : std::string(ToStd(cmd.status().message()));
  LogInfo("admin_command")
      .Kv("user", user_)
      .Kv("command", text.substr(0, 200))
      .Kv("result", error.empty() ? "ok" : "error");
  if (error.empty()) {
    AppendConsoleTable(&out, table);
  } else {
    p::AppendErrorResponse(&out, {.sqlstate = sqlstate, .message = error});
  }
  p::AppendReadyForQuery(&out, 'I');
  return out;
}

std::string AdminConsole::Execute(const ConsoleCommand& cmd, ConsoleTable* table,
                                  std::string* sqlstate) {
  switch (cmd.verb) {
    case ConsoleCommand::Verb::kShow:
      break;
    case ConsoleCommand::Verb::kReload: {
      absl::Status st = app_->Reload("RELOAD");
      if (!st.ok()) {
        *sqlstate = p::sqlstate::kInvalidParameterValue;
        return std::string(ToStd(st.message()));
      }
      table->tag = "RELOAD";
      return "";
    }
    case ConsoleCommand::Verb::kPause:
    case ConsoleCommand::Verb::kResume: {
      const bool pause = cmd.verb == ConsoleCommand::Verb::kPause;
      absl::Status st = pause ? app_->Pause(cmd.argument) : app_->Resume(cmd.argument);
      if (!st.ok()) {
        *sqlstate = p::sqlstate::kInvalidParameterValue;
        return std::string(ToStd(st.message()));
      }
      table->tag = pause ? "PAUSE" : "RESUME";
      return "";
    }
  }
  const std::string& what = cmd.argument;
  if (what == "nodes") {
    *table = Nodes();
  } else if (what == "pools") {
    *table = Pools();
  } else if (what == "clients") {
    *table = Clients();
  } else if (what == "servers") {
    *table = Servers();
  } else if (what == "stats") {
    *table = Stats();
  } else if (what == "config") {
    *table = ConfigTable(app_->config());
  } else if (what == "tenants") {
    *table = Tenants();
  } else if (what == "version") {
    table->columns = {"version"};
    table->AddRow({"pgregion " PGREGION_VERSION});
  } else if (what == "help") {
    table->columns = {"command", "shows"};
    table->AddRow({"SHOW NODES", "every node: region, address, role, health, RTT, LSN, lag"});
    table->AddRow({"SHOW POOLS", "every pool: node, database, user, clients and servers by state"});
    table->AddRow({"SHOW CLIENTS", "every client connection"});
    table->AddRow({"SHOW SERVERS", "every server connection"});
    table->AddRow({"SHOW STATS", "units of work routed, by node, role and reason"});
    table->AddRow({"SHOW CONFIG", "the configuration in effect (no secrets)"});
    table->AddRow(
        {"SHOW TENANTS", "every tenant entry: regions, consistency, reads served, refusals"});
    table->AddRow({"SHOW VERSION", "the pgregion version"});
    table->AddRow({"RELOAD", "re-read the configuration file"});
    table->AddRow({"PAUSE [node]", "no new units on the node (every node without a name)"});
    table->AddRow({"RESUME [node]", "undo PAUSE (every node without a name)"});
  } else {
    return StrCat("unknown SHOW object \"", what, "\"");
  }
  table->tag = "SHOW";
  return "";
}

ConsoleTable AdminConsole::Nodes() const {
  ConsoleTable t;
  t.columns = {"name",   "region",    "host",    "port",          "role",
               "health", "up",        "primary", "paused",        "rtt_ms",
               "lsn",    "lag_bytes", "lag_s",   "replay_paused", "last_ok_ms_ago"};
  routing::TopologySnapshotPtr snap = app_->topology();
  uint64_t now = app_->NowMs();
  for (const routing::NodeStatus& n : snap->nodes) {
    if (n.retired || n.index >= app_->node_count()) continue;  // removed by a reload
    const NodeRuntime& rt = app_->node(static_cast<int>(n.index));
    const NodeConfig& cfg = rt.config;
    bool lag = n.is_replica() && n.lag_known;
    t.AddRow(
        {std::string(n.name), std::string(n.region), cfg.host, StrCat(cfg.port),
         std::string(routing::NodeRoleName(n.role)),
         std::string(routing::NodeHealthStateName(n.health)), n.up ? "yes" : "no",
         snap->primary == static_cast<int>(n.index) ? "yes" : "no", rt.paused ? "yes" : "no",
         Opt(n.rtt_known, Thousandths(n.rtt_us)), Opt(n.lsn.valid(), n.lsn.ToString()),
         Opt(lag, StrCat(n.lag_bytes)), Opt(lag, Thousandths(n.lag_ms)),
         n.replay_paused ? "yes" : "no",
         Opt(n.last_success_ms != 0 && now >= n.last_success_ms, StrCat(now - n.last_success_ms))});
  }
  return t;
}

ConsoleTable AdminConsole::Pools() const {
  ConsoleTable t;
  t.columns = {"node",      "database", "user",     "cl_active", "cl_waiting",
               "sv_active", "sv_idle",  "sv_login", "pool_size", "pool_mode"};
  struct Key {
    const Pool* pool;
    bool operator<(const Key& o) const {
      return std::make_tuple(pool->node(), pool->database(), pool->user()) <
             std::make_tuple(o.pool->node(), o.pool->database(), o.pool->user());
    }
  };
  std::vector<Key> pools;
  for (const auto& [key, pool] : app_->pools()) pools.push_back({pool.get()});
  std::sort(pools.begin(), pools.end());
  for (const Key& k : pools) {
    const Pool& pool = *k.pool;
    uint64_t bound = 0;
    for (const ClientSession* c : app_->sessions()) {
      if (c->server() != nullptr && c->server()->pool() == &pool) ++bound;
    }
    uint64_t total = pool.total_count();
    uint64_t idle = pool.idle_count();
    uint64_t login = pool.connecting_count();
    t.AddRow({app_->node(pool.node()).config.name, pool.database(), pool.user(), StrCat(bound),
              StrCat(pool.waiter_count()), StrCat(total >= idle + login ? total - idle - login : 0),
              StrCat(idle), StrCat(login), StrCat(app_->config().pool.size),
              app_->config().pool.mode == PoolMode::kSession ? "session" : "transaction"});
  }
  return t;
}

ConsoleTable AdminConsole::Clients() const {
  ConsoleTable t;
  t.columns = {"type", "user", "database",  "state",           "addr", "port", "tls",
               "pid",  "node", "server_id", "application_name"};
  std::vector<const ClientSession*> clients(app_->sessions().begin(), app_->sessions().end());
  std::sort(clients.begin(), clients.end(),
            [](const ClientSession* a, const ClientSession* b) { return a->pid() < b->pid(); });
  for (const ClientSession* c : clients) {
    auto [host, port] = SplitHostPort(c->peer());
    const ServerConnection* s = c->server();
    const std::string* app_name = c->application_name();
    t.AddRow({"C", c->user_name(), c->database(), std::string(ClientStateName(c->state())), host,
              port, c->tls() ? "yes" : "no", Opt(c->pid() != 0, StrCat(c->pid())),
              Opt(s != nullptr, s != nullptr ? app_->node(s->pool()->node()).config.name : ""),
              Opt(s != nullptr, s != nullptr ? StrCat(s->id()) : ""),
              Opt(app_name != nullptr, app_name != nullptr ? *app_name : "")});
  }
  return t;
}

ConsoleTable AdminConsole::Servers() const {
  ConsoleTable t;
  t.columns = {"type", "node", "user", "database",   "state",
               "addr", "port", "id",   "remote_pid", "client_pid"};
  std::vector<const ServerConnection*> servers;
  for (const auto& [key, pool] : app_->pools()) {
    for (const ServerConnection* s : pool->connections()) servers.push_back(s);
  }
  std::sort(servers.begin(), servers.end(),
            [](const ServerConnection* a, const ServerConnection* b) { return a->id() < b->id(); });
  for (const ServerConnection* s : servers) {
    const NodeConfig& node = app_->node(s->pool()->node()).config;
    const ServerClient* c = s->client();
    t.AddRow({"S", node.name, s->pool()->server_user(), s->pool()->database(),
              std::string(ServerStateName(s->state())), node.host, StrCat(node.port),
              StrCat(s->id()), Opt(s->backend_pid() != 0, StrCat(s->backend_pid())),
              Opt(c != nullptr, c != nullptr ? StrCat(c->pid()) : "")});
  }
  return t;
}

ConsoleTable AdminConsole::Stats() const {
  ConsoleTable t;
  t.columns = {"node", "region", "role", "reason", "units"};
  for (size_t n = 0; n < app_->node_count(); ++n) {
    const NodeRuntime& node = app_->node(static_cast<int>(n));
    if (node.retired) continue;  // removed by a reload
    for (bool primary : {true, false}) {
      for (size_t r = 0; r < Metrics::kReasonSlots; ++r) {
        auto reason = static_cast<routing::RouteReason>(r);
        uint64_t units = app_->metrics().routed_count(static_cast<int>(n), primary, reason);
        if (units == 0) continue;
        t.AddRow({node.config.name, node.config.region, primary ? "primary" : "replica",
                  std::string(routing::RouteReasonName(reason)), StrCat(units)});
      }
    }
  }
  return t;
}

ConsoleTable AdminConsole::Tenants() const {
  ConsoleTable t;
  t.columns = {"tenant",      "source", "prefer_regions", "allow_regions",
               "consistency", "reads",  "refused"};
  std::shared_ptr<const routing::TenantDirectory> dir = app_->tenants();
  if (dir == nullptr) return t;
  // A mapping can hold a million tenants: the config entries, then the tenants
  // with reads, then other rows, kTenantRows in all; a last row counts the rest.
  constexpr size_t kTenantRows = 1000;
  std::vector<std::string> ids;
  absl::flat_hash_set<std::string> seen;
  auto take = [&](std::string_view id) {
    if (ids.size() >= kTenantRows) return false;
    if (seen.insert(std::string(id)).second) ids.emplace_back(id);
    return true;
  };
  std::vector<std::string> config_ids;
  for (const auto& [id, policy] : dir->entries()) config_ids.push_back(id);
  std::sort(config_ids.begin(), config_ids.end());
  for (const std::string& id : config_ids) take(id);
  // Counts can outlive a tenant's entry (a unit routed with the previous
  // directory): only tenants the directory knows. The first ones by id, without
  // sorting a million of them.
  std::vector<std::string_view> counted = dir->counted_ids();
  std::erase_if(counted, [&](std::string_view id) { return dir->SourceOf(id).empty(); });
  const size_t shown = std::min(counted.size(), kTenantRows);
  std::partial_sort(counted.begin(), counted.begin() + static_cast<std::ptrdiff_t>(shown),
                    counted.end());
  counted.resize(shown);
  for (std::string_view id : counted) take(id);
  size_t total = dir->size();
  if (const auto& mapped = dir->mapped()) {
    total += mapped->size();
    for (const std::string& id : config_ids) total -= mapped->Find(id) == nullptr ? 0 : 1;
    const size_t before = ids.size();
    mapped->ForEach([&](std::string_view id, const routing::TenantPolicy&) { return take(id); });
    std::sort(ids.begin() + static_cast<std::ptrdiff_t>(before), ids.end());
  }
  for (const std::string& id : ids) {
    const routing::TenantPolicy& policy = dir->Lookup(id);
    std::string reads;
    uint64_t refused = 0;
    if (const routing::TenantDirectory::Reads* r = dir->reads(id)) {
      std::map<std::string, uint64_t> regions;  // by the served node's region
      for (size_t node = 0; node < r->by_node.size() && node < app_->node_count(); ++node) {
        if (r->by_node[node] > 0) {
          regions[app_->node(static_cast<int>(node)).config.region] += r->by_node[node];
        }
      }
      for (const auto& [region, n] : regions) {
        StrAppend(&reads, reads.empty() ? "" : " ", region, "=", n);
      }
      refused = r->refused;
    }
    t.AddRow({id, std::string(dir->SourceOf(id)), StrJoin(policy.prefer_regions, ","),
              StrJoin(policy.allow_regions, ","),
              policy.consistency
                  ? std::string(routing::StatementHints::ConsistencyName(*policy.consistency))
                  : std::string(),
              reads, StrCat(refused)});
  }
  if (total > ids.size()) {
    t.AddRow({StrCat("(", total - ids.size(), " more)"), "", "", "", "", "", ""});
  }
  return t;
}

}  // namespace pgregion::proxy
