// ClientSession: the startup phase (SSL/GSSENC negotiation, cancel requests,
// protocol version negotiation, authentication) up to the first ReadyForQuery.

#include <openssl/ssl.h>

#include <cstring>

#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/backend/pool.h"
#include "proxy/net/log.h"
#include "proxy/net/log_rate_limiter.h"
#include "proxy/net/tls_context.h"
#include "proxy/session/client_session.h"
#include "proxy/session/console_session.h"
#include "proxy/session/session_env.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;

namespace {

// Splits the startup "options" value the way PostgreSQL's pg_split_opts does:
// whitespace separates, a backslash escapes the next character.
std::vector<std::string> SplitOptions(std::string_view opts) {
  std::vector<std::string> out;
  std::string cur;
  bool have = false;
  for (size_t i = 0; i < opts.size(); ++i) {
    char c = opts[i];
    if (c == '\\' && i + 1 < opts.size()) {
      cur.push_back(opts[++i]);
      have = true;
    } else if (std::isspace(static_cast<unsigned char>(c))) {
      if (have) out.push_back(std::move(cur));
      cur.clear();
      have = false;
    } else {
      cur.push_back(c);
      have = true;
    }
  }
  if (have) out.push_back(std::move(cur));
  return out;
}

// "-c name=value" and "--name=value" pairs from "options".
bool ParseOptions(std::string_view opts, SessionParams* params, std::string* error) {
  std::vector<std::string> words = SplitOptions(opts);
  for (size_t i = 0; i < words.size(); ++i) {
    std::string_view w = words[i];
    std::string_view setting;
    if (w == "-c" && i + 1 < words.size()) {
      setting = words[++i];
    } else if (StartsWith(w, "-c") && w.size() > 2) {
      setting = w.substr(2);
    } else if (StartsWith(w, "--")) {
      setting = w.substr(2);
    } else {
      *error = StrCat("unsupported startup option \"", w, "\"");
      return false;
    }
    size_t eq = setting.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      *error = StrCat("invalid startup option \"", setting, "\"");
      return false;
    }
    std::string name(setting.substr(0, eq));
    // PostgreSQL accepts dashes for underscores in option names.
    for (char& c : name) c = c == '-' ? '_' : c;
    params->Set(name, setting.substr(eq + 1));
  }
  return true;
}

}  // namespace

size_t ClientSession::ProcessStartup(std::string_view data) {
  p::StartupDecodeResult r = p::DecodeStartupPacket(data);
  switch (r.kind) {
    case p::StartupKind::kNeedMore:
      return 0;
    case p::StartupKind::kError:
      Fatal(p::sqlstate::kProtocolViolation, StrCat("invalid startup packet: ", r.error.message()));
      return data.size();
    case p::StartupKind::kDirectTls: {
      TlsContext* tls = env_->client_tls();
      if (tls_ || tls == nullptr || env_->config().tls.mode == TlsMode::kDisable) {
        Close("direct TLS not enabled");
        return data.size();
      }
      // Everything read so far is ClientHello ciphertext; hand it to OpenSSL
      // once this read callback has returned.
      direct_tls_ = true;
      login_scratch().direct_tls_hello.assign(data);
      TransitionTo(State::kTlsHandshake);
      return data.size();
    }
    case p::StartupKind::kPacket:
      break;
  }
  bool stop = false;
  HandleStartupMessage(r.frame.body, &stop);
  if (stop) return data.size();
  if (state_ == State::kTlsHandshake && r.consumed < data.size()) {
    // CVE-2021-23214: bytes after SSLRequest arrived before encryption started;
    // an attacker in the middle could have injected them. Never process them.
    Fatal(p::sqlstate::kProtocolViolation, "received unencrypted data after SSL request");
    return data.size();
  }
  return r.consumed;
}

void ClientSession::HandleStartupMessage(std::string_view body, bool* stop) {
  absl::StatusOr<p::StartupPacket> pkt = p::ParseStartupPacket(body);
  if (!pkt.ok()) {
    Fatal(p::sqlstate::kProtocolViolation,
          StrCat("invalid startup packet: ", pkt.status().message()));
    *stop = true;
    return;
  }
  const Config& cfg = env_->config();
  switch (pkt->kind) {
    case p::StartupPacketKind::kCancel:
      env_->HandleCancel(pkt->cancel.pid, pkt->cancel.secret);
      Close("cancel request");
      *stop = true;
      return;
    case p::StartupPacketKind::kGssEncRequest:
      if (tls_ || gssenc_answered_) {
        Fatal(p::sqlstate::kProtocolViolation, "unexpected GSSENCRequest");
        *stop = true;
        return;
      }
      gssenc_answered_ = true;
      stream_->Write("N");
      stream_->Flush();
      return;
    case p::StartupPacketKind::kSslRequest: {
      if (tls_) {
        Fatal(p::sqlstate::kProtocolViolation, "SSLRequest over an encrypted connection");
        *stop = true;
        return;
      }
      TlsContext* tls = env_->client_tls();
      if (tls == nullptr || cfg.tls.mode == TlsMode::kDisable) {
        stream_->Write("N");
        stream_->Flush();
        return;
      }
      stream_->Write("S");
      stream_->Flush();
      TransitionTo(State::kTlsHandshake);
      return;
    }
    case p::StartupPacketKind::kStartup:
      break;
  }

  if (refuse_too_many_) {
    // Accepted over a full pre-auth budget; answered only now, like
    // PostgreSQL, so the client has sent what it had and reads the answer.
    Fatal(p::sqlstate::kTooManyConnections, "sorry, too many clients already");
    *stop = true;
    return;
  }
  const p::StartupMessage& sm = pkt->startup;
  std::vector<std::string_view> unsupported;
  std::string options;
  for (const auto& [name, value] : sm.params) {
    if (name == "user") {
      user_name_.assign(value);
    } else if (name == "database") {
      database_.assign(value);
    } else if (name == "options") {
      options.assign(value);
    } else if (StartsWith(name, "_pq_.")) {
      unsupported.push_back(name);
    } else if (name == "replication") {
      if (!EqualsIgnoreCase(value, "false") && !EqualsIgnoreCase(value, "off") && value != "0") {
        Fatal(p::sqlstate::kFeatureNotSupported, "pgregion does not proxy replication connections");
        *stop = true;
        return;
      }
    } else {
      session_.mutable_startup_params().Set(name, value);
    }
  }
  if (sm.minor > 0 || !unsupported.empty()) {
    // Newer clients ask for 3.2+ or send _pq_ options; answer like PostgreSQL 15 does.
    std::string out;
    p::AppendNegotiateProtocolVersion(&out, 0, unsupported);
    stream_->Write(out);
  }
  if (user_name_.empty()) {
    Fatal(p::sqlstate::kInvalidAuthorizationSpecification,
          "no PostgreSQL user name specified in startup packet");
    *stop = true;
    return;
  }
  if (database_.empty()) database_ = user_name_;
  std::string error;
  if (!options.empty() && !ParseOptions(options, &session_.mutable_startup_params(), &error)) {
    Fatal(p::sqlstate::kProtocolViolation, error);
    *stop = true;
    return;
  }
  if (cfg.tls.mode == TlsMode::kRequire && !tls_) {
    Fatal(p::sqlstate::kInvalidAuthorizationSpecification,
          "pgregion requires an encrypted connection (tls.mode = require); connect with "
          "sslmode=require");
    *stop = true;
    return;
  }
  // Connections still logging in have their own budget (and this one is among
  // them): an idle-socket flood must not use up max_client_connections.
  if (env_->authenticated_count() >= cfg.proxy.max_client_connections) {
    env_->metrics().Error(ErrorKind::kClientLimit);
    Fatal(p::sqlstate::kTooManyConnections, "sorry, too many clients already");
    *stop = true;
    return;
  }
  user_ = cfg.FindUser(user_name_);
  std::string cert_hash;
  if (tls_ && env_->client_tls() != nullptr) cert_hash = env_->client_tls()->end_point_hash();
  auth_ = std::make_unique<ClientAuth>(user_, user_name_, env_->VerifierFor(user_),
                                       std::move(cert_hash));
  TransitionTo(State::kAuth);  // the StartupMessage came: the rest of the login timeout
  ClientAuth::Step step = auth_->Begin();
  stream_->Write(step.out);
  stream_->Flush();
  if (step.result == ClientAuth::Result::kOk) OnLoggedIn();
}

void ClientSession::HandleAuthMessage(const p::Frame& frame) {
  if (state_ == State::kAuthFailing) return;  // pipelined after the failed attempt: ignored
  if (frame.type != 'p' || !frame.first || !frame.last) {
    Fatal(p::sqlstate::kProtocolViolation,
          StrCat("expected password response, got message type ", int{frame.type}));
    return;
  }
  ClientAuth::Step step = auth_->OnPasswordMessage(frame.body);
  // A failure's answer is held back (below).
  if (step.result != ClientAuth::Result::kFail) stream_->Write(step.out);
  switch (step.result) {
    case ClientAuth::Result::kContinue:
      stream_->Flush();
      return;
    case ClientAuth::Result::kFail: {
      env_->metrics().Error(ErrorKind::kAuthFailed);
      if (env_->unauth_log().Allow(UnauthEvent::kAuthFailed, uv_now(env_->loop()))) {
        LogWarn("auth_failed").Kv("user", user_name_).Kv("client", peer_);
      }
      // Like PostgreSQL's auth_delay: the answer waits, and the connection
      // keeps its pre-auth slot meanwhile, which bounds how fast passwords
      // can be tried (max_unauthenticated_connections per delay).
      login_scratch().auth_failure.swap(step.out);
      auth_.reset();
      stream_->StopRead();
      if (env_->config().proxy.auth_failure_delay_ms == 0) {
        SendAuthFailure();
      } else {
        TransitionTo(State::kAuthFailing);  // its timer sends the failure
      }
      return;
    }
    case ClientAuth::Result::kOk:
      OnLoggedIn();
      return;
  }
}

void ClientSession::SendAuthFailure() {
  if (login_scratch_ != nullptr) stream_->Write(login_scratch_->auth_failure);
  login_scratch_.reset();
  Close("authentication failed");
}

void ClientSession::Evict() {
  env_->metrics().Error(ErrorKind::kClientLimit);
  if (state_ == State::kTlsHandshake) {
    Close("evicted: too many unauthenticated connections");  // no channel to answer on yet
    return;
  }
  Fatal(p::sqlstate::kTooManyConnections, "sorry, too many clients already");
}

void ClientSession::OnStreamTlsReady() {
  if (state_ != State::kTlsHandshake) return;
  tls_ = true;
  if (direct_tls_) {
    const unsigned char* alpn = nullptr;
    unsigned int alpn_len = 0;
    SSL_get0_alpn_selected(stream_->ssl(), &alpn, &alpn_len);
    if (alpn_len == 0) {
      // PostgreSQL 17 requires ALPN "postgresql" with direct TLS.
      Close("direct TLS without ALPN");
      return;
    }
  }
  TransitionTo(State::kStartup);
}

void ClientSession::OnLoggedIn() {
  auth_.reset();
  login_scratch_.reset();
  env_->OnAuthenticated(this);
  // Logged in: messages up to proxy.max_message_bytes from now on.
  decoder_.set_max_message_bytes(env_->config().proxy.max_message_bytes);
  LogDebug("client_login").Kv("user", user_name_).Kv("database", database_).Kv("client", peer_);
  if (database_ == ConsoleSession::kDatabase) {
    std::string error;
    console_ = env_->OpenConsole(user_, &error);
    if (console_ == nullptr) return Fatal(p::sqlstate::kInvalidAuthorizationSpecification, error);
    env_->RegisterClient(this, &pid_, &secret_);
    stream_->Write(console_->Welcome(pid_, secret_));
    stream_->Flush();
    TransitionTo(State::kIdle);
    return;
  }
  Pool* pool = PoolFor(env_->WelcomeNode());
  if (pool == nullptr && env_->node_count() > 0) {
    // Each distinct set of startup parameters has its own pools (server
    // connections log in with them): a bounded number per database and user.
    Fatal(p::sqlstate::kTooManyConnections,
          StrCat("pgregion: too many distinct sets of startup parameters for database \"",
                 database_, "\" and user \"", user_name_, "\" (at most ",
                 SessionEnv::kMaxLoginVariants, "); send the same options as other clients"));
    return;
  }
  if (pool == nullptr) {
    Fatal(p::sqlstate::kConnectionFailure, "pgregion: no node configured");
    return;
  }
  if (pool->has_params()) {
    SendWelcome(pool);
    return;
  }
  // The client must see the backend's real server_version, encoding and
  // defaults: learn them from a first login to the node.
  TransitionTo(State::kLoginWait);
  waiting_pool_ = pool;
  pool->Acquire(this);
}

void ClientSession::SendWelcome(Pool* pool) {
  // Session defaults from the config (user, then database, then [routing]);
  // startup options (-c pgregion.route=...) override them.
  const Config& config = env_->config();
  std::optional<routing::StatementHints::Route> route =
      routing::StatementHints::ParseRoute(config.DefaultRoute(user_, database_));
  default_route_ = routing::RoutePreference::kAuto;
  if (route == routing::StatementHints::Route::kPrimary) {
    default_route_ = routing::RoutePreference::kPrimary;
  } else if (route == routing::StatementHints::Route::kReplica) {
    default_route_ = routing::RoutePreference::kReplica;
  }
  route_pref_ = default_route_;
  default_consistency_ = std::string(config.DefaultConsistency(user_, database_));
  SetConsistency(default_consistency_);
  default_optimistic_ = optimistic_enabled_ = config.DefaultOptimistic(user_, database_);
  TakeProxySettings(&session_.mutable_startup_params());
  // What the client sees: the backend's defaults, overridden by its own startup values.
  session_.Login(pool->params(), session_.startup_params());
  std::string out;
  for (const SessionParams::Entry& e : pool->params().entries()) {
    p::AppendParameterStatus(&out, e.name, *session_.params().Get(e.name));
  }
  env_->RegisterClient(this, &pid_, &secret_);
  p::AppendBackendKeyData(&out, pid_, secret_);
  p::AppendReadyForQuery(&out, 'I');
  stream_->Write(out);
  stream_->Flush();
  TransitionTo(State::kIdle);
}

}  // namespace pgregion::proxy
