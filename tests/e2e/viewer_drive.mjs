// viewer_drive.mjs — drives the demo's viewer page (deploy/viewer/) in Debian's
// headless Chromium with playwright-core, for tests/e2e/test_viewer.py.
//
//   node viewer_drive.mjs NPM_DIR URL SCREENSHOT.png [ROUNDS]
//
// NPM_DIR has node_modules/playwright-core (deploy/viewer/install.sh --dev).
// Opens URL, waits for each round to finish (the page's body data-state
// "done"), clicks "fetch again" between rounds, saves a full-page screenshot
// after the last one, and prints one JSON line: {rounds: [state per round],
// console: [errors and warnings the page logged (Chromium's CORS errors
// among them), and "requestfailed: URL ERROR" per failed request],
// encodings: {path of each .gltf: the Content-Encoding it came with}}.
import { createRequire } from 'node:module';
import path from 'node:path';

const [npmDir, url, shot, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg || 2);
const require = createRequire(path.join(path.resolve(npmDir), 'package.json'));
const { chromium } = require('playwright-core');

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--use-angle=swiftshader', '--enable-unsafe-swiftshader',
         '--disable-quic', '--no-first-run', '--disable-background-networking',
         '--disable-component-update', '--disable-sync'],
});
const out = { rounds: [], console: [], requests: [], encodings: {} };
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') out.console.push(`${m.type()}: ${m.text()}`); });
  page.on('pageerror', (e) => out.console.push(`pageerror: ${e.message}`));
  page.on('requestfailed', (r) => out.console.push(`requestfailed: ${r.url()} ${r.failure() && r.failure().errorText}`));
  page.on('response', (r) => {   // the Content-Encoding each .gltf came with (Chromium decodes it)
    if (/\.gltf$/.test(new URL(r.url()).pathname)) out.encodings[new URL(r.url()).pathname] = r.headers()['content-encoding'] || 'identity';
  });
  page.on('request', (r) => {
    if (r.url().endsWith('/index.json')) out.requests.push(r.headers());
  });
  await page.goto(url);
  for (let i = 1; i <= rounds; i++) {
    if (i > 1) await page.click('#again');
    await page.waitForSelector(`body[data-round="${i}"][data-state="done"]`, { timeout: 30000 });
    out.rounds.push(await page.evaluate(() => {
      const s = window.meshcdnViewer;
      return {
        round: s.round, webglError: s.webglError,
        index: { xcache: s.index.xcache, cacheStatus: s.index.cacheStatus, status: s.index.status },
        models: s.models.map((m) => ({
          path: m.path, state: m.state, error: m.error, drawn: m.drawn,
          files: m.files.map((f) => ({ path: f.path, status: f.status, bytes: f.bytes, type: f.type,
                                       xcache: f.xcache, cacheStatus: f.cacheStatus })),
          shownXCache: [...document.querySelectorAll(`section[data-path="${m.path}"] tr`)]
            .map((tr) => tr.dataset.xcache),
          shownCacheStatus: [...document.querySelectorAll(`section[data-path="${m.path}"] tr`)]
            .map((tr) => tr.dataset.cacheStatus),
          shownState: document.querySelector(`section[data-path="${m.path}"]`).dataset.state,
        })),
      };
    }));
  }
  await page.screenshot({ path: shot, fullPage: true });
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));
