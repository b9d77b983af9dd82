// Reads the tenant mapping from the application's own table ([tenancy] query,
// issue 20): one query on the primary (else an up node), every refresh_ms and
// whenever RefreshNow() is called (RELOAD), each on a new libpq connection that
// is closed when the refresh ends. A refresh that succeeds hands the observer a
// whole new routing::TenantMap; one that fails (connect, timeout, an error, a
// bad shape, too many rows) changes nothing: the observer keeps the last good
// map, and hears why.
//
// The query returns, per row: the tenant id (text), its preferred region(s),
// optionally its allowed region(s), optionally a consistency level. A region
// column holds one name, names separated by commas, or a PostgreSQL array
// (routing::ParseRegionList); NULL means none. Rows without an id, with an id
// over TenantDirectory::kMaxIdBytes, with a region column over kMaxRegionBytes
// or an unknown consistency level are skipped and counted.
//
// Bounds: rows arrive in libpq's single-row mode, so neither libpq nor this
// class holds the whole result, and each socket read parses only the rows it
// brought (the loop thread's work per event stays small). More than
// TenantMap::kMaxEntries rows fail the refresh. The connection logs in with
// default_transaction_read_only and a statement_timeout, and the query is sent
// with the extended protocol, which runs exactly one statement; the whole
// refresh (connect included) has timeout_ms.
//
// Loop thread only. libpq only through PqAsyncConnection (asynchronous, numeric
// host addresses): nothing blocks the loop.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "proxy/backend/health_checker.h"
#include "routing/tenant_policy.h"

namespace pgregion::proxy {

struct TenantMapLoaderOptions {
  std::string query;
  uint32_t refresh_ms = 30000;
  uint32_t timeout_ms = 10000;  // one refresh, connect included
  // The login: the health probes' user, password and TLS, with `database`.
  HealthCheckerOptions login;
  // The regions of the configured nodes: rows naming others are counted (a typo
  // in the application's table would otherwise refuse a tenant's reads silently).
  std::vector<std::string> regions;
};

// What one successful refresh read.
struct TenantMapLoadStats {
  uint64_t rows = 0;
  uint64_t skipped = 0;          // no id, id or region list too long, bad consistency
  uint64_t unknown_regions = 0;  // rows naming a region no node has
  std::string example_unknown;   // one such region, for the log
  uint64_t duration_ms = 0;
  std::string node;
};

class TenantMapLoader {
 public:
  // Region columns longer than this are not region lists: the row is skipped.
  static constexpr size_t kMaxRegionBytes = 4096;

  class Observer {
   public:
    virtual ~Observer() = default;
    // Where the query should run now (the primary, else an up node); nullopt
    // when no node is known to be up: the refresh fails and is retried.
    virtual std::optional<HealthTarget> TenantMapTarget() = 0;
    virtual void OnTenantMapLoaded(std::shared_ptr<const routing::TenantMap> map,
                                   const TenantMapLoadStats& stats) = 0;
    // The last good map stays; `why` names the node and the cause.
    virtual void OnTenantMapFailed(const std::string& why) = 0;
  };

  // `observer` must outlive the loader. Nothing runs before Start().
  TenantMapLoader(uv_loop_t* loop, TenantMapLoaderOptions options, Observer* observer);
  ~TenantMapLoader();  // Stop()s
  TenantMapLoader(const TenantMapLoader&) = delete;
  TenantMapLoader& operator=(const TenantMapLoader&) = delete;

  // The first refresh runs at once, then one every refresh_ms after each ends.
  void Start();
  // A refresh now (RELOAD); if one is running, another right after it.
  void RefreshNow();
  // Closes the connection and the timer; no observer call follows. Idempotent.
  void Stop();

 private:
  class Runner;
  Runner* runner_ = nullptr;  // frees itself in its timer's close callback
};

}  // namespace pgregion::proxy
