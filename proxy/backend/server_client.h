// What a pool and a server connection call on the client session waiting for
// or bound to a connection. ClientSession implements it; the backend library
// knows sessions only through it (unit tests script one).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace pgregion::proxy {

class ServerConnection;

// What the LSN probe's three calls returned, as text (empty: the call failed
// or returned NULL).
struct LsnProbeAnswer {
  std::string synchronous_commit;  // current_setting('synchronous_commit')
  std::string flush;               // pg_current_wal_flush_lsn()
  std::string insert;              // pg_current_wal_insert_lsn()
};

class ServerClient {
 public:
  // From the pool: a connection for the waiting unit, or why there is none.
  // `node_failure`: the node failed (not this login); a read may go elsewhere.
  virtual void OnServerAssigned(ServerConnection* server) = 0;
  virtual void OnServerFailed(const std::string& error_response, bool node_failure) = 0;

  // From the bound server connection: replies for the client.
  virtual void ForwardToClient(std::string_view bytes) = 0;
  virtual void FlushToClient() = 0;
  // Whether ForwardToClient() passes every message through unlooked-at (no
  // read retry is holding replies back), so the server may batch them.
  virtual bool ForwardsPlainly() const = 0;
  // True when the client's ReadyForQuery is held until an LSN probe answers.
  virtual bool HoldReadyForQuery(std::string_view bytes) = 0;
  // The read-your-writes LSN probe behind a unit answered
  // (ServerConnection::SendLsnProbe); a call that failed left its part empty.
  virtual void OnLsnProbeDone(const LsnProbeAnswer& answer) = 0;
  // The replay the unit waits for finished (the identity, settings that may
  // fail), or a replay sent ahead of the unit failed; `error` is empty when
  // it succeeded.
  virtual void OnIdentityRestored(std::string_view sqlstate, std::string_view error) = 0;
  // One custom-parameter replay (ServerConnection::kCustomTag) was answered:
  // `error_body` is the ErrorResponse body if the server refused it, else empty.
  virtual void OnCustomParameterReplayed(std::string_view error_body) = 0;
  virtual void OnServerParameter(std::string_view name, std::string_view value) = 0;
  // The client's unit is complete (its ReadyForQuery went out).
  virtual void OnServerUnitDone() = 0;
  // An ErrorResponse for the client's unit (its body), before it is forwarded.
  virtual void OnServerError(std::string_view body) = 0;
  virtual void OnServerLost(std::string_view why) = 0;
  // The server's socket accepted everything queued (backpressure is over).
  virtual void OnServerDrained() = 0;

  // The node turned suspect (a probe timed out): a retryable read there moves.
  virtual void OnNodeHung(int node) = 0;
  // The proxy's pid of this client (SHOW SERVERS).
  virtual uint32_t pid() const = 0;

 protected:
  ~ServerClient() = default;
};

}  // namespace pgregion::proxy
