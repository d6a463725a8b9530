// Headless Chromium for browser tests: Debian's `chromium` package (installed on demand), driven by playwright-core.
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { type Browser, chromium } from 'playwright-core';

/** Where Debian's package puts the browser. (`npx playwright install` cannot download browsers here.) */
export const CHROMIUM_PATH = '/usr/bin/chromium';

const ENSURE_SCRIPT = fileURLToPath(new URL('../../scripts/ensure-chromium.sh', import.meta.url));

/** Install Debian's chromium with apt-get unless it is already there. Can take minutes the first time. */
export async function ensureChromium(): Promise<void> {
  try {
    await promisify(execFile)('bash', [ENSURE_SCRIPT], { timeout: 9 * 60_000, maxBuffer: 16 * 1024 * 1024 });
  } catch (error) {
    const { stderr } = error as { stderr?: string };
    throw new Error(`scripts/ensure-chromium.sh failed: ${stderr?.trim() || String(error)}`, { cause: error });
  }
}

/** Launch headless Chromium with nothing that talks to the network on its own. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM_PATH,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--no-first-run',
    ],
  });
}
