// The admin HTTP listener ([admin] listen): accepts connections on the proxy's
// own libuv loop, reads one request head per connection, asks its Handler for
// the response, writes it and closes (Connection: close).
//
// Bounded: at most kMaxConnections at once (when full, the oldest connection
// without a complete request is closed to make room, so probes get through a
// flood of unfinished requests), a head of at most kMaxHeadBytes,
// kRequestTimeoutMs to send it and read the answer. Malformed requests
// get 400/431/505 (and a slow one 408) from here, then the connection lingers
// briefly so the client reads the answer before the close; the handler sees
// only well-formed requests. Running
// on the loop thread means the handler reads the proxy's state (topology,
// pools, metrics) without locks. Owned by AdminEndpoints; Close() before
// destruction, and the loop must run once more for the close callbacks.
#pragma once

#include <uv.h>

#include <cstddef>
#include <cstdint>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "proxy/admin/http_request.h"
#include "proxy/config/config.h"

namespace pgregion::proxy {

class AdminServer {
 public:
  class Handler {
   public:
    virtual ~Handler() = default;
    virtual HttpResponse Handle(const HttpRequest& request) = 0;
  };

  static constexpr size_t kMaxConnections = 64;
  static constexpr size_t kMaxHeadBytes = 8192;
  // A probe sends its whole request at once; a few seconds is plenty even on a
  // loaded machine, and bounds how long an unfinished request holds a slot.
  static constexpr uint64_t kRequestTimeoutMs = 5000;

  AdminServer(uv_loop_t* loop, Handler* handler);
  ~AdminServer();
  AdminServer(const AdminServer&) = delete;
  AdminServer& operator=(const AdminServer&) = delete;

  absl::Status Listen(const ListenAddress& address);
  // Stops listening and closes every open admin connection.
  void Close();

 private:
  class Connection;
  friend class Connection;
  static void OnConnection(uv_stream_t* server, int status);
  static void OnListenerClosed(uv_handle_t* handle);
  void Forget(Connection* connection) { connections_.erase(connection); }

  uv_loop_t* loop_;
  Handler* handler_;
  // Heap-allocated so a close callback still in flight never outlives it.
  uv_tcp_t* listener_ = nullptr;
  absl::flat_hash_set<Connection*> connections_;
  uint64_t next_seq_ = 0;  // accept order of connections
};

}  // namespace pgregion::proxy
