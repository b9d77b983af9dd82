// One client connection: startup (TLS, protocol negotiation, authentication),
// then the data path between the client and whichever server connection serves
// its current unit of work.
//
// Owns its Stream and a timer (login and pool-acquire timeouts, the per-read
// deadline); heap-allocated
// by the ProxyApp and freed only in the timer's close callback, so Close() is
// safe from any callback. Forwards the client's original message bytes; looks
// only at message types (and, later, statements for routing). One state enum,
// one TransitionTo(). Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "protocol/frame_decoder.h"
#include "protocol/reply_digest.h"
#include "protocol/reply_tracker.h"
#include "proxy/admin/metrics.h"
#include "proxy/backend/replay_poller.h"
#include "proxy/backend/server_client.h"
#include "proxy/backend/session_params.h"
#include "proxy/config/config.h"
#include "proxy/net/stream.h"
#include "proxy/session/client_auth.h"
#include "proxy/session/session_state.h"
#include "routing/classification.h"
#include "routing/primary_relations.h"
#include "routing/router.h"
#include "routing/ryw_token.h"
#include "routing/statement_hints.h"
#include "routing/transaction_mode.h"

namespace pgregion::proxy {

class ConsoleSession;
class Pool;
class SessionEnv;
class ServerConnection;

class ClientSession final : public Stream::Handler,
                            public ReplayPoller::Waiter,
                            public ServerClient {
 public:
  // Every state that waits for something has its timer armed (and what it
  // registered elsewhere taken back when it is left) by TransitionTo() alone.
  // kRestoring and kActive have one only for a read that may still be retried
  // elsewhere: routing.read_deadline_ms from the moment it was bound.
  enum class State {
    kStartup,       // waiting for SSLRequest / GSSENCRequest / CancelRequest / StartupMessage
    kTlsHandshake,  // TLS handshake with the client
    kAuth,          // authentication exchange
    kAuthFailing,   // a login failed: its error waits proxy.auth_failure_delay_ms, reads stop
    kLoginWait,     // authenticated; learning the backend's parameters from a first server login
    kIdle,          // logged in, no server connection
    kWaitRoute,     // no node can serve the unit now (no primary): parked, failover.write_wait_ms
    kWaitReplay,    // a causal read waits for a replica to replay the session's token
    kWaitServer,    // the unit waits for its pool's server connection, pool.acquire_timeout_ms
    kRestoring,     // bound; the unit waits for the replay of the session's identity or settings
    kActive,        // bound to a server connection, the unit sent
    kClosed,
  };

  ClientSession(SessionEnv* env, Stream* stream);
  ClientSession(const ClientSession&) = delete;
  ClientSession& operator=(const ClientSession&) = delete;

  void Start();
  // Process shutdown: tells the client and closes.
  void Shutdown();
  // Admission (proxy_app.cc, pre_auth_budget.h). True until the client sent
  // its StartupMessage: the connections evicted when the pre-auth budget is full.
  bool AwaitingStartup() const {
    return !refuse_too_many_ && (state_ == State::kStartup || state_ == State::kTlsHandshake);
  }
  // A login in progress for `stale_ms` or more (a real one takes a few round
  // trips): evicted from a full pre-auth budget when no idle socket is left.
  bool StalledLogin(uint64_t now_ms, uint64_t stale_ms) const {
    return state_ == State::kAuth && now_ms - accepted_ms_ >= stale_ms;
  }
  // The pre-auth budget is full and this connection is the oldest idle (or
  // stalled) one: it gives way.
  void Evict();
  // Accepted over a full budget: answer the StartupMessage with 53300
  // ("sorry, too many clients already") instead of authenticating.
  void RefuseAfterStartup() { refuse_too_many_ = true; }
  State state() const { return state_; }
  // A unit waits: for a route, a replica's replay, or a server connection.
  bool waiting() const {
    return state_ == State::kWaitRoute || state_ == State::kWaitReplay ||
           state_ == State::kWaitServer;
  }
  ServerConnection* server() const { return server_; }
  uint32_t secret() const { return secret_; }
  // For the admin console's SHOW CLIENTS.
  const std::string& user_name() const { return user_name_; }
  const std::string& database() const { return database_; }
  const std::string& peer() const { return peer_; }
  bool tls() const { return tls_; }
  uint32_t pid() const override { return pid_; }
  const std::string* application_name() const { return session_.params().Get("application_name"); }

  // From the ProxyApp: the topology changed while no node could serve our unit.
  void RetryRoute();
  // From the ProxyApp: `node` turned suspect (a probe timed out). A retryable
  // read running or waiting for a connection there is abandoned and sent
  // elsewhere (client_session_retry.cc).
  void OnNodeHung(int node) override;
  // From the pool.
  void OnServerAssigned(ServerConnection* server) override;
  // `node_failure`: the node failed (not this login); a read may go elsewhere.
  void OnServerFailed(const std::string& error_response, bool node_failure) override;
  // From the bound server connection.
  void ForwardToClient(std::string_view bytes) override;
  // Whether ForwardToClient() passes every message through unlooked-at (no
  // read retry is holding replies back), so the server may batch them.
  bool ForwardsPlainly() const override { return !retry_.active(); }
  // Read-your-writes capture (client_session_ryw.cc). True when the client's
  // ReadyForQuery is held until an LSN probe answers.
  bool HoldReadyForQuery(std::string_view bytes) override;
  void OnLsnProbeDone(const LsnProbeAnswer& answer) override;
  // The identity replay (SessionState::ReplayPlan::identity) finished; `error`
  // is empty when it succeeded.
  void OnIdentityRestored(std::string_view sqlstate, std::string_view error) override;
  void OnCustomParameterReplayed(std::string_view error_body) override;
  void OnServerParameter(std::string_view name, std::string_view value) override;
  void OnServerUnitDone() override;
  // An ErrorResponse for the client's unit (its body); a retryable failure of
  // an autocommit read is swallowed and the read retried (client_session_retry.cc).
  void OnServerError(std::string_view body) override;
  void OnServerLost(std::string_view why) override;
  void OnServerDrained() override;
  void FlushToClient() override;

  // ReplayPoller::Waiter: a causal read waits for a replica (client_session_consistency.cc).
  void OnReplayPolled(size_t node, bool ok, bool paused) override;

  // Stream::Handler
  void OnStreamRead(std::string_view data) override;
  void OnStreamError(absl::Status status) override;
  void OnStreamTlsReady() override;
  void OnStreamDrained() override;

 private:
  // The client's protocol-level prepared statements. Named ones live on the
  // servers under proxy-owned names derived from their text and are re-created
  // on whichever server connection runs them; the unnamed one is re-created
  // when a later batch binds it on a server that no longer has it.
  struct ClientStatement {
    std::string server_name;  // "" for the unnamed statement
    std::string parse_tail;   // the Parse body after the name: query, parameter types
    std::shared_ptr<const routing::Classification> classification;
    routing::StatementHints hints;
  };

  ~ClientSession() override;
  static void OnTimer(uv_timer_t* t);
  static void OnIdle(uv_idle_t* h);
  static void OnClosed(uv_handle_t* h);
  // Input flow control after login (client_session.cc): whether Process must
  // leave the rest of the input in in_ for now, and picking it up again.
  bool InputBlocked();
  void ResumeInput();

  // The one place where the state changes. Leaving a state takes back what it
  // registered (a pool's queue, the route waiters, a replay poll); entering
  // one arms its timer (`wait_ms`: kWaitReplay's, which the router decides).
  // A transition to the current state changes nothing (deadlines stand).
  void TransitionTo(State next, uint64_t wait_ms = 0);
  void LeaveState();
  // The deadline of `state` from now (0: none).
  uint64_t TimerFor(State state, uint64_t wait_ms) const;
  // Returns how many bytes of `data` were consumed.
  size_t Process(std::string_view data);
  // Startup phase (client_session_login.cc).
  size_t ProcessStartup(std::string_view data);
  void HandleStartupMessage(std::string_view body, bool* stop);
  void HandleAuthMessage(const protocol::Frame& frame);
  void SendAuthFailure();
  void OnLoggedIn();
  void SendWelcome(Pool* pool);
  // Data path.
  void HandleFrame(const protocol::Frame& frame);
  void BeginUnit();
  void StartUnit(const routing::RouteContext& ctx);
  void Dispatch(const routing::RouteContext& ctx);
  // Writes the dispatched unit's bytes (the front of to_server_) to the bound server.
  void SendDispatched();
  // A complete new unit was collected while a server is bound: send it there
  // or hold it until that server is released.
  void RouteCollected();
  void Send(const protocol::Frame& frame);
  // Read retry (client_session_retry.cc).
  bool RetryEligible(const routing::RouteContext& ctx, const routing::Route& route) const;
  bool MayDeliver(std::string_view bytes);
  void RetryRead(ReadRetryReason reason, std::string_view why);
  // The timer of kRestoring/kActive: the read ran routing.read_deadline_ms.
  void ReadDeadlinePassed();
  // client_session_databases.cc: a replica refused the unit's login because it
  // does not have the database or role yet: the unit (not sent) goes
  // elsewhere. True when it did.
  bool RerouteRefusedLogin(const std::string& error_response);
  // The statement needs no other session in some databases (DROP DATABASE, ...).
  void VacateDatabases(const routing::StatementInfo& s);
  // Replicas that lack this session's database or user (RouteContext::avoid_nodes).
  uint64_t NodesMissing() const;
  // Optimistic read transactions (client_session_optimistic.cc).
  bool OptimisticEligible(const routing::RouteContext& ctx) const;
  void OptimisticStart(const routing::RouteContext& ctx, const routing::Route& route);
  // A unit collected while the transaction runs on its replica: sent there
  // or, when it needs the primary, the move begins. Returns false when the
  // session has no optimistic transaction on a replica.
  bool OptimisticRouteCollected(const routing::RouteContext& ctx);
  std::optional<OptimisticMoveReason> OptimisticMoveFor(const routing::RouteContext& ctx) const;
  // Sends the collected unit to the bound replica.
  void OptimisticStay();
  void OptimisticMove();
  void OptimisticSendReplay();
  // After the bookkeeping of a unit answered on the replica: true when the
  // session moved on (the move began).
  bool OptimisticAfterUnit();
  void OptimisticReplayUnitDone();
  void OptimisticFail();
  // Sends what waited behind the move (the unit that caused it, and later ones).
  void ResumeAfterMove();
  // Read-your-writes (client_session_ryw.cc).
  void AfterUnitSent();
  void SendLsnProbe(uint64_t unit);  // behind `unit` (units_sent_ / units_answered_ count)
  routing::RywToken EffectiveToken() const {
    return routing::RywToken::Max(own_token_, presented_token_);
  }
  bool PresentToken(std::string_view text, std::string* error);
  // Consistency levels and read-your-writes waits (client_session_consistency.cc).
  void AddConsistencyHints(const routing::StatementHints& hints);
  void ApplyConsistency(routing::RouteContext* ctx);
  void SetConsistency(std::string_view value);
  // What the read must see as of now (tokens move while a unit waits or is held).
  void RefreshConsistency(routing::RouteContext* ctx) const;
  // Router::Decide for a unit about to be dispatched; a causal read that no
  // replica has replayed may park here waiting for one (replay_wait_ set).
  routing::Route DecideRoute(const routing::RouteContext& ctx);
  // False (and the fallback counted) when the replica cannot be polled now.
  bool StartReplayWait(const routing::RouteContext& ctx, const routing::Route& route);
  void EndReplayWait();
  void ReplayWaitTimedOut();
  // May the next read stay on the bound replica `node` (a pipelined read)?
  void CountReadAfterWrite(int node);  // reads_after_write_total, once per token
  bool BoundReplicaServes(int node, const routing::RouteContext& ctx) const;
  void CountRywFallback(const routing::RouteContext& ctx, const routing::Route& route);
  void ReleaseServer();
  // Before a unit goes to the bound server: another client's currval()/lastval()
  // state there is discarded before this unit could read it.
  void GuardSequenceState(bool reads_sequence_state, bool write);
  void DetachServer();
  void ContinueAssigned();
  // Client reads paused for backpressure start again once the bound server
  // and to_server_ have drained.
  void ResumeReadingIfDrained();
  // One replay the unit waited for (kRestoring) was answered.
  void RestoreStepDone();
  Pool* PoolFor(int node);
  // Sends one complete client message to the bound server, rewriting statement
  // names and re-creating statements as needed (client_session_statements.cc).
  void WriteToServer(const protocol::Frame& frame);
  void EnsurePrepared(const ClientStatement& st);
  void SendParse(const ClientStatement& st, protocol::ReplyTracker::Owner owner);
  void EnsureUnnamed();
  // Statement awareness (client_session_routing.cc).
  // Returns false when the proxy answered the message itself (pgregion.* settings).
  bool InspectFrame(const protocol::Frame& frame);
  void Accumulate(const routing::Classification& c, const routing::StatementHints& hints);
  bool AnswerProxyStatements(const routing::Classification& c);
  // A lone BEGIN or, after one, a lone COMMIT/ROLLBACK: answered here.
  bool DeferBegin(const routing::Classification& c, const routing::StatementHints& hints,
                  std::string_view text);
  bool EndDeferredBegin(const routing::Classification& c);
  // The same for a BEGIN sent with the extended protocol (psycopg, libpq's
  // PQexecParams): Parse/Bind/Describe/Execute/Sync of the unnamed statement.
  bool DeferExtendedBegin();
  bool MayDeferBegin() const;
  routing::Classification WithBoundValue(const routing::Classification& c,
                                         std::string_view bind_rest);
  routing::RouteContext UnitRouteContext();
  // The unit's tenant (hint, pgregion.tenant, [tenancy] setting) and its
  // policy into `ctx` (none: no tenant routing; client_session_tenant.cc).
  void ResolveTenant(routing::RouteContext* ctx);
  // A tenant's read no node of its allowed regions can serve: refused, never
  // served elsewhere (RouteBlock::kResidency).
  void RefuseResidency(const routing::RouteContext& ctx);
  void CountTenantRead(const routing::RouteContext& ctx, const routing::Route& route);
  bool pinned() const { return session_.pinned(); }
  void TakeProxySettings(SessionParams* params);
  bool SetProxySetting(std::string_view name, std::string_view value, std::string* error);
  std::string ProxySetting(std::string_view name) const;

  // Sends an ErrorResponse, then closes once it has been written.
  void Fatal(std::string_view sqlstate, std::string_view message);
  void Close(std::string_view reason);

  SessionEnv* env_;
  Stream* stream_;
  uv_timer_t timer_;
  // Continues input processing in a later loop iteration (see InputBlocked).
  // Allocated when the client first yields (most never do), kept until Close.
  uv_idle_t* idle_ = nullptr;
  int open_handles_ = 1;  // timer_ and idle_ if allocated: freed when all are closed
  State state_ = State::kStartup;
  std::string in_;  // unconsumed partial message
  protocol::MessageDecoder decoder_;
  bool tls_ = false;
  bool direct_tls_ = false;
  bool gssenc_answered_ = false;
  std::string user_name_;
  std::string database_;
  const UserConfig* user_ = nullptr;
  std::unique_ptr<ClientAuth> auth_;
  uint64_t accepted_ms_ = 0;      // loop time at Start(): the login timeout counts from it
  bool refuse_too_many_ = false;  // RefuseAfterStartup()
  // kAuthFailing: a failed login's ErrorResponse is sent once
  // proxy.auth_failure_delay_ms has passed; reads stop meanwhile.
  // What only a login needs for a while, freed once it is over.
  struct LoginScratch {
    std::string direct_tls_hello;  // bytes of a direct-TLS ClientHello to replay into OpenSSL
    std::string auth_failure;      // the failed login's ErrorResponse
  };
  std::unique_ptr<LoginScratch> login_scratch_;
  LoginScratch& login_scratch() {
    if (login_scratch_ == nullptr) login_scratch_ = std::make_unique<LoginScratch>();
    return *login_scratch_;
  }
  SessionState session_;               // parameters, identity, pins: what PostgreSQL would keep
  routing::TransactionMode txn_mode_;  // read-only/serializable as PostgreSQL sets them
  routing::PrimaryRelations primary_relations_;  // sequences advanced, unlogged tables made
  // The server connection (ServerConnection::id) this client last wrote on:
  // its currval()/lastval() state is there, if anywhere.
  uint64_t sequence_server_ = 0;
  uint32_t pid_ = 0;
  uint32_t secret_ = 0;
  std::vector<Pool*> pools_;  // by node index, filled lazily
  ServerConnection* server_ = nullptr;
  Pool* waiting_pool_ = nullptr;
  // Client messages not yet written to a server: first the dispatched unit's
  // (`dispatched_bytes_` of them), then those of units that came after it.
  std::string to_server_;
  size_t dispatched_bytes_ = 0;
  bool unit_open_ = false;   // the client is inside a unit: saw its first message, not its end
  bool open_batch_ = false;  // extended-protocol messages written since the last Sync
  // The bound server runs only complete autocommit units (transaction pooling):
  // a new unit is collected and routed on its own instead of following them.
  bool bound_autocommit_ = false;
  bool collecting_ = false;       // to_server_ holds a new unit behind a bound server's
  bool collected_ready_ = false;  // ...which is complete (or must be routed as it is)
  bool held_ = false;             // ...routed elsewhere: waits for the bound server to finish
  // Allocated only while a unit is held or parked (120 bytes each otherwise
  // kept by every idle client).
  std::unique_ptr<routing::RouteContext> held_ctx_;
  bool paused_ = false;  // client reads stopped for backpressure
  // Reads stopped, the rest of the input kept in in_: the client does not
  // read what the proxy wrote it (out_blocked_, resumed by OnStreamDrained),
  // or it used its work budget for now (yielded_, resumed by idle_).
  bool out_blocked_ = false;
  bool yielded_ = false;
  size_t work_ = 0;  // input work since the last yield
  std::string peer_;
  UnitTimer unit_timer_;                     // query_duration_seconds, pool_wait_seconds
  std::unique_ptr<ConsoleSession> console_;  // set: this client uses the admin console

  // Routing state of the unit being collected while no server is bound.
  struct Unit {
    bool write = false;
    bool parse_error = false;
    bool too_complex = false;  // a statement over the classifier's budget
    bool begins_transaction = false;
    bool read_only_transaction = false;
    bool pins = false;
    bool primary_state = false;   // reads what only the primary shows this session
    bool sequence_state = false;  // calls currval() or lastval()
    routing::RoutePreference hint = routing::RoutePreference::kAuto;
    uint32_t statements = 0;        // statements accumulated so far
    bool after_begin = false;       // the last one was a BEGIN (SET TRANSACTION may follow)
    bool plain_begin = false;       // the first was a BEGIN without access mode or hints
    bool ends_transaction = false;  // COMMIT/ROLLBACK/END/PREPARE TRANSACTION
    bool copy_in = false;           // COPY ... FROM STDIN
    // May lower synchronous_commit for its own transaction unseen
    // (StatementInfo::durability_unknown; unparsed text, fast-path calls).
    bool durability_unknown = false;
    // For optimistic transactions: a statement that leaves state on the
    // server a ROLLBACK may not undo for the proxy's view of it (SET, SET
    // LOCAL, cursors, set_config()); BEGIN READ WRITE; the optimistic= hint;
    // why a write must run on the primary.
    bool session_statement = false;
    bool read_write_begin = false;
    bool chain = false;  // COMMIT/ROLLBACK AND CHAIN
    std::optional<bool> optimistic;
    std::optional<OptimisticMoveReason> write_reason;
    // Comment hints for this unit only: /* pgregion: consistency=... */.
    std::optional<routing::Consistency> consistency;
    std::optional<int64_t> max_staleness_ms;
    std::string ryw_token;
    std::optional<std::string> tenant;  // /* pgregion: tenant=42 */
  };
  // What the statements being written to the server do (for the LSN probe).
  struct Sending {
    bool write = false;
    bool begins_transaction = false;
    bool ends_transaction = false;
    bool copy_in = false;
    bool durability_unknown = false;
    void Add(const Unit& u) {
      write |= u.write;
      begins_transaction |= u.begins_transaction;
      ends_transaction |= u.ends_transaction;
      copy_in |= u.copy_in;
      durability_unknown |= u.durability_unknown;
    }
  };
  Sending sending_;
  Unit unit_;
  static void NoteOptimisticFacts(const routing::StatementInfo& s, Unit* unit);
  // A lone BEGIN answered by the proxy (transaction pooling): the transaction
  // starts on the node its first statement needs (a replica after SET
  // TRANSACTION READ ONLY), with the BEGIN sent in front of that statement.
  bool deferred_begin_ = false;
  bool prepend_begin_ = false;  // the dispatched unit carries the deferred BEGIN
  std::string begin_text_;      // the client's BEGIN, sent as it was written
  // Its access mode and isolation level: what TransactionMode needs of it (a
  // whole StatementInfo, 272 bytes, would be kept by every idle client).
  struct DeferredBeginMode {
    routing::StatementKind kind = routing::StatementKind::kWrite;
    routing::AccessMode access = routing::AccessMode::kUnspecified;
    routing::IsolationLevel isolation = routing::IsolationLevel::kUnspecified;
    bool optimistic_off = false;  // /* pgregion: optimistic=off */ on the BEGIN
  };
  DeferredBeginMode deferred_begin_mode_;
  routing::StatementInfo DeferredBeginInfo() const;
  bool DeferredBeginReadOnly() const;
  std::unique_ptr<routing::RouteContext> parked_ctx_;  // kWaitRoute's unit
  // What UnitRouteContext() keeps of the unit it routed (unit_ is reset
  // there) for the optimistic-transaction decisions that follow.
  struct RoutedUnit {
    bool session_statement = false;
    bool read_write_begin = false;
    bool ends_transaction = false;
    bool chain = false;
    std::optional<bool> optimistic;
    std::optional<OptimisticMoveReason> write_reason;
    uint32_t statements = 0;
  };
  RoutedUnit routed_unit_;
  // An optimistic read transaction (client_session_optimistic.cc): begun on
  // a replica, moved to the primary at its first statement that needs it by
  // replaying what ran on the replica and comparing the results. Allocated
  // only while one runs.
  struct Optimistic {
    enum class Phase : uint8_t {
      kOnReplica,  // runs on the replica; every unit is collected and judged first
      kReplaying,  // rolled back there; re-running on the primary, replies digested
      kAborting,   // the replay differed: failing the primary's transaction
    };
    Phase phase = Phase::kOnReplica;
    // Only reads ran on the replica, no session statement: after a ROLLBACK
    // its connection is as it was and goes back to the pool (else closed).
    bool clean = true;
    bool replay_sent = false;
    // A batch that ends the transaction (COMMIT, ROLLBACK) was sent: what the
    // client pipelines behind it waits for its answer, then is routed on its
    // own (the transaction is over, on the replica).
    bool ending = false;
    OptimisticMoveReason reason = OptimisticMoveReason::kWrite;
    std::string begin;     // the deferred BEGIN, sent first on the primary
    std::string recorded;  // client messages run on the replica, as the client sent them
    uint32_t units = 0;    // units in `recorded`
    uint32_t statements = 0;
    uint32_t replay_left = 0;  // replayed units not answered yet
    uint64_t move_start_ns = 0;
    protocol::ReplyDigest seen;       // what the client received from the replica
    protocol::ReplyDigest replay;     // what the replay returned on the primary
    routing::RouteContext start_ctx;  // the first batch's, while it has not run
  };
  std::unique_ptr<Optimistic> optimistic_;
  bool optimistic_enabled_ = true;  // pgregion.optimistic
  // The last optimistic transaction ended in a mismatch (40001): its retry
  // starts on the primary, so that a transaction whose reads differ on every
  // replay (they return now() or random()) does not fail forever.
  bool primary_after_mismatch_ = false;
  bool default_optimistic_ = true;  // from the config
  // kRestoring: replays still to be answered, and the custom parameters among
  // them in the order they were sent.
  uint32_t restore_pending_ = 0;
  std::vector<std::string> custom_replay_;
  size_t custom_replay_next_ = 0;
  bool unit_failed_ = false;  // an ErrorResponse went to the client in the current unit
  // Transparent retry of an autocommit read that failed on a replica before
  // any of its result reached the client: once on another replica, then on the
  // primary. Replies of the failed attempt that already reached the client
  // (ParseComplete, BindComplete, RowDescription, ...) are expected again and
  // dropped on the next attempt.
  struct ReadRetry {
    bool armed = false;    // the running unit may still be retried
    bool pending = false;  // it failed: its remaining replies are dropped, then it is re-sent
    bool sent = false;     // `unit->bytes` holds the unit (written to a server)
    int node = -1;         // where it runs
    uint8_t attempts = 0;
    size_t seen = 0;  // replies of this attempt so far
    // Loop time this attempt got its server connection: the read deadline
    // counts from it (the wait for a connection has pool.acquire_timeout_ms).
    uint64_t bound_ms = 0;
    // What only a unit that may be retried needs: allocated when one is
    // dispatched, freed when it is done (an idle client keeps none of it).
    struct Unit {
      std::string delivered;  // types of the unit's replies the client has (acknowledgements only)
      std::string bytes;
      routing::RouteContext ctx;
    };
    std::unique_ptr<Unit> unit;
    // Replies must be looked at: the unit may be retried, or this attempt
    // repeats acknowledgements an earlier one already delivered.
    bool active() const {
      return armed || pending || (unit != nullptr && seen < unit->delivered.size());
    }
  };
  ReadRetry retry_;
  // What GuardSequenceState needs of the dispatched unit.
  bool dispatched_reads_sequence_state_ = false;
  bool dispatched_write_ = false;
  // Allocated at the first unnamed Parse (simple-protocol clients never need it).
  std::unique_ptr<ClientStatement> unnamed_statement_;
  uint64_t unnamed_generation_ = 0;  // bumps with every unnamed Parse
  absl::flat_hash_map<std::string, ClientStatement> statements_;
  uint64_t UnnamedOwnerKey() const { return (uint64_t{pid_} << 32) ^ unnamed_generation_; }
  // pgregion.* settings, answered by the proxy.
  routing::RoutePreference route_pref_ = routing::RoutePreference::kAuto;
  routing::RoutePreference default_route_ = routing::RoutePreference::kAuto;  // from the config
  std::string default_consistency_;
  std::string consistency_ = "causal";
  // consistency_ parsed (it is read for every unit); set with SetConsistency().
  std::optional<routing::StatementHints::Consistency> consistency_level_ =
      routing::StatementHints::Consistency::kCausal;
  std::string max_staleness_;
  // Tenant routing (issue 20, client_session_tenant.cc): pgregion.tenant, and
  // its SET LOCAL value until the transaction ends. consistency_explicit_: the
  // client chose pgregion.consistency (a tenant's level then does not apply).
  std::string tenant_;
  std::optional<std::string> tenant_local_;
  // The last tenant looked up and what its directory said (ResolveTenant).
  struct TenantCache {
    uint64_t generation = 0;  // TenantDirectory::generation(); 0: none
    std::string id;
    const routing::TenantPolicy* policy = nullptr;
    bool known = false;
  } tenant_cache_;
  bool consistency_explicit_ = false;
  // Read-your-writes: the session's own token (its writes) and the latest one
  // it presented; reads must see the later of the two.
  routing::RywToken own_token_;
  routing::RywToken presented_token_;
  bool wrote_ = false;  // a write went to the primary since the last token
  // The token moved: the next causal read is counted in reads_after_write_total.
  bool read_after_write_ = false;
  // Units written to / answered by the bound server (counted from its binding),
  // and the units with an LSN probe behind them, whose ReadyForQuery is held.
  uint64_t units_sent_ = 0;
  uint32_t dispatch_ends_left_ = 0;  // units of the batch SendDispatched is writing
  uint64_t units_answered_ = 0;
  // A vector, not a deque: a deque allocates about 600 bytes as soon as it
  // is constructed, for every client, and this holds one or two units at most.
  struct ProbedUnit {
    uint64_t unit = 0;
    bool durability_unknown = false;  // its transaction may have committed asynchronously
  };
  std::vector<ProbedUnit> probe_units_;
  uint64_t copy_probe_unit_ = 0;  // COPY FROM STDIN: probe once this unit's ReadyForQuery arrives
  // Units sent to the primary since the last probe (the transaction the next
  // one ends) may have lowered synchronous_commit for themselves.
  bool durability_unknown_ = false;
  char held_ready_ = 0;  // the held ReadyForQuery's status (0: none held)
  // kWaitReplay: the causal read waiting for `node` to replay its token
  // before it goes to the primary (the timer is its deadline). Set only while
  // one waits (an idle client does not keep its 144 bytes).
  struct ReplayWait {
    size_t node = 0;
    uint64_t start_ns = 0;
    routing::RouteContext ctx;
  };
  std::unique_ptr<ReplayWait> replay_wait_;
};

}  // namespace pgregion::proxy
