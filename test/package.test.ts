// What ships: build with tsup, `npm pack`, install the tarball into a scratch project, then import every subpath
// from ES modules and from CommonJS and run jobs through the built code; lint the tarball with publint (strict) and
// Are The Types Wrong (default profile: node10, node16 and bundler resolution).
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const bin = (name: string) => join(root, 'node_modules', '.bin', name);
const run = promisify(execFile);

/** Peer dependencies the consumer uses, linked from this repository instead of downloaded again. */
const PEERS = ['express', 'fastify', 'koa', 'better-sqlite3', 'pg'];

const SUBPATHS = [
  'respond-async',
  'respond-async/express',
  'respond-async/fastify',
  'respond-async/koa',
  'respond-async/fetch',
  'respond-async/sqlite',
  'respond-async/postgres',
  'respond-async/client',
  'respond-async/testing',
];

/** Key exports of each subpath and what they must be. */
const KEY_EXPORTS: Record<string, Record<string, 'function' | 'class'>> = {
  'respond-async': {
    createJobs: 'function',
    Jobs: 'class',
    MemoryStore: 'class',
    JobError: 'class',
    InputError: 'class',
    UnrecoverableError: 'class',
    RespondAsyncError: 'class',
    QueueFullError: 'class',
    StoreUnavailableError: 'class',
    seeOther: 'function',
    isTerminal: 'function',
    isJobId: 'function',
  },
  'respond-async/express': { respondAsync: 'function' },
  'respond-async/fastify': { respondAsync: 'function' },
  'respond-async/koa': { respondAsync: 'function' },
  'respond-async/fetch': { respondAsync: 'function' },
  'respond-async/sqlite': { SqliteStore: 'class' },
  'respond-async/postgres': { PostgresStore: 'class' },
  'respond-async/client': {
    submit: 'function',
    waitFor: 'function',
    cancel: 'function',
    RespondAsyncClientError: 'class',
    JobFailedError: 'class',
    JobCanceledError: 'class',
    WaitTimeoutError: 'class',
  },
  'respond-async/testing': { describeStoreConformance: 'function' },
};

interface ConsumerOutput {
  exports: Record<string, Record<string, string>>;
  smoke: Record<string, any>;
}

const work = mkdtempSync(join(tmpdir(), 'respond-async-package-'));
const scratch = join(work, 'consumer');
let tarball = '';
let packedFiles: string[] = [];
let esm: ConsumerOutput;
let cjs: ConsumerOutput;

/** The environment of child processes: this one's, without anything vitest injected into NODE_OPTIONS. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

async function sh(file: string, args: string[], cwd: string, env = childEnv(), timeout = 120_000) {
  try {
    return await run(file, args, { cwd, env, timeout, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed (${e.code}): ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

function pgUrl(): string {
  try {
    return inject('pgUrl') || process.env.RESPOND_ASYNC_TEST_PG_URL || '';
  } catch {
    return process.env.RESPOND_ASYNC_TEST_PG_URL ?? '';
  }
}

beforeAll(async () => {
  await sh('npm', ['run', 'build'], root);
  const packDir = join(work, 'pack');
  mkdirSync(packDir);
  const { stdout } = await sh('npm', ['pack', '--json', '--pack-destination', packDir], root);
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  tarball = join(packDir, packed.filename);
  packedFiles = packed.files.map((file) => file.path);

  mkdirSync(scratch);
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  // The tarball and its own dependencies (from the npm cache); optional peers are linked from this repository.
  await sh(
    'npm',
    ['install', '--no-audit', '--no-fund', '--prefer-offline', '--omit=peer', '--ignore-scripts', tarball],
    scratch,
  );
  for (const peer of PEERS) symlinkSync(join(root, 'node_modules', peer), join(scratch, 'node_modules', peer), 'dir');
  cpSync(join(root, 'test', 'fixtures', 'package-smoke'), scratch, { recursive: true });

  const env = childEnv({ SMOKE_DIR: scratch, PG_URL: pgUrl() });
  const [esmRun, cjsRun] = await Promise.all([
    sh(process.execPath, ['consumer.mjs'], scratch, env, 60_000),
    sh(process.execPath, ['consumer.cjs'], scratch, env, 60_000),
  ]);
  esm = JSON.parse(esmRun.stdout);
  cjs = JSON.parse(cjsRun.stdout);
}, 240_000);

afterAll(() => rmSync(work, { recursive: true, force: true }));

describe('the packed package', () => {
  it('contains dist, the dashboard, README.md, CHANGELOG.md and package.json only, and every file that exports names', () => {
    expect(packedFiles).toContain('package.json');
    expect(packedFiles).toContain('README.md');
    expect(packedFiles).toContain('CHANGELOG.md');
    for (const file of ['index.html', 'app.js', 'app.css']) expect(packedFiles).toContain(`dashboard/${file}`);
    const stray = packedFiles.filter(
      (path) =>
        !path.startsWith('dist/') &&
        !path.startsWith('dashboard/') &&
        !/^(package\.json|README\.md|CHANGELOG\.md|LICENSE.*)$/.test(path),
    );
    expect(stray).toEqual([]);
    const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));
    const targets: string[] = [];
    const walk = (value: unknown) => {
      if (typeof value === 'string') targets.push(value.replace(/^\.\//, ''));
      else if (value && typeof value === 'object') Object.values(value).forEach(walk);
    };
    walk(pkg.exports);
    walk([pkg.main, pkg.module, pkg.types]);
    for (const target of targets) expect(packedFiles, target).toContain(target);
    // Every subpath of the design is exported.
    expect(Object.keys(pkg.exports).sort()).toEqual(
      ['.', ...SUBPATHS.slice(1).map((name) => `./${name.slice('respond-async/'.length)}`), './package.json'].sort(),
    );
  });

  it.each([
    ['ESM (import)', () => esm],
    ['CommonJS (require)', () => cjs],
  ] as const)('every subpath loads from %s with its key exports', (_name, output) => {
    const { exports } = output();
    expect(Object.keys(exports).sort()).toEqual([...SUBPATHS].sort());
    for (const [subpath, expected] of Object.entries(KEY_EXPORTS)) {
      expect(exports[subpath], subpath).toMatchObject(expected);
    }
  });

  it('ESM and CommonJS builds export the same names', () => {
    for (const subpath of SUBPATHS) {
      expect(Object.keys(cjs.exports[subpath]).sort(), subpath).toEqual(Object.keys(esm.exports[subpath]).sort());
    }
  });

  it('exports verifyWebhook for webhook receivers (DESIGN.md: "A verifyWebhook helper is exported")', () => {
    const everywhere = (output: ConsumerOutput) =>
      Object.entries(output.exports)
        .filter(([, names]) => names.verifyWebhook === 'function')
        .map(([subpath]) => subpath);
    expect(everywhere(esm), 'no subpath exports a verifyWebhook function').not.toEqual([]);
    expect(everywhere(cjs)).toEqual(everywhere(esm));
  });

  it('runs jobs through the built ESM code: Express + client, Koa with Prefer: wait, SQLite, PostgreSQL', () => {
    expect(esm.smoke.express).toEqual({
      status: 202,
      location: true,
      statusUrl: true,
      result: { echo: 'esm-express', attempt: 1 },
    });
    expect(esm.smoke.koa.status).toBe(200);
    expect(esm.smoke.koa.doc).toMatchObject({ status: 'complete', progress: 100, result: { echo: 'esm-koa' } });
    expect(esm.smoke.sqlite).toEqual({ status: 'complete', result: 5 });
    expect(esm.smoke.admin).toEqual({ page: 200, html: true, script: 200 });
    if (pgUrl()) expect(esm.smoke.postgres).toEqual({ status: 'complete', result: 5 });
  });

  it('runs jobs through the built CommonJS code: Fastify, the Fetch adapter, SQLite', () => {
    expect(cjs.smoke.fastify.status).toBe(200);
    expect(cjs.smoke.fastify.doc).toMatchObject({ status: 'complete', result: { echo: 'cjs-fastify' } });
    expect(cjs.smoke.fetch.status).toBe(202);
    expect(cjs.smoke.fetch.doc).toMatchObject({ status: 'complete', progress: 100, result: { echo: 'cjs-fetch' } });
    expect(cjs.smoke.sqlite).toEqual({ status: 'complete', result: 42 });
    expect(cjs.smoke.admin).toEqual({ style: 200, css: true });
  });

  it('publint --strict finds nothing', async () => {
    const { stdout, stderr } = await sh(bin('publint'), ['run', '--strict', tarball], work);
    expect(`${stdout}${stderr}`).toContain('All good');
  }, 60_000);

  it('Are The Types Wrong (default profile, node10 included) finds no problem in any entry point', async () => {
    let stdout = '';
    let code = 0;
    try {
      ({ stdout } = await run(bin('attw'), [tarball, '--format', 'json'], {
        cwd: work,
        env: childEnv(),
        maxBuffer: 64 * 1024 * 1024,
      }));
    } catch (error) {
      const e = error as { code?: number; stdout?: string };
      code = e.code ?? 1;
      stdout = e.stdout ?? '';
    }
    const result = JSON.parse(stdout) as {
      analysis: {
        entrypoints: Record<string, unknown>;
        problems: Array<{ kind: string; entrypoint?: string; resolutionKind?: string }>;
      };
    };
    // node10 (`"module": "commonjs"`) resolves the subpaths through package.json `typesVersions`.
    expect(result.analysis.problems).toEqual([]);
    expect(code).toBe(0);
    expect(Object.keys(result.analysis.entrypoints).sort()).toEqual(
      ['.', ...SUBPATHS.slice(1).map((name) => `./${name.slice('respond-async/'.length)}`), './package.json'].sort(),
    );
  }, 60_000);
});
