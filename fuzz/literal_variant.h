// Shared by the classifier and sql_normalizer fuzz targets and the classifier
// property test: a literal-changed variant of an SQL text, found by a small
// scan of our own (independent of routing/sql_normalizer, so the two can
// disagree and the fuzzers notice).
//
// Only changes that cannot change how PostgreSQL tokenizes the text or
// whether a literal is valid are made, and the length never changes:
//  - digits of numeric literals (a number starts at a digit or `.digit`
//    outside an identifier, `$n` parameter, string, quoted identifier,
//    dollar quote or comment) become other digits;
//  - in plain '...' strings without a backslash, letters become other
//    letters and digits other digits;
//  - in B'...' strings 0 and 1 swap; in X'...' hex digits become hex digits.
// E'...', U&'...', N'...' strings, the string after UESCAPE, string continuations (a string right
// after a string), dollar quotes, quoted identifiers and comments are left
// alone (escapes there could become invalid).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace pgregion::fuzz {

inline bool IsIdentStart(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
inline bool IsIdentCont(unsigned char c) {
  return IsIdentStart(c) || (c >= '0' && c <= '9') || c == '$';
}
inline bool IsDigit(unsigned char c) { return c >= '0' && c <= '9'; }

// `rot` selects the replacement. With `mask`, every character the variant
// may change becomes a fixed one instead ('0', 'a' or 'A'), so two texts that
// differ only where LiteralVariant changes things mask to the same text.
inline std::string LiteralVariant(std::string_view in, unsigned rot, bool mask = false) {
  std::string out(in);
  const size_t n = out.size();
  rot = rot % 9 + 1;
  auto digit = [&](char c) {
    return mask ? '0' : static_cast<char>('0' + (c - '0' + rot) % 10);
  };
  auto letter = [&](char c) {
    char base = (c >= 'a' && c <= 'z') ? 'a' : 'A';
    return mask ? base : static_cast<char>(base + (c - base + rot) % 26);
  };
  auto hex = [&](char c) {
    static const char kHex[] = "0123456789abcdef";
    return mask ? '0' : kHex[(rot + static_cast<unsigned char>(c)) % 16];
  };
  // Kind of the string last closed, to skip continuations.
  bool last_was_string = false;
  bool last_escapes = false;  // the last string was an E'...' one
  bool after_uescape = false;  // the last token was the keyword UESCAPE
  size_t i = 0;
  while (i < n) {
    const unsigned char c = out[i];
    if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v') {
      ++i;
      continue;
    }
    if (c == '-' && i + 1 < n && out[i + 1] == '-') {
      while (i < n && out[i] != '\n' && out[i] != '\r') ++i;
      continue;  // a comment does not end a string continuation
    }
    if (c == '/' && i + 1 < n && out[i + 1] == '*') {
      int depth = 0;
      while (i < n) {
        if (out[i] == '/' && i + 1 < n && out[i + 1] == '*') {
          ++depth;
          i += 2;
        } else if (out[i] == '*' && i + 1 < n && out[i + 1] == '/') {
          i += 2;
          if (--depth == 0) break;
        } else {
          ++i;
        }
      }
      last_was_string = false;
      continue;
    }
    const bool uescape_arg = after_uescape;
    after_uescape = false;
    const bool continuation = last_was_string;
    const bool continued_escapes = last_escapes;
    last_was_string = false;
    last_escapes = false;
    bool escapes = false;  // backslash escapes (E'...' and its continuations)
    // String literals, with their prefix.
    char kind = 0;  // 'p' plain, 'b', 'x', 's' skip
    size_t q = n;   // index of the opening quote
    if (c == '\'') {
      kind = 'p';
      q = i;
    } else if (IsIdentStart(c)) {
      size_t j = i;
      while (j < n && IsIdentCont(static_cast<unsigned char>(out[j]))) ++j;
      if (j - i == 1 && j < n && out[j] == '\'') {
        const char p = static_cast<char>(c | 0x20);
        kind = p == 'b' ? 'b' : p == 'x' ? 'x' : 's';
        escapes = p == 'e';
        q = j;
      } else if (j - i == 1 && (c | 0x20) == 'u' && j + 1 < n && out[j] == '&' &&
                 (out[j + 1] == '\'' || out[j + 1] == '"')) {
        if (out[j + 1] == '"') {
          i = j + 1;  // U&"..." handled as a quoted identifier below
          continue;
        }
        kind = 's';
        q = j + 1;
      } else {
        // UESCAPE's string is syntax (one escape character), kept in the key.
        after_uescape = j - i == 7 && (in.substr(i, 7) == "UESCAPE" || in.substr(i, 7) == "uescape" ||
                                       [&] {
                                         for (size_t k = 0; k < 7; ++k)
                                           if ((out[i + k] | 0x20) != "uescape"[k]) return false;
                                         return true;
                                       }());
        i = j;
        continue;
      }
    }
    if (kind != 0) {
      if (uescape_arg) kind = 's';
      if (continuation && kind == 'p') {  // only a bare quote continues a string
        kind = 's';
        escapes = continued_escapes;
      }
      // Find the end (doubled quotes continue all kinds for safety: B/X end
      // there in PostgreSQL, but we then change nothing since "''" follows).
      size_t j = q + 1;
      bool backslash = false;
      size_t end = n;
      while (j < n) {
        if (out[j] == '\\') {
          backslash = true;
          if (escapes) {
            j += 2;
            continue;
          }
        }
        if (out[j] == '\'') {
          if (kind != 'b' && kind != 'x' && j + 1 < n && out[j + 1] == '\'') {
            j += 2;
            continue;
          }
          end = j;
          break;
        }
        ++j;
      }
      if (end == n) return out;  // unterminated: leave the rest alone
      if (kind == 'p' && backslash) kind = 's';
      for (size_t k = q + 1; k < end; ++k) {
        char& ch = out[k];
        if (kind == 'p') {
          if (IsDigit(ch)) ch = digit(ch);
          else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')) ch = letter(ch);
        } else if (kind == 'b') {
          if (mask && ch == '1') ch = '0';
          else if (!mask && (rot & 1) && (ch == '0' || ch == '1')) ch = ch == '0' ? '1' : '0';
        } else if (kind == 'x') {
          if (IsDigit(ch) || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')) ch = hex(ch);
        }
      }
      i = end + 1;
      last_was_string = true;
      last_escapes = escapes;
      continue;
    }
    if (c == '"') {
      size_t j = i + 1;
      while (j < n) {
        if (out[j] == '"') {
          if (j + 1 < n && out[j + 1] == '"') {
            j += 2;
            continue;
          }
          break;
        }
        ++j;
      }
      if (j >= n) return out;
      i = j + 1;
      continue;
    }
    if (c == '$') {
      // $n parameter, or $tag$ dollar quote.
      size_t j = i + 1;
      if (j < n && IsDigit(out[j])) {
        // $n; letters right after it start a word, as the normalizer reads
        // them (PostgreSQL 15 rejects `$1abc` as trailing junk anyway).
        while (j < n && IsDigit(out[j])) ++j;
        i = j;
        continue;
      }
      while (j < n && IsIdentStart(static_cast<unsigned char>(out[j]))) {
        ++j;
        while (j < n && out[j] != '$' && IsIdentCont(static_cast<unsigned char>(out[j]))) ++j;
        break;
      }
      if (j < n && out[j] == '$') {
        const std::string_view tag(out.data() + i, j - i + 1);
        const size_t close = std::string_view(out).find(tag, j + 1);
        if (close == std::string_view::npos) return out;
        i = close + tag.size();
        last_was_string = false;
        continue;
      }
      ++i;
      continue;
    }
    if (IsDigit(c) || (c == '.' && i + 1 < n && IsDigit(out[i + 1]))) {
      size_t j = i;
      bool dot = false;  // one decimal point at most (2.5.e3 is 2.5 . e3)
      while (j < n && (IsDigit(out[j]) || (out[j] == '.' && !dot))) {
        if (out[j] == '.') {
          if (j + 1 < n && out[j + 1] == '.') break;  // 1..2
          dot = true;
        }
        ++j;
      }
      if (j < n && (out[j] == 'e' || out[j] == 'E')) {
        size_t k = j + 1;
        if (k < n && (out[k] == '+' || out[k] == '-')) ++k;
        if (k < n && IsDigit(out[k])) {
          j = k;
          while (j < n && IsDigit(out[j])) ++j;
        }
      }
      for (size_t k = i; k < j; ++k)
        if (IsDigit(out[k])) out[k] = digit(out[k]);
      i = j;
      continue;
    }
    ++i;
  }
  return out;
}

// A small stable hash of the input, to pick `rot` without taking bytes.
inline std::string MaskLiterals(std::string_view in) { return LiteralVariant(in, 0, true); }

inline unsigned VariantRot(std::string_view in) {
  uint32_t h = 2166136261u;
  for (unsigned char c : in) h = (h ^ c) * 16777619u;
  return h;
}

}  // namespace pgregion::fuzz
