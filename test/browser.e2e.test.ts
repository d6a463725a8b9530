// The demo page of the Express example in headless Chromium: start a report and watch the bar reach 100 %, cancel one.
import { mkdir } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureChromium, launchChromium } from './helpers/chromium.js';
import { type ExampleProcess, startExample } from './helpers/example-process.js';

const ARTIFACTS = fileURLToPath(new URL('./artifacts/', import.meta.url));
const SCREENSHOT = `${ARTIFACTS}demo.png`;

let example: ExampleProcess | undefined;
let baseUrl = '';
let browser: Browser | undefined;
let page: Page;
const pageErrors: string[] = [];
const requests: string[] = [];

const progressValue = () => page.locator('#progress').evaluate((bar: HTMLProgressElement) => bar.value);

/** Record every value the progress bar takes from now on (setting `value` sets the attribute). */
async function recordProgress(): Promise<void> {
  await page.evaluate(() => {
    const bar = document.getElementById('progress') as HTMLProgressElement;
    const values: number[] = [];
    (window as unknown as { progressValues: number[] }).progressValues = values;
    new MutationObserver(() => values.push(bar.value)).observe(bar, { attributes: true, attributeFilter: ['value'] });
  });
}

const recordedProgress = () => page.evaluate(() => (window as unknown as { progressValues: number[] }).progressValues);

async function startReport(steps: number, stepMs: number): Promise<void> {
  await page.getByLabel('Steps').fill(String(steps));
  await page.getByLabel('Step duration (ms)').fill(String(stepMs));
  await page.getByRole('button', { name: 'Start report' }).click();
}

const rowStatuses = () => page.locator('#jobs tbody tr td:nth-child(2)').allTextContents();

describe('demo page in headless Chromium', () => {
  beforeAll(async () => {
    // apt-get may have to download chromium the first time: minutes, not seconds.
    [example] = await Promise.all([
      startExample('express', { WEBHOOK_SECRET: undefined }, { timeoutMs: 60_000 }),
      ensureChromium(),
      mkdir(ARTIFACTS, { recursive: true }),
    ]);
    baseUrl = example.url;
    browser = await launchChromium();
    const context = await browser.newContext({ viewport: { width: 900, height: 720 } });
    page = await context.newPage();
    page.setDefaultTimeout(20_000);
    page.on('request', (request) => requests.push(request.url()));
    page.on('pageerror', (error) => pageErrors.push(`pageerror: ${error.message}`));
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(`console: ${message.text()} (${message.location().url})`);
    });
    await page.goto(baseUrl);
    await page.getByText('No jobs yet.').waitFor();
  }, 10 * 60_000);

  afterAll(async () => {
    await browser?.close();
    await example?.kill('SIGTERM');
  }, 30_000);

  it('starts a report, shows the bar moving to 100 % from SSE progress, then the result', async () => {
    await recordProgress();
    await startReport(10, 150);

    await expect.poll(progressValue, { timeout: 15_000, interval: 50 }).toBe(100);
    await page.locator('#result-json').waitFor({ state: 'visible' });
    expect(JSON.parse((await page.locator('#result-json').textContent()) ?? '')).toEqual({ steps: 10 });
    expect(await page.locator('#status').textContent()).toBe('complete');
    expect(await page.locator('#percent').textContent()).toBe('100 %');
    expect(await page.locator('#error').isHidden()).toBe(true);
    expect(await page.getByRole('button', { name: 'Cancel' }).isDisabled()).toBe(true);

    // The bar moved step by step, never back: fed by the event stream, not by one late poll.
    const values = await recordedProgress();
    expect(values.at(-1)).toBe(100);
    for (let i = 1; i < values.length; i++) expect(values[i]).toBeGreaterThanOrEqual(values[i - 1]);
    const between = new Set(values.filter((value) => value > 0 && value < 100));
    expect(between.size).toBeGreaterThanOrEqual(5);
    expect(requests.some((url) => /\/jobs\/[^/]+\/events$/.test(url))).toBe(true);

    await expect.poll(rowStatuses).toEqual(['complete']);
  });

  it('cancels a running report', async () => {
    await startReport(100, 80);
    await expect.poll(progressValue, { timeout: 15_000, interval: 50 }).toBeGreaterThanOrEqual(30);
    // The README's picture: a report on its way, and the one before it done.
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    await page.getByRole('button', { name: 'Cancel' }).click();
    await expect.poll(() => page.locator('#status').textContent(), { timeout: 10_000 }).toBe('canceled');
    expect(await progressValue()).toBeLessThan(100);
    expect(await page.locator('#result').isHidden()).toBe(true);
    expect(await page.locator('#error').isHidden()).toBe(true);
    expect(await page.getByRole('button', { name: 'Cancel' }).isDisabled()).toBe(true);
  });

  it('shows the error of a failed report', async () => {
    await page.getByLabel('Fail').check();
    await startReport(3, 50);
    await expect.poll(() => page.locator('#status').textContent(), { timeout: 10_000 }).toBe('failed');
    expect(await page.getByRole('alert').textContent()).toBe('report failed');
    expect(await page.locator('#result').isHidden()).toBe(true);
    await page.getByLabel('Fail').uncheck();
  });

  it("lists the user's recent jobs, and nobody else's", async () => {
    await expect.poll(rowStatuses).toEqual(['failed', 'canceled', 'complete']);
    const res = await fetch(`${baseUrl}/jobs`, { headers: { 'x-user': 'demo' } });
    const { jobs } = (await res.json()) as { jobs: Array<{ jobId: string; status: string }> };
    const rowIds = await page
      .locator('#jobs tbody tr')
      .evaluateAll((rows) => rows.map((row) => (row as HTMLElement).dataset.jobId));
    expect(rowIds).toEqual(jobs.map((job) => job.jobId));

    await page.getByLabel('User').fill('someone-else');
    await page.getByLabel('User').press('Tab');
    await expect.poll(() => page.locator('#jobs-user').textContent()).toBe('someone-else');
    expect(await rowStatuses()).toEqual([]);
    expect(await page.getByText('No jobs yet.').isVisible()).toBe(true);
  });

  it('stayed on loopback and raised no errors in the page', () => {
    expect(requests.length).toBeGreaterThan(0);
    expect(requests.filter((url) => !url.startsWith(`${baseUrl}/`))).toEqual([]);
    expect(pageErrors).toEqual([]);
  });
});
