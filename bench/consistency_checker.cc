// consistency_checker: read-after-write through pgregion, counting stale reads.
//
// N clients (threads), each with its own connection: write a unique row, then
// read it back at once on the same connection; with --dsn2, also hand the
// session's read-your-writes token to a second connection (typically a
// second pgregion instance, another region) and read it there. A read that
// does not find the row is stale. The read also reports pg_is_in_recovery(),
// so replica and primary reads are counted apart.
//
//   consistency_checker --dsn "host=... port=..." [--dsn2 "..."]
//       [--clients 8] [--pairs 1000] [--seconds 60] [--consistency causal]
//
// --pairs is per client; --seconds bounds the whole run. --consistency sets
// pgregion.consistency on every connection (strong | causal | bounded |
// eventual). Under eventual, stale reads must show when replication lags:
// that is how this program proves it can see them.
//
// Output: one JSON object on stdout:
//   {"pairs": N, "reads": R, "stale": S, "replica_reads": X, "primary_reads": Y,
//    "cross_reads": C, "cross_stale": CS, "read_p50_ms": .., "read_p99_ms": ..,
//    "errors": E}
// Exit status 0 when the run completed (stale reads are data, not failures);
// 1 on errors; 2 on usage errors.

#include <libpq-fe.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

struct Options {
  std::string dsn;
  std::string dsn2;
  int clients = 8;
  long pairs = 1000;
  double seconds = 60;
  std::string consistency;
};

struct Totals {
  std::mutex mu;
  long pairs = 0;
  long reads = 0;
  long stale = 0;
  long replica_reads = 0;
  long primary_reads = 0;
  long cross_reads = 0;
  long cross_stale = 0;
  long errors = 0;
  std::vector<double> read_ms;
  std::string first_error;
};

bool Exec(PGconn* c, const std::string& sql, Totals* t) {
  PGresult* r = PQexec(c, sql.c_str());
  bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
  if (!ok) {
    std::lock_guard<std::mutex> lock(t->mu);
    ++t->errors;
    if (t->first_error.empty()) t->first_error = PQerrorMessage(c);
  }
  PQclear(r);
  return ok;
}

PGconn* Connect(const std::string& dsn, const Options& o, Totals* t) {
  PGconn* c = PQconnectdb(dsn.c_str());
  if (PQstatus(c) != CONNECTION_OK) {
    std::lock_guard<std::mutex> lock(t->mu);
    ++t->errors;
    if (t->first_error.empty()) t->first_error = PQerrorMessage(c);
    PQfinish(c);
    return nullptr;
  }
  if (!o.consistency.empty() &&
      !Exec(c, "SET pgregion.consistency = '" + o.consistency + "'", t)) {
    PQfinish(c);
    return nullptr;
  }
  return c;
}

// Reads the row back: returns 1 found, 0 stale, -1 error; *replica is set.
int ReadBack(PGconn* c, int client, long seq, bool* replica, double* ms, Totals* t) {
  char sql[256];
  std::snprintf(sql, sizeof sql,
                "SELECT pg_is_in_recovery(), EXISTS (SELECT 1 FROM ryw_check WHERE client = %d "
                "AND seq = %ld)",
                client, seq);
  auto start = Clock::now();
  PGresult* r = PQexec(c, sql);
  *ms = std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
    std::lock_guard<std::mutex> lock(t->mu);
    ++t->errors;
    if (t->first_error.empty()) t->first_error = PQerrorMessage(c);
    PQclear(r);
    return -1;
  }
  *replica = std::strcmp(PQgetvalue(r, 0, 0), "t") == 0;
  int found = std::strcmp(PQgetvalue(r, 0, 1), "t") == 0 ? 1 : 0;
  PQclear(r);
  return found;
}

void RunClient(int client, const Options& o, Clock::time_point deadline, Totals* t) {
  PGconn* a = Connect(o.dsn, o, t);
  PGconn* b = o.dsn2.empty() ? nullptr : Connect(o.dsn2, o, t);
  if (a == nullptr || (!o.dsn2.empty() && b == nullptr)) {
    if (a) PQfinish(a);
    if (b) PQfinish(b);
    return;
  }
  long pairs = 0, reads = 0, stale = 0, replica = 0, primary = 0, cross = 0, cross_stale = 0;
  std::vector<double> ms;
  for (long seq = 1; seq <= o.pairs && Clock::now() < deadline; ++seq) {
    char sql[128];
    std::snprintf(sql, sizeof sql, "INSERT INTO ryw_check VALUES (%d, %ld)", client, seq);
    if (!Exec(a, sql, t)) break;
    ++pairs;
    bool on_replica = false;
    double took = 0;
    int found = ReadBack(a, client, seq, &on_replica, &took, t);
    if (found < 0) break;
    ++reads;
    stale += found == 0;
    (on_replica ? replica : primary)++;
    ms.push_back(took);
    if (b != nullptr) {
      const char* token = PQparameterStatus(a, "pgregion.ryw_token");
      if (token != nullptr && !Exec(b, std::string("SET pgregion.ryw_token = '") + token + "'", t)) {
        break;
      }
      found = ReadBack(b, client, seq, &on_replica, &took, t);
      if (found < 0) break;
      ++cross;
      cross_stale += found == 0;
      (on_replica ? replica : primary)++;
      ms.push_back(took);
    }
  }
  PQfinish(a);
  if (b) PQfinish(b);
  std::lock_guard<std::mutex> lock(t->mu);
  t->pairs += pairs;
  t->reads += reads;
  t->stale += stale;
  t->replica_reads += replica;
  t->primary_reads += primary;
  t->cross_reads += cross;
  t->cross_stale += cross_stale;
  t->read_ms.insert(t->read_ms.end(), ms.begin(), ms.end());
}

double Percentile(std::vector<double>* v, double q) {
  if (v->empty()) return 0;
  size_t k = std::min(v->size() - 1, static_cast<size_t>(q * static_cast<double>(v->size())));
  std::nth_element(v->begin(), v->begin() + static_cast<long>(k), v->end());
  return (*v)[k];
}

int Usage() {
  std::fprintf(stderr,
               "usage: consistency_checker --dsn CONNINFO [--dsn2 CONNINFO] [--clients N] "
               "[--pairs N] [--seconds S] [--consistency LEVEL]\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (i + 1 >= argc) return Usage();
    std::string v = argv[++i];
    if (arg == "--dsn") {
      o.dsn = v;
    } else if (arg == "--dsn2") {
      o.dsn2 = v;
    } else if (arg == "--clients") {
      o.clients = std::atoi(v.c_str());
    } else if (arg == "--pairs") {
      o.pairs = std::atol(v.c_str());
    } else if (arg == "--seconds") {
      o.seconds = std::atof(v.c_str());
    } else if (arg == "--consistency") {
      o.consistency = v;
    } else {
      return Usage();
    }
  }
  if (o.dsn.empty() || o.clients < 1 || o.clients > 1000 || o.pairs < 1 || o.seconds <= 0) {
    return Usage();
  }
  Totals t;
  {
    PGconn* c = Connect(o.dsn, Options{}, &t);
    if (c == nullptr ||
        !Exec(c, "CREATE TABLE IF NOT EXISTS ryw_check (client int, seq bigint, "
                 "PRIMARY KEY (client, seq))", &t) ||
        !Exec(c, "TRUNCATE ryw_check", &t)) {
      std::fprintf(stderr, "setup failed: %s\n", t.first_error.c_str());
      if (c) PQfinish(c);
      return 1;
    }
    PQfinish(c);
  }
  {
    // Reads at a weak level may reach a replica that has not replayed the
    // CREATE TABLE yet: wait (bounded) until the table is readable there.
    PGconn* c = Connect(o.dsn, o, &t);
    bool ready = false;
    for (int i = 0; c != nullptr && i < 300 && !ready; ++i) {
      PGresult* r = PQexec(c, "SELECT 1 FROM ryw_check LIMIT 0");
      ready = PQresultStatus(r) == PGRES_TUPLES_OK;
      PQclear(r);
      if (!ready) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (c != nullptr) PQfinish(c);
    if (!ready) {
      std::fprintf(stderr, "setup failed: ryw_check not readable: %s\n", t.first_error.c_str());
      return 1;
    }
  }
  auto deadline = Clock::now() + std::chrono::milliseconds(static_cast<long>(o.seconds * 1000));
  std::vector<std::thread> threads;
  for (int i = 0; i < o.clients; ++i) threads.emplace_back(RunClient, i, std::cref(o), deadline, &t);
  for (std::thread& th : threads) th.join();
  std::printf(
      "{\"pairs\": %ld, \"reads\": %ld, \"stale\": %ld, \"replica_reads\": %ld, "
      "\"primary_reads\": %ld, \"cross_reads\": %ld, \"cross_stale\": %ld, "
      "\"read_p50_ms\": %.3f, \"read_p99_ms\": %.3f, \"errors\": %ld}\n",
      t.pairs, t.reads, t.stale, t.replica_reads, t.primary_reads, t.cross_reads, t.cross_stale,
      Percentile(&t.read_ms, 0.5), Percentile(&t.read_ms, 0.99), t.errors);
  if (t.errors > 0) std::fprintf(stderr, "first error: %s\n", t.first_error.c_str());
  return t.errors > 0 ? 1 : 0;
}
