// ClientSession: construction, teardown and the data path after login.

#include "proxy/session/client_session.h"

#include <malloc.h>

#include <algorithm>

#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/backend/pool.h"
#include "proxy/backend/server_connection.h"
#include "proxy/net/log.h"
#include "proxy/net/tls_context.h"
#include "proxy/session/console_session.h"
#include "proxy/session/session_env.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;

namespace {

// Messages larger than this are CopyData that streams through in pieces.
constexpr uint32_t kStreamThreshold = 64 * 1024;
// Queued bytes above which the other side stops reading (backpressure).
constexpr size_t kHighWater = 1 << 20;
// Input work a client gets before it yields the loop to the others (counted
// in bytes, each message also costing kMessageWork): libuv reads up to 32
// buffers of 64 KiB from one socket per iteration, and a pipelined batch of
// small messages each answered by the proxy (SHOW pgregion.route, the admin
// console) would otherwise hold the loop for all of them.
constexpr size_t kWorkBudget = 256 * 1024;
constexpr size_t kMessageWork = 256;
// A buffer emptied with more capacity than this is freed (an idle session
// must not keep what one large message needed).
constexpr size_t kKeepCapacity = 64 * 1024;
// After a message this large the heap is trimmed: what its classification
// freed goes back to the system instead of staying in the process's RSS.
constexpr size_t kTrimAfter = 1 << 20;

void ReleaseIfLarge(std::string& s) {
  if (s.empty() && s.capacity() > kKeepCapacity) std::string().swap(s);
}

// Frontend message types valid after login.
bool IsFrontendType(char t) {
  switch (t) {
    case 'Q':
    case 'P':
    case 'B':
    case 'E':
    case 'D':
    case 'C':
    case 'S':
    case 'H':
    case 'X':
    case 'd':
    case 'c':
    case 'f':
    case 'F':
      return true;
    default:
      return false;
  }
}

bool EndsUnit(char t) { return p::ReplyTracker::EndsUnit(t); }
bool IsCopyIn(char t) { return t == 'd' || t == 'c' || t == 'f'; }
bool IsExtended(char t) {
  return t == 'P' || t == 'B' || t == 'E' || t == 'D' || t == 'C' || t == 'H';
}

}  // namespace

ClientSession::ClientSession(SessionEnv* env, Stream* stream)
    // Before login only PostgreSQL's authentication limit applies (OnLoggedIn
    // raises it): unauthenticated clients cannot make the proxy buffer more.
    : env_(env),
      stream_(stream),
      decoder_(std::min(env->config().proxy.max_message_bytes, p::kMaxAuthMessageLength),
               kStreamThreshold) {
  decoder_.SetStreamable('d', true);
  uv_timer_init(env->loop(), &timer_);
  timer_.data = this;
  stream_->SetHandler(this);
}

ClientSession::~ClientSession() = default;

void ClientSession::Start() {
  peer_ = stream_->PeerAddress();
  accepted_ms_ = uv_now(env_->loop());
  // The initial state's timer (TransitionTo arms it on later changes).
  uv_timer_start(&timer_, OnTimer, TimerFor(State::kStartup, 0), 0);
  stream_->StartRead();
}

void ClientSession::TransitionTo(State next, uint64_t wait_ms) {
  if (state_ == next) return;
  LeaveState();
  if (next == State::kIdle) {
    // Nothing runs for this client until it sends again: an idle client
    // keeps no buffers (issue 17; the next unit allocates them again).
    stream_->ReleaseBuffersWhenFlushed();
    if (to_server_.empty()) std::string().swap(to_server_);
  }
  state_ = next;
  const uint64_t ms = TimerFor(next, wait_ms);
  if (ms > 0) {
    uv_timer_start(&timer_, OnTimer, ms, 0);
  } else {
    uv_timer_stop(&timer_);
  }
}

void ClientSession::LeaveState() {
  switch (state_) {
    case State::kLoginWait:
    case State::kWaitServer:
      if (waiting_pool_ != nullptr) {  // still queued (not assigned, not failed)
        waiting_pool_->CancelWait(this);
        waiting_pool_ = nullptr;
      }
      break;
    case State::kWaitRoute:
      env_->CancelRouteWait(this);
      parked_ctx_.reset();
      break;
    case State::kWaitReplay:
      EndReplayWait();
      break;
    case State::kStartup:
    case State::kTlsHandshake:
    case State::kAuth:
    case State::kAuthFailing:
    case State::kIdle:
    case State::kRestoring:
    case State::kActive:
    case State::kClosed:
      break;
  }
}

uint64_t ClientSession::TimerFor(State state, uint64_t wait_ms) const {
  const Config& cfg = env_->config();
  // The login deadlines count from the accept (see HandleStartupMessage).
  auto from_accept = [this](uint64_t total_ms) -> uint64_t {
    const uint64_t elapsed = uv_now(env_->loop()) - accepted_ms_;
    return total_ms > elapsed ? total_ms - elapsed : 1;
  };
  switch (state) {
    case State::kStartup:
    case State::kTlsHandshake:
      // An idle socket holds a pre-auth slot only until startup_packet_timeout_ms.
      return from_accept(
          std::min(cfg.proxy.startup_packet_timeout_ms, cfg.proxy.client_login_timeout_ms));
    case State::kAuth:
      return from_accept(cfg.proxy.client_login_timeout_ms);
    case State::kAuthFailing:
      return std::max<uint64_t>(cfg.proxy.auth_failure_delay_ms, 1);
    case State::kLoginWait:
    case State::kWaitServer:
      return cfg.pool.acquire_timeout_ms;
    case State::kWaitRoute:
      return cfg.failover.write_wait_ms;
    case State::kWaitReplay:
      return std::max<uint64_t>(wait_ms, 1);
    case State::kRestoring:
    case State::kActive: {
      // Only a read that may still go elsewhere has a deadline; everything
      // else runs as long as its server connection does. The same deadline
      // across kRestoring -> kActive: it counts from the binding.
      const uint64_t deadline = cfg.routing.read_deadline_ms;
      if (deadline == 0 || !retry_.armed) return 0;
      const uint64_t elapsed = uv_now(env_->loop()) - retry_.bound_ms;
      return deadline > elapsed ? deadline - elapsed : 1;
    }
    case State::kIdle:
    case State::kClosed:
      return 0;
  }
  return 0;
}

void ClientSession::OnTimer(uv_timer_t* t) {
  auto* self = static_cast<ClientSession*>(t->data);
  switch (self->state_) {
    case State::kStartup:
    case State::kTlsHandshake:
    case State::kAuth:
      self->Fatal(p::sqlstate::kProtocolViolation, "pgregion: login timeout");
      return;
    case State::kAuthFailing:
      self->SendAuthFailure();
      return;
    case State::kWaitReplay:
      self->ReplayWaitTimedOut();
      return;
    case State::kWaitRoute:
      self->env_->metrics().Error(ErrorKind::kNoPrimary);
      self->Fatal(p::sqlstate::kConnectionFailure,
                  self->env_->NoRouteMessage(routing::RouteBlock::kNoPrimary));
      return;
    case State::kWaitServer:
    case State::kLoginWait:
      self->env_->metrics().Error(ErrorKind::kPoolTimeout);
      self->Fatal(p::sqlstate::kTooManyConnections,
                  StrCat("pgregion: no server connection available within "
                         "pool.acquire_timeout_ms (",
                         self->env_->config().pool.acquire_timeout_ms, " ms)"));
      return;
    case State::kRestoring:
    case State::kActive:
      self->ReadDeadlinePassed();
      return;
    case State::kIdle:
    case State::kClosed:
      return;
  }
}

void ClientSession::OnStreamRead(std::string_view data) {
  if (in_.empty()) {
    size_t used = Process(data);
    if (state_ != State::kClosed && used < data.size()) in_.assign(data.substr(used));
  } else {
    in_.append(data);
    size_t used = Process(in_);
    if (state_ != State::kClosed) in_.erase(0, used);
  }
  if (state_ == State::kClosed) return;
  ReleaseIfLarge(in_);
  if (out_blocked_ || yielded_) {
    // The rest waits in in_; stopping the socket read keeps that bounded.
    stream_->StopRead();
    if (yielded_) {
      if (idle_ == nullptr) {
        idle_ = new uv_idle_t;
        uv_idle_init(env_->loop(), idle_);
        idle_->data = this;
        ++open_handles_;
      }
      uv_idle_start(idle_, OnIdle);
    }
  }
  if (state_ == State::kTlsHandshake && !stream_->tls()) {
    std::string hello;
    if (login_scratch_ != nullptr) hello.swap(login_scratch_->direct_tls_hello);
    absl::Status st = stream_->StartTlsServer(env_->client_tls()->ctx(), hello);
    if (!st.ok()) Close(ToStd(st.message()));
    return;
  }
  if (server_ != nullptr) server_->Flush();
  if ((server_ != nullptr && server_->pending_write_bytes() > kHighWater) ||
      to_server_.size() > kHighWater || state_ == State::kLoginWait || held_) {
    stream_->StopRead();
    paused_ = true;
  }
}

size_t ClientSession::Process(std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    // A unit routed elsewhere waits for the bound server: later messages wait
    // in in_ so that each is routed in turn.
    if (held_) return off;
    switch (state_) {
      case State::kStartup: {
        size_t used = ProcessStartup(data.substr(off));
        if (used == 0) return off;
        off += used;
        continue;
      }
      case State::kTlsHandshake:
      case State::kLoginWait:
      case State::kClosed:
        return off;
      case State::kAuth:
      case State::kAuthFailing:  // pipelined after the failed attempt: read and ignored
        break;
      case State::kIdle:
      case State::kWaitRoute:
      case State::kWaitReplay:
      case State::kWaitServer:
      case State::kRestoring:
      case State::kActive:
        if (InputBlocked()) return off;
        break;
    }
    p::DecodeResult r = decoder_.Next(data.substr(off));
    if (r.status == p::DecodeStatus::kNeedMore) return off;
    if (r.status == p::DecodeStatus::kError) {
      Fatal(p::sqlstate::kProtocolViolation, StrCat("invalid message: ", r.error.message()));
      return data.size();
    }
    off += r.consumed;
    work_ += r.consumed + kMessageWork;
    if (state_ == State::kAuth || state_ == State::kAuthFailing) {
      HandleAuthMessage(r.frame);
    } else {
      HandleFrame(r.frame);
    }
    // glibc keeps freed heap memory unless asked; a large statement's parse
    // trees and copies would otherwise stay in RSS (the large buffers
    // themselves are mmap()ed, see main.cc, and go back when freed).
    if (r.consumed >= kTrimAfter) malloc_trim(0);
  }
  return off;
}

// Backpressure on everything the proxy answers itself (SHOW pgregion.*,
// deferred BEGIN/COMMIT, the admin console, its own errors): a client that
// does not read them must not make the proxy queue unbounded replies. Like
// PostgreSQL, which stops reading while its output is blocked, the input
// stays unprocessed until the client has read its replies. The work budget
// lets other clients run between the parts of a long pipelined batch.
bool ClientSession::InputBlocked() {
  if (out_blocked_ || yielded_) return true;
  if (work_ >= kWorkBudget) {
    yielded_ = true;
    return true;
  }
  if (stream_->pending_bytes() <= kHighWater) return false;
  stream_->FlushNow();  // what the kernel takes no longer counts
  if (state_ == State::kClosed || stream_->pending_bytes() > kHighWater) {
    out_blocked_ = true;  // resumed by OnStreamDrained
    return true;
  }
  return false;
}

void ClientSession::OnIdle(uv_idle_t* h) {
  auto* self = static_cast<ClientSession*>(h->data);
  uv_idle_stop(h);
  if (self->state_ == State::kClosed) return;
  self->yielded_ = false;
  self->work_ = 0;
  self->ResumeInput();
}

void ClientSession::ResumeInput() {
  OnStreamRead(std::string_view());  // what is left in in_
  if (state_ == State::kClosed) return;
  if (!out_blocked_ && !yielded_ && !paused_) stream_->StartRead();
}

void ClientSession::HandleFrame(const p::Frame& frame) {
  if (frame.first) {
    if (!IsFrontendType(frame.type)) {
      Fatal(p::sqlstate::kProtocolViolation,
            StrCat("invalid frontend message type ", int{frame.type}));
      return;
    }
    if (frame.type == 'X') {
      Close("client terminated");
      return;
    }
  }
  if (console_ != nullptr) {  // the admin console answers everything itself
    stream_->Write(console_->Handle(frame));
    stream_->Flush();
    return;
  }
  if (frame.first && !InspectFrame(frame)) return;  // answered by the proxy
  bool unit_end = frame.first && EndsUnit(frame.type);
  // COPY data belongs to the unit that started the copy.
  bool starts_unit = frame.first && !unit_open_ && !IsCopyIn(frame.type);
  if (frame.first && !IsCopyIn(frame.type)) unit_open_ = !unit_end;
  if (server_ != nullptr && !collecting_) {
    // An optimistic transaction on a replica judges each batch before it
    // goes: it may need the primary (client_session_optimistic.cc).
    const bool judge = optimistic_ != nullptr && frame.first && !IsCopyIn(frame.type);
    if (!judge && (!starts_unit || !bound_autocommit_)) {
      sending_.Add(unit_);
      unit_ = Unit();        // bound: the route is already chosen
      retry_.armed = false;  // the server runs more than the unit that may be retried
      unit_timer_.Continue();
      if (state_ == State::kRestoring) {
        // Sent behind the dispatched unit once the identity is restored.
        to_server_.append(frame.bytes);
        dispatched_bytes_ = to_server_.size();
        return;
      }
      Send(frame);
      return;
    }
    // The server runs complete autocommit units only: this one is routed on
    // its own (a write behind a replica's read must not follow it there).
    collecting_ = true;
  } else if (starts_unit && waiting()) {
    collecting_ = true;  // behind a unit still waiting for its server
  }
  to_server_.append(frame.bytes);
  if (!collecting_) dispatched_bytes_ = to_server_.size();
  // A unit is routed as a whole: wait for its Sync (or Flush); a batch
  // that grows too large is routed with what is known (fail closed).
  bool ready = unit_end || (frame.first && frame.type == 'H') || to_server_.size() > kHighWater;
  if (!ready) return;
  if (collecting_) {
    collected_ready_ = true;
    if (server_ != nullptr && !held_) RouteCollected();
  } else if (state_ == State::kIdle) {
    BeginUnit();
  }
}

void ClientSession::Send(const p::Frame& frame) {
  WriteToServer(frame);
  if (!frame.first) return;
  if (EndsUnit(frame.type)) {
    if (dispatch_ends_left_ > 1) {
      --dispatch_ends_left_;
      ++units_sent_;  // not the dispatched batch's last unit: see SendDispatched
    } else {
      AfterUnitSent();
    }
    open_batch_ = false;
  } else if (IsExtended(frame.type)) {
    open_batch_ = true;
  }
}

Pool* ClientSession::PoolFor(int node) {
  if (node < 0 || static_cast<size_t>(node) >= env_->node_count() || user_ == nullptr) {
    return nullptr;
  }
  if (pools_.size() <= static_cast<size_t>(node)) pools_.resize(env_->node_count());
  Pool*& pool = pools_[static_cast<size_t>(node)];
  if (pool == nullptr) pool = env_->GetPool(node, database_, *user_, session_.login_params());
  return pool;
}

void ClientSession::BeginUnit() {
  if (unit_.plain_begin && DeferExtendedBegin()) return;
  StartUnit(UnitRouteContext());
}

// A new unit from the client (not a retry of the last one).
void ClientSession::StartUnit(const routing::RouteContext& ctx) {
  retry_.attempts = 0;
  retry_.seen = 0;
  retry_.sent = false;  // of the last unit: this one's bytes are still in to_server_
  retry_.unit.reset();
  Dispatch(ctx);
}

void ClientSession::Dispatch(const routing::RouteContext& ctx) {
  if (env_->draining()) return Shutdown();  // no new units during a graceful shutdown
  routing::Route route = DecideRoute(ctx);
  if (state_ == State::kWaitReplay) return;  // a causal read waits for a replica to catch up
  if (route.node < 0 && route.blocked == routing::RouteBlock::kResidency) {
    RefuseResidency(ctx);
    return;
  }
  Pool* pool = PoolFor(route.node);
  if (pool == nullptr && route.blocked == routing::RouteBlock::kPrimaryConflict) {
    // Two nodes claim the primary role: never guess which one is stale.
    Fatal(p::sqlstate::kConnectionFailure, env_->NoRouteMessage(route.blocked));
    return;
  }
  if (pool == nullptr) {
    // No primary (a failover in progress) or no node up: wait for the
    // topology to change, at most failover.write_wait_ms from the first try.
    if (state_ != State::kWaitRoute) {
      auto parked = std::make_unique<routing::RouteContext>(ctx);
      TransitionTo(State::kWaitRoute);
      parked_ctx_ = std::move(parked);
    }
    env_->WaitForRoute(this);
    return;
  }
  unit_timer_.Routed(env_->metrics(), route, env_->node_views());
  CountTenantRead(ctx, route);
  if (read_after_write_ && !ctx.write && ctx.consistency == routing::Consistency::kCausal) {
    CountReadAfterWrite(route.node);
  }
  retry_.node = route.node;
  retry_.armed = RetryEligible(ctx, route);
  if (retry_.armed) {
    if (retry_.unit == nullptr) retry_.unit = std::make_unique<ReadRetry::Unit>();
    retry_.unit->ctx = ctx;
  }
  OptimisticStart(ctx, route);
  dispatched_reads_sequence_state_ = ctx.reads_sequence_state;
  dispatched_write_ = ctx.write;
  bound_autocommit_ = env_->config().pool.mode == PoolMode::kTransaction &&
                      !ctx.begins_transaction && !ctx.pinned && !unit_open_;
  TransitionTo(State::kWaitServer);
  waiting_pool_ = pool;
  pool->Acquire(this, session_.CustomNames());  // usually calls OnServerAssigned right away
}

void ClientSession::RetryRoute() {
  if (state_ != State::kWaitRoute) return;
  const routing::RouteContext ctx = *parked_ctx_;  // a copy: leaving kWaitRoute frees it
  Dispatch(ctx);
}

void ClientSession::OnServerAssigned(ServerConnection* server) {
  Pool* pool = waiting_pool_;
  waiting_pool_ = nullptr;
  if (state_ == State::kLoginWait) {
    // We only needed the backend's parameters; the pool now has them.
    pool->Release(server);
    SendWelcome(pool);
    if (paused_) {
      paused_ = false;
      stream_->StartRead();
    }
    return;
  }
  unit_timer_.Assigned();
  server_ = server;
  server->Bind(this);
  retry_.bound_ms = uv_now(env_->loop());
  // Nothing of this client's is in flight on a newly bound server.
  units_sent_ = units_answered_ = 0;
  probe_units_.clear();
  copy_probe_unit_ = 0;
  held_ready_ = 0;
  SessionState::ReplayPlan replay = session_.Replay(&server->params(), server->custom_names());
  server->set_custom_names(session_.CustomNames());
  // Built-in parameters are pipelined with the unit (the server accepted the
  // same values before). The client's statements wait for the rest: they must
  // not run as the login user if switching back to its identity fails, and a
  // custom parameter this backend refuses is dropped first, with PostgreSQL's
  // warning (SessionState::ReplayPlan).
  restore_pending_ = 0;
  custom_replay_.clear();
  custom_replay_next_ = 0;
  if (!replay.settings.empty()) {
    server->SendProxyQuery(replay.settings, ServerConnection::kSettingsTag);
  }
  for (const SessionState::ReplayPlan::Custom& c : replay.custom) {
    server->SendProxyQuery(c.sql, ServerConnection::kCustomTag);
    custom_replay_.push_back(c.name);
    ++restore_pending_;
  }
  if (!replay.identity.empty()) {
    server->SendProxyQuery(replay.identity, ServerConnection::kIdentityTag);
    ++restore_pending_;
  }
  if (restore_pending_ > 0) {
    TransitionTo(State::kRestoring);
    server->Flush();
    return;
  }
  TransitionTo(State::kActive);
  ContinueAssigned();
}

void ClientSession::OnIdentityRestored(std::string_view sqlstate, std::string_view error) {
  if (server_ == nullptr || state_ == State::kClosed) return;
  if (!error.empty()) {
    // Fail closed: the session's state cannot be had on this connection.
    // (A replay that was not waited for fails before the unit's replies, so
    // the client never sees a result computed without its settings.)
    LogWarn("session_replay_failed").Kv("client", peer_).Kv("message", error);
    Fatal(sqlstate.empty() ? p::sqlstate::kInternalError : sqlstate,
          StrCat("pgregion: could not restore this session's settings or SET SESSION "
                 "AUTHORIZATION / SET ROLE on a server connection: ",
                 error));
    return;
  }
  RestoreStepDone();
}

void ClientSession::OnCustomParameterReplayed(std::string_view error_body) {
  if (server_ == nullptr || state_ == State::kClosed) return;
  if (custom_replay_next_ >= custom_replay_.size()) return;  // cannot happen
  const std::string& name = custom_replay_[custom_replay_next_++];
  if (!error_body.empty()) {
    // What PostgreSQL does to the placeholder when an extension that claims
    // its prefix loads in the session: drop it, with a warning.
    absl::StatusOr<p::ErrorNotice> err = p::ParseErrorNotice(error_body);
    std::string detail = err.ok() ? std::string(err->Get('D')) : "";
    if (const size_t at = detail.find(" is a reserved prefix"); at != std::string::npos) {
      detail.replace(at, 3, " is now");  // PostgreSQL's own wording when the prefix is claimed
    }
    LogInfo("custom_parameter_dropped")
        .Kv("client", peer_)
        .Kv("name", name)
        .Kv("message", err.ok() ? err->message() : "");
    std::string out;
    p::AppendNoticeResponse(
        &out,
        {.severity = "WARNING",
         .sqlstate = err.ok() ? err->sqlstate() : p::sqlstate::kInternalError,
         .message = StrCat("invalid configuration parameter name \"", name, "\", removing it"),
         .detail = detail});
    stream_->Write(out);
    session_.ForgetCustomParameter(name);
    server_->params().Erase(name);
    server_->set_custom_names(session_.CustomNames());
  }
  RestoreStepDone();
}

void ClientSession::RestoreStepDone() {
  if (restore_pending_ > 0) --restore_pending_;
  if (restore_pending_ > 0 || state_ != State::kRestoring) return;
  custom_replay_.clear();
  TransitionTo(State::kActive);
  ContinueAssigned();
}

// The rest of OnServerAssigned, once the session's identity is in place.
void ClientSession::ContinueAssigned() {
  ServerConnection* server = server_;
  GuardSequenceState(dispatched_reads_sequence_state_, dispatched_write_);
  if (optimistic_ != nullptr && optimistic_->phase != Optimistic::Phase::kOnReplica &&
      !optimistic_->replay_sent) {
    OptimisticSendReplay();  // the batch that caused the move waits for the replay's verdict
    return;
  }
  if (prepend_begin_) {
    prepend_begin_ = false;
    server->SendProxyQuery(begin_text_);
  }
  SendDispatched();
  if (server_ == nullptr) return;  // closed while sending (a retried read answered differently)
  server->Flush();
  if (collecting_ && collected_ready_ && !held_) RouteCollected();
  if (server_ == nullptr) return;
  ResumeReadingIfDrained();
}

void ClientSession::ResumeReadingIfDrained() {
  if (paused_ && server_->pending_write_bytes() <= kHighWater && to_server_.size() <= kHighWater) {
    paused_ = false;
    stream_->StartRead();
  }
}

void ClientSession::SendDispatched() {
  std::string_view unit(to_server_.data(), std::min(dispatched_bytes_, to_server_.size()));
  if (retry_.armed) {
    retry_.unit->bytes.assign(unit.data(), unit.size());
    retry_.sent = true;
  } else if (!retry_.pending && retry_.unit != nullptr) {
    retry_.unit->bytes = std::string();  // a unit that can no longer be retried
    retry_.sent = false;
  }
  // The messages that waited were whole and checked by the client decoder
  // when queued; re-frame them to rewrite statement names for this server.
  std::string_view rest = unit;
  p::Frame f;
  // Several units may have been dispatched as one (they queued while it
  // waited): what they do is known only as a whole (sending_), so the LSN
  // probe goes behind the last of them, never between a read and a write.
  dispatch_ends_left_ = 0;
  for (std::string_view scan = unit; p::SplitWholeMessage(&scan, &f);) {
    if (EndsUnit(f.type)) ++dispatch_ends_left_;
  }
  if (optimistic_ != nullptr && optimistic_->phase == Optimistic::Phase::kOnReplica) {
    if (optimistic_->units == 0) env_->metrics().Optimistic(OptimisticOutcome::kStarted);
    optimistic_->recorded.append(unit);  // replayed on the primary if the transaction moves
    optimistic_->units += dispatch_ends_left_;
  }
  while (server_ != nullptr && p::SplitWholeMessage(&rest, &f)) Send(f);
  dispatch_ends_left_ = 0;
  to_server_.erase(0, unit.size());
  dispatched_bytes_ = 0;
  ReleaseIfLarge(to_server_);
}

void ClientSession::RouteCollected() {
  if (state_ == State::kRestoring) return;  // ContinueAssigned() comes back here
  routing::RouteContext ctx = UnitRouteContext();
  RefreshConsistency(&ctx);
  if (OptimisticRouteCollected(ctx)) return;
  routing::Route route = env_->router().Decide(ctx);
  const std::vector<routing::NodeView>& views = env_->node_views();
  int here = server_->pool()->node();
  auto is_replica = [&](int n) {
    return n >= 0 && static_cast<size_t>(n) < views.size() && views[n].up && !views[n].primary;
  };
  // A read may stay on the replica that is already bound (keeps a pipeline
  // flowing) when that replica is fresh enough for it, unless it was paused meanwhile.
  bool same = route.node == here ||
              (route.reason == routing::RouteReason::kRead && is_replica(route.node) &&
               is_replica(here) && !env_->NodePaused(here) && BoundReplicaServes(here, ctx));
  if (same && route.reason == routing::RouteReason::kRywFallback) CountRywFallback(ctx, route);
  if (!same) {
    held_ = true;  // dispatched once the bound server has finished (ReleaseServer)
    held_ctx_ = std::make_unique<routing::RouteContext>(ctx);
    return;
  }
  unit_timer_.RoutedWhileBound(env_->metrics(), {here, route.reason}, views);
  collecting_ = false;
  collected_ready_ = false;
  retry_.armed = false;  // two units in flight: neither may be retried
  bound_autocommit_ = bound_autocommit_ && !ctx.begins_transaction && !ctx.pinned && !unit_open_;
  GuardSequenceState(ctx.reads_sequence_state, ctx.write);
  dispatched_bytes_ = to_server_.size();
  SendDispatched();
  if (server_ != nullptr) server_->Flush();
}

void ClientSession::GuardSequenceState(bool reads_sequence_state, bool write) {
  ServerConnection* server = server_;
  if (reads_sequence_state &&
      (server->sequence_owner() != pid_ || server->id() != sequence_server_)) {
    // PostgreSQL then answers as a session that never called nextval() would
    // (55000), never with another client's value.
    server->SendProxyQuery("DISCARD SEQUENCES");
  }
  if (write) {
    server->set_sequence_owner(pid_);
    sequence_server_ = server->id();
  }
}

void ClientSession::ForwardToClient(std::string_view bytes) {
  if (optimistic_ != nullptr) {
    if (optimistic_->phase != Optimistic::Phase::kOnReplica) {
      optimistic_->replay.Feed(bytes);  // the client has these results from the replica
      return;
    }
    optimistic_->seen.Feed(bytes);
  }
  if (retry_.active() && !MayDeliver(bytes)) return;
  stream_->Write(bytes);
  if (server_ != nullptr && stream_->pending_bytes() > kHighWater) {
    stream_->FlushNow();
    if (stream_->pending_bytes() > kHighWater) server_->PauseReading();
  }
}

void ClientSession::FlushToClient() { stream_->Flush(); }

void ClientSession::OnStreamDrained() {
  if (server_ != nullptr) server_->ResumeReading();
  if (out_blocked_ && state_ != State::kClosed) {
    out_blocked_ = false;
    ResumeInput();
  }
}

void ClientSession::OnServerDrained() {
  if (paused_ && state_ != State::kClosed) {
    paused_ = false;
    stream_->StartRead();
  }
}

void ClientSession::OnServerParameter(std::string_view name, std::string_view value) {
  session_.OnServerParameter(name, value);
}

void ClientSession::OnServerUnitDone() {
  if (optimistic_ != nullptr && optimistic_->phase != Optimistic::Phase::kOnReplica) {
    OptimisticReplayUnitDone();  // a replayed batch, already counted when it ran on the replica
    return;
  }
  unit_timer_.Done();
  stream_->Flush();
  if (server_ == nullptr) return;
  if (retry_.pending) {
    RetryRead(ReadRetryReason::kError, "retryable error");
    return;
  }
  retry_.armed = false;
  retry_.sent = false;
  retry_.unit.reset();  // the unit is done: nothing of it is replayed again
  session_.OnUnitDone(server_->tx_status(), unit_failed_, &server_->params(),
                      &server_->startup_params());
  txn_mode_.OnUnitDone(server_->tx_status());
  if (server_->tx_status() == 'I') tenant_local_.reset();  // SET LOCAL pgregion.tenant ends
  unit_failed_ = false;
  if (session_.TakeProtocolStatementsDropped()) {
    // DISCARD ALL / DEALLOCATE ALL committed: protocol-level statements are gone too.
    statements_.clear();
    server_->ForgetPrepared();
  }
  if (optimistic_ != nullptr && OptimisticAfterUnit()) return;
  if (env_->config().pool.mode == PoolMode::kSession) return;
  // A held unit's pins are its own (it has not run): they do not keep this server.
  if (server_->clean() && !open_batch_ && (!pinned() || held_)) ReleaseServer();
}

void ClientSession::ReleaseServer() {
  ServerConnection* server = server_;
  server_ = nullptr;
  server->set_custom_names(session_.CustomNames());  // what this session's statements made there
  server->Unbind();
  TransitionTo(State::kIdle);
  server->pool()->Release(server);
  if (collecting_) {
    // The unit that came in behind is now the one to route.
    collecting_ = false;
    collected_ready_ = false;
    dispatched_bytes_ = to_server_.size();
    if (held_) {
      held_ = false;
      const routing::RouteContext ctx = *held_ctx_;
      held_ctx_.reset();
      StartUnit(ctx);
      if (state_ == State::kClosed) return;
      if (!in_.empty()) {
        // What the client sent behind the held unit (see Process).
        std::string pending;
        pending.swap(in_);
        OnStreamRead(pending);
        if (state_ == State::kClosed) return;
      }
    }
  }
  if (paused_ && state_ != State::kClosed && to_server_.size() <= kHighWater) {
    paused_ = false;
    stream_->StartRead();
  }
}

void ClientSession::OnServerLost(std::string_view why) {
  // Counted against the node, but one lost connection (pg_terminate_backend)
  // does not take it out of service.
  if (server_ != nullptr) env_->ReportDataPathFailure(server_->pool()->node(), /*certain=*/false);
  if (retry_.armed || retry_.pending) {
    RetryRead(ReadRetryReason::kConnection, why);
    return;
  }
  server_ = nullptr;
  if (optimistic_ != nullptr && optimistic_->phase != Optimistic::Phase::kOnReplica) {
    env_->metrics().Optimistic(OptimisticOutcome::kFailed);
  }
  env_->metrics().Error(ErrorKind::kServerLost);
  LogWarn("server_lost").Kv("user", user_name_).Kv("client", peer_).Kv("reason", why);
  Fatal(p::sqlstate::kConnectionFailure, StrCat("pgregion: server connection lost: ", why));
}

void ClientSession::OnServerFailed(const std::string& error_response, bool node_failure) {
  waiting_pool_ = nullptr;
  if (node_failure && retry_.armed) {
    RetryRead(ReadRetryReason::kConnection, "cannot connect");
    return;
  }
  if (RerouteRefusedLogin(error_response)) return;
  env_->metrics().Error(ErrorKind::kServerLoginFailed);
  stream_->Write(error_response);
  Close("server login failed");
}

void ClientSession::OnStreamError(absl::Status status) { Close(ToStd(status.message())); }

// Hands the server connection back, or closes it if this client left it dirty.
void ClientSession::DetachServer() {
  if (waiting_pool_ != nullptr) {
    waiting_pool_->CancelWait(this);
    waiting_pool_ = nullptr;
  }
  ServerConnection* server = server_;
  if (server == nullptr) return;
  server_ = nullptr;
  server->set_custom_names(session_.CustomNames());  // DISCARD ALL keeps placeholders
  if (!server->clean() || open_batch_) {
    // A transaction or a query is still open: never return it to a pool.
    server->Close("client left mid-transaction");
    return;
  }
  if (session_.server_unresettable()) {
    server->Close("client left state DISCARD ALL cannot undo (LOAD, set_config)");
    return;
  }
  if (env_->config().pool.mode == PoolMode::kSession || session_.server_dirty()) {
    // Temporary objects, SQL PREPAREs, held cursors, LISTENs, advisory locks
    // or settings the proxy could not track may be on it: nobody else gets them.
    server->Reset("DISCARD ALL");
    return;
  }
  server->Unbind();
  server->pool()->Release(server);
}

void ClientSession::Fatal(std::string_view sqlstate, std::string_view message) {
  if (state_ == State::kClosed) return;
  if (sqlstate == p::sqlstate::kProtocolViolation) env_->metrics().Error(ErrorKind::kProtocol);
  std::string out;
  p::AppendErrorResponse(&out, {.severity = "FATAL", .sqlstate = sqlstate, .message = message});
  stream_->Write(out);
  Close(message);
}

void ClientSession::Close(std::string_view reason) {
  if (state_ == State::kClosed) return;
  LogDebug("client_closed").Kv("client", peer_).Kv("reason", reason);
  DetachServer();
  TransitionTo(State::kClosed);
  if (pid_ != 0) env_->UnregisterClient(this, pid_);
  env_->OnSessionClosed(this);
  stream_->CloseAfterFlush();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnClosed);
  if (idle_ != nullptr) uv_close(reinterpret_cast<uv_handle_t*>(idle_), OnClosed);
}

void ClientSession::Shutdown() {
  Fatal(p::sqlstate::kAdminShutdown, "terminating connection due to administrator command");
}

void ClientSession::OnClosed(uv_handle_t* h) {
  auto* self = static_cast<ClientSession*>(h->data);
  if (h == reinterpret_cast<uv_handle_t*>(self->idle_)) {
    delete self->idle_;
    self->idle_ = nullptr;
  }
  if (--self->open_handles_ == 0) delete self;
}

}  // namespace pgregion::proxy
