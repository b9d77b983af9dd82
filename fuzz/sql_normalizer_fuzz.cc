// Fuzz target: routing::SqlNormalizer (the classification cache's key).
//
// Properties: never crashes; Normalize is deterministic (key, cacheable flag,
// hints-independent ScanStats); a cacheable text and its literal-changed
// variant (fuzz/literal_variant.h) share a key; and the key never merges statements
// PostgreSQL tells apart: when libpg_query's pg_query_normalize (the real
// lexer and parser, constants replaced by $n) succeeds on two texts with the
// same key, its outputs are equal after stripping whitespace. The two texts
// are the input and its variant, and, when the input holds a NUL byte, the
// parts before and after it.
//
// Restriction: the pg_query_normalize comparison of the two NUL-separated
// parts only runs when neither contains a comment: pg_query_normalize keeps
// comments verbatim while our key drops them, so any two texts differing in a
// comment would be a false alarm. (The variant keeps comments unchanged, so
// its comparison needs no restriction.)
#include <pg_query.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "fuzz/fuzz_check.h"
#include "fuzz/literal_variant.h"
#include "routing/sql_normalizer.h"

namespace {

using pgregion::fuzz::Check;
using pgregion::routing::ScanStats;
using pgregion::routing::SqlNormalizer;
using pgregion::routing::StatementHints;

constexpr size_t kMaxInput = 8 * 1024;

struct Norm {
  std::string key;
  bool cacheable = false;
  ScanStats stats;
};

Norm Run(std::string_view sql) {
  Norm n;
  StatementHints hints;
  n.cacheable = SqlNormalizer::Normalize(sql, &n.key, &hints, &n.stats);
  return n;
}

// pg_query_normalize with the literals it keeps masked (MaskLiterals) and
// whitespace stripped, or nothing when it fails. pg_query_normalize leaves
// constants of typmods (varchar(10)), utility statements (CREATE TABLE ...
// DEFAULT 1, ALTER ... SET STATISTICS 5) and EXPLAIN options verbatim; those
// differ between a text and its variant without PostgreSQL seeing another
// statement shape, so they are masked the way LiteralVariant changes them.
std::optional<std::string> PgNormalize(std::string_view sql) {
  const std::string copy(sql);
  PgQueryNormalizeResult r = pg_query_normalize(copy.c_str());
  std::optional<std::string> out;
  if (r.error == nullptr && r.normalized_query != nullptr) {
    std::string s;
    for (const char c : pgregion::fuzz::MaskLiterals(r.normalized_query)) {
      if (c != ' ' && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') s += c;
    }
    out = std::move(s);
  }
  pg_query_free_normalize_result(r);
  return out;
}

bool HasComment(std::string_view s) {
  return s.find("--") != std::string_view::npos || s.find("/*") != std::string_view::npos;
}

// Both texts have the same key: PostgreSQL must see the same statement shape.
void CheckPgAgrees(std::string_view a, std::string_view b) {
  if (a.size() > 2048 || b.size() > 2048) return;  // parser cost and recursion depth
  if (Run(a).stats.depth > 200 || Run(b).stats.depth > 200) return;
  const std::optional<std::string> pa = PgNormalize(a);
  if (!pa) return;
  const std::optional<std::string> pb = PgNormalize(b);
  if (!pb) return;
  Check(*pa == *pb, "same key, different pg_query_normalize output");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > kMaxInput) size = kMaxInput;
  const std::string_view input(reinterpret_cast<const char*>(data), size);

  // Never crashes on any bytes, NULs included.
  const Norm whole = Run(input);
  const Norm whole2 = Run(input);
  Check(whole.key == whole2.key, "Normalize is not deterministic (key)");
  Check(whole.cacheable == whole2.cacheable, "Normalize is not deterministic (cacheable)");
  Check(whole.stats.depth == whole2.stats.depth, "Normalize is not deterministic (depth)");
  Check(whole.stats.statements == whole2.stats.statements, "not deterministic (statements)");
  Check(SqlNormalizer::Key(input) == whole.key, "Key() != Normalize() key");

  const size_t nul = input.find('\0');
  const std::string_view text = input.substr(0, nul);
  const std::string variant =
      pgregion::fuzz::LiteralVariant(text, pgregion::fuzz::VariantRot(input));
  const Norm t = Run(text);
  const Norm v = Run(variant);
  // Only for cacheable texts: an uncacheable text (unterminated literal or
  // comment, backslash in a plain string) is never looked up by its key, and
  // after an unterminated literal our scan and the normalizer may pair quotes
  // differently without that mattering.
  if (t.cacheable) Check(t.key == v.key, "a literal-changed variant has another key");
  if (t.key == v.key) CheckPgAgrees(text, variant);

  if (nul != std::string_view::npos) {
    const std::string_view rest = input.substr(nul + 1);
    const std::string_view other = rest.substr(0, rest.find('\0'));
    if (!HasComment(text) && !HasComment(other) && Run(other).key == t.key)
      CheckPgAgrees(text, other);
  }
  return 0;
}
