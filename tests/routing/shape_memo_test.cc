#include "routing/shape_memo.h"

#include <doctest/doctest.h>

#include <string>
#include <string_view>

#include "routing/sql_normalizer.h"

namespace pgregion::routing {
namespace {

// The normalizer keys `-5` apart from `5` (and a signed literal ends a
// literal list); the memo lets a sign come and go.
std::string KeyModuloSigns(std::string_view sql) {
  std::string key = SqlNormalizer::Key(sql);
  for (size_t at = key.find("-?"); at != std::string::npos; at = key.find("-?", at))
    key.erase(at, 1);
  for (size_t at = key.find("?, ?"); at != std::string::npos; at = key.find("?, ?", at)) {
    key.erase(at, 3);
  }
  return key;
}

bool Same(std::string_view a, std::string_view b) {
  const bool same = ShapeMemo::SameShape(a, b);
  CHECK(same == ShapeMemo::SameShape(b, a));
  if (same) {
    // Same shape implies the same normalized key, and memoizable alike.
    CHECK(KeyModuloSigns(a) == KeyModuloSigns(b));
    CHECK(ShapeMemo::Memoizable(a) == ShapeMemo::Memoizable(b));
    if (ShapeMemo::Memoizable(a)) {
      ShapeMemo memo;  // and lands in the same slot
      memo.Store(a, std::make_shared<const Classification>());
      CHECK(memo.Find(b) != nullptr);
    }
  }
  return same;
}

TEST_CASE("ShapeMemo: numbers that start a token may differ") {
  CHECK(Same("SELECT abalance FROM pgbench_accounts WHERE aid = 1;",
             "SELECT abalance FROM pgbench_accounts WHERE aid = 98765;"));
  CHECK(Same("select 1.5, -2, x+3 from t limit 10", "select 22.25, -7, x+0 from t limit 1"));
  CHECK(Same("select '12', 3", "select '4', 5"));  // digits in a string: a literal either way
  CHECK(Same("select 1.5 from t where a = 10 and b = 7",
             "select 1.25 from t where a = 1 and b = 70"));
  CHECK(Same("select 12", "select 123"));
  CHECK(Same("select 123", "select 12"));
  CHECK(Same("select 0 limit 5", "select 0 limit 5"));
  CHECK(Same("select 1234567 + 2", "select 7 + 2"));
  CHECK(Same("select * from a_rather_long_table_name where id = 7",
             "select * from a_rather_long_table_name where id = 77777"));
  CHECK(Same("select * from t where id = 7", "select * from t where id = 123456"));
}

TEST_CASE("ShapeMemo: a unary minus may come and go where it can only be a sign") {
  // pgbench's TPC-B script: `:delta` is negative half the time.
  CHECK(Same("UPDATE pgbench_accounts SET abalance = abalance + -4077 WHERE aid = 166807;",
             "UPDATE pgbench_accounts SET abalance = abalance + 2134 WHERE aid = 5;"));
  CHECK(
      Same("INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (8, 1, 42, -2345, "
           "CURRENT_TIMESTAMP);",
           "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (8, 1, 42, 17, "
           "CURRENT_TIMESTAMP);"));
  CHECK(Same("select f(-1)", "select f(22)"));
  CHECK(Same("select f(-1)", "select f(-22)"));
  CHECK(Same("select x = -1.5, y", "select x = 2, y"));
  CHECK(Same("select a - -1", "select a - 7"));
  CHECK(Same("select a, -1", "select a, 7"));
  CHECK(Same("select f(-1, -2)", "select f(3, 4)"));
  // Where `-` may be an operator of its own, or part of one, it must match.
  CHECK_FALSE(Same("select x -1", "select x 1"));  // a subtraction
  CHECK_FALSE(Same("select x<-1", "select x<1"));  // the operator `<-`
  CHECK_FALSE(Same("select (x) -1", "select (x) 1"));
  CHECK_FALSE(Same("select 5 -1", "select 5 1"));
  CHECK_FALSE(Same("select (- 1)", "select (1)"));  // the minus is not at the number
  CHECK_FALSE(Same("select a - 1", "select a 1"));
  CHECK_FALSE(Same("select 1-123", "select 1123"));
  CHECK_FALSE(Same("select -1", "select 1"));  // after a keyword: never assumed
  CHECK_FALSE(Same("select f(-x)", "select f(x)"));
}

TEST_CASE("ShapeMemo: anything else must be identical") {
  CHECK_FALSE(Same("select f1()", "select f2()"));  // identifiers
  CHECK_FALSE(Same("select $1", "select $2"));      // parameters
  CHECK_FALSE(Same("select 1", "select 1 "));
  CHECK_FALSE(Same("select 1", "SELECT 1"));
  CHECK_FALSE(Same("select 'a1'", "select 'a2'"));  // preceded by an identifier byte
  CHECK_FALSE(Same("select 1", "select x"));
  CHECK_FALSE(Same("select 1", "select 1, 2"));
  CHECK_FALSE(Same("", "1"));
  CHECK_FALSE(Same("select 1", "select 1e5"));
  CHECK_FALSE(Same("select 1.5", "select 1.5.3"));
  CHECK_FALSE(Same("select t1", "select t12"));
  CHECK_FALSE(Same("select $12", "select $13"));
  CHECK_FALSE(Same("select x.1", "select x.2x"));
}

TEST_CASE("ShapeMemo: texts that are never memoized") {
  CHECK_FALSE(ShapeMemo::Memoizable("select \"t 1\".x from \"t 1\""));  // quoted identifiers
  CHECK_FALSE(ShapeMemo::Memoizable("select 1 /* pgregion: max_staleness=500ms */"));
  CHECK_FALSE(ShapeMemo::Memoizable("select 1 -- 2"));
  CHECK_FALSE(ShapeMemo::Memoizable("select 1e5"));
  CHECK_FALSE(ShapeMemo::Memoizable("select 1.2.3"));
  CHECK_FALSE(ShapeMemo::Memoizable(std::string(ShapeMemo::kMaxTextBytes + 1, ' ')));
  CHECK(ShapeMemo::Memoizable("select 1"));
  CHECK(ShapeMemo::Memoizable("select a - -1, b / 2 * 3 from t1 where x = $1"));
  ShapeMemo memo;
  auto c = std::make_shared<const Classification>();
  memo.Store("select 1 -- x", c);
  CHECK(memo.Find("select 1 -- x") == nullptr);
}

TEST_CASE("ShapeMemo: find returns what was stored for the same shape only") {
  ShapeMemo memo;
  auto c = std::make_shared<const Classification>();
  const std::string_view a = "select * from t where id = 7";
  memo.Store(a, c);
  const std::string_view b = "select * from t where id = 123456";
  const auto* hit = memo.Find(b);
  REQUIRE(hit != nullptr);
  CHECK(hit->get() == c.get());
  const std::string_view other = "select * from u where id = 7";
  CHECK(memo.Find(other) == nullptr);
  // A sign inside the slot's hashed prefix: both texts cut the hash there.
  memo.Store("select f(-5)", c);
  CHECK(memo.Find("select f(5)") != nullptr);
  CHECK(memo.Find("select f(-77)") != nullptr);
}

}  // namespace
}  // namespace pgregion::routing
