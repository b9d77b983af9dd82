#include "routing/statement_analyzer.h"

#include <cctype>

#include "protocol/str_util.h"

namespace pgregion::routing {
namespace {

using Index = JsonTree::Index;
constexpr Index kNone = JsonTree::kNone;

// parsenodes.h: CURSOR_OPT_HOLD.
constexpr int64_t kCursorOptHold = 0x0020;

void SetRead(StatementInfo* info, StatementKind kind) {
  info->kind = kind;
  info->write = false;
  info->reason = WriteReason::kNone;
}

void SetWrite(StatementInfo* info, StatementKind kind, WriteReason reason) {
  info->kind = kind;
  info->write = true;
  info->reason = reason;
}

// Marks a write unless an earlier finding already did (the first reason wins).
void MarkWrite(StatementInfo* info, WriteReason reason, std::string function = {}) {
  if (info->write) return;
  info->write = true;
  info->reason = reason;
  info->function = std::move(function);
}

void AddEvent(StatementInfo* info, SessionEventType type, std::string name = {},
              std::string value = {}) {
  info->events.push_back(SessionEvent{type, std::move(name), std::move(value)});
}

// parse_bool() of a DefElem argument: false for off/false/no/0 and their
// unique prefixes, true otherwise.
bool DefElemFalse(const JsonTree& tree, Index arg_wrapper) {
  if (arg_wrapper == kNone) return false;
  if (Index s = tree.Member(arg_wrapper, "String"); s != kNone) {
    std::string v = tree.String(tree.Member(s, "sval"));
    for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    if (v.empty()) return false;
    return std::string_view("false").starts_with(v) || std::string_view("no").starts_with(v) ||
           v == "of" || v == "off" || v == "0";
  }
  if (Index i = tree.Member(arg_wrapper, "Integer"); i != kNone) {
    auto v = tree.Int(tree.Member(i, "ival"));
    return !v || *v == 0;  // libpg_query omits 0
  }
  if (Index b = tree.Member(arg_wrapper, "Boolean"); b != kNone) {
    return !tree.Bool(b, "boolval");
  }
  return false;
}

}  // namespace

StatementInfo StatementAnalyzer::Analyze(Index stmt, bool* cacheable) const {
  StatementInfo info;
  const Index node = tree_.FirstChild(stmt);
  if (node == kNone) return info;  // a write, fail closed
  const std::string_view type = tree_.node(node).key;
  info.node = std::string(type);

  if (type == "SelectStmt") {
    Query(node, &info, cacheable);
  } else if (type == "InsertStmt" || type == "UpdateStmt" || type == "DeleteStmt" ||
             type == "MergeStmt") {
    SetWrite(&info, StatementKind::kWrite, WriteReason::kDml);
    ApplyFacts(walker_.Walk(node), &info, cacheable);
  } else if (type == "TransactionStmt") {
    Transaction(node, &info);
  } else if (type == "VariableSetStmt") {
    VariableSet(node, &info, cacheable);
  } else if (type == "VariableShowStmt") {
    VariableShow(node, &info);
  } else if (type == "ExplainStmt") {
    Explain(node, &info, cacheable);
  } else if (type == "CopyStmt") {
    Copy(node, &info, cacheable);
  } else if (type == "DeclareCursorStmt") {
    Declare(node, &info, cacheable);
  } else if (type == "FetchStmt") {
    SetRead(&info, StatementKind::kRead);
  } else if (type == "ClosePortalStmt") {
    SetRead(&info, StatementKind::kSession);
    std::string name = tree_.String(tree_.Member(node, "portalname"));
    if (name.empty()) {
      AddEvent(&info, SessionEventType::kCloseAll);
    } else {
      AddEvent(&info, SessionEventType::kClose, std::move(name));
    }
  } else if (type == "PrepareStmt") {
    Prepare(node, &info, cacheable);
  } else if (type == "ExecuteStmt") {
    SetWrite(&info, StatementKind::kUtility, WriteReason::kExecute);
    info.execute_name = tree_.String(tree_.Member(node, "name"));
    info.durability_unknown = true;  // what the prepared statement calls is not known here
  } else if (type == "DeallocateStmt") {
    SetRead(&info, StatementKind::kSession);
    std::string name = tree_.String(tree_.Member(node, "name"));
    if (name.empty()) {
      AddEvent(&info, SessionEventType::kDeallocateAll);
    } else {
      AddEvent(&info, SessionEventType::kDeallocate, std::move(name));
    }
  } else if (type == "ListenStmt") {
    // LISTEN is refused during recovery; the pin keeps the client there.
    SetWrite(&info, StatementKind::kSession, WriteReason::kListen);
    AddEvent(&info, SessionEventType::kListen, tree_.String(tree_.Member(node, "conditionname")));
  } else if (type == "UnlistenStmt") {
    SetRead(&info, StatementKind::kSession);
    std::string name = tree_.String(tree_.Member(node, "conditionname"));
    if (name.empty()) {
      AddEvent(&info, SessionEventType::kUnlistenAll);
    } else {
      AddEvent(&info, SessionEventType::kUnlisten, std::move(name));
    }
  } else if (type == "NotifyStmt") {
    SetWrite(&info, StatementKind::kWrite, WriteReason::kNotify);
  } else if (type == "DiscardStmt") {
    SetRead(&info, StatementKind::kSession);
    std::string_view target = tree_.RawString(node, "target");
    SessionEventType event = SessionEventType::kDiscardAll;
    if (target == "DISCARD_PLANS") event = SessionEventType::kDiscardPlans;
    if (target == "DISCARD_SEQUENCES") event = SessionEventType::kDiscardSequences;
    if (target == "DISCARD_TEMP") event = SessionEventType::kDiscardTemp;
    AddEvent(&info, event);
  } else if (type == "CallStmt") {
    SetWrite(&info, StatementKind::kWrite, WriteReason::kCall);
    info.durability_unknown = true;  // procedures may SET LOCAL synchronous_commit
  } else if (type == "DoStmt") {
    SetWrite(&info, StatementKind::kWrite, WriteReason::kDo);
    info.durability_unknown = true;
    // Code run by DO may change session state the proxy cannot see (a plain
    // SET, set_config(), dynamic SQL): then the session stays on its server
    // connection, which is closed when the client leaves.
    info.untracked_session_change = DoBodyMayChangeSession(node);
    *cacheable = false;  // the verdict comes from the body, a literal
  } else if (type == "LockStmt") {
    SetWrite(&info, StatementKind::kWrite, WriteReason::kLock);
  } else if (type == "VacuumStmt" || type == "ClusterStmt" || type == "ReindexStmt" ||
             type == "RefreshMatViewStmt" || type == "CheckPointStmt") {
    SetWrite(&info, StatementKind::kUtility, WriteReason::kMaintenance);
  } else if (type == "LoadStmt") {
    SetWrite(&info, StatementKind::kUtility, WriteReason::kMaintenance);
    info.untracked_session_change = true;
  } else if (type == "CreateStmt") {
    CreateRelation(node, "relation", &info);
  } else if (type == "ViewStmt") {
    CreateRelation(node, "view", &info);
  } else if (type == "CreateSeqStmt") {
    CreateRelation(node, "sequence", &info);
  } else if (type == "CreateTableAsStmt") {
    // CREATE TABLE AS / CREATE MATERIALIZED VIEW: runs its query too.
    SetWrite(&info, StatementKind::kWrite, WriteReason::kDdl);
    ApplyFacts(walker_.Walk(tree_.Member(node, "query")), &info, cacheable);
    const Index rel = tree_.Member(tree_.Member(node, "into"), "rel");
    if (IsTemp(rel)) AddEvent(&info, SessionEventType::kTempObject);
    if (tree_.RawString(rel, "relpersistence") == "u") {
      info.primary_relations.push_back(tree_.String(tree_.Member(rel, "relname")));
    }
  } else if (type == "AlterTableStmt") {
    AlterTable(node, &info);
  } else {
    // Every other statement is DDL, GRANT/REVOKE, ALTER SYSTEM, or new to
    // us: the primary.
    SetWrite(&info, StatementKind::kWrite, WriteReason::kDdl);
    Databases(type, node, &info, cacheable);
    // CREATE STATISTICS/FUNCTION/TYPE/DOMAIN ... pg_temp.x: a temporary object.
    for (std::string_view member : {"defnames", "funcname", "domainname", "typeName"}) {
      if (IsTempName(tree_.Member(node, member))) {
        AddEvent(&info, SessionEventType::kTempObject);
        break;
      }
    }
    if (IsTemp(tree_.Member(node, "typevar"))) AddEvent(&info, SessionEventType::kTempObject);
  }
  return info;
}

void StatementAnalyzer::Query(Index body, StatementInfo* info, bool* cacheable) const {
  if (PlainSetConfig(body, info, cacheable)) return;
  SetRead(info, StatementKind::kRead);
  ApplyFacts(walker_.Walk(body), info, cacheable);
  info->kind = info->write ? StatementKind::kWrite : StatementKind::kRead;
}

void StatementAnalyzer::ApplyFacts(const TreeFacts& facts, StatementInfo* info,
                                   bool* cacheable) const {
  if (facts.from_literal) *cacheable = false;
  if (!facts.primary_state.empty() && !info->primary_state) {
    info->primary_state = true;
    info->primary_object = facts.primary_state;
  }
  info->relations = facts.relations;
  info->relations_truncated = facts.relations_truncated;
  info->primary_relations.insert(info->primary_relations.end(), facts.sequences.begin(),
                                 facts.sequences.end());
  if (facts.modifies) MarkWrite(info, WriteReason::kModifyingCte);
  if (facts.locking) MarkWrite(info, WriteReason::kLockingClause);
  if (facts.into != kNone) {
    MarkWrite(info, WriteReason::kSelectInto);
    const Index rel = tree_.Member(facts.into, "rel");
    if (IsTemp(rel)) AddEvent(info, SessionEventType::kTempObject);
    if (tree_.RawString(rel, "relpersistence") == "u") {
      info->primary_relations.push_back(tree_.String(tree_.Member(rel, "relname")));
    }
  }
  if (!facts.write_function.empty()) {
    MarkWrite(info, WriteReason::kWriteFunction, facts.write_function);
  }
  if (!facts.unknown_function.empty() && unknown_functions_ == UnknownFunctionPolicy::kPrimary) {
    MarkWrite(info, WriteReason::kUnknownFunction, facts.unknown_function);
  }
  if (facts.set_config) info->untracked_session_change = true;
  // set_config(..., true) lasts until the commit; user code may call it.
  if (facts.set_config || facts.user_function) info->durability_unknown = true;
  for (FunctionSessionEffect call : facts.session_calls) {
    switch (call) {
      case FunctionSessionEffect::kAdvisoryLock:
        AddEvent(info, SessionEventType::kAdvisoryLock);
        break;
      case FunctionSessionEffect::kAdvisoryUnlock:
        AddEvent(info, SessionEventType::kAdvisoryUnlock);
        break;
      case FunctionSessionEffect::kAdvisoryUnlockAll:
        AddEvent(info, SessionEventType::kAdvisoryUnlockAll);
        break;
      case FunctionSessionEffect::kNone:
      case FunctionSessionEffect::kSetConfig:
        break;
    }
  }
}

void StatementAnalyzer::Nested(Index wrapper, StatementInfo* info, bool* cacheable) const {
  std::string node = std::move(info->node);
  *info = Analyze(wrapper, cacheable);
  info->node = std::move(node);
}

void StatementAnalyzer::Explain(Index body, StatementInfo* info, bool* cacheable) const {
  bool analyze = false;
  Index options = tree_.Member(body, "options");
  for (Index opt = tree_.FirstChild(options); opt != kNone; opt = tree_.Next(opt)) {
    Index def = tree_.Member(opt, "DefElem");
    if (tree_.RawString(def, "defname") != "analyze") continue;
    Index arg = tree_.Member(def, "arg");
    // (ANALYZE 'off') and (ANALYZE 1) share a key: decided per text.
    if (arg != kNone) *cacheable = false;
    analyze = !DefElemFalse(tree_, arg);
  }
  if (analyze) {
    // EXPLAIN ANALYZE runs the statement.
    Nested(tree_.Member(body, "query"), info, cacheable);
    return;
  }
  SetRead(info, StatementKind::kRead);
}

void StatementAnalyzer::Copy(Index body, StatementInfo* info, bool* cacheable) const {
  const bool to_file = tree_.Member(body, "filename") != kNone || tree_.Bool(body, "is_program");
  if (tree_.Bool(body, "is_from")) {
    SetWrite(info, StatementKind::kWrite, WriteReason::kCopyFrom);
    info->copy_in = !to_file;
    return;
  }
  if (to_file) {
    SetWrite(info, StatementKind::kWrite, WriteReason::kCopyToFile);
    return;
  }
  if (Index query = tree_.Member(body, "query"); query != kNone) {
    // COPY (SELECT ...) TO STDOUT reads; COPY (DELETE ... RETURNING) TO writes.
    Nested(query, info, cacheable);
    return;
  }
  SetRead(info, StatementKind::kRead);
}

void StatementAnalyzer::Transaction(Index body, StatementInfo* info) const {
  SetRead(info, StatementKind::kTransaction);
  std::string_view kind = tree_.RawString(body, "kind");
  info->chain = tree_.Bool(body, "chain");
  // SAVEPOINT, RELEASE and ROLLBACK TO name the savepoint: the session keeps
  // changes per savepoint to drop those rolled back to.
  info->savepoint = tree_.String(tree_.Member(body, "savepoint_name"));
  if (kind == "TRANS_STMT_BEGIN" || kind == "TRANS_STMT_START") {
    info->txn = TransactionControl::kBegin;
    info->access = ReadOnlyOption(tree_.Member(body, "options"));
    info->isolation = IsolationOption(tree_.Member(body, "options"));
  } else if (kind == "TRANS_STMT_COMMIT") {
    info->txn = TransactionControl::kCommit;
  } else if (kind == "TRANS_STMT_ROLLBACK") {
    info->txn = TransactionControl::kRollback;
  } else if (kind == "TRANS_STMT_SAVEPOINT") {
    info->txn = TransactionControl::kSavepoint;
  } else if (kind == "TRANS_STMT_RELEASE") {
    info->txn = TransactionControl::kRelease;
  } else if (kind == "TRANS_STMT_ROLLBACK_TO") {
    info->txn = TransactionControl::kRollbackTo;
  } else if (kind == "TRANS_STMT_PREPARE") {
    info->txn = TransactionControl::kPrepareTransaction;
    MarkWrite(info, WriteReason::kTwoPhase);
  } else if (kind == "TRANS_STMT_COMMIT_PREPARED") {
    info->txn = TransactionControl::kCommitPrepared;
    MarkWrite(info, WriteReason::kTwoPhase);
  } else if (kind == "TRANS_STMT_ROLLBACK_PREPARED") {
    info->txn = TransactionControl::kRollbackPrepared;
    MarkWrite(info, WriteReason::kTwoPhase);
  } else {
    MarkWrite(info, WriteReason::kDdl);
  }
}

void StatementAnalyzer::Declare(Index body, StatementInfo* info, bool* cacheable) const {
  Nested(tree_.Member(body, "query"), info, cacheable);
  auto options = tree_.Int(tree_.Member(body, "options"));
  if (options && (*options & kCursorOptHold) != 0) {
    info->kind = StatementKind::kSession;
    AddEvent(info, SessionEventType::kDeclareWithHold,
             tree_.String(tree_.Member(body, "portalname")));
  }
}

void StatementAnalyzer::Prepare(Index body, StatementInfo* info, bool* cacheable) const {
  // The prepared query does not run now: keep its write verdict, drop its
  // session effects (they happen at EXECUTE, which goes to the primary).
  Nested(tree_.Member(body, "query"), info, cacheable);
  info->kind = StatementKind::kSession;
  info->events.clear();
  info->copy_in = false;
  info->untracked_session_change = false;
  AddEvent(info, SessionEventType::kPrepare, tree_.String(tree_.Member(body, "name")));
}

void StatementAnalyzer::CreateRelation(Index body, std::string_view rel_field,
                                       StatementInfo* info) const {
  SetWrite(info, StatementKind::kWrite, WriteReason::kDdl);
  const Index rel = tree_.Member(body, rel_field);
  if (IsTemp(rel)) AddEvent(info, SessionEventType::kTempObject);
  // A standby refuses to read an unlogged table ("cannot access temporary or
  // unlogged relations during recovery").
  if (tree_.RawString(rel, "relpersistence") == "u") {
    info->primary_relations.push_back(tree_.String(tree_.Member(rel, "relname")));
  }
}

void StatementAnalyzer::AlterTable(Index body, StatementInfo* info) const {
  SetWrite(info, StatementKind::kWrite, WriteReason::kDdl);
  Index cmds = tree_.Member(body, "cmds");
  for (Index cmd = tree_.FirstChild(cmds); cmd != kNone; cmd = tree_.Next(cmd)) {
    if (tree_.RawString(tree_.Member(cmd, "AlterTableCmd"), "subtype") == "AT_SetUnLogged") {
      info->primary_relations.push_back(
          tree_.String(tree_.Member(tree_.Member(body, "relation"), "relname")));
      return;
    }
  }
}

bool StatementAnalyzer::IsTempName(Index names) const {
  // A qualified name as a list of String nodes: [pg_temp, x].
  const Index first = tree_.FirstChild(names);
  if (first == kNone || tree_.Next(first) == kNone) return false;
  return StartsWith(tree_.String(tree_.Member(tree_.Member(first, "String"), "sval")), "pg_temp");
}

bool StatementAnalyzer::DoBodyMayChangeSession(Index do_stmt) const {
  // DoStmt.args: [{"DefElem": {"defname": "as", "arg": {"String": {"sval": body}}}}, ...]
  static constexpr std::string_view kWords[] = {"set",     "reset",    "execute", "listen",
                                                "prepare", "advisory", "temp",    "load",
                                                "discard", "declare",  "session", "role"};
  for (Index a = tree_.FirstChild(tree_.Member(do_stmt, "args")); a != kNone; a = tree_.Next(a)) {
    const Index def = tree_.Member(a, "DefElem");
    if (tree_.RawString(def, "defname") != "as") continue;
    std::string body =
        tree_.String(tree_.Member(tree_.Member(tree_.Member(def, "arg"), "String"), "sval"));
    for (char& c : body) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (std::string_view w : kWords) {
      if (body.find(w) != std::string::npos) return true;
    }
  }
  return false;
}

bool StatementAnalyzer::IsTemp(Index range_var) const {
  if (range_var == kNone) return false;
  if (tree_.RawString(range_var, "relpersistence") == "t") return true;
  // CREATE TABLE pg_temp.x (also pg_temp_3.x).
  return StartsWith(tree_.RawString(range_var, "schemaname"), "pg_temp");
}

AccessMode StatementAnalyzer::ReadOnlyOption(Index options) const {
  AccessMode mode = AccessMode::kUnspecified;
  for (Index opt = tree_.FirstChild(options); opt != kNone; opt = tree_.Next(opt)) {
    Index def = tree_.Member(opt, "DefElem");
    if (tree_.RawString(def, "defname") != "transaction_read_only") continue;
    // {"A_Const":{"ival":{"ival":1}}} for READ ONLY; ival omitted (0) for READ WRITE.
    Index ival = tree_.Member(tree_.Member(tree_.Member(def, "arg"), "A_Const"), "ival");
    auto v = tree_.Int(tree_.Member(ival, "ival"));
    mode = v && *v != 0 ? AccessMode::kReadOnly : AccessMode::kReadWrite;
  }
  return mode;
}

IsolationLevel StatementAnalyzer::IsolationOption(Index options) const {
  IsolationLevel level = IsolationLevel::kUnspecified;
  for (Index opt = tree_.FirstChild(options); opt != kNone; opt = tree_.Next(opt)) {
    Index def = tree_.Member(opt, "DefElem");
    if (tree_.RawString(def, "defname") != "transaction_isolation") continue;
    // {"A_Const":{"sval":{"sval":"serializable"}}}: the grammar's lower-case words.
    level = ParseIsolationLevel(tree_.String(tree_.Member(
        tree_.Member(tree_.Member(tree_.Member(def, "arg"), "A_Const"), "sval"), "sval")));
  }
  return level;
}

IsolationLevel ParseIsolationLevel(std::string_view text) {
  std::string v(text);
  for (char& c : v) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  if (v == "serializable") return IsolationLevel::kSerializable;
  if (v == "repeatable read") return IsolationLevel::kRepeatableRead;
  if (v == "read committed") return IsolationLevel::kReadCommitted;
  if (v == "read uncommitted") return IsolationLevel::kReadUncommitted;
  return IsolationLevel::kUnspecified;
}

}  // namespace pgregion::routing
