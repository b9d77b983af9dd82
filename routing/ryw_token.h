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

// The WAL position a session's token takes after a unit that may have ended a
// writing transaction, from what the primary answered right after it (on the
// same backend): its synchronous_commit setting, pg_current_wal_flush_lsn() and
// pg_current_wal_insert_lsn(), read in that order.
//
// The token must be at or after the end of the commit record and should be no
// later than needed: a replica can replay only what the primary has flushed.
// The insert position is always late enough, but under concurrent writers it
// includes other sessions' WAL that nobody has flushed yet, so a read could
// wait for unrelated work (the next commit, or the WAL writer's delay). When
// the commit was synchronous (synchronous_commit other than off), PostgreSQL
// flushed it before acknowledging it, so the flush position read afterwards
// covers it and holds nothing that is not already on its way to the replicas.
//
// The setting is read after the commit, so it is the session's value then;
// `durability_unknown` says the transaction may have lowered it for itself
// (SET LOCAL, set_config(), user code: StatementInfo::durability_unknown).
// Then, with off, or an answer missing or not understood, the insert
// position. Invalid when the insert position is missing (no token: the
// session's reads stay on the primary until its next write's token).
struct TokenLsn {
  Lsn lsn;
  bool flush = false;  // the flush position (else the insert position, or none)
};
TokenLsn TokenLsnAfterCommit(std::string_view synchronous_commit, bool durability_unknown,
                             Lsn flush, Lsn insert);

}  // namespace pgregion::routing
