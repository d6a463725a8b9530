// Build once, `npm pack`, and install the tarball into a scratch project, as a user's `npm install` would; the
// frameworks and middleware the project uses are linked from this repository's node_modules, not downloaded.
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

const root = join(import.meta.dirname, '..', '..');
const run = promisify(execFile);

/** The environment of child processes: this one's, without anything vitest injected into NODE_OPTIONS. */
export function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_OPTIONS;
  return env;
}

/** Run a program, throwing its output along with the error when it fails. */
export async function sh(file: string, args: string[], cwd: string, env = childEnv(), timeout = 120_000) {
  try {
    return await run(file, args, { cwd, env, timeout, maxBuffer: 64 * 1024 * 1024 });
  } catch (error) {
    const e = error as { code?: unknown; stdout?: string; stderr?: string; message: string };
    throw new Error(`${file} ${args.join(' ')} failed (${e.code}): ${e.message}\n${e.stdout ?? ''}\n${e.stderr ?? ''}`);
  }
}

/**
 * Build with tsup, pack, and install the tarball into a new scratch project (an ES module package) under a temp
 * directory; `links` are packages linked from this repository (`express`, `@koa/router`, …). Returns the project's
 * directory and the temp directory holding it (remove it when done).
 */
export async function installPackedTarball(links: string[]): Promise<{ project: string; work: string }> {
  const work = mkdtempSync(join(tmpdir(), 'respond-async-packed-'));
  await sh(join(root, 'node_modules', '.bin', 'tsup'), [], root);
  const packDir = join(work, 'pack');
  mkdirSync(packDir);
  const { stdout } = await sh('npm', ['pack', '--json', '--pack-destination', packDir], root);
  const [packed] = JSON.parse(stdout) as Array<{ filename: string }>;
  const project = join(work, 'project');
  mkdirSync(project);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await sh(
    'npm',
    [
      'install',
      '--no-audit',
      '--no-fund',
      '--prefer-offline',
      '--omit=peer',
      '--ignore-scripts',
      join(packDir, packed.filename),
    ],
    project,
  );
  for (const name of links) {
    const target = join(project, 'node_modules', name);
    mkdirSync(dirname(target), { recursive: true });
    symlinkSync(join(root, 'node_modules', name), target, 'dir');
  }
  return { project, work };
}
