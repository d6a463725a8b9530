// Print one plain closing line, `N passed, N failed, N skipped`, from vitest's JSON report files.
import { existsSync, readFileSync } from 'node:fs';

let passed = 0;
let failed = 0;
let skipped = 0;
let postgresPassed = 0;
let postgresTotal = 0;
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) {
    console.log(`no test report at ${file}`);
    failed += 1;
    continue;
  }
  const report = JSON.parse(readFileSync(file, 'utf8'));
  passed += report.numPassedTests ?? 0;
  failed += (report.numFailedTests ?? 0) + (report.numRuntimeErrorTestSuites ?? 0);
  skipped += (report.numPendingTests ?? 0) + (report.numTodoTests ?? 0);
  // Tests that talk to the real PostgreSQL server: their file or their title names it.
  for (const file of report.testResults ?? []) {
    for (const test of file.assertionResults ?? []) {
      if (!/postgres/i.test(`${file.name} ${test.fullName}`)) continue;
      postgresTotal += 1;
      if (test.status === 'passed') postgresPassed += 1;
    }
  }
}
console.log(`PostgreSQL tests (real server): ${postgresPassed} passed of ${postgresTotal}`);
console.log(`${passed} passed, ${failed} failed, ${skipped} skipped`);
if (failed > 0) process.exitCode = 1;
