// A PostgreSQL backend for unit tests: a libuv TCP server on 127.0.0.1 (an
// ephemeral port) that runs on the test's own loop, logs clients in (trust,
// cleartext, md5 or SCRAM-SHA-256, or refuses them) and answers what they send
// as a test script says, with sensible defaults. It records every message each
// connection received, so a test can assert what the proxy sent (a DISCARD
// ALL, a deferred BEGIN, a write sent exactly once), and it can hold replies (a
// hung backend) or drop a connection abruptly.
//
// Loop thread only (the test's); no threads. Sockets are heap objects freed in
// their close callbacks, so the backend may be destroyed while connections
// close; TestLoop's destructor runs those callbacks.
#pragma once

#include <netinet/in.h>
#include <uv.h>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol/frame_decoder.h"
#include "protocol/scram.h"

namespace pgregion::testing {

// Owns a uv loop for one test case. The destructor closes what is still open
// (bounded) so ASan sees every handle freed.
class TestLoop {
 public:
  TestLoop();
  ~TestLoop();
  TestLoop(const TestLoop&) = delete;
  TestLoop& operator=(const TestLoop&) = delete;
  uv_loop_t* get() { return &loop_; }

 private:
  uv_loop_t loop_;
};

// Runs `loop` until `done()` is true or `timeout_ms` passed (a timer wakes the
// loop every millisecond, so a predicate on plain state is seen promptly).
// Returns done().
bool RunUntil(uv_loop_t* loop, const std::function<bool()>& done, uint64_t timeout_ms = 2000);
// Runs `loop` for `ms` (to show that something does not happen).
void RunFor(uv_loop_t* loop, uint64_t ms);

class ScriptedBackend;

// One message the backend received after login.
struct ReceivedMessage {
  char type = 0;
  std::string body;
  // Query: its text; Parse: the statement's text; Bind/Execute: the text of
  // the statement they run; FunctionCall: "FunctionCall(<oid>)".
  std::string text;
};

// What a connection asks the script to answer: a simple Query ('Q'), an
// Execute ('E') of a bound statement, or a FunctionCall ('F').
struct Statement {
  char via = 'Q';
  std::string_view text;
  uint32_t function_oid = 0;
};

// The script's answer to one statement.
struct Reply {
  enum class Kind {
    kDefault,  // the backend's default answer (see ScriptedBackend)
    kResult,   // `columns`, `rows`, `tag`
    kError,    // ErrorResponse `sqlstate` / `message`
    kRaw,      // `raw` in place of the statement's answer (ReadyForQuery still follows)
    kHold,     // the default answer, held with everything after it (ReleaseHeld); with
               // `raw`, `raw` goes now and CommandComplete `tag` waits (rows delivered)
    kDrop,     // the connection is reset before answering
  };
  Kind kind = Kind::kDefault;
  std::vector<std::string> columns;
  std::vector<std::vector<std::string>> rows;
  std::string tag;
  std::string sqlstate;
  std::string message;
  std::string raw;
  // Sent right after the unit's ReadyForQuery, in the same write (a message
  // that arrives in the same read as the end of a unit).
  std::string after_ready;

  static Reply Default() { return {}; }
  static Reply Rows(std::vector<std::string> columns, std::vector<std::vector<std::string>> rows,
                    std::string tag);
  static Reply Error(std::string sqlstate, std::string message);
  static Reply Raw(std::string bytes);
  static Reply Hold() { return Reply{.kind = Kind::kHold}; }
  static Reply HoldAfter(std::string sent, std::string tag) {
    return Reply{.kind = Kind::kHold, .tag = std::move(tag), .raw = std::move(sent)};
  }
  static Reply Drop() { return Reply{.kind = Kind::kDrop}; }
};

// The backend's side of one accepted connection (kept after it closes, for assertions).
struct BackendConnection {
  int id = 0;
  uint32_t pid = 0;
  std::vector<std::pair<std::string, std::string>> startup;  // the StartupMessage's parameters
  std::string user;
  std::string database;
  bool logged_in = false;
  bool closed = false;
  char tx_status = 'I';
  std::vector<ReceivedMessage> received;
  // Replies not sent while holding (Reply::Hold, ScriptedBackend::HoldAll).
  bool holding = false;
  std::string held;

  // Texts of the simple Queries received, in order.
  std::vector<std::string> Queries() const;
  // Texts of every statement run (Query texts and Executes), in order.
  std::vector<std::string> Statements() const;
  // How many received messages of `type` there are.
  size_t Count(char type) const;
  // How many statements run (Query or Execute) had exactly `text`.
  size_t CountStatement(std::string_view text) const;

 private:
  friend class ScriptedBackend;
  struct Socket* socket = nullptr;  // null once closed
  std::string in;
  protocol::MessageDecoder decoder{1u << 30, 1u << 30};
  // Authentication in progress.
  int auth_step = 0;
  std::string md5_salt;
  std::unique_ptr<protocol::ScramServer> scram;
  // Extended protocol: statements and portals by name (their texts).
  std::map<std::string, std::string> statements;
  std::map<std::string, std::string> portals;
  bool skipping = false;  // after an error, until Sync
};

class ScriptedBackend {
 public:
  enum class Auth { kTrust, kCleartext, kMd5, kScram, kRefuse };
  struct Options {
    std::string name = "backend";  // the default SELECT answers it (which node served)
    Auth auth = Auth::kTrust;
    std::string password = "secret";  // for cleartext, md5 and SCRAM
    // kRefuse: the ErrorResponse a login gets.
    std::string refuse_sqlstate = "28000";
    std::string refuse_message = "role does not exist";
    bool replica = false;  // in_hot_standby
    // The answers to the LSN probe's FunctionCalls: pg_current_wal_insert_lsn(),
    // pg_current_wal_flush_lsn() (empty: the insert answer) and
    // current_setting('synchronous_commit'). Empty insert/setting: NULL.
    std::string lsn = "0/3000060";
    std::string flush_lsn;
    std::string synchronous_commit = "on";
  };
  using Script = std::function<Reply(BackendConnection& conn, const Statement& statement)>;

  ScriptedBackend(uv_loop_t* loop, Options options);
  ~ScriptedBackend();
  ScriptedBackend(const ScriptedBackend&) = delete;
  ScriptedBackend& operator=(const ScriptedBackend&) = delete;

  uint16_t port() const { return port_; }
  const sockaddr* address() const { return reinterpret_cast<const sockaddr*>(&addr_); }
  const sockaddr_in& address_in() const { return addr_; }
  Options& options() { return options_; }

  void set_script(Script script) { script_ = std::move(script); }
  // Nothing is answered (not even the login) until ReleaseAll(): a hung backend.
  void HoldAll(bool hold) { hold_all_ = hold; }
  void ReleaseHeld(BackendConnection* conn);
  // Resets the connection (RST), as a crashed or killed backend would.
  void Drop(BackendConnection* conn);
  // Stops listening: new connections are refused.
  void StopListening();

  const std::vector<std::unique_ptr<BackendConnection>>& connections() const { return conns_; }
  // CancelRequests received: the backend pid and secret key each named.
  const std::vector<std::pair<uint32_t, uint32_t>>& cancels() const { return cancels_; }
  // The connection the i-th CancelRequest names (its pid and secret key
  // match), or null.
  const BackendConnection* CancelledConnection(size_t i) const;
  // The connections not closed (by either side).
  size_t open_count() const;
  // Every connection's received statements (Query texts and Executes), in connection order.
  std::vector<std::string> AllStatements() const;
  size_t CountStatement(std::string_view text) const;

  // The default answer to a statement, as the connection's state implies
  // (BEGIN -> 'T', COMMIT/ROLLBACK -> 'I', SELECT -> one row with the
  // backend's name, other commands -> their tag), appended to `out`.
  void AppendDefault(BackendConnection& conn, const Statement& st, bool describe_rows,
                     std::string* out) const;

 private:
  friend struct Socket;
  static void OnConnection(uv_stream_t* server, int status);
  void OnRead(BackendConnection& conn, std::string_view data);
  // Returns false when the connection was closed.
  bool HandleStartup(BackendConnection& conn);
  bool HandleAuth(BackendConnection& conn, const protocol::Frame& frame);
  void SendWelcome(BackendConnection& conn, std::string* out);
  bool HandleMessage(BackendConnection& conn, const protocol::Frame& frame, std::string* out);
  // Runs one statement: the script's answer, else the default. False: dropped.
  bool Run(BackendConnection& conn, const Statement& st, bool describe_rows, std::string* out,
           std::string* after_ready);
  void Send(BackendConnection& conn, std::string bytes);
  void Fail(BackendConnection& conn, std::string_view sqlstate, std::string_view message);
  void CloseConnection(BackendConnection& conn, bool reset);

  uv_loop_t* loop_;
  Options options_;
  Script script_;
  struct Listener* listener_ = nullptr;
  sockaddr_in addr_{};
  uint16_t port_ = 0;
  bool hold_all_ = false;
  std::vector<std::unique_ptr<BackendConnection>> conns_;
  std::vector<std::pair<uint32_t, uint32_t>> cancels_;
};

// A port on 127.0.0.1 that nothing listens on (a refused connect).
uint16_t UnusedPort();

}  // namespace pgregion::testing
