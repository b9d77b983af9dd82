#include "routing/sql_normalizer.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <string_view>

#include "routing/statement_classifier.h"

namespace pgregion::routing {
namespace {

struct KeyRow {
  std::string_view sql;
  std::string_view key;
};

bool Cacheable(std::string_view sql) {
  std::string key;
  StatementHints hints;
  return SqlNormalizer::Normalize(sql, &key, &hints);
}

StatementHints Hints(std::string_view sql) {
  std::string key;
  StatementHints hints;
  SqlNormalizer::Normalize(sql, &key, &hints);
  return hints;
}

}  // namespace

TEST_CASE("SqlNormalizer: keys") {
  const KeyRow rows[] = {
      {"SELECT 1", "SELECT ?"},
      {"  SELECT 1  ", "SELECT ?"},
      {"SELECT  1 ,\n\t2", "SELECT ?"},
      {"SELECT 'abc'", "SELECT ?"},
      {"SELECT 'it''s'", "SELECT ?"},
      {"SELECT E'a\\'b'", "SELECT ?"},
      {"SELECT e'\\\\'", "SELECT ?"},
      {"SELECT E'\\x41\\n'", "SELECT ?"},
      {"SELECT N'x'", "SELECT ?"},
      {"SELECT B'0101', X'ff', x'00', b'1'", "SELECT ?"},
      {"SELECT U&'\\0041'", "SELECT ?"},
      {"SELECT u&'d!0061t!+000061' UESCAPE '!'", "SELECT ? UESCAPE '!'"},
      {"SELECT U&\"d\\0061t\"", "SELECT U&\"d\\0061t\""},
      {"SELECT $$a'b$$", "SELECT ?"},
      {"SELECT $tag$ $$ 'x' $tag$", "SELECT ?"},
      {"SELECT $a$x$a$ || $b$y$b$", "SELECT ? || ?"},
      {"SELECT $1, $2", "SELECT $1, $2"},
      {"SELECT 1.5, .5, 1e10, 1.5E-3, 42, 1E+2", "SELECT ?"},
      {"SELECT 1e", "SELECT ?e"},
      {"SELECT 1..2", "SELECT ?.?"},
      {"SELECT -1", "SELECT -?"},
      {"SELECT 1::int", "SELECT ?::int"},
      {"SELECT t1.a FROM t1", "SELECT t1.a FROM t1"},
      {"SELECT a$b FROM t", "SELECT a$b FROM t"},
      {"SELECT \"Quoted Ident\" FROM \"T\"", "SELECT \"Quoted Ident\" FROM \"T\""},
      {"SELECT \"a\"\"b\"", "SELECT \"a\"\"b\""},
      {"SELECT \"it's\" FROM t", "SELECT \"it's\" FROM t"},
      {"SELECT 1 -- comment\nFROM t", "SELECT ? FROM t"},
      // scan.l ends a comment at \r too (found by the long fuzz run): what
      // follows is part of the statement, and of the key.
      {"SELECT 1 --x\r; DELETE FROM t", "SELECT ? ; DELETE FROM t"},
      {"SELECT a--b\n", "SELECT a"},
      {"SELECT /* c */ 1", "SELECT ?"},
      {"SELECT /* a /* nested */ b */ 1", "SELECT ?"},
      {"SELECT 1/*c*/+2", "SELECT ? +?"},
      {"SELECT data ? 'k'", "SELECT data ?? ?"},
      {"SELECT data ?| array['a']", "SELECT data ??| array[?]"},
      {"SELECT 'a'?'b'", "SELECT ? ?? ?"},
      {"SELECT 'a'\n'b'", "SELECT ?"},
      {"SELECT 'a' 'b'", "SELECT ? ?"},
      {"SELECT date '2020-01-01'", "SELECT date ?"},
      {"SELECT interval '1 day'", "SELECT interval ?"},
      {"SELECT x FROM t WHERE y IN (1, 2, 3)", "SELECT x FROM t WHERE y IN (?)"},
      {"SELECT x FROM t WHERE y IN ( 1 )", "SELECT x FROM t WHERE y IN ( ? )"},
      {"INSERT INTO t VALUES (1, 'a'), (2, 'b')", "INSERT INTO t VALUES (?), (?)"},
      {"SELECT f(1, $1, 2, -3, 4, 5)", "SELECT f(?, $1, ?, -?)"},
      {"SELECT 1, a, 2", "SELECT ?, a, ?"},
      {"SELECT \xc3\xa4rger FROM t", "SELECT \xc3\xa4rger FROM t"},
      {"SELECT 1;", "SELECT ?;"},
      {"SELECT 1; SELECT 'x';", "SELECT ?; SELECT ?;"},
      {"UPDATE pgbench_accounts SET abalance = abalance + -12 WHERE aid = 5;",
       "UPDATE pgbench_accounts SET abalance = abalance + -? WHERE aid = ?;"},
      {"", ""},
      {"   \n\t ", ""},
      {"-- only", ""},
      {"/* only */", ""},
      {"SELECT 'unterminated", "SELECT ?"},
      {"SELECT /* unterminated", "SELECT"},
      {"SELECT $$unterminated", "SELECT ?"},
      {"SELECT \"unterminated", "SELECT \"unterminated"},
      {"SELECT $", "SELECT $"},
      {"SELECT $foo", "SELECT $foo"},
  };
  for (const KeyRow& row : rows) {
    CAPTURE(row.sql);
    CHECK(SqlNormalizer::Key(row.sql) == row.key);
  }
}

TEST_CASE("SqlNormalizer: literals share a key, identifiers do not") {
  auto same = [](std::string_view a, std::string_view b) {
    return SqlNormalizer::Key(a) == SqlNormalizer::Key(b);
  };
  CHECK(same("SELECT * FROM t WHERE aid = 1", "SELECT * FROM t WHERE aid = 2"));
  CHECK(same("SELECT 'a'", "SELECT 'bcd'"));
  CHECK(same("SELECT 1", "SELECT 1.5e3"));
  CHECK(same("SELECT 'a'", "SELECT $$a$$"));
  CHECK(same("SELECT 1", "  SELECT   1 /* c */ "));
  CHECK(same("SELECT 1", "SELECT 1 -- trailing"));
  CHECK(same("SELECT * FROM t WHERE id IN (1, 2, 3)", "SELECT * FROM t WHERE id IN (4)"));
  CHECK(same("SELECT * FROM t WHERE id IN ('a','b')", "SELECT * FROM t WHERE id IN ('c')"));
  CHECK(!same("SELECT * FROM t1", "SELECT * FROM t2"));
  CHECK(!same("SELECT * FROM t WHERE aid = 1", "SELECT * FROM t WHERE bid = 1"));
  CHECK(!same("select 1", "SELECT 1"));
  CHECK(!same("SELECT \"a\"", "SELECT 'a'"));
  CHECK(!same("SELECT nextval('s')", "SELECT lower('s')"));
  CHECK(!same("SELECT $1", "SELECT $2"));
  CHECK(!same("SELECT a b", "SELECT ab"));
  // A `?` of the text never looks like a literal.
  CHECK(!same("SELECT a ? 'k'", "SELECT a 'x' 'k'"));
  CHECK(!same("SELECT 'a'?", "SELECT ?'a'"));
  CHECK(!same("SELECT a ?? b", "SELECT a ? b"));
  CHECK(!same("SELECT 1'a'", "SELECT ?"));
}

TEST_CASE("SqlNormalizer: cacheable") {
  CHECK(Cacheable("SELECT 1"));
  CHECK(Cacheable("SELECT E'a\\'b'"));
  CHECK(Cacheable("SELECT $$a\\b$$"));
  CHECK(Cacheable("SELECT U&'\\0041'"));
  CHECK(Cacheable("SELECT B'01'"));
  CHECK(Cacheable(""));
  // A backslash in a plain string lexes differently under
  // standard_conforming_strings = off.
  CHECK(!Cacheable("SELECT 'a\\'"));
  CHECK(!Cacheable("SELECT N'a\\b'"));
  // Unterminated: a parse error that shares its key with valid text.
  CHECK(!Cacheable("SELECT 'abc"));
  CHECK(!Cacheable("SELECT E'abc\\"));
  CHECK(!Cacheable("SELECT $$abc"));
  CHECK(!Cacheable("SELECT \"abc"));
  CHECK(!Cacheable("SELECT 1 /* abc"));
  CHECK(!Cacheable("SELECT 1 /* a /* b */"));
}

TEST_CASE("SqlNormalizer: hints") {
  using Route = StatementHints::Route;
  using Consistency = StatementHints::Consistency;
  CHECK(*Hints("/* pgregion: route=primary */ SELECT 1").route == Route::kPrimary);
  CHECK(*Hints("SELECT 1 /* pgregion: route=replica */").route == Route::kReplica);
  CHECK(*Hints("SELECT 1 -- pgregion: route=auto").route == Route::kAuto);
  CHECK(*Hints("/*pgregion:route=primary*/SELECT 1").route == Route::kPrimary);
  CHECK(*Hints("/* PGREGION : ROUTE = Primary */ SELECT 1").route == Route::kPrimary);
  CHECK(*Hints("SELECT /* pgregion: consistency=strong */ 1").consistency == Consistency::kStrong);

  StatementHints all = Hints(
      "/* pgregion: route=replica, consistency=bounded, max_staleness=500ms, "
      "ryw_token=r1.7291.1.0/3000148 */ SELECT 1");
  CHECK(*all.route == Route::kReplica);
  CHECK(*all.consistency == Consistency::kBounded);
  CHECK(*all.max_staleness_ms == 500);
  CHECK(*all.ryw_token == "r1.7291.1.0/3000148");
  CHECK(all.error.empty());

  CHECK(*Hints("/* pgregion: ryw_token='r1.x.1.0/1' */").ryw_token == "r1.x.1.0/1");
  CHECK(*Hints("/* pgregion: max_staleness=2s */").max_staleness_ms == 2000);
  CHECK(*Hints("/* pgregion: max_staleness=1.5s */").max_staleness_ms == 1500);
  CHECK(*Hints("/* pgregion: max_staleness=1min */").max_staleness_ms == 60000);
  CHECK(*Hints("/* pgregion: max_staleness=250 */").max_staleness_ms == 250);
  // A later pair or comment wins.
  CHECK(*Hints("/* pgregion: route=primary */ SELECT 1 /* pgregion: route=replica */").route ==
        Route::kReplica);

  StatementHints bad = Hints("/* pgregion: route=sideways consistency=strong */ SELECT 1");
  CHECK(!bad.route.has_value());
  CHECK(*bad.consistency == Consistency::kStrong);
  CHECK(!bad.error.empty());
  CHECK(!Hints("/* pgregion: color=blue */").error.empty());
  CHECK(!Hints("/* pgregion: route */").error.empty());
  CHECK(!Hints("/* pgregion: max_staleness=-5ms */").error.empty());
  CHECK(!Hints("/* pgregion: max_staleness=5 parsecs */").error.empty());

  // Not hints: inside literals, or comments that do not start with the tag.
  CHECK(Hints("SELECT '/* pgregion: route=primary */'").empty());
  CHECK(Hints("SELECT $$ -- pgregion: route=primary $$").empty());
  CHECK(Hints("/* not pgregion: route=primary */ SELECT 1").empty());
  CHECK(Hints("/* pgregionx: route=primary */ SELECT 1").route == std::nullopt);
  CHECK(Hints("SELECT 1").empty());
}

TEST_CASE("StatementHints: value parsers") {
  CHECK(StatementHints::ParseRoute("PRIMARY") == StatementHints::Route::kPrimary);
  CHECK(!StatementHints::ParseRoute("primaryx").has_value());
  CHECK(StatementHints::ParseConsistency("Eventual") == StatementHints::Consistency::kEventual);
  CHECK(!StatementHints::ParseConsistency("").has_value());
  CHECK(StatementHints::ParseDurationMs("0") == 0);
  CHECK(StatementHints::ParseDurationMs("2h") == 7200000);
  CHECK(StatementHints::ParseDurationMs("10 s") == 10000);
  CHECK(!StatementHints::ParseDurationMs("").has_value());
  CHECK(!StatementHints::ParseDurationMs("ms").has_value());
  CHECK(!StatementHints::ParseDurationMs("99999999999999999999h").has_value());
  CHECK(StatementHints::RouteName(StatementHints::Route::kReplica) == "replica");
  CHECK(StatementHints::ConsistencyName(StatementHints::Consistency::kCausal) == "causal");
}

TEST_CASE("SqlNormalizer: random bytes never crash") {
  std::mt19937 rng(20240601);
  // Mostly the characters the lexer branches on, plus arbitrary bytes.
  constexpr std::string_view kAlphabet = "'\"$-/*?\\eEuUnNbBxX&0123456789.+ \n\t;:()abc_";
  std::string key;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string sql(rng() % 64, '\0');
    for (char& c : sql) {
      c = rng() % 4 == 0 ? static_cast<char>(rng() % 256) : kAlphabet[rng() % kAlphabet.size()];
    }
    StatementHints hints;
    SqlNormalizer::Normalize(sql, &key, &hints);
    // Every byte yields at most two key bytes (a `?` becomes `??`) plus a space.
    CHECK_LE(key.size(), 3 * sql.size());
  }
}

TEST_CASE("StatementClassifier: random text never crashes and fails closed") {
  std::mt19937 rng(7);
  constexpr std::string_view kWords[] = {"SELECT", "FROM",   "t",  "WHERE",  "(",        ")",
                                         "'x'",    "$$",     "1",  ";",      "--",       "/*",
                                         "*/",     "WITH",   "AS", "DELETE", "nextval(", ",",
                                         "FOR",    "UPDATE", "\"", "E'\\'",  "?",        "SET"};
  StatementClassifier classifier(ClassifierOptions{});
  for (int iter = 0; iter < 3000; ++iter) {
    std::string sql;
    const size_t words = rng() % 12;
    for (size_t w = 0; w < words; ++w) {
      sql += kWords[rng() % std::size(kWords)];
      if (rng() % 2 == 0) sql += ' ';
    }
    ClassifyResult r = classifier.Classify(sql);
    REQUIRE(r.classification != nullptr);
    if (r->parse_error) CHECK(r->write);
  }
}

}  // namespace pgregion::routing
