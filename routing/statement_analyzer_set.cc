// SET, RESET and SHOW: session settings the proxy tracks and replays,
// transaction characteristics, and the proxy's own pgregion.* settings.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <initializer_list>

#include "protocol/str_util.h"
#include "routing/statement_analyzer.h"

namespace pgregion::routing {
namespace {

using Index = JsonTree::Index;
constexpr Index kNone = JsonTree::kNone;

constexpr std::string_view kProxyPrefix = "pgregion.";

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

bool IsProxySetting(std::string_view name) {
  return name.size() > kProxyPrefix.size() &&
         EqualsIgnoreCase(name.substr(0, kProxyPrefix.size()), kProxyPrefix);
}

// GUCs flagged GUC_LIST_QUOTE in PostgreSQL 15 (guc.c): their list elements
// are stored as quoted identifiers.
bool IsListQuoteSetting(std::string_view name) {
  return name == "search_path" || name == "temp_tablespaces" ||
         name == "session_preload_libraries" || name == "local_preload_libraries" ||
         name == "shared_preload_libraries";
}

// quote_identifier() without the keyword check: a keyword left unquoted reads
// back the same in a GUC list (SplitIdentifierString knows no keywords).
std::string QuoteIdentifier(std::string_view v) {
  bool safe = !v.empty() && ((v[0] >= 'a' && v[0] <= 'z') || v[0] == '_');
  for (char c : v) {
    safe = safe && ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_');
  }
  if (safe) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

// parse_bool(): on/off, true/false, yes/no, 1/0 and unique prefixes.
std::optional<bool> ParseBool(std::string_view raw) {
  std::string v = Lower(raw);
  if (v.empty()) return std::nullopt;
  auto prefix_of = [&](std::string_view word) { return word.starts_with(v); };
  if (prefix_of("true") || prefix_of("yes") || v == "on" || v == "1") return true;
  if (prefix_of("false") || prefix_of("no") || v == "of" || v == "off" || v == "0") return false;
  return std::nullopt;
}

// PostgreSQL 15's valid_custom_variable_name (guc.c): two or more simple
// identifiers separated by dots. Only such names get a placeholder; SET of
// any other dotted name fails.
bool ValidCustomName(std::string_view name) {
  bool saw_sep = false;
  bool name_start = true;
  for (char c : name) {
    const auto u = static_cast<unsigned char>(c);
    if (c == '.') {
      if (name_start) return false;  // empty component
      saw_sep = true;
      name_start = true;
    } else if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || u >= 0x80) {
      name_start = false;
    } else if (!name_start && ((c >= '0' && c <= '9') || c == '$')) {
      // fine after the first character
    } else {
      return false;
    }
  }
  return !name_start && saw_sep;
}

void AddEvent(StatementInfo* info, SessionEventType type, std::string name = {},
              std::string value = {}) {
  info->events.push_back(SessionEvent{type, std::move(name), std::move(value)});
}

}  // namespace

void StatementAnalyzer::VariableSet(Index body, StatementInfo* info, bool* cacheable) const {
  info->kind = StatementKind::kSession;
  info->write = false;
  info->reason = WriteReason::kNone;
  const std::string_view kind = tree_.RawString(body, "kind");
  const std::string name = tree_.String(tree_.Member(body, "name"));
  const Index args = tree_.Member(body, "args");
  info->set_local = tree_.Bool(body, "is_local");
  // The commit this SET LOCAL ends may be asynchronous, and nothing of it is
  // left to see after the commit (ClientSession's LSN probe).
  info->durability_unknown = info->set_local && EqualsIgnoreCase(name, "synchronous_commit");

  if (kind == "VAR_SET_MULTI") {
    if (name == "TRANSACTION" || name == "TRANSACTION SNAPSHOT") {
      info->kind = StatementKind::kTransaction;
      info->txn = TransactionControl::kSetTransaction;
      info->access = ReadOnlyOption(args);
      info->isolation = IsolationOption(args);
      if (name == "TRANSACTION SNAPSHOT") {
        // Snapshots are exported on the primary (pg_export_snapshot() is
        // primary state): only that node can import one.
        info->primary_state = true;
        info->primary_object = "SET TRANSACTION SNAPSHOT";
      }
    } else if (name == "SESSION CHARACTERISTICS") {
      SessionCharacteristics(args, info);
    } else {
      info->untracked_session_change = true;
    }
    return;
  }
  if (kind == "VAR_RESET_ALL") {
    AddEvent(info, SessionEventType::kResetAll);
    info->default_access = DefaultAccessChange::kReset;
    return;
  }
  const bool reset = kind == "VAR_RESET" || kind == "VAR_SET_DEFAULT";
  const bool set_value = kind == "VAR_SET_VALUE";
  if (set_value) *cacheable = false;  // the value comes from a literal

  if (IsProxySetting(name)) {
    info->proxy_handled = true;
    const std::string lower = Lower(name);
    if (reset) {
      AddEvent(info, SessionEventType::kProxyReset, lower);
    } else if (set_value) {
      // pgregion values are single words or tokens: no list quoting.
      AddEvent(info, SessionEventType::kProxySet, lower,
               FlattenSetArgs(lower, args).value_or(std::string()));
    }
    return;
  }
  if (ValidCustomName(name)) info->custom_parameter = Lower(name);
  if (name == "transaction_read_only" || name == "transaction_isolation" ||
      name == "transaction_deferrable") {
    // SET [LOCAL] transaction_read_only = on is SET TRANSACTION READ ONLY.
    info->kind = StatementKind::kTransaction;
    info->txn = TransactionControl::kSetTransaction;
    if (name == "transaction_read_only" && set_value) {
      auto ro = ParseBool(FlattenSetArgs(name, args).value_or(std::string()));
      if (ro) info->access = *ro ? AccessMode::kReadOnly : AccessMode::kReadWrite;
    }
    if (name == "transaction_isolation" && set_value) {
      info->isolation = ParseIsolationLevel(FlattenSetArgs(name, args).value_or(std::string()));
    }
    return;
  }
  if (info->set_local) {
    // Ends with the transaction: nothing to replay. A custom setting's value is
    // still reported (SessionState logs it as transaction-local): an
    // application may name its tenant per transaction (SET LOCAL
    // app.tenant_id = '42', issue 20).
    if (ValidCustomName(name)) {
      if (set_value) {
        if (std::optional<std::string> value = FlattenSetArgs(name, args)) {
          AddEvent(info, SessionEventType::kSet, name, std::move(*value));
        }
      } else if (reset) {
        AddEvent(info, SessionEventType::kReset, name);
      }
    }
    return;
  }

  if (set_value) {
    std::optional<std::string> value = FlattenSetArgs(name, args);
    if (name == "default_transaction_read_only" && value) {
      if (auto ro = ParseBool(*value)) {
        info->default_access =
            *ro ? DefaultAccessChange::kReadOnly : DefaultAccessChange::kReadWrite;
      }
    }
    if (value) {
      AddEvent(info, SessionEventType::kSet, name, std::move(*value));
    } else {
      AddEvent(info, SessionEventType::kSetUnreplayable, name);
    }
  } else if (reset) {
    AddEvent(info, SessionEventType::kReset, name);
    if (name == "default_transaction_read_only") {
      info->default_access = DefaultAccessChange::kReset;
    }
  } else {
    // VAR_SET_CURRENT (SET x FROM CURRENT) keeps the current value.
    info->untracked_session_change = kind != "VAR_SET_CURRENT";
  }
}

namespace {

// Whether every member of object `obj` is one of `allowed`.
bool OnlyMembers(const JsonTree& tree, Index obj, std::initializer_list<std::string_view> allowed) {
  for (Index m = tree.FirstChild(obj); m != kNone; m = tree.Next(m)) {
    if (std::find(allowed.begin(), allowed.end(), tree.node(m).key) == allowed.end()) {
      return false;
    }
  }
  return true;
}

}  // namespace

bool StatementAnalyzer::PlainSetConfig(Index body, StatementInfo* info, bool* cacheable) const {
  // SELECT [pg_catalog.]set_config('<custom name>', '<text>', <true|false>): one
  // target, no FROM, WHERE or any other clause, so the call runs exactly once.
  if (!OnlyMembers(tree_, body, {"targetList", "limitOption", "op"})) return false;
  const Index target = tree_.FirstChild(tree_.Member(body, "targetList"));
  if (target == kNone || tree_.Next(target) != kNone) return false;
  const Index res = tree_.Member(target, "ResTarget");
  if (!OnlyMembers(tree_, res, {"name", "val", "location"})) return false;
  const Index call = tree_.Member(tree_.Member(res, "val"), "FuncCall");
  if (call == kNone || !OnlyMembers(tree_, call, {"funcname", "args", "funcformat", "location"})) {
    return false;
  }
  std::vector<std::string> names;
  const Index funcname = tree_.Member(call, "funcname");
  for (Index part = tree_.FirstChild(funcname); part != kNone; part = tree_.Next(part)) {
    names.push_back(tree_.String(tree_.Member(tree_.Member(part, "String"), "sval")));
  }
  if (names.empty() || names.size() > 2 || names.back() != "set_config" ||
      (names.size() == 2 && names[0] != "pg_catalog")) {
    return false;
  }
  Index args[3] = {kNone, kNone, kNone};
  Index value_ref = kNone;  // the value as a ParamRef
  size_t n = 0;
  for (Index a = tree_.FirstChild(tree_.Member(call, "args")); a != kNone; a = tree_.Next(a)) {
    if (n == 3) return false;
    if (n == 1) value_ref = tree_.Member(a, "ParamRef");
    args[n++] = tree_.Member(a, "A_Const");
  }
  if (n != 3 || args[0] == kNone || (args[1] == kNone && value_ref == kNone) || args[2] == kNone) {
    return false;
  }
  const Index name_node = tree_.Member(tree_.Member(args[0], "sval"), "sval");
  const Index value_node = tree_.Member(tree_.Member(args[1], "sval"), "sval");
  // A driver binding the value: set_config('app.tenant_id', $1, true).
  const std::optional<int64_t> param =
      value_node == kNone ? tree_.Int(tree_.Member(value_ref, "number")) : std::nullopt;
  if (name_node == kNone || (value_node == kNone && (!param || *param < 1 || *param > 65535))) {
    return false;
  }
  // PostgreSQL folds the name as set_config() does (it accepts any case).
  const std::string name = Lower(tree_.String(name_node));
  if (!ValidCustomName(name)) return false;  // built-in settings keep the general rule
  std::optional<bool> local;
  if (const Index b = tree_.Member(args[2], "boolval"); b != kNone) {
    local = tree_.Bool(b, "boolval");  // libpg_query omits false
  } else if (const Index t = tree_.Member(tree_.Member(args[2], "sval"), "sval"); t != kNone) {
    local = ParseBool(tree_.String(t));
  }
  if (!local) return false;
  info->kind = StatementKind::kSession;
  info->write = false;
  info->reason = WriteReason::kNone;
  info->set_local = *local;
  info->custom_parameter = name;
  if (param) {
    info->value_param = static_cast<uint16_t>(*param);
    info->events.push_back(SessionEvent{SessionEventType::kSet, name, {}});
  } else {
    info->events.push_back(SessionEvent{SessionEventType::kSet, name, tree_.String(value_node)});
  }
  *cacheable = false;  // the event carries the literals
  return true;
}

void StatementAnalyzer::SessionCharacteristics(Index args, StatementInfo* info) const {
  // SET SESSION CHARACTERISTICS AS TRANSACTION ... sets the default_transaction_*
  // settings; report them as such so replay is one set_config() each.
  for (Index opt = tree_.FirstChild(args); opt != kNone; opt = tree_.Next(opt)) {
    Index def = tree_.Member(opt, "DefElem");
    std::string_view defname = tree_.RawString(def, "defname");
    Index a_const = tree_.Member(tree_.Member(def, "arg"), "A_Const");
    if (defname == "transaction_isolation") {
      std::string level = tree_.String(tree_.Member(tree_.Member(a_const, "sval"), "sval"));
      AddEvent(info, SessionEventType::kSet, "default_transaction_isolation", std::move(level));
    } else if (defname == "transaction_read_only" || defname == "transaction_deferrable") {
      auto v = tree_.Int(tree_.Member(tree_.Member(a_const, "ival"), "ival"));
      const bool on = v && *v != 0;
      if (defname == "transaction_read_only") {
        info->default_access =
            on ? DefaultAccessChange::kReadOnly : DefaultAccessChange::kReadWrite;
      }
      AddEvent(info, SessionEventType::kSet, StrCat("default_", defname), on ? "on" : "off");
    }
  }
}

void StatementAnalyzer::VariableShow(Index body, StatementInfo* info) const {
  info->kind = StatementKind::kRead;
  info->write = false;
  info->reason = WriteReason::kNone;
  const std::string name = tree_.String(tree_.Member(body, "name"));
  if (IsProxySetting(name)) {
    info->kind = StatementKind::kSession;
    info->proxy_handled = true;
    AddEvent(info, SessionEventType::kProxyShow, Lower(name));
  } else if (IsPrimaryStateSetting(Lower(name))) {
    // SHOW transaction_read_only is "on" on a standby, SHOW port its own, ...
    info->primary_state = true;
    info->primary_object = StrCat("SHOW ", Lower(name));
  }
}

std::optional<std::string> StatementAnalyzer::FlattenSetArgs(std::string_view name,
                                                             Index args) const {
  const bool quote = IsListQuoteSetting(name);
  std::string out;
  bool first = true;
  for (Index arg = tree_.FirstChild(args); arg != kNone; arg = tree_.Next(arg)) {
    if (!first) out.append(", ");
    first = false;
    // A TypeCast is SET TIME ZONE INTERVAL '...' HOUR TO MINUTE: Postgres
    // evaluates the interval; set_config() would read the text as a POSIX
    // zone with the opposite sign.
    Index a_const = tree_.Member(arg, "A_Const");
    if (a_const == kNone) return std::nullopt;
    if (Index s = tree_.Member(a_const, "sval"); s != kNone) {
      std::string v = tree_.String(tree_.Member(s, "sval"));
      out.append(quote ? QuoteIdentifier(v) : v);
    } else if (Index f = tree_.Member(a_const, "fval"); f != kNone) {
      out.append(tree_.String(tree_.Member(f, "fval")));
    } else if (tree_.Member(a_const, "ival") != kNone) {
      out.append(IntegerText(a_const));
    } else {
      return std::nullopt;
    }
  }
  return out;
}

std::string StatementAnalyzer::IntegerText(Index a_const) const {
  if (auto v = tree_.Int(tree_.Member(tree_.Member(a_const, "ival"), "ival"))) {
    return StrCat(*v);
  }
  // libpg_query 15-4.0.0 writes 0 and negative integers as "ival":{}: read
  // the number from the statement text at its location ("-5", "- 5", "0").
  auto loc = tree_.Int(tree_.Member(a_const, "location"));
  if (!loc || *loc < 0 || static_cast<size_t>(*loc) >= sql_.size()) return "0";
  std::string out;
  for (size_t i = static_cast<size_t>(*loc); i < sql_.size(); ++i) {
    char c = sql_[i];
    if (c == '-' && out.empty()) {
      out.push_back('-');
    } else if (c == '+' && out.empty()) {
      continue;
    } else if (c >= '0' && c <= '9') {
      out.push_back(c);
    } else if ((c == ' ' || c == '\t' || c == '\n' || c == '\r') && (out.empty() || out == "-")) {
      continue;
    } else {
      break;
    }
  }
  int64_t v = 0;
  auto res = std::from_chars(out.data(), out.data() + out.size(), v);
  if (res.ec != std::errc()) return "0";
  return StrCat(v);
}

}  // namespace pgregion::routing
