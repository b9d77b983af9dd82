#include "routing/shape_memo.h"

#include <array>
#include <cstring>

namespace pgregion::routing {
namespace {

inline bool IsDigit(unsigned char c) { return static_cast<unsigned char>(c - '0') < 10; }
// Bytes that continue an identifier (scan.l: ident_cont, plus `$` for `$1`),
// as a table: one load per byte on the lookup path.
constexpr std::array<bool, 256> MakeIdentBytes() {
  std::array<bool, 256> t{};
  for (int c = 0; c < 256; ++c) {
    t[c] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '$' || c >= 0x80;
  }
  return t;
}
constexpr std::array<bool, 256> kIdentBytes = MakeIdentBytes();
inline bool IsIdentByte(unsigned char c) { return kIdentBytes[c]; }

inline unsigned char At(std::string_view s, size_t i) {
  return i < s.size() ? static_cast<unsigned char>(s[i]) : 0;
}

inline bool StartsNumber(std::string_view s, size_t i) {
  return IsDigit(At(s, i)) && (i == 0 || !IsIdentByte(At(s, i - 1)));
}

// Bytes after which a `-` before a number can only be a unary minus (an
// operator, or the start of a list element): `+ -5`, `(-5`, `, -5`, `= -5`.
inline bool IsSignContext(unsigned char c) {
  return c != 0 && std::string_view("(,+-*/<>=~!@#%^&|`?").find(static_cast<char>(c)) !=
                       std::string_view::npos;
}

// At i: past a `-` that is the sign of the number right after it, else i.
// The sign must follow `(` or `,` directly, or a space after one of the
// IsSignContext bytes (`x + -5`); `x -5` is a subtraction and `<-5` one
// operator, so neither counts. pgbench's TPC-B script adds negative deltas
// half the time: without this every sign flip would miss.
size_t SkipSign(std::string_view s, size_t i) {
  if (At(s, i) != '-' || !IsDigit(At(s, i + 1)) || i == 0) return i;
  const unsigned char p = At(s, i - 1);
  if (p == '(' || p == ',') return i + 1;
  if (p == ' ' && i >= 2 && IsSignContext(At(s, i - 2))) return i + 1;
  return i;
}

// At a digit that starts a token: the end of the numeric run, or npos when
// what follows makes it something else (`1e5`, `1.2.3`, `12abc`).
size_t NumberEnd(std::string_view s, size_t i) {
  while (IsDigit(At(s, i))) ++i;
  if (At(s, i) == '.') {
    ++i;
    while (IsDigit(At(s, i))) ++i;
  }
  if (i < s.size() && (IsIdentByte(At(s, i)) || s[i] == '.')) return std::string_view::npos;
  return i;
}

// Length of the common prefix of a and b (n bytes at most), 8 bytes at a time.
size_t CommonPrefix(const char* a, const char* b, size_t n) {
  size_t d = 0;
  while (d + 8 <= n) {
    uint64_t x;
    uint64_t y;
    std::memcpy(&x, a + d, 8);
    std::memcpy(&y, b + d, 8);
    if (x != y) break;
    d += 8;
  }
  while (d < n && a[d] == b[d]) ++d;
  return d;
}

}  // namespace

bool ShapeMemo::Memoizable(std::string_view sql) {
  if (sql.size() > kMaxTextBytes) return false;
  size_t i = 0;
  while (i < sql.size()) {
    const unsigned char c = static_cast<unsigned char>(sql[i]);
    if (c == '"') return false;
    if ((c == '-' && At(sql, i + 1) == '-') || (c == '/' && At(sql, i + 1) == '*')) return false;
    if (StartsNumber(sql, i)) {
      i = NumberEnd(sql, i);
      if (i == std::string_view::npos) return false;
      continue;
    }
    ++i;
  }
  return true;
}

bool ShapeMemo::SameShape(std::string_view a, std::string_view b) {
  size_t i = 0;
  size_t j = 0;
  while (true) {
    const size_t n = std::min(a.size() - i, b.size() - j);
    const size_t d = CommonPrefix(a.data() + i, b.data() + j, n);
    i += d;
    j += d;
    if (i == a.size() && j == b.size()) return true;
    // They differ here: only inside a number that starts a token in both.
    // Back up to its start over the identical digits (and dot) before.
    size_t back = 0;
    while (back < d && (IsDigit(At(a, i - back - 1)) || a[i - back - 1] == '.')) ++back;
    size_t sa = i - back;
    size_t sb = j - back;
    if (back == 0) {  // a sign may be there in one text only
      sa = SkipSign(a, sa);
      sb = SkipSign(b, sb);
    }
    if (!StartsNumber(a, sa) || !StartsNumber(b, sb)) return false;
    i = NumberEnd(a, sa);
    j = NumberEnd(b, sb);
    if (i == std::string_view::npos || j == std::string_view::npos) return false;
  }
}

size_t ShapeMemo::Slot(std::string_view sql) {
  // FNV-style over 8-byte words; a word holding a digit or a `-` (a sign one
  // text of the shape may lack) is cut before it and ends the hash.
  constexpr uint64_t kPrime = 1099511628211ull;
  constexpr uint64_t kZeros = 0x3030303030303030ull;  // '0' in every byte
  constexpr uint64_t kMinus = 0x2D2D2D2D2D2D2D2Dull;  // '-' in every byte
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kTens = 0x0A0A0A0A0A0A0A0Aull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  uint64_t h = 14695981039346656037ull;
  const size_t n = std::min(sql.size(), kSlotPrefix);
  for (size_t k = 0; k < n; k += 8) {
    uint64_t w = 0;  // the last word is padded with zero bytes (never digits)
    if (k + 8 <= n) {
      std::memcpy(&w, sql.data() + k, 8);  // a fixed size: one load, not a call
    } else {
      std::memcpy(&w, sql.data() + k, n - k);
    }
    const uint64_t y = w ^ kZeros;  // digits become bytes 0..9
    const uint64_t z = w ^ kMinus;  // '-' becomes 0 (padding never does)
    // In each test the lowest flagged byte is exact (no borrow reaches it
    // from the bytes before, which all fail the test), so the lowest of both.
    const uint64_t cut = ((y - kTens) & ~y & kHigh) | ((z - kOnes) & ~z & kHigh);
    if (cut != 0) {
      const int keep = __builtin_ctzll(cut) / 8;  // bytes before the cut (little endian)
      w = keep == 0 ? 0 : w & (~uint64_t{0} >> (64 - 8 * keep));
      return static_cast<size_t>(((h ^ w) * kPrime) >> 32) % kSlots;
    }
    h = (h ^ w) * kPrime;
  }
  return static_cast<size_t>(h >> 32) % kSlots;
}

const std::shared_ptr<const Classification>* ShapeMemo::Find(std::string_view sql) const {
  const Entry& e = slots_[Slot(sql)];
  if (e.value == nullptr || !SameShape(e.text, sql)) return nullptr;
  return &e.value;
}

void ShapeMemo::Store(std::string_view sql, std::shared_ptr<const Classification> value) {
  if (!Memoizable(sql)) return;
  Entry& e = slots_[Slot(sql)];
  e.text.assign(sql.data(), sql.size());
  e.value = std::move(value);
}

}  // namespace pgregion::routing
