#include "proxy/backend/pq_async_connection.h"

#include <string_view>

#include "protocol/str_util.h"

namespace pgregion::proxy {

std::string OneLine(const char* text) {
  std::string out;
  bool space = false;
  for (char c : std::string_view(text != nullptr ? text : "")) {
    if (c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      space = true;
      continue;
    }
    if (space && !out.empty()) out += ' ';
    space = false;
    out += c;
  }
  return out;
}

// ---------------------------------------------------------------- SocketWatch

PqAsyncConnection::SocketWatch* PqAsyncConnection::SocketWatch::Create(uv_loop_t* loop, int fd,
                                                                       PqAsyncConnection* owner) {
  auto* w = new SocketWatch(fd, owner);
  if (uv_poll_init_socket(loop, &w->poll_, fd) != 0) {
    delete w;
    return nullptr;
  }
  return w;
}

void PqAsyncConnection::SocketWatch::Close() {
  owner_ = nullptr;
  uv_close(reinterpret_cast<uv_handle_t*>(&poll_),
           [](uv_handle_t* h) { delete static_cast<SocketWatch*>(h->data); });
}

void PqAsyncConnection::SocketWatch::OnPoll(uv_poll_t* handle, int status, int events) {
  auto* self = static_cast<SocketWatch*>(handle->data);
  if (self->owner_ != nullptr) self->owner_->OnSocket(status, events);
}

// ---------------------------------------------------------------- PqAsyncConnection

void PqAsyncConnection::Start(const std::vector<std::pair<std::string, std::string>>& params,
                              Notices notices) {
  Drop();
  fatal_.clear();
  std::vector<const char*> keys;
  std::vector<const char*> values;
  for (const auto& [k, v] : params) {
    keys.push_back(k.c_str());
    values.push_back(v.c_str());
  }
  keys.push_back(nullptr);
  values.push_back(nullptr);
  conn_ = PQconnectStartParams(keys.data(), values.data(), /*expand_dbname=*/0);
  if (conn_ == nullptr) {
    Fail("out of memory");
    return;
  }
  if (notices == Notices::kToHandler) PQsetNoticeReceiver(conn_, OnNotice, this);
  if (PQstatus(conn_) == CONNECTION_BAD) {
    Fail(StrCat("connect: ", Error()));
    return;
  }
  phase_ = Phase::kConnecting;
  // Before the first PQconnectPoll, libpq's documentation says: wait to write.
  WatchOrFail(UV_WRITABLE);
}

void PqAsyncConnection::SendQuery(const char* sql) {
  if (watch_ != nullptr) watch_->Stop();  // libpq may drop the connection in there
  if (PQsendQuery(conn_, sql) == 0) {
    Fail(StrCat("send: ", Error()));
    return;
  }
  results_per_turn_ = 0;
  phase_ = Phase::kBusy;
  FlushAndWatch();
}

void PqAsyncConnection::SendRowsQuery(const char* sql) {
  if (watch_ != nullptr) watch_->Stop();
  if (PQsendQueryParams(conn_, sql, 0, nullptr, nullptr, nullptr, nullptr, 0) == 0) {
    Fail(StrCat("send: ", Error()));
    return;
  }
  if (PQsetSingleRowMode(conn_) == 0) {
    Fail("send: libpq refused single-row mode");
    return;
  }
  results_per_turn_ = kRowsPerTurn;
  phase_ = Phase::kBusy;
  FlushAndWatch();
}

// The watch goes first: libuv must forget the descriptor before libpq closes it.
void PqAsyncConnection::Drop() {
  if (watch_ != nullptr) {
    watch_->Close();
    watch_ = nullptr;
  }
  if (conn_ != nullptr) {
    PQfinish(conn_);
    conn_ = nullptr;
  }
  phase_ = Phase::kNone;
}

void PqAsyncConnection::OnNotice(void* arg, const PGresult* notice) {
  auto* self = static_cast<PqAsyncConnection*>(arg);
  const char* severity = PQresultErrorField(notice, PG_DIAG_SEVERITY_NONLOCALIZED);
  if (severity != nullptr &&
      (std::string_view(severity) == "FATAL" || std::string_view(severity) == "PANIC")) {
    const char* state = PQresultErrorField(notice, PG_DIAG_SQLSTATE);
    self->fatal_ = StrCat(state != nullptr ? state : "", " ",
                          OneLine(PQresultErrorField(notice, PG_DIAG_MESSAGE_PRIMARY)));
  }
  self->handler_->OnPqNotice(notice);
}

void PqAsyncConnection::OnSocket(int status, int events) {
  event_ns_ = uv_hrtime();
  if (watch_ != nullptr) watch_->Stop();
  switch (phase_) {
    case Phase::kConnecting:
      ContinueConnect();
      return;
    case Phase::kBusy:
      ContinueQuery(status < 0 ? UV_READABLE | UV_WRITABLE : events);
      return;
    case Phase::kIdle:
      OnIdleInput();
      return;
    case Phase::kNone:
      return;
  }
}

void PqAsyncConnection::ContinueConnect() {
  switch (PQconnectPoll(conn_)) {
    case PGRES_POLLING_READING:
      WatchOrFail(UV_READABLE);
      return;
    case PGRES_POLLING_WRITING:
      WatchOrFail(UV_WRITABLE);
      return;
    case PGRES_POLLING_OK:
      if (PQsetnonblocking(conn_, 1) != 0) {
        Fail("cannot make the connection nonblocking");
        return;
      }
      phase_ = Phase::kIdle;
      handler_->OnPqConnected();
      return;
    case PGRES_POLLING_FAILED:
    case PGRES_POLLING_ACTIVE:  // not returned by PQconnectPoll any more
      Fail(StrCat("connect: ", Error()));
      return;
  }
}

void PqAsyncConnection::ContinueQuery(int events) {
  if ((events & UV_WRITABLE) != 0 && PQflush(conn_) < 0) {
    Fail(StrCat("send: ", Error()));
    return;
  }
  if ((events & UV_READABLE) != 0 && PQconsumeInput(conn_) == 0) {
    Fail(LostText());
    return;
  }
  size_t taken = 0;
  while (PQisBusy(conn_) == 0) {
    if (results_per_turn_ != 0 && taken++ == results_per_turn_) {
      // More rows are buffered (one read can bring tens of thousands): let
      // the loop run other work first. A connected socket is writable, so
      // the watch fires again at the loop's next turn; nothing more is read
      // until the buffered rows are taken (libpq moves what it holds to the
      // front of its buffer on every read).
      WatchOrFail(UV_WRITABLE);
      return;
    }
    PGresult* res = PQgetResult(conn_);
    if (res == nullptr) {
      phase_ = Phase::kIdle;
      handler_->OnPqQueryDone();
      return;
    }
    handler_->OnPqResult(res);
    PQclear(res);
  }
  FlushAndWatch();
}

// Idle: the server closed the connection (shutdown, 57P01, a reset) or sent
// something unprompted (a notice, a parameter change).
void PqAsyncConnection::OnIdleInput() {
  if (PQconsumeInput(conn_) == 0 || PQstatus(conn_) != CONNECTION_OK) {
    std::string cause = LostCause();
    Drop();
    handler_->OnPqIdleLost(std::move(cause));
    return;
  }
  while (PGnotify* n = PQnotifies(conn_)) PQfreemem(n);
  WatchOrFail(UV_READABLE);
}

void PqAsyncConnection::FlushAndWatch() {
  int flushed = PQflush(conn_);
  if (flushed < 0) {
    Fail(StrCat("send: ", Error()));
    return;
  }
  WatchOrFail(flushed == 1 ? UV_READABLE | UV_WRITABLE : UV_READABLE);
}

bool PqAsyncConnection::Watch(int events) {
  int fd = PQsocket(conn_);
  if (watch_ != nullptr && watch_->fd() != fd) {
    watch_->Close();
    watch_ = nullptr;
  }
  if (fd < 0) return false;
  if (watch_ == nullptr) watch_ = SocketWatch::Create(loop_, fd, this);
  return watch_ != nullptr && watch_->Start(events) == 0;
}

void PqAsyncConnection::WatchOrFail(int events) {
  if (Watch(events)) return;
  Fail(PQstatus(conn_) == CONNECTION_OK ? std::string("cannot watch the connection's socket")
                                        : LostText());
}

// The text is taken before the drop: it reads the connection's error message.
void PqAsyncConnection::Fail(std::string why) {
  Drop();
  handler_->OnPqFailed(std::move(why));
}

}  // namespace pgregion::proxy
