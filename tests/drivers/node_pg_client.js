// node-postgres (`pg` from npm) through jitgate (or straight to PostgreSQL, as a control).
//
// Usage: node node_pg_client.js STEP...   (steps: queries transaction notify cancel)
// Connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE; no TLS.
// Prints `ok STEP` after each step; on the first failure prints `FAILED STEP: why` on stderr and
// exits 1. The `transaction` step expects the approver (tests/pg_drivers.rs) to approve
// `UPDATE t SET v = $1 WHERE id = 1` and deny `UPDATE t SET v = $1 WHERE id = 2`.
// There is no `copy` step: pg has no COPY of its own (that is the pg-copy-streams package).
'use strict'

const pg = require('pg')

const config = {
  host: process.env.PGHOST,
  port: Number(process.env.PGPORT),
  user: process.env.PGUSER,
  password: process.env.PGPASSWORD,
  database: process.env.PGDATABASE,
  ssl: false,
}

function check(condition, what) {
  if (!condition) throw new Error(what)
}

// The error `promise` fails with; throws if it succeeds.
async function failure(promise, what) {
  const error = await promise.then(() => null, (failed) => failed)
  check(error !== null, `${what} succeeded`)
  return error
}

async function value(client, sql, params) {
  const result = await client.query({ text: sql, values: params, rowMode: 'array' })
  return result.rows[0][0]
}

async function queries(client) {
  // No parameters: the simple query protocol, two statements in one string.
  const both = await client.query('SELECT 1 AS a; SELECT 2 AS b')
  check(both.length === 2 && both[1].rows[0].b === 2, 'two results')
  // Parameters: Parse/Bind/Execute with an unnamed statement.
  check((await value(client, 'SELECT $1::int + $2::int', [40, 2])) === 42, '$1 + $2')
  const rows = await client.query('SELECT id, v FROM t WHERE id <= $1 ORDER BY id', [2])
  check(JSON.stringify(rows.rows) === '[{"id":1,"v":0},{"id":2,"v":0}]', 'rows of t')
  // A named prepared statement, executed twice (parsed once).
  for (const [add, row] of [[5, 1], [7, 3]]) {
    const got = await client.query({ name: 'by-id', text: 'SELECT v + $1 AS s FROM t WHERE id = $2', values: [add, row] })
    check(got.rows[0].s === add, `prepared, row ${row}`)
  }
}

async function transaction(client) {
  // Held for approval; the approver approves it, then it runs and commits.
  await client.query('BEGIN')
  await client.query('UPDATE t SET v = $1 WHERE id = 1', [111])
  await client.query('COMMIT')
  // Held and denied: 42501 aborts the transaction; the allowed insert before it (parameters too)
  // is rolled back.
  await client.query('BEGIN')
  await client.query('INSERT INTO log (n) VALUES ($1)', [-1])
  const update = client.query('UPDATE t SET v = $1 WHERE id = 2', [222])
  const denied = await failure(update, 'the denied update')
  check(denied.code === '42501', `denied update: ${denied.code} ${denied.message}`)
  await client.query('ROLLBACK')
  check((await value(client, 'SELECT v FROM t WHERE id = 2')) === 0, 'row 2 changed')
}

async function notify(client) {
  const ownPid = client.processID
  const backendPid = await value(client, 'SELECT pg_backend_pid()')
  check(ownPid === backendPid, `BackendKeyData pid ${ownPid} is not pg_backend_pid() ${backendPid}`)
  const received = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('no notification within 30 s')), 30000)
    client.once('notification', (message) => {
      clearTimeout(timer)
      resolve(message)
    })
  })
  await client.query('LISTEN own_channel')
  await client.query("NOTIFY own_channel, 'from me'")
  const got = await received
  check(got.channel === 'own_channel' && got.payload === 'from me', `notification ${JSON.stringify(got)}`)
  check(got.processId === ownPid, `notification pid ${got.processId} is not my backend pid ${ownPid}`)
}

// Waits, on a second connection, until backend `pid` runs pg_sleep.
async function waitUntilRunning(pid) {
  const watcher = new pg.Client(config)
  await watcher.connect()
  try {
    const running = "SELECT count(*)::int FROM pg_stat_activity WHERE pid = $1 AND state = 'active'"
    const deadline = Date.now() + 30000
    while ((await value(watcher, running + " AND query LIKE '%pg_sleep%'", [pid])) === 0) {
      check(Date.now() < deadline, 'pg_sleep never seen running')
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  } finally {
    await watcher.end()
  }
}

async function cancel(client) {
  // Client.prototype.cancel sends a CancelRequest with the processID and secretKey the client
  // got in BackendKeyData, from a fresh connection to the same address.
  const started = Date.now()
  const sleeper = client.query('SELECT pg_sleep(30)')
  sleeper.catch(() => {}) // awaited below; this only keeps node from reporting it early
  await waitUntilRunning(client.processID)
  new pg.Client(config).cancel(client, client.activeQuery)
  const cancelled = await failure(sleeper, 'the cancelled pg_sleep')
  check(cancelled.code === '57014', `cancelled with ${cancelled.code} ${cancelled.message}`)
  const elapsed = (Date.now() - started) / 1000
  check(elapsed < 20, `the cancelled pg_sleep(30) ran ${elapsed} s`)
  check((await value(client, "SELECT 'after cancel'")) === 'after cancel', 'after cancel')
}

const STEPS = { queries, transaction, notify, cancel }

async function main(steps) {
  const client = new pg.Client(config)
  try {
    await client.connect()
  } catch (error) {
    console.error(`FAILED connect: ${error.message}`)
    return 1
  }
  for (const step of steps) {
    try {
      await STEPS[step](client)
    } catch (error) {
      console.error(`FAILED ${step}: ${error.message}`)
      return 1
    }
    console.log(`ok ${step}`)
  }
  await client.end()
  return 0
}

main(process.argv.slice(2)).then((status) => process.exit(status))
