// Walks one statement's libpg_query parse tree (as a JsonTree) and collects
// what decides its routing wherever it sits in the tree: nested data-modifying
// statements (CTEs at any depth, COPY (DELETE ...) TO), locking clauses,
// SELECT ... INTO, function calls judged by a FunctionCatalog, relations
// named (RangeVar) and reads of primary-only state (system views such as
// pg_locks and pg_stat_*, sequences, primary-state functions, settings that
// differ on a standby), and the sequences nextval/setval advance. The walk
// visits the nodes in document order without recursion. Pure; the tree and
// catalog must outlive the walker.
#pragma once

#include <optional>
#include <string>
#include <string_view>
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
  bool user_function = false;  // a call of a function that is not a built-in (runs user code)
  // Advisory lock/unlock calls in document order.
  std::vector<FunctionSessionEffect> session_calls;
  // The first relation or function found whose content only the primary has
  // (StatementInfo::primary_state); empty when none.
  std::string primary_state;
  // Sequences nextval()/setval() advance, by bare folded name, each once
  // (StatementInfo::primary_relations).
  std::vector<std::string> sequences;
  // Bare folded names of the relations named, each once, at most
  // StatementInfo::kMaxRelations; `relations_truncated` past that.
  std::vector<std::string> relations;
  bool relations_truncated = false;
  // Something above was read from a string literal (nextval('s'),
  // current_setting('transaction_read_only')): the result may not be cached
  // under the normalized key.
  bool from_literal = false;
};

// Whether reading relation `relname` (in schema `schema`, empty when
// unqualified) reads primary-only state: pg_catalog's pg_locks,
// pg_prepared_xacts, pg_settings, ... and pg_stat_*/pg_statio_* views in any
// schema (extensions' pg_stat_statements too), and relations named like
// sequences (`*_seq`: serial columns' sequences), since a standby shows a
// sequence's last WAL-logged value, up to 32 ahead of the primary's.
bool IsPrimaryStateRelation(std::string_view schema, std::string_view relname);

// Whether SHOW name / current_setting('name') reads a setting a standby
// reports differently (transaction_read_only and in_hot_standby are on
// there; the node's own port, data directory, primary_conninfo, ...). `name`
// lower case; "all" for SHOW ALL.
bool IsPrimaryStateSetting(std::string_view name);

// A relation name as PostgreSQL's regclass input reads it ('s.Seq' is s.seq,
// '"S"."Seq"' keeps case): the last part, folded, or empty when unreadable.
std::string RegclassRelname(std::string_view text);

class ParseTreeWalker {
 public:
  ParseTreeWalker(const JsonTree& tree, const FunctionCatalog& catalog)
      : tree_(tree), catalog_(catalog) {}

  // Walks the subtree rooted at `root` (any node; kNone yields no facts).
  TreeFacts Walk(JsonTree::Index root) const;

 private:
  void FunctionCall(JsonTree::Index call, TreeFacts* facts) const;
  void Relation(JsonTree::Index range_var, TreeFacts* facts) const;
  // The string literal a function argument holds ('x' or 'x'::type), or
  // nullopt.
  std::optional<std::string> LiteralArg(JsonTree::Index arg) const;

  const JsonTree& tree_;
  const FunctionCatalog& catalog_;
};

}  // namespace pgregion::routing
