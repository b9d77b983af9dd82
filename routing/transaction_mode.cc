#include "routing/transaction_mode.h"

namespace pgregion::routing {
namespace {

// PostgreSQL takes no snapshot for transaction control, SET/RESET and SHOW
// (checked: SET TRANSACTION READ WRITE still succeeds after them; after
// DEALLOCATE, PREPARE, DECLARE, EXPLAIN or any query it fails with 25001).
bool TakesSnapshot(const StatementInfo& s) {
  if (s.proxy_handled) return false;  // never reaches PostgreSQL
  return s.node != "TransactionStmt" && s.node != "VariableSetStmt" && s.node != "VariableShowStmt";
}

}  // namespace

void TransactionMode::StartUnit(Defaults defaults) {
  defaults_ = defaults;
  movable_at_start_ = in_block_ && !snapshot_taken_ && !in_subtransaction();
  begins_ = false;
  unit_statements_ = 0;
  read_write_requested_ = false;
  // Autocommit statements run in their own transaction, at the default level.
  serializable_unit_ = in_block_ ? serializable_txn_ : defaults.serializable;
}

void TransactionMode::Begin(const StatementInfo& s) {
  if (in_block_) return;  // BEGIN in a block: a warning, nothing changes
  in_block_ = true;
  begins_ = true;
  snapshot_taken_ = false;
  savepoints_.clear();
  savepoint_overflow_ = 0;
  read_only_ = s.access == AccessMode::kUnspecified ? defaults_.read_only
                                                    : s.access == AccessMode::kReadOnly;
  serializable_txn_ = s.isolation == IsolationLevel::kUnspecified
                          ? defaults_.serializable
                          : s.isolation == IsolationLevel::kSerializable;
  // A unit that starts with BEGIN ISOLATION LEVEL REPEATABLE READ runs at
  // that level even under a serializable default (PostgreSQL's own hint to
  // standby users): the default no longer applies to it.
  serializable_unit_ = (unit_statements_ > 1 && serializable_unit_) || serializable_txn_;
}

void TransactionMode::EndBlock() {
  in_block_ = false;
  snapshot_taken_ = false;
  savepoints_.clear();
  savepoint_overflow_ = 0;
}

void TransactionMode::OnStatement(const StatementInfo& s) {
  ++unit_statements_;
  switch (s.txn) {
    case TransactionControl::kBegin:
      Begin(s);
      return;
    case TransactionControl::kCommit:
    case TransactionControl::kRollback:
    case TransactionControl::kPrepareTransaction:
      if (s.chain && in_block_) {
        // AND CHAIN: a new transaction with the same characteristics.
        snapshot_taken_ = false;
        savepoints_.clear();
        savepoint_overflow_ = 0;
        begins_ = true;
        return;
      }
      EndBlock();
      return;
    case TransactionControl::kSavepoint:
      if (!in_block_) return;  // refused outside a block
      if (savepoints_.size() < kMaxSavepoints) {
        savepoints_.push_back(s.savepoint);
      } else {
        ++savepoint_overflow_;
      }
      return;
    case TransactionControl::kRelease:
    case TransactionControl::kRollbackTo: {
      if (savepoint_overflow_ > 0) return;  // cannot follow names any more: stays "in one"
      size_t at = savepoints_.size();
      while (at > 0 && savepoints_[at - 1] != s.savepoint) --at;
      if (at == 0) return;  // no such savepoint: PostgreSQL refused it
      savepoints_.resize(s.txn == TransactionControl::kRelease ? at - 1 : at);
      return;
    }
    case TransactionControl::kSetTransaction:
      if (s.access == AccessMode::kReadWrite) {
        read_write_requested_ = true;
        if (in_block_ && !snapshot_taken_ && !in_subtransaction()) read_only_ = false;
      } else if (s.access == AccessMode::kReadOnly && in_block_) {
        read_only_ = true;  // allowed at any time
      }
      if (s.isolation == IsolationLevel::kSerializable) {
        serializable_unit_ = true;
        if (in_block_ && !snapshot_taken_ && !in_subtransaction()) serializable_txn_ = true;
      } else if (s.isolation != IsolationLevel::kUnspecified && in_block_ && !snapshot_taken_ &&
                 !in_subtransaction()) {
        serializable_txn_ = false;
      }
      return;
    case TransactionControl::kCommitPrepared:
    case TransactionControl::kRollbackPrepared:
    case TransactionControl::kNone:
      break;
  }
  if (in_block_ && TakesSnapshot(s)) snapshot_taken_ = true;
}

void TransactionMode::OnUnitDone(char tx_status) {
  if (tx_status == 'I') {
    EndBlock();
  } else if (tx_status == 'E') {
    snapshot_taken_ = true;  // aborted: every node answers 25P02 alike
  }
  begins_ = false;
  unit_statements_ = 0;
  read_write_requested_ = false;
  serializable_unit_ = in_block_ ? serializable_txn_ : defaults_.serializable;
}

bool TransactionMode::MustMoveToPrimary(bool unit_reads_primary_state) const {
  if (!movable_at_start_) return false;
  return read_write_requested_ || serializable_unit_ || unit_reads_primary_state;
}

}  // namespace pgregion::routing
