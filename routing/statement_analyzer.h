// Classifies one parsed statement: maps a libpg_query parse-tree node
// ({"SelectStmt": {...}}, {"VariableSetStmt": {...}}, ...) to a
// StatementInfo. Statement types it does not know are writes (fail closed).
// SET/RESET/SHOW handling lives in statement_analyzer_set.cc.
//
// Borrowed state: the tree, the original text (parse-tree locations index
// into it) and the catalog must outlive the analyzer; build one per parse.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "routing/classification.h"
#include "routing/function_catalog.h"
#include "routing/json_tree.h"
#include "routing/parse_tree_walker.h"

namespace pgregion::routing {

// An isolation level as the transaction_isolation setting spells it
// ("serializable", "repeatable read", ...; any case); kUnspecified otherwise.
IsolationLevel ParseIsolationLevel(std::string_view text);

class StatementAnalyzer {
 public:
  StatementAnalyzer(const JsonTree& tree, std::string_view sql, const FunctionCatalog& catalog,
                    UnknownFunctionPolicy unknown_functions)
      : tree_(tree), sql_(sql), walker_(tree, catalog), unknown_functions_(unknown_functions) {}

  // `stmt` is the node wrapper of one statement (the value of "stmt" in
  // libpg_query's output). Clears `*cacheable` when the result depends on
  // literal values.
  StatementInfo Analyze(JsonTree::Index stmt, bool* cacheable) const;

 private:
  using Index = JsonTree::Index;

  void Query(Index body, StatementInfo* info, bool* cacheable) const;
  void Explain(Index body, StatementInfo* info, bool* cacheable) const;
  void Copy(Index body, StatementInfo* info, bool* cacheable) const;
  void Transaction(Index body, StatementInfo* info) const;
  void Declare(Index body, StatementInfo* info, bool* cacheable) const;
  void Prepare(Index body, StatementInfo* info, bool* cacheable) const;
  void CreateRelation(Index body, std::string_view rel_field, StatementInfo* info) const;
  // Applies walker facts: nested writes, locking, INTO, functions, advisory
  // lock events, primary-only state, relations, advanced sequences.
  void ApplyFacts(const TreeFacts& facts, StatementInfo* info, bool* cacheable) const;
  // ALTER TABLE ... SET UNLOGGED: the table's content is the primary's only.
  void AlterTable(Index body, StatementInfo* info) const;
  // statement_analyzer_database.cc: StatementInfo::databases of DROP
  // DATABASE, ALTER DATABASE and CREATE DATABASE (`type` is the node's name).
  void Databases(std::string_view type, Index body, StatementInfo* info, bool* cacheable) const;
  // Analyzes a nested statement wrapper (EXPLAIN ANALYZE x, COPY (x) TO,
  // PREPARE p AS x, DECLARE c CURSOR FOR x) in place of `info`, keeping the
  // outer node name.
  void Nested(Index wrapper, StatementInfo* info, bool* cacheable) const;

  // statement_analyzer_set.cc
  void VariableSet(Index body, StatementInfo* info, bool* cacheable) const;
  // SELECT set_config('<custom name>', '<value>', <is_local>) and nothing else:
  // a tracked SET (or SET LOCAL) of that setting instead of an untracked
  // session change (statement_analyzer_set.cc). False: not that shape.
  bool PlainSetConfig(Index body, StatementInfo* info, bool* cacheable) const;
  void VariableShow(Index body, StatementInfo* info) const;
  void SessionCharacteristics(Index args, StatementInfo* info) const;
  // The value as Postgres's flatten_set_variable_args() would store it, or
  // nullopt when set_config() cannot reproduce it.
  std::optional<std::string> FlattenSetArgs(std::string_view name, Index args) const;
  std::string IntegerText(Index a_const) const;

  bool IsTemp(Index range_var) const;
  bool IsTempName(Index names) const;
  bool DoBodyMayChangeSession(Index do_stmt) const;
  AccessMode ReadOnlyOption(Index options) const;
  IsolationLevel IsolationOption(Index options) const;

  const JsonTree& tree_;
  const std::string_view sql_;
  const ParseTreeWalker walker_;
  const UnknownFunctionPolicy unknown_functions_;
};

}  // namespace pgregion::routing
