// What one client's session has changed on PostgreSQL, as PostgreSQL itself
// would keep it: run-time parameters, the session's identity (SET SESSION
// AUTHORIZATION, SET ROLE), and state that lives on one server connection and
// so pins the client to it (temporary objects, SQL PREPARE, cursors WITH HOLD,
// LISTEN, session advisory locks, changes the proxy cannot replay).
//
// Changes count when they commit: a SET inside a transaction that rolls back,
// or under a savepoint rolled back to, is dropped, as PostgreSQL drops it.
// Pins count at once (the state may exist as soon as the statement runs) and
// go only when their removal has committed.
//
// Pure: no I/O, no clock. ClientSession feeds it each statement it sends and
// the outcome of each unit (tests/proxy/session_state_test.cc).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "proxy/backend/session_params.h"
#include "routing/classification.h"

namespace pgregion::proxy {

class SessionState {
 public:
  // Keys under which the identity is kept in SessionParams (both the
  // session's and a server connection's): absent means the login default.
  // They cannot clash with a GUC name (no spaces there).
  static constexpr std::string_view kSessionAuthorizationKey = "<session authorization>";
  static constexpr std::string_view kRoleKey = "<role>";

  // At login: the parameters the server reported and what the client asked for.
  void Login(const SessionParams& reported, const SessionParams& startup);

  // Entries of the open transaction's log kept at most (SET, SAVEPOINT, ...
  // statements of one transaction): past it the session is treated as
  // holding state the proxy cannot replay (pinned, connection closed at exit).
  static constexpr size_t kMaxLogEntries = 4096;

  // A statement about to be sent, in order. Returns whether it pins.
  bool OnStatement(const routing::StatementInfo& s);
  // The unit that carried the statements since the last call ended: `failed`
  // when an ErrorResponse reached the client, `tx_status` the server's
  // ReadyForQuery status after it. `server` (may be null) is the record of
  // the connection it ran on, `server_login` that connection's login values:
  // committed changes are applied to the record as the server applied them.
  void OnUnitDone(char tx_status, bool failed, SessionParams* server = nullptr,
                  const SessionParams* server_login = nullptr);
  // A ParameterStatus the server sent the client.
  void OnServerParameter(std::string_view name, std::string_view value) {
    params_.Set(name, value);
  }
  // The statements of a unit that was never sent (dropped by the proxy).
  void ForgetUnit() {
    unit_.clear();
    unit_custom_names_.clear();
  }

  const SessionParams& params() const { return params_; }
  // What `current_setting(name)` would return now, for a custom (dotted)
  // setting: the committed value, then the open transaction's and the running
  // unit's SET, SET LOCAL, set_config() and RESET, with savepoints, ROLLBACK
  // and COMMIT as PostgreSQL's GUC stack applies them. nullopt: never set (or
  // reset to no value). Not seen: values from ALTER ROLE/DATABASE ... SET or
  // postgresql.conf, which the server does not report (issue 20: the tenant).
  std::optional<std::string> EffectiveValue(std::string_view name) const;
  const SessionParams& startup_params() const { return startup_; }
  // The startup parameters server connections for this client log in with
  // (Pool): all but application_name (often unique per process, it would
  // split pools; replayed instead) and the proxy's own pgregion.* settings.
  SessionParams login_params() const;
  SessionParams& mutable_startup_params() { return startup_; }

  // State that lives on the bound server connection: the client stays on it.
  bool pinned() const;
  // The bound server connection may hold this client's state beyond what a
  // parameter replay undoes (anything that ever pinned): it must be reset
  // (DISCARD ALL) before another client gets it. Cleared by a committed
  // DISCARD ALL.
  bool server_dirty() const { return dirty_; }
  // Beyond what DISCARD ALL undoes (a LOADed library, whatever set_config()
  // or a SET the proxy could not read changed): the connection must be closed.
  bool server_unresettable() const { return unresettable_; }
  bool default_read_only() const { return default_read_only_; }
  bool default_serializable() const { return default_serializable_; }
  // Whether a committed DISCARD ALL or DEALLOCATE ALL dropped the
  // protocol-level prepared statements too (then the caller forgets its own).
  bool TakeProtocolStatementsDropped() {
    const bool dropped = protocol_statements_dropped_;
    protocol_statements_dropped_ = false;
    return dropped;
  }

  // SQL that brings a server connection whose parameters are `server` to this
  // session's parameters and identity, recording the result in `server`.
  // `settings` first goes back to the login user when the server has another
  // identity (a superuser-only setting must be replayed as the login user, as
  // the client set it before switching), then sets and resets parameters;
  // `identity` then switches to the session's identity. They are sent as two
  // queries, and the client's statements wait for `identity` to succeed: if
  // it fails they must not run as the login user.
  struct ReplayPlan {
    std::string settings;
    std::string identity;
    // Custom and extension parameters (dotted names), one query each, after
    // `settings`: a backend where an extension reserves the prefix refuses
    // one it accepted elsewhere, so each is answered before the unit runs
    // and a refused one is dropped (ForgetCustomParameter), as PostgreSQL
    // drops the placeholder when the extension loads.
    struct Custom {
      std::string name;
      std::string sql;
    };
    std::vector<Custom> custom;
    bool empty() const { return settings.empty() && identity.empty() && custom.empty(); }
  };
  // `server_custom_names`: the connection's CustomNames() (0: none); when it
  // differs, the plan also creates this session's placeholders (RESET name).
  ReplayPlan Replay(SessionParams* server, uint64_t server_custom_names = 0) const;

  // The custom parameter names (dotted) this session has ever SET or RESET,
  // as a hash (0: none). PostgreSQL keeps a placeholder for each on the
  // backend for good (current_setting(name, true) then gives '' rather than
  // NULL, and an extension that later claims the prefix warns), so a server
  // connection serves only sessions with its own set of names, or none yet
  // (Pool::Acquire); the replay creates the names on one that has none.
  uint64_t CustomNames() const { return custom_names_hash_; }
  // A backend refused the custom parameter `name` (an extension there reserves
  // its prefix): the session no longer has it, as after PostgreSQL's
  // "invalid configuration parameter name ..., removing it".
  void ForgetCustomParameter(const std::string& name);
  static constexpr size_t kMaxCustomNames = 64;

 private:
  // One entry of the transaction-scoped log.
  struct Entry {
    enum class Kind : uint8_t {
      kEvent,
      kLocalEvent,  // SET LOCAL / set_config(..., true) of a custom setting: until the txn ends
      kBegin,
      kSavepoint,
      kRelease,
      kRollbackTo,
      kCommit,
      kRollback,
      kAborted
    };
    Kind kind = Kind::kEvent;
    routing::SessionEvent event;
    std::string name;  // savepoint
  };

  void Apply(const routing::SessionEvent& e, bool committed);
  // Applies what the log says committed; keeps what is still open.
  void Resolve(bool idle);
  void SetIdentity(const routing::SessionEvent& e);
  void MirrorOnServer(const routing::SessionEvent& e);

  // Whether the server reports `name` (ParameterStatus): its value then comes
  // from the server, as PostgreSQL made it ("ISO, YMD" after SET datestyle TO
  // ymd), not from the statement's text.
  static bool Reported(std::string_view name);

  SessionParams startup_;    // what the client asked for at startup
  SessionParams params_;     // what the client believes it has
  std::vector<Entry> unit_;  // the running unit's statements
  std::vector<Entry> txn_;   // the open transaction's, from earlier units
  bool temp_objects_ = false;
  bool advisory_locks_ = false;
  bool unreplayable_ = false;  // set_config(), LOAD, SET ... the proxy cannot replay
  // Named session objects (LISTEN channels, SQL PREPAREd statements, WITH
  // HOLD cursors): allocated with the first one (most sessions never have
  // any; three empty sets would cost every idle client 96 bytes).
  struct Named {
    absl::flat_hash_set<std::string> listens;
    absl::flat_hash_set<std::string> sql_prepared;
    absl::flat_hash_set<std::string> held_cursors;
    // More than kMaxNamed were created: names are no longer kept, and the
    // session stays pinned until DISCARD ALL (which drops them all).
    bool overflow = false;
  };
  static constexpr size_t kMaxNamed = 4096;
  void AddNamed(absl::flat_hash_set<std::string> Named::*set, const std::string& name);
  void EraseNamed(absl::flat_hash_set<std::string> Named::*set, const std::string& name);
  void ClearNamed(absl::flat_hash_set<std::string> Named::*set);
  std::unique_ptr<Named> named_;
  void NoteCustomName(const std::string& name);
  std::vector<std::string> custom_names_;       // sorted, at most kMaxCustomNames
  std::vector<std::string> unit_custom_names_;  // the running unit's, counted if it succeeds
  uint64_t custom_names_hash_ = 0;
  bool dirty_ = false;
  bool unresettable_ = false;
  bool log_overflowed_ = false;  // kMaxLogEntries reached: nothing more is logged
  bool protocol_statements_dropped_ = false;
  bool default_read_only_ = false;
  bool default_serializable_ = false;
  // Set only during OnUnitDone.
  SessionParams* server_ = nullptr;
  const SessionParams* server_login_ = nullptr;
};

}  // namespace pgregion::proxy
