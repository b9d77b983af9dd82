// One libpq connection driven by the libuv loop, for the proxy's own short
// queries to a node (health probes, replay polls).
//
// Owns the PGconn and a watch (uv_poll_t) on its socket; it is owned by its
// user, who hears back through a Handler and keeps its own timers, deadlines
// and state. Loop thread only. libpq is used only through its asynchronous API
// on nonblocking connections (PQconnectStartParams/PQconnectPoll, PQsendQuery,
// PQflush, PQconsumeInput, PQisBusy, PQgetResult); with numeric host addresses
// (`hostaddr`) nothing here blocks the loop.
//
// libuv must forget the descriptor (uv_poll_stop) before every libpq call that
// may close or replace the socket: libpq can reconnect under the same number,
// and epoll would otherwise keep watching the old file.
#pragma once

#include <libpq-fe.h>
#include <uv.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace pgregion::proxy {

// libpq's messages span lines ("... failed: Connection refused\n\tIs the server
// running ..."): one log value, whitespace runs folded to one space. Null: "".
std::string OneLine(const char* text);

class PqAsyncConnection {
 public:
  // Every call but OnPqResult and OnPqNotice is the last thing the connection
  // does in that event: from there the handler may Drop(), Start() or
  // SendQuery() again.
  class Handler {
   public:
    virtual ~Handler() = default;
    // Connected and nonblocking. The socket is not watched until the handler
    // calls SendQuery() or WatchIdle().
    virtual void OnPqConnected() = 0;
    // One result of the query in flight, freed after the call. Runs inside the
    // result loop: read it, do not Drop(), Start() or SendQuery() from here.
    virtual void OnPqResult(const PGresult* result) = 0;
    // The query's results are all in (PQgetResult returned null); the
    // connection is idle and, as after OnPqConnected, not watched.
    virtual void OnPqQueryDone() = 0;
    // Connecting, sending, receiving or watching failed; the connection is
    // already dropped. `why` is for the log ("connect: ...", "send: ...",
    // "connection lost: ...").
    virtual void OnPqFailed(std::string why) = 0;
    // An idle, watched connection was closed by the server (shutdown, 57P01, a
    // reset); already dropped. `cause`: the server's FATAL, else libpq's message.
    virtual void OnPqIdleLost(std::string cause) = 0;
    // A notice, or an error the server sent outside a query (a FATAL before it
    // closes the connection); only with Notices::kToHandler. Runs inside a
    // libpq call: read it, do not Drop(), Start() or SendQuery() from here.
    virtual void OnPqNotice(const PGresult* /*notice*/) {}
  };

  // kLibpqDefault leaves libpq's own notice processor (it prints to stderr).
  // kToHandler sends notices to OnPqNotice and keeps the server's FATAL for
  // "connection lost" messages.
  enum class Notices { kLibpqDefault, kToHandler };

  // `handler` must outlive the connection.
  PqAsyncConnection(uv_loop_t* loop, Handler* handler) : loop_(loop), handler_(handler) {}
  ~PqAsyncConnection() { Drop(); }
  PqAsyncConnection(const PqAsyncConnection&) = delete;
  PqAsyncConnection& operator=(const PqAsyncConnection&) = delete;

  // Drops any connection and starts a new one with these libpq connection
  // parameters (keyword, value). Ends in OnPqConnected or OnPqFailed, maybe
  // before Start returns.
  void Start(const std::vector<std::pair<std::string, std::string>>& params, Notices notices);
  // On a connected, idle connection: sends `sql` (a static string) and watches
  // for its results. Ends in OnPqQueryDone or OnPqFailed, maybe before
  // SendQuery returns.
  void SendQuery(const char* sql);
  // As SendQuery, for a query whose result may be large: the extended protocol
  // (exactly one statement; text holding more is an error) in libpq's
  // single-row mode, so OnPqResult gets each row as a PGRES_SINGLE_TUPLE
  // result as it arrives, then an empty PGRES_TUPLES_OK (or the error). At
  // most kRowsPerTurn rows are handed over per turn of the loop.
  void SendRowsQuery(const char* sql);
  static constexpr size_t kRowsPerTurn = 1000;
  // On a connected, idle connection: watches it for the server closing it or
  // saying something unprompted. False when libpq has no socket any more or
  // libuv refuses it; the handler is not called then.
  [[nodiscard]] bool WatchIdle() { return Watch(UV_READABLE); }
  // Closes the watch, then the connection. No handler call follows. Idempotent.
  void Drop();

  // A connection exists (connecting, idle or busy).
  bool open() const { return conn_ != nullptr; }
  // For PQstatus, PQtransactionStatus, PQsslInUse; null when not open. Not for
  // calls that read or write the socket.
  PGconn* conn() const { return conn_; }
  // uv_hrtime() when the socket last reported ready, before libpq read from
  // it: when a reply arrived.
  uint64_t event_ns() const { return event_ns_; }

 private:
  enum class Phase {
    kNone,        // no connection
    kConnecting,  // PQconnectPoll in progress
    kIdle,        // connected, no query
    kBusy,        // a query in flight
  };

  // The uv_poll_t on the connection's socket. A heap object of its own: the
  // socket can change during PQconnectPoll, and a closing handle cannot be
  // initialized again before its close callback.
  class SocketWatch {
   public:
    static SocketWatch* Create(uv_loop_t* loop, int fd, PqAsyncConnection* owner);
    int fd() const { return fd_; }
    int Start(int events) { return uv_poll_start(&poll_, events, OnPoll); }
    // libuv forgets the descriptor (EPOLL_CTL_DEL while it is still ours) and
    // adds it afresh on Start, even if libpq reopened a socket under the same
    // number.
    void Stop() { uv_poll_stop(&poll_); }
    // Frees itself in the close callback; the owner hears nothing more.
    void Close();

   private:
    SocketWatch(int fd, PqAsyncConnection* owner) : fd_(fd), owner_(owner) { poll_.data = this; }
    static void OnPoll(uv_poll_t* handle, int status, int events);

    uv_poll_t poll_;
    int fd_;
    PqAsyncConnection* owner_;  // null after Close()
  };

  static void OnNotice(void* arg, const PGresult* notice);

  void OnSocket(int status, int events);
  void ContinueConnect();
  void ContinueQuery(int events);
  void OnIdleInput();
  // Sends what libpq still holds and watches for the reply (and for room to
  // send the rest, if any).
  void FlushAndWatch();
  // (Re)arms the watch for `events`, on a new handle when libpq's socket is not
  // the one watched. False when libpq has no socket or libuv refuses it.
  bool Watch(int events);
  void WatchOrFail(int events);
  void Fail(std::string why);

  std::string Error() const { return OneLine(PQerrorMessage(conn_)); }
  std::string LostCause() const { return fatal_.empty() ? Error() : fatal_; }
  std::string LostText() const { return "connection lost: " + LostCause(); }

  uv_loop_t* loop_;
  Handler* handler_;
  PGconn* conn_ = nullptr;
  SocketWatch* watch_ = nullptr;
  Phase phase_ = Phase::kNone;
  uint64_t event_ns_ = 0;
  std::string fatal_;            // the server's last FATAL on this connection (kToHandler)
  size_t results_per_turn_ = 0;  // 0: no limit
};

}  // namespace pgregion::proxy
