#include "routing/classification.h"

namespace pgregion::routing {

std::string_view StatementKindName(StatementKind kind) {
  switch (kind) {
    case StatementKind::kRead:
      return "read";
    case StatementKind::kWrite:
      return "write";
    case StatementKind::kTransaction:
      return "transaction";
    case StatementKind::kSession:
      return "session";
    case StatementKind::kUtility:
      return "utility";
  }
  return "unknown";
}

std::string_view WriteReasonName(WriteReason reason) {
  switch (reason) {
    case WriteReason::kNone:
      return "none";
    case WriteReason::kDml:
      return "dml";
    case WriteReason::kDdl:
      return "ddl";
    case WriteReason::kModifyingCte:
      return "modifying_cte";
    case WriteReason::kLockingClause:
      return "locking_clause";
    case WriteReason::kSelectInto:
      return "select_into";
    case WriteReason::kCopyFrom:
      return "copy_from";
    case WriteReason::kCopyToFile:
      return "copy_to_file";
    case WriteReason::kCall:
      return "call";
    case WriteReason::kDo:
      return "do";
    case WriteReason::kLock:
      return "lock";
    case WriteReason::kNotify:
      return "notify";
    case WriteReason::kListen:
      return "listen";
    case WriteReason::kMaintenance:
      return "maintenance";
    case WriteReason::kTwoPhase:
      return "two_phase";
    case WriteReason::kWriteFunction:
      return "write_function";
    case WriteReason::kUnknownFunction:
      return "unknown_function";
    case WriteReason::kExecute:
      return "execute";
    case WriteReason::kParseError:
      return "parse_error";
    case WriteReason::kTooComplex:
      return "too_complex";
  }
  return "unknown";
}

std::string_view TransactionControlName(TransactionControl txn) {
  switch (txn) {
    case TransactionControl::kNone:
      return "none";
    case TransactionControl::kBegin:
      return "begin";
    case TransactionControl::kCommit:
      return "commit";
    case TransactionControl::kRollback:
      return "rollback";
    case TransactionControl::kSavepoint:
      return "savepoint";
    case TransactionControl::kRelease:
      return "release";
    case TransactionControl::kRollbackTo:
      return "rollback_to";
    case TransactionControl::kPrepareTransaction:
      return "prepare_transaction";
    case TransactionControl::kCommitPrepared:
      return "commit_prepared";
    case TransactionControl::kRollbackPrepared:
      return "rollback_prepared";
    case TransactionControl::kSetTransaction:
      return "set_transaction";
  }
  return "unknown";
}

std::string_view SessionEventTypeName(SessionEventType type) {
  switch (type) {
    case SessionEventType::kSet:
      return "set";
    case SessionEventType::kSetUnreplayable:
      return "set_unreplayable";
    case SessionEventType::kReset:
      return "reset";
    case SessionEventType::kResetAll:
      return "reset_all";
    case SessionEventType::kDiscardAll:
      return "discard_all";
    case SessionEventType::kDiscardPlans:
      return "discard_plans";
    case SessionEventType::kDiscardSequences:
      return "discard_sequences";
    case SessionEventType::kDiscardTemp:
      return "discard_temp";
    case SessionEventType::kProxySet:
      return "proxy_set";
    case SessionEventType::kProxyReset:
      return "proxy_reset";
    case SessionEventType::kProxyShow:
      return "proxy_show";
    case SessionEventType::kTempObject:
      return "temp_object";
    case SessionEventType::kListen:
      return "listen";
    case SessionEventType::kUnlisten:
      return "unlisten";
    case SessionEventType::kUnlistenAll:
      return "unlisten_all";
    case SessionEventType::kAdvisoryLock:
      return "advisory_lock";
    case SessionEventType::kAdvisoryUnlock:
      return "advisory_unlock";
    case SessionEventType::kAdvisoryUnlockAll:
      return "advisory_unlock_all";
    case SessionEventType::kPrepare:
      return "prepare";
    case SessionEventType::kDeallocate:
      return "deallocate";
    case SessionEventType::kDeallocateAll:
      return "deallocate_all";
    case SessionEventType::kDeclareWithHold:
      return "declare_with_hold";
    case SessionEventType::kClose:
      return "close";
    case SessionEventType::kCloseAll:
      return "close_all";
  }
  return "unknown";
}

std::string_view IsolationLevelName(IsolationLevel level) {
  switch (level) {
    case IsolationLevel::kUnspecified:
      return "unspecified";
    case IsolationLevel::kReadUncommitted:
      return "read uncommitted";
    case IsolationLevel::kReadCommitted:
      return "read committed";
    case IsolationLevel::kRepeatableRead:
      return "repeatable read";
    case IsolationLevel::kSerializable:
      return "serializable";
  }
  return "unknown";
}

}  // namespace pgregion::routing
