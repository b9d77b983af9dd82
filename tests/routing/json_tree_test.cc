#include "routing/json_tree.h"

#include <doctest/doctest.h>

#include <random>
#include <string>

namespace pgregion::routing {

TEST_CASE("JsonTree: libpg_query shapes") {
  const std::string json =
      R"({"version":150001,"stmts":[{"stmt":{"SelectStmt":{"targetList":[{"ResTarget":)"
      R"({"val":{"A_Const":{"ival":{"ival":-7},"location":7}}}}],"op":"SETOP_NONE",)"
      R"("flag":true,"off":false,"nothing":null,"f":1.5e3,"empty":{},"list":[]}},"stmt_len":8}]})";
  JsonTree tree;
  REQUIRE(tree.Parse(json));
  JsonTree::Index stmts = tree.Member(0, "stmts");
  REQUIRE(stmts != JsonTree::kNone);
  JsonTree::Index first = tree.FirstChild(stmts);
  REQUIRE(first != JsonTree::kNone);
  CHECK(tree.Next(first) == JsonTree::kNone);
  CHECK(tree.Int(tree.Member(first, "stmt_len")) == 8);
  JsonTree::Index select = tree.Member(tree.Member(first, "stmt"), "SelectStmt");
  REQUIRE(select != JsonTree::kNone);
  CHECK(tree.RawString(select, "op") == "SETOP_NONE");
  CHECK(tree.Bool(select, "flag"));
  CHECK(!tree.Bool(select, "off"));
  CHECK(!tree.Bool(select, "missing"));
  CHECK(tree.node(tree.Member(select, "nothing")).type == JsonTree::Type::kNull);
  CHECK(!tree.Int(tree.Member(select, "f")).has_value());
  CHECK(tree.FirstChild(tree.Member(select, "empty")) == JsonTree::kNone);
  CHECK(tree.FirstChild(tree.Member(select, "list")) == JsonTree::kNone);
  JsonTree::Index target = tree.FirstChild(tree.Member(select, "targetList"));
  JsonTree::Index a_const =
      tree.Member(tree.Member(tree.Member(target, "ResTarget"), "val"), "A_Const");
  CHECK(tree.Int(tree.Member(tree.Member(a_const, "ival"), "ival")) == -7);
  CHECK(tree.Member(JsonTree::kNone, "x") == JsonTree::kNone);
  CHECK(tree.Member(stmts, "x") == JsonTree::kNone);  // not an object
}

TEST_CASE("JsonTree: string escapes") {
  JsonTree tree;
  REQUIRE(tree.Parse(R"({"s":"a\"b\\c\nd\t\u0041\u00e4\u20ac\ud83d\ude00\/"})"));
  CHECK(tree.String(tree.Member(0, "s")) == "a\"b\\c\nd\tA\xc3\xa4\xe2\x82\xac\xf0\x9f\x98\x80/");
  REQUIRE(tree.Parse(R"({"s":"bad \uZZZZ"})"));
  CHECK(tree.String(tree.Member(0, "s")) == "bad uZZZZ");
}

TEST_CASE("JsonTree: malformed input is rejected, at every truncation") {
  JsonTree tree;
  const std::string good = R"({"a":[1,{"b":"c\"d"},true,null],"e":{"f":-2.5}})";
  REQUIRE(tree.Parse(good));
  for (size_t cut = 0; cut < good.size(); ++cut) {
    CAPTURE(cut);
    CHECK(!tree.Parse(good.substr(0, cut)));
  }
  for (const char* bad : {"", "{", "[1,]x", "{\"a\"}", "{\"a\":}", "{a:1}", "[1 2]", "{\"a\":tru}",
                          "\"unterminated", "{\"a\":1,}", "]"}) {
    CAPTURE(bad);
    CHECK(!tree.Parse(bad));
  }
  std::mt19937 rng(3);
  constexpr std::string_view kAlphabet = "{}[]\":,\\0123456789-.etrufalsn ";
  for (int iter = 0; iter < 20000; ++iter) {
    std::string s(rng() % 40, ' ');
    for (char& c : s) c = kAlphabet[rng() % kAlphabet.size()];
    (void)tree.Parse(s);
  }
}

TEST_CASE("JsonTree: deep nesting uses no recursion") {
  std::string deep(200000, '[');
  deep += std::string(200000, ']');
  JsonTree tree;
  CHECK(tree.Parse(deep));
  CHECK(tree.size() == 200000);
}

}  // namespace pgregion::routing
