// Walks one statement's libpg_query parse tree (as a JsonTree) and collects
// what decides its routing wherever it sits in the tree: nested data-modifying
// statements (CTEs at any depth, COPY (DELETE ...) TO), locking clauses,
// SELECT ... INTO, and function calls judged by a FunctionCatalog. The walk
// visits the nodes in document order without recursion. Pure; the tree and
// catalog must outlive the walker.
#pragma once

#include <string>
#include <vector>

#include "routing/function_catalog.h"
#include "routing/json_tree.h"

namespace pgregion::routing {

struct TreeFacts {
  bool modifies = false;                   // an InsertStmt/UpdateStmt/DeleteStmt/MergeStmt node
  bool locking = false;                    // a LockingClause node
  JsonTree::Index into = JsonTree::kNone;  // the first intoClause (SELECT INTO)
  std::string write_function;              // the first call with side effects
  std::string unknown_function;            // the first call of an unknown function
  bool set_config = false;
  // Advisory lock/unlock calls in document order.
  std::vector<FunctionSessionEffect> session_calls;
};

class ParseTreeWalker {
 public:
  ParseTreeWalker(const JsonTree& tree, const FunctionCatalog& catalog)
      : tree_(tree), catalog_(catalog) {}

  // Walks the subtree rooted at `root` (any node; kNone yields no facts).
  TreeFacts Walk(JsonTree::Index root) const;

 private:
  void FunctionCall(JsonTree::Index call, TreeFacts* facts) const;

  const JsonTree& tree_;
  const FunctionCatalog& catalog_;
};

}  // namespace pgregion::routing
