// What a standby cannot run or shows differently (issue 17, items 4 and 6):
// the classifier's isolation levels, primary-state reads, relations and
// advanced sequences; PrimaryRelations; the router's serializable and
// primary_state reasons. Cases were checked against a PostgreSQL 15 primary
// and hot standby (see each comment).
#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "routing/parse_tree_walker.h"
#include "routing/primary_relations.h"
#include "routing/router.h"
#include "routing/statement_classifier.h"
#include "tests/routing/classifier_test_util.h"

namespace pgregion::routing {
namespace {

Classification Classify(std::string_view sql, ClassifierOptions options = {}) {
  StatementClassifier classifier(std::move(options));
  return classifier.ClassifyUncached(sql);
}

const StatementInfo& One(const Classification& c) {
  REQUIRE(c.statements.size() == 1);
  return c.statements[0];
}

}  // namespace

TEST_CASE("primary state: isolation levels asked for") {
  struct Row {
    std::string_view sql;
    IsolationLevel level;
  };
  using L = IsolationLevel;
  const Row rows[] = {
      {"BEGIN", L::kUnspecified},
      {"BEGIN READ ONLY", L::kUnspecified},
      {"BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY", L::kSerializable},
      {"START TRANSACTION ISOLATION LEVEL SERIALIZABLE, READ ONLY, DEFERRABLE", L::kSerializable},
      {"BEGIN ISOLATION LEVEL REPEATABLE READ", L::kRepeatableRead},
      {"BEGIN ISOLATION LEVEL READ COMMITTED", L::kReadCommitted},
      {"BEGIN ISOLATION LEVEL READ UNCOMMITTED", L::kReadUncommitted},
      {"SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", L::kSerializable},
      {"SET TRANSACTION READ ONLY, ISOLATION LEVEL SERIALIZABLE", L::kSerializable},
      {"SET transaction_isolation = 'serializable'", L::kSerializable},
      {"SET LOCAL transaction_isolation TO 'SERIALIZABLE'", L::kSerializable},
      {"SET transaction_isolation = 'repeatable read'", L::kRepeatableRead},
      {"SET TRANSACTION READ WRITE", L::kUnspecified},
  };
  for (const Row& row : rows) {
    CAPTURE(row.sql);
    Classification c = Classify(row.sql);
    CHECK(IsolationLevelName(One(c).isolation) == IsolationLevelName(row.level));
    CHECK(c.serializable == (row.level == L::kSerializable));
    CHECK(!c.write);
  }
  // The session default is a replayed setting (the session tracks it).
  Classification d = Classify(
      "SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL "
      "SERIALIZABLE");
  REQUIRE(One(d).events.size() == 1);
  CHECK(One(d).events[0].name == "default_transaction_isolation");
  CHECK(One(d).events[0].value == "serializable");
  CHECK(!d.serializable);  // not this statement's own transaction
}

TEST_CASE("primary state: system views, functions and settings") {
  struct Row {
    std::string_view sql;
    std::string_view object;  // empty: not primary state
  };
  const Row rows[] = {
      // issue 17 item 6
      {"SELECT * FROM pg_prepared_xacts", "pg_prepared_xacts"},
      {"SELECT count(*) FROM pg_locks WHERE granted", "pg_locks"},
      {"SELECT * FROM pg_catalog.pg_locks", "pg_catalog.pg_locks"},
      {"SELECT n_tup_ins FROM pg_stat_user_tables WHERE relname = 't'", "pg_stat_user_tables"},
      {"SELECT * FROM pg_stat_xact_user_tables", "pg_stat_xact_user_tables"},
      {"SELECT heap_blks_read FROM pg_statio_user_tables", "pg_statio_user_tables"},
      {"SELECT * FROM pg_stat_wal_receiver", "pg_stat_wal_receiver"},
      {"SELECT * FROM pg_stat_replication", "pg_stat_replication"},
      {"SELECT * FROM pg_stat_activity", "pg_stat_activity"},
      {"SELECT * FROM public.pg_stat_statements", "public.pg_stat_statements"},
      {"SELECT * FROM pg_replication_slots", "pg_replication_slots"},
      {"SELECT setting FROM pg_settings WHERE name = 'port'", "pg_settings"},
      {"SELECT last_value FROM pg_sequences", "pg_sequences"},
      {"SELECT last_value, log_cnt FROM orders_id_seq", "orders_id_seq"},
      {"SELECT * FROM x WHERE id IN (SELECT pid FROM pg_locks)", "pg_locks"},
      {"WITH l AS (SELECT * FROM pg_locks) SELECT * FROM l", "pg_locks"},
      {"COPY (SELECT * FROM pg_stat_activity) TO STDOUT", "pg_stat_activity"},
      // functions
      {"SELECT pg_stat_get_numscans('t'::regclass)", "pg_stat_get_numscans"},
      {"SELECT pg_stat_get_xact_tuples_inserted(16384)", "pg_stat_get_xact_tuples_inserted"},
      {"SELECT pg_catalog.pg_stat_get_live_tuples(1)", "pg_catalog.pg_stat_get_live_tuples"},
      {"SELECT pg_is_in_recovery()", "pg_is_in_recovery"},
      {"SELECT pg_last_wal_replay_lsn()", "pg_last_wal_replay_lsn"},
      {"SELECT pg_last_xact_replay_timestamp()", "pg_last_xact_replay_timestamp"},
      {"SELECT pg_is_wal_replay_paused()", "pg_is_wal_replay_paused"},
      {"SELECT pg_current_snapshot()", "pg_current_snapshot"},
      {"SELECT txid_current_snapshot()", "txid_current_snapshot"},
      {"SELECT pg_export_snapshot()", "pg_export_snapshot"},
      {"SELECT pg_backend_pid()", "pg_backend_pid"},
      {"SELECT inet_server_port()", "inet_server_port"},
      {"SELECT pg_sequence_last_value('s')", "pg_sequence_last_value"},
      {"SELECT * FROM pg_control_checkpoint()", "pg_control_checkpoint"},
      {"SELECT * FROM pg_ls_waldir()", "pg_ls_waldir"},
      {"SELECT pg_blocking_pids(42)", "pg_blocking_pids"},
      {"SELECT pg_xact_status('42'::xid8)", "pg_xact_status"},
      // settings a standby reports differently
      {"SHOW transaction_read_only", "SHOW transaction_read_only"},
      {"SHOW in_hot_standby", "SHOW in_hot_standby"},
      {"SHOW ALL", "SHOW all"},
      {"SHOW port", "SHOW port"},
      {"SELECT current_setting('transaction_read_only')",
       "current_setting('transaction_read_only')"},
      {"SELECT current_setting('In_Hot_Standby')", "current_setting('in_hot_standby')"},
      {"SET TRANSACTION SNAPSHOT '00000003-0000001B-1'", "SET TRANSACTION SNAPSHOT"},
      // not primary state
      {"SELECT * FROM accounts", ""},
      {"SELECT * FROM app.pg_locks", ""},  // another schema's table
      {"SELECT * FROM sequence_numbers", ""},
      {"SELECT now(), version(), pg_wal_lsn_diff('0/1', '0/2')", ""},
      {"SELECT current_setting('work_mem')", ""},
      {"SHOW work_mem", ""},
      {"SHOW pgregion.route", ""},
      {"SELECT pg_get_viewdef('v'::regclass)", ""},
      {"SELECT * FROM pg_class", ""},
      {"EXPLAIN SELECT * FROM pg_locks", ""},  // does not read it
  };
  for (const Row& row : rows) {
    CAPTURE(row.sql);
    Classification c = Classify(row.sql);
    CAPTURE(testing::Describe(c));
    const StatementInfo& s = One(c);
    CHECK(s.primary_state == !row.object.empty());
    CHECK(c.primary_state == !row.object.empty());
    CHECK(s.primary_object == row.object);
    // None of these is a write: no LSN probe follows them.
    CHECK(!c.write);
  }
}

TEST_CASE("primary state: writes stay writes, pg_stat_reset too") {
  Classification c = Classify("SELECT pg_stat_reset()");
  CHECK(c.write);
  CHECK(One(c).function == "pg_stat_reset");
  CHECK(Classify("SELECT pg_current_wal_lsn()").write);
  Classification u = Classify("UPDATE t SET x = 1 FROM pg_locks");
  CHECK(u.write);
  CHECK(u.primary_state);
}

TEST_CASE("primary state: a configured read-only function runs on replicas") {
  ClassifierOptions o;
  o.read_only_functions = {"pg_backend_pid"};
  CHECK(!Classify("SELECT pg_backend_pid()", o).primary_state);
  CHECK(Classify("SELECT pg_is_in_recovery()", o).primary_state);
  // A function of that name in another schema is the user's: unknown.
  Classification other = Classify("SELECT app.pg_is_in_recovery()");
  CHECK(!other.primary_state);
  CHECK(One(other).reason == WriteReason::kUnknownFunction);
}

TEST_CASE("primary state: relations named") {
  Classification c = Classify(
      "SELECT * FROM public.a JOIN \"B\" ON true, (WITH c AS (SELECT 1) SELECT * FROM c) q "
      "WHERE EXISTS (SELECT 1 FROM a)");
  const StatementInfo& s = One(c);
  CHECK(s.relations == std::vector<std::string>{"a", "B", "c"});
  CHECK(!s.relations_truncated);
  CHECK(One(Classify("SELECT 1")).relations.empty());
  CHECK(One(Classify("INSERT INTO t SELECT * FROM src")).relations ==
        std::vector<std::string>{"src"});

  std::string many = "SELECT * FROM t0";
  for (int i = 1; i < 70; ++i) many += ", t" + std::to_string(i);
  Classification mc = Classify(many);  // kept: One() returns a reference into it
  const StatementInfo& m = One(mc);
  CHECK(m.relations.size() == StatementInfo::kMaxRelations);
  CHECK(m.relations_truncated);
}

TEST_CASE("primary state: sequences advanced, unlogged tables created") {
  struct Row {
    std::string_view sql;
    std::vector<std::string> names;
  };
  const Row rows[] = {
      {"SELECT nextval('seq')", {"seq"}},
      {"SELECT nextval('S.Seq'::regclass)", {"seq"}},
      {"SELECT nextval('\"S\".\"MySeq\"')", {"MySeq"}},
      {"SELECT pg_catalog.setval('a', 10), nextval('b'), nextval('a')", {"a", "b"}},
      {"INSERT INTO t VALUES (nextval('t_id_seq'), 1)", {"t_id_seq"}},
      {"SELECT nextval($1)", {}},  // not known: the *_seq rule still covers serials
      {"SELECT currval('seq')", {}},
      {"CREATE UNLOGGED TABLE u (x int)", {"u"}},
      {"CREATE UNLOGGED TABLE u2 AS SELECT 1", {"u2"}},
      {"SELECT 1 INTO UNLOGGED u3", {"u3"}},
      {"ALTER TABLE public.u4 SET UNLOGGED", {"u4"}},
      {"ALTER TABLE u5 SET LOGGED", {}},
      {"CREATE TABLE t (x int)", {}},
  };
  for (const Row& row : rows) {
    CAPTURE(row.sql);
    Classification c = Classify(row.sql);
    CAPTURE(testing::Describe(c));
    CHECK(One(c).primary_relations == row.names);
  }
  // Names come from literals: not cached under the normalized key.
  CHECK(!Classify("SELECT nextval('seq')").cacheable);
  CHECK(!Classify("SELECT current_setting('transaction_read_only')").cacheable);
  CHECK(Classify("SELECT * FROM pg_locks").cacheable);

  StatementClassifier classifier({});
  CHECK(One(*classifier.Classify("SELECT nextval('a')")).primary_relations ==
        std::vector<std::string>{"a"});
  CHECK(One(*classifier.Classify("SELECT nextval('b')")).primary_relations ==
        std::vector<std::string>{"b"});
  CHECK(!classifier.Classify("SELECT current_setting('work_mem')")->primary_state);
  CHECK(classifier.Classify("SELECT current_setting('transaction_read_only')")->primary_state);
}

TEST_CASE("primary state: RegclassRelname reads names as regclass does") {
  CHECK(RegclassRelname("seq") == "seq");
  CHECK(RegclassRelname("Seq") == "seq");
  CHECK(RegclassRelname("public.Seq") == "seq");
  CHECK(RegclassRelname(" db . s . \"A\"\"b\" ") == "A\"b");
  CHECK(RegclassRelname("\"a.b\"") == "a.b");
  CHECK(RegclassRelname("\"open").empty());
  CHECK(RegclassRelname("a b").empty());
  CHECK(RegclassRelname("").empty());
}

TEST_CASE("PrimaryRelations: reads of what the session made primary-only") {
  PrimaryRelations rel;
  StatementClassifier classifier({});
  auto reads = [&](std::string_view sql) { return rel.Reads(*classifier.Classify(sql)); };
  CHECK(!reads("SELECT last_value FROM seq"));
  rel.OnClassification(*classifier.Classify("SELECT nextval('s.seq')"));
  CHECK(rel.size() == 1);
  CHECK(reads("SELECT last_value, log_cnt FROM seq"));
  CHECK(reads("SELECT * FROM other.seq"));  // by name: conservative
  CHECK(reads("SELECT * FROM t JOIN seq ON true"));
  CHECK(!reads("SELECT * FROM t"));
  CHECK(!reads("SELECT currval('seq')"));  // a write already
  rel.OnClassification(*classifier.Classify("CREATE UNLOGGED TABLE cache (k text)"));
  CHECK(reads("SELECT * FROM cache"));

  // More relations than the classifier lists: fail closed once any is known.
  std::string many = "SELECT * FROM t0";
  for (int i = 1; i < 70; ++i) many += ", t" + std::to_string(i);
  CHECK(reads(many));
  PrimaryRelations empty;
  CHECK(!empty.Reads(*classifier.Classify(many)));
}

TEST_CASE("PrimaryRelations: bounded; past the bound every relation read matches") {
  PrimaryRelations rel;
  StatementInfo s;
  for (size_t i = 0; i < PrimaryRelations::kMaxNames; ++i) {
    s.primary_relations = {"s" + std::to_string(i)};
    rel.OnStatement(s);
  }
  CHECK(rel.size() == PrimaryRelations::kMaxNames);
  CHECK(!rel.overflowed());
  s.primary_relations = {"s0"};  // known: no growth
  rel.OnStatement(s);
  CHECK(!rel.overflowed());
  s.primary_relations = {"one_more"};
  rel.OnStatement(s);
  CHECK(rel.overflowed());
  CHECK(rel.size() == 0);
  StatementInfo read;
  read.relations = {"anything"};
  CHECK(rel.Reads(read));
  read.relations.clear();
  CHECK(!rel.Reads(read));  // SELECT 1 names none
}

namespace {

struct RouterFixture {
  RouterFixture() {
    for (int i = 0; i < 2; ++i) {
      NodeStatus n;
      n.name = i == 0 ? "primary" : "replica";
      n.region = "r";
      n.index = static_cast<size_t>(i);
      n.up = true;
      n.health = NodeHealth::State::kUp;
      n.role = i == 0 ? NodeRole::kPrimary : NodeRole::kReplica;
      n.rtt_known = true;
      n.rtt_us = 1000;
      n.lag_known = i == 1;
      n.lsn = Lsn(0x5000);
      n.system_identifier = 7;
      n.timeline = 1;
      snap.nodes.push_back(n);
    }
    snap.primary_state = PrimaryState::kOne;
    snap.primary = 0;
    snap.system_identifier = 7;
    outstanding.assign(2, 0);
    view.topology = &snap;
    view.roles_discovered = true;
    view.node_count = 2;
    view.local_region = "r";
    view.outstanding = outstanding;
    ctx.cluster = &view;
  }
  TopologySnapshot snap;
  std::vector<uint32_t> outstanding;
  ClusterView view;
  RouteContext ctx;
  Router router;
};

}  // namespace

TEST_CASE("router: serializable, read-write requests and primary state go to the primary") {
  RouterFixture f;
  Route r = f.router.Decide(f.ctx);
  CHECK(r.node == 1);
  CHECK(r.reason == RouteReason::kRead);

  RouteContext c = f.ctx;
  c.serializable = true;
  c.begins_transaction = c.read_only_transaction = true;  // BEGIN ... SERIALIZABLE READ ONLY
  r = f.router.Decide(c);
  CHECK(r.node == 0);
  CHECK(RouteReasonName(r.reason) == "serializable");
  c.preference = RoutePreference::kReplica;  // a standby refuses it whatever the hint
  c.preference_from_hint = true;
  CHECK(f.router.Decide(c).node == 0);

  c = f.ctx;
  c.read_write_requested = true;  // BEGIN READ ONLY; SET TRANSACTION READ WRITE
  c.begins_transaction = true;
  r = f.router.Decide(c);
  CHECK(r.node == 0);
  CHECK(r.reason == RouteReason::kTransaction);

  c = f.ctx;
  c.primary_state = true;
  r = f.router.Decide(c);
  CHECK(r.node == 0);
  CHECK(RouteReasonName(r.reason) == "primary_state");
  c.consistency = Consistency::kEventual;
  CHECK(f.router.Decide(c).node == 0);
  c.preference = RoutePreference::kReplica;  // session's pgregion.route = replica: still primary
  CHECK(f.router.Decide(c).node == 0);
  c.preference_from_hint = true;  // the unit's own hint: that replica's view
  r = f.router.Decide(c);
  CHECK(r.node == 1);
  CHECK(r.reason == RouteReason::kHint);

  // A write stays a write (its reason wins).
  c = f.ctx;
  c.write = c.primary_state = c.serializable = true;
  CHECK(f.router.Decide(c).reason == RouteReason::kWrite);
}

}  // namespace pgregion::routing
