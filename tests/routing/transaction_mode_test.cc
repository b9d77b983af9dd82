// TransactionMode: the characteristics a unit's transaction runs with, and
// when a unit that reaches a transaction already running on a replica must
// move to the primary. Expected answers were checked against a PostgreSQL 15
// primary and hot standby (routing/transaction_mode.h).
#include "routing/transaction_mode.h"

#include <doctest/doctest.h>

#include <string_view>

#include "routing/statement_classifier.h"

namespace pgregion::routing {
namespace {

struct Session {
  // Feeds one unit (a simple Query text) and returns the tracker after it,
  // before its ReadyForQuery.
  TransactionMode& Unit(std::string_view sql, TransactionMode::Defaults d = {}) {
    mode.StartUnit(d);
    mode.OnClassification(*classifier.Classify(sql));
    return mode;
  }
  void Done(char status) { mode.OnUnitDone(status); }

  StatementClassifier classifier{{}};
  TransactionMode mode;
};

constexpr TransactionMode::Defaults kReadOnlyDefault{.read_only = true, .serializable = false};
constexpr TransactionMode::Defaults kSerializableDefault{.read_only = false, .serializable = true};

}  // namespace

TEST_CASE("transaction mode: BEGIN options and session defaults") {
  Session s;
  TransactionMode& m = s.Unit("SELECT 1");
  CHECK(!m.begins_transaction());
  CHECK(!m.read_only_transaction());
  CHECK(!m.serializable());
  s.Done('I');

  m = s.Unit("BEGIN READ ONLY");
  CHECK(m.begins_transaction());
  CHECK(m.read_only_transaction());
  s.Done('I');  // (as if it ended)

  m = s.Unit("BEGIN", kReadOnlyDefault);
  CHECK(m.read_only_transaction());
  s.Done('I');
  m = s.Unit("BEGIN READ WRITE", kReadOnlyDefault);
  CHECK(!m.read_only_transaction());
  s.Done('I');

  m = s.Unit("BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY");
  CHECK(m.read_only_transaction());
  CHECK(m.serializable());
  s.Done('I');
}

TEST_CASE("transaction mode: SET TRANSACTION READ WRITE in a read-only transaction") {
  Session s;
  // BEGIN READ ONLY; SET TRANSACTION READ WRITE; INSERT: the unit (with a
  // deferred BEGIN fed first) needs the primary.
  TransactionMode& m = s.Unit("BEGIN READ ONLY; SET TRANSACTION READ WRITE");
  CHECK(m.begins_transaction());
  CHECK(!m.read_only_transaction());
  CHECK(m.read_write_requested());
  s.Done('T');

  // Under SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY.
  Session d;
  m = d.Unit("BEGIN; SET TRANSACTION READ WRITE", kReadOnlyDefault);
  CHECK(m.read_write_requested());
  CHECK(!m.read_only_transaction());
  d.Done('T');
  m = d.Unit("SET transaction_read_only = off", kReadOnlyDefault);
  CHECK(m.read_write_requested());

  // Outside a block the primary only warns; a standby refuses: primary.
  Session a;
  m = a.Unit("SET TRANSACTION READ WRITE");
  CHECK(m.read_write_requested());
  CHECK(!m.read_only_transaction());

  // READ ONLY may be set at any time.
  Session b;
  m = b.Unit("BEGIN; SELECT 1; SET TRANSACTION READ ONLY");
  CHECK(m.read_only_transaction());
  CHECK(!m.read_write_requested());
}

TEST_CASE("transaction mode: serializable from every source") {
  Session s;
  CHECK(s.Unit("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").serializable());  // autocommit
  s.Done('I');
  CHECK(s.Unit("BEGIN; SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").serializable());
  s.Done('T');
  // Later units of that transaction run serializable too.
  CHECK(s.Unit("SELECT 1").serializable());
  s.Done('T');
  CHECK(!s.Unit("COMMIT").in_block());
  s.Done('I');
  CHECK(!s.Unit("SELECT 1").serializable());
  s.Done('I');

  // The session default: autocommit reads fail on a standby too.
  CHECK(s.Unit("SELECT 1", kSerializableDefault).serializable());
  s.Done('I');
  CHECK(s.Unit("BEGIN", kSerializableDefault).serializable());
  s.Done('T');
  s.Unit("ROLLBACK", kSerializableDefault);
  s.Done('I');
  // PostgreSQL's own hint on a standby: REPEATABLE READ instead.
  TransactionMode& m =
      s.Unit("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", kSerializableDefault);
  CHECK(!m.serializable());
  CHECK(m.read_only_transaction());
  s.Done('T');
  CHECK(!s.Unit("SELECT 1", kSerializableDefault).serializable());
  s.Done('T');
  s.Unit("COMMIT", kSerializableDefault);
  s.Done('I');
  // An autocommit statement before the BEGIN keeps the unit serializable.
  CHECK(s.Unit("SELECT 1; BEGIN ISOLATION LEVEL REPEATABLE READ", kSerializableDefault)
            .serializable());
}

TEST_CASE("transaction mode: a transaction bound to a replica moves only before its first query") {
  Session s;
  // BEGIN; SET TRANSACTION READ ONLY ran on a replica.
  s.Unit("BEGIN; SET TRANSACTION READ ONLY");
  s.Done('T');
  TransactionMode& m = s.Unit("SET TRANSACTION READ WRITE");
  CHECK(m.MustMoveToPrimary(false));  // the replica says 0A000, the primary accepts
  s.Done('T');

  Session q;
  q.Unit("BEGIN READ ONLY");
  q.Done('T');
  CHECK(!q.Unit("SELECT 1").MustMoveToPrimary(false));
  q.Done('T');
  // After a query both nodes answer 25001: forward.
  CHECK(!q.Unit("SET TRANSACTION READ WRITE").MustMoveToPrimary(false));
  q.Done('E');
  CHECK(!q.Unit("SET TRANSACTION READ WRITE").MustMoveToPrimary(false));  // aborted: 25P02

  Session sp;
  sp.Unit("BEGIN READ ONLY; SAVEPOINT a");
  sp.Done('T');
  // In a subtransaction both answer 25001.
  CHECK(!sp.Unit("SET TRANSACTION READ WRITE").MustMoveToPrimary(false));
  sp.Done('T');
  sp.Unit("RELEASE a");
  sp.Done('T');
  CHECK(sp.Unit("SET TRANSACTION ISOLATION LEVEL SERIALIZABLE").MustMoveToPrimary(false));
  sp.Done('T');

  // SET, SHOW take no snapshot; a primary-state read before any query moves.
  Session p;
  p.Unit("BEGIN READ ONLY; SET work_mem = '8MB'; SHOW work_mem");
  p.Done('T');
  CHECK(!p.mode.snapshot_taken());
  CHECK(p.Unit("SELECT * FROM pg_locks").MustMoveToPrimary(true));
  CHECK(!p.mode.MustMoveToPrimary(false));
  p.Done('T');
  for (std::string_view sql : {"DEALLOCATE ALL", "PREPARE x AS SELECT 1", "EXPLAIN SELECT 1",
                               "DECLARE c CURSOR FOR SELECT 1", "VALUES (1)"}) {
    CAPTURE(sql);
    Session t;
    t.Unit("BEGIN READ ONLY");
    t.Done('T');
    t.Unit(sql);
    t.Done('T');
    CHECK(t.mode.snapshot_taken());
  }
  // Outside a transaction nothing is bound: the router decides.
  Session o;
  CHECK(!o.Unit("SET TRANSACTION READ WRITE").MustMoveToPrimary(false));
}

TEST_CASE("transaction mode: AND CHAIN keeps the characteristics, ROLLBACK TO keeps the level") {
  Session s;
  s.Unit("BEGIN READ ONLY ISOLATION LEVEL SERIALIZABLE; SELECT 1");
  s.Done('T');
  TransactionMode& m = s.Unit("COMMIT AND CHAIN");
  CHECK(m.begins_transaction());
  CHECK(m.read_only_transaction());
  CHECK(m.serializable());
  CHECK(!m.snapshot_taken());
  s.Done('T');

  Session r;
  r.Unit("BEGIN READ ONLY; SAVEPOINT a; SAVEPOINT b");
  r.Done('T');
  r.Unit("ROLLBACK TO a");
  CHECK(r.mode.in_subtransaction());  // still inside a
  r.Done('T');
  r.Unit("RELEASE a");
  CHECK(!r.mode.in_subtransaction());
  r.Unit("RELEASE nosuch");
  CHECK(!r.mode.in_subtransaction());
}

}  // namespace pgregion::routing
