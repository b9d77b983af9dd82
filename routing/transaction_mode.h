// Follows the characteristics of a client session's transaction the way
// PostgreSQL sets them, so a unit goes where PostgreSQL would accept it:
// a transaction starts with the session defaults (default_transaction_read_only,
// default_transaction_isolation), BEGIN/START options override them, and SET
// TRANSACTION (or SET transaction_read_only / transaction_isolation) changes
// them until the first statement that takes a snapshot.
//
// What a standby refuses where the primary accepts it (PostgreSQL 15,
// checked against a hot standby):
// - SERIALIZABLE, asked by BEGIN/START/SET TRANSACTION or by the session
//   default, for any statement that takes a snapshot, autocommit reads
//   included: "cannot use serializable mode in a hot standby" (0A000).
// - SET TRANSACTION READ WRITE / transaction_read_only = off before the
//   transaction's first query, also outside a transaction block (where the
//   primary only warns): "cannot set transaction read-write mode during
//   recovery" (0A000).
// After the first query, or in a subtransaction, or in an aborted
// transaction, every node refuses those changes with the same error (25001
// "transaction read-write mode must be set before any query", "... inside a
// read-only transaction", "SET TRANSACTION ISOLATION LEVEL must be called
// before any query", 25P02): the bound node's answer is then PostgreSQL's.
//
// Use: StartUnit() when a unit starts (its first statement), OnStatement()
// for each statement in order (a deferred BEGIN first), OnUnitDone() at the
// unit's ReadyForQuery. Units sent to an already bound server are fed too:
// the tracker knows whether the transaction has taken a snapshot.
//
// Pure, one per client session, on the session's loop thread.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include "routing/classification.h"

namespace pgregion::routing {

class TransactionMode {
 public:
  // The session's committed defaults when the unit starts.
  struct Defaults {
    bool read_only = false;     // default_transaction_read_only = on
    bool serializable = false;  // default_transaction_isolation = serializable
  };

  static constexpr size_t kMaxSavepoints = 1024;

  void StartUnit(Defaults defaults);
  void OnStatement(const StatementInfo& s);
  void OnClassification(const Classification& c) {
    for (const StatementInfo& s : c.statements) OnStatement(s);
  }
  // The unit's ReadyForQuery status: 'I' idle (any transaction ended), 'T'
  // in a transaction, 'E' in a failed one.
  void OnUnitDone(char tx_status);

  // ---- RouteContext inputs for the unit fed since StartUnit.
  // A transaction begins in this unit (BEGIN, START, a deferred BEGIN, AND CHAIN).
  bool begins_transaction() const { return begins_; }
  // The transaction this unit runs in (or begins) is read only after the
  // unit's statements; false outside a transaction block.
  bool read_only_transaction() const { return in_block_ && read_only_; }
  // The unit runs under SERIALIZABLE (its transaction's, one it asks for, or
  // the session default): only the primary can run it.
  bool serializable() const { return serializable_unit_; }
  // The unit asks for READ WRITE (SET TRANSACTION READ WRITE, SET
  // transaction_read_only = off): only the primary accepts that.
  bool read_write_requested() const { return read_write_requested_; }

  // ---- The open transaction.
  bool in_block() const { return in_block_; }
  // A statement that takes a snapshot ran in it (anything but transaction
  // control, SET/RESET and SHOW), or it failed.
  bool snapshot_taken() const { return snapshot_taken_; }
  bool in_subtransaction() const { return !savepoints_.empty() || savepoint_overflow_ > 0; }

  // A unit arriving while the transaction runs on a replica (bound), asked
  // after feeding the unit's statements: true when the unit needs the
  // primary (read_write_requested(), serializable(), or
  // `unit_reads_primary_state`) and, before this unit, the transaction had
  // done nothing a move could change (no snapshot taken, no savepoint, not
  // failed): replaying it on the primary then rebuilds the same state, and
  // the unit gets the primary's answer. The proxy then ends it on
  // the replica (ROLLBACK) and begins it again on the primary with the
  // statements it ran so far (BEGIN and SET TRANSACTION/SET/SHOW only), then
  // sends the unit. False: forward to the replica, whose answer is then
  // PostgreSQL's (see the header comment).
  bool MustMoveToPrimary(bool unit_reads_primary_state) const;

 private:
  void Begin(const StatementInfo& s);
  void EndBlock();

  Defaults defaults_;
  bool in_block_ = false;
  bool read_only_ = false;
  bool serializable_txn_ = false;
  bool snapshot_taken_ = false;
  std::vector<std::string> savepoints_;
  size_t savepoint_overflow_ = 0;  // savepoints past kMaxSavepoints, by count
  // Of the current unit.
  bool movable_at_start_ = false;  // in a block, no snapshot, no savepoint
  bool begins_ = false;
  size_t unit_statements_ = 0;
  bool serializable_unit_ = false;
  bool read_write_requested_ = false;
};

}  // namespace pgregion::routing
