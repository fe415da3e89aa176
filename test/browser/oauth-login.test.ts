/**
 * The visualizer's OAuth "Log in…" in a real browser (Debian chromium via playwright-core) against a
 * real daemon and a real OAuth-protected remote server (the SDK's own example, test/helpers/
 * oauth-example.ts): the server waits in starting.needsAuth; its detail panel has "Log in…"; clicking it
 * opens a tab, which the page points at the authorization URL the daemon returns (auth.login over
 * the control channel); the authorization server approves and redirects the tab to the daemon's
 * /oauth/callback, which answers "Logged in to r"; the card turns running and the tools are served.
 *
 * Without /usr/bin/chromium the suite is skipped loudly, or fails when CI is set
 * (test/helpers/browser-available.ts).
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { Page } from 'playwright-core';
import { browserSuiteSkip, openBrowserPage, requireChromium, type BrowserPage } from '../helpers/browser-available.js';
import { startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import { freePort, startOAuthExample, stopOAuthExample } from '../helpers/oauth-example.js';

const UI_TIMEOUT = 20_000;

describe('visualizer: OAuth log in from the page', { skip: browserSuiteSkip('visualizer OAuth log in') }, () => {
  let example: ChildProcess | undefined;
  let t: TestDaemon | undefined;
  let ui: BrowserPage | undefined;
  let page!: Page;

  before(async () => {
    requireChromium();
    const mcpPort = await freePort();
    const authPort = await freePort();
    example = await startOAuthExample(mcpPort, authPort);
    t = await startTestDaemon({ r: { type: 'http', url: `http://localhost:${mcpPort}/mcp` } }, { remotePingIntervalMs: 300 });
    ui = await openBrowserPage(UI_TIMEOUT);
    page = ui.page;
  });

  after(async () => {
    await ui?.close();
    await t?.close();
    if (example) await stopOAuthExample(example);
  });

  it(
    '"Log in…" opens the authorization page in a tab; its redirect logs the server in and the card turns running',
    { timeout: 90_000 },
    async () => {
      await t!.waitForState('r', 'starting.needsAuth');
      const token = (await readFile(join(t!.dataDir, 'token'), 'utf8')).trim();
      await page.goto(`${t!.daemon.url}/#token=${token}`);
      const card = page.locator('.server[data-server="r"]');
      await card.and(page.locator('[data-state="starting.needsAuth"]')).waitFor();
      // The actions are in the detail panel of the selected server.
      await card.locator('.server-select').click();
      const button = page.locator('#detail button[data-action="login"]');
      await button.waitFor();
      assert.equal((await button.innerText()).trim(), 'Log in…');

      const popup = ui!.context.waitForEvent('page');
      await button.click();
      const tab = await popup;
      // about:blank first (opened inside the click, past popup blockers), then the authorization URL,
      // whose redirect lands on the daemon's callback.
      await tab.waitForURL((u) => u.href.startsWith(`${t!.daemon.url}/oauth/callback`), { timeout: UI_TIMEOUT });
      await tab.getByText('Logged in to r').waitFor({ timeout: UI_TIMEOUT });

      await card.and(page.locator('[data-state="running"]')).waitFor();
      assert.equal(await page.locator('#detail button[data-action="login"]').count(), 0, 'no Log in button once running');
      const { client } = await t!.connect();
      const tools = (await client.listTools()).tools.map((x) => x.name);
      assert.ok(tools.includes('r__greet'), tools.join(', '));
      assert.deepEqual(ui!.pageErrors, []);
    },
  );
});
