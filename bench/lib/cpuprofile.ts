// Summarise a V8 .cpuprofile (from `node --cpu-prof`): self and inclusive time per function, and time per
// package (respond-async's src/, each node_modules package, Node internals, GC).

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
}
interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}
export interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

export interface FunctionTime {
  key: string;
  selfMs: number;
  totalMs: number;
}

export interface ProfileSummary {
  /** Sampled time, idle excluded, in ms. */
  busyMs: number;
  idleMs: number;
  functions: FunctionTime[];
  packages: Array<{ name: string; selfMs: number }>;
}

function where(frame: CallFrame): string {
  const url = frame.url.replace(/^file:\/\//, '');
  const src = url.indexOf('/src/');
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) return url.slice(modules + '/node_modules/'.length);
  if (src !== -1) return url.slice(src + 1);
  if (url.startsWith('node:')) return url;
  const bench = url.indexOf('/bench/');
  if (bench !== -1) return url.slice(bench + 1);
  return url;
}

function packageOf(frame: CallFrame): string {
  const url = frame.url;
  if (frame.functionName === '(garbage collector)') return '(garbage collector)';
  if (frame.functionName === '(program)') return '(program: native, compiler)';
  if (url === '') return '(native / builtins)';
  const modules = url.lastIndexOf('/node_modules/');
  if (modules !== -1) {
    const rest = url.slice(modules + '/node_modules/'.length).split('/');
    return rest[0].startsWith('@') ? `${rest[0]}/${rest[1]}` : rest[0];
  }
  if (url.includes('/src/')) return 'respond-async (src/)';
  if (url.includes('/bench/')) return 'bench harness';
  if (url.startsWith('node:')) return 'node: internals';
  return url;
}

function keyOf(frame: CallFrame): string {
  return `${frame.functionName || '(anonymous)'} ${where(frame)}:${frame.lineNumber + 1}`;
}

export function summarise(profile: CpuProfile): ProfileSummary {
  const byId = new Map<number, ProfileNode>();
  const parent = new Map<number, number>();
  for (const node of profile.nodes) {
    byId.set(node.id, node);
    for (const child of node.children ?? []) parent.set(child, node.id);
  }
  const self = new Map<string, number>();
  const total = new Map<string, number>();
  const packages = new Map<string, number>();
  let idleMs = 0;
  let busyMs = 0;
  for (let i = 0; i < profile.samples.length; i++) {
    const dt = (profile.timeDeltas[i + 1] ?? profile.timeDeltas[i] ?? 0) / 1000;
    const node = byId.get(profile.samples[i]);
    if (!node) continue;
    if (node.callFrame.functionName === '(idle)') {
      idleMs += dt;
      continue;
    }
    busyMs += dt;
    const key = keyOf(node.callFrame);
    self.set(key, (self.get(key) ?? 0) + dt);
    const pkg = packageOf(node.callFrame);
    packages.set(pkg, (packages.get(pkg) ?? 0) + dt);
    const seen = new Set<string>();
    for (let id: number | undefined = node.id; id !== undefined; id = parent.get(id)) {
      const frame = byId.get(id)?.callFrame;
      if (!frame || frame.functionName === '(root)') continue;
      const k = keyOf(frame);
      if (seen.has(k)) continue;
      seen.add(k);
      total.set(k, (total.get(k) ?? 0) + dt);
    }
  }
  const functions = [...total.entries()].map(([key, totalMs]) => ({ key, totalMs, selfMs: self.get(key) ?? 0 }));
  return {
    busyMs,
    idleMs,
    functions,
    packages: [...packages.entries()].map(([name, selfMs]) => ({ name, selfMs })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

/** A plain-text report: packages by self time, then the top functions by self and by inclusive time. */
export function report(summary: ProfileSummary, options: { top?: number; filter?: RegExp } = {}): string {
  const top = options.top ?? 25;
  const pct = (value: number) => `${((100 * value) / summary.busyMs).toFixed(1).padStart(5)} %`;
  const lines: string[] = [];
  lines.push(`busy ${summary.busyMs.toFixed(0)} ms, idle ${summary.idleMs.toFixed(0)} ms`);
  lines.push('', 'self time by package:');
  for (const p of summary.packages.slice(0, 15)) lines.push(`  ${pct(p.selfMs)}  ${p.name}`);
  lines.push('', 'top functions by self time:');
  for (const f of [...summary.functions].sort((a, b) => b.selfMs - a.selfMs).slice(0, top)) {
    lines.push(`  ${pct(f.selfMs)} self ${pct(f.totalMs)} total  ${f.key}`);
  }
  const filter = options.filter ?? /src\//;
  lines.push('', `top ${filter.source} functions by inclusive time:`);
  for (const f of summary.functions
    .filter((fn) => filter.test(fn.key))
    .sort((a, b) => b.totalMs - a.totalMs)
    .slice(0, top)) {
    lines.push(`  ${pct(f.totalMs)} total ${pct(f.selfMs)} self  ${f.key}`);
  }
  return lines.join('\n');
}
