// The relations whose content, for one client session, only the primary has:
// sequences the session advanced (nextval/setval with a literal name) and
// unlogged tables it created or switched to unlogged. A standby shows a
// sequence's last WAL-logged value (up to 32 ahead of the primary's
// last_value, log_cnt 0) and refuses to read an unlogged table, so a later
// read naming one of them runs on the primary (RouteContext::primary_state).
//
// Names are bare relation names as PostgreSQL folds them (the schema is
// dropped: a read of any relation of that name matches, which only sends
// more to the primary). Never shrinks: the primary keeps the state after
// the session ends its transaction, DISCARDs or RESETs. Bounded: past
// kMaxNames names it stops remembering and every read that names any
// relation matches (fail closed).
//
// Pure, one per client session, on the session's loop thread.
#pragma once

#include <cstddef>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "routing/classification.h"

namespace pgregion::routing {

class PrimaryRelations {
 public:
  static constexpr size_t kMaxNames = 1024;

  // A statement about to be sent (in order): remembers what it makes
  // primary-only. Called whether or not it later succeeds (nextval() is not
  // rolled back; a failed CREATE only costs a few reads on the primary).
  void OnStatement(const StatementInfo& s);
  void OnClassification(const Classification& c) {
    for (const StatementInfo& s : c.statements) OnStatement(s);
  }

  // Whether `s` names one of the remembered relations (or, past kMaxNames,
  // any relation; or more relations than the classifier lists while any is
  // remembered).
  bool Reads(const StatementInfo& s) const;
  bool Reads(const Classification& c) const;

  size_t size() const { return names_.size(); }
  bool overflowed() const { return overflowed_; }

 private:
  absl::flat_hash_set<std::string> names_;
  bool overflowed_ = false;
};

}  // namespace pgregion::routing
