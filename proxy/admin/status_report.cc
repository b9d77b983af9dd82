#include "proxy/admin/status_report.h"

#include <time.h>

#include <cinttypes>
#include <cstdio>

#include "protocol/str_util.h"

namespace pgregion::proxy {

namespace {

// A JSON writer just big enough for /status: objects, arrays, strings,
// numbers, booleans and null, with commas placed automatically.
class Json {
 public:
  Json& BeginObject() { return Open('{'); }
  Json& EndObject() { return Close('}'); }
  Json& BeginArray() { return Open('['); }
  Json& EndArray() { return Close(']'); }
  Json& Key(std::string_view key) {
    Separate();
    AppendString(key);
    out_.push_back(':');
    after_key_ = true;
    return *this;
  }
  Json& String(std::string_view s) {
    Separate();
    AppendString(s);
    return *this;
  }
  Json& Uint(uint64_t v) {
    Separate();
    StrAppend(&out_, v);
    return *this;
  }
  Json& Int(int64_t v) {
    Separate();
    StrAppend(&out_, v);
    return *this;
  }
  // Fixed-point with `decimals` digits: RTTs and lags, never NaN or infinite.
  Json& Fixed(double v, int decimals) {
    Separate();
    char buf[64];
    snprintf(buf, sizeof(buf), "%.*f", decimals, v);
    out_.append(buf);
    return *this;
  }
  Json& Bool(bool v) {
    Separate();
    out_.append(v ? "true" : "false");
    return *this;
  }
  Json& Null() {
    Separate();
    out_.append("null");
    return *this;
  }
  Json& StringOrNull(std::string_view s) { return s.empty() ? Null() : String(s); }
  std::string Take() { return std::move(out_); }

 private:
  Json& Open(char c) {
    Separate();
    out_.push_back(c);
    first_ = true;
    return *this;
  }
  Json& Close(char c) {
    out_.push_back(c);
    first_ = false;
    return *this;
  }
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_) out_.push_back(',');
    first_ = false;
  }
  void AppendString(std::string_view s) {
    out_.push_back('"');
    for (char c : s) {
      auto u = static_cast<unsigned char>(c);
      switch (c) {
        case '"':
          out_.append("\\\"");
          break;
        case '\\':
          out_.append("\\\\");
          break;
        case '\n':
          out_.append("\\n");
          break;
        case '\r':
          out_.append("\\r");
          break;
        case '\t':
          out_.append("\\t");
          break;
        default:
          if (u < 0x20 || u == 0x7f) {
            char buf[8];
            snprintf(buf, sizeof(buf), "\\u%04x", u);
            out_.append(buf);
          } else {
            out_.push_back(c);
          }
      }
    }
    out_.push_back('"');
  }

  std::string out_;
  bool first_ = true;
  bool after_key_ = false;
};

void PoolFields(Json& j, const PoolStatus& p) {
  j.Key("total").Uint(p.total);
  j.Key("idle").Uint(p.idle);
  j.Key("active").Uint(p.active);
  j.Key("connecting").Uint(p.connecting);
  j.Key("waiters").Uint(p.waiters);
}

void NodeJson(Json& j, const StatusInput& in, const routing::NodeStatus& n) {
  const NodeConfig* cfg = n.index < in.nodes.size()           ? in.nodes[n.index].config
                          : n.index < in.config->nodes.size() ? &in.config->nodes[n.index]
                                                              : nullptr;
  const bool paused = n.index < in.nodes.size() && in.nodes[n.index].paused;
  const routing::TopologySnapshot& snap = *in.topology;
  j.BeginObject();
  j.Key("name").String(n.name);
  j.Key("region").String(n.region);
  j.Key("host").String(cfg != nullptr ? cfg->host : "");
  j.Key("port").Uint(cfg != nullptr ? cfg->port : 0);
  j.Key("role").String(routing::NodeRoleName(n.role));
  j.Key("health").String(routing::NodeHealthStateName(n.health));
  j.Key("up").Bool(n.up);
  j.Key("paused").Bool(paused);
  j.Key("is_primary").Bool(snap.primary == static_cast<int>(n.index));
  j.Key("local").Bool(n.region == in.config->proxy.region);
  j.Key("rtt_ms");
  if (n.rtt_known) {
    j.Fixed(static_cast<double>(n.rtt_us) / 1000.0, 3);
  } else {
    j.Null();
  }
  std::string lsn = n.lsn.valid() ? n.lsn.ToString() : "";
  j.Key("insert_lsn").StringOrNull(n.is_primary() ? lsn : "");
  j.Key("replay_lsn").StringOrNull(n.is_replica() ? lsn : "");
  bool lag = n.is_replica() && n.lag_known;
  j.Key("lag_bytes");
  lag ? j.Uint(n.lag_bytes) : j.Null();
  j.Key("lag_seconds");
  lag ? j.Fixed(static_cast<double>(n.lag_ms) / 1000.0, 3) : j.Null();
  j.Key("replay_paused").Bool(n.replay_paused);
  j.Key("replay_timestamp");
  if (n.replay_timestamp_us) {
    j.String(FormatUnixMs(*n.replay_timestamp_us / 1000));
  } else {
    j.Null();
  }
  j.Key("timeline");
  n.timeline != 0 ? j.Uint(n.timeline) : j.Null();
  j.Key("last_probe_ok_ms_ago");
  if (n.last_success_ms != 0 && in.now_ms >= n.last_success_ms) {
    j.Uint(in.now_ms - n.last_success_ms);
  } else {
    j.Null();
  }
  PoolStatus sum;
  for (const PoolStatus& p : in.pools) {
    if (p.node != static_cast<int>(n.index)) continue;
    sum.total += p.total;
    sum.idle += p.idle;
    sum.active += p.active;
    sum.connecting += p.connecting;
    sum.waiters += p.waiters;
  }
  j.Key("servers").BeginObject();
  PoolFields(j, sum);
  j.EndObject();
  j.Key("pools").BeginArray();
  for (const PoolStatus& p : in.pools) {
    if (p.node != static_cast<int>(n.index)) continue;
    j.BeginObject();
    j.Key("database").String(p.database);
    j.Key("user").String(p.user);
    j.Key("size").Uint(in.config->pool.size);
    PoolFields(j, p);
    j.EndObject();
  }
  j.EndArray();
  j.EndObject();
}

}  // namespace

Readiness ComputeReadiness(const routing::TopologySnapshot& snap, bool shutting_down) {
  if (shutting_down) return {false, "shutting down"};
  switch (snap.primary_state) {
    case routing::PrimaryState::kOne:
      return {true, ""};
    case routing::PrimaryState::kNone:
      for (const routing::NodeStatus& n : snap.nodes) {
        if (n.health != routing::NodeHealth::State::kUnknown) {
          return {false, "no primary: no up node reports pg_is_in_recovery() = false"};
        }
      }
      return {false, "no primary yet: nodes not probed"};
    case routing::PrimaryState::kConflict:
      return {false, "more than one node claims to be the primary; writes refused"};
  }
  return {false, "unknown"};
}

std::string FormatUnixMs(int64_t unix_ms) {
  time_t secs = static_cast<time_t>(unix_ms / 1000);
  int ms = static_cast<int>(unix_ms % 1000);
  if (ms < 0) {
    ms += 1000;
    --secs;
  }
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[96];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ms);
  return buf;
}

namespace {

// "tenants": the config entries and the mapping from the application's table, whether it is
// current, and why not.
void TenantMapJson(Json& j, const StatusInput& in) {
  const Metrics::TenantMapState& m = *in.tenant_map;
  j.Key("tenants").BeginObject();
  j.Key("config_entries").Uint(in.tenant_config_entries);
  j.Key("mapping").BeginObject();
  j.Key("configured").Bool(m.configured);
  if (m.configured) {
    // loading: never read yet; stale: the last refresh failed and the last
    // good map (if any) is in use.
    const bool failing = m.last_error_unix_ms > m.loaded_unix_ms;
    j.Key("state").String(m.loaded_unix_ms == 0 ? (failing ? "failing" : "loading")
                                                : (failing ? "stale" : "ok"));
    j.Key("entries").Uint(m.entries);
    j.Key("policies").Uint(m.policies);
    j.Key("loaded_at");
    m.loaded_unix_ms > 0 ? j.String(FormatUnixMs(m.loaded_unix_ms)) : j.Null();
    j.Key("age_s");
    m.loaded_unix_ms > 0
        ? j.Fixed(static_cast<double>(std::max<int64_t>(in.unix_ms - m.loaded_unix_ms, 0)) / 1000,
                  1)
        : j.Null();
    j.Key("refreshes").Uint(m.refreshes);
    j.Key("refresh_errors").Uint(m.refresh_errors);
    j.Key("last_error").StringOrNull(m.last_error);
    j.Key("last_error_at");
    m.last_error_unix_ms > 0 ? j.String(FormatUnixMs(m.last_error_unix_ms)) : j.Null();
    j.Key("last_refresh").BeginObject();
    j.Key("node").StringOrNull(m.node);
    j.Key("rows").Uint(m.rows);
    j.Key("skipped").Uint(m.skipped);
    j.Key("unknown_regions").Uint(m.unknown_regions);
    j.Key("duration_ms").Uint(m.duration_ms);
    j.EndObject();
  }
  j.EndObject();
  j.EndObject();
}

}  // namespace

std::string RenderStatusJson(const StatusInput& in) {
  const routing::TopologySnapshot& snap = *in.topology;
  Json j;
  j.BeginObject();
  j.Key("version").String(PGREGION_VERSION);
  j.Key("region").String(in.config->proxy.region);
  j.Key("time").String(FormatUnixMs(in.unix_ms));
  j.Key("ready").Bool(in.readiness.ready);
  j.Key("ready_reason").StringOrNull(in.readiness.reason);
  j.Key("roles_discovered").Bool(in.roles_discovered);
  j.Key("primary");
  const routing::NodeStatus* primary = snap.PrimaryNode();
  primary != nullptr ? j.String(primary->name) : j.Null();
  j.Key("primary_state").String(routing::PrimaryStateName(snap.primary_state));
  j.Key("failovers").Uint(snap.failovers);
  j.Key("topology_version").Uint(snap.version);
  j.Key("pool_mode").String(in.config->pool.mode == PoolMode::kSession ? "session" : "transaction");
  j.Key("clients").BeginObject();
  uint64_t total = 0;
  for (size_t s = 0; s < kClientGaugeStates; ++s) {
    j.Key(ClientGaugeStateName(static_cast<ClientGaugeState>(s))).Uint(in.clients[s]);
    total += in.clients[s];
  }
  j.Key("total").Uint(total);
  j.EndObject();
  j.Key("nodes").BeginArray();
  for (const routing::NodeStatus& n : snap.nodes) {
    if (!n.retired) NodeJson(j, in, n);  // removed by a reload
  }
  j.EndArray();
  if (in.tenant_map != nullptr) TenantMapJson(j, in);
  j.Key("recent_changes").BeginArray();
  if (in.events != nullptr) {
    for (const TopologyEvent& e : *in.events) {
      j.BeginObject();
      j.Key("time").String(FormatUnixMs(e.unix_ms));
      j.Key("event").String(e.event);
      j.Key("node").StringOrNull(e.node);
      j.Key("from").StringOrNull(e.from);
      j.Key("to").StringOrNull(e.to);
      j.Key("failover").Bool(e.failover);
      j.EndObject();
    }
  }
  j.EndArray();
  j.EndObject();
  std::string out = j.Take();
  out.push_back('\n');
  return out;
}

}  // namespace pgregion::proxy
