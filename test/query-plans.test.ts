// Plan guard: every statement of the PostgreSQL and SQLite stores, planned against a table of 100 000 rows seeded
// the way a busy day looks, must reach the jobs table through an index, so that a later change cannot lose one
// unnoticed (a sequential scan is fine on an empty table and grows with every retained job).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PostgresStore } from '../src/postgres.js';
import { SqliteStore } from '../src/sqlite.js';
import { PLANNED_PER_CALL, POSTGRES_STATEMENTS } from '../src/stores/postgres.js';
import { SQLITE_STATEMENTS } from '../src/stores/sqlite.js';
import { postgresSeedStatements, sqliteSeedStatements } from './helpers/busy-day.js';
import { pgUrl, schemas } from './helpers/postgres.js';

const ROWS = 100_000;
/**
 * The statements that read every retained job by design, and why: the only ones the guard lets through. The
 * dashboard's counts per job name and status (its page reloads them at most every 3 s).
 */
const READS_EVERY_JOB = new Set(['countJobs']);
const DAY = { rows: ROWS, expired: 0.03, live: 0.02, owners: 1000, names: 10 };

/** A plan node of `EXPLAIN (FORMAT JSON)` (and of auto_explain's JSON). */
interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}

/** Every node of a plan, depth first. */
function nodes(plan: PlanNode): PlanNode[] {
  return [plan, ...(plan.Plans ?? []).flatMap(nodes)];
}

/** The plan in one line, to say what was chosen when the guard fails. */
function outline(plan: PlanNode): string {
  const label = [plan['Node Type'], plan['Relation Name'], plan['Index Name'] && `(${plan['Index Name']})`]
    .filter(Boolean)
    .join(' ');
  const children = (plan.Plans ?? []).map(outline);
  return children.length > 0 ? `${label} [${children.join(', ')}]` : label;
}

/**
 * What in `plan` reads more of the jobs table as it grows: a sequential scan of it, or a sort of rows read from it
 * (every matching row is read and sorted before the first comes out; an ordered read must come in index order).
 */
function unboundedReads(plan: PlanNode): string[] {
  const readsJobs = (node: PlanNode) => nodes(node).some((n) => n['Relation Name'] === 'jobs');
  return nodes(plan).flatMap((node) => {
    if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'jobs') return ['Seq Scan of jobs'];
    // One row per owner: as many as there are callers.
    if (node['Node Type'] === 'Seq Scan' && node['Relation Name'] === 'owner_jobs') return ['Seq Scan of owner_jobs'];
    if (node['Node Type'] === 'Sort' && readsJobs(node)) return ['Sort of rows of jobs'];
    return [];
  });
}

describe('query plans on a busy day (PostgreSQL)', () => {
  const fresh = schemas('plans');
  const schema = fresh.next();
  const quoted = `"${schema}"`;
  let client: pg.Client;
  /** Parameters of a live job, an owner's page position and a retained key, read from the seeded rows. */
  let live: { id: string; worker: string; createdAt: string; scope: string };

  beforeAll(async () => {
    const store = new PostgresStore({ connectionString: pgUrl(), schema, listen: false });
    await store.init();
    await store.close();
    client = new pg.Client(pgUrl());
    await client.connect();
    for (const statement of postgresSeedStatements(quoted, DAY)) await client.query(statement);
    await client.query(`ANALYZE ${quoted}.jobs`);
    const { rows } = await client.query(
      `SELECT (SELECT id FROM ${quoted}.jobs WHERE status = 'processing' LIMIT 1) AS id,
        (SELECT lease_owner FROM ${quoted}.jobs WHERE status = 'processing' LIMIT 1) AS worker,
        (SELECT created_at::text FROM ${quoted}.jobs WHERE owner = 'user-7' ORDER BY created_at DESC OFFSET 20 LIMIT 1) AS "createdAt",
        (SELECT idem_scope FROM ${quoted}.jobs WHERE idem_scope IS NOT NULL LIMIT 1) AS scope`,
    );
    live = rows[0];
  }, 120_000);

  afterAll(async () => {
    await client?.end();
    await fresh.dropAll();
  });

  /** Each statement's parameters, in the order of its `$n`: what a busy day passes. */
  function params(): Record<keyof typeof POSTGRES_STATEMENTS, unknown[]> {
    const { id, worker, createdAt, scope } = live;
    const create = ['new_1', 'job-1', '{}', 'user-7', 'k', 'scope-new', 'h', 3, null, null, null, null];
    const complete = [id, worker, '{"ok":true}', null, 86_400_000];
    return {
      freeExpiredKey: [scope],
      insert: create,
      insertMany: create.map((value) => [value, value]),
      insertHanded: [...create.slice(0, 9), null],
      offerSlots: ['worker-9', ['job-1', 'job-2'], 10, 30_000, 30_000],
      withdrawSlots: ['worker-9'],
      registerWatcher: ['process-9', 30_000],
      withdrawWatcher: ['process-9'],
      getByKey: [scope],
      get: [id],
      listOwner: ['user-7', createdAt, 'zzz', 20],
      listNoOwner: [createdAt, 'zzz', 20],
      countOwner: ['user-7', 1000],
      claim: [['job-1', 'job-2'], 'worker-9', 10, 30_000],
      completeAndClaim: [...complete.map((value) => [value]), ['job-1', 'job-2'], 'worker-9', 10, 30_000],
      renew: [[id], worker, 30_000],
      progress: [id, worker, 50, 'half'],
      complete,
      completeMany: complete.map((value) => [value]),
      failFinal: [id, worker, '{"message":"x"}', 86_400_000, '{"message":"x"}'],
      failRetry: [id, worker, '{"message":"x"}', Date.now() + 1000, 86_400_000, '{"message":"x"}'],
      cancel: [id, 86_400_000],
      markCanceled: [id, worker, 86_400_000],
      release: [id, worker],
      purge: [5000],
      claimDeliveries: [10, 30_000],
      recordDelivery: [id, 'delivered', 1, null, '{"outcome":"delivered"}'],
      adminList: ['9223372036854775807', '', ['failed'], 'job-1', true, null, null, null, 50],
      adminListOwner: ['9223372036854775807', '', null, null, 'user-7', null, null, 50],
      countJobs: [],
      throughput: [3_600_000, 120_000],
      timings: [3_600_000],
      retry: [id],
      remove: [id],
      redeliver: [id],
      history: [id],
    };
  }

  const names = Object.keys(POSTGRES_STATEMENTS) as Array<keyof typeof POSTGRES_STATEMENTS>;

  /**
   * The store runs named prepared statements: PostgreSQL plans the first few with their values, then may switch to
   * one generic plan for any value. Both must read jobs through an index. Those the store runs unnamed
   * (`perCall`) are always planned with their values.
   */
  async function expectIndexedPlans(name: string, sql: string, values: unknown[], perCall: boolean) {
    const custom = await client.query(`EXPLAIN (FORMAT JSON) ${sql}`, values);
    const generic = perCall ? custom : await client.query(`EXPLAIN (FORMAT JSON, GENERIC_PLAN) ${sql}`);
    for (const [kind, result] of [
      ['custom', custom],
      ['generic', generic],
    ] as const) {
      const plan = (result.rows[0]['QUERY PLAN'] as Array<{ Plan: PlanNode }>)[0].Plan;
      expect(unboundedReads(plan), `${name} (${kind} plan): ${outline(plan)}`).toEqual([]);
    }
  }

  it.each(names.filter((name) => !READS_EVERY_JOB.has(name)))(
    '%s reads jobs through an index, in its order (custom and generic plans)',
    async (name) => {
      const sql = POSTGRES_STATEMENTS[name](quoted);
      const values = params()[name];
      expect(values, `parameters for ${name}`).toBeDefined();
      await expectIndexedPlans(name, sql, values as unknown[], PLANNED_PER_CALL.has(name));
    },
  );

  // list() writes page sizes up to 101 into its statement (one prepared statement per size): those forms too.
  it.each([
    ['listOwner', ['user-7', '9223372036854775807', '']],
    ['listOwner', ['user-7', 'createdAt', 'zzz']],
    ['listNoOwner', ['createdAt', 'zzz']],
  ] as const)(
    '%s with the page size written in reads jobs through an index, in its order (%j)',
    async (name, given) => {
      const sql = POSTGRES_STATEMENTS[name](quoted, 21);
      const values = given.map((value) => (value === 'createdAt' ? live.createdAt : value));
      await expectIndexedPlans(name, sql, values, false);
    },
  );

  /**
   * The plans of the queries run inside `name` (functions, triggers), custom and generic, read from auto_explain
   * while it runs in a transaction rolled back: EXPLAIN shows only the outer statement.
   */
  async function nestedPlans(name: keyof typeof POSTGRES_STATEMENTS): Promise<PlanNode[]> {
    const plans: PlanNode[] = [];
    const onNotice = (notice: { message?: string }) => {
      const text = notice.message ?? '';
      const at = text.indexOf('{');
      if (text.includes('plan:') && at !== -1) plans.push(JSON.parse(text.slice(at)).Plan as PlanNode);
    };
    client.on('notice', onNotice);
    try {
      await client.query("LOAD 'auto_explain'");
      for (const mode of ['force_custom_plan', 'force_generic_plan']) {
        await client.query('BEGIN');
        try {
          for (const setting of [
            'auto_explain.log_min_duration = 0',
            'auto_explain.log_nested_statements = on',
            "auto_explain.log_format = 'json'",
            "auto_explain.log_level = 'notice'",
            `plan_cache_mode = ${mode}`,
          ]) {
            await client.query(`SET LOCAL ${setting}`);
          }
          await client.query(POSTGRES_STATEMENTS[name](quoted), params()[name]);
        } finally {
          await client.query('ROLLBACK');
        }
      }
    } finally {
      client.off('notice', onNotice);
    }
    return plans;
  }

  // claim and completeAndClaim call claim_jobs (migration 6): EXPLAIN shows only a Function Scan.
  it.each(['claim', 'completeAndClaim'] as const)(
    'the claim_jobs query of %s reads jobs through an index (custom and generic plans)',
    async (name) => {
      const plans = await nestedPlans(name);
      const inner = plans.filter((plan) => nodes(plan).some((node) => node['Node Type'] === 'LockRows'));
      expect(inner.length, 'the function body was planned (custom and generic)').toBeGreaterThanOrEqual(2);
      for (const plan of plans) expect(unboundedReads(plan), `${name}: ${outline(plan)}`).toEqual([]);
    },
  );

  // Inserts and deletes keep owner_jobs (migration 9) by statement triggers, whose queries EXPLAIN does not show.
  it.each(['insertMany', 'purge', 'remove'] as const)(
    'the owner_jobs trigger of %s reaches owner_jobs by key (custom and generic plans)',
    async (name) => {
      const plans = await nestedPlans(name);
      const counted = plans.filter((plan) => nodes(plan).some((node) => node['Relation Name'] === 'owner_jobs'));
      expect(counted.length, 'the trigger ran (custom and generic)').toBeGreaterThanOrEqual(2);
      for (const plan of plans) expect(unboundedReads(plan), `${name}: ${outline(plan)}`).toEqual([]);
    },
  );
});

describe('list pages planned once (PostgreSQL)', () => {
  const fresh = schemas('plancache');
  const schema = fresh.next();
  let pool: pg.Pool;
  let store: PostgresStore;

  beforeAll(async () => {
    // One connection, so that its prepared statements are the store's.
    pool = new pg.Pool({ connectionString: pgUrl(), max: 1 });
    store = new PostgresStore({ pool, schema, listen: false });
    await store.init();
    // 100 000 finished jobs over 50 owners: 2 000 each, where a generic plan of `LIMIT $n` (a tenth of the
    // owner's rows assumed wanted) looks dearer to PostgreSQL than one planned for the values.
    for (const statement of postgresSeedStatements(`"${schema}"`, { ...DAY, owners: 50 })) await pool.query(statement);
    await pool.query(`VACUUM ANALYZE "${schema}".jobs`);
  }, 120_000);

  afterAll(async () => {
    await store?.close();
    await pool?.end();
    await fresh.dropAll();
  });

  // Planning a page costs several times reading it: a store holding many jobs per owner must not plan each call.
  it('an owner with 2 000 jobs: the first page and the next are served by one generic plan after the first few calls', async () => {
    const first = await store.list({ owner: 'user-7', limit: 21 });
    const before = { createdAt: first[19].createdAt, id: first[19].id };
    for (let i = 0; i < 12; i++) {
      expect(await store.list({ owner: 'user-7', limit: 21 })).toHaveLength(21);
      expect(await store.list({ owner: 'user-7', limit: 21, before })).toHaveLength(21);
      expect(await store.list({ owner: null, limit: 21 })).toHaveLength(0);
    }
    const { rows } = await pool.query<{ statement: string; generic_plans: string; custom_plans: string }>(
      "SELECT statement, generic_plans::text, custom_plans::text FROM pg_prepared_statements WHERE name LIKE '%list%Owner%'",
    );
    // PostgreSQL plans the first five calls with their values, then keeps the generic plan if it costs no more.
    // Two statements: an owner's pages (first and next) and the owner-less pages.
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      const plans = `${row.custom_plans} custom, ${row.generic_plans} generic: ${row.statement.slice(-300)}`;
      expect(Number(row.custom_plans), plans).toBeLessThanOrEqual(5);
      expect(Number(row.generic_plans), plans).toBeGreaterThanOrEqual(7);
    }
  });
});

describe('query plans on a busy day (SQLite)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'respond-async-plans-'));
  let store: SqliteStore;

  beforeAll(async () => {
    store = new SqliteStore({ path: join(dir, 'busy-day.sqlite') });
    await store.init();
    for (const statement of sqliteSeedStatements(DAY, Date.now())) store.database.exec(statement);
    store.database.exec('ANALYZE');
  }, 120_000);

  afterAll(async () => {
    await store?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const names = Object.keys(SQLITE_STATEMENTS) as Array<keyof typeof SQLITE_STATEMENTS>;
  /** Every named parameter any statement takes. */
  const values = {
    id: 'seed_x',
    scope: 'seed:3',
    name: 'job-1',
    input: '{}',
    owner: 'user-7',
    idempotencyKey: 'k',
    requestHash: 'h',
    maxAttempts: 3,
    callbackUrl: null,
    traceContext: null,
    now: Date.now(),
    limit: 20,
    createdAt: Date.now() - 3_600_000,
    upTo: 1000,
    names: '["job-1","job-2"]',
    worker: 'worker-1',
    leaseUntil: Date.now() + 30_000,
    progress: 50,
    message: 'half',
    result: '{}',
    resultUrl: null,
    expiresAt: Date.now() + 86_400_000,
    error: '{}',
    retryAt: Date.now() + 1000,
    nextAt: Date.now() + 30_000,
    status: 'delivered',
    attempts: 1,
    since: Date.now() - 3_600_000,
    bucketMs: 120_000,
    attempt: '{"message":"x"}',
    beforeCreatedAt: Number.MAX_SAFE_INTEGER,
    beforeId: '',
    statuses: '["failed"]',
    anyOwner: 1,
    from: null,
    to: null,
  };

  it.each(names.filter((name) => !READS_EVERY_JOB.has(name)))(
    '%s reads respond_async_jobs through an index',
    (name) => {
      const sql = SQLITE_STATEMENTS[name];
      const used = Object.fromEntries(
        [...sql.matchAll(/@(\w+)/g)].map(([, key]) => [key, values[key as keyof typeof values]]),
      );
      const missing = Object.keys(used).filter((key) => used[key] === undefined);
      expect(missing, `parameters for ${name}`).toEqual([]);
      const plan = store.database.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(used) as Array<{ detail: string }>;
      const details = plan.map((row) => row.detail);
      // `SCAN t` reads the whole table; `SCAN t USING INDEX i` walks an index in order (stopped by a LIMIT).
      const scans = details.filter((detail) => /^SCAN respond_async_(owner_)?jobs(?! USING)/.test(detail));
      expect(scans, `${name}: ${details.join(' | ')}`).toEqual([]);
    },
  );
});
