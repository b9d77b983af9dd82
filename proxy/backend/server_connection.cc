#include "proxy/backend/server_connection.h"

#include <algorithm>
#include <utility>

#include "protocol/md5.h"
#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/backend/pool.h"
#include "proxy/net/log.h"
#include "proxy/net/tls_context.h"
#include "routing/missing_objects.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;

namespace {
// Backends are trusted more than clients, but a broken one must not make us buffer without bound.
constexpr uint32_t kMaxBackendMessage = 1u << 30;
// Larger DataRow / CopyData messages stream through in pieces.
constexpr uint32_t kStreamThreshold = 64 * 1024;

std::string ConnectError(std::string_view message) {
  std::string out;
  p::AppendErrorResponse(&out, {.severity = "FATAL",
                                .sqlstate = p::sqlstate::kSqlclientUnableToEstablishSqlconnection,
                                .message = message});
  return out;
}
}  // namespace

ServerConnection::ServerConnection(Pool* pool, uv_loop_t* loop, uint64_t id)
    : pool_(pool),
      loop_(loop),
      id_(id),
      stream_(Stream::Create(loop, pool->env()->flush_queue(), this)),
      decoder_(kMaxBackendMessage, kStreamThreshold) {
  stream_->set_flush_first(true);  // start the backend's work before answering clients
  decoder_.SetStreamable('D', true);
  decoder_.SetStreamable('d', true);
  uv_timer_init(loop, &timer_);
  timer_.data = this;
}

ServerConnection::~ServerConnection() = default;

void ServerConnection::TransitionTo(State next) {
  if (state_ == next) return;
  switch (next) {
    case State::kIdle:
      idle_since_ms_ = uv_now(loop_);
      break;
    case State::kActive:
    case State::kResetting:
      break;
    case State::kConnecting:
    case State::kSslRequest:
    case State::kTlsHandshake:
    case State::kLogin:
      break;
    case State::kClosed:
      uv_timer_stop(&timer_);
      break;
  }
  state_ = next;
}

void ServerConnection::Connect() {
  BackendEnv* env = pool_->env();
  uv_timer_start(&timer_, OnTimer, env->config().pool.connect_timeout_ms, 0);
  int rc = stream_->Connect(env->node_address(pool_->node()));
  if (rc != 0) {
    LoginFailed(ConnectError(StrCat("pgregion: cannot connect to node \"",
                                    env->node_config(pool_->node()).name, "\": ", uv_strerror(rc))),
                /*node_failure=*/true);
  }
}

void ServerConnection::OnTimer(uv_timer_t* t) {
  auto* self = static_cast<ServerConnection*>(t->data);
  if (self->state_ == State::kClosed) return;
  const NodeConfig& node = self->pool_->env()->node_config(self->pool_->node());
  self->LoginFailed(
      ConnectError(StrCat("pgregion: timed out connecting to node \"", node.name, "\"")),
      /*node_failure=*/true);
}

void ServerConnection::OnStreamConnected(absl::Status status) {
  if (state_ != State::kConnecting) return;
  const NodeConfig& node = pool_->env()->node_config(pool_->node());
  if (!status.ok()) {
    LoginFailed(ConnectError(StrCat("pgregion: cannot connect to node \"", node.name,
                                    "\": ", status.message())),
                /*node_failure=*/true);
    return;
  }
  stream_->StartRead();
  if (pool_->env()->config().server_tls.mode != ServerTlsMode::kDisable &&
      pool_->env()->server_tls() != nullptr) {
    std::string req;
    p::AppendSslRequest(&req);
    stream_->Write(req);
    stream_->Flush();
    TransitionTo(State::kSslRequest);
    return;
  }
  SendStartup();
}

void ServerConnection::OnStreamTlsReady() {
  if (state_ != State::kTlsHandshake) return;
  SendStartup();
}

void ServerConnection::SendStartup() {
  std::string msg;
  // The pool's clients' startup parameters become this backend's login
  // defaults (what RESET returns to); application_name is replayed instead.
  std::vector<std::pair<std::string_view, std::string_view>> params = {
      {"user", pool_->server_user()}, {"database", pool_->database()}};
  for (const SessionParams::Entry& e : pool_->login_params().entries()) {
    params.emplace_back(e.name, e.value);
    // Parameters the server does not report are recorded as sent.
    startup_params_.Set(e.name, e.value);
    params_.Set(e.name, e.value);
  }
  p::AppendStartupMessage(&msg, params);
  stream_->Write(msg);
  stream_->Flush();
  TransitionTo(State::kLogin);
}

void ServerConnection::OnStreamRead(std::string_view data) {
  if (state_ == State::kSslRequest) {
    // One byte answer; anything after it would be unencrypted bytes we must not trust.
    char answer = data[0];
    const Config& cfg = pool_->env()->config();
    if (answer == 'S' && data.size() == 1) {
      TransitionTo(State::kTlsHandshake);
      const NodeConfig& node = pool_->env()->node_config(pool_->node());
      TlsContext* tls = pool_->env()->server_tls();
      absl::Status st = stream_->StartTlsClient(tls->ctx(), node.host,
                                                cfg.server_tls.mode == ServerTlsMode::kVerifyFull);
      if (!st.ok()) LoginFailed(ConnectError(StrCat("pgregion: TLS to backend: ", st.message())));
      return;
    }
    if (answer == 'N' && data.size() == 1 && cfg.server_tls.mode == ServerTlsMode::kPrefer) {
      SendStartup();
      return;
    }
    LoginFailed(ConnectError("pgregion: backend refused TLS (server_tls.mode requires it)"));
    return;
  }
  // A connection released while this read is processed goes back to its pool
  // only at the end (Pool::Release): the rest of the read must not reach, as
  // unsolicited messages, a client that got the connection meanwhile.
  in_read_ = true;
  if (in_.empty()) {
    size_t used = Process(data);
    if (state_ != State::kClosed && used < data.size()) in_.assign(data.substr(used));
  } else {
    in_.append(data);
    size_t used = Process(in_);
    if (state_ != State::kClosed) in_.erase(0, used);
  }
  in_read_ = false;
  // A large reply (a big DataRow) must not leave its capacity with the connection.
  if (in_.empty() && in_.capacity() > 64 * 1024) std::string().swap(in_);
  if (client_ != nullptr) client_->FlushToClient();
  if (release_pending_) {
    release_pending_ = false;
    pool_->FinishRelease(this, state_ == State::kIdle && client_ == nullptr);
  }
}

size_t ServerConnection::Process(std::string_view data) {
  size_t off = 0;
  while (off < data.size() && state_ != State::kClosed) {
    p::DecodeResult r = decoder_.Next(data.substr(off));
    if (r.status == p::DecodeStatus::kNeedMore) break;
    if (r.status == p::DecodeStatus::kError) {
      FlushSpan();
      Lost(StrCat("protocol error from backend: ", r.error.message()));
      return off;
    }
    off += r.consumed;
    if (state_ == State::kLogin) {
      HandleLoginMessage(r.frame);
    } else {
      HandleMessage(r.frame);
    }
  }
  FlushSpan();  // it points into `data`
  return off;
}

void ServerConnection::AddToSpan(std::string_view bytes) {
  if (!span_.empty() && span_.data() + span_.size() != bytes.data()) FlushSpan();
  span_ = span_.empty() ? bytes : std::string_view(span_.data(), span_.size() + bytes.size());
}

void ServerConnection::FlushSpan() {
  if (span_.empty()) return;
  const std::string_view span = span_;
  span_ = {};
  if (client_ != nullptr) client_->ForwardToClient(span);
}

void ServerConnection::HandleLoginMessage(const p::Frame& frame) {
  if (!frame.first || !frame.last) {
    Lost("unexpected streamed message during login");
    return;
  }
  switch (frame.type) {
    case 'R':
      HandleAuthRequest(frame.body);
      return;
    case 'S': {
      absl::StatusOr<p::ParameterStatus> ps = p::ParseParameterStatus(frame.body);
      if (ps.ok()) {
        startup_params_.Set(ps->name, ps->value);
        params_.Set(ps->name, ps->value);
      }
      return;
    }
    case 'K': {
      absl::StatusOr<p::BackendKeyData> key = p::ParseBackendKeyData(frame.body);
      if (key.ok()) {
        backend_pid_ = key->pid;
        backend_secret_ = key->secret;
      }
      return;
    }
    case 'Z':
      uv_timer_stop(&timer_);
      tx_status_ = 'I';
      TransitionTo(State::kIdle);
      pool_->OnLoginDone(this);
      return;
    case 'E': {
      // "the database system is starting up / shutting down": the node cannot
      // serve now. Anything else (auth, unknown database, too many
      // connections) is about this login, not the node.
      absl::StatusOr<p::ErrorNotice> err = p::ParseErrorNotice(frame.body);
      bool node_failure = err.ok() && err->sqlstate() == p::sqlstate::kCannotConnectNow;
      LoginFailed(std::string(frame.bytes), node_failure);
      return;
    }
    case 'N':
    case 'v':  // NegotiateProtocolVersion: we ask for 3.0, nothing to adjust
      return;
    default:
      Lost(StrCat("unexpected message '", std::string(1, frame.type), "' during login"));
  }
}

void ServerConnection::HandleAuthRequest(std::string_view body) {
  absl::StatusOr<p::Authentication> auth = p::ParseAuthentication(body);
  if (!auth.ok()) {
    Lost("malformed authentication request");
    return;
  }
  const std::string& password = pool_->server_password();
  std::string out;
  switch (static_cast<p::AuthCode>(auth->code)) {
    case p::AuthCode::kOk:
      return;
    case p::AuthCode::kCleartextPassword:
      p::AppendPasswordMessage(&out, password);
      break;
    case p::AuthCode::kMd5Password: {
      std::string stored = p::LooksLikeMd5Stored(password)
                               ? password
                               : p::Md5StoredPassword(pool_->server_user(), password);
      p::AppendPasswordMessage(&out, p::Md5Response(stored, auth->data));
      break;
    }
    case p::AuthCode::kSasl: {
      bool has_scram = false;
      for (std::string_view m : auth->mechanisms) has_scram |= (m == p::kScramSha256);
      if (!has_scram) {
        LoginFailed(ConnectError("pgregion: backend offers no supported SASL mechanism"));
        return;
      }
      scram_ = std::make_unique<p::ScramClient>(password, p::ScramNonce(18));
      p::AppendSaslInitialResponse(&out, p::kScramSha256, scram_->ClientFirst());
      break;
    }
    case p::AuthCode::kSaslContinue: {
      if (scram_ == nullptr) {
        Lost("unexpected SASL continue");
        return;
      }
      absl::StatusOr<std::string> final_msg = scram_->HandleServerFirst(auth->data);
      if (!final_msg.ok()) {
        LoginFailed(ConnectError(
            StrCat("pgregion: SCRAM with backend failed: ", final_msg.status().message())));
        return;
      }
      p::AppendSaslResponse(&out, *final_msg);
      break;
    }
    case p::AuthCode::kSaslFinal: {
      absl::Status st = scram_ == nullptr ? absl::InvalidArgumentError("unexpected SASL final")
                                          : scram_->HandleServerFinal(auth->data);
      scram_.reset();
      if (!st.ok()) {
        LoginFailed(
            ConnectError(StrCat("pgregion: backend's SCRAM signature is invalid: ", st.message())));
      }
      return;
    }
    default:
      LoginFailed(ConnectError(StrCat(
          "pgregion: backend asks for an unsupported authentication method (", auth->code, ")")));
      return;
  }
  stream_->Write(out);
  stream_->Flush();
}

void ServerConnection::HandleMessage(const p::Frame& frame) {
  // The bulk of a result (rows of a Query or Execute): straight into the batch.
  if (frame.first && frame.last && client_ != nullptr && frame.type != 'V' &&
      tracker_.PassesThrough(frame.type) && client_->ForwardsPlainly()) {
    AddToSpan(frame.bytes);
    return;
  }
  p::ReplyTracker::Decision d;
  if (frame.first) {
    d = tracker_.OnBackendMessage(frame.type);
    if (!frame.last) stream_decision_ = d;
  } else {
    d = stream_decision_;
    d.unit_done = false;
  }
  for (uint16_t i = 0; i < d.tagged_parses_ok && !pending_parses_.empty(); ++i) {
    pending_parses_.pop_front();
  }
  for (uint16_t i = 0; i < d.tagged_parses_failed && !pending_parses_.empty(); ++i) {
    auto it = prepared_.find(pending_parses_.front());
    if (it != prepared_.end()) {
      prepared_lru_.erase(it->second.lru);
      prepared_.erase(it);
    }
    pending_parses_.pop_front();
  }
  bool to_client = d.action == p::ReplyTracker::Action::kForward && client_ != nullptr;
  // Rows, descriptions, completions and the like go to the client as they
  // are: batch consecutive ones into one write to the client's buffer.
  // Anything else first hands over the batch, so the order never changes.
  if (to_client && frame.first && frame.last && !d.unit_done && !tracker_.has_due() &&
      frame.type != 'Z' && frame.type != 'V' && frame.type != 'S' && frame.type != 'E' &&
      client_->ForwardsPlainly()) {
    AddToSpan(frame.bytes);
    return;
  }
  FlushSpan();
  if (frame.first && frame.last) {
    switch (frame.type) {
      case 'Z': {
        absl::StatusOr<char> st = p::ParseReadyForQuery(frame.body);
        if (st.ok()) tx_status_ = *st;
        // Held back while the LSN probe behind it answers (read-your-writes).
        if (to_client && client_->HoldReadyForQuery(frame.bytes)) to_client = false;
        break;
      }
      case 'V':
        if (d.owner == p::ReplyTracker::Owner::kProxy) {
          absl::StatusOr<p::DataRowColumn> value = p::ParseFunctionCallResponse(frame.body);
          std::string* part = d.tag == kLsnProbeSettingTag ? &lsn_answer_.synchronous_commit
                              : d.tag == kLsnProbeFlushTag ? &lsn_answer_.flush
                              : d.tag == kLsnProbeTag      ? &lsn_answer_.insert
                                                           : nullptr;
          // Short answers (a setting name, an LSN); anything longer is not one.
          if (part != nullptr && value.ok() && !value->is_null && value->value.size() <= 64) {
            part->assign(value->value);
          }
        }
        break;
      case 'S': {
        // Values the client set are recorded on both sides; our own replays
        // were recorded when we sent them (in the form the client used).
        if (to_client || d.unsolicited || state_ == State::kResetting) {
          absl::StatusOr<p::ParameterStatus> ps = p::ParseParameterStatus(frame.body);
          if (ps.ok()) {
            params_.Set(ps->name, ps->value);
            if (client_ != nullptr) client_->OnServerParameter(ps->name, ps->value);
          }
        }
        break;
      }
      case 'E':
        if (to_client) client_->OnServerError(frame.body);  // may swallow it (read retry)
        if (d.owner == p::ReplyTracker::Owner::kProxy) {
          absl::StatusOr<p::ErrorNotice> err = p::ParseErrorNotice(frame.body);
          if (d.tag == kCustomTag) custom_error_.assign(frame.body);  // changes nothing there
          if (d.tag == kIdentityTag || d.tag == kSettingsTag) {
            identity_sqlstate_ = err.ok() ? std::string(err->sqlstate()) : "";
            identity_error_ = err.ok() ? std::string(err->message()) : "error";
            restore_failed_ = true;
          }
          LogWarn("server_reset_error")
              .Kv("server", id_)
              .Kv("sqlstate", err.ok() ? err->sqlstate() : "")
              .Kv("message", err.ok() ? err->message() : "");
        }
        break;
      default:
        break;
    }
  }
  if (to_client) client_->ForwardToClient(frame.bytes);
  if (tracker_.has_due()) DeliverDue();
  if (d.unit_done) {
    if (d.owner == p::ReplyTracker::Owner::kClient) {
      if (client_ != nullptr) client_->OnServerUnitDone();
    } else if (d.tag == kLsnProbeTag) {
      const LsnProbeAnswer answer = std::exchange(lsn_answer_, LsnProbeAnswer());
      if (client_ != nullptr) client_->OnLsnProbeDone(answer);
    } else if (d.tag == kCustomTag) {
      std::string error;
      error.swap(custom_error_);
      if (client_ != nullptr) client_->OnCustomParameterReplayed(error);
    } else if (d.tag == kIdentityTag || (d.tag == kSettingsTag && !identity_error_.empty())) {
      std::string sqlstate = std::move(identity_sqlstate_);
      std::string error = std::move(identity_error_);
      identity_sqlstate_.clear();
      identity_error_.clear();
      if (client_ != nullptr) client_->OnIdentityRestored(sqlstate, error);
    } else if (state_ == State::kResetting && tracker_.empty()) {
      if (tx_status_ == 'I') {
        TransitionTo(State::kIdle);
        pool_->Release(this);
      } else {
        Close("reset left a transaction open");
      }
    }
  }
}

namespace {
// Enough for any application's working set; each costs server memory.
constexpr size_t kMaxPreparedPerConnection = 256;
}  // namespace

bool ServerConnection::HasPrepared(const std::string& name, std::string_view text) {
  auto it = prepared_.find(name);
  if (it == prepared_.end() || it->second.text != text) return false;
  prepared_lru_.splice(prepared_lru_.begin(), prepared_lru_, it->second.lru);
  return true;
}

std::string ServerConnection::NotePreparing(const std::string& name, std::string_view text) {
  std::string evict;
  if (prepared_.size() >= kMaxPreparedPerConnection) {
    // The least recently used one not waiting for its own ParseComplete.
    for (auto it = prepared_lru_.rbegin(); it != prepared_lru_.rend(); ++it) {
      if (std::find(pending_parses_.begin(), pending_parses_.end(), *it) == pending_parses_.end()) {
        evict = *it;
        break;
      }
    }
    if (!evict.empty()) {
      prepared_lru_.erase(prepared_[evict].lru);
      prepared_.erase(evict);
    }
  }
  auto old = prepared_.find(name);
  if (old != prepared_.end()) prepared_lru_.erase(old->second.lru);
  prepared_lru_.push_front(name);
  prepared_[name] = Prepared{prepared_lru_.begin(), std::string(text)};
  pending_parses_.push_back(name);
  return evict;
}

void ServerConnection::UnnotePreparing(const std::string& name) {
  auto it = prepared_.find(name);
  if (it != prepared_.end()) {
    prepared_lru_.erase(it->second.lru);
    prepared_.erase(it);
  }
  if (!pending_parses_.empty() && pending_parses_.back() == name) pending_parses_.pop_back();
}

void ServerConnection::ForgetPrepared() {
  prepared_.clear();
  prepared_lru_.clear();
  unnamed_owner_ = 0;
}

void ServerConnection::DeliverDue() {
  std::string due;
  tracker_.TakeDue(&due);
  if (client_ != nullptr && !due.empty()) client_->ForwardToClient(due);
}

void ServerConnection::Bind(ServerClient* client) {
  client_ = client;
  TransitionTo(State::kActive);
}

void ServerConnection::Unbind() {
  client_ = nullptr;
  if (!stream_->reading() && state_ != State::kClosed) stream_->StartRead();
  TransitionTo(State::kIdle);
}

void ServerConnection::Reset(std::string_view sql) {
  client_ = nullptr;
  if (!stream_->reading()) stream_->StartRead();
  TransitionTo(State::kResetting);
  std::string q;
  p::AppendQuery(&q, sql);
  tracker_.Expect(p::ReplyTracker::Owner::kProxy);
  // DISCARD ALL resets every parameter to the login defaults and drops statements.
  params_ = startup_params_;
  ForgetPrepared();
  stream_->Write(q);
  stream_->Flush();
}

void ServerConnection::ReleaseAfter(std::string_view sql) {
  client_ = nullptr;
  if (!stream_->reading()) stream_->StartRead();
  TransitionTo(State::kResetting);
  SendProxyQuery(sql);
  stream_->Flush();
}

void ServerConnection::SendProxyQuery(std::string_view sql, uint32_t tag) {
  std::string q;
  p::AppendQuery(&q, sql);
  stream_->Write(q);
  tracker_.Expect(p::ReplyTracker::Owner::kProxy, tag);
  unnamed_owner_ = 0;  // a simple Query destroys the unnamed statement
}

void ServerConnection::SendLsnProbe() {
  // Built-in OIDs are fixed (pg_proc.dat). Which answer becomes the token is
  // routing::TokenLsnAfterCommit's choice. Each call runs in a transaction of
  // its own, after the unit's commit: the setting is the session's value then,
  // and both positions are at least where that commit left them.
  constexpr uint32_t kCurrentSettingOid = 2077;       // current_setting(text)
  constexpr uint32_t kCurrentWalFlushLsnOid = 3330;   // pg_current_wal_flush_lsn()
  constexpr uint32_t kCurrentWalInsertLsnOid = 2852;  // pg_current_wal_insert_lsn()
  std::string out;
  p::AppendFunctionCall(&out, kCurrentSettingOid, {"synchronous_commit"});
  p::AppendFunctionCall(&out, kCurrentWalFlushLsnOid);
  p::AppendFunctionCall(&out, kCurrentWalInsertLsnOid);
  stream_->Write(out);
  tracker_.Expect('F', p::ReplyTracker::Owner::kProxy, kLsnProbeSettingTag);
  tracker_.Expect('F', p::ReplyTracker::Owner::kProxy, kLsnProbeFlushTag);
  tracker_.Expect('F', p::ReplyTracker::Owner::kProxy, kLsnProbeTag);
}

void ServerConnection::OnStreamDrained() {
  if (client_ != nullptr) client_->OnServerDrained();
}

void ServerConnection::OnStreamError(absl::Status status) { Lost(ToStd(status.message())); }

void ServerConnection::LoginFailed(std::string error_response, bool node_failure) {
  if (state_ == State::kClosed) return;
  const NodeConfig& node = pool_->env()->node_config(pool_->node());
  const routing::LoginRefusal refusal = routing::ClassifyLoginRefusal(error_response);
  LogWarn("server_login_failed")
      .Kv("node", node.name)
      .Kv("server", id_)
      .Kv("database", pool_->database())
      .Kv("user", pool_->server_user())
      .Kv("sqlstate", refusal.sqlstate)
      .Kv("message", refusal.message);
  TransitionTo(State::kClosed);
  stream_->Close();
  Pool* pool = pool_;
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnClosed);
  pool->OnLoginFailed(this, error_response, node_failure);
}

void ServerConnection::Lost(std::string_view why) {
  if (state_ == State::kClosed) return;
  if (state_ == State::kConnecting || state_ == State::kLogin || state_ == State::kSslRequest ||
      state_ == State::kTlsHandshake) {
    LoginFailed(ConnectError(StrCat("pgregion: backend connection failed: ", why)),
                /*node_failure=*/true);
    return;
  }
  ServerClient* client = client_;
  // An idle connection the server ended (terminated, the database dropped or
  // renamed, a restart): the next client logs in to a server before its
  // welcome instead of being welcomed with what was learned (Pool::ForgetParams).
  if (client == nullptr && state_ == State::kIdle) pool_->ForgetParams();
  Close(why);
  if (client != nullptr) client->OnServerLost(why);
}

void ServerConnection::Close(std::string_view reason) {
  if (state_ == State::kClosed) return;
  LogDebug("server_closed").Kv("server", id_).Kv("reason", reason);
  client_ = nullptr;
  TransitionTo(State::kClosed);
  std::string bye;
  p::AppendTerminate(&bye);
  stream_->Write(bye);
  stream_->CloseAfterFlush();
  uv_close(reinterpret_cast<uv_handle_t*>(&timer_), OnClosed);
  pool_->Remove(this);
}

void ServerConnection::OnClosed(uv_handle_t* h) { delete static_cast<ServerConnection*>(h->data); }

}  // namespace pgregion::proxy
