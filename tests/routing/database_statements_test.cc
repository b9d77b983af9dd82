// Databases created and dropped through pgregion (issue 18): the databases a
// statement needs no other session in (StatementInfo::databases), what a
// refused login means (ClassifyLoginRefusal), and the marks of replicas that
// lack a database (MissingObjects).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "protocol/message_builder.h"
#include "routing/missing_objects.h"
#include "routing/statement_classifier.h"

namespace pgregion::routing {
namespace {

std::vector<std::string> Databases(std::string_view sql) {
  StatementClassifier classifier{ClassifierOptions{}};
  ClassifyResult res = classifier.Classify(sql);
  std::vector<std::string> out;
  for (const StatementInfo& s : res->statements) {
    out.insert(out.end(), s.databases.begin(), s.databases.end());
  }
  return out;
}

std::string Error(std::string_view sqlstate, std::string_view message) {
  std::string out;
  protocol::AppendErrorResponse(&out,
                                {.severity = "FATAL", .sqlstate = sqlstate, .message = message});
  return out;
}

using V = std::vector<std::string>;

}  // namespace

TEST_CASE("databases: the statements that need a database to themselves") {
  CHECK(Databases("DROP DATABASE x") == V{"x"});
  CHECK(Databases("drop database if exists \"Mixed\" with (force)") == V{"Mixed"});
  CHECK(Databases("DROP DATABASE Folded") == V{"folded"});
  CHECK(Databases("ALTER DATABASE a RENAME TO b") == V{"a"});
  CHECK(Databases("ALTER DATABASE a SET TABLESPACE pg_default") == V{"a"});
  CHECK(Databases("CREATE DATABASE c TEMPLATE src") == V{"src"});
  CHECK(Databases("CREATE DATABASE c WITH TEMPLATE = 'Src' OWNER = bob") == V{"Src"});
  CHECK(Databases("CREATE DATABASE c") == V{"template1"});
  CHECK(Databases("CREATE DATABASE c TEMPLATE template0") == V{"template0"});
  // Nothing to vacate.
  CHECK(Databases("ALTER DATABASE a SET work_mem = '1MB'").empty());
  CHECK(Databases("ALTER DATABASE a OWNER TO bob").empty());
  CHECK(Databases("ALTER DATABASE a CONNECTION LIMIT 5").empty());
  CHECK(Databases("ALTER DATABASE a WITH ALLOW_CONNECTIONS true").empty());
  CHECK(Databases("ALTER TABLE a RENAME TO b").empty());
  CHECK(Databases("SELECT 1").empty());
  CHECK(Databases("DROP TABLE x").empty());
}

TEST_CASE("databases: a TEMPLATE literal is decided per text, not by the cached shape") {
  StatementClassifier classifier{ClassifierOptions{}};
  for (std::string_view name : {"one", "two", "three"}) {
    const std::string sql = "CREATE DATABASE c TEMPLATE '" + std::string(name) + "'";
    ClassifyResult res = classifier.Classify(sql);
    REQUIRE(res->statements.size() == 1);
    CHECK(res->statements[0].databases == V{std::string(name)});
    CHECK(res->write);
  }
}

TEST_CASE("login refusals: a missing database or role, or anything else") {
  LoginRefusal r = ClassifyLoginRefusal(Error("3D000", "database \"x\" does not exist"));
  CHECK(r.missing_object);
  CHECK(r.sqlstate == "3D000");
  CHECK(r.message == "database \"x\" does not exist");
  CHECK(ClassifyLoginRefusal(Error("28000", "role \"bob\" does not exist")).missing_object);
  CHECK_FALSE(ClassifyLoginRefusal(Error("28000", "no pg_hba.conf entry for host")).missing_object);
  // What a role that does not exist gets under password authentication.
  CHECK(ClassifyLoginRefusal(Error("28P01", "password authentication failed")).missing_object);
  CHECK_FALSE(
      ClassifyLoginRefusal(Error("57P03", "the database system is starting up")).missing_object);
  CHECK_FALSE(ClassifyLoginRefusal("").missing_object);
  CHECK_FALSE(ClassifyLoginRefusal("E\0\0\0\4").missing_object);
  CHECK(ClassifyLoginRefusal("garbage").sqlstate.empty());
}

TEST_CASE("missing objects: marked per node, database and user, for recheck_ms") {
  MissingObjects m(/*recheck_ms=*/1000);
  CHECK(m.AvoidMask("db", "u", 0) == 0);
  m.Mark(1, "db", "u", 5000);
  m.Mark(2, "db", "u", 5500);
  CHECK(m.AvoidMask("db", "u", 5500) == 0b110);
  CHECK(m.AvoidMask("db", "other", 5500) == 0);
  CHECK(m.AvoidMask("other", "u", 5500) == 0);
  CHECK(m.AvoidMask("db", "u", 6000) == 0b100);  // node 1's mark is a second old: try it again
  CHECK(m.AvoidMask("db", "u", 6500) == 0);
  m.Mark(1, "db", "u", 6500);  // refused again
  CHECK(m.AvoidMask("db", "u", 6600) == 0b10);
  m.Clear(1, "db", "u");  // a login there succeeded
  CHECK(m.AvoidMask("db", "u", 6600) == 0);
  m.Mark(-1, "db", "u", 1);
  m.Mark(64, "db", "u", 1);
  CHECK(m.AvoidMask("db", "u", 1) == 0);
}

TEST_CASE("missing objects: bounded; expired marks go first, else all of them") {
  MissingObjects m(/*recheck_ms=*/1000, /*max_entries=*/3);
  m.Mark(1, "a", "u", 0);
  m.Mark(1, "b", "u", 0);
  m.Mark(1, "c", "u", 900);
  m.Mark(1, "d", "u", 1500);  // a and b expired: they go
  CHECK(m.size() == 2);
  CHECK(m.AvoidMask("c", "u", 1500) == 0b10);
  CHECK(m.AvoidMask("d", "u", 1500) == 0b10);
  m.Mark(1, "e", "u", 1500);
  m.Mark(1, "f", "u", 1500);  // none expired: forgotten, at the cost of a refused login each
  CHECK(m.size() == 1);
  CHECK(m.AvoidMask("f", "u", 1500) == 0b10);
  for (int i = 0; i < 100; ++i) m.Mark(1, "x" + std::to_string(i), "u", 2000);
  CHECK(m.size() <= 3);
}

}  // namespace pgregion::routing
