// The admin console's language and result shape, without any proxy state:
// parsing one command (`SHOW NODES;`, `PAUSE replica1`, ...), a result table
// and its wire form (RowDescription, DataRows, CommandComplete), and the
// SHOW CONFIG rows of a Config (secrets masked). Pure; tested alone.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "proxy/config/config.h"

namespace pgregion::proxy {

struct ConsoleCommand {
  enum class Verb { kShow, kReload, kPause, kResume };
  Verb verb = Verb::kShow;
  // kShow: the object, lower case ("nodes", "pools", ...); kPause/kResume: the
  // node name as written (empty: every node); kReload: empty.
  std::string argument;
};

// One command, case-insensitive, surrounding whitespace and one trailing ';'
// allowed. Errors name what was not understood.
[[nodiscard]] absl::StatusOr<ConsoleCommand> ParseConsoleCommand(std::string_view text);

// The SHOW objects the console knows, for SHOW HELP and error hints.
inline constexpr std::string_view kConsoleShowObjects[] = {
    "help", "nodes", "pools", "clients", "servers", "stats", "config", "tenants", "version"};

struct ConsoleTable {
  std::vector<std::string> columns;
  std::vector<std::vector<std::optional<std::string>>> rows;  // nullopt: NULL
  std::string tag;                                            // CommandComplete tag, e.g. "SHOW"

  void AddRow(std::vector<std::optional<std::string>> row) { rows.push_back(std::move(row)); }
};

// RowDescription (text columns), one DataRow per row, CommandComplete; only
// CommandComplete when there are no columns.
void AppendConsoleTable(std::string* out, const ConsoleTable& table);

// SHOW CONFIG: one row per setting ("proxy.listen", "127.0.0.1:6432"), every
// section in file order; passwords never appear, a bearer token is masked.
ConsoleTable ConfigTable(const Config& config);

}  // namespace pgregion::proxy
