#include "proxy/session/session_state.h"

#include <algorithm>
#include <functional>

#include "protocol/message_builder.h"
#include "protocol/str_util.h"

namespace pgregion::proxy {

namespace r = ::pgregion::routing;
using r::SessionEventType;
using r::TransactionControl;

namespace {

bool IsPinEvent(SessionEventType t) {
  return t == SessionEventType::kTempObject || t == SessionEventType::kListen ||
         t == SessionEventType::kAdvisoryLock || t == SessionEventType::kPrepare ||
         t == SessionEventType::kDeclareWithHold || t == SessionEventType::kSetUnreplayable;
}

bool IsOn(std::string_view v) {
  return EqualsIgnoreCase(v, "on") || EqualsIgnoreCase(v, "true") || v == "1" ||
         EqualsIgnoreCase(v, "yes");
}

// PostgreSQL 15's GUC_REPORT parameters (guc.c): the server sends their value
// in a ParameterStatus whenever it changes. A fixed list: nothing per client.
constexpr std::string_view kReportedParameters[] = {"application_name",
                                                    "client_encoding",
                                                    "DateStyle",
                                                    "default_transaction_read_only",
                                                    "in_hot_standby",
                                                    "integer_datetimes",
                                                    "IntervalStyle",
                                                    "is_superuser",
                                                    "server_encoding",
                                                    "server_version",
                                                    "session_authorization",
                                                    "standard_conforming_strings",
                                                    "TimeZone"};

bool IsLoginParameter(std::string_view name) {
  constexpr std::string_view kProxy = "pgregion.";
  const bool proxy =
      name.size() >= kProxy.size() && EqualsIgnoreCase(name.substr(0, kProxy.size()), kProxy);
  return !proxy && !EqualsIgnoreCase(name, "application_name") && !IsReadOnlyParameter(name);
}

// A custom or extension parameter (a dotted name): an extension loaded on one
// backend may reserve its prefix there and refuse it.
bool IsCustomName(std::string_view name) { return name.find('.') != std::string_view::npos; }

bool IsIdentityKey(std::string_view name) {
  return name == SessionState::kSessionAuthorizationKey || name == SessionState::kRoleKey;
}

}  // namespace

void SessionState::Login(const SessionParams& reported, const SessionParams& startup) {
  startup_ = startup;
  // Servers log in with the client's startup parameters (login_params()), so
  // what they report is what PostgreSQL made of them ("German, DMY" for
  // "german,dmy"); the others are kept as the client sent them. Shared with
  // the pool's record until they differ (session_params.h).
  params_ = reported;
  for (const SessionParams::Entry& e : startup_.entries()) {
    if (IsReadOnlyParameter(e.name)) continue;
    if (!IsLoginParameter(e.name) || reported.Get(e.name) == nullptr) params_.Set(e.name, e.value);
  }
  // Idle clients keep these for as long as they stay: one copy per distinct set.
  startup_.Share();
  params_.Share();
  if (const std::string* v = params_.Get("default_transaction_read_only")) {
    default_read_only_ = IsOn(*v);
  }
  if (const std::string* v = params_.Get("default_transaction_isolation")) {
    default_serializable_ = EqualsIgnoreCase(*v, "serializable");
  }
}

bool SessionState::Reported(std::string_view name) {
  for (std::string_view r : kReportedParameters) {
    if (EqualsIgnoreCase(r, name)) return true;
  }
  return false;
}

SessionParams SessionState::login_params() const {
  SessionParams out;
  for (const SessionParams::Entry& e : startup_.entries()) {
    if (IsLoginParameter(e.name)) out.Set(e.name, e.value);
  }
  return out;
}

bool SessionState::OnStatement(const r::StatementInfo& s) {
  using Kind = Entry::Kind;
  if (unit_.size() + txn_.size() >= kMaxLogEntries) {
    // Past the log's bound the server alone knows what the transaction
    // changed: the session stays on its connection for good, which is closed
    // when it leaves, and the log is dropped.
    unreplayable_ = dirty_ = unresettable_ = log_overflowed_ = true;
    unit_.clear();
    txn_.clear();
  }
  if (log_overflowed_) return true;  // nothing is tracked any more
  bool pins = false;
  switch (s.txn) {
    case TransactionControl::kBegin:
      unit_.push_back({Kind::kBegin, {}, {}});
      break;
    case TransactionControl::kSavepoint:
      unit_.push_back({Kind::kSavepoint, {}, s.savepoint});
      break;
    case TransactionControl::kRelease:
      unit_.push_back({Kind::kRelease, {}, s.savepoint});
      break;
    case TransactionControl::kRollbackTo:
      unit_.push_back({Kind::kRollbackTo, {}, s.savepoint});
      break;
    case TransactionControl::kCommit:
    case TransactionControl::kPrepareTransaction:  // keeps the session's settings, as COMMIT
      unit_.push_back({Kind::kCommit, {}, {}});
      if (s.chain) unit_.push_back({Kind::kBegin, {}, {}});
      break;
    case TransactionControl::kRollback:
      unit_.push_back({Kind::kRollback, {}, {}});
      if (s.chain) unit_.push_back({Kind::kBegin, {}, {}});
      break;
    default:
      break;
  }
  if (s.untracked_session_change) {
    // set_config(), LOAD and the like: state only that connection has.
    unreplayable_ = dirty_ = unresettable_ = pins = true;
  }
  if (!s.custom_parameter.empty() && unit_custom_names_.size() < kMaxCustomNames) {
    unit_custom_names_.push_back(s.custom_parameter);
  }
  for (const r::SessionEvent& e : s.events) {
    if (IsPinEvent(e.type)) {
      Apply(e, /*committed=*/false);  // pinned as soon as the state may exist
      pins = true;
    }
    if (!s.set_local) {
      unit_.push_back({Kind::kEvent, e, {}});
    } else if (e.type == SessionEventType::kSet || e.type == SessionEventType::kReset) {
      unit_.push_back({Kind::kLocalEvent, e, {}});  // only EffectiveValue reads these
    }
  }
  if (s.default_access == r::DefaultAccessChange::kReadOnly) {
    unit_.push_back(
        {Kind::kEvent, {SessionEventType::kSet, "default_transaction_read_only", "on"}, {}});
  } else if (s.default_access == r::DefaultAccessChange::kReadWrite) {
    unit_.push_back(
        {Kind::kEvent, {SessionEventType::kSet, "default_transaction_read_only", "off"}, {}});
  }
  return pins;
}

void SessionState::OnUnitDone(char tx_status, bool failed, SessionParams* server,
                              const SessionParams* server_login) {
  using Kind = Entry::Kind;
  // A placeholder exists once its SET or RESET ran, committed or not. A
  // failed unit may have failed on that very statement (an invalid value, a
  // prefix an extension reserved there): its names are not counted, since a
  // name that is not there would make every later replay fail.
  if (!failed) {
    for (const std::string& name : unit_custom_names_) NoteCustomName(name);
  }
  unit_custom_names_.clear();
  if (failed) {
    // Which statement failed is not known: its unit's changes are dropped
    // (PostgreSQL drops them in the common single-statement case, and the
    // whole implicit transaction of a multi-statement query). Savepoints and
    // transaction boundaries are kept so a later ROLLBACK TO still matches.
    std::erase_if(unit_, [](const Entry& e) {
      return e.kind == Kind::kEvent || e.kind == Kind::kLocalEvent;
    });
    if (tx_status == 'E') unit_.push_back({Kind::kAborted, {}, {}});
  }
  txn_.insert(txn_.end(), std::make_move_iterator(unit_.begin()),
              std::make_move_iterator(unit_.end()));
  unit_.clear();
  if (tx_status == 'I' && failed) {
    // The error ended the transaction (outside a transaction block, or a
    // failed COMMIT): what was still open is gone.
    txn_.clear();
  }
  server_ = server;
  server_login_ = server_login;
  Resolve(tx_status == 'I');
  server_ = nullptr;
  server_login_ = nullptr;
}

// Walks the log as PostgreSQL's transaction and subtransaction stack would:
// events are kept per savepoint level, applied at COMMIT, dropped at ROLLBACK
// or ROLLBACK TO. Outside a transaction block (idle), what is left committed.
void SessionState::Resolve(bool idle) {
  using Kind = Entry::Kind;
  struct Level {
    std::string savepoint;
    std::vector<const r::SessionEvent*> events;
  };
  std::vector<Level> levels(1);
  bool in_block = false;
  bool aborted = false;
  size_t keep_from = 0;  // entries before this were resolved
  auto commit_all = [&] {
    for (const Level& l : levels) {
      for (const r::SessionEvent* e : l.events) {
        Apply(*e, /*committed=*/true);
        if (server_ != nullptr) MirrorOnServer(*e);
      }
    }
    levels.assign(1, Level());
  };
  for (size_t i = 0; i < txn_.size(); ++i) {
    const Entry& e = txn_[i];
    switch (e.kind) {
      case Kind::kEvent:
        levels.back().events.push_back(&e.event);
        break;
      case Kind::kLocalEvent:
        break;  // ends with its transaction: nothing to commit
      case Kind::kBegin:
        commit_all();  // what ran before, outside a block, has committed
        keep_from = i;
        in_block = true;
        aborted = false;
        break;
      case Kind::kSavepoint:
        levels.push_back({e.name, {}});
        break;
      case Kind::kRelease:
      case Kind::kRollbackTo: {
        size_t at = levels.size();
        while (at > 1 && !EqualsIgnoreCase(levels[at - 1].savepoint, e.name)) --at;
        if (at <= 1) break;  // no such savepoint: PostgreSQL refused it
        if (e.kind == Kind::kRelease) {
          for (size_t k = at - 1; k < levels.size(); ++k) {
            levels[at - 2].events.insert(levels[at - 2].events.end(), levels[k].events.begin(),
                                         levels[k].events.end());
          }
          levels.resize(at - 1);
        } else {
          levels.resize(at);
          levels.back().events.clear();
          aborted = false;
        }
        break;
      }
      case Kind::kAborted:
        aborted = true;
        break;
      case Kind::kCommit:
        // COMMIT of a failed transaction is a ROLLBACK.
        if (aborted) {
          levels.assign(1, Level());
        } else {
          commit_all();
        }
        in_block = aborted = false;
        keep_from = i + 1;
        break;
      case Kind::kRollback:
        levels.assign(1, Level());
        in_block = aborted = false;
        keep_from = i + 1;
        break;
    }
  }
  if (idle) {
    if (!in_block) commit_all();
    txn_.clear();
    return;
  }
  if (!in_block) {
    // Still in a transaction the log did not see begin (an implicit block of
    // a multi-statement query cannot outlive its unit): keep it all.
    keep_from = 0;
  }
  if (keep_from > 0)
    txn_.erase(txn_.begin(), txn_.begin() + static_cast<std::ptrdiff_t>(keep_from));
}

std::optional<std::string> SessionState::EffectiveValue(std::string_view name) const {
  using Kind = Entry::Kind;
  if (txn_.empty() && unit_.empty()) {
    // No transaction open and nothing of this unit logged (an autocommit
    // read): the committed value.
    const std::string* v = params_.Get(name);
    return v != nullptr ? std::optional<std::string>(*v) : std::nullopt;
  }
  auto get = [&](const SessionParams& p) -> std::optional<std::string> {
    const std::string* v = p.Get(name);
    return v != nullptr ? std::optional<std::string>(*v) : std::nullopt;
  };
  const std::optional<std::string> reset_value = get(startup_);
  // PostgreSQL's GUC stack for one setting: the value now, the value a COMMIT
  // would keep (SET LOCAL does not change it), and both at each savepoint.
  struct Saved {
    std::string savepoint;
    std::optional<std::string> current, at_commit;
  };
  std::optional<std::string> current = get(params_);
  std::optional<std::string> at_commit = current;
  std::optional<std::string> at_begin = current;
  std::vector<Saved> saves;
  bool in_block = false;
  bool aborted = false;
  auto find_savepoint = [&](const std::string& sp) {
    size_t at = saves.size();
    while (at > 0 && !EqualsIgnoreCase(saves[at - 1].savepoint, sp)) --at;
    return at;  // 0: none; else index + 1
  };
  auto visit = [&](const Entry& e, bool running_unit) {
    switch (e.kind) {
      case Kind::kEvent:
      case Kind::kLocalEvent: {
        if (aborted) return;
        const r::SessionEvent& ev = e.event;
        const bool all =
            ev.type == SessionEventType::kResetAll || ev.type == SessionEventType::kDiscardAll;
        if (!all && ev.name != name) return;
        std::optional<std::string> value;
        if (ev.type == SessionEventType::kSet) {
          value = ev.value;
        } else if (ev.type == SessionEventType::kReset || all) {
          value = reset_value;
        } else {
          return;
        }
        if (e.kind == Kind::kEvent) {
          current = at_commit = value;
        } else if (in_block || running_unit) {
          // Outside a block SET LOCAL lasts for its own (implicit) transaction:
          // the rest of its unit at most.
          current = value;
        }
        return;
      }
      case Kind::kBegin:
        in_block = true;
        aborted = false;
        at_begin = at_commit = current;
        saves.clear();
        return;
      case Kind::kSavepoint:
        saves.push_back({e.name, current, at_commit});
        return;
      case Kind::kRelease:
        if (size_t at = find_savepoint(e.name)) saves.resize(at - 1);
        return;
      case Kind::kRollbackTo:
        if (size_t at = find_savepoint(e.name)) {
          current = saves[at - 1].current;
          at_commit = saves[at - 1].at_commit;
          saves.resize(at);
          aborted = false;
        }
        return;
      case Kind::kAborted:
        aborted = true;
        return;
      case Kind::kCommit:
        current = aborted ? at_begin : at_commit;  // COMMIT of a failed transaction rolls back
        at_commit = current;
        in_block = aborted = false;
        saves.clear();
        return;
      case Kind::kRollback:
        current = at_commit = at_begin;
        in_block = aborted = false;
        saves.clear();
        return;
    }
  };
  // An open transaction's log begins with its BEGIN (Resolve keeps it from there).
  for (const Entry& e : txn_) visit(e, false);
  for (const Entry& e : unit_) visit(e, true);
  return current;
}

void SessionState::SetIdentity(const r::SessionEvent& e) {
  const bool set = e.type == SessionEventType::kSet;
  if (e.name == "session_authorization") {
    // Switching the session user also resets the role (PostgreSQL 15).
    params_.Erase(kRoleKey);
    if (set) {
      params_.Set(kSessionAuthorizationKey, e.value);
    } else {
      params_.Erase(kSessionAuthorizationKey);
    }
    return;
  }
  if (set && !EqualsIgnoreCase(e.value, "none")) {
    params_.Set(kRoleKey, e.value);
  } else {
    params_.Erase(kRoleKey);
  }
}

void SessionState::Apply(const r::SessionEvent& e, bool committed) {
  switch (e.type) {
    case SessionEventType::kSet:
      if (e.name.starts_with("pgregion.")) return;
      if (e.name == "session_authorization" || e.name == "role") {
        SetIdentity(e);
        return;
      }
      if (!Reported(e.name)) params_.Set(e.name, e.value);
      if (e.name == "default_transaction_read_only") default_read_only_ = IsOn(e.value);
      if (e.name == "default_transaction_isolation") {
        default_serializable_ = EqualsIgnoreCase(e.value, "serializable");
      }
      return;
    case SessionEventType::kReset:
      if (e.name == "session_authorization" || e.name == "role") {
        SetIdentity(e);
        return;
      }
      // The server goes back to its login default, which is what the client
      // saw at its own login unless it set the parameter at startup.
      if (Reported(e.name)) {
        // ParameterStatus said it.
      } else if (const std::string* v = startup_.Get(e.name)) {
        params_.Set(e.name, *v);
      } else {
        params_.Erase(e.name);
      }
      if (e.name == "default_transaction_read_only") default_read_only_ = false;
      if (e.name == "default_transaction_isolation") default_serializable_ = false;
      return;
    case SessionEventType::kDiscardAll:
      protocol_statements_dropped_ = true;
      // A LOADed library stays (unresettable_ too).
      temp_objects_ = advisory_locks_ = unreplayable_ = dirty_ = false;
      named_.reset();
      params_.Erase(kSessionAuthorizationKey);
      params_.Erase(kRoleKey);
      [[fallthrough]];
    case SessionEventType::kResetAll: {
      // RESET ALL leaves the identity alone (GUC_NO_RESET_ALL).
      default_read_only_ = default_serializable_ = false;
      std::vector<std::string> drop;
      for (const SessionParams::Entry& p : params_.entries()) {
        if (!IsReadOnlyParameter(p.name) && !IsIdentityKey(p.name) && !startup_.Get(p.name) &&
            !Reported(p.name)) {
          drop.push_back(p.name);
        }
      }
      for (const std::string& name : drop) params_.Erase(name);
      for (const SessionParams::Entry& s : startup_.entries()) {
        if (!IsReadOnlyParameter(s.name) && !Reported(s.name)) params_.Set(s.name, s.value);
      }
      if (const std::string* v = params_.Get("default_transaction_read_only")) {
        default_read_only_ = IsOn(*v);
      }
      return;
    }
    case SessionEventType::kDiscardTemp:
      if (committed) temp_objects_ = false;
      return;
    case SessionEventType::kTempObject:
      temp_objects_ = dirty_ = true;
      return;
    case SessionEventType::kSetUnreplayable:
      unreplayable_ = dirty_ = true;  // DISCARD ALL resets a SET, whatever its value
      return;
    case SessionEventType::kAdvisoryLock:
      advisory_locks_ = dirty_ = true;
      return;
    case SessionEventType::kAdvisoryUnlockAll:
      if (committed) advisory_locks_ = false;
      return;
    case SessionEventType::kListen:
      AddNamed(&Named::listens, e.name);
      dirty_ = true;
      return;
    case SessionEventType::kUnlisten:
      if (committed) EraseNamed(&Named::listens, e.name);
      return;
    case SessionEventType::kUnlistenAll:
      if (committed) ClearNamed(&Named::listens);
      return;
    case SessionEventType::kPrepare:
      AddNamed(&Named::sql_prepared, e.name);
      dirty_ = true;
      return;
    case SessionEventType::kDeallocate:
      if (committed) EraseNamed(&Named::sql_prepared, e.name);
      return;
    case SessionEventType::kDeallocateAll:
      if (!committed) return;
      ClearNamed(&Named::sql_prepared);
      protocol_statements_dropped_ = true;  // DEALLOCATE ALL drops those too
      return;
    case SessionEventType::kDeclareWithHold:
      AddNamed(&Named::held_cursors, e.name);
      dirty_ = true;
      return;
    case SessionEventType::kClose:
      if (committed) EraseNamed(&Named::held_cursors, e.name);
      return;
    case SessionEventType::kCloseAll:
      if (committed) ClearNamed(&Named::held_cursors);
      return;
    case SessionEventType::kAdvisoryUnlock:
    case SessionEventType::kDiscardPlans:
    case SessionEventType::kDiscardSequences:
    case SessionEventType::kProxySet:
    case SessionEventType::kProxyReset:
    case SessionEventType::kProxyShow:
      return;
  }
}

// What a committed change did to the server connection it ran on, so that its
// record (ServerConnection::params) says what it really has: RESET goes back
// to that server's login value, not to the client's startup value.
void SessionState::MirrorOnServer(const r::SessionEvent& e) {
  SessionParams* server = server_;
  auto login_value = [&](std::string_view name) {
    return server_login_ != nullptr ? server_login_->Get(name) : nullptr;
  };
  switch (e.type) {
    case SessionEventType::kSet:
    case SessionEventType::kReset:
      if (e.name.starts_with("pgregion.")) return;
      if (e.name == "session_authorization" || e.name == "role") {
        const bool set = e.type == SessionEventType::kSet &&
                         !(e.name == "role" && EqualsIgnoreCase(e.value, "none"));
        if (e.name == "session_authorization") server->Erase(kRoleKey);
        std::string_view key = e.name == "role" ? kRoleKey : kSessionAuthorizationKey;
        if (set) {
          server->Set(key, e.value);
        } else {
          server->Erase(key);
        }
        return;
      }
      if (Reported(e.name)) return;  // ServerConnection records its ParameterStatus
      if (e.type == SessionEventType::kSet) {
        server->Set(e.name, e.value);
      } else if (const std::string* v = login_value(e.name)) {
        server->Set(e.name, *v);
      } else {
        server->Erase(e.name);
      }
      return;
    case SessionEventType::kDiscardAll:
      server->Erase(kSessionAuthorizationKey);
      server->Erase(kRoleKey);
      [[fallthrough]];
    case SessionEventType::kResetAll: {
      std::vector<std::string> drop;
      for (const SessionParams::Entry& p : server->entries()) {
        if (!IsReadOnlyParameter(p.name) && !IsIdentityKey(p.name)) drop.push_back(p.name);
      }
      for (const std::string& name : drop) server->Erase(name);
      if (server_login_ != nullptr) {
        for (const SessionParams::Entry& p : server_login_->entries()) {
          if (!IsReadOnlyParameter(p.name)) server->Set(p.name, p.value);
        }
      }
      return;
    }
    default:
      return;
  }
}

bool SessionState::pinned() const {
  if (temp_objects_ || advisory_locks_ || unreplayable_ || unresettable_) return true;
  return named_ != nullptr && (named_->overflow || !named_->listens.empty() ||
                               !named_->sql_prepared.empty() || !named_->held_cursors.empty());
}

void SessionState::AddNamed(absl::flat_hash_set<std::string> Named::*set, const std::string& name) {
  if (named_ == nullptr) named_ = std::make_unique<Named>();
  Named& n = *named_;
  if (n.overflow) return;
  if (n.listens.size() + n.sql_prepared.size() + n.held_cursors.size() >= kMaxNamed) {
    // Forgetting which names exist is safe only while pinned: the session
    // keeps its connection until DISCARD ALL.
    n = Named();
    n.overflow = true;
    return;
  }
  (n.*set).insert(name);
}

void SessionState::EraseNamed(absl::flat_hash_set<std::string> Named::*set,
                              const std::string& name) {
  if (named_ != nullptr && !named_->overflow) (named_.get()->*set).erase(name);
}

void SessionState::ClearNamed(absl::flat_hash_set<std::string> Named::*set) {
  if (named_ != nullptr && !named_->overflow) (named_.get()->*set).clear();
}

void SessionState::ForgetCustomParameter(const std::string& name) {
  params_.Erase(name);
  auto it = std::lower_bound(custom_names_.begin(), custom_names_.end(), name);
  if (it == custom_names_.end() || *it != name) return;
  custom_names_.erase(it);
  std::string joined;
  for (const std::string& n : custom_names_) StrAppend(&joined, n, "\n");
  custom_names_hash_ = custom_names_.empty() ? 0 : (std::hash<std::string>()(joined) | 1);
}

void SessionState::NoteCustomName(const std::string& name) {
  auto it = std::lower_bound(custom_names_.begin(), custom_names_.end(), name);
  if (it != custom_names_.end() && *it == name) return;
  if (custom_names_.size() >= kMaxCustomNames) {
    // Past the bound the names are not followed: the session keeps its
    // connection, which is closed when it leaves.
    unreplayable_ = dirty_ = unresettable_ = true;
    return;
  }
  custom_names_.insert(it, name);
  std::string joined;
  for (const std::string& n : custom_names_) StrAppend(&joined, n, "\n");
  custom_names_hash_ = std::hash<std::string>()(joined) | 1;  // never 0 (none)
}

SessionState::ReplayPlan SessionState::Replay(SessionParams* server,
                                              uint64_t server_custom_names) const {
  ReplayPlan plan;
  const bool create_names = server_custom_names != custom_names_hash_;
  if (server->SameAs(params_) && !create_names) return plan;
  const std::string* want_auth = params_.Get(kSessionAuthorizationKey);
  const std::string* want_role = params_.Get(kRoleKey);
  auto same = [](const std::string* a, const std::string* b) {
    return (a == nullptr && b == nullptr) || (a != nullptr && b != nullptr && *a == *b);
  };
  // set_config() parses values like the config file does, so list settings
  // such as search_path keep their elements (SET name = 'a, b' would not).
  std::string sets;
  std::vector<std::pair<std::string, std::string>> set_values;
  for (const SessionParams::Entry& e : params_.entries()) {
    if (IsReadOnlyParameter(e.name) || IsIdentityKey(e.name)) continue;
    const std::string* have = server->Get(e.name);
    if (have != nullptr && *have == e.value) continue;
    const std::string call = StrCat("pg_catalog.set_config(", protocol::QuoteLiteral(e.name), ", ",
                                    protocol::QuoteLiteral(e.value), ", false)");
    if (IsCustomName(e.name)) {
      plan.custom.push_back({e.name, StrCat("SELECT ", call)});
    } else {
      StrAppend(&sets, sets.empty() ? "SELECT " : ", ", call);
    }
    set_values.emplace_back(e.name, e.value);
  }
  std::vector<std::string> stale;
  for (const SessionParams::Entry& e : server->entries()) {
    if (!IsReadOnlyParameter(e.name) && !IsIdentityKey(e.name) && params_.Get(e.name) == nullptr) {
      stale.push_back(e.name);
    }
  }
  const bool settings_differ = !sets.empty() || !stale.empty();
  const bool identity_differs = !same(want_auth, server->Get(kSessionAuthorizationKey)) ||
                                !same(want_role, server->Get(kRoleKey));
  const bool server_has_identity =
      server->Get(kSessionAuthorizationKey) != nullptr || server->Get(kRoleKey) != nullptr;
  if (server_has_identity && (settings_differ || identity_differs)) {
    // Settings are replayed as the login user, as the client set them before
    // it switched (a superuser-only one fails as anyone else); RESET SESSION
    // AUTHORIZATION also resets the role.
    plan.settings.append("RESET SESSION AUTHORIZATION;");
    server->Erase(kSessionAuthorizationKey);
    server->Erase(kRoleKey);
  }
  if (!sets.empty()) StrAppend(&plan.settings, sets, ";");
  for (const auto& [name, value] : set_values) server->Set(name, value);
  for (const std::string& name : stale) {
    const std::string reset = StrCat("RESET ", protocol::QuoteIdentifier(name), ";");
    if (IsCustomName(name)) {
      plan.custom.push_back({name, reset});
    } else {
      plan.settings.append(reset);
    }
    server->Erase(name);
  }
  if (create_names) {
    // The placeholders this session made on its other connections (RESET
    // creates one, with the empty value a placeholder starts with).
    for (const std::string& name : custom_names_) {
      if (params_.Get(name) != nullptr) continue;  // set above (or already there)
      plan.custom.push_back({name, StrCat("RESET ", protocol::QuoteIdentifier(name), ";")});
    }
  }
  if (!same(want_auth, server->Get(kSessionAuthorizationKey)) ||
      !same(want_role, server->Get(kRoleKey))) {
    if (want_auth != nullptr) {
      StrAppend(&plan.identity, "SET SESSION AUTHORIZATION ", protocol::QuoteLiteral(*want_auth),
                ";");
      server->Set(kSessionAuthorizationKey, *want_auth);
    }
    if (want_role != nullptr) {
      StrAppend(&plan.identity, "SET ROLE ", protocol::QuoteLiteral(*want_role), ";");
      server->Set(kRoleKey, *want_role);
    }
  }
  return plan;
}

}  // namespace pgregion::proxy
