// The report a benchmark writes: lines printed as they come and kept for the results file, progress on stderr, the
// targets table and the closing line with the load average.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import { dirname } from 'node:path';
import { table } from './stats.js';

export interface Target {
  name: string;
  /** undefined: not measured in this run. */
  met: boolean | undefined;
  figures: string;
}

/** Hand-written sections after this marker survive a rewrite of the generated tables above it. */
const KEPT_FROM = '\n<!-- Written by hand below: npm run bench keeps everything from here on. -->\n';

export class Report {
  readonly #lines: string[] = [];
  readonly #started = Date.now();
  readonly targets: Target[] = [];

  /** A line of the report (printed now, written at the end). */
  emit = (text = ''): void => {
    this.#lines.push(text);
    console.log(text);
  };

  /** A progress line, on stderr only. */
  progress = (text: string): void => {
    process.stderr.write(`  · ${text}\n`);
  };

  /** The targets table under `heading`, then the total time and the load average. */
  closing(heading: string): void {
    this.emit(heading);
    this.emit();
    const result = (t: Target) => (t.met === undefined ? 'n/a' : t.met ? 'met' : '**missed**');
    this.emit(
      table(
        ['target', 'result', 'figures'],
        this.targets.map((t) => [t.name, result(t), t.figures]),
        true,
      ),
    );
    this.emit();
    this.emit(`Total time ${((Date.now() - this.#started) / 1000).toFixed(0)} s; load average at the end ${uptime()}.`);
  }

  /** Write the report to `path`, keeping the hand-written sections of the file there (after the marker). */
  write(path: string): void {
    const generated = `${this.#lines.join('\n')}\n`;
    const previous = existsSync(path) ? readFileSync(path, 'utf8') : '';
    const at = previous.indexOf(KEPT_FROM);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, at === -1 ? generated : generated + previous.slice(at));
    process.stderr.write(`\nwrote ${path}\n`);
  }
}

/** The load averages over 1, 5 and 15 minutes. */
export function uptime(): string {
  return loadavg()
    .map((n) => n.toFixed(2))
    .join(', ');
}
