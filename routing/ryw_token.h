// Read-your-writes tokens: the WAL position a session's writes reached, tied
// to the cluster (system identifier) and timeline they were made on.
//
// Text form (DESIGN.md "Consistency levels and read-your-writes tokens"):
//   r1.<system identifier, decimal>.<timeline, decimal>.<LSN, 16 hex digits>
// printable, versioned by its first field, opaque to clients (they store it,
// e.g. in a cookie, and present it again with SET pgregion.ryw_token). Pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "routing/lsn.h"

namespace pgregion::routing {

struct RywToken {
  uint64_t system_identifier = 0;
  uint32_t timeline = 0;
  Lsn lsn;

  bool valid() const { return lsn.valid(); }
  // "r1.7301...3456.1.0000000003000148"; "" for an invalid token.
  std::string ToString() const;
  // Errors name what is wrong (the session gets 22023 with this message).
  [[nodiscard]] static absl::StatusOr<RywToken> Parse(std::string_view text);
  // The later of the two (a read must see both): the larger LSN and timeline.
  // Both must be of one cluster, or either invalid.
  static RywToken Max(const RywToken& a, const RywToken& b);
};

}  // namespace pgregion::routing
