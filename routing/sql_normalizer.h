// Turns statement text into the key of the classification cache, and picks up
// pgregion hint comments on the way. A small lexer of our own that knows just
// enough of PostgreSQL's lexical rules (scan.l) to find literals, comments,
// quoted identifiers and whitespace in a single pass: parsing with libpg_query
// costs microseconds, this costs nanoseconds per statement.
//
// The key:
//  - every literal (numbers; '...', E'...', N'...', B'...', X'...', U&'...'
//    strings; $tag$...$tag$ dollar quotes) becomes one `?`;
//  - comments (`--` and nested `/* */`) and whitespace runs become one space
//    (dropped at the ends);
//  - keywords, identifiers, operators, `$n` parameters and quoted identifiers
//    are kept byte for byte (case too: `select` and `SELECT` are two keys).
//  - a comma-separated run of literals becomes one `?` (`IN (1, 2, 3)` and
//    `IN (4)` share a key): classification never depends on how many
//    literals a list has, and ORMs send IN lists of every length;
//  - a `?` of the text itself (the jsonb operators) is written `??`, and a
//    literal next to a `?` gets a space, so a literal is always a lone `?`.
// Two texts with the same key therefore have the same token sequence apart
// from literal values (and literal-list lengths), so they parse to the same
// statement shape as far as classification looks.
//
// The lexer never fails and never reads past the input: an unterminated
// string, quoted identifier or comment runs to the end. Such input, and input
// whose tokens depend on settings we do not see (a backslash in a plain
// '...' string means something else under standard_conforming_strings = off),
// is reported as not cacheable. Pure; usable from any thread.
#pragma once

#include <string>
#include <string_view>

#include "routing/statement_hints.h"

namespace pgregion::routing {

class SqlNormalizer {
 public:
  // Writes the key of `sql` to `*key` (replacing its contents; reuse one
  // string to avoid allocating) and applies hint comments to `*hints`.
  // Returns false when the key must not be used for caching.
  static bool Normalize(std::string_view sql, std::string* key, StatementHints* hints);

  // Convenience for tests and tools.
  static std::string Key(std::string_view sql) {
    std::string key;
    StatementHints hints;
    Normalize(sql, &key, &hints);
    return key;
  }
};

}  // namespace pgregion::routing
