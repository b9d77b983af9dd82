// Microbenchmark of the statement classifier: time per Classify() call,
// cached (normalize + LRU hit) and uncached (normalize + libpg_query parse +
// analysis), for pgbench's select-only statement, the TPC-B statements and a
// set of complex statements. Every call gets a text with new literals, as a
// simple-protocol client sends them. Prints a Markdown table.
//
//   ./build/bench/classify_bench [--quick]
//
// Times include one steady_clock::now() pair per call (its cost is printed).
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "routing/sql_normalizer.h"
#include "routing/statement_classifier.h"

namespace {

using pgregion::routing::ClassifierOptions;
using pgregion::routing::ClassifyResult;
using pgregion::routing::StatementClassifier;
using Clock = std::chrono::steady_clock;

// Replaces each "{}" in `pattern` with a number derived from `seed`.
std::string Fill(std::string_view pattern, uint64_t seed) {
  std::string out;
  size_t k = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    if (pattern[i] == '{' && i + 1 < pattern.size() && pattern[i + 1] == '}') {
      uint64_t v = (seed * 2654435761u + k++ * 40503u) % 100000 + 1;
      out += std::to_string(v);
      ++i;
    } else {
      out.push_back(pattern[i]);
    }
  }
  return out;
}

const std::vector<std::string_view> kSelectOnly = {
    "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
};

const std::vector<std::string_view> kTpcb = {
    "BEGIN;",
    "UPDATE pgbench_accounts SET abalance = abalance + {} WHERE aid = {};",
    "SELECT abalance FROM pgbench_accounts WHERE aid = {};",
    "UPDATE pgbench_tellers SET tbalance = tbalance + {} WHERE tid = {};",
    "UPDATE pgbench_branches SET bbalance = bbalance + {} WHERE bid = {};",
    "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) "
    "VALUES ({}, {}, {}, {}, CURRENT_TIMESTAMP);",
    "END;",
};

const std::vector<std::string_view> kComplex = {
    // Nested CTEs, one of them data-modifying.
    "WITH a AS (WITH b AS (DELETE FROM events WHERE created_at < now() - interval '{} days' "
    "RETURNING *) SELECT * FROM b), c AS (SELECT account_id, count(*) AS n FROM a GROUP BY "
    "account_id) SELECT c.account_id, c.n, acc.name FROM c JOIN accounts acc ON acc.id = "
    "c.account_id WHERE c.n > {} ORDER BY c.n DESC LIMIT {}",
    // Recursive CTE.
    "WITH RECURSIVE tree(id, parent_id, depth, path) AS (SELECT id, parent_id, 0, ARRAY[id] "
    "FROM nodes WHERE id = {} UNION ALL SELECT n.id, n.parent_id, t.depth + 1, t.path || n.id "
    "FROM nodes n JOIN tree t ON n.parent_id = t.id WHERE t.depth < {}) SELECT * FROM tree "
    "ORDER BY path",
    // Window functions.
    "SELECT customer_id, order_id, amount, sum(amount) OVER (PARTITION BY customer_id ORDER BY "
    "created_at ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS running, rank() OVER "
    "(PARTITION BY customer_id ORDER BY amount DESC) AS r, lag(amount, 1) OVER w AS prev FROM "
    "orders WHERE created_at >= '2024-01-{}' WINDOW w AS (PARTITION BY customer_id ORDER BY "
    "created_at)",
    // Five-way join with aggregates.
    "SELECT c.name, p.title, sum(oi.quantity * oi.price) AS revenue, count(DISTINCT o.id) FROM "
    "customers c JOIN orders o ON o.customer_id = c.id JOIN order_items oi ON oi.order_id = "
    "o.id JOIN products p ON p.id = oi.product_id LEFT JOIN categories cat ON cat.id = "
    "p.category_id WHERE o.status = 'paid' AND o.created_at > now() - interval '{} days' AND "
    "cat.name IN ('a', 'b', 'c') GROUP BY c.name, p.title HAVING sum(oi.quantity) > {} ORDER "
    "BY revenue DESC LIMIT {}",
    // Correlated subqueries and EXISTS.
    "SELECT u.id, u.email, (SELECT max(created_at) FROM logins l WHERE l.user_id = u.id) AS "
    "last_login FROM users u WHERE EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = u.id "
    "AND s.plan_id = {}) AND NOT EXISTS (SELECT 1 FROM bans b WHERE b.user_id = u.id) AND u.id "
    "IN (SELECT user_id FROM team_members WHERE team_id = {})",
    // Locking read.
    "SELECT id, payload FROM jobs WHERE queue = 'default' AND run_at <= now() AND attempts < {} "
    "ORDER BY priority DESC, id LIMIT {} FOR UPDATE SKIP LOCKED",
    // JSON.
    "SELECT id, doc->>'name' AS name, jsonb_array_length(doc->'tags') AS ntags, "
    "jsonb_build_object('id', id, 'score', (doc->>'score')::numeric * {}) FROM documents WHERE "
    "doc @> '{\"active\": true}' AND (doc->>'score')::numeric > {} ORDER BY id LIMIT {}",
    // Set operations and LATERAL.
    "SELECT x.id, y.v FROM (SELECT id FROM a WHERE k = {} UNION SELECT id FROM b WHERE k = {} "
    "EXCEPT SELECT id FROM c) x CROSS JOIN LATERAL (SELECT v FROM d WHERE d.id = x.id ORDER BY "
    "ts DESC LIMIT {}) y",
    // Upsert with a CTE.
    "WITH src AS (SELECT {} AS id, 'x' AS name) INSERT INTO items (id, name) SELECT id, name "
    "FROM src ON CONFLICT (id) DO UPDATE SET name = excluded.name, updated_at = now() "
    "RETURNING id",
    // Grouping sets with FILTER.
    "SELECT region, product, sum(amount) FILTER (WHERE amount > {}) AS big, count(*) FROM "
    "sales WHERE sold_at BETWEEN '2024-01-01' AND '2024-{}-28' GROUP BY GROUPING SETS ((region, "
    "product), (region), ()) ORDER BY region NULLS FIRST",
};

struct Summary {
  double median_ns = 0;
  double p99_ns = 0;
};

Summary Summarize(std::vector<double>* ns) {
  std::sort(ns->begin(), ns->end());
  Summary s;
  if (ns->empty()) return s;
  s.median_ns = (*ns)[ns->size() / 2];
  s.p99_ns = (*ns)[std::min(ns->size() - 1, ns->size() * 99 / 100)];
  return s;
}

// Times `iterations` Classify() calls over `texts` (cycled).
Summary Run(StatementClassifier* classifier, const std::vector<std::string>& texts,
            size_t iterations, bool expect_hits) {
  std::vector<double> ns;
  ns.reserve(iterations);
  size_t hits = 0;
  for (size_t i = 0; i < iterations; ++i) {
    const std::string& sql = texts[i % texts.size()];
    auto start = Clock::now();
    ClassifyResult r = classifier->Classify(sql);
    auto end = Clock::now();
    hits += r.cache_hit ? 1 : 0;
    ns.push_back(std::chrono::duration<double, std::nano>(end - start).count());
  }
  if (expect_hits && hits != iterations) {
    std::fprintf(stderr, "warning: %zu of %zu cached calls missed\n", iterations - hits,
                 iterations);
  }
  return Summarize(&ns);
}

std::vector<std::string> Texts(const std::vector<std::string_view>& patterns, size_t variants) {
  std::vector<std::string> texts;
  for (size_t v = 0; v < variants; ++v) {
    for (std::string_view p : patterns) texts.push_back(Fill(p, v * 7919 + texts.size()));
  }
  return texts;
}

double ClockOverheadNs() {
  std::vector<double> ns;
  for (int i = 0; i < 100000; ++i) {
    auto a = Clock::now();
    auto b = Clock::now();
    ns.push_back(std::chrono::duration<double, std::nano>(b - a).count());
  }
  return Summarize(&ns).median_ns;
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  const size_t cached_iterations = quick ? 20000 : 300000;
  const size_t uncached_iterations = quick ? 2000 : 30000;

  struct Group {
    const char* name;
    const std::vector<std::string_view>* patterns;
  };
  const Group groups[] = {
      {"pgbench select-only (1 statement)", &kSelectOnly},
      {"pgbench TPC-B (7 statements)", &kTpcb},
      {"complex (10 statements)", &kComplex},
  };

  std::printf("| statements | cached median | cached p99 | uncached median | uncached p99 |\n");
  std::printf("|---|---:|---:|---:|---:|\n");
  for (const Group& g : groups) {
    std::vector<std::string> texts = Texts(*g.patterns, 500);

    StatementClassifier cached(ClassifierOptions{});
    for (const std::string& t : texts) cached.Classify(t);  // warm: one parse per shape
    Summary hit = Run(&cached, texts, cached_iterations, /*expect_hits=*/true);

    ClassifierOptions no_cache;
    no_cache.cache_capacity = 0;
    StatementClassifier uncached(no_cache);
    Run(&uncached, texts, std::min<size_t>(1000, uncached_iterations), false);  // warm up
    Summary miss = Run(&uncached, texts, uncached_iterations, /*expect_hits=*/false);

    std::printf("| %s | %.0f ns | %.0f ns | %.0f ns | %.0f ns |\n", g.name, hit.median_ns,
                hit.p99_ns, miss.median_ns, miss.p99_ns);
  }

  // The normalizer alone, for the select-only text.
  {
    std::vector<std::string> texts = Texts(kSelectOnly, 500);
    std::vector<double> ns;
    std::string key;
    for (size_t i = 0; i < cached_iterations; ++i) {
      pgregion::routing::StatementHints hints;
      auto start = Clock::now();
      pgregion::routing::SqlNormalizer::Normalize(texts[i % texts.size()], &key, &hints);
      auto end = Clock::now();
      ns.push_back(std::chrono::duration<double, std::nano>(end - start).count());
    }
    Summary s = Summarize(&ns);
    std::printf("| normalize only, select-only text | %.0f ns | %.0f ns | | |\n", s.median_ns,
                s.p99_ns);
  }
  std::printf(
      "\nPer Classify() call; each call sees new literals. Cached: a shape-memo hit (texts that\n"
      "differ only in numbers), else normalize + LRU hit (texts with strings, quoted names or\n"
      "comments).\n"
      "Uncached: cache_capacity = 0 (normalize + libpg_query parse + analysis).\n"
      "Times include one steady_clock::now() pair (median %.0f ns).\n",
      ClockOverheadNs());
  return 0;
}
