#include "routing/parse_tree_walker.h"

#include "protocol/str_util.h"

namespace pgregion::routing {
namespace {

using Index = JsonTree::Index;

// The last node of the subtree rooted at `root`: nodes are stored in document
// order, so the subtree is the index range [root, last].
Index LastDescendant(const JsonTree& tree, Index root) {
  Index last = root;
  while (true) {
    Index child = tree.FirstChild(last);
    if (child == JsonTree::kNone) return last;
    while (tree.Next(child) != JsonTree::kNone) child = tree.Next(child);
    last = child;
  }
}

}  // namespace

TreeFacts ParseTreeWalker::Walk(Index root) const {
  TreeFacts facts;
  if (root == JsonTree::kNone) return facts;
  const Index last = LastDescendant(tree_, root);
  for (Index i = root; i <= last; ++i) {
    std::string_view key = tree_.node(i).key;
    if (key.empty()) continue;
    if (key[0] >= 'a' && key[0] <= 'z') {
      if (key == "intoClause" && facts.into == JsonTree::kNone) facts.into = i;
      continue;
    }
    // Upper case: a node type wrapping its fields.
    if (key == "FuncCall") {
      FunctionCall(i, &facts);
    } else if (key == "LockingClause") {
      facts.locking = true;
    } else if (key == "InsertStmt" || key == "UpdateStmt" || key == "DeleteStmt" ||
               key == "MergeStmt") {
      facts.modifies = true;
    }
  }
  return facts;
}

void ParseTreeWalker::FunctionCall(Index call, TreeFacts* facts) const {
  // funcname: [{"String":{"sval":"pg_catalog"}}, {"String":{"sval":"nextval"}}]
  std::string schema;
  std::string name;
  Index names = tree_.Member(call, "funcname");
  for (Index part = tree_.FirstChild(names); part != JsonTree::kNone; part = tree_.Next(part)) {
    schema = std::move(name);
    name = tree_.String(tree_.Member(tree_.Member(part, "String"), "sval"));
  }
  if (name.empty()) return;
  FunctionInfo info = catalog_.Lookup(schema, name);
  std::string qualified = schema.empty() ? name : StrCat(schema, ".", name);
  switch (info.effect) {
    case FunctionEffect::kWrite:
      if (facts->write_function.empty()) facts->write_function = std::move(qualified);
      break;
    case FunctionEffect::kUnknown:
      if (facts->unknown_function.empty()) facts->unknown_function = std::move(qualified);
      break;
    case FunctionEffect::kRead:
      break;
  }
  switch (info.session) {
    case FunctionSessionEffect::kNone:
      break;
    case FunctionSessionEffect::kSetConfig:
      facts->set_config = true;
      break;
    case FunctionSessionEffect::kAdvisoryLock:
    case FunctionSessionEffect::kAdvisoryUnlock:
    case FunctionSessionEffect::kAdvisoryUnlockAll:
      facts->session_calls.push_back(info.session);
      break;
  }
}

}  // namespace pgregion::routing
