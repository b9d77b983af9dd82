#include "routing/statement_classifier.h"

#include <pg_query.h>

#include <utility>

#include "routing/shape_memo.h"
#include "routing/sql_normalizer.h"
#include "routing/statement_analyzer.h"

namespace pgregion::routing {
namespace {

Classification ParseFailure(std::string message) {
  Classification c;
  StatementInfo s;
  s.kind = StatementKind::kWrite;
  s.write = true;
  s.reason = WriteReason::kParseError;
  s.parse_error = true;
  c.statements.push_back(std::move(s));
  c.write = true;
  c.parse_error = true;
  c.error = std::move(message);
  c.cacheable = false;  // see the header: errors may depend on literal content
  return c;
}

Classification TooComplex() {
  Classification c;
  StatementInfo s;
  s.kind = StatementKind::kWrite;
  s.write = true;
  s.reason = WriteReason::kTooComplex;
  // Not read: it may SET, PREPARE, LISTEN... Fail closed for session state
  // too (the session stays on its connection, which is closed at its exit).
  s.untracked_session_change = true;
  c.statements.push_back(std::move(s));
  c.write = true;
  c.too_complex = true;
  c.cacheable = false;
  return c;
}

// Gives back a string's memory once it grew past `keep` bytes.
void Release(std::string* s, size_t keep) {
  if (s->capacity() > keep) std::string().swap(*s);
}

void Summarize(Classification* c) {
  bool for_postgres = false;
  for (const StatementInfo& s : c->statements) {
    c->write |= s.write;
    c->transaction_control |= s.txn != TransactionControl::kNone;
    c->session_events |= !s.events.empty();
    c->proxy_handled |= s.proxy_handled;
    for_postgres |= !s.proxy_handled;
    c->copy_in |= s.copy_in;
    c->primary_state |= s.primary_state;
    c->serializable |= s.isolation == IsolationLevel::kSerializable;
  }
  c->mixed_proxy = c->proxy_handled && for_postgres;
}

}  // namespace

StatementClassifier::StatementClassifier(ClassifierOptions options)
    : options_(std::move(options)),
      catalog_(options_.write_functions, options_.read_only_functions),
      cache_(options_.cache_capacity) {}

ClassifyResult StatementClassifier::Classify(std::string_view sql) {
  if (size_t nul = sql.find('\0'); nul != std::string_view::npos) sql = sql.substr(0, nul);
  ClassifyResult result;
  const bool memo = cache_.capacity() > 0;
  if (memo) {
    if (const auto* hit = memo_.Find(sql)) {
      ++stats_.hits;  // no comments in a memoized text, so no hints either
      result.classification = *hit;
      result.cache_hit = true;
      return result;
    }
  }
  ScanStats scan;
  const bool key_ok = SqlNormalizer::Normalize(sql, &key_, &result.hints, &scan);
  if (OverBudget(sql.size(), scan)) {
    // Checked before the cache too, so the result depends on the text alone
    // (cached == uncached): a 1M-element IN list shares a key with a short one.
    ++stats_.too_complex;
    ++stats_.uncacheable;
    ReleaseLargeBuffers();
    result.classification = std::make_shared<const Classification>(TooComplex());
    return result;
  }
  const bool use_cache =
      key_ok && cache_.capacity() > 0 && key_.size() <= options_.max_cached_key_bytes;
  if (use_cache) {
    if (const auto* hit = cache_.Find(key_)) {
      ++stats_.hits;
      memo_.Store(sql, *hit);
      result.classification = *hit;
      result.cache_hit = true;
      return result;
    }
  }
  auto classification = std::make_shared<const Classification>(Parse(sql));
  ++stats_.misses;
  if (use_cache && classification->cacheable) {
    cache_.Insert(key_, classification);
    memo_.Store(sql, classification);
  } else {
    ++stats_.uncacheable;
  }
  ReleaseLargeBuffers();
  result.classification = std::move(classification);
  return result;
}

Classification StatementClassifier::ClassifyUncached(std::string_view sql) {
  if (size_t nul = sql.find('\0'); nul != std::string_view::npos) sql = sql.substr(0, nul);
  ScanStats scan;
  StatementHints hints;
  SqlNormalizer::Normalize(sql, &key_, &hints, &scan);
  Classification c = OverBudget(sql.size(), scan) ? TooComplex() : Parse(sql);
  ReleaseLargeBuffers();
  return c;
}

bool StatementClassifier::OverBudget(size_t bytes, const ScanStats& scan) const {
  return (options_.max_bytes > 0 && bytes > options_.max_bytes) ||
         (options_.max_depth > 0 && scan.depth > options_.max_depth);
}

void StatementClassifier::ReleaseLargeBuffers() {
  Release(&key_, kKeepBufferBytes);
  Release(&text_, kKeepBufferBytes);
  tree_.ReleaseIfLarger(kKeepBufferBytes);
}

StatementClassifier::Stats StatementClassifier::stats() const {
  Stats s = stats_;
  s.evictions = cache_.evictions();
  s.entries = cache_.size();
  return s;
}

Classification StatementClassifier::Parse(std::string_view sql) {
  text_.assign(sql.data(), sql.size());
  PgQueryParseResult parsed = pg_query_parse(text_.c_str());
  if (parsed.error != nullptr) {
    Classification c =
        ParseFailure(parsed.error->message != nullptr ? parsed.error->message : "syntax error");
    pg_query_free_parse_result(parsed);
    return c;
  }
  Classification c;
  // The tree views parsed.parse_tree: everything is copied out before free.
  if (parsed.parse_tree == nullptr || !tree_.Parse(parsed.parse_tree)) {
    pg_query_free_parse_result(parsed);
    return ParseFailure("unreadable parse tree");
  }
  StatementAnalyzer analyzer(tree_, text_, catalog_, options_.unknown_functions);
  const JsonTree::Index stmts = tree_.Member(0, "stmts");
  for (JsonTree::Index raw = tree_.FirstChild(stmts); raw != JsonTree::kNone;
       raw = tree_.Next(raw)) {
    c.statements.push_back(analyzer.Analyze(tree_.Member(raw, "stmt"), &c.cacheable));
  }
  pg_query_free_parse_result(parsed);
  Summarize(&c);
  return c;
}

}  // namespace pgregion::routing
