#include "proxy/session/statement_name.h"

#include <doctest/doctest.h>

#include <string>

#include "absl/container/flat_hash_map.h"

namespace pgregion::proxy {
namespace {

TEST_CASE("server statement names: stable, distinct, within NAMEDATALEN") {
  // Parse tails as the client sends them: query, NUL, parameter types.
  const std::string a("SELECT 1\0\0\0", 11);
  CHECK(ServerStatementName(a) == ServerStatementName(std::string(a)));
  // The same query with different parameter types is a different statement.
  const std::string typed("SELECT 1\0\0\1\0\0\0\x17", 15);
  CHECK(ServerStatementName(a) != ServerStatementName(typed));
  CHECK(ServerStatementName("") != ServerStatementName(std::string(1, '\0')));
  // Many texts, no two sharing a name (std::hash gave 64 bits: the birthday
  // bound made sharing possible; SHA-256 makes it a non-event).
  absl::flat_hash_map<std::string, std::string> seen;
  for (int i = 0; i < 20000; ++i) {
    std::string text = "SELECT " + std::to_string(i);
    std::string name = ServerStatementName(text);
    auto [it, inserted] = seen.emplace(name, text);
    CHECK_MESSAGE(inserted, name, " shared by ", it->second, " and ", text);
    // PostgreSQL keys prepared statements by their first NAMEDATALEN-1 bytes.
    CHECK(name.size() <= 63);
    CHECK(name.rfind("pgr_", 0) == 0);
    CHECK(name.find_first_not_of(
              "pgr_ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") ==
          std::string::npos);
  }
  CHECK(ServerStatementName("x").size() == 47);  // "pgr_" + 43 base64url characters
}

}  // namespace
}  // namespace pgregion::proxy
