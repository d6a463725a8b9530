// What the benchmark measures is respond-async as users run it: JavaScript built from the sources, not the
// TypeScript sources through tsx (tsx keeps function names by wrapping every function it creates in a
// `__name()` call, a property definition per closure that the published package does not make). A tree (src/
// or a patched copy of it) is bundled with esbuild, as tsup builds the package, into .bench-build/.
import { createHash } from 'node:crypto';
import { join, relative, resolve } from 'node:path';
import { build } from 'esbuild';
import { ROOT_DIR } from './child.js';

const ENTRIES = ['index', 'express', 'fastify', 'koa', 'sqlite', 'postgres'];

/** Build the tree at `src` (relative to the repository or absolute); returns the directory of the built files. */
export async function buildTree(src = 'src'): Promise<string> {
  const dir = resolve(ROOT_DIR, src);
  const name = createHash('sha256').update(dir).digest('hex').slice(0, 12);
  const outdir = join(ROOT_DIR, '.bench-build', name);
  await build({
    entryPoints: ENTRIES.map((entry) => join(dir, `${entry}.ts`)),
    outdir,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    logLevel: 'warning',
  });
  return relative(ROOT_DIR, outdir);
}

/**
 * Where the benchmark's children load respond-async from: the tree (default src/) built, or with BENCH_TS=1 the
 * tree itself, through tsx.
 */
export async function libraryDir(tree = 'src'): Promise<string> {
  return process.env.BENCH_TS === '1' ? tree : buildTree(tree);
}
