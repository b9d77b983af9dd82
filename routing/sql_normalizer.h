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
//
// Literal forms follow PostgreSQL 15's scan.l: '' doubles a quote in '...',
// N'...', E'...' and U&'...' but ends B'...' and X'...' (xb/xh have no
// xqdouble rule); a string continues across whitespace holding a newline
// (\n or \r) and `--` comments (quotecontinue); the character after
// UESCAPE stays in the key (some escape characters are errors).
//
// The same pass measures the text for the classifier's budget (ScanStats):
// libpg_query's parse and JSON output recurse once per parse-tree level, so a
// deep tree must be refused before it is parsed (see ClassifierOptions).
#pragma once

#include <string>
#include <string_view>

#include "routing/statement_hints.h"

namespace pgregion::routing {

// What the lexer pass learned about the size of the statements' parse trees.
struct ScanStats {
  // A conservative bound on the parse-tree nesting of the deepest statement
  // (statements end at a `;` outside parentheses): every operator character
  // and every keyword that can nest without parentheses (NOT, IS, UNION,
  // JOIN, CASE, ...) counts 1 whether or not it nests, and the deepest
  // parenthesis/bracket level counts kParenWeight per level (a parenthesized
  // subquery or call adds several tree levels). Literals, identifiers and
  // commas count 0: lists are siblings, not levels.
  size_t depth = 0;
  size_t statements = 0;  // `;`-separated pieces with some token (upper bound)
  static constexpr size_t kParenWeight = 4;
};

class SqlNormalizer {
 public:
  // Writes the key of `sql` to `*key` (replacing its contents; reuse one
  // string to avoid allocating) and applies hint comments to `*hints`.
  // Returns false when the key must not be used for caching.
  static bool Normalize(std::string_view sql, std::string* key, StatementHints* hints,
                        ScanStats* stats = nullptr);

  // Convenience for tests and tools.
  static std::string Key(std::string_view sql) {
    std::string key;
    StatementHints hints;
    Normalize(sql, &key, &hints);
    return key;
  }
};

}  // namespace pgregion::routing
