// Fuzz target: the admin console's command parser and result encoding
// (proxy/console_command.h).
//
// Properties: arbitrary text never crashes the parser; an accepted command
// printed back in canonical form parses to the same command; SHOW objects are
// lower case and known; a fuzzed result table encodes to well-formed messages
// (RowDescription, one DataRow per row with the same values, CommandComplete
// with the tag) that the protocol decoder reads back.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "fuzz/fuzz_check.h"
#include "protocol/frame_decoder.h"
#include "protocol/messages.h"
#include "proxy/admin/console_command.h"

namespace {

using pgregion::fuzz::Check;
using pgregion::proxy::ConsoleCommand;

std::string Canonical(const ConsoleCommand& c) {
  switch (c.verb) {
    case ConsoleCommand::Verb::kShow: return "SHOW " + c.argument;
    case ConsoleCommand::Verb::kReload: return "RELOAD";
    case ConsoleCommand::Verb::kPause: return "PAUSE " + c.argument;
    case ConsoleCommand::Verb::kResume: return "RESUME " + c.argument;
  }
  return "";
}

void CheckTable(FuzzedDataProvider& fdp) {
  pgregion::proxy::ConsoleTable table;
  table.tag = fdp.ConsumeRandomLengthString(16);
  for (char& c : table.tag) {
    if (c == '\0') c = '0';
  }
  const int ncols = fdp.ConsumeIntegralInRange<int>(0, 4);
  for (int i = 0; i < ncols; ++i) {
    std::string name = fdp.ConsumeRandomLengthString(8);
    for (char& c : name) {
      if (c == '\0') c = '0';
    }
    table.columns.push_back(name);
  }
  const int nrows = ncols == 0 ? 0 : fdp.ConsumeIntegralInRange<int>(0, 4);
  for (int r = 0; r < nrows; ++r) {
    std::vector<std::optional<std::string>> row;
    for (int i = 0; i < ncols; ++i) {
      if (fdp.ConsumeBool()) {
        row.emplace_back(std::nullopt);
      } else {
        row.emplace_back(fdp.ConsumeRandomLengthString(16));
      }
    }
    table.AddRow(std::move(row));
  }
  std::string out;
  pgregion::proxy::AppendConsoleTable(&out, table);

  std::string_view rest = out;
  pgregion::protocol::Frame frame;
  std::vector<pgregion::protocol::Frame> frames;
  while (pgregion::protocol::SplitWholeMessage(&rest, &frame)) frames.push_back(frame);
  Check(rest.empty(), "console table output is not whole messages");
  const size_t expected = ncols == 0 ? 1 : 2 + table.rows.size();
  Check(frames.size() == expected, "console table: wrong number of messages");
  Check(frames.back().type == 'C', "console table does not end with CommandComplete");
  auto tag = pgregion::protocol::ParseCommandComplete(frames.back().body);
  // An empty tag means the default "SHOW" (with or without columns).
  Check(tag.ok() && *tag == (table.tag.empty() && ncols > 0 ? std::string("SHOW") : table.tag),
        "console table: tag changed");
  if (ncols == 0) return;
  Check(frames[0].type == 'T', "console table does not start with RowDescription");
  for (size_t r = 0; r < table.rows.size(); ++r) {
    Check(frames[1 + r].type == 'D', "console table row is not a DataRow");
    auto cols = pgregion::protocol::ParseDataRow(frames[1 + r].body);
    Check(cols.ok() && cols->size() == table.columns.size(), "console row: column count");
    for (size_t i = 0; i < cols->size(); ++i) {
      const auto& want = table.rows[r][i];
      Check((*cols)[i].is_null == !want.has_value(), "console row: NULL changed");
      if (want) Check((*cols)[i].value == *want, "console row: value changed");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider fdp(data, size);
  if (fdp.ConsumeBool()) {
    CheckTable(fdp);
    return 0;
  }
  const std::string text = fdp.ConsumeRemainingBytesAsString();
  auto cmd = pgregion::proxy::ParseConsoleCommand(text);
  if (!cmd.ok()) return 0;
  if (cmd->verb == ConsoleCommand::Verb::kShow) {
    bool known = false;
    for (std::string_view k : pgregion::proxy::kConsoleShowObjects) known |= cmd->argument == k;
    Check(known, "SHOW of an unknown object accepted");
  }
  auto again = pgregion::proxy::ParseConsoleCommand(Canonical(*cmd));
  Check(again.ok() && again->verb == cmd->verb && again->argument == cmd->argument,
        "canonical form of an accepted command parses differently");
  return 0;
}
