#include "routing/sql_normalizer.h"

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
  kPlain,     // B'...', X'...', U&'...': '' doubles a quote, backslash is data
};

class Lexer {
 public:
  Lexer(std::string_view sql, std::string* out, StatementHints* hints)
      : s_(sql), n_(sql.size()), out_(out), hints_(hints) {}

  bool Run() {
    out_->clear();
    if (out_->capacity() < n_) out_->reserve(n_);
    while (i_ < n_) Step();
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
      Verbatim(i_, i_ + 1);
    }
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
    size_t end = s_.find('\n', body);
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
        if (At(j + 1) == '\'') {
          j += 2;
          continue;
        }
        ++j;
        // quotecontinue: whitespace containing a newline, then a quote.
        size_t k = j;
        bool newline = false;
        while (k < n_ && IsSpace(At(k))) newline |= s_[k++] == '\n';
        if (newline && At(k) == '\'') {
          j = k + 1;
          continue;
        }
        Literal(j);
        return;
      } else {
        ++j;
      }
    }
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
          String(i_ + 2, StringMode::kPlain);
          return;
        default:
          break;
      }
    }
    if ((c == 'U' || c == 'u') && next == '&') {
      if (At(i_ + 2) == '\'') {
        String(i_ + 3, StringMode::kPlain);
        return;
      }
      if (At(i_ + 2) == '"') {
        QuotedIdentifier(i_ + 2, i_);
        return;
      }
    }
    size_t j = i_ + 1;
    while (j < n_ && IsIdentCont(static_cast<unsigned char>(s_[j]))) ++j;
    Verbatim(i_, j);
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
  size_t i_ = 0;
  bool pending_space_ = false;
  bool last_literal_ = false;
  bool cacheable_ = true;
  // 0: no list; 1: just after a literal; 2: after "literal ,".
  int list_state_ = 0;
  size_t list_end_ = 0;  // key length after the first literal of the list
};

}  // namespace

bool SqlNormalizer::Normalize(std::string_view sql, std::string* key, StatementHints* hints) {
  return Lexer(sql, key, hints).Run();
}

}  // namespace pgregion::routing
