// A PostgreSQL WAL position (XLogRecPtr): a value type with PostgreSQL's "X/Y"
// text form, and the page-boundary rule that decides whether a replica's replay
// position covers a read-your-writes token. Pure; usable from any thread.
#pragma once

#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace pgregion::routing {

inline constexpr uint64_t kDefaultWalSegmentSize = uint64_t{16} * 1024 * 1024;
inline constexpr uint32_t kDefaultWalPageSize = 8192;
// MAXALIGN'd sizes of XLogPageHeaderData and XLogLongPageHeaderData on 64-bit builds.
inline constexpr uint32_t kWalShortPageHeaderSize = 24;
inline constexpr uint32_t kWalLongPageHeaderSize = 40;

class Lsn {
 public:
  constexpr Lsn() = default;
  constexpr explicit Lsn(uint64_t value) : value_(value) {}

  // "16/B374D848" as pg_current_wal_insert_lsn() prints it: two hexadecimal
  // numbers of 1 to 8 digits (either case) around one '/'.
  [[nodiscard]] static absl::StatusOr<Lsn> Parse(std::string_view text);

  // Upper-case hex, no leading zeros, like PostgreSQL's "%X/%X".
  std::string ToString() const;

  constexpr uint64_t value() const { return value_; }
  // 0 is InvalidXLogRecPtr: "no position known".
  constexpr bool valid() const { return value_ != 0; }

  friend constexpr auto operator<=>(Lsn a, Lsn b) = default;

  // Bytes from `older` to `newer`, 0 when `older` is not behind.
  static constexpr uint64_t BytesBetween(Lsn older, Lsn newer) {
    return newer.value_ > older.value_ ? newer.value_ - older.value_ : 0;
  }

 private:
  uint64_t value_ = 0;
};

// True when a replica that has replayed up to `replay` has seen everything up to
// `token`. Beyond plain `replay >= token`: when a commit record ends exactly at a
// WAL page boundary, the primary's insert LSN already points past the next page's
// header (24 bytes; 40 on the first page of a segment) while an idle replica's
// replay LSN stops at the boundary itself. A token whose page offset equals the
// header size is therefore satisfied by a replay LSN at that page's start.
// `wal_segment_size` and `page_size` are the cluster's (wal_segment_size,
// wal_block_size); both must be powers of two with segment >= page. Invalid
// values fall back to the defaults rather than fail the read path.
bool ReplayCovers(Lsn replay, Lsn token, uint64_t wal_segment_size = kDefaultWalSegmentSize,
                  uint32_t page_size = kDefaultWalPageSize);

}  // namespace pgregion::routing
