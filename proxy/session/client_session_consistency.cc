// ClientSession: consistency levels and read-your-writes waits.
//
// Each unit is decided under the session's level (pgregion.consistency, from
// the config, the startup options or SET) unless its own comment hint names
// one; a `ryw_token` or `max_staleness` hint applies to that unit only. The
// router gets the tokens as of the decision: a unit that waited (for a pool, a
// replica, or a bound server) is decided with the tokens it has then.
//
// A causal read that no replica has replayed may wait on the nearest replica
// that is getting there (Route::wait_node) for at most Route::wait_ms: the
// session parks in kWaitReplay with its timer as the deadline and the
// ReplayPoller polls that replica; every answer decides the read again. Once a
// replica has the token the read goes there; at the deadline, or when the
// replica pauses, leaves recovery or cannot be polled, it goes to the primary.
// Each wait is observed in ryw_wait_seconds, each fallback counted in
// ryw_fallbacks_total{reason}. See DESIGN.md "Consistency levels and
// read-your-writes tokens".

#include <algorithm>

#include "proxy/net/log.h"
#include "proxy/net/tls_context.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_env.h"

namespace pgregion::proxy {

namespace r = ::pgregion::routing;

void ClientSession::AddConsistencyHints(const r::StatementHints& hints) {
  if (hints.consistency) unit_.consistency = *hints.consistency;
  if (hints.max_staleness_ms) unit_.max_staleness_ms = *hints.max_staleness_ms;
  if (hints.ryw_token) unit_.ryw_token = *hints.ryw_token;
}

void ClientSession::SetConsistency(std::string_view value) {
  consistency_.assign(value.data(), value.size());
  consistency_level_ = r::StatementHints::ParseConsistency(value);
}

void ClientSession::ApplyConsistency(r::RouteContext* ctx) {
  std::optional<r::Consistency> level = unit_.consistency;
  // A tenant's level replaces the configured default, not the client's choice.
  if (!level && !consistency_explicit_ && ctx->tenant != nullptr) level = ctx->tenant->consistency;
  if (!level) level = consistency_level_;
  ctx->consistency = level.value_or(r::Consistency::kCausal);
  std::optional<int64_t> staleness = unit_.max_staleness_ms;
  if (!staleness && !max_staleness_.empty()) {
    staleness = r::StatementHints::ParseDurationMs(max_staleness_);
  }
  ctx->max_staleness_ms =
      staleness ? static_cast<uint64_t>(*staleness) : env_->config().routing.max_staleness_ms;
  if (unit_.ryw_token.empty()) return;
  absl::StatusOr<r::RywToken> token = r::RywToken::Parse(unit_.ryw_token);
  const uint64_t cluster = env_->topology()->system_identifier;
  if (!token.ok() || (cluster != 0 && token->system_identifier != cluster)) {
    // A token this proxy cannot judge: fail closed, the primary has every write.
    LogDebug("ryw_token_hint_ignored")
        .Kv("client", peer_)
        .Kv("error",
            token.ok() ? std::string("from another cluster") : ToStd(token.status().message()));
    ctx->consistency = r::Consistency::kStrong;
    return;
  }
  ctx->hint_token = *token;
}

void ClientSession::RefreshConsistency(r::RouteContext* ctx) const {
  ctx->session_token = EffectiveToken();
  ctx->write_pending = wrote_;
}

r::Route ClientSession::DecideRoute(const r::RouteContext& base) {
  r::RouteContext ctx = base;
  RefreshConsistency(&ctx);
  ctx.avoid_nodes |= NodesMissing();
  r::Route route = env_->router().Decide(ctx);
  if (route.reason != r::RouteReason::kRywFallback || ctx.ryw_wait_over) return route;
  // A unit already parked for a route (no primary) has its timer running for
  // failover.write_wait_ms: it does not start a wait of its own on top.
  if (route.wait_ms > 0 && state_ != State::kWaitRoute) {
    StartReplayWait(ctx, route);  // parks the session, or counts the fallback
    return route;
  }
  CountRywFallback(ctx, route);
  return route;
}

void ClientSession::CountRywFallback(const r::RouteContext& ctx, const r::Route& route) {
  RywFallbackReason why = RywFallbackReason::kTooFar;
  if (ctx.write_pending) {
    why = RywFallbackReason::kWritePending;
  } else if (route.wait_node < 0) {
    why = RywFallbackReason::kNoCandidate;
  }
  env_->metrics().RywFallback(why);
}

bool ClientSession::StartReplayWait(const r::RouteContext& ctx, const r::Route& route) {
  ReplayPoller* poller = env_->replay_poller();
  const auto node = static_cast<size_t>(route.wait_node);
  if (poller == nullptr || !poller->AddWaiter(node, this)) {
    env_->metrics().RywFallback(RywFallbackReason::kNoCandidate);
    return false;
  }
  auto wait = std::make_unique<ReplayWait>(ReplayWait{node, uv_hrtime(), ctx});
  TransitionTo(State::kWaitReplay, route.wait_ms);
  replay_wait_ = std::move(wait);
  return true;
}

void ClientSession::EndReplayWait() {
  if (replay_wait_ == nullptr) return;
  const std::unique_ptr<ReplayWait> wait = std::move(replay_wait_);
  if (ReplayPoller* poller = env_->replay_poller()) poller->RemoveWaiter(wait->node, this);
  env_->metrics().RywWait(static_cast<double>(uv_hrtime() - wait->start_ns) * 1e-9);
}

void ClientSession::OnReplayPolled(size_t node, bool ok, bool paused) {
  if (state_ != State::kWaitReplay || node != replay_wait_->node) return;
  r::RouteContext ctx = replay_wait_->ctx;
  if (ok && !paused) {
    RefreshConsistency(&ctx);
    const r::Route route = env_->router().Decide(ctx);
    // Still behind, and still worth waiting on: keep waiting (the deadline stands).
    if (route.reason == r::RouteReason::kRywFallback && route.wait_node >= 0) return;
  } else {
    env_->metrics().RywFallback(RywFallbackReason::kNoCandidate);
  }
  TransitionTo(State::kIdle);  // ends the wait (LeaveState)
  ctx.ryw_wait_over = true;
  Dispatch(ctx);
}

void ClientSession::ReplayWaitTimedOut() {
  r::RouteContext ctx = replay_wait_->ctx;
  TransitionTo(State::kIdle);  // ends the wait (LeaveState)
  env_->metrics().RywFallback(RywFallbackReason::kWaitTimeout);
  ctx.ryw_wait_over = true;
  Dispatch(ctx);
}

void ClientSession::CountReadAfterWrite(int node) {
  read_after_write_ = false;
  ReadAfterWriteServed served = ReadAfterWriteServed::kPrimary;
  const std::vector<r::NodeView>& views = env_->node_views();
  if (node >= 0 && static_cast<size_t>(node) < views.size() &&
      !views[static_cast<size_t>(node)].primary) {
    served = env_->node_config(node).region == env_->config().proxy.region
                 ? ReadAfterWriteServed::kLocalReplica
                 : ReadAfterWriteServed::kRemoteReplica;
  }
  env_->metrics().ReadAfterWrite(served);
}

bool ClientSession::BoundReplicaServes(int node, const r::RouteContext& ctx) const {
  const r::TopologySnapshotPtr topo = env_->topology();
  if (node < 0 || static_cast<size_t>(node) >= topo->nodes.size()) return false;
  const r::NodeStatus& n = topo->nodes[static_cast<size_t>(node)];
  switch (ctx.consistency) {
    case r::Consistency::kCausal: {
      const r::RywToken token = r::RywToken::Max(EffectiveToken(), ctx.hint_token);
      if (wrote_) return false;
      if (!token.valid()) return true;
      return (n.timeline == 0 || n.timeline >= token.timeline) && r::ReplayCovers(n.lsn, token.lsn);
    }
    case r::Consistency::kBounded:
      return !n.lag_known || n.lag_ms <= ctx.max_staleness_ms;
    case r::Consistency::kEventual:
      return true;
    case r::Consistency::kStrong:
      return false;
  }
  return false;
}

}  // namespace pgregion::proxy
