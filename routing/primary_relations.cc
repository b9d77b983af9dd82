#include "routing/primary_relations.h"

namespace pgregion::routing {

void PrimaryRelations::OnStatement(const StatementInfo& s) {
  for (const std::string& name : s.primary_relations) {
    if (overflowed_ || name.empty()) return;
    if (names_.size() >= kMaxNames && !names_.contains(name)) {
      // Stop remembering: every read naming a relation goes to the primary.
      overflowed_ = true;
      names_.clear();
      return;
    }
    names_.insert(name);
  }
}

bool PrimaryRelations::Reads(const StatementInfo& s) const {
  if (s.relations.empty()) return false;
  if (overflowed_) return true;
  if (names_.empty()) return false;
  if (s.relations_truncated) return true;
  for (const std::string& r : s.relations) {
    if (names_.contains(r)) return true;
  }
  return false;
}

bool PrimaryRelations::Reads(const Classification& c) const {
  for (const StatementInfo& s : c.statements) {
    if (Reads(s)) return true;
  }
  return false;
}

}  // namespace pgregion::routing
