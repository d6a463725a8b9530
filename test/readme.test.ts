// Every `ts` block of README.md type-checks against the package as published (its subpaths mapped to src/), in
// strict mode: a block that uses `jobs` or `report` without declaring them runs after the Quick start block,
// as the README reads.
import { execFile } from 'node:child_process';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { expect, it } from 'vitest';

const root = join(import.meta.dirname, '..');
const dir = join(root, '.tmp', 'readme');

function blocks(markdown: string): Array<{ line: number; code: string }> {
  const found: Array<{ line: number; code: string }> = [];
  const fence = /^```ts\n([\s\S]*?)^```$/gm;
  for (let match = fence.exec(markdown); match; match = fence.exec(markdown)) {
    found.push({ line: markdown.slice(0, match.index).split('\n').length, code: match[1] });
  }
  return found;
}

it('type-checks every TypeScript block of README.md', async () => {
  const all = blocks(readFileSync(join(root, 'README.md'), 'utf8'));
  const quickStart = all.find((b) => b.code.includes("jobs.define('report'"));
  expect(quickStart, 'the Quick start block defines the report job').toBeDefined();
  expect(all.length).toBeGreaterThanOrEqual(8);

  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }));
  writeFileSync(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        noEmit: true,
        skipLibCheck: true,
        types: ['node'],
        paths: {
          'respond-async': ['../../src/index.ts'],
          'respond-async/*': ['../../src/*.ts'],
        },
      },
      include: ['*.ts'],
    }),
  );
  const files: string[] = [];
  for (const block of all) {
    const usesQuickStart =
      block !== quickStart && /\b(jobs|report)\b/.test(block.code) && !/const jobs\b/.test(block.code);
    const file = `readme-line-${block.line}.ts`;
    const header = `// README.md line ${block.line}\n`;
    writeFileSync(join(dir, file), header + (usesQuickStart ? `${quickStart!.code}\n` : '') + block.code);
    files.push(file);
  }

  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', dir], { cwd: dir }).catch(
    (error: { stdout?: string; stderr?: string }) => error,
  );
  expect(`${result.stdout ?? ''}${result.stderr ?? ''}`.trim(), files.join(', ')).toBe('');
}, 60_000);
