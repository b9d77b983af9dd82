#include "routing/lsn.h"

#include <charconv>

#include "absl/status/status.h"
#include "protocol/str_util.h"

namespace pgregion::routing {
namespace {

bool IsPowerOfTwo(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }

bool ParseHex32(std::string_view text, uint32_t* out) {
  if (text.empty() || text.size() > 8) return false;
  const char* end = text.data() + text.size();
  auto res = std::from_chars(text.data(), end, *out, 16);
  return res.ec == std::errc() && res.ptr == end;
}

}  // namespace

absl::StatusOr<Lsn> Lsn::Parse(std::string_view text) {
  const size_t slash = text.find('/');
  uint32_t hi = 0;
  uint32_t lo = 0;
  // from_chars accepts no sign or prefix, so "+1/0" and "0x1/0" fail here too.
  if (slash == std::string_view::npos || !ParseHex32(text.substr(0, slash), &hi) ||
      !ParseHex32(text.substr(slash + 1), &lo)) {
    return absl::InvalidArgumentError(
        StrCat("invalid LSN \"", text.substr(0, 40), "\": expected hex X/Y"));
  }
  return Lsn((uint64_t{hi} << 32) | lo);
}

std::string Lsn::ToString() const {
  char buf[18];
  auto hi = std::to_chars(buf, buf + 8, static_cast<uint32_t>(value_ >> 32), 16);
  *hi.ptr = '/';
  auto lo = std::to_chars(hi.ptr + 1, buf + sizeof(buf), static_cast<uint32_t>(value_), 16);
  std::string out(buf, lo.ptr);
  for (char& c : out) {
    if (c >= 'a' && c <= 'f') c = static_cast<char>(c - 'a' + 'A');
  }
  return out;
}

bool ReplayCovers(Lsn replay, Lsn token, uint64_t wal_segment_size, uint32_t page_size) {
  if (replay >= token) return true;
  if (!IsPowerOfTwo(page_size)) page_size = kDefaultWalPageSize;
  if (!IsPowerOfTwo(wal_segment_size) || wal_segment_size < page_size) {
    wal_segment_size = kDefaultWalSegmentSize;
  }
  const uint64_t t = token.value();
  const uint64_t page_offset = t & (page_size - 1);
  const bool first_page_of_segment = (t & (wal_segment_size - 1)) < page_size;
  const uint64_t header = first_page_of_segment ? kWalLongPageHeaderSize : kWalShortPageHeaderSize;
  if (page_offset != header) return false;
  return replay.value() >= t - header;
}

}  // namespace pgregion::routing
