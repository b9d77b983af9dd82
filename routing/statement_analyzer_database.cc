// StatementAnalyzer: the databases a statement needs no other session in
// (StatementInfo::databases).

#include "routing/statement_analyzer.h"

namespace pgregion::routing {

namespace {
constexpr JsonTree::Index kNone = JsonTree::kNone;
}  // namespace

void StatementAnalyzer::Databases(std::string_view type, Index body, StatementInfo* info,
                                  bool* cacheable) const {
  if (type == "DropdbStmt") {
    // {"dbname": "x", "missing_ok": true, "options": [FORCE]}
    info->databases.push_back(tree_.String(tree_.Member(body, "dbname")));
  } else if (type == "RenameStmt") {
    // {"renameType": "OBJECT_DATABASE", "subname": "x", "newname": "y"}
    if (tree_.RawString(body, "renameType") != "OBJECT_DATABASE") return;
    info->databases.push_back(tree_.String(tree_.Member(body, "subname")));
  } else if (type == "AlterDatabaseStmt") {
    // ALTER DATABASE x SET TABLESPACE t moves its files: nobody may be in it.
    for (Index o = tree_.FirstChild(tree_.Member(body, "options")); o != kNone; o = tree_.Next(o)) {
      if (tree_.RawString(tree_.Member(o, "DefElem"), "defname") == "tablespace") {
        info->databases.push_back(tree_.String(tree_.Member(body, "dbname")));
        break;
      }
    }
  } else if (type == "CreatedbStmt") {
    // TEMPLATE x or TEMPLATE 'x' (a String either way), or DEFAULT (no arg):
    // template1 unless named.
    std::string name = "template1";
    for (Index o = tree_.FirstChild(tree_.Member(body, "options")); o != kNone; o = tree_.Next(o)) {
      const Index def = tree_.Member(o, "DefElem");
      if (tree_.RawString(def, "defname") != "template") continue;
      const Index s = tree_.Member(tree_.Member(def, "arg"), "String");
      if (s != kNone) name = tree_.String(tree_.Member(s, "sval"));
    }
    info->databases.push_back(std::move(name));
  } else {
    return;
  }
  // (ALTER DATABASE without SET TABLESPACE names none.)
  if (info->databases.empty()) return;
  if (info->databases.back().empty()) {
    info->databases.pop_back();
    return;
  }
  // The name may come from a literal (TEMPLATE 'x'): decided per text. Rare
  // statements: the cache loses nothing.
  *cacheable = false;
}

}  // namespace pgregion::routing
