// The operator dashboard in headless Chromium, mounted on Express behind HTTP Basic auth: overview counts match the
// store, failed jobs are retried and a running one canceled from the page with rows updating live (no reload),
// hostile job data renders as text, and screenshots of the overview and a job go to docs/.
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import express from 'express';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { respondAsync } from '../src/express.js';
import { createJobs, JobError, type Jobs, MemoryStore } from '../src/index.js';
import { ensureChromium, launchChromium } from './helpers/chromium.js';

const DOCS = fileURLToPath(new URL('../docs/', import.meta.url));
const TOKEN = 'correct horse battery staple';
const HOSTILE = '<img src=x onerror=window.__xss=1>';

let jobs: Jobs;
let server: import('node:http').Server;
let baseUrl = '';
let browser: Browser | undefined;
let page: Page;
let healthy = false;
const pageErrors: string[] = [];

const until = async (probe: () => Promise<boolean>, timeoutMs = 10_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

const statusOf = async (id: string) => (await jobs.get(id))?.status;

describe('operator dashboard in headless Chromium', () => {
  const ids = { failed: [] as string[], slow: '', hostile: '' };

  beforeAll(async () => {
    await ensureChromium();
    jobs = createJobs({ store: new MemoryStore(), pollIntervalMs: 50, logger: { error: () => {}, warn: () => {} } });
    jobs.define('report', async (input: { ms?: number }) => {
      await new Promise((resolve) => setTimeout(resolve, input.ms ?? 5));
      return { rows: 42 };
    });
    jobs.define(
      'invoice',
      async () => {
        if (!healthy) throw new Error('upstream 502 from billing.internal');
        return { sent: true };
      },
      { attempts: 2, backoff: () => 10 },
    );
    jobs.define(
      'export',
      (_input, ctx) =>
        new Promise((_resolve, reject) => ctx.signal.addEventListener('abort', () => reject(new JobError('stopped')))),
    );
    const app = express();
    const ra = respondAsync(jobs);
    const expected = `Basic ${Buffer.from(`admin:${TOKEN}`).toString('base64')}`;
    app.use(
      '/admin',
      ra.admin({
        authorize: (req) => (req.get('authorization') === expected ? true : 401),
        wwwAuthenticate: 'Basic realm="respond-async"',
        windowMs: 30_000,
        buckets: 30,
      }),
    );
    server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

    // Some history for the sparklines: reports finishing over a few seconds, invoices failing.
    for (let round = 0; round < 8; round++) {
      for (let i = 0; i <= round % 4; i++) await jobs.submit('report', { ms: 5 * i }, { owner: `team-${i}` });
      if (round % 3 === 1)
        ids.failed.push((await jobs.submit('invoice', { customer: round }, { owner: 'billing' })).job.id);
      await new Promise((resolve) => setTimeout(resolve, 500));
    }
    ids.slow = (await jobs.submit('export', { format: 'csv' }, { owner: 'team-1' })).job.id;
    ids.hostile = (await jobs.submit('report', { title: HOSTILE, ms: 5 }, { owner: HOSTILE })).job.id;
    await until(async () => {
      const states = await Promise.all([...ids.failed.map(statusOf), statusOf(ids.slow), statusOf(ids.hostile)]);
      return states.every((s, i) => (i < ids.failed.length ? s === 'failed' : s === 'processing' || s === 'complete'));
    });

    browser = await launchChromium();
    const context = await browser.newContext({
      viewport: { width: 1200, height: 900 },
      httpCredentials: { username: 'admin', password: TOKEN },
    });
    page = await context.newPage();
    page.setDefaultTimeout(15_000);
    page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(`console: ${message.text()}`);
    });
    page.on('dialog', (dialog) => void dialog.accept());
    await page.goto(`${baseUrl}/admin`);
    await page.locator('#live[data-state="live"]').waitFor();
    await page.locator('#counts tbody tr[data-name="report"]').waitFor();
  }, 10 * 60_000);

  afterAll(async () => {
    await browser?.close();
    server?.closeAllConnections();
    await new Promise((resolve) => server?.close(resolve));
    await jobs?.close({ timeoutMs: 1000 });
  }, 30_000);

  it('refuses the page without credentials (401 with the Basic challenge)', async () => {
    const response = await fetch(`${baseUrl}/admin/`);
    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe('Basic realm="respond-async"');
  });

  it('shows overview counts per job name and status that match the store, with sparklines', async () => {
    const counts = await jobs.store.countJobs!();
    for (const { name, status, count } of counts) {
      const cell = page.locator(`#counts tr[data-name="${name}"] td[data-status="${status}"]`);
      await expect.poll(() => cell.textContent()).toBe(String(count));
    }
    expect(await page.locator('#counts tr[data-name="report"] svg.spark.throughput polyline').count()).toBe(1);
    expect(await page.locator('#counts tr[data-name="invoice"] svg.spark.failures').count()).toBe(1);
    expect(await page.locator('#timings').textContent()).toMatch(/Run time p50/);
    await page.screenshot({ path: `${DOCS}dashboard-overview.png`, fullPage: true });
  });

  it('renders hostile job data as text, never as markup', async () => {
    const row = page.locator(`#jobs tr[data-id="${ids.hostile}"]`);
    await expect.poll(() => row.locator('td:nth-child(4)').textContent()).toBe(HOSTILE);
    await row.click();
    await expect.poll(() => page.locator('#input').textContent()).toContain(HOSTILE);
    expect(await page.locator('#detail img, #jobs img').count()).toBe(0);
    expect(await page.evaluate(() => (window as unknown as { __xss?: number }).__xss)).toBeUndefined();
    await page.locator('#back').click();
  });

  it('filters to failed jobs, retries one from its page, and the row updates without a reload', async () => {
    await page.evaluate(() => {
      (window as unknown as { __sameDocument: boolean }).__sameDocument = true;
    });
    await page.locator('#filters select[name="status"]').selectOption('failed');
    await page.locator('#filters button[type="submit"]').click();
    const rows = page.locator('#jobs tbody tr[data-id]');
    await expect.poll(() => rows.count()).toBe(ids.failed.length);
    expect(new Set(await rows.evaluateAll((all) => all.map((row) => row.getAttribute('data-status'))))).toEqual(
      new Set(['failed']),
    );
    // A failed job in full: the attempts with the server-side error the client never saw.
    const [target, viewed] = ids.failed;
    await page.locator(`#jobs tr[data-id="${viewed}"]`).click();
    await expect.poll(() => page.locator('#attempts tbody tr').count()).toBe(2);
    expect(await page.locator('#attempts tbody').textContent()).toContain('upstream 502 from billing.internal');
    await page.screenshot({ path: `${DOCS}dashboard-job.png`, fullPage: true });
    await page.locator('#back').click();

    // Retry from the row: the same row moves on to complete, fed by the live feed.
    healthy = true;
    const row = page.locator(`#jobs tr[data-id="${target}"]`);
    await row.locator('button[data-action="retry"]').click();
    await until(async () => (await statusOf(target)) === 'complete');
    await expect.poll(() => row.getAttribute('data-status')).toBe('complete');
    expect(await row.locator('button').count()).toBe(0);
    expect(await page.locator('#detail').isHidden()).toBe(true); // the click did not open the job
    expect(await page.evaluate(() => (window as unknown as { __sameDocument?: boolean }).__sameDocument)).toBe(true);

    // And from the job's page.
    await page.locator(`#jobs tr[data-id="${viewed}"]`).click();
    await page.locator('#actions button[data-action="retry"]').click();
    await until(async () => (await statusOf(viewed)) === 'complete');
    await expect.poll(() => page.locator('#fields').getAttribute('data-status')).toBe('complete');
    await page.locator('#back').click();
    await expect.poll(() => page.locator(`#jobs tr[data-id="${viewed}"]`).getAttribute('data-status')).toBe('complete');
  });

  it('cancels a running job from the page', async () => {
    await page.evaluate((id) => {
      location.hash = `job=${id}`;
    }, ids.slow);
    await expect.poll(() => page.locator('#fields').getAttribute('data-status')).toBe('processing');
    await page.locator('#actions button[data-action="cancel"]').click();
    await until(async () => (await statusOf(ids.slow)) === 'canceled');
    await expect.poll(() => page.locator('#fields').getAttribute('data-status')).toBe('canceled');
    expect(await page.locator('#actions button[data-action="retry"]').isEnabled()).toBe(true);
  });

  it('ran without script errors or CSP violations', () => {
    expect(pageErrors).toEqual([]);
  });
});
