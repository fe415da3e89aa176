/**
 * The visualizer's calls panel in a real browser (Debian chromium via playwright-core) against a real
 * daemon (in-process, port 0) with two real upstreams: a call made before the page opened is listed
 * (calls.list on connect), calls made while it is open appear live (`calls` events), the filter and
 * the outcome selector narrow the list, and the per-server table shows the call count, the error
 * rate and the latency.
 */
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import type { Page } from 'playwright-core';
import { join } from 'node:path';
import { browserSuiteSkip, openBrowserPage, requireChromium, type BrowserPage } from '../helpers/browser-available.js';
import { NODE, demoServer, fixture, startTestDaemon, type TestDaemon } from '../helpers/test-daemon.js';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';

const UI_TIMEOUT = 20_000;

describe('visualizer calls panel in a real browser', { skip: browserSuiteSkip('calls panel') }, () => {
  let td: TestDaemon | undefined;
  let ui: BrowserPage | undefined;
  let page!: Page;
  let client!: Client;

  before(async () => {
    requireChromium();
    td = await startTestDaemon(
      {
        demo: { command: NODE, args: [demoServer] },
        fx: { command: NODE, args: [fixture('echo-server')], env: { FIXTURE_FAIL_TOOL: '1' } },
      },
      { callLogFlushMs: 100 },
    );
    await td.waitForState('demo', 'running');
    await td.waitForState('fx', 'running');
    client = (await td.connect()).client;
    ui = await openBrowserPage(UI_TIMEOUT);
    page = ui.page;
  });

  after(async () => {
    await ui?.close();
    await td?.close();
  });

  it(
    'lists earlier calls, shows new ones live, filters them and shows latency and error rate per server',
    { timeout: 90_000 },
    async () => {
      await client.callTool({ name: 'demo__echo', arguments: { text: 'before the page' } });
      const token = (await readFile(join(td!.dataDir, 'token'), 'utf8')).trim();
      await page.goto(`${td!.daemon.url}/#token=${token}`);
      await page.locator('#conn', { hasText: 'connected' }).waitFor();

      // From calls.list on connect.
      await page.locator('#calls .call[data-server="demo"][data-tool="echo"][data-outcome="ok"]').waitFor();

      // Live: calls made now appear without a reload.
      await client.callTool({ name: 'fx__echo', arguments: { message: 'live' } });
      await assert.rejects(client.callTool({ name: 'fx__fail', arguments: {} }));
      const failed = page.locator('#calls .call[data-server="fx"][data-tool="fail"][data-outcome="error"]');
      await failed.waitFor();
      assert.match(await failed.innerText(), /E_UPSTREAM_ERROR/);
      await page.locator('#calls .call[data-server="fx"][data-tool="echo"]').waitFor();
      assert.match(await page.locator('#calls .call').first().innerText(), /fail/, 'newest first');
      assert.match(await page.locator('#calls .call[data-tool="echo"][data-server="fx"] .call-duration').innerText(), /\d+(\.\d)? m?s/);

      // Per server: calls, error rate, latency.
      const fxRow = page.locator('#calls-stats tr[data-server="fx"]');
      await fxRow.waitFor();
      const cells = await fxRow.locator('td').allInnerTexts();
      assert.equal(cells[0], 'fx');
      assert.equal(cells[1], '2');
      assert.equal(cells[2], '50 %');
      assert.match(cells[3]!, /\d ms|\d s/);
      const demoCells = await page.locator('#calls-stats tr[data-server="demo"] td').allInnerTexts();
      assert.deepEqual(demoCells.slice(0, 3), ['demo', '1', '0 %']);

      // The filter narrows by text, the selector by outcome.
      await page.locator('#calls-filter').fill('demo');
      await page.waitForFunction(() => document.querySelectorAll('#calls .call').length === 1);
      assert.equal(await page.locator('#calls .call[data-server="demo"]').count(), 1);
      await page.locator('#calls-filter').fill('');
      await page.locator('#calls-outcome').selectOption('error');
      await page.waitForFunction(() => document.querySelectorAll('#calls .call').length === 1);
      assert.equal(await page.locator('#calls .call[data-outcome="error"]').count(), 1);
      assert.match((await page.locator('#calls-count').textContent()) ?? '', /1 of 3/);
      await page.locator('#calls-outcome').selectOption('');
      await page.waitForFunction(() => document.querySelectorAll('#calls .call').length === 3);

      assert.deepEqual(ui!.pageErrors, []);
    },
  );
});
