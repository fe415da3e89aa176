// Regenerates docs/visualizer.png: the visualizer at 1280×800 against a real daemon (temp data dir,
// free port) with two servers, the demo server (restarted once, so the event log has a story) and the
// echo test fixture (quarantined), with the demo server selected and its statechart shown.
//
//   npm run build && node scripts/visualizer-screenshot.mjs [out.png] [--dark]
//
// Needs Debian's chromium (scripts/ensure-chromium.sh).
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const root = fileURLToPath(new URL('../', import.meta.url));
const { startDaemon } = await import(join(root, 'dist/src/daemon/daemon.js'));
const args = process.argv.slice(2);
const dark = args.includes('--dark');
const out = args.find((a) => !a.startsWith('--')) ?? join(root, 'docs', 'visualizer.png');

const dataDir = await mkdtemp(join(tmpdir(), 'mcp-warden-shot-'));
const configPath = join(dataDir, 'config.json');
await writeFile(
  configPath,
  JSON.stringify(
    {
      mcpServers: {
        demo: { command: process.execPath, args: [join(root, 'dist/src/demo/demo-server.js')] },
        echo: { command: process.execPath, args: [join(root, 'dist/test/fixtures/echo-server.js')], quarantined: true },
      },
      settings: { stopEofGraceMs: 300 },
    },
    null,
    2,
  ),
);
const daemon = await startDaemon({ dataDir, configPath, listen: { host: '127.0.0.1', port: 0 }, logLevel: 'warn', console: false });
const browser = await chromium.launch({
  executablePath: process.env.MCP_WARDEN_CHROMIUM || '/usr/bin/chromium',
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 }, colorScheme: dark ? 'dark' : 'light' });
  page.setDefaultTimeout(20_000);
  const token = (await readFile(join(dataDir, 'token'), 'utf8')).trim();
  await page.goto(`${daemon.url}/#token=${token}`);
  await page.locator('.server[data-server="demo"][data-state="running"]').waitFor();
  await page.locator('.server[data-server="echo"][data-state="quarantined"]').waitFor();
  await page.click('.server[data-server="demo"] .server-select');
  await page.click('#detail [data-action="restart"]');
  await page.locator('#log .log-line', { hasText: '→ stopping' }).first().waitFor();
  await page.locator('#log .log-line', { hasText: 'starting.launching → running' }).first().waitFor();
  await page.locator('.server[data-server="demo"][data-state="running"]').waitFor();
  // Let the confirmation toast fade; no hover highlight in the picture.
  await page.mouse.move(640, 795);
  await page.waitForTimeout(4_500);
  await page.screenshot({ path: out });
  console.log(`wrote ${out}`);
} finally {
  await browser.close();
  await daemon.stop('screenshot taken');
  await rm(dataDir, { recursive: true, force: true });
}
