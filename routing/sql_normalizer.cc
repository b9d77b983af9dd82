#include "routing/sql_normalizer.h"

#include <algorithm>
#include <array>
#include <cstdint>

#include "protocol/str_util.h"

namespace pgregion::routing {
namespace {

// Character classes in one table: the normalizer runs on every statement, so
// each byte costs one load instead of a chain of comparisons.
enum : uint8_t { kSpace = 1, kDigit = 2, kIdentStart = 4, kDollar = 8 };
constexpr std::array<uint8_t, 256> MakeClasses() {
  std::array<uint8_t, 256> t{};
  // PostgreSQL 15 scan.l: space [ \t\n\r\f]; \v is not whitespace there.
  for (unsigned char c : {' ', '\t', '\n', '\r', '\f'}) t[c] = kSpace;
  for (int c = '0'; c <= '9'; ++c) t[c] = kDigit;
  for (int c = 'a'; c <= 'z'; ++c) t[c] = kIdentStart;
  for (int c = 'A'; c <= 'Z'; ++c) t[c] = kIdentStart;
  t['_'] = kIdentStart;
  for (int c = 0x80; c <= 0xff; ++c) t[c] = kIdentStart;
  t['$'] = kDollar;
  return t;
}
constexpr std::array<uint8_t, 256> kClasses = MakeClasses();

inline bool IsSpace(unsigned char c) { return kClasses[c] & kSpace; }
inline bool IsDigit(unsigned char c) { return kClasses[c] & kDigit; }
inline bool IsIdentStart(unsigned char c) { return kClasses[c] & kIdentStart; }
// dolq_cont: identifier characters without '$'.
inline bool IsTagCont(unsigned char c) { return kClasses[c] & (kIdentStart | kDigit); }
inline bool IsIdentCont(unsigned char c) { return kClasses[c] & (kIdentStart | kDigit | kDollar); }

enum class StringMode : uint8_t {
  kStandard,  // '...', N'...': '' doubles a quote; a backslash is ambiguous
  kEscape,    // E'...': backslash escapes the next byte
  kUnicode,   // U&'...': '' doubles a quote, backslash is data
  kBitHex,    // B'...', X'...': the first quote ends it (scan.l: no xqdouble in xb/xh)
};

inline bool IsNewline(unsigned char c) { return c == '\n' || c == '\r'; }

inline char Upper(char c) { return c >= 'a' && c <= 'z' ? static_cast<char>(c - 32) : c; }

bool WordIs(std::string_view w, std::string_view upper) {
  if (w.size() != upper.size()) return false;
  for (size_t k = 0; k < w.size(); ++k) {
    if (Upper(w[k]) != upper[k]) return false;
  }
  return true;
}

// Keywords that can nest a parse tree without parentheses: prefix NOT,
// postfix IS .../ISNULL/NOTNULL, binary LIKE/BETWEEN/IN/COLLATE/AT/...,
// left-deep set operations and joins, CASE, AND/OR. Over-counting is safe
// (the depth bound is an upper bound); missing one is not.
bool IsNestingKeyword(std::string_view w) {
  if (w.size() < 2 || w.size() > 9) return false;
  switch (Upper(w[0])) {
    case 'A':
      return WordIs(w, "AND") || WordIs(w, "AT") || WordIs(w, "ANY") || WordIs(w, "ALL") ||
             WordIs(w, "ARRAY");
    case 'B':
      return WordIs(w, "BETWEEN");
    case 'C':
      return WordIs(w, "CASE") || WordIs(w, "COLLATE");
    case 'E':
      return WordIs(w, "EXCEPT") || WordIs(w, "ESCAPE") || WordIs(w, "EXISTS");
    case 'I':
      return WordIs(w, "IS") || WordIs(w, "IN") || WordIs(w, "ISNULL") || WordIs(w, "ILIKE") ||
             WordIs(w, "INTERSECT");
    case 'J':
      return WordIs(w, "JOIN");
    case 'L':
      return WordIs(w, "LIKE");
    case 'N':
      return WordIs(w, "NOT") || WordIs(w, "NOTNULL");
    case 'O':
      return WordIs(w, "OR") || WordIs(w, "OVERLAPS") || WordIs(w, "OPERATOR");
    case 'S':
      return WordIs(w, "SIMILAR") || WordIs(w, "SOME");
    case 'U':
      return WordIs(w, "UNION");
    case 'W':
      return WordIs(w, "WHEN");
    default:
      return false;
  }
}

class Lexer {
 public:
  Lexer(std::string_view sql, std::string* out, StatementHints* hints, ScanStats* stats)
      : s_(sql), n_(sql.size()), out_(out), hints_(hints), stats_(stats) {}

  bool Run() {
    out_->clear();
    if (out_->capacity() < n_) out_->reserve(n_);
    while (i_ < n_) Step();
    EndStatement();
    return cacheable_;
  }

 private:
  unsigned char At(size_t j) const { return j < n_ ? static_cast<unsigned char>(s_[j]) : 0; }

  void Step() {
    const unsigned char c = At(i_);
    const unsigned char next = At(i_ + 1);
    if (IsSpace(c)) {
      pending_space_ = true;
      ++i_;
      while (i_ < n_ && IsSpace(static_cast<unsigned char>(s_[i_]))) ++i_;
    } else if (c == '-' && next == '-') {
      LineComment();
    } else if (c == '/' && next == '*') {
      BlockComment();
    } else if (c == '\'') {
      String(i_ + 1, StringMode::kStandard);
    } else if (IsIdentStart(c)) {
      IdentifierOrPrefixedString(c, next);
    } else if (c == '"') {
      QuotedIdentifier(i_);
    } else if (c == '$') {
      Dollar(next);
    } else if (IsDigit(c) || (c == '.' && IsDigit(next))) {
      Number();
    } else if (c == '?') {
      Token(1);
      // A literal `?` of the text is doubled so it never looks like a literal.
      if (!out_->empty() && (pending_space_ || (last_literal_ && out_->back() == '?'))) {
        out_->push_back(' ');
      }
      out_->append("??");
      list_state_ = 0;
      pending_space_ = false;
      last_literal_ = false;
      ++i_;
    } else {
      Punctuation(c);
      Verbatim(i_, i_ + 1);
    }
  }

  // Depth accounting (ScanStats) for one single-character token.
  void Punctuation(unsigned char c) {
    switch (c) {
      case '(':
      case '[':
        Token(0);
        if (++paren_ > max_paren_) max_paren_ = paren_;
        return;
      case ')':
      case ']':
        Token(0);
        if (paren_ > 0) --paren_;
        return;
      case ';':
        if (paren_ == 0) EndStatement();
        return;
      case ',':
      case '.':
        Token(0);
        return;
      default:
        Token(1);  // an operator character (or one PostgreSQL rejects)
        return;
    }
  }

  void Token(size_t nesting) {
    has_token_ = true;
    chain_ += nesting;
  }

  void EndStatement() {
    if (stats_ != nullptr && has_token_) {
      ++stats_->statements;
      const size_t depth = chain_ + ScanStats::kParenWeight * max_paren_;
      if (depth > stats_->depth) stats_->depth = depth;
    }
    has_token_ = false;
    chain_ = 0;
    max_paren_ = 0;
    paren_ = 0;
  }

  void Verbatim(size_t from, size_t to) {
    list_state_ = list_state_ == 1 && to == from + 1 && s_[from] == ',' ? 2 : 0;
    if (pending_space_ && !out_->empty()) out_->push_back(' ');
    out_->append(s_.data() + from, to - from);
    pending_space_ = false;
    last_literal_ = false;
    i_ = to;
  }

  void Literal(size_t end) {
    Token(0);
    if (list_state_ == 2) {
      // "?, ?" -> "?": IN lists and VALUES rows of any length share a key.
      out_->resize(list_end_);
    } else {
      if (!out_->empty() && (pending_space_ || out_->back() == '?')) out_->push_back(' ');
      out_->push_back('?');
      list_end_ = out_->size();
    }
    list_state_ = 1;
    pending_space_ = false;
    last_literal_ = true;
    i_ = end;
  }

  void LineComment() {
    size_t body = i_ + 2;
    // scan.l: a comment ends at a newline, \r as well as \n (ending it at \n
    // only would hide what follows a \r, "SELECT 1 --\r; DELETE ...", from
    // the key and share SELECT 1's cached classification).
    size_t end = s_.find_first_of("\n\r", body);
    if (end == std::string_view::npos) end = n_;
    Hint(s_.substr(body, end - body));
    i_ = end;
    pending_space_ = true;
  }

  void BlockComment() {
    size_t j = i_ + 2;
    const size_t body = j;
    int depth = 1;
    while (j < n_) {
      if (s_[j] == '/' && At(j + 1) == '*') {
        ++depth;
        j += 2;
      } else if (s_[j] == '*' && At(j + 1) == '/') {
        j += 2;
        if (--depth == 0) break;
      } else {
        ++j;
      }
    }
    size_t body_end = j;
    if (depth > 0) {
      cacheable_ = false;  // unterminated: Postgres reports an error
    } else {
      body_end = j - 2;
    }
    Hint(s_.substr(body, body_end - body));
    i_ = j;
    pending_space_ = true;
  }

  // "pgregion:" at the start of a comment body, then key=value pairs.
  void Hint(std::string_view body) {
    size_t k = 0;
    while (k < body.size() && IsSpace(static_cast<unsigned char>(body[k]))) ++k;
    constexpr std::string_view kTag = "pgregion";
    if (body.size() - k < kTag.size() || !EqualsIgnoreCase(body.substr(k, kTag.size()), kTag)) {
      return;
    }
    k += kTag.size();
    while (k < body.size() && IsSpace(static_cast<unsigned char>(body[k]))) ++k;
    if (k >= body.size() || body[k] != ':') return;
    hints_->ParseList(body.substr(k + 1));
  }

  // Scans a quoted string whose body starts at `j`; the literal ends after the
  // closing quote and any continuation ('a'<newline>'b' is one literal).
  void String(size_t j, StringMode mode) {
    while (true) {
      if (j >= n_) {
        cacheable_ = false;
        Literal(n_);
        return;
      }
      const char ch = s_[j];
      if (ch == '\\') {
        if (mode == StringMode::kEscape) {
          j += 2;
          continue;
        }
        if (mode == StringMode::kStandard) cacheable_ = false;
        ++j;
      } else if (ch == '\'') {
        if (At(j + 1) == '\'' && mode != StringMode::kBitHex) {
          j += 2;
          continue;
        }
        ++j;
        if (size_t k = Continuation(j); k != 0) {
          j = k;
          continue;
        }
        Literal(j);
        return;
      } else {
        ++j;
      }
    }
  }

  // scan.l's quotecontinue after a string's closing quote at `j`: horizontal
  // whitespace and `--` comments, a newline (\n or \r), any whitespace and
  // `--` comments, then a quote. Returns the position after that quote (the
  // string goes on), or 0.
  size_t Continuation(size_t j) const {
    size_t k = j;
    bool newline = false;
    while (k < n_) {
      const unsigned char ch = At(k);
      if (IsSpace(ch)) {
        newline |= IsNewline(ch);
        ++k;
      } else if (ch == '-' && At(k + 1) == '-') {
        while (k < n_ && !IsNewline(At(k))) ++k;
        if (k >= n_) return 0;  // scan.l needs a newline after the comment
      } else {
        break;
      }
    }
    return newline && At(k) == '\'' ? k + 1 : 0;
  }

  void IdentifierOrPrefixedString(unsigned char c, unsigned char next) {
    if (next == '\'') {
      switch (c) {
        case 'E':
        case 'e':
          String(i_ + 2, StringMode::kEscape);
          return;
        case 'N':
        case 'n':
          String(i_ + 2, StringMode::kStandard);
          return;
        case 'B':
        case 'b':
        case 'X':
        case 'x':
          String(i_ + 2, StringMode::kBitHex);
          return;
        default:
          break;
      }
    }
    if ((c == 'U' || c == 'u') && next == '&') {
      if (At(i_ + 2) == '\'') {
        String(i_ + 3, StringMode::kUnicode);
        return;
      }
      if (At(i_ + 2) == '"') {
        QuotedIdentifier(i_ + 2, i_);
        return;
      }
    }
    size_t j = i_ + 1;
    while (j < n_ && IsIdentCont(static_cast<unsigned char>(s_[j]))) ++j;
    const std::string_view word = s_.substr(i_, j - i_);
    Token(IsNestingKeyword(word) ? 1 : 0);
    Verbatim(i_, j);
    if (WordIs(word, "UESCAPE")) EscapeCharacter();
  }

  // The string after UESCAPE names the escape character of the U&'...'
  // before it; some characters are errors, so it is kept in the key rather
  // than replaced by `?` (texts differing there may parse differently).
  void EscapeCharacter() {
    size_t k = i_;
    while (k < n_ && IsSpace(At(k))) ++k;
    if (At(k) != '\'') return;
    size_t j = k + 1;
    while (true) {
      if (j >= n_) {
        cacheable_ = false;
        break;
      }
      if (s_[j] == '\'') {
        if (At(j + 1) == '\'') {
          j += 2;
          continue;
        }
        ++j;
        break;
      }
      if (s_[j] == '\\') cacheable_ = false;
      ++j;
    }
    if (k > i_) pending_space_ = true;
    Token(0);
    Verbatim(k, std::min(j, n_));
  }

  // `quote` is the position of the opening '"'; the token starts at `start`
  // (before a U& prefix) and is kept verbatim.
  void QuotedIdentifier(size_t quote, size_t start = std::string_view::npos) {
    if (start == std::string_view::npos) start = quote;
    size_t j = quote + 1;
    while (true) {
      if (j >= n_) {
        cacheable_ = false;
        Verbatim(start, n_);
        return;
      }
      if (s_[j] == '"') {
        if (At(j + 1) == '"') {
          j += 2;
          continue;
        }
        Token(0);
        Verbatim(start, j + 1);
        return;
      }
      ++j;
    }
  }

  void Dollar(unsigned char next) {
    if (IsDigit(next)) {  // $1: a parameter, part of the statement shape
      size_t j = i_ + 1;
      while (j < n_ && IsDigit(At(j))) ++j;
      Token(0);
      Verbatim(i_, j);
      return;
    }
    if (next == '$' || (IsIdentStart(next))) {
      size_t j = i_ + 1;
      while (j < n_ && IsTagCont(At(j))) ++j;
      if (At(j) == '$') {
        std::string_view tag = s_.substr(i_, j + 1 - i_);
        size_t close = s_.find(tag, j + 1);
        if (close == std::string_view::npos) {
          cacheable_ = false;
          Literal(n_);
        } else {
          Literal(close + tag.size());
        }
        return;
      }
    }
    Token(1);
    Verbatim(i_, i_ + 1);
  }

  void Number() {
    size_t j = i_;
    while (IsDigit(At(j))) ++j;
    // "1..2" is an integer followed by "..", not 1. and .2
    if (At(j) == '.' && At(j + 1) != '.') {
      ++j;
      while (IsDigit(At(j))) ++j;
    }
    if (At(j) == 'e' || At(j) == 'E') {
      size_t k = j + 1;
      if (At(k) == '+' || At(k) == '-') ++k;
      if (IsDigit(At(k))) {
        j = k;
        while (IsDigit(At(j))) ++j;
      }
    }
    Literal(j);
  }

  const std::string_view s_;
  const size_t n_;
  std::string* const out_;
  StatementHints* const hints_;
  ScanStats* const stats_;  // may be null
  size_t i_ = 0;
  // Depth accounting of the current statement (ScanStats).
  bool has_token_ = false;
  size_t chain_ = 0;
  size_t paren_ = 0;
  size_t max_paren_ = 0;
  bool pending_space_ = false;
  bool last_literal_ = false;
  bool cacheable_ = true;
  // 0: no list; 1: just after a literal; 2: after "literal ,".
  int list_state_ = 0;
  size_t list_end_ = 0;  // key length after the first literal of the list
};

}  // namespace

bool SqlNormalizer::Normalize(std::string_view sql, std::string* key, StatementHints* hints,
                              ScanStats* stats) {
  if (stats != nullptr) *stats = ScanStats{};
  return Lexer(sql, key, hints, stats).Run();
}

}  // namespace pgregion::routing
