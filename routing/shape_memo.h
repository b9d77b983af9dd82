// A small memo in front of the classification cache for texts that repeat
// with only their numbers changed (`... WHERE aid = 48213`, the common case of
// applications and pgbench that inline numeric values).
//
// Two texts have the same shape when they are byte-identical except for
// runs of digits that start a token (not preceded by an identifier byte or
// `$`), optionally with one `.` and more digits, and not followed by an
// identifier byte or `.`. Such runs are numeric literals, so the two texts
// lex to the same tokens apart from literal values, which is finer than the
// normalizer's key: a memo hit never classifies differently from the cache.
// A number may also gain or lose a unary minus where `-` can only be a sign
// (after `(`, `,`, or an operator and a space): the normalizer keys `-5` and
// `5` apart, but a literal's sign never changes a classification.
// Texts whose digits could sit inside a quoted identifier or a comment (a
// hint like `max_staleness=500ms`) are never stored: any `"`, `--` or `/*`
// opts the text out. Only results the cache itself would keep are stored.
// A lookup costs a short hash of the text's start and a word-at-a-time
// compare with the stored text: far less than the normalizer's lexer pass.
//
// Direct-mapped, fixed size; entries are replaced, never searched. Pure, one
// per classifier (loop thread).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "routing/classification.h"

namespace pgregion::routing {

class ShapeMemo {
 public:
  // Longer texts are not memoized.
  static constexpr size_t kMaxTextBytes = 512;

  // Whether `sql` may be stored: short enough, no `"`, `--` or `/*`, and
  // every token-starting digit run a plain number. One pass, on misses only.
  static bool Memoizable(std::string_view sql);
  // Compares word by word; only where the texts differ does it look at what
  // the bytes are (the difference must be inside a token-starting number in
  // both). A text with the same shape as a memoizable one is memoizable too.
  static bool SameShape(std::string_view a, std::string_view b);

  // The stored classification of a text with this shape, or null.
  const std::shared_ptr<const Classification>* Find(std::string_view sql) const;
  // Stores `value` for `sql` if it is Memoizable().
  void Store(std::string_view sql, std::shared_ptr<const Classification> value);

 private:
  struct Entry {
    std::string text;
    std::shared_ptr<const Classification> value;
  };
  // The slot: a hash of the bytes before the first digit or `-` (identical
  // in texts of one shape), at most kSlotPrefix of them.
  static size_t Slot(std::string_view sql);
  static constexpr size_t kSlots = 64;
  static constexpr size_t kSlotPrefix = 32;
  std::array<Entry, kSlots> slots_;
};

}  // namespace pgregion::routing
