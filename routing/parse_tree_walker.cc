#include "routing/parse_tree_walker.h"

#include <span>

#include "protocol/str_util.h"
#include "routing/classification.h"

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

constexpr std::string_view kPrimaryStateRelations[] = {
    "pg_locks",
    "pg_prepared_xacts",
    "pg_replication_slots",
    "pg_replication_origin_status",
    "pg_settings",
    "pg_file_settings",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_cursors",
    "pg_prepared_statements",
    "pg_backend_memory_contexts",
    "pg_shmem_allocations",
    "pg_sequences",
};

constexpr std::string_view kPrimaryStateSettings[] = {
    "transaction_read_only", "in_hot_standby",    "all",          "port",
    "data_directory",        "config_file",       "hba_file",     "ident_file",
    "primary_conninfo",      "primary_slot_name", "cluster_name", "listen_addresses",
};

bool Contains(std::span<const std::string> names, std::string_view name) {
  for (const std::string& n : names) {
    if (n == name) return true;
  }
  return false;
}

char FoldAscii(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

}  // namespace

bool IsPrimaryStateRelation(std::string_view schema, std::string_view relname) {
  if (StartsWith(relname, "pg_stat_") || StartsWith(relname, "pg_statio_")) return true;
  if (relname.size() > 4 && relname.substr(relname.size() - 4) == "_seq") return true;
  if (!schema.empty() && schema != "pg_catalog") return false;
  for (std::string_view r : kPrimaryStateRelations) {
    if (r == relname) return true;
  }
  return false;
}

bool IsPrimaryStateSetting(std::string_view name) {
  for (std::string_view s : kPrimaryStateSettings) {
    if (s == name) return true;
  }
  return false;
}

std::string RegclassRelname(std::string_view text) {
  // stringToQualifiedNameList(): dot-separated identifiers, each quoted
  // ("" is a quote) or folded to lower case; the relation is the last.
  std::string part;
  size_t i = 0;
  while (i < text.size() && text[i] == ' ') ++i;
  while (i < text.size()) {
    part.clear();
    if (text[i] == '"') {
      for (++i;; ++i) {
        if (i >= text.size()) return {};  // unterminated: regclass would refuse it
        if (text[i] == '"') {
          if (i + 1 < text.size() && text[i + 1] == '"') {
            part.push_back('"');
            ++i;
            continue;
          }
          ++i;
          break;
        }
        part.push_back(text[i]);
      }
    } else {
      while (i < text.size() && text[i] != '.' && text[i] != ' ')
        part.push_back(FoldAscii(text[i++]));
    }
    while (i < text.size() && text[i] == ' ') ++i;
    if (i < text.size()) {
      if (text[i] != '.') return {};
      ++i;
      while (i < text.size() && text[i] == ' ') ++i;
    }
  }
  return part;
}

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
    } else if (key == "RangeVar") {
      Relation(i, &facts);
    } else if (key == "LockingClause") {
      facts.locking = true;
    } else if (key == "InsertStmt" || key == "UpdateStmt" || key == "DeleteStmt" ||
               key == "MergeStmt") {
      facts.modifies = true;
    }
  }
  return facts;
}

void ParseTreeWalker::Relation(Index range_var, TreeFacts* facts) const {
  std::string relname = tree_.String(tree_.Member(range_var, "relname"));
  if (relname.empty()) return;
  const std::string_view schema = tree_.RawString(range_var, "schemaname");
  if (facts->primary_state.empty() && IsPrimaryStateRelation(schema, relname)) {
    facts->primary_state = schema.empty() ? relname : StrCat(schema, ".", relname);
  }
  if (Contains(facts->relations, relname)) return;
  if (facts->relations.size() >= StatementInfo::kMaxRelations) {
    facts->relations_truncated = true;
    return;
  }
  facts->relations.push_back(std::move(relname));
}

std::optional<std::string> ParseTreeWalker::LiteralArg(Index arg) const {
  if (arg == JsonTree::kNone) return std::nullopt;
  if (Index cast = tree_.Member(arg, "TypeCast"); cast != JsonTree::kNone) {
    arg = tree_.Member(cast, "arg");  // 's'::regclass, 's'::text
  }
  Index s = tree_.Member(tree_.Member(tree_.Member(arg, "A_Const"), "sval"), "sval");
  if (s == JsonTree::kNone) return std::nullopt;
  return tree_.String(s);
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
  if (!info.builtin) facts->user_function = true;
  if (info.primary_state && facts->primary_state.empty()) facts->primary_state = qualified;
  const bool catalog = schema.empty() || EqualsIgnoreCase(schema, "pg_catalog");
  const Index first_arg = tree_.FirstChild(tree_.Member(call, "args"));
  if (catalog && (name == "nextval" || name == "setval")) {
    // The sequence now differs on a standby (and nextval() there fails):
    // the session reads it on the primary from now on.
    if (std::optional<std::string> text = LiteralArg(first_arg)) {
      facts->from_literal = true;
      std::string rel = RegclassRelname(*text);
      if (!rel.empty() && !Contains(facts->sequences, rel)) facts->sequences.push_back(rel);
    }
  } else if (catalog && name == "current_setting" && info.effect == FunctionEffect::kRead) {
    if (std::optional<std::string> text = LiteralArg(first_arg)) {
      facts->from_literal = true;
      std::string setting = *text;
      for (char& c : setting) c = FoldAscii(c);
      if (IsPrimaryStateSetting(setting) && setting != "all" && facts->primary_state.empty()) {
        facts->primary_state = StrCat("current_setting('", setting, "')");
      }
    }
  }
  switch (info.session) {
    case FunctionSessionEffect::kNone:
      break;
    case FunctionSessionEffect::kSetConfig:
      facts->set_config = true;
      // Its literal name decides the classification (a plain set_config() of a
      // custom setting is a tracked read, of another setting an untracked
      // write: StatementAnalyzer::PlainSetConfig), and the normalized cache
      // key hides it: never cached.
      facts->from_literal = true;
      break;
    case FunctionSessionEffect::kAdvisoryLock:
    case FunctionSessionEffect::kAdvisoryUnlock:
    case FunctionSessionEffect::kAdvisoryUnlockAll:
      facts->session_calls.push_back(info.session);
      break;
  }
}

}  // namespace pgregion::routing
