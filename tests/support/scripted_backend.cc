#include "tests/support/scripted_backend.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstring>

#include "protocol/md5.h"
#include "protocol/message_builder.h"
#include "protocol/messages.h"

namespace pgregion::testing {

namespace p = ::pgregion::protocol;

// ---- loop helpers

TestLoop::TestLoop() { uv_loop_init(&loop_); }

TestLoop::~TestLoop() {
  // Objects close their handles in their destructors or Close(); their close
  // callbacks (which free them) run here. Bounded: a handle nobody closed is
  // closed without a callback at the end (and shows as a leak under ASan).
  for (int i = 0; i < 1000; ++i) {
    uv_run(&loop_, UV_RUN_NOWAIT);
    if (uv_loop_close(&loop_) == 0) return;
  }
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void*) {
        if (!uv_is_closing(h)) uv_close(h, nullptr);
      },
      nullptr);
  for (int i = 0; i < 100 && uv_loop_close(&loop_) != 0; ++i) uv_run(&loop_, UV_RUN_NOWAIT);
}

namespace {
struct Ticker {
  uv_timer_t timer;
};
}  // namespace

bool RunUntil(uv_loop_t* loop, const std::function<bool()>& done, uint64_t timeout_ms) {
  // A repeating 1 ms timer keeps UV_RUN_ONCE from blocking past the deadline.
  auto* tick = new Ticker;
  uv_timer_init(loop, &tick->timer);
  uv_timer_start(
      &tick->timer, [](uv_timer_t*) {}, 1, 1);
  uv_update_time(loop);
  const uint64_t deadline = uv_now(loop) + timeout_ms;
  bool ok = done();
  while (!ok && uv_now(loop) < deadline) {
    uv_run(loop, UV_RUN_ONCE);
    ok = done();
  }
  uv_close(reinterpret_cast<uv_handle_t*>(&tick->timer),
           [](uv_handle_t* h) { delete reinterpret_cast<Ticker*>(h); });
  return ok;
}

void RunFor(uv_loop_t* loop, uint64_t ms) {
  (void)RunUntil(
      loop, [] { return false; }, ms);
}

uint16_t UnusedPort() {
  // Bind an ephemeral port and close it again: nothing listens there afterwards.
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  uint16_t port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0) {
    port = ntohs(a.sin_port);
  }
  close(fd);
  return port;
}

// ---- replies

Reply Reply::Rows(std::vector<std::string> columns, std::vector<std::vector<std::string>> rows,
                  std::string tag) {
  Reply r;
  r.kind = Kind::kResult;
  r.columns = std::move(columns);
  r.rows = std::move(rows);
  r.tag = std::move(tag);
  return r;
}

Reply Reply::Error(std::string sqlstate, std::string message) {
  Reply r;
  r.kind = Kind::kError;
  r.sqlstate = std::move(sqlstate);
  r.message = std::move(message);
  return r;
}

Reply Reply::Raw(std::string bytes) {
  Reply r;
  r.kind = Kind::kRaw;
  r.raw = std::move(bytes);
  return r;
}

// ---- recorded messages

std::vector<std::string> BackendConnection::Queries() const {
  std::vector<std::string> out;
  for (const ReceivedMessage& m : received) {
    if (m.type == 'Q') out.push_back(m.text);
  }
  return out;
}

std::vector<std::string> BackendConnection::Statements() const {
  std::vector<std::string> out;
  for (const ReceivedMessage& m : received) {
    if (m.type == 'Q' || m.type == 'E') out.push_back(m.text);
  }
  return out;
}

size_t BackendConnection::Count(char type) const {
  return static_cast<size_t>(std::count_if(
      received.begin(), received.end(), [&](const ReceivedMessage& m) { return m.type == type; }));
}

size_t BackendConnection::CountStatement(std::string_view text) const {
  size_t n = 0;
  for (const std::string& s : Statements()) n += s == text ? 1 : 0;
  return n;
}

// ---- sockets

struct Listener {
  uv_tcp_t tcp;
  ScriptedBackend* backend;
};

struct Socket {
  uv_tcp_t tcp;
  ScriptedBackend* backend;  // null once the backend is gone
  BackendConnection* conn;
  bool closing = false;
};

namespace {
struct WriteReq {
  uv_write_t req;
  std::string data;
};

// The first word of `text`, upper case ("" for none).
std::string FirstWord(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (std::isspace(static_cast<unsigned char>(text[i])) || text[i] == '('))
    ++i;
  std::string w;
  while (i < text.size() && std::isalpha(static_cast<unsigned char>(text[i]))) {
    w.push_back(static_cast<char>(std::toupper(static_cast<unsigned char>(text[i]))));
    ++i;
  }
  return w;
}

std::string CString(std::string_view body, size_t* off) {
  size_t nul = body.find('\0', *off);
  if (nul == std::string_view::npos) nul = body.size();
  std::string s(body.substr(*off, nul - *off));
  *off = nul + 1;
  return s;
}
}  // namespace

ScriptedBackend::ScriptedBackend(uv_loop_t* loop, Options options)
    : loop_(loop), options_(std::move(options)) {
  listener_ = new Listener;
  listener_->backend = this;
  uv_tcp_init(loop, &listener_->tcp);
  listener_->tcp.data = listener_;
  uv_ip4_addr("127.0.0.1", 0, &addr_);
  uv_tcp_bind(&listener_->tcp, reinterpret_cast<const sockaddr*>(&addr_), 0);
  int len = sizeof(addr_);
  uv_tcp_getsockname(&listener_->tcp, reinterpret_cast<sockaddr*>(&addr_), &len);
  port_ = ntohs(addr_.sin_port);
  uv_listen(reinterpret_cast<uv_stream_t*>(&listener_->tcp), 64, OnConnection);
}

ScriptedBackend::~ScriptedBackend() {
  StopListening();
  for (auto& conn : conns_) {
    if (conn->socket == nullptr) continue;
    conn->socket->backend = nullptr;
    CloseConnection(*conn, /*reset=*/false);
  }
}

void ScriptedBackend::StopListening() {
  if (listener_ == nullptr) return;
  uv_close(reinterpret_cast<uv_handle_t*>(&listener_->tcp),
           [](uv_handle_t* h) { delete static_cast<Listener*>(h->data); });
  listener_ = nullptr;
}

size_t ScriptedBackend::open_count() const {
  return static_cast<size_t>(
      std::count_if(conns_.begin(), conns_.end(), [](const auto& c) { return !c->closed; }));
}

std::vector<std::string> ScriptedBackend::AllStatements() const {
  std::vector<std::string> out;
  for (const auto& c : conns_) {
    for (std::string& s : c->Statements()) out.push_back(std::move(s));
  }
  return out;
}

size_t ScriptedBackend::CountStatement(std::string_view text) const {
  size_t n = 0;
  for (const auto& c : conns_) n += c->CountStatement(text);
  return n;
}

void ScriptedBackend::OnConnection(uv_stream_t* server, int status) {
  auto* listener = static_cast<Listener*>(server->data);
  ScriptedBackend* self = listener->backend;
  if (status < 0) return;
  auto* sock = new Socket;
  uv_tcp_init(self->loop_, &sock->tcp);
  sock->tcp.data = sock;
  sock->backend = self;
  if (uv_accept(server, reinterpret_cast<uv_stream_t*>(&sock->tcp)) != 0) {
    uv_close(reinterpret_cast<uv_handle_t*>(&sock->tcp),
             [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); });
    return;
  }
  auto conn = std::make_unique<BackendConnection>();
  conn->id = static_cast<int>(self->conns_.size());
  conn->pid = 10000 + static_cast<uint32_t>(conn->id);
  conn->socket = sock;
  sock->conn = conn.get();
  self->conns_.push_back(std::move(conn));
  uv_read_start(
      reinterpret_cast<uv_stream_t*>(&sock->tcp),
      [](uv_handle_t*, size_t suggested, uv_buf_t* buf) {
        buf->base = static_cast<char*>(malloc(suggested));
        buf->len = suggested;
      },
      [](uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
        auto* sock = static_cast<Socket*>(s->data);
        std::string data;
        if (nread > 0) data.assign(buf->base, static_cast<size_t>(nread));
        free(buf->base);
        if (sock->backend == nullptr || sock->closing) return;
        if (nread < 0) {
          sock->backend->CloseConnection(*sock->conn, /*reset=*/false);
          return;
        }
        if (nread > 0) sock->backend->OnRead(*sock->conn, data);
      });
}

void ScriptedBackend::Send(BackendConnection& conn, std::string bytes) {
  if (bytes.empty() || conn.socket == nullptr) return;
  if (hold_all_ || conn.holding) {
    conn.held += bytes;
    return;
  }
  auto* req = new WriteReq;
  req->data = std::move(bytes);
  uv_buf_t buf = uv_buf_init(req->data.data(), static_cast<unsigned>(req->data.size()));
  req->req.data = req;
  int rc = uv_write(&req->req, reinterpret_cast<uv_stream_t*>(&conn.socket->tcp), &buf, 1,
                    [](uv_write_t* r, int) { delete static_cast<WriteReq*>(r->data); });
  if (rc != 0) delete req;
}

void ScriptedBackend::ReleaseHeld(BackendConnection* conn) {
  conn->holding = false;
  std::string held;
  held.swap(conn->held);
  Send(*conn, std::move(held));
}

const BackendConnection* ScriptedBackend::CancelledConnection(size_t i) const {
  if (i >= cancels_.size()) return nullptr;
  const auto [pid, secret] = cancels_[i];
  for (const auto& c : conns_) {
    if (c->pid == pid && secret == 0x5ec2e7u + c->pid) return c.get();  // see SendWelcome
  }
  return nullptr;
}

void ScriptedBackend::Drop(BackendConnection* conn) { CloseConnection(*conn, /*reset=*/true); }

void ScriptedBackend::CloseConnection(BackendConnection& conn, bool reset) {
  conn.closed = true;
  Socket* sock = conn.socket;
  if (sock == nullptr || sock->closing) return;
  sock->closing = true;
  conn.socket = nullptr;
  auto on_closed = [](uv_handle_t* h) { delete static_cast<Socket*>(h->data); };
  if (reset) {
    uv_tcp_close_reset(&sock->tcp, on_closed);  // RST: a crashed backend
  } else {
    uv_close(reinterpret_cast<uv_handle_t*>(&sock->tcp), on_closed);
  }
}

void ScriptedBackend::Fail(BackendConnection& conn, std::string_view sqlstate,
                           std::string_view message) {
  std::string out;
  p::AppendErrorResponse(&out, {.severity = "FATAL", .sqlstate = sqlstate, .message = message});
  Send(conn, std::move(out));
  // Closed after the write (libuv runs queued writes before the close).
  CloseConnection(conn, /*reset=*/false);
}

void ScriptedBackend::OnRead(BackendConnection& conn, std::string_view data) {
  conn.in.append(data);
  if (!conn.logged_in && conn.auth_step == 0) {
    if (!HandleStartup(conn)) return;
  }
  std::string out;
  size_t off = 0;
  while (conn.socket != nullptr && off < conn.in.size()) {
    p::DecodeResult r = conn.decoder.Next(std::string_view(conn.in).substr(off));
    if (r.status == p::DecodeStatus::kNeedMore) break;
    if (r.status == p::DecodeStatus::kError) {
      Fail(conn, "08P01", "invalid message");
      return;
    }
    off += r.consumed;
    if (!conn.logged_in) {
      if (!HandleAuth(conn, r.frame)) return;
      continue;
    }
    if (!HandleMessage(conn, r.frame, &out)) {
      Send(conn, std::move(out));
      return;
    }
  }
  conn.in.erase(0, off);
  Send(conn, std::move(out));
}

bool ScriptedBackend::HandleStartup(BackendConnection& conn) {
  while (true) {
    p::StartupDecodeResult r = p::DecodeStartupPacket(conn.in);
    if (r.kind == p::StartupKind::kNeedMore) return false;
    if (r.kind != p::StartupKind::kPacket) {
      Fail(conn, "08P01", "invalid startup packet");
      return false;
    }
    absl::StatusOr<p::StartupPacket> pkt = p::ParseStartupPacket(r.frame.body);
    conn.in.erase(0, r.consumed);
    if (!pkt.ok()) {
      Fail(conn, "08P01", "invalid startup packet");
      return false;
    }
    if (pkt->kind == p::StartupPacketKind::kSslRequest ||
        pkt->kind == p::StartupPacketKind::kGssEncRequest) {
      Send(conn, "N");
      continue;
    }
    if (pkt->kind == p::StartupPacketKind::kCancel) {
      cancels_.emplace_back(pkt->cancel.pid, pkt->cancel.secret);
    }
    if (pkt->kind != p::StartupPacketKind::kStartup) {
      CloseConnection(conn, false);
      return false;
    }
    for (const auto& [name, value] : pkt->startup.params) {
      conn.startup.emplace_back(name, value);
      if (name == "user") conn.user = value;
      if (name == "database") conn.database = value;
    }
    break;
  }
  std::string out;
  conn.auth_step = 1;
  switch (options_.auth) {
    case Auth::kTrust:
      SendWelcome(conn, &out);
      break;
    case Auth::kCleartext:
      p::MessageWriter(&out).Begin('R').AddInt32(3).End();
      break;
    case Auth::kMd5:
      conn.md5_salt = std::string("\x01\x02\x03\x04", 4);
      p::AppendAuthenticationMd5Password(&out, conn.md5_salt);
      break;
    case Auth::kScram:
      p::AppendAuthenticationSasl(&out, {p::kScramSha256});
      break;
    case Auth::kRefuse:
      Fail(conn, options_.refuse_sqlstate, options_.refuse_message);
      return false;
  }
  Send(conn, std::move(out));
  return conn.socket != nullptr;
}

bool ScriptedBackend::HandleAuth(BackendConnection& conn, const p::Frame& frame) {
  if (frame.type != 'p') {
    Fail(conn, "08P01", "expected a password message");
    return false;
  }
  std::string out;
  switch (options_.auth) {
    case Auth::kCleartext:
    case Auth::kMd5: {
      absl::StatusOr<std::string_view> pw = p::ParsePasswordMessage(frame.body);
      std::string expected =
          options_.auth == Auth::kCleartext
              ? options_.password
              : p::Md5Response(p::Md5StoredPassword(conn.user, options_.password), conn.md5_salt);
      if (!pw.ok() || *pw != expected) {
        Fail(conn, "28P01", "password authentication failed");
        return false;
      }
      SendWelcome(conn, &out);
      break;
    }
    case Auth::kScram: {
      if (conn.scram == nullptr) {
        absl::StatusOr<p::SaslInitialResponse> first = p::ParseSaslInitialResponse(frame.body);
        if (!first.ok()) {
          Fail(conn, "08P01", "malformed SASLInitialResponse");
          return false;
        }
        conn.scram = std::make_unique<p::ScramServer>(
            p::MakeScramVerifier(options_.password, "scripted-salt", p::kDefaultScramIterations),
            "scriptedservernonce", "");
        absl::StatusOr<std::string> server_first =
            conn.scram->HandleClientFirst(first->mechanism, first->data);
        if (!server_first.ok()) {
          Fail(conn, "08P01", "bad SCRAM client-first");
          return false;
        }
        p::AppendAuthenticationSaslContinue(&out, *server_first);
      } else {
        absl::StatusOr<std::string> final_msg = conn.scram->HandleClientFinal(frame.body);
        conn.scram.reset();
        if (!final_msg.ok()) {
          Fail(conn, "28P01", "password authentication failed");
          return false;
        }
        p::AppendAuthenticationSaslFinal(&out, *final_msg);
        SendWelcome(conn, &out);
      }
      break;
    }
    case Auth::kTrust:
    case Auth::kRefuse:
      Fail(conn, "08P01", "unexpected password message");
      return false;
  }
  Send(conn, std::move(out));
  return true;
}

void ScriptedBackend::SendWelcome(BackendConnection& conn, std::string* out) {
  p::AppendAuthenticationOk(out);
  std::string app;
  for (const auto& [name, value] : conn.startup) {
    if (name == "application_name") app = value;
  }
  const std::pair<std::string_view, std::string_view> params[] = {
      {"application_name", app},
      {"client_encoding", "UTF8"},
      {"DateStyle", "ISO, MDY"},
      {"default_transaction_read_only", "off"},
      {"in_hot_standby", options_.replica ? "on" : "off"},
      {"integer_datetimes", "on"},
      {"IntervalStyle", "postgres"},
      {"is_superuser", "on"},
      {"server_encoding", "UTF8"},
      {"server_version", "15.4 (scripted)"},
      {"session_authorization", conn.user},
      {"standard_conforming_strings", "on"},
      {"TimeZone", "UTC"},
  };
  for (const auto& [name, value] : params) p::AppendParameterStatus(out, name, value);
  p::AppendBackendKeyData(out, conn.pid, 0x5ec2e7u + conn.pid);
  p::AppendReadyForQuery(out, 'I');
  conn.logged_in = true;
  conn.tx_status = 'I';
}

void ScriptedBackend::AppendDefault(BackendConnection& conn, const Statement& st,
                                    bool describe_rows, std::string* out) const {
  if (st.via == 'F') {
    // FunctionCallResponse: the LSN probe's answers (text), or NULL.
    constexpr uint32_t kCurrentSettingOid = 2077;
    constexpr uint32_t kFlushLsnOid = 3330;
    const std::string& value = st.function_oid == kCurrentSettingOid ? options_.synchronous_commit
                               : st.function_oid == kFlushLsnOid && !options_.flush_lsn.empty()
                                   ? options_.flush_lsn
                                   : options_.lsn;
    p::MessageWriter w(out);
    w.Begin('V');
    if (value.empty()) {
      w.AddInt32(0xffffffffu);
    } else {
      w.AddInt32(static_cast<uint32_t>(value.size())).AddBytes(value);
    }
    w.End();
    return;
  }
  const std::string word = FirstWord(st.text);
  char& tx = conn.tx_status;
  if (tx == 'E' && word != "ROLLBACK" && word != "COMMIT" && word != "END" && word != "ABORT") {
    p::AppendErrorResponse(out, {.sqlstate = "25P02",
                                 .message = "current transaction is aborted, commands ignored "
                                            "until end of transaction block"});
    return;
  }
  if (word == "BEGIN" || word == "START") {
    tx = 'T';
    p::AppendCommandComplete(out, word == "BEGIN" ? "BEGIN" : "START TRANSACTION");
  } else if (word == "COMMIT" || word == "END") {
    p::AppendCommandComplete(out, tx == 'E' ? "ROLLBACK" : "COMMIT");
    tx = 'I';
  } else if (word == "ROLLBACK" || word == "ABORT") {
    p::AppendCommandComplete(out, "ROLLBACK");
    tx = 'I';
  } else if (word == "SELECT" || word == "SHOW" || word == "VALUES") {
    if (describe_rows) p::AppendRowDescription(out, {"?column?"});
    p::AppendDataRow(out, {options_.name});
    p::AppendCommandComplete(out, "SELECT 1");
  } else if (word == "INSERT") {
    p::AppendCommandComplete(out, "INSERT 0 1");
  } else if (word == "UPDATE" || word == "DELETE") {
    p::AppendCommandComplete(out, word + " 1");
  } else if (word == "CREATE") {
    p::AppendCommandComplete(out, "CREATE TABLE");
  } else if (word == "DISCARD") {
    p::AppendCommandComplete(out, "DISCARD ALL");
  } else if (word.empty()) {
    p::AppendEmptyQueryResponse(out);
  } else {
    p::AppendCommandComplete(out, word);
  }
}

bool ScriptedBackend::Run(BackendConnection& conn, const Statement& st, bool describe_rows,
                          std::string* out, std::string* after_ready) {
  Reply reply = script_ ? script_(conn, st) : Reply::Default();
  after_ready->append(reply.after_ready);
  switch (reply.kind) {
    case Reply::Kind::kDrop: {
      // Answers to earlier messages of the same read still go out first (a
      // reset could discard them at the peer: then the close is a FIN).
      const bool answered = !out->empty();
      Send(conn, std::move(*out));
      out->clear();
      CloseConnection(conn, /*reset=*/!answered);
      return false;
    }
    case Reply::Kind::kHold:
      // Everything up to here goes now; this answer and what follows wait.
      Send(conn, std::move(*out));
      out->clear();
      if (!reply.raw.empty()) {
        out->append(reply.raw);
        Send(conn, std::move(*out));
        out->clear();
        conn.holding = true;
        p::AppendCommandComplete(out, reply.tag);
        return true;
      }
      conn.holding = true;
      AppendDefault(conn, st, describe_rows, out);
      return true;
    case Reply::Kind::kDefault:
      AppendDefault(conn, st, describe_rows, out);
      return true;
    case Reply::Kind::kResult:
      if (describe_rows && !reply.columns.empty()) {
        std::vector<std::string_view> cols(reply.columns.begin(), reply.columns.end());
        p::AppendRowDescription(out, cols);
      }
      for (const auto& row : reply.rows) {
        std::vector<std::string_view> values(row.begin(), row.end());
        p::AppendDataRow(out, values);
      }
      p::AppendCommandComplete(out, reply.tag);
      return true;
    case Reply::Kind::kError:
      p::AppendErrorResponse(out, {.sqlstate = reply.sqlstate, .message = reply.message});
      if (conn.tx_status == 'T') conn.tx_status = 'E';
      return true;
    case Reply::Kind::kRaw:
      out->append(reply.raw);
      return true;
  }
  return true;
}

namespace {
// True when the last message in `out` (appended since `from`) is an ErrorResponse.
bool EndsWithError(const std::string& out, size_t from) {
  size_t off = from;
  char last = 0;
  while (off + 5 <= out.size()) {
    last = out[off];
    off += 1 + p::ReadUint32(std::string_view(out).substr(off + 1));
  }
  return last == 'E';
}
}  // namespace

bool ScriptedBackend::HandleMessage(BackendConnection& conn, const p::Frame& frame,
                                    std::string* out) {
  ReceivedMessage msg{frame.type, std::string(frame.body), ""};
  size_t off = 0;
  std::string after_ready;
  switch (frame.type) {
    case 'Q':
      msg.text = CString(frame.body, &off);
      conn.received.push_back(msg);
      if (!Run(conn, {'Q', msg.text, 0}, true, out, &after_ready)) return false;
      p::AppendReadyForQuery(out, conn.tx_status);
      out->append(after_ready);
      return true;
    case 'X':
      conn.received.push_back(msg);
      CloseConnection(conn, false);
      return false;
    case 'S':
      conn.received.push_back(msg);
      conn.skipping = false;
      p::AppendReadyForQuery(out, conn.tx_status);
      return true;
    case 'H':
      conn.received.push_back(msg);
      return true;
    default:
      break;
  }
  if (frame.type == 'F') {
    const uint32_t oid = frame.body.size() >= 4 ? p::ReadUint32(frame.body) : 0;
    msg.text = "FunctionCall(" + std::to_string(oid) + ")";
    conn.received.push_back(msg);
    if (!Run(conn, {'F', msg.text, oid}, false, out, &after_ready)) return false;
    p::AppendReadyForQuery(out, conn.tx_status);
    out->append(after_ready);
    return true;
  }
  if (conn.skipping) {  // after an error the server ignores everything up to Sync
    conn.received.push_back(msg);
    return true;
  }
  switch (frame.type) {
    case 'P': {
      std::string name = CString(frame.body, &off);
      msg.text = CString(frame.body, &off);
      conn.statements[name] = msg.text;
      conn.received.push_back(msg);
      p::MessageWriter(out).Begin('1').End();
      return true;
    }
    case 'B': {
      std::string portal = CString(frame.body, &off);
      std::string stmt = CString(frame.body, &off);
      auto it = conn.statements.find(stmt);
      msg.text = it != conn.statements.end() ? it->second : "";
      conn.received.push_back(msg);
      if (it == conn.statements.end()) {
        p::AppendErrorResponse(
            out,
            {.sqlstate = "26000", .message = "prepared statement \"" + stmt + "\" does not exist"});
        conn.skipping = true;
        return true;
      }
      conn.portals[portal] = it->second;
      p::MessageWriter(out).Begin('2').End();
      return true;
    }
    case 'D': {
      char target = frame.body.empty() ? 'P' : frame.body[0];
      off = 1;
      std::string name = CString(frame.body, &off);
      const auto& names = target == 'S' ? conn.statements : conn.portals;
      auto it = names.find(name);
      msg.text = it != names.end() ? it->second : "";
      conn.received.push_back(msg);
      if (target == 'S') p::MessageWriter(out).Begin('t').AddInt16(0).End();
      const std::string word = FirstWord(msg.text);
      if (word == "SELECT" || word == "SHOW" || word == "VALUES") {
        p::AppendRowDescription(out, {"?column?"});
      } else {
        p::MessageWriter(out).Begin('n').End();
      }
      return true;
    }
    case 'E': {
      std::string portal = CString(frame.body, &off);
      auto it = conn.portals.find(portal);
      msg.text = it != conn.portals.end() ? it->second : "";
      conn.received.push_back(msg);
      size_t from = out->size();
      if (!Run(conn, {'E', msg.text, 0}, false, out, &after_ready)) return false;
      if (EndsWithError(*out, from)) conn.skipping = true;
      out->append(after_ready);  // (with the extended protocol: right after the Execute)
      return true;
    }
    case 'C': {
      char target = frame.body.empty() ? 'S' : frame.body[0];
      off = 1;
      std::string name = CString(frame.body, &off);
      (target == 'S' ? conn.statements : conn.portals).erase(name);
      conn.received.push_back(msg);
      p::MessageWriter(out).Begin('3').End();
      return true;
    }
    default:
      conn.received.push_back(msg);
      return true;
  }
}

}  // namespace pgregion::testing
