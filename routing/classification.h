// What the statement classifier reports about one unit of work (a simple
// Query text, possibly several statements, or one extended-protocol Parse
// text): per statement its kind, whether it must run on the primary, its
// transaction-control meaning and the session-state changes it makes, in
// order; for the unit the summary the router needs. Plain values, immutable
// once built; shared (shared_ptr<const>) between the cache and the sessions.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace pgregion::routing {

enum class StatementKind : uint8_t {
  kRead,         // SELECT, VALUES, TABLE, SHOW, EXPLAIN, FETCH, COPY ... TO STDOUT
  kWrite,        // DML, DDL, CALL, DO, LOCK, NOTIFY, COPY FROM, anything that writes
  kTransaction,  // BEGIN, COMMIT, ROLLBACK, SAVEPOINT, 2PC, SET TRANSACTION
  kSession,      // SET/RESET/DISCARD, PREPARE/DEALLOCATE, LISTEN, cursors, pgregion.*
  kUtility,      // VACUUM, ANALYZE, CLUSTER, REINDEX, REFRESH, CHECKPOINT, LOAD, EXECUTE
};

// Why a statement must run on the primary.
enum class WriteReason : uint8_t {
  kNone,
  kDml,              // INSERT/UPDATE/DELETE/MERGE
  kDdl,              // CREATE/ALTER/DROP/GRANT/... and statements we do not know
  kModifyingCte,     // INSERT/UPDATE/DELETE/MERGE nested in a query
  kLockingClause,    // FOR UPDATE/NO KEY UPDATE/SHARE/KEY SHARE at any depth
  kSelectInto,       // SELECT ... INTO
  kCopyFrom,         // COPY ... FROM
  kCopyToFile,       // COPY ... TO 'file' / PROGRAM (server-side side effect)
  kCall,             // CALL
  kDo,               // DO
  kLock,             // LOCK
  kNotify,           // NOTIFY
  kListen,           // LISTEN (not allowed during recovery)
  kMaintenance,      // VACUUM/ANALYZE/CLUSTER/REINDEX/REFRESH/CHECKPOINT/LOAD
  kTwoPhase,         // PREPARE TRANSACTION/COMMIT PREPARED/ROLLBACK PREPARED
  kWriteFunction,    // a function with side effects (StatementInfo::function)
  kUnknownFunction,  // a function we do not know, unknown_functions = primary
  kExecute,          // EXECUTE of an SQL-level prepared statement: unknown
  kParseError,       // does not parse: fail closed
  kTooComplex,       // over the classifier's size/depth budget, not parsed: fail closed
};

enum class TransactionControl : uint8_t {
  kNone,
  kBegin,     // BEGIN / START TRANSACTION
  kCommit,    // COMMIT / END
  kRollback,  // ROLLBACK / ABORT
  kSavepoint,
  kRelease,
  kRollbackTo,
  kPrepareTransaction,  // PREPARE TRANSACTION 'gid' (ends the transaction)
  kCommitPrepared,
  kRollbackPrepared,
  kSetTransaction,  // SET TRANSACTION ..., SET [LOCAL] transaction_read_only/isolation
};

enum class AccessMode : uint8_t { kUnspecified, kReadOnly, kReadWrite };

// An isolation level a statement asks for (BEGIN/START ... ISOLATION LEVEL,
// SET TRANSACTION ISOLATION LEVEL, SET [LOCAL] transaction_isolation).
// A hot standby refuses SERIALIZABLE ("cannot use serializable mode in a hot
// standby", 0A000), so a unit asking for it goes to the primary.
enum class IsolationLevel : uint8_t {
  kUnspecified,
  kReadUncommitted,
  kReadCommitted,
  kRepeatableRead,
  kSerializable,
};

// A change of the session default access mode (SET SESSION CHARACTERISTICS AS
// TRANSACTION READ ONLY/WRITE, SET default_transaction_read_only = on/off,
// RESET of it or RESET ALL).
enum class DefaultAccessChange : uint8_t { kNone, kReadOnly, kReadWrite, kReset };

// One change to session state, in statement order. The session applies them
// when the statement succeeded.
enum class SessionEventType : uint8_t {
  kSet,              // name, value: replay with set_config(name, value, false)
  kSetUnreplayable,  // name: a value set_config cannot reproduce (SET TIME ZONE
                     // INTERVAL ...): pin or replay the original statement
  kReset,            // name (RESET name, SET name TO DEFAULT)
  kResetAll,         // RESET ALL
  kDiscardAll,       // DISCARD ALL: resets everything below too
  kDiscardPlans,
  kDiscardSequences,
  kDiscardTemp,        // drops temporary objects: unpins kTempObject
  kProxySet,           // SET pgregion.x = value: handled by the proxy
  kProxyReset,         // RESET pgregion.x / SET pgregion.x TO DEFAULT
  kProxyShow,          // SHOW pgregion.x
  kTempObject,         // pin: CREATE TEMP TABLE/VIEW/SEQUENCE, pg_temp.x, INTO TEMP
  kListen,             // pin: name = channel
  kUnlisten,           // name = channel
  kUnlistenAll,        // UNLISTEN *
  kAdvisoryLock,       // pin: a session-level pg_[try_]advisory_lock[_shared] call
  kAdvisoryUnlock,     // a pg_advisory_unlock[_shared] call (may return false)
  kAdvisoryUnlockAll,  // pg_advisory_unlock_all()
  kPrepare,            // pin: SQL PREPARE name
  kDeallocate,         // DEALLOCATE name
  kDeallocateAll,      // DEALLOCATE ALL
  kDeclareWithHold,    // pin: DECLARE name ... WITH HOLD
  kClose,              // CLOSE name
  kCloseAll,           // CLOSE ALL
};

struct SessionEvent {
  SessionEventType type = SessionEventType::kSet;
  std::string name;   // setting (lower case, as Postgres folds it), channel, statement, cursor
  std::string value;  // kSet / kProxySet only

  bool operator==(const SessionEvent&) const = default;
};

struct StatementInfo {
  StatementKind kind = StatementKind::kWrite;
  bool write = true;  // must run on the primary
  WriteReason reason = WriteReason::kDdl;
  bool parse_error = false;
  bool proxy_handled = false;             // a pgregion.* SET/RESET/SHOW: never sent to Postgres
  bool set_local = false;                 // SET LOCAL: transaction-scoped, nothing to track
  bool copy_in = false;                   // COPY ... FROM STDIN: the server enters CopyIn
  bool untracked_session_change = false;  // set_config(), LOAD: state the proxy cannot see
  // The statement may lower synchronous_commit for its own transaction where
  // the proxy cannot see it after the commit (SET LOCAL synchronous_commit,
  // set_config(), DO, CALL, a call of a function that is not a PostgreSQL
  // built-in): the commit may not have been flushed when it was acknowledged,
  // so the session's read-your-writes token is the insert position
  // (TokenLsnAfterCommit, ryw_token.h).
  bool durability_unknown = false;
  // SELECT set_config('<custom name>', $n, ...): the value of its one kSet
  // event is Bind parameter n (1-based); the session fills it in at Bind.
  uint16_t value_param = 0;
  TransactionControl txn = TransactionControl::kNone;
  AccessMode access = AccessMode::kUnspecified;             // BEGIN/START/SET TRANSACTION
  IsolationLevel isolation = IsolationLevel::kUnspecified;  // BEGIN/START/SET TRANSACTION
  bool chain = false;                                       // COMMIT/ROLLBACK AND CHAIN
  std::string savepoint;                                    // SAVEPOINT/RELEASE/ROLLBACK TO name
  DefaultAccessChange default_access = DefaultAccessChange::kNone;
  std::string node;          // parse-tree node, e.g. "SelectStmt" (logs, metrics-free)
  std::string function;      // the function behind kWriteFunction/kUnknownFunction
  std::string execute_name;  // EXECUTE name
  std::vector<SessionEvent> events;
  // Reads state only the primary has, or that a standby shows differently
  // (pg_locks, pg_stat_*, pg_is_in_recovery(), sequence relations, SHOW
  // transaction_read_only, ...): it runs on the primary, the oracle being a
  // client connected to the primary directly. Not a write: no LSN probe
  // follows it. `primary_object` names what was found (logs, tests).
  bool primary_state = false;
  std::string primary_object;
  // Relations whose content only the primary has from now on: sequences this
  // statement advances (nextval/setval with a literal name, 'seq' or
  // 's.seq'::regclass) and unlogged tables it creates (CREATE UNLOGGED
  // TABLE, ALTER TABLE ... SET UNLOGGED). Bare relation names, folded as
  // PostgreSQL folds identifiers; the schema is dropped (a read matches by
  // name: conservative). The session keeps them (PrimaryRelations).
  std::vector<std::string> primary_relations;
  // Relation names this statement names (FROM, JOIN, DML targets: every
  // RangeVar, CTE references included), bare and folded, each once, at most
  // kMaxRelations; `relations_truncated` when there were more.
  std::vector<std::string> relations;
  bool relations_truncated = false;
  // SET [LOCAL] / RESET of a custom or extension parameter (a valid dotted
  // name, folded): the backend keeps a placeholder for that name for good,
  // which no RESET or DISCARD ALL removes. The session tracks which names it
  // made (those of statements that succeeded).
  std::string custom_parameter;
  // Databases this statement needs no other session connected to: the one
  // DROP DATABASE drops, ALTER DATABASE ... RENAME TO / SET TABLESPACE
  // changes, CREATE DATABASE copies (its TEMPLATE, template1 by default).
  // PostgreSQL waits up to 5 s for other sessions to leave them, so the proxy
  // closes its own idle server connections to them before sending it.
  std::vector<std::string> databases;

  static constexpr size_t kMaxRelations = 64;
};

struct Classification {
  std::vector<StatementInfo> statements;  // empty for an empty query
  bool write = false;                     // some statement must run on the primary
  bool parse_error = false;               // the text does not parse (then write is true)
  std::string error;                      // libpg_query's message when parse_error
  // Over ClassifierOptions' budget: not parsed, routed as a write (then write
  // is true and statements holds one kTooComplex entry). Never cached.
  bool too_complex = false;
  bool transaction_control = false;  // some statement has txn != kNone
  bool session_events = false;       // some statement has events
  bool proxy_handled = false;        // some statement is a pgregion.* one
  bool mixed_proxy = false;          // pgregion.* statements together with ones for Postgres
  bool copy_in = false;              // some statement is COPY ... FROM STDIN
  bool primary_state = false;        // some statement has primary_state
  bool serializable = false;         // some statement asks for SERIALIZABLE isolation
  // Whether the result may be reused for other texts with the same key: false
  // when it holds values taken from literals (SET values, EXPLAIN options).
  bool cacheable = true;
};

std::string_view StatementKindName(StatementKind kind);
std::string_view WriteReasonName(WriteReason reason);
std::string_view TransactionControlName(TransactionControl txn);
std::string_view SessionEventTypeName(SessionEventType type);
std::string_view IsolationLevelName(IsolationLevel level);

}  // namespace pgregion::routing
