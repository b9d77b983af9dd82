// What pools and server connections need of the process around them, and no
// more: the loop, where streams defer their sends, the configuration, the
// nodes' addresses, and three reports to the router (requests in flight,
// data-path failures, pauses). The ProxyApp implements it; unit tests
// (tests/backend/) implement it over a scripted backend on loopback.
#pragma once

#include <sys/socket.h>
#include <uv.h>

#include <cstdint>
#include <string>

#include "proxy/config/config.h"

namespace pgregion::proxy {

class FlushQueue;
class TlsContext;

class BackendEnv {
 public:
  virtual uv_loop_t* loop() const = 0;
  virtual FlushQueue* flush_queue() const = 0;
  virtual const Config& config() const = 0;
  // The node's configuration (name, host for TLS) and resolved address.
  virtual const NodeConfig& node_config(int node) const = 0;
  virtual const sockaddr* node_address(int node) const = 0;
  // Null when server TLS is off.
  virtual TlsContext* server_tls() const = 0;
  // No new units go to `node` (paused or removed by a reload).
  virtual bool NodePaused(int node) const = 0;
  // The proxy's own traffic to `node` failed (a login was refused or timed out).
  virtual void ReportDataPathFailure(int node, bool certain) = 0;
  // A pool's requests in flight changed by `delta` (the replica selector's load).
  virtual void AddOutstanding(int node, int64_t delta) = 0;
  virtual uint64_t NextServerId() = 0;
  // A login was refused because the node may not have the pool's database or
  // user (yet: a replica replaying their creation; routing::LoginRefusal), and
  // a later login there succeeded. The ProxyApp keeps replicas that lack them
  // out of reads for a while (routing::MissingObjects); other environments
  // need not care.
  virtual void OnLoginRefusedMissing(int /*node*/, const std::string& /*database*/,
                                     const std::string& /*user*/) {}
  virtual void OnLoginAccepted(int /*node*/, const std::string& /*database*/,
                               const std::string& /*user*/) {}

 protected:
  ~BackendEnv() = default;
};

}  // namespace pgregion::proxy
