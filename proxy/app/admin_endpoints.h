// What the admin HTTP endpoint answers ([admin] listen): /metrics (Prometheus
// text format), /health (the process is alive), /ready (a primary is known and
// the proxy is not shutting down), /status (JSON; needs the bearer token when
// one is configured). Reads the ProxyApp's state on the loop thread, where the
// AdminServer it owns runs. Owned by the ProxyApp; Stop() before it goes away.
#pragma once

#include <memory>

#include "absl/status/status.h"
#include "proxy/admin/admin_server.h"
#include "proxy/admin/metrics.h"
#include "proxy/admin/status_report.h"

namespace pgregion::proxy {

class ProxyApp;

class AdminEndpoints : public AdminServer::Handler {
 public:
  explicit AdminEndpoints(ProxyApp* app);
  ~AdminEndpoints() override;

  absl::Status Start();
  void Stop();

  HttpResponse Handle(const HttpRequest& request) override;

 private:
  ConnectionCounts CountConnections() const;
  std::vector<PoolStatus> PoolStatuses() const;
  HttpResponse MetricsPage() const;
  HttpResponse ReadyPage() const;
  HttpResponse StatusPage() const;

  ProxyApp* app_;
  std::unique_ptr<AdminServer> server_;
};

}  // namespace pgregion::proxy
