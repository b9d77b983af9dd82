// The statement classifier: statement text in, Classification out. Parses
// with libpg_query (the PostgreSQL 15 grammar) and caches results by the
// normalized text (literals, comments and whitespace normalized away), so a
// repeated statement with new literals costs a lexer pass and a hash lookup.
//
// Cache policy: a result is cached unless it carries values read from
// literals (SET name = value, SET pgregion.* = value, EXPLAIN (ANALYZE
// <literal>)), its text lexes ambiguously (unterminated literal or comment,
// a backslash in a plain '...' string) or its key is longer than
// max_cached_key_bytes. Those are parsed on every call. Hints
// in comments are not part of the key: they are extracted on every call.
// Parse errors are not cached: whether a text parses can depend on a
// literal's content (U&'\zz', a LIMIT #,# list folded into one `?`), and a
// cached error would send every later valid text with that key to the
// primary. Re-parsing an error costs its sender microseconds.
//
// Budget (class 1 of issue 16): libpg_query's parser and JSON output recurse
// once per parse-tree level with no limit (`SELECT 1+1+...+1` with ~70,000
// terms overflows an 8 MiB stack, ~9,000 with 1 MiB; measured on PG 15's
// libpg_query), and parse cost grows with the text (a 9 MB text took 27 s).
// So before parsing, the normalizer's lexer pass (which touches every byte
// anyway) yields the text's size and a conservative depth bound (ScanStats);
// a text over max_bytes or max_depth is not parsed but classified as a write
// with reason kTooComplex (primary, fail closed), never cached. The defaults
// keep a text at the budget under ~15 ms to classify here and the depth
// ~9x below the overflow even on a 1 MiB stack; JsonTree and
// ParseTreeWalker do not recurse at all.
//
// The reusable buffers (key, text, tree) are released after a text that grew
// them past kKeepBufferBytes, so one big statement does not pin megabytes.
//
// No I/O, no clock, no globals of ours (libpg_query keeps a per-thread memory
// context). Not thread-safe: one classifier per loop thread.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "routing/classification.h"
#include "routing/classification_cache.h"
#include "routing/function_catalog.h"
#include "routing/json_tree.h"
#include "routing/shape_memo.h"
#include "routing/sql_normalizer.h"
#include "routing/statement_hints.h"

namespace pgregion::routing {

struct ClassifierOptions {
  size_t cache_capacity = 10000;  // entries; 0 disables the cache
  // Longer keys (huge multi-row INSERTs, generated SQL) are not cached, so the
  // cache's memory stays bounded by capacity x this.
  size_t max_cached_key_bytes = 16 * 1024;
  UnknownFunctionPolicy unknown_functions = UnknownFunctionPolicy::kPrimary;
  std::vector<std::string> write_functions;      // "name" or "schema.name"
  std::vector<std::string> read_only_functions;  // "name" or "schema.name"
  // Budget (see the header comment): longer texts, or texts whose depth bound
  // (ScanStats::depth) exceeds max_depth, are routed to the primary unparsed.
  // 0 disables a limit (tests only: a deep text can then crash the process).
  size_t max_bytes = 64 * 1024;
  size_t max_depth = 1000;
};

struct ClassifyResult {
  std::shared_ptr<const Classification> classification;  // never null
  StatementHints hints;                                  // from pgregion comments in this text
  bool cache_hit = false;

  const Classification& operator*() const { return *classification; }
  const Classification* operator->() const { return classification.get(); }
};

class StatementClassifier {
 public:
  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;       // parsed
    uint64_t uncacheable = 0;  // parsed and not stored (policy above, or cache off)
    uint64_t too_complex = 0;  // over the budget: not parsed
    uint64_t evictions = 0;
    size_t entries = 0;
  };

  explicit StatementClassifier(ClassifierOptions options);

  // A simple-protocol Query text: any number of statements. Text after a NUL
  // byte is ignored (Postgres stops there too).
  ClassifyResult Classify(std::string_view sql);

  // An extended-protocol Parse text: classify once at Parse and keep the
  // result with the prepared statement (Bind/Execute reuse it). Same as
  // Classify; Postgres rejects a Parse with several statements, which shows
  // as statements.size() > 1.
  ClassifyResult ClassifyParse(std::string_view sql) { return Classify(sql); }

  // Parses and classifies without the cache (benchmarks, tools).
  Classification ClassifyUncached(std::string_view sql);

  Stats stats() const;

  // Reusable buffers above this size are released after use.
  static constexpr size_t kKeepBufferBytes = 64 * 1024;

 private:
  bool OverBudget(size_t bytes, const ScanStats& scan) const;
  Classification Parse(std::string_view sql);
  void ReleaseLargeBuffers();

  const ClassifierOptions options_;
  const FunctionCatalog catalog_;
  ClassificationCache cache_;
  ShapeMemo memo_;  // in front of cache_: texts that differ only in numbers
  std::string key_;   // reused normalization buffer
  std::string text_;  // reused NUL-terminated copy for libpg_query
  JsonTree tree_;     // reused parse-tree buffer
  Stats stats_;
};

}  // namespace pgregion::routing
