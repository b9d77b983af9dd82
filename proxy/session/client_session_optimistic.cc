// ClientSession: optimistic read transactions.
//
// ORMs and drivers with autocommit off wrap every unit of work, reads
// included, in BEGIN ... COMMIT. A transaction that is not declared READ
// WRITE (nor SERIALIZABLE, which a standby cannot run) starts where its
// first statement would go as an autocommit read: on a replica chosen by the
// session's consistency level and read-your-writes token. While it only
// reads it stays there, and COMMIT ends it there.
//
// Every later batch is collected and judged before it is sent. The first one
// that needs the primary (a write, a locking read, a function the classifier
// cannot prove read-only, state only the primary has, route=primary, or past
// the caps routing.optimistic_max_statements / optimistic_max_bytes) waits
// until the replica has answered everything before it. Then the move:
//   1. ROLLBACK on the replica (its connection goes back to the pool, or is
//      closed if a session statement ran there);
//   2. a primary connection; the same BEGIN (its isolation level and options)
//      and every client message that ran on the replica, in order, with the
//      replies digested instead of forwarded (protocol/reply_digest.h: rows,
//      command tags and error SQLSTATEs);
//   3. equal digests: the client saw what the primary shows it now, and the
//      waiting batch goes on to the primary, as does the rest of the
//      transaction. Different digests: the primary's transaction is made to
//      fail, the waiting batch gets 40001 (serialization_failure, which
//      applications retry), and the client's ROLLBACK ends it as usual.
//
// A write is never sent twice: only batches that ran on the replica, which
// were all read-only there, are replayed. The client never sees a result the
// primary would not have given it: anything the replay shows differently
// ends in 40001.
//
// What is replayed exactly and what is not (docs/OPTIMISTIC.md): cursors
// (DECLARE, FETCH, CLOSE) and COPY ... TO STDOUT are replayed, and their
// rows compared; savepoints are replayed (errors rolled back to are part of
// the digest); COPY FROM STDIN and anything that pins the session need the
// primary and move first. A transaction that failed on the replica is not
// moved (it can only roll back). A batch that ends with Flush instead of Sync
// and meets a mismatch closes the connection with 40001.

#include "protocol/frame_decoder.h"
#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/backend/pool.h"
#include "proxy/backend/server_connection.h"
#include "proxy/net/log.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_env.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;
namespace r = ::pgregion::routing;

namespace {

// What makes the primary's transaction fail after a mismatch; its text is
// what a DBA reading the server log sees.
constexpr std::string_view kAbortQuery =
    "SELECT 'pgregion: optimistic transaction replay differed; rolling back'::int";

}  // namespace

bool ClientSession::OptimisticEligible(const r::RouteContext& ctx) const {
  if (!optimistic_enabled_ || primary_after_mismatch_ || server_ != nullptr ||
      optimistic_ != nullptr || env_->config().pool.mode != PoolMode::kTransaction) {
    return false;
  }
  // A READ ONLY transaction is a replica read already; others start on the
  // primary unless they begin here as reads.
  if (!ctx.begins_transaction || ctx.read_only_transaction) return false;
  if (ctx.write || ctx.parse_error || ctx.too_complex || ctx.pinned || ctx.serializable ||
      ctx.read_write_requested || ctx.primary_state || ctx.reads_sequence_state) {
    return false;
  }
  if (ctx.consistency == r::Consistency::kStrong ||
      ctx.preference == r::RoutePreference::kPrimary) {
    return false;
  }
  // The whole batch must be known (not one routed at a Flush or over kHighWater).
  if (unit_open_ || routed_unit_.read_write_begin || routed_unit_.optimistic == false) {
    return false;
  }
  const RoutingSection& cfg = env_->config().routing;
  return routed_unit_.statements <= cfg.optimistic_max_statements &&
         to_server_.size() <= cfg.optimistic_max_bytes;
}

void ClientSession::OptimisticStart(const r::RouteContext& ctx, const r::Route& route) {
  if (!ctx.optimistic) return;
  const std::vector<r::NodeView>& views = env_->node_views();
  const bool replica = route.node >= 0 && static_cast<size_t>(route.node) < views.size() &&
                       !views[static_cast<size_t>(route.node)].primary;
  if (!replica) {
    optimistic_.reset();  // an ordinary transaction on the primary
    return;
  }
  optimistic_ = std::make_unique<Optimistic>();
  if (prepend_begin_) optimistic_->begin = begin_text_;
  optimistic_->clean = !routed_unit_.session_statement;
  optimistic_->statements = routed_unit_.statements;
  optimistic_->ending = routed_unit_.ends_transaction;
  optimistic_->start_ctx = ctx;
}

std::optional<OptimisticMoveReason> ClientSession::OptimisticMoveFor(
    const r::RouteContext& ctx) const {
  if (ctx.write || ctx.parse_error || ctx.too_complex) {
    return routed_unit_.write_reason.value_or(OptimisticMoveReason::kWrite);
  }
  if (ctx.preference == r::RoutePreference::kPrimary) return OptimisticMoveReason::kHint;
  // (As the router does, a route=replica hint lets primary state be read there.)
  const bool primary_state =
      ctx.primary_state &&
      !(ctx.preference == r::RoutePreference::kReplica && ctx.preference_from_hint);
  // AND CHAIN opens the next transaction at once, on the same node: it runs
  // on the primary.
  if (ctx.pinned || ctx.serializable || ctx.read_write_requested || primary_state ||
      ctx.reads_sequence_state || routed_unit_.chain) {
    return OptimisticMoveReason::kState;
  }
  const RoutingSection& cfg = env_->config().routing;
  const Optimistic& o = *optimistic_;
  if (o.statements + routed_unit_.statements > cfg.optimistic_max_statements ||
      o.recorded.size() + to_server_.size() > cfg.optimistic_max_bytes) {
    return OptimisticMoveReason::kCap;
  }
  return std::nullopt;
}

bool ClientSession::OptimisticRouteCollected(const r::RouteContext& ctx) {
  if (optimistic_ == nullptr || optimistic_->phase != Optimistic::Phase::kOnReplica) return false;
  if (optimistic_->ending) {
    // Behind the transaction's end: routed on its own once the replica has
    // answered it (OptimisticAfterUnit, then ReleaseServer).
    held_ = true;
    held_ctx_ = std::make_unique<r::RouteContext>(ctx);
    return true;
  }
  std::optional<OptimisticMoveReason> move = OptimisticMoveFor(ctx);
  if (!move) {
    optimistic_->clean &= !routed_unit_.session_statement;
    optimistic_->statements += routed_unit_.statements;
    optimistic_->ending = routed_unit_.ends_transaction;
    OptimisticStay();
    return true;
  }
  optimistic_->reason = *move;
  // Everything sent before this batch must have been answered (and
  // digested) before the replica's transaction is rolled back.
  held_ = true;
  held_ctx_ = std::make_unique<r::RouteContext>(ctx);
  if (server_->tracker().empty()) {
    if (server_->tx_status() == 'E') {
      held_ = false;
      held_ctx_.reset();
      OptimisticStay();  // a failed transaction can only roll back: the replica answers
    } else {
      OptimisticMove();
    }
  }
  return true;
}

void ClientSession::OptimisticStay() {
  unit_timer_.Continue();  // timed like any unit sent to a bound server
  collecting_ = false;
  collected_ready_ = false;
  retry_.armed = false;
  dispatched_bytes_ = to_server_.size();
  SendDispatched();  // records the batch (optimistic_->recorded)
  if (server_ != nullptr) server_->Flush();
}

bool ClientSession::OptimisticAfterUnit() {
  if (server_->tx_status() == 'I') {
    // COMMIT or ROLLBACK on the replica: the transaction never needed the primary.
    env_->metrics().Optimistic(OptimisticOutcome::kCommittedOnReplica);
    optimistic_.reset();
    return false;  // the server goes back to its pool as usual
  }
  if (!held_ || !server_->tracker().empty()) return false;
  if (server_->tx_status() == 'E' || optimistic_->ending) {
    held_ = false;
    held_ctx_.reset();
    OptimisticStay();
    if (server_ != nullptr && !in_.empty()) ResumeInput();  // held behind the batch (Process)
    return true;
  }
  OptimisticMove();
  return true;
}

void ClientSession::OptimisticMove() {
  Optimistic& o = *optimistic_;
  ServerConnection* replica = server_;
  server_ = nullptr;
  replica->set_custom_names(session_.CustomNames());
  if (o.clean && !pinned()) {
    replica->ReleaseAfter("ROLLBACK");
  } else {
    replica->Close("optimistic transaction moved to the primary");
  }
  o.phase = Optimistic::Phase::kReplaying;
  o.replay_left = o.units;
  o.move_start_ns = uv_hrtime();
  env_->metrics().OptimisticMove(o.reason);
  LogDebug("optimistic_move")
      .Kv("client", peer_)
      .Kv("reason", OptimisticMoveReasonName(o.reason))
      .Kv("units", o.units);
  // The batch that needs the primary, and whatever the client sends after
  // it, wait in to_server_ until the replay is judged.
  collecting_ = true;
  held_ = true;
  r::RouteContext ctx = *held_ctx_;
  ctx.optimistic = false;
  ctx.write = true;  // to the primary
  ctx.begins_transaction = true;
  ctx.avoid_nodes = 0;
  TransitionTo(State::kIdle);
  Dispatch(ctx);
}

// On the primary connection, once the session's settings are in place: the
// transaction again, as it ran on the replica.
void ClientSession::OptimisticSendReplay() {
  Optimistic& o = *optimistic_;
  o.replay_sent = true;
  if (!o.begin.empty()) server_->SendProxyQuery(o.begin);
  std::string_view rest = o.recorded;
  p::Frame f;
  while (server_ != nullptr && p::SplitWholeMessage(&rest, &f)) {
    WriteToServer(f);
    // Counted as sent, as HoldReadyForQuery counts them answered.
    if (p::ReplyTracker::EndsUnit(f.type)) ++units_sent_;
  }
  std::string().swap(o.recorded);
  if (server_ != nullptr) server_->Flush();
}

void ClientSession::OptimisticReplayUnitDone() {
  Optimistic& o = *optimistic_;
  if (o.replay_left > 0) --o.replay_left;
  if (o.replay_left > 0 || server_ == nullptr) return;
  if (o.phase == Optimistic::Phase::kAborting) {
    OptimisticFail();
    return;
  }
  env_->metrics().OptimisticMoveTime(static_cast<double>(uv_hrtime() - o.move_start_ns) * 1e-9);
  if (server_->tx_status() == 'T' && o.replay.Value() == o.seen.Value()) {
    env_->metrics().Optimistic(OptimisticOutcome::kMoved);
    optimistic_.reset();
    ResumeAfterMove();
    return;
  }
  env_->metrics().Optimistic(OptimisticOutcome::kMismatch);
  primary_after_mismatch_ = true;
  LogInfo("optimistic_mismatch")
      .Kv("client", peer_)
      .Kv("user", user_name_)
      .Kv("reason", OptimisticMoveReasonName(o.reason))
      .Kv("replica_results", o.seen.digested())
      .Kv("primary_results", o.replay.digested());
  if (server_->tx_status() != 'T') {
    OptimisticFail();  // the replay failed there already
    return;
  }
  // The transaction must stay open and failed on the primary, as PostgreSQL
  // leaves it after an error: the client's next statements get 25P02 and
  // its ROLLBACK ends it.
  o.phase = Optimistic::Phase::kAborting;
  o.replay_left = 1;
  std::string q;
  p::AppendQuery(&q, kAbortQuery);
  std::string_view qv = q;
  p::Frame f;
  if (p::SplitWholeMessage(&qv, &f)) WriteToServer(f);
  ++units_sent_;
  server_->Flush();
}

// The replay differed: the batch that caused the move is answered with 40001.
void ClientSession::OptimisticFail() {
  optimistic_.reset();
  size_t end = 0;
  std::string_view rest = to_server_;
  p::Frame f;
  while (p::SplitWholeMessage(&rest, &f)) {
    end = to_server_.size() - rest.size();
    if (p::ReplyTracker::EndsUnit(f.type)) break;
    end = 0;
  }
  constexpr std::string_view kMessage =
      "pgregion: could not serialize access: this transaction read on a replica, and when it "
      "moved to the primary for a write, its reads returned different results there";
  if (end == 0) {
    Fatal(p::sqlstate::kSerializationFailure, kMessage);  // a batch ended by Flush
    return;
  }
  to_server_.erase(0, end);
  std::string out;
  p::AppendErrorResponse(&out, {.sqlstate = p::sqlstate::kSerializationFailure,
                                .message = kMessage,
                                .hint = "Retry the transaction."});
  p::AppendReadyForQuery(&out, 'E');
  stream_->Write(out);
  stream_->Flush();
  session_.OnUnitDone('E', /*failed=*/true, &server_->params(), &server_->startup_params());
  txn_mode_.OnUnitDone('E');
  unit_failed_ = false;
  sending_ = Sending();  // that batch never ran
  ResumeAfterMove();
}

void ClientSession::ResumeAfterMove() {
  collecting_ = false;
  collected_ready_ = false;
  held_ = false;
  held_ctx_.reset();
  sending_.Add(unit_);
  unit_ = Unit();
  dispatched_bytes_ = to_server_.size();
  if (dispatched_bytes_ > 0) SendDispatched();
  if (server_ == nullptr) return;
  server_->Flush();
  ResumeReadingIfDrained();
  // What the client sent behind the batch stayed in in_ while it was held (Process).
  if (!in_.empty() && state_ != State::kClosed) ResumeInput();
}

}  // namespace pgregion::proxy
