// ClientSession: what the statements of a unit mean for routing and for the
// session state the proxy tracks (parameters, pins, pgregion.* settings).

#include "protocol/message_builder.h"
#include "protocol/messages.h"
#include "protocol/sqlstate.h"
#include "protocol/str_util.h"
#include "proxy/backend/server_connection.h"
#include "proxy/session/client_session.h"
#include "proxy/session/session_env.h"
#include "proxy/session/statement_name.h"
#include "routing/statement_classifier.h"

namespace pgregion::proxy {

namespace p = ::pgregion::protocol;
namespace r = ::pgregion::routing;
using r::SessionEventType;

namespace {

constexpr std::string_view kProxyPrefix = "pgregion.";

r::RoutePreference ToPreference(r::StatementHints::Route route) {
  switch (route) {
    case r::StatementHints::Route::kPrimary:
      return r::RoutePreference::kPrimary;
    case r::StatementHints::Route::kReplica:
      return r::RoutePreference::kReplica;
    case r::StatementHints::Route::kAuto:
      return r::RoutePreference::kAuto;
  }
  return r::RoutePreference::kAuto;
}

std::string_view PreferenceName(r::RoutePreference p) {
  switch (p) {
    case r::RoutePreference::kPrimary:
      return "primary";
    case r::RoutePreference::kReplica:
      return "replica";
    case r::RoutePreference::kAuto:
      return "auto";
  }
  return "auto";
}

// The text of a Query body (NUL-terminated).
std::string_view QueryText(std::string_view body) {
  size_t nul = body.find('\0');
  return nul == std::string_view::npos ? body : body.substr(0, nul);
}

}  // namespace

bool ClientSession::InspectFrame(const p::Frame& frame) {
  r::StatementClassifier& classifier = env_->classifier();
  switch (frame.type) {
    case 'Q': {
      r::ClassifyResult res = classifier.Classify(QueryText(frame.body));
      if (res->proxy_handled) return !AnswerProxyStatements(*res);
      if (DeferBegin(*res, res.hints, QueryText(frame.body))) return false;
      if (deferred_begin_ && EndDeferredBegin(*res)) return false;
      Accumulate(*res, res.hints);
      return true;
    }
    case 'P': {
      absl::StatusOr<p::Parse> parse = p::ParseParse(frame.body);
      if (!parse.ok()) return true;  // the server reports the malformed message
      // The body after the name: query text and parameter types, as sent.
      std::string_view tail = frame.body.substr(parse->name.size() + 1);
      ClientStatement* st = nullptr;
      if (parse->name.empty()) {
        if (unnamed_statement_ == nullptr) unnamed_statement_ = std::make_unique<ClientStatement>();
        st = unnamed_statement_.get();
        ++unnamed_generation_;
      } else {
        st = &statements_[std::string(parse->name)];
      }
      // Drivers re-parse the same unnamed text for every execution: keep the
      // classification of an unchanged statement instead of redoing it.
      if (st->classification == nullptr || st->parse_tail != tail) {
        r::ClassifyResult res = classifier.ClassifyParse(parse->query);
        st->parse_tail.assign(tail);
        st->classification = std::move(res.classification);
        st->hints = std::move(res.hints);
        st->server_name = parse->name.empty() ? std::string() : ServerStatementName(tail);
      }
      // Session effects count when the statement is bound (run); the parse
      // itself goes where the statement would run (a replica may not have the
      // tables of a write yet, and it never runs one).
      unit_.write |= st->classification->write;
      unit_.parse_error |= st->classification->parse_error;
      unit_.too_complex |= st->classification->too_complex;
      if (st->hints.route) unit_.hint = ToPreference(*st->hints.route);
      return true;
    }
    case 'B': {
      absl::StatusOr<p::Bind> bind = p::ParseBind(frame.body);
      const ClientStatement* st = nullptr;
      if (bind.ok() && bind->statement.empty()) {
        st = unnamed_statement_.get();
      } else if (bind.ok()) {
        auto it = statements_.find(std::string(bind->statement));
        if (it != statements_.end()) st = &it->second;
      }
      if (st == nullptr || st->classification == nullptr) {
        unit_.write = true;  // unknown statement: fail closed
        unit_.durability_unknown = true;
      } else if (st->classification->statements.size() == 1 &&
                 st->classification->statements[0].value_param > 0) {
        Accumulate(WithBoundValue(*st->classification, bind->rest), st->hints);
      } else {
        Accumulate(*st->classification, st->hints);
      }
      return true;
    }
    case 'C': {
      absl::StatusOr<p::CloseDescribe> close = p::ParseCloseDescribe(frame.body);
      if (close.ok() && close->target == 'S' && !close->name.empty()) {
        statements_.erase(std::string(close->name));
      }
      return true;
    }
    case 'F':
      unit_.write = true;               // fast-path calls (large objects) may write
      unit_.durability_unknown = true;  // and may call any function
      return true;
    default:
      return true;
  }
}

// set_config('<name>', $n, ...) bound: its value is the Bind's parameter n.
// One that cannot be read (malformed) is what any other set_config() call is:
// a change the proxy does not track, on the primary. NULL resets the setting,
// as set_config() does.
r::Classification ClientSession::WithBoundValue(const r::Classification& c,
                                                std::string_view bind_rest) {
  r::Classification bound = c;
  r::StatementInfo& s = bound.statements[0];
  absl::StatusOr<p::BindParameter> param =
      p::ParseBindParameter(bind_rest, static_cast<size_t>(s.value_param) - 1);
  if (!param.ok() || s.events.size() != 1) {
    s.events.clear();
    s.untracked_session_change = true;
    s.write = bound.write = true;
    s.reason = r::WriteReason::kWriteFunction;
    return bound;
  }
  // A text parameter's binary form is its text (set_config() takes text).
  if (param->value) {
    s.events[0].value.assign(param->value->data(), param->value->size());
  } else {
    s.events[0].type = SessionEventType::kReset;
  }
  return bound;
}

void ClientSession::Accumulate(const r::Classification& c, const r::StatementHints& hints) {
  unit_.write |= c.write;
  unit_.parse_error |= c.parse_error;
  unit_.too_complex |= c.too_complex;
  unit_.durability_unknown |= c.parse_error || c.too_complex;  // unread text may be anything
  if (hints.route) unit_.hint = ToPreference(*hints.route);
  if (hints.optimistic) unit_.optimistic = hints.optimistic;
  if (hints.tenant) unit_.tenant = hints.tenant;
  AddConsistencyHints(hints);
  for (const r::StatementInfo& s : c.statements) {
    if (unit_.statements == 0) {
      txn_mode_.StartUnit({session_.default_read_only(), session_.default_serializable()});
      if (deferred_begin_) txn_mode_.OnStatement(DeferredBeginInfo());  // it opens the transaction
    }
    // What a standby refuses (serializable, read-write requests) or shows
    // differently (pg_locks, pg_stat_*, sequences this session advanced).
    txn_mode_.OnStatement(s);
    unit_.primary_state |= s.primary_state || primary_relations_.Reads(s);
    primary_relations_.OnStatement(s);
    unit_.sequence_state |= s.function == "currval" || s.function == "lastval";
    for (const r::SessionEvent& e : s.events) {
      if (e.type == SessionEventType::kDiscardSequences ||
          e.type == SessionEventType::kDiscardAll) {
        sequence_server_ = 0;  // the sequence state is gone wherever it was
      }
    }
    const bool set_read_only =
        s.txn == r::TransactionControl::kSetTransaction && s.access == r::AccessMode::kReadOnly;
    if (unit_.statements == 0 && deferred_begin_) {
      // The first statement after a deferred BEGIN opens the transaction.
      unit_.begins_transaction = true;
      unit_.read_only_transaction = DeferredBeginReadOnly() || set_read_only;
    }
    if (s.txn == r::TransactionControl::kBegin) {
      unit_.begins_transaction = true;
      unit_.read_only_transaction =
          s.access == r::AccessMode::kReadOnly ||
          (s.access == r::AccessMode::kUnspecified && session_.default_read_only());
    } else if (unit_.after_begin && set_read_only) {
      unit_.read_only_transaction = true;  // BEGIN; SET TRANSACTION READ ONLY; ...
    }
    unit_.after_begin = s.txn == r::TransactionControl::kBegin;
    unit_.ends_transaction |= s.txn == r::TransactionControl::kCommit ||
                              s.txn == r::TransactionControl::kRollback ||
                              s.txn == r::TransactionControl::kPrepareTransaction;
    unit_.copy_in |= s.copy_in;
    unit_.durability_unknown |= s.durability_unknown;
    NoteOptimisticFacts(s, &unit_);
    if (unit_.statements == 0) {
      unit_.plain_begin = s.txn == r::TransactionControl::kBegin &&
                          s.access == r::AccessMode::kUnspecified && s.events.empty() &&
                          !hints.route;
    }
    ++unit_.statements;
    if (!s.databases.empty()) VacateDatabases(s);
    // Pinned as soon as the state may exist; unpinned only once it is gone for sure.
    if (session_.OnStatement(s)) unit_.pins = true;
  }
}

// What an optimistic transaction needs to know of a statement (Unit's
// comment in client_session.h).
void ClientSession::NoteOptimisticFacts(const r::StatementInfo& s, Unit* unit) {
  unit->session_statement |= s.kind == r::StatementKind::kSession || !s.events.empty() ||
                             s.set_local || s.untracked_session_change ||
                             !s.custom_parameter.empty();
  unit->chain |= s.chain;
  unit->read_write_begin |=
      s.txn == r::TransactionControl::kBegin && s.access == r::AccessMode::kReadWrite;
  if (!s.write || unit->write_reason) return;
  switch (s.reason) {
    case r::WriteReason::kLockingClause:
      unit->write_reason = OptimisticMoveReason::kLocking;
      break;
    case r::WriteReason::kUnknownFunction:
    case r::WriteReason::kExecute:
    case r::WriteReason::kParseError:
    case r::WriteReason::kTooComplex:
      unit->write_reason = OptimisticMoveReason::kUnknown;
      break;
    default:
      unit->write_reason = OptimisticMoveReason::kWrite;
      break;
  }
}

r::RouteContext ClientSession::UnitRouteContext() {
  r::RouteContext ctx;
  ctx.cluster = &env_->cluster_view();
  ctx.now_ms = env_->NowMs();
  ctx.write = unit_.write;
  ctx.parse_error = unit_.parse_error;
  ctx.too_complex = unit_.too_complex;
  ctx.begins_transaction = unit_.begins_transaction;
  ctx.read_only_transaction = unit_.read_only_transaction;
  ctx.pinned = unit_.pins || pinned();
  ctx.serializable = txn_mode_.serializable();
  ctx.read_write_requested = txn_mode_.read_write_requested();
  ctx.primary_state = unit_.primary_state;
  ctx.reads_sequence_state = unit_.sequence_state;
  ctx.session_pooling = env_->config().pool.mode == PoolMode::kSession;
  ctx.preference = unit_.hint != r::RoutePreference::kAuto ? unit_.hint : route_pref_;
  ctx.preference_from_hint = unit_.hint != r::RoutePreference::kAuto;
  ResolveTenant(&ctx);
  ApplyConsistency(&ctx);
  sending_.Add(unit_);
  routed_unit_ = {.session_statement = unit_.session_statement,
                  .read_write_begin = unit_.read_write_begin,
                  .ends_transaction = unit_.ends_transaction,
                  .chain = unit_.chain,
                  .optimistic = unit_.optimistic,
                  .write_reason = unit_.write_reason,
                  .statements = unit_.statements};
  if (deferred_begin_) {
    // Units without a Bind (Parse/Describe only) accumulate no statements.
    ctx.begins_transaction = true;
    if (unit_.statements == 0) ctx.read_only_transaction = DeferredBeginReadOnly();
    if (deferred_begin_mode_.access == r::AccessMode::kReadWrite) {
      routed_unit_.read_write_begin = true;
    }
    if (deferred_begin_mode_.optimistic_off) routed_unit_.optimistic = false;
    deferred_begin_ = false;
    prepend_begin_ = true;
  }
  ctx.optimistic = OptimisticEligible(ctx);
  if (ctx.begins_transaction && server_ == nullptr) primary_after_mismatch_ = false;
  unit_ = Unit();
  return ctx;
}

r::StatementInfo ClientSession::DeferredBeginInfo() const {
  r::StatementInfo info;
  info.kind = deferred_begin_mode_.kind;
  info.write = false;
  info.txn = r::TransactionControl::kBegin;
  info.access = deferred_begin_mode_.access;
  info.isolation = deferred_begin_mode_.isolation;
  return info;
}

bool ClientSession::DeferredBeginReadOnly() const {
  const r::AccessMode access = deferred_begin_mode_.access;
  return access == r::AccessMode::kReadOnly ||
         (access == r::AccessMode::kUnspecified && session_.default_read_only());
}

bool ClientSession::MayDeferBegin() const {
  return env_->config().pool.mode == PoolMode::kTransaction && server_ == nullptr &&
         state_ == State::kIdle && !collecting_ && !deferred_begin_ && !pinned();
}

bool ClientSession::DeferBegin(const r::Classification& c, const r::StatementHints& hints,
                               std::string_view text) {
  if (!MayDeferBegin() || !to_server_.empty() || hints.route || c.statements.size() != 1) {
    return false;
  }
  const r::StatementInfo& s = c.statements[0];
  if (s.txn != r::TransactionControl::kBegin || !s.events.empty()) return false;
  // With its options (READ ONLY, ISOLATION LEVEL ...): the transaction still
  // starts where its first statement needs it (BEGIN READ ONLY; SET
  // TRANSACTION READ WRITE goes to the primary, which alone accepts it).
  deferred_begin_ = true;
  deferred_begin_mode_ = {s.kind, s.access, s.isolation,
                          hints.optimistic.has_value() && !*hints.optimistic};
  begin_text_.assign(text.data(), text.size());
  std::string out;
  p::AppendCommandComplete(&out, "BEGIN");
  p::AppendReadyForQuery(&out, 'T');
  stream_->Write(out);
  stream_->Flush();
  return true;
}

bool ClientSession::DeferExtendedBegin() {
  if (!MayDeferBegin() || unit_open_ || unit_.statements != 1 || !unit_.plain_begin ||
      unit_.hint != r::RoutePreference::kAuto || unnamed_statement_ == nullptr) {
    return false;
  }
  // Only the unnamed statement and portal, one Execute, ending with the Sync:
  // the replies are then fixed, and nothing is left on a server to find later.
  std::string out;
  int executes = 0;
  std::string_view rest = to_server_;
  p::Frame f;
  while (!rest.empty()) {
    if (!p::SplitWholeMessage(&rest, &f)) return false;
    const std::string_view body = f.body;
    switch (f.type) {
      case 'P':
        if (body.empty() || body[0] != '\0') return false;
        p::MessageWriter(&out).Begin('1').End();
        break;
      case 'B':
        if (body.size() < 2 || body[0] != '\0' || body[1] != '\0') return false;
        p::MessageWriter(&out).Begin('2').End();
        break;
      case 'D':
        if (body.size() != 2 || body[1] != '\0') return false;
        if (body[0] == 'S') {
          p::MessageWriter(&out).Begin('t').AddInt16(0).End();
        } else if (body[0] != 'P') {
          return false;
        }
        p::MessageWriter(&out).Begin('n').End();
        break;
      case 'E':
        if (++executes > 1) return false;
        p::AppendCommandComplete(&out, "BEGIN");
        break;
      case 'S':
        if (!rest.empty() || executes != 1) return false;
        p::AppendReadyForQuery(&out, 'T');
        break;
      default:
        return false;
    }
  }
  std::string_view tail = unnamed_statement_->parse_tail;
  begin_text_.assign(tail.substr(0, tail.find('\0')));
  deferred_begin_ = true;
  deferred_begin_mode_ = DeferredBeginMode();
  to_server_.clear();
  dispatched_bytes_ = 0;
  unit_ = Unit();
  stream_->Write(out);
  stream_->Flush();
  return true;
}

bool ClientSession::EndDeferredBegin(const r::Classification& c) {
  if (c.statements.size() != 1 || c.statements[0].chain) return false;
  const r::TransactionControl txn = c.statements[0].txn;
  if (txn != r::TransactionControl::kCommit && txn != r::TransactionControl::kRollback) {
    return false;
  }
  // Nothing ran: the transaction ends where it never started.
  deferred_begin_ = false;
  tenant_local_.reset();
  std::string out;
  p::AppendCommandComplete(&out, txn == r::TransactionControl::kCommit ? "COMMIT" : "ROLLBACK");
  p::AppendReadyForQuery(&out, 'I');
  stream_->Write(out);
  stream_->Flush();
  return true;
}

// SET / RESET / SHOW of pgregion.* settings never reach Postgres.
bool ClientSession::AnswerProxyStatements(const r::Classification& c) {
  if (server_ != nullptr && !server_->tracker().empty()) return false;  // keep reply order
  char status = server_ != nullptr ? server_->tx_status() : (deferred_begin_ ? 'T' : 'I');
  std::string out;
  if (c.mixed_proxy) {
    p::AppendErrorResponse(&out, {.sqlstate = p::sqlstate::kFeatureNotSupported,
                                  .message = "pgregion.* settings cannot share a query with other "
                                             "statements"});
  } else {
    for (const r::StatementInfo& s : c.statements) {
      for (const r::SessionEvent& e : s.events) {
        std::string error;
        if (e.type == SessionEventType::kProxyShow) {
          std::string value = ProxySetting(e.name);
          if (value.empty() && e.name != "pgregion.ryw_token" &&
              e.name != "pgregion.max_staleness" && e.name != "pgregion.tenant") {
            error = StrCat("unrecognized configuration parameter \"", e.name, "\"");
          } else {
            p::AppendRowDescription(&out, {e.name});
            p::AppendDataRow(&out, {value});
            p::AppendCommandComplete(&out, "SHOW");
            continue;
          }
        } else if (e.type == SessionEventType::kProxySet ||
                   e.type == SessionEventType::kProxyReset) {
          std::string value = e.type == SessionEventType::kProxySet ? e.value : "";
          if (s.set_local && e.name == "pgregion.tenant") {
            // Until the transaction ends; outside one it does nothing, as
            // PostgreSQL's SET LOCAL (which warns).
            if (status != 'I') tenant_local_ = value;
            p::AppendCommandComplete(&out, e.type == SessionEventType::kProxySet ? "SET" : "RESET");
            continue;
          }
          if (SetProxySetting(e.name, value, &error)) {
            p::AppendCommandComplete(&out, e.type == SessionEventType::kProxySet ? "SET" : "RESET");
            continue;
          }
        } else {
          continue;
        }
        bool unknown = StartsWith(error, "unrecognized");
        p::AppendErrorResponse(&out, {.sqlstate = unknown ? p::sqlstate::kUndefinedObject
                                                          : p::sqlstate::kInvalidParameterValue,
                                      .message = error});
        // (A deferred BEGIN has no server transaction to abort: it stays 'T'.)
        if (status == 'T' && !deferred_begin_) status = 'E';
        break;
      }
    }
  }
  p::AppendReadyForQuery(&out, status);
  stream_->Write(out);
  stream_->Flush();
  return true;
}

bool ClientSession::SetProxySetting(std::string_view name, std::string_view value,
                                    std::string* error) {
  if (name == "pgregion.route") {
    if (value.empty()) {  // RESET
      route_pref_ = default_route_;
      return true;
    }
    std::optional<r::StatementHints::Route> route = r::StatementHints::ParseRoute(value);
    if (!route) {
      *error = StrCat("invalid value for parameter \"pgregion.route\": \"", value,
                      "\" (expected primary, replica or auto)");
      return false;
    }
    route_pref_ = ToPreference(*route);
    return true;
  }
  if (name == "pgregion.consistency") {
    if (value.empty()) {  // RESET
      SetConsistency(default_consistency_);
      consistency_explicit_ = false;
      return true;
    }
    consistency_explicit_ = true;
    std::optional<r::StatementHints::Consistency> level =
        r::StatementHints::ParseConsistency(value);
    if (!level) {
      *error = StrCat("invalid value for parameter \"pgregion.consistency\": \"", value,
                      "\" (expected strong, causal, bounded or eventual)");
      return false;
    }
    SetConsistency(r::StatementHints::ConsistencyName(*level));
    return true;
  }
  if (name == "pgregion.max_staleness") {
    if (!value.empty() && !r::StatementHints::ParseDurationMs(value)) {
      *error = StrCat("invalid value for parameter \"pgregion.max_staleness\": \"", value, "\"");
      return false;
    }
    max_staleness_ = std::string(value);
    return true;
  }
  if (name == "pgregion.ryw_token") return PresentToken(value, error);
  if (name == "pgregion.tenant") {
    if (value.size() > r::TenantDirectory::kMaxIdBytes) {
      *error = StrCat("invalid value for parameter \"pgregion.tenant\": longer than ",
                      r::TenantDirectory::kMaxIdBytes, " bytes");
      return false;
    }
    tenant_ = std::string(value);  // RESET: empty, no tenant
    return true;
  }
  if (name == "pgregion.optimistic") {
    if (value.empty()) {  // RESET
      optimistic_enabled_ = default_optimistic_;
      return true;
    }
    std::optional<bool> on = r::StatementHints::ParseBool(value);
    if (!on) {
      *error = StrCat("parameter \"pgregion.optimistic\" requires a Boolean value");
      return false;
    }
    optimistic_enabled_ = *on;
    return true;
  }
  *error = StrCat("unrecognized configuration parameter \"", name, "\"");
  return false;
}

std::string ClientSession::ProxySetting(std::string_view name) const {
  if (name == "pgregion.route") return std::string(PreferenceName(route_pref_));
  if (name == "pgregion.consistency") return consistency_;
  if (name == "pgregion.max_staleness") return max_staleness_;
  if (name == "pgregion.ryw_token") return EffectiveToken().ToString();
  if (name == "pgregion.optimistic") return optimistic_enabled_ ? "on" : "off";
  if (name == "pgregion.tenant") return tenant_local_ ? *tenant_local_ : tenant_;
  return "";
}

// pgregion.* settings given at startup (options=-c pgregion.route=replica) are
// the proxy's, never replayed to Postgres.
void ClientSession::TakeProxySettings(SessionParams* params) {
  std::vector<std::string> names;
  for (const SessionParams::Entry& e : params->entries()) {
    if (StartsWith(e.name, kProxyPrefix)) names.push_back(e.name);
  }
  for (const std::string& name : names) {
    std::string error;
    std::string lower = name;
    for (char& ch : lower) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
    SetProxySetting(lower, *params->Get(name), &error);
    params->Erase(name);
  }
}

}  // namespace pgregion::proxy
