// CPU profiles of the benchmark's hot paths, to find what to optimise (`node --cpu-prof`).
//
//   npx tsx bench/profile.ts accept <express|fastify|koa> <bare|memory|sqlite|postgres>
//       profiles the server process while autocannon loads it (BENCH_DURATION s, default 5)
//   npx tsx bench/profile.ts queue <respond-async:postgres|graphile-worker|pg-boss:batch> [phases]
//       profiles the queue process (phases: submit,drain,e2e — default drain, which includes submit)
//   npx tsx bench/profile.ts latency <kind>
//       profiles the one-process latency run
//   npx tsx bench/profile.ts show <file.cpuprofile> [filter regexp]
//
// Prints the time per package and the top functions, and leaves the .cpuprofile files (open them in Chrome
// DevTools or speedscope) in a temporary directory it names.
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { libraryDir } from './lib/build.js';
import { Child, runChild } from './lib/child.js';
import { type CpuProfile, report, summarise } from './lib/cpuprofile.js';
import { dropSchemas, startPostgres } from './lib/pg.js';

const [what, ...args] = process.argv.slice(2);
const duration = Number(process.env.BENCH_DURATION ?? 5);

function show(file: string, filter?: RegExp): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  console.log(`\n== ${file}`);
  console.log(report(summarise(profile), { filter }));
}

function profiles(dir: string): string[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.cpuprofile'))
    .map((f) => join(dir, f));
}

async function main(): Promise<void> {
  if (what === 'show') {
    show(args[0], args[1] ? new RegExp(args[1]) : undefined);
    return;
  }
  process.env.BENCH_SRC = await libraryDir(process.env.BENCH_SRC);
  const dir = mkdtempSync(join(tmpdir(), 'respond-async-profile-'));
  const nodeArgs = ['--cpu-prof', '--cpu-prof-dir', dir];
  const db = what === 'accept' && args[1] !== 'postgres' ? undefined : await startPostgres();
  try {
    if (what === 'accept') {
      const [framework, contender] = args;
      const env: Record<string, string> = { BENCH_SQLITE_PATH: join(dir, 'accept.sqlite') };
      if (db) Object.assign(env, { BENCH_PG_URL: db.url, BENCH_PG_SCHEMA: 'bench_profile' });
      const server = new Child('children/accept-server.ts', [framework, contender], { env, nodeArgs });
      const { port } = await server.next<{ port: number }>('ready');
      const load = await runChild('children/load.ts', [
        `http://127.0.0.1:${port}/reports`,
        '50',
        String(duration),
        '1',
      ]);
      console.log('load:', JSON.stringify(load));
      await server.stop();
    } else if (what === 'queue') {
      const [kind, phases = 'submit,drain'] = args;
      const result = await runChild('children/queue.ts', [kind], {
        nodeArgs,
        env: { BENCH_PG_URL: db?.url ?? '', BENCH_SCHEMA: 'bench_profile', BENCH_PHASES: phases },
      });
      console.log('result:', JSON.stringify(result));
    } else if (what === 'latency') {
      const [kind] = args;
      const result = await runChild<{ latencies: number[] }>('children/latency.ts', ['inproc', kind], {
        nodeArgs,
        env: {
          BENCH_PG_URL: db?.url ?? '',
          BENCH_SCHEMA: 'bench_profile',
          BENCH_SQLITE_PATH: join(dir, 'latency.sqlite'),
          BENCH_SAMPLES: '1000',
        },
      });
      console.log('samples:', result.latencies.length);
    } else {
      throw new Error('usage: profile.ts accept|queue|latency|show …');
    }
    for (const file of profiles(dir)) show(file);
    console.log(`\nprofiles in ${dir}`);
  } finally {
    if (db) {
      await dropSchemas(db, 'bench_profile');
      await db.stop();
    }
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
