// Probes every configured node and feeds the results into a routing::Topology.
//
// Owns one NodeProbe per node. A NodeProbe is a heap object that holds the
// node's kept-open libpq connection, one uv_timer_t (the interval between
// probes, and the deadline of the connect or probe in flight) and a watch on
// the connection's socket; it frees itself in its close callbacks after
// Stop(). Loop thread only. libpq is used only through its asynchronous API on
// nonblocking connections (PQconnectStartParams/PQconnectPoll, PQsendQuery,
// PQflush, PQconsumeInput, PQisBusy, PQgetResult), and host names are resolved
// before the loop starts (`hostaddr`), so nothing here blocks the loop.
//
// Every `interval_ms` each node gets one probe (see kProbeSql in the .cc): its
// role, its LSN, the replay timestamp and pause state, the system identifier
// and the timeline, and the probe's round-trip time (send to result, uv_hrtime).
// A probe without an answer within `timeout_ms` is a kProbeTimeout; a connect
// that does not finish within `connect_timeout_ms` too (one still connecting
// after `timeout_ms` makes the node suspect, NodeHealth); a refused or broken
// connection or an error reply is a kProbeError. After a failure the node gets
// a new connection at the next interval, with a new connection epoch (which
// makes the Topology drop what it cached about the node).
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "proxy/config/config.h"
#include "routing/node_health.h"
#include "routing/topology.h"

namespace pgregion::proxy {

// Where one node is, by node index (the Topology's).
struct HealthTarget {
  std::string name;
  std::string host;      // as configured: the name the TLS certificate must match
  std::string hostaddr;  // numeric, resolved before the loop runs: libpq does no DNS
  uint16_t port = 5432;
  bool retired = false;  // removed by a reload: keeps its index, is not probed
};

struct HealthCheckerOptions {
  uint32_t interval_ms = 500;
  uint32_t timeout_ms = 1000;
  uint32_t connect_timeout_ms = 5000;
  std::string user;
  std::string password;  // plaintext; empty: none (libpq may still use ~/.pgpass)
  std::string database = "postgres";
  ServerTlsMode tls_mode = ServerTlsMode::kDisable;
  std::string ca_file;  // verify-full only
};

// [health] and [server_tls] of `config`. Login: [health] user/password when
// `user` is set, else the first [[users]] entry's server_user/server_password.
// Connect deadline: the larger of health.timeout_ms and pool.connect_timeout_ms
// (a TLS + SCRAM login to a distant region takes several round trips).
HealthCheckerOptions HealthOptionsFromConfig(const Config& config);

// The up/down thresholds of [health], as the Topology's NodeHealth takes them.
routing::HealthPolicy HealthPolicyFromConfig(const HealthSection& health);

// The libpq connection parameters (keyword, value) of the probe connection to
// `target`, password included: host + hostaddr (no DNS lookup), sslmode from
// [server_tls] (the CA file only with verify-full; prefer and require do not
// verify, as for pooled connections), connect_timeout,
// application_name=pgregion-health, gssencmode=disable.
std::vector<std::pair<std::string, std::string>> HealthConnectParams(
    const HealthCheckerOptions& options, const HealthTarget& target);

class HealthChecker {
 public:
  // Told of every topology update the checker makes, on the loop thread,
  // after the Topology has taken it (topology->snapshot() is the new state).
  class Observer {
   public:
    virtual ~Observer() = default;
    virtual void OnTopologyUpdate(size_t node, const routing::TopologyUpdate& update) = 0;
  };

  // `topology` (one node per target, same order) and `observer` must outlive
  // the checker.
  HealthChecker(uv_loop_t* loop, HealthCheckerOptions options, std::vector<HealthTarget> targets,
                routing::Topology* topology, Observer* observer);
  ~HealthChecker();  // Stop()s
  HealthChecker(const HealthChecker&) = delete;
  HealthChecker& operator=(const HealthChecker&) = delete;

  // The first probe round starts at once (on the next loop iteration), for
  // every target that is not retired.
  void Start();
  // Closes every connection and handle; after it no callback reaches the
  // checker, its topology or its observer. Idempotent.
  void Stop();

  // The proxy's own traffic to `node` failed. `certain` (a new connection was
  // refused, timed out, or told "cannot connect now"): a kDataPath failure that
  // quarantines the node at once. Otherwise (an open connection was reset or
  // terminated, which pg_terminate_backend of one backend also does): counted
  // like one failed probe.
  void ReportDataPathFailure(int node, bool certain);

  const HealthCheckerOptions& options() const { return options_; }
  size_t size() const { return targets_.size(); }

 private:
  class NodeProbe;
  friend class NodeProbe;

  void OnProbeSuccess(size_t node, const routing::ProbeResult& result);
  void OnProbeFailure(size_t node, routing::NodeHealth::Failure failure);
  void OnProbeSuspect(size_t node);

  uv_loop_t* loop_;
  HealthCheckerOptions options_;
  std::vector<HealthTarget> targets_;
  routing::Topology* topology_;
  Observer* observer_;
  std::vector<NodeProbe*> probes_;  // each frees itself after Close()
  bool started_ = false;
  bool stopped_ = false;
};

}  // namespace pgregion::proxy
