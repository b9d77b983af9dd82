// pgjdbc server-side prepared statements through pgregion (issue 3): compiled and run by
// tests/integration/test_drivers.py, which reads the JSON summary on stdout.
//
//   java -cp DIR:/usr/share/java/postgresql.jar Prepared HOST PORT USER PASSWORD DB TABLE
//        CLIENTS ITERATIONS
//
// prepareThreshold=1 makes pgjdbc Parse every PreparedStatement under a server-side name
// (S_1, S_2, ...) on its first execution and send only Bind/Execute afterwards, so every
// later run depends on pgregion re-creating the statement on whichever server connection
// (and node) the transaction pool hands out. Several connections run concurrently over a
// small pool. Errors are collected, not thrown: the summary says what failed and where.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.atomic.AtomicInteger;

public final class Prepared {
  private static final List<String> errors = Collections.synchronizedList(new ArrayList<>());
  private static final List<Long> insertedIds = Collections.synchronizedList(new ArrayList<>());
  private static final List<String> txs = Collections.synchronizedList(new ArrayList<>());
  private static final List<String> roTxs = Collections.synchronizedList(new ArrayList<>());
  private static final Map<Integer, Integer> ports = new TreeMap<>();
  private static final AtomicInteger selFound = new AtomicInteger();
  private static final AtomicInteger selMissing = new AtomicInteger();
  private static final AtomicInteger selWrong = new AtomicInteger();
  private static final AtomicInteger inRecovery = new AtomicInteger();
  private static final AtomicInteger notInRecovery = new AtomicInteger();
  private static final AtomicInteger expectedErrors = new AtomicInteger();
  private static final AtomicInteger divOk = new AtomicInteger();
  private static final AtomicInteger batchInserts = new AtomicInteger();
  private static final AtomicInteger churnOk = new AtomicInteger();
  private static final AtomicInteger readOnlyAutocommitReplica = new AtomicInteger();
  private static final AtomicInteger readOnlyAutocommitPrimary = new AtomicInteger();
  private static final AtomicInteger alwaysModeReplica = new AtomicInteger();
  private static final AtomicInteger alwaysModePrimary = new AtomicInteger();
  private static final AtomicInteger alwaysModeWriteRefused = new AtomicInteger();

  private static final int VERIFY_ROWS = 50;
  private static final int BATCH_ROWS = 5;
  private static final int CHURN_STATEMENTS = 40;

  private static String url;
  private static String user;
  private static String password;
  private static String table;

  private Prepared() {}

  private static void error(String where, Throwable e) {
    String state = e instanceof SQLException ? ((SQLException) e).getSQLState() + " " : "";
    errors.add(where + ": " + state + e.getClass().getSimpleName() + " " + e.getMessage());
  }

  private static Connection open(String extra) throws SQLException {
    java.util.Properties props = new java.util.Properties();
    props.setProperty("user", user);
    props.setProperty("password", password);
    return DriverManager.getConnection(url + extra, props);
  }

  /** Server-side statements, one set per connection (pgjdbc caches them by text). */
  private static final class Statements implements AutoCloseable {
    final PreparedStatement ins;
    final PreparedStatement sel;
    final PreparedStatement where;
    final PreparedStatement div;
    final PreparedStatement series;
    final PreparedStatement batch;

    Statements(Connection c) throws SQLException {
      ins = c.prepareStatement("INSERT INTO " + table + "(v) VALUES (?) RETURNING id");
      sel = c.prepareStatement("SELECT id, v FROM " + table + " WHERE id = ?");
      where = c.prepareStatement("SELECT pg_is_in_recovery(), inet_server_port()");
      div = c.prepareStatement("SELECT 1 / ?");
      series = c.prepareStatement("SELECT g FROM generate_series(1, ?) g");
      batch = c.prepareStatement("INSERT INTO " + table + "(v) VALUES (?)",
          Statement.RETURN_GENERATED_KEYS);
    }

    long insert(String v) throws SQLException {
      ins.setString(1, v);
      try (ResultSet rs = ins.executeQuery()) {
        rs.next();
        return rs.getLong(1);
      }
    }

    String select(long id) throws SQLException {
      sel.setLong(1, id);
      try (ResultSet rs = sel.executeQuery()) {
        return rs.next() ? rs.getString(2) : null;
      }
    }

    /** {in_recovery ? 1 : 0, port} */
    int[] where() throws SQLException {
      try (ResultSet rs = where.executeQuery()) {
        rs.next();
        return new int[] {rs.getBoolean(1) ? 1 : 0, rs.getInt(2)};
      }
    }

    /** Sum of generate_series(1, n) fetched `fetch` rows at a time. */
    long seriesSum(int n, int fetch) throws SQLException {
      series.setInt(1, n);
      series.setFetchSize(fetch);
      long sum = 0;
      try (ResultSet rs = series.executeQuery()) {
        while (rs.next()) sum += rs.getInt(1);
      }
      return sum;
    }

    @Override
    public void close() throws SQLException {
      ins.close();
      sel.close();
      where.close();
      div.close();
      series.close();
      batch.close();
    }
  }

  private static void iteration(Connection c, Statements s, String tag, int i) {
    long id;
    try {
      id = s.insert(tag);
      insertedIds.add(id);
    } catch (SQLException e) {
      error(tag + " ins", e);
      return;
    }
    try {
      // No read-your-writes wait yet: a replica may not have replayed the insert (missing),
      // but it must never return another row (wrong).
      String v = s.select(id);
      if (v == null) {
        selMissing.incrementAndGet();
      } else if (v.equals(tag)) {
        selFound.incrementAndGet();
      } else {
        selWrong.incrementAndGet();
      }
    } catch (SQLException e) {
      error(tag + " sel", e);
    }
    try {
      int[] w = s.where();
      (w[0] == 1 ? inRecovery : notInRecovery).incrementAndGet();
      synchronized (ports) {
        ports.merge(w[1], 1, Integer::sum);
      }
    } catch (SQLException e) {
      error(tag + " where", e);
    }
    if (i % 20 == 0) divisionByZeroThenAgain(s, tag);
    if (i % 10 == 0) batchInsert(s, tag);
    if (i % 25 == 0) {
      transaction(c, s, tag);
      readOnlyTransaction(c, s, tag);
    }
  }

  // executeBatch pipelines Bind/Execute for every row of the batch behind one Sync;
  // RETURN_GENERATED_KEYS makes pgjdbc append RETURNING to the server-side statement.
  private static void batchInsert(Statements s, String tag) {
    try {
      for (int k = 0; k < BATCH_ROWS; k++) {
        s.batch.setString(1, tag + "-b" + k);
        s.batch.addBatch();
      }
      int[] counts = s.batch.executeBatch();
      int n = 0;
      try (ResultSet keys = s.batch.getGeneratedKeys()) {
        while (keys.next()) {
          insertedIds.add(keys.getLong(1));
          n++;
        }
      }
      if (counts.length == BATCH_ROWS && n == BATCH_ROWS) {
        batchInserts.addAndGet(n);
      } else {
        errors.add(tag + " batch: " + counts.length + " counts, " + n + " keys");
      }
    } catch (SQLException e) {
      error(tag + " batch", e);
    }
  }

  // An error inside a named statement's execution, then the same statement again.
  private static void divisionByZeroThenAgain(Statements s, String tag) {
    try {
      s.div.setInt(1, 0);
      s.div.executeQuery().close();
      errors.add(tag + " div0: division by zero did not fail");
    } catch (SQLException e) {
      if ("22012".equals(e.getSQLState())) expectedErrors.incrementAndGet(); else error(tag, e);
    }
    try {
      s.div.setInt(1, 1);
      try (ResultSet rs = s.div.executeQuery()) {
        if (rs.next() && rs.getInt(1) == 1) divOk.incrementAndGet();
      }
    } catch (SQLException e) {
      error(tag + " div1", e);
    }
  }

  // setAutoCommit(false): pgjdbc sends BEGIN in the same batch as the first statement.
  // The named select sees the named insert; a fetch size makes pgjdbc use a named portal
  // and several Execute messages with row limits.
  private static void transaction(Connection c, Statements s, String tag) {
    String v = tag + "-tx";
    try {
      c.setAutoCommit(false);
      long id = s.insert(v);
      boolean saw = v.equals(s.select(id));
      int[] w = s.where();
      long sum = s.seriesSum(50, 7);
      c.commit();
      insertedIds.add(id);
      txs.add(String.format("{\"tag\":\"%s\",\"saw_own_write\":%b,\"in_recovery\":%b,"
          + "\"port\":%d,\"series_sum\":%d,\"committed\":true}", tag, saw, w[0] == 1, w[1], sum));
    } catch (SQLException e) {
      error(tag + " tx", e);
      try {
        c.rollback();
      } catch (SQLException ignored) {
        // the connection is reported broken by the error above already
      }
    } finally {
      try {
        c.setAutoCommit(true);
      } catch (SQLException e) {
        error(tag + " tx autocommit", e);
      }
    }
  }

  // setReadOnly(true) with the default readOnlyMode=transaction: nothing is sent in
  // autocommit mode; with autocommit off pgjdbc starts transactions with BEGIN READ ONLY.
  private static void readOnlyTransaction(Connection c, Statements s, String tag) {
    try {
      c.setReadOnly(true);
      int[] a = s.where();
      (a[0] == 1 ? readOnlyAutocommitReplica : readOnlyAutocommitPrimary).incrementAndGet();
      c.setAutoCommit(false);
      int[] w = s.where();
      long sum = s.seriesSum(30, 4);
      c.commit();
      roTxs.add(String.format("{\"tag\":\"%s\",\"in_recovery\":%b,\"port\":%d,"
          + "\"series_sum\":%d}", tag, w[0] == 1, w[1], sum));
    } catch (SQLException e) {
      error(tag + " ro_tx", e);
      try {
        c.rollback();
      } catch (SQLException ignored) {
        // reported above
      }
    } finally {
      try {
        c.setAutoCommit(true);
        c.setReadOnly(false);
      } catch (SQLException e) {
        error(tag + " ro_tx reset", e);
      }
    }
  }

  // readOnlyMode=always: setReadOnly(true) in autocommit sends
  // SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY; reads may go to replicas, writes
  // are refused by Postgres (25006) on every server connection the session lands on.
  private static void alwaysMode(String tag, int iterations) {
    try (Connection c = open("&readOnlyMode=always")) {
      c.setReadOnly(true);
      try (Statements s = new Statements(c)) {
        for (int i = 0; i < iterations; i++) {
          try {
            int[] w = s.where();
            (w[0] == 1 ? alwaysModeReplica : alwaysModePrimary).incrementAndGet();
          } catch (SQLException e) {
            error(tag + " where " + i, e);
          }
          if (i % 10 == 0) {
            try {
              s.insert(tag + "-ro");
              errors.add(tag + " insert in a read-only session succeeded");
            } catch (SQLException e) {
              if ("25006".equals(e.getSQLState())) {
                alwaysModeWriteRefused.incrementAndGet();
              } else {
                error(tag + " ro insert", e);
              }
            }
          }
        }
      }
    } catch (SQLException e) {
      error(tag, e);
    }
  }

  // preparedStatementCacheQueries=4: pgjdbc closes the server-side statement (Close S_n)
  // of every statement evicted from its cache, in the batch of the next query.
  // getParameterMetaData before the first execution sends Parse + Describe(S) + Sync.
  private static void churn(String tag) {
    try (Connection c = open("&preparedStatementCacheQueries=4")) {
      for (int round = 0; round < 2; round++) {
        for (int k = 0; k < CHURN_STATEMENTS; k++) {
          String sql = "SELECT ?::int + " + k + ", pg_is_in_recovery()";
          try (PreparedStatement ps = c.prepareStatement(sql)) {
            int type = ps.getParameterMetaData().getParameterType(1);
            if (type != java.sql.Types.INTEGER) {
              errors.add(tag + " " + k + ": parameter type " + type);
            }
            for (int rep = 0; rep < 3; rep++) {
              ps.setInt(1, rep);
              try (ResultSet rs = ps.executeQuery()) {
                if (rs.next() && rs.getInt(1) == rep + k && rs.getBoolean(2)) {
                  churnOk.incrementAndGet();
                } else {
                  errors.add(tag + " " + k + ": wrong result or not on a replica");
                }
              }
            }
          } catch (SQLException e) {
            error(tag + " " + round + "/" + k, e);
          }
        }
      }
    } catch (SQLException e) {
      error(tag, e);
    }
  }

  private static void client(int n, int iterations) {
    String tag = "c" + n;
    try (Connection c = open("")) {
      try (Statements s = new Statements(c)) {
        for (int i = 0; i < iterations; i++) iteration(c, s, tag + "i" + i, i);
      }
    } catch (SQLException e) {
      error(tag, e);
    }
  }

  // Autocommit reads may run before a replica replays the insert; once it has, the
  // server-side select on the replicas returns each row. Retries are bounded (~10 s).
  private static int verifyTotal;
  private static int verifyFound;
  private static int verifyAttempts;

  private static void verify() {
    List<Long> ids;
    synchronized (insertedIds) {
      ids = new ArrayList<>(insertedIds.subList(0, Math.min(VERIFY_ROWS, insertedIds.size())));
    }
    verifyTotal = ids.size();
    long deadline = System.nanoTime() + 10_000_000_000L;
    try (Connection c = open(""); Statements s = new Statements(c)) {
      for (long id : ids) {
        while (true) {
          verifyAttempts++;
          if (s.select(id) != null) {
            verifyFound++;
            break;
          }
          if (System.nanoTime() > deadline) break;
          Thread.sleep(20);
        }
      }
    } catch (SQLException | InterruptedException e) {
      error("verify", e);
    }
  }

  private static String jsonString(String s) {
    StringBuilder b = new StringBuilder("\"");
    for (char ch : s.toCharArray()) {
      if (ch == '"' || ch == '\\') {
        b.append('\\').append(ch);
      } else if (ch < 0x20) {
        b.append(String.format("\\u%04x", (int) ch));
      } else {
        b.append(ch);
      }
    }
    return b.append('"').toString();
  }

  private static String summary() {
    StringBuilder b = new StringBuilder("{");
    List<String> errs;
    synchronized (errors) {
      errs = new ArrayList<>(errors);
    }
    b.append("\"errors\":[");
    for (int i = 0; i < errs.size(); i++) b.append(i > 0 ? "," : "").append(jsonString(errs.get(i)));
    b.append("],\"inserted_ids\":").append(insertedIds);
    b.append(",\"sel_found\":").append(selFound).append(",\"sel_missing\":").append(selMissing);
    b.append(",\"sel_wrong\":").append(selWrong);
    b.append(",\"autocommit_where\":{\"in_recovery\":").append(inRecovery);
    b.append(",\"not_in_recovery\":").append(notInRecovery).append(",\"ports\":{");
    synchronized (ports) {
      int k = 0;
      for (Map.Entry<Integer, Integer> e : ports.entrySet()) {
        b.append(k++ > 0 ? "," : "").append('"').append(e.getKey()).append("\":")
            .append(e.getValue());
      }
    }
    b.append("}},\"expected_errors\":").append(expectedErrors).append(",\"div_ok\":").append(divOk);
    b.append(",\"verify\":{\"total\":").append(verifyTotal).append(",\"found\":")
        .append(verifyFound).append(",\"attempts\":").append(verifyAttempts).append("}");
    b.append(",\"batch_inserts\":").append(batchInserts);
    b.append(",\"churn_ok\":").append(churnOk);
    b.append(",\"tx\":[").append(String.join(",", txs)).append("]");
    b.append(",\"ro_tx\":[").append(String.join(",", roTxs)).append("]");
    b.append(",\"read_only_autocommit\":{\"replica\":").append(readOnlyAutocommitReplica)
        .append(",\"primary\":").append(readOnlyAutocommitPrimary).append("}");
    b.append(",\"always_mode\":{\"replica\":").append(alwaysModeReplica)
        .append(",\"primary\":").append(alwaysModePrimary)
        .append(",\"write_refused\":").append(alwaysModeWriteRefused).append("}");
    return b.append("}").toString();
  }

  public static void main(String[] args) throws Exception {
    String host = args[0];
    int port = Integer.parseInt(args[1]);
    user = args[2];
    password = args[3];
    String db = args[4];
    table = args[5];
    int clients = Integer.parseInt(args[6]);
    int iterations = Integer.parseInt(args[7]);
    if (!table.matches("[a-z_][a-z0-9_]*")) throw new IllegalArgumentException(table);
    url = "jdbc:postgresql://" + host + ":" + port + "/" + db
        + "?prepareThreshold=1&connectTimeout=10&socketTimeout=30&sslmode=disable"
        + "&gssEncMode=disable&ApplicationName=jdbc-drv";

    List<Thread> threads = new ArrayList<>();
    for (int n = 0; n < clients; n++) {
      final int k = n;
      threads.add(new Thread(() -> client(k, iterations), "client-" + n));
    }
    threads.add(new Thread(() -> alwaysMode("always", Math.max(20, iterations / 5)), "always"));
    threads.add(new Thread(() -> churn("churn"), "churn"));
    for (Thread t : threads) t.start();
    for (Thread t : threads) t.join();
    verify();
    System.out.println(summary());
  }
}
