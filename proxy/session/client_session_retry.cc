// ClientSession: transparent retry of autocommit reads.
//
// A read routed to a replica outside any transaction may be sent again when it
// fails before any of its result reached the client: the replica went away
// (connection refused or reset, 57P01/57P02/57P03) or replay cancelled it
// (recovery conflict, 40001). It goes once to another replica, then to the
// primary. Writes, units inside a transaction, units that hold session state
// and units routed before their end (Flush, oversized batches) never qualify,
// and a unit stops qualifying the moment a row, a CommandComplete, a notice or
// any error the client must see is delivered, or another unit follows it onto
// the same server.
//
// Protocol acknowledgements (ParseComplete, BindComplete, RowDescription, ...)
// may already have reached the client: the next attempt sends the same ones
// again, and they are dropped once more by type and count.
//
// With routing.read_deadline_ms, a read that may still be retried and has run
// that long on a replica (from the moment it had its server connection) is
// also sent elsewhere: its backend is cancelled, its connection closed. The
// last attempt, on the primary, is never retried, so it has no deadline.

#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/backend/pool.h"
#include "proxy/backend/server_connection.h"
#include "proxy/net/log.h"
#include "proxy/net/tls_context.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_env.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;

namespace {

// Replies that acknowledge protocol steps and show none of the read's rows.
bool IsAcknowledgement(char t) {
  switch (t) {
    case '1':  // ParseComplete
    case '2':  // BindComplete
    case '3':  // CloseComplete
    case 't':  // ParameterDescription
    case 'T':  // RowDescription
    case 'n':  // NoData
      return true;
    default:
      return false;
  }
}

bool IsRetryableSqlstate(std::string_view code) {
  return code == p::sqlstate::kAdminShutdown || code == p::sqlstate::kCrashShutdown ||
         code == p::sqlstate::kCannotConnectNow || code == p::sqlstate::kSerializationFailure;
}

constexpr uint8_t kMaxAttempts = 3;  // the replica, another replica, the primary

}  // namespace

bool ClientSession::RetryEligible(const routing::RouteContext& ctx,
                                  const routing::Route& route) const {
  const std::vector<routing::NodeView>& views = env_->node_views();
  if (route.node < 0 || static_cast<size_t>(route.node) >= views.size()) return false;
  if (views[static_cast<size_t>(route.node)].primary) return false;  // nothing after the primary
  return !ctx.write && !ctx.parse_error && !ctx.pinned && !ctx.session_pooling &&
         !ctx.begins_transaction && !unit_open_ && retry_.attempts + 1 < kMaxAttempts;
}

void ClientSession::OnServerError(std::string_view body) {
  // A replayed batch's error is part of the replay's digest, not the client's.
  if (optimistic_ != nullptr && optimistic_->phase != Optimistic::Phase::kOnReplica) return;
  if (retry_.armed && !retry_.pending) {
    absl::StatusOr<p::ErrorNotice> err = p::ParseErrorNotice(body);
    if (err.ok() && IsRetryableSqlstate(err->sqlstate())) {
      retry_.pending = true;  // the rest of this attempt's replies are dropped
      LogDebug("read_retry_error").Kv("sqlstate", err->sqlstate()).Kv("message", err->message());
      return;
    }
  }
  unit_failed_ = true;
}

// Filters what the running attempt sends the client while the unit may still
// be retried. Returns false when `bytes` must not be written.
bool ClientSession::MayDeliver(std::string_view bytes) {
  if (retry_.pending) return false;
  // Whole messages (several synthesized replies may come at once).
  size_t off = 0;
  while (off + 5 <= bytes.size()) {
    char type = bytes[off];
    const uint32_t len = p::ReadUint32(bytes.substr(off + 1));
    std::string& delivered = retry_.unit->delivered;
    if (retry_.seen < delivered.size()) {
      // The client already has this reply from an earlier attempt.
      if (type != delivered[retry_.seen]) {
        Fatal(p::sqlstate::kConnectionFailure,
              "pgregion: a retried read was answered differently by another node");
        return false;
      }
      ++retry_.seen;
      if (off != 0) break;  // cannot happen: replays come first
      bytes.remove_prefix(std::min<size_t>(size_t{len} + 1, bytes.size()));
      if (bytes.empty()) return false;
      continue;
    }
    if (!IsAcknowledgement(type)) {
      retry_.armed = false;  // the client sees the result from here on
      break;
    }
    if (!retry_.armed && !retry_.pending) break;  // only replays were left to drop
    delivered.push_back(type);
    ++retry_.seen;
    off += size_t{len} + 1;
  }
  if (bytes.empty()) return false;
  stream_->Write(bytes);
  return false;  // written here (with the replayed prefix cut off)
}

void ClientSession::OnNodeHung(int node) {
  if (state_ == State::kClosed || retry_.node != node) return;
  // Nothing of the result reached the client yet (armed), or it already failed
  // and waits for the rest of its replies (pending: a hung node sends none).
  if (!retry_.armed && !retry_.pending) return;
  if (server_ != nullptr) {
    if (server_->pool()->node() != node) return;
  } else if (waiting_pool_ != nullptr && waiting_pool_->node() == node) {
    // A new connection to a hung node would wait up to pool.connect_timeout_ms.
    waiting_pool_->CancelWait(this);
    waiting_pool_ = nullptr;
  } else {
    return;
  }
  // RetryRead closes the server connection (its unit is unfinished): a hung
  // backend's connection never goes back to the pool.
  RetryRead(ReadRetryReason::kNodeSuspect, "node suspect: a health probe timed out");
}

void ClientSession::ReadDeadlinePassed() {
  // The timer runs on after the read stopped qualifying (a row reached the
  // client, another unit followed it onto the server): then it changes nothing.
  if (server_ == nullptr || (!retry_.armed && !retry_.pending)) return;
  // A closed socket does not stop PostgreSQL's query until it next writes to
  // the client, which a slow sort or a lock wait may not do for a long time.
  // A connection that is clean has nothing running and goes back to the pool
  // (RetryRead): a cancel must never reach whoever gets it next.
  if (!server_->clean()) env_->CancelBackend(*server_);
  RetryRead(ReadRetryReason::kDeadline, "read deadline");
}

void ClientSession::RetryRead(ReadRetryReason reason, std::string_view why) {
  ServerConnection* server = server_;
  server_ = nullptr;
  if (server != nullptr && server->state() != ServerConnection::State::kClosed) {
    server->set_custom_names(session_.CustomNames());
    if (server->clean()) {
      server->Unbind();
      server->pool()->Release(server);
    } else {
      server->Close("read retried elsewhere");
    }
  }
  int failed = retry_.node;
  const std::vector<routing::NodeView>& views = env_->node_views();
  LogInfo("read_retry")
      .Kv("client", peer_)
      .Kv("node", failed >= 0 ? std::string_view(env_->node_config(failed).name) : "")
      .Kv("attempt", retry_.attempts + 2)
      .Kv("reason", why);
  env_->metrics().ReadRetry(reason);
  retry_.armed = false;
  retry_.pending = false;
  retry_.seen = 0;
  ++retry_.attempts;
  if (retry_.sent) {
    // The unit goes in front of anything the client sent after it (if it was
    // never sent, it is still there).
    to_server_.insert(0, retry_.unit->bytes);
    dispatched_bytes_ = retry_.unit->bytes.size();
    retry_.sent = false;
  }
  routing::RouteContext ctx = retry_.unit->ctx;
  if (failed >= 0 && failed < 64) ctx.avoid_nodes |= uint64_t{1} << failed;
  if (retry_.attempts + 1 >= kMaxAttempts) {
    // Last attempt: the primary (every replica avoided).
    for (size_t i = 0; i < views.size() && i < 64; ++i) ctx.avoid_nodes |= uint64_t{1} << i;
  }
  TransitionTo(State::kIdle);
  Dispatch(ctx);
}

}  // namespace pgregion::proxy
