// One connection from pgregion to a PostgreSQL backend.
//
// Owns its Stream and a timer; heap-allocated by its Pool and freed only in the
// timer's close callback, so a Close() from inside any callback is safe. Logs in
// with the pool's server credentials (SCRAM-SHA-256, md5, cleartext or trust,
// whatever the backend asks), then alternates between idle (in its pool) and
// active (bound to one client session). Replies are classified by a
// ReplyTracker: the client's are forwarded to the bound session, the proxy's own
// (parameter replays, DISCARD ALL) are consumed here. Loop thread only.
#pragma once

#include <uv.h>

#include <cstdint>
#include <deque>
#include <list>
#include <memory>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "protocol/frame_decoder.h"
#include "protocol/reply_tracker.h"
#include "protocol/scram.h"
#include "proxy/backend/server_client.h"
#include "proxy/backend/session_params.h"
#include "proxy/net/stream.h"

namespace pgregion::proxy {

class Pool;

class ServerConnection : public Stream::Handler {
 public:
  // Tracker tags of the proxy's read-your-writes LSN probe: three
  // FunctionCalls (SendLsnProbe), the last one tagged kLsnProbeTag.
  static constexpr uint32_t kLsnProbeTag = 2;
  static constexpr uint32_t kLsnProbeSettingTag = 6;
  static constexpr uint32_t kLsnProbeFlushTag = 7;
  // The session's replay on this connection (SessionState::ReplayPlan): one
  // the client's unit waits for (the identity, and settings that may fail),
  // and settings sent ahead of the unit without waiting.
  static constexpr uint32_t kIdentityTag = 3;
  static constexpr uint32_t kSettingsTag = 4;
  static constexpr uint32_t kCustomTag = 5;  // one custom (dotted) parameter, waited for

  enum class State {
    kConnecting,    // TCP connect in progress
    kSslRequest,    // waiting for the 'S'/'N' answer
    kTlsHandshake,  // TLS handshake towards the backend
    kLogin,         // startup and authentication
    kIdle,          // in its pool
    kActive,        // bound to a client session
    kResetting,     // DISCARD ALL / rollback running before going back to the pool
    kClosed,
  };

  ServerConnection(Pool* pool, uv_loop_t* loop, uint64_t id);
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  void Connect();
  void Close(std::string_view reason);

  State state() const { return state_; }
  uint64_t id() const { return id_; }
  // The client (its proxy pid) that last wrote on this connection: a write may
  // have called nextval(), whose value currval()/lastval() then return.
  uint32_t sequence_owner() const { return sequence_owner_; }
  void set_sequence_owner(uint32_t pid) { sequence_owner_ = pid; }
  Pool* pool() const { return pool_; }
  ServerClient* client() const { return client_; }

  void Bind(ServerClient* client);
  // Back to idle; the caller hands it to the pool.
  void Unbind();
  // Runs `sql` as a proxy-owned unit, then returns to the pool when the server is idle.
  void Reset(std::string_view sql);
  // Runs `sql` (ROLLBACK of a transaction the client continues elsewhere),
  // then returns to the pool when the server is idle. Unlike Reset, the
  // parameters and prepared statements the connection has are kept: a
  // rollback leaves them as they were before the transaction (the reported
  // parameters it restores arrive as ParameterStatus and are recorded).
  void ReleaseAfter(std::string_view sql);
  // What the proxy itself sends on a bound connection, with the replies it
  // expects recorded here (they never reach the client): a simple Query
  // (`tag`: kIdentityTag, kSettingsTag, or 0), and the read-your-writes LSN
  // probe (FunctionCalls of current_setting('synchronous_commit'),
  // pg_current_wal_flush_lsn() and pg_current_wal_insert_lsn(), pipelined:
  // no round trip of its own; the client's OnLsnProbeDone gets the answers).
  void SendProxyQuery(std::string_view sql, uint32_t tag = 0);
  void SendLsnProbe();

  void Write(std::string_view bytes) { stream_->Write(bytes); }
  void Flush() { stream_->Flush(); }
  size_t pending_write_bytes() const { return stream_->pending_bytes(); }
  void PauseReading() { stream_->StopRead(); }
  // Pool::Release during this connection's own read callback is deferred to
  // its end (see OnStreamRead).
  bool DeferRelease() {
    if (!in_read_) return false;
    release_pending_ = true;
    return true;
  }
  void ResumeReading() { stream_->StartRead(); }

  protocol::ReplyTracker& tracker() { return tracker_; }
  char tx_status() const { return tx_status_; }
  // True when nothing is outstanding and no transaction is open.
  bool clean() const {
    return tracker_.empty() && tx_status_ == 'I' && !decoder_.InStreamedMessage();
  }

  bool restore_failed() const { return restore_failed_; }
  // Which custom-parameter placeholders the backend holds
  // (SessionState::CustomNames of its clients; 0: none): Pool::Acquire matches it.
  uint64_t custom_names() const { return custom_names_; }
  void set_custom_names(uint64_t names) { custom_names_ = names; }
  uint32_t backend_pid() const { return backend_pid_; }
  uint32_t backend_secret() const { return backend_secret_; }
  const SessionParams& startup_params() const { return startup_params_; }
  SessionParams& params() { return params_; }
  uint64_t idle_since_ms() const { return idle_since_ms_; }

  // Protocol-level statements prepared here under proxy-owned names (shared by
  // every client that prepares the same text). A name counts as present from
  // the moment its Parse is sent; it is dropped again if that Parse fails.
  // `text` is the Parse body after the name; a name whose text differs (a hash
  // collision) counts as absent, so its re-Parse fails loudly rather than run
  // another statement.
  bool HasPrepared(const std::string& name, std::string_view text);
  // Records a Parse of `name` about to be sent (tagged in the tracker). Returns
  // the least recently used statement to close first when over the bound, or "".
  std::string NotePreparing(const std::string& name, std::string_view text);
  void ForgetPrepared();
  // The Parse recorded by the last NotePreparing() was not sent after all.
  void UnnotePreparing(const std::string& name);
  // Whose unnamed statement the server holds (0: nobody's we know).
  uint64_t unnamed_owner() const { return unnamed_owner_; }
  void set_unnamed_owner(uint64_t owner) { unnamed_owner_ = owner; }
  // Sends the synthesized replies that became due to the bound client.
  void DeliverDue();

  // Stream::Handler
  void OnStreamRead(std::string_view data) override;
  void OnStreamError(absl::Status status) override;
  void OnStreamConnected(absl::Status status) override;
  void OnStreamTlsReady() override;
  void OnStreamDrained() override;

 private:
  ~ServerConnection() override;
  static void OnTimer(uv_timer_t* t);
  static void OnClosed(uv_handle_t* h);

  void TransitionTo(State next);
  void SendStartup();
  // Returns bytes consumed from `data`.
  size_t Process(std::string_view data);
  void HandleLoginMessage(const protocol::Frame& frame);
  void HandleAuthRequest(std::string_view body);
  void HandleMessage(const protocol::Frame& frame);
  // Hands the batched pass-through bytes to the client (see HandleMessage).
  void FlushSpan();
  void AddToSpan(std::string_view bytes);
  // `node_failure`: the node itself failed (refused, timed out, reset, cannot
  // connect now), as opposed to this login (auth, unknown database).
  void LoginFailed(std::string error_response, bool node_failure = false);
  void Lost(std::string_view why);

  Pool* pool_;
  uv_loop_t* loop_;
  uint64_t id_;
  uint32_t sequence_owner_ = 0;
  Stream* stream_;
  uv_timer_t timer_;
  State state_ = State::kConnecting;
  bool in_read_ = false;
  std::string identity_sqlstate_;  // the replay's error, if it failed
  std::string identity_error_;
  LsnProbeAnswer lsn_answer_;  // the LSN probe being answered
  std::string custom_error_;   // the ErrorResponse body of a refused kCustomTag replay
  // A replay failed: what params_ records may not be what the backend has
  // (the whole replay query rolled back), so it is never reused.
  bool restore_failed_ = false;
  uint64_t custom_names_ = 0;
  bool release_pending_ = false;
  ServerClient* client_ = nullptr;
  protocol::MessageDecoder decoder_;
  protocol::ReplyTracker tracker_;
  protocol::ReplyTracker::Decision stream_decision_;  // for the pieces of a streamed message
  std::string in_;                                    // unconsumed partial message
  // Consecutive pass-through messages of the buffer Process() is walking,
  // forwarded to the client in one piece before anything else happens.
  std::string_view span_;
  std::unique_ptr<protocol::ScramClient> scram_;
  char tx_status_ = 'I';
  uint32_t backend_pid_ = 0;
  uint32_t backend_secret_ = 0;
  SessionParams startup_params_;
  SessionParams params_;
  uint64_t idle_since_ms_ = 0;
  // Prepared statements, most recently used at the front.
  std::list<std::string> prepared_lru_;
  struct Prepared {
    std::list<std::string>::iterator lru;
    std::string text;
  };
  absl::flat_hash_map<std::string, Prepared> prepared_;
  std::deque<std::string> pending_parses_;  // tagged Parses in flight, in order
  uint64_t unnamed_owner_ = 0;
};

}  // namespace pgregion::proxy
