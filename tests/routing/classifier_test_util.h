// Readable dumps of classifier results for test failure messages.
#pragma once

#include <string>

#include "protocol/str_util.h"
#include "routing/classification.h"

namespace pgregion::routing::testing {

inline std::string Describe(const Classification& c) {
  std::string out =
      StrCat("write=", c.write, " parse_error=", c.parse_error, " cacheable=", c.cacheable);
  if (!c.error.empty()) StrAppend(&out, " error=\"", c.error, "\"");
  for (const StatementInfo& s : c.statements) {
    StrAppend(&out, "\n  [", s.node, "] kind=", StatementKindName(s.kind), " write=", s.write,
              " reason=", WriteReasonName(s.reason), " txn=", TransactionControlName(s.txn));
    if (!s.function.empty()) StrAppend(&out, " function=", s.function);
    for (const SessionEvent& e : s.events) {
      StrAppend(&out, " {", SessionEventTypeName(e.type), " ", e.name, "=", e.value, "}");
    }
  }
  return out;
}

}  // namespace pgregion::routing::testing
