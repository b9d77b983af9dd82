// node-postgres named queries through pgregion (issue 3): run by
// tests/integration/test_drivers.py, which reads the JSON summary on stdout.
//
//   node prepared.js '{"host":..,"port":..,"user":..,"password":..,"database":..,
//                      "table":"..","clients":3,"iterations":200}'
//
// pg sends Parse(name) only on a client's first use of a named query and Bind/Execute
// alone afterwards, so every later run depends on pgregion re-creating the statement
// on whichever server connection (and node) the transaction pool hands out. Several
// clients run concurrently over a small pool so the same name meets many connections.
// Errors are collected, not thrown: the summary says what failed and where.
'use strict';

const { Client } = require('pg');

const cfg = JSON.parse(process.argv[2]);
const TABLE = cfg.table;
const VERIFY_ROWS = 50;
if (!/^[a-z_][a-z0-9_]*$/.test(TABLE)) throw new Error(`bad table name ${TABLE}`);

const Q = {
  ins: (v) => ({ name: 'ins', text: `INSERT INTO ${TABLE}(v) VALUES ($1) RETURNING id`,
    values: [v] }),
  sel: (id) => ({ name: 'sel', text: `SELECT id, v FROM ${TABLE} WHERE id = $1`, values: [id] }),
  where: () => ({ name: 'where', text: 'SELECT pg_is_in_recovery() AS rec, ' +
    'inet_server_port() AS port' }),
  div: (d) => ({ name: 'div', text: 'SELECT 1 / $1::int AS q', values: [d] }),
  // `rows` makes pg Execute with a row limit and send Flush instead of Sync until the
  // portal completes (PortalSuspended, Execute again, ..., CommandComplete, then Sync).
  series: (n) => ({ name: 'series', text: 'SELECT g FROM generate_series(1, $1::int) g',
    values: [n], rows: 7 }),
};

function seriesSum(rows) {
  return rows.reduce((acc, r) => acc + r.g, 0);
}

const summary = {
  errors: [],          // unexpected errors: must stay empty
  inserted_ids: [],
  sel_found: 0,        // autocommit reads of the row this client just wrote
  sel_missing: 0,
  sel_wrong: 0,
  autocommit_where: { in_recovery: 0, not_in_recovery: 0, ports: {} },
  expected_errors: 0,  // division by zero on purpose, then the named statement is reused
  div_ok: 0,
  series_ok: 0,        // autocommit runs of the row-limited named query with the right sum
  series_bad: [],
  tx: [],              // one entry per read-write transaction
  ro_tx: [],           // one entry per BEGIN READ ONLY transaction
};

function recordError(where, err) {
  summary.errors.push(`${where}: ${err && (err.code ? err.code + ' ' : '') +
    (err.message || String(err))}`);
}

async function attempt(where, fn) {
  try {
    return await fn();
  } catch (err) {
    recordError(where, err);
    return undefined;
  }
}

async function oneIteration(client, c, i) {
  const tag = `c${c}i${i}`;
  const ins = await attempt(`${tag} ins`, () => client.query(Q.ins(`${tag}`)));
  if (!ins) return;
  const id = ins.rows[0].id;
  summary.inserted_ids.push(id);

  const sel = await attempt(`${tag} sel`, () => client.query(Q.sel(id)));
  if (sel) {
    // No read-your-writes wait yet: a replica may not have replayed the insert (missing),
    // but it must never return another row (wrong).
    if (sel.rows.length === 0) summary.sel_missing++;
    else if (sel.rows.length === 1 && sel.rows[0].v === tag) summary.sel_found++;
    else summary.sel_wrong++;
  }

  const w = await attempt(`${tag} where`, () => client.query(Q.where()));
  if (w) {
    const { rec, port } = w.rows[0];
    const a = summary.autocommit_where;
    if (rec) a.in_recovery++; else a.not_in_recovery++;
    a.ports[port] = (a.ports[port] || 0) + 1;
  }

  if (i % 20 === 0) {
    // An error inside a named statement's execution, then the same name again.
    try {
      await client.query(Q.div(0));
      recordError(`${tag} div0`, new Error('division by zero did not fail'));
    } catch (err) {
      if (err.code === '22012') summary.expected_errors++;
      else recordError(`${tag} div0`, err);
    }
    const d = await attempt(`${tag} div1`, () => client.query(Q.div(1)));
    if (d && d.rows[0].q === 1) summary.div_ok++;
  }

  if (i % 10 === 0) {
    const r = await attempt(`${tag} series`, () => client.query(Q.series(50)));
    if (r) {
      if (seriesSum(r.rows) === 1275) summary.series_ok++;
      else summary.series_bad.push(`${tag}: ${r.rows.length} rows`);
    }
  }

  if (i % 25 === 0) await transaction(client, tag);
}

// BEGIN; named insert; named select sees it (same server, the primary); COMMIT.
async function transaction(client, tag) {
  const t = { tag, saw_own_write: false, in_recovery: null, port: null, series_sum: null,
    committed: false };
  summary.tx.push(t);
  try {
    await client.query('BEGIN');
    const ins = await client.query(Q.ins(`${tag}-tx`));
    const id = ins.rows[0].id;
    const sel = await client.query(Q.sel(id));
    t.saw_own_write = sel.rows.length === 1 && sel.rows[0].v === `${tag}-tx`;
    const w = await client.query(Q.where());
    t.in_recovery = w.rows[0].rec;
    t.port = w.rows[0].port;
    t.series_sum = seriesSum((await client.query(Q.series(50))).rows);
    await client.query('COMMIT');
    t.committed = true;
    summary.inserted_ids.push(id);
  } catch (err) {
    recordError(`${tag} tx`, err);
    await client.query('ROLLBACK').catch(() => {});
  }

  const r = { tag, in_recovery: null, port: null, series_sum: null };
  summary.ro_tx.push(r);
  try {
    await client.query('BEGIN READ ONLY');
    const w = await client.query(Q.where());
    r.in_recovery = w.rows[0].rec;
    r.port = w.rows[0].port;
    r.series_sum = seriesSum((await client.query(Q.series(30))).rows);
    await client.query('COMMIT');
  } catch (err) {
    recordError(`${tag} ro_tx`, err);
    await client.query('ROLLBACK').catch(() => {});
  }
}

function newClient(c) {
  return new Client({
    host: cfg.host, port: cfg.port, user: cfg.user, password: cfg.password,
    database: cfg.database, connectionTimeoutMillis: 10000,
    query_timeout: 20000, application_name: `node-drv-${c}`,
  });
}

async function runClient(c) {
  const client = newClient(c);
  client.on('error', (err) => recordError(`c${c} client`, err));
  await client.connect();
  try {
    for (let i = 0; i < cfg.iterations; i++) await oneIteration(client, c, i);
  } finally {
    await client.end().catch((err) => recordError(`c${c} end`, err));
  }
}

// Autocommit reads may run before a replica replays the insert; once it has, the named
// select on the replicas returns each row. Retries are bounded (about 10 s in all).
async function verify() {
  const client = newClient('verify');
  client.on('error', (err) => recordError('verify client', err));
  await client.connect();
  const ids = summary.inserted_ids.slice(0, VERIFY_ROWS);
  summary.verify = { total: ids.length, found: 0, attempts: 0 };
  const deadline = Date.now() + 10000;
  try {
    for (const id of ids) {
      for (;;) {
        summary.verify.attempts++;
        const r = await attempt(`verify ${id}`, () => client.query(Q.sel(id)));
        if (!r) break;
        if (r.rows.length === 1) {
          summary.verify.found++;
          break;
        }
        if (Date.now() > deadline) break;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  } finally {
    await client.end().catch((err) => recordError('verify end', err));
  }
}

async function main() {
  const clients = [];
  for (let c = 0; c < cfg.clients; c++) {
    clients.push(runClient(c).catch((err) => recordError(`c${c}`, err)));
  }
  await Promise.all(clients);
  await verify();
  process.stdout.write(JSON.stringify(summary) + '\n');
}

main().catch((err) => {
  recordError('main', err);
  process.stdout.write(JSON.stringify(summary) + '\n');
  process.exitCode = 1;
});
