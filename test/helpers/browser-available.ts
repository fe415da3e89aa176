/**
 * Shared decision for every test suite that needs a real browser (Debian's `chromium`, driven by
 * playwright-core; `npx playwright install` cannot download browsers here).
 *
 * No /usr/bin/chromium (or $MCP_WARDEN_CHROMIUM) → with `CI` set the suite FAILS (a CI run must not go
 * green by silently skipping its browser tests); locally it is skipped with a loud notice on stderr.
 * Install one with `scripts/ensure-chromium.sh`.
 */
import { accessSync, constants as fsConstants } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';

export const CHROMIUM_PATH = process.env.MCP_WARDEN_CHROMIUM || '/usr/bin/chromium';

/**
 * Flags for headless Chromium on these machines: no sandbox (root), no GPU, and none of the background
 * networking that this machine's closed network refuses. playwright-core adds a fresh, empty
 * --user-data-dir of its own for every launch() (and removes it on close).
 */
export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export function chromiumMissing(): string | undefined {
  try {
    accessSync(CHROMIUM_PATH, fsConstants.X_OK);
    return undefined;
  } catch (err) {
    return `no executable ${CHROMIUM_PATH} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message}); run scripts/ensure-chromium.sh`;
  }
}

/**
 * For `describe(name, { skip: browserSuiteSkip(name) }, …)` together with `before(() => requireChromium())`:
 * false when chromium is there; otherwise locally a skip reason (after a loud notice), and in CI false
 * again, so the suite runs and `requireChromium()` fails every test with the reason.
 */
export function browserSuiteSkip(suite: string): false | string {
  const missing = chromiumMissing();
  if (!missing) return false;
  if (process.env.CI) {
    console.error(`\n*** BROWSER SUITE "${suite}" FAILS: CI is set and there is ${missing} ***\n`);
    return false;
  }
  console.error(`\n*** BROWSER SUITE SKIPPED: "${suite}": ${missing} ***\n`);
  return `BROWSER SUITE SKIPPED: ${missing}`;
}

/** In a browser suite's `before`: throws loudly when there is no chromium. */
export function requireChromium(): void {
  const missing = chromiumMissing();
  if (missing) throw new Error(`*** BROWSER REQUIRED${process.env.CI ? ' (CI is set)' : ''}: ${missing} ***`);
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM_PATH, args: CHROMIUM_ARGS, headless: true, timeout: 60_000 });
}

/** One page in a fresh browser (1280×800), its uncaught page errors collected; close() ends both. */
export interface BrowserPage {
  context: BrowserContext;
  page: Page;
  pageErrors: string[];
  close(): Promise<void>;
}

export async function openBrowserPage(defaultTimeoutMs: number): Promise<BrowserPage> {
  const browser = await launchChromium();
  try {
    const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
    const page = await context.newPage();
    page.setDefaultTimeout(defaultTimeoutMs);
    const pageErrors: string[] = [];
    page.on('pageerror', (err) => pageErrors.push(err.message));
    return {
      context,
      page,
      pageErrors,
      close: async () => {
        await context.close().catch(() => undefined);
        await browser.close().catch(() => undefined);
      },
    };
  } catch (err) {
    await browser.close().catch(() => undefined);
    throw err;
  }
}
