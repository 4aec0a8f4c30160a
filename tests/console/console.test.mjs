// console.test.mjs - the operator console (/console) in a real browser: playwright-core driving
// Debian's chromium (headless, no browser download) against the real gateway binary, a private
// redis-server and a destination stand-in (harness.mjs). Run with
//
//   npm ci --prefix tests/console && node --test tests/console/console.test.mjs
//
// (CR_BIN names the gateway binary, default build/crossroads; CHROMIUM the browser, default
// /usr/bin/chromium). What it shows, in order, on one gateway:
//   - the page and its assets come with their types and a CSP that allows this origin only, and
//     the page never asks another host for anything;
//   - a tenant key gets "This key has no admin scope" and nothing else;
//   - with the admin key (kept in sessionStorage, surviving a reload), mutations posted to the
//     API show up in the stage counts and in the table; filters and "Load more" work;
//   - a saga that ended in error (the stand-in answering 500) is retried from its page, by
//     keyboard, after the stand-in is switched to 200, and reaches synced; the timeline shows
//     every stage the API recorded, and each delivery attempt its request and response;
//   - the chart counts the intake and completions of the last 30 minutes;
//   - "Forget key" wipes the key and the data.
// Screenshots of each view go to tests/console/screenshots/ (gitignored); with
// CONSOLE_DOCS_SCREENSHOTS=1 the README's (DOC_SHOTS) are also copied to docs/.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { chromium } from 'playwright-core';

import * as h from './harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const SHOTS = path.join(here, 'screenshots');
const DOCS = path.join(h.repoRoot, 'docs');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The pictures the README shows (each well under 300 KB at 1366x860).
const DOC_SHOTS = ['console-overview.png', 'console-saga.png', 'console-saga-logs.png', 'console-denied.png'];
const CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'";
const STAGES = ['pending', 'origin_mapped', 'master_mapped', 'destination_mapped'];
const UI_MS = 15000; // the page refreshes every 3 s; allow a few rounds

let redis, standin, gw, ctx, userDataDir;
const foreign = []; // requests the pages made to anything but the gateway
const pageErrors = [];
const shots = [];

async function newPage() {
  const page = await ctx.newPage();
  page.on('request', (r) => {
    const u = r.url();
    if (!u.startsWith(gw.base + '/') && !u.startsWith('data:')) foreign.push(u);
  });
  page.on('pageerror', (e) => pageErrors.push(`pageerror: ${e.message}`));
  page.on('console', (m) => {
    // A refused key (401, 403) and a malformed filter (422) are answers the page handles; anything else in red is a fault
    // (a CSP violation among them).
    if (m.type() === 'error' && !/status of 4(01|03|22)/.test(m.text())) pageErrors.push(`console: ${m.text()}`);
  });
  return page;
}

async function shot(page, name, opts = {}) {
  fs.mkdirSync(SHOTS, { recursive: true });
  const file = path.join(SHOTS, `console-${name}.png`);
  if (opts.element) await page.locator(opts.element).screenshot({ path: file, animations: 'disabled' });
  else await page.screenshot({ path: file, fullPage: !!opts.fullPage, animations: 'disabled' });
  shots.push(file);
  return file;
}

async function login(page, key) {
  await page.goto(`${gw.base}/console`);
  await page.locator('#login-key').waitFor({ state: 'visible' });
  // By keyboard: the key field has the focus, Enter submits.
  assert.equal(await page.evaluate(() => document.activeElement?.id), 'login-key');
  await page.keyboard.type(key);
  await page.keyboard.press('Enter');
}

/** The counts the API gives, as {status: n}. */
async function apiCounts() {
  const r = await h.api(gw.base, 'GET', '/v1/admin/counts', { key: h.ADMIN_KEY });
  assert.equal(r.status, 200, r.text);
  return r.json.by_status;
}

/** The counts the page shows in its legend, as {status: n}. */
async function pageCounts(page) {
  return page.$$eval('#stage-legend .legend-item', (bs) =>
    Object.fromEntries(bs.map((b) => [b.dataset.status, Number(b.querySelector('.legend-count').textContent)])));
}

/** The rows of the table: [{saga, status, type, tenant, order, attempts, message}]. */
async function tableRows(page) {
  return page.$$eval('#sagas-body tr', (trs) => trs.map((tr) => {
    const td = tr.querySelectorAll('td');
    return {
      saga: tr.dataset.saga,
      status: td[0].textContent.trim(),
      type: td[2].textContent.trim(),
      tenant: td[3].textContent.trim(),
      dest: td[4].textContent.trim(),
      order: td[5].textContent.trim(),
      attempts: td[6].textContent.trim(),
      message: td[7].textContent.trim(),
      pill: td[0].querySelector('.pill')?.className,
    };
  }));
}

async function waitSagaOrExplain(id, want) {
  try {
    return await h.waitSaga(gw.base, id, want, 20000);
  } catch (e) {
    const v = await h.api(gw.base, 'GET', `/v1/admin/sagas/${id}`, { key: h.ADMIN_KEY });
    throw new Error(`${e.message}\nsaga: ${v.text.slice(0, 2000)}\n---- gateway log (tail) ----\n${gw.log().slice(-4000)}`);
  }
}

before(async () => {
  if (!fs.existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} not found: apt-get install -y chromium`);
  fs.rmSync(SHOTS, { recursive: true, force: true });
  redis = await h.startRedis();
  standin = await h.startStandin();
  gw = await h.startGateway({
    redisPort: redis.port,
    standinUrl: standin.url,
    overrides: { saga: { max_attempts: 2, retry_base_ms: 50, retry_max_ms: 200, claim_idle_ms: 2000 } },
  });
  userDataDir = fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), 'cr-chromium-'));
  ctx = await chromium.launchPersistentContext(userDataDir, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1366, height: 860 },
    colorScheme: 'light',
    locale: 'en-GB',
    timezoneId: 'UTC',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
});

after(async () => {
  await ctx?.close().catch(() => {});
  if (userDataDir) fs.rmSync(userDataDir, { recursive: true, force: true });
  const st = await gw?.stop();
  await standin?.stop();
  await redis?.stop();
  if (process.env.CONSOLE_DOCS_SCREENSHOTS === '1') {
    fs.mkdirSync(DOCS, { recursive: true });
    for (const f of shots) {
      if (DOC_SHOTS.includes(path.basename(f))) fs.copyFileSync(f, path.join(DOCS, path.basename(f)));
    }
  }
  if (st) assert.equal(st.code, 0, `gateway exit ${JSON.stringify(st)}`);
});

describe('operator console', { concurrency: false }, () => {
  test('the page and its assets: types, CSP, nosniff, no-store; nothing else under /console', async () => {
    const want = {
      '/console': 'text/html; charset=utf-8',
      '/console/console.js': 'text/javascript; charset=utf-8',
      '/console/console.css': 'text/css; charset=utf-8',
    };
    for (const [p, type] of Object.entries(want)) {
      const r = await fetch(gw.base + p);
      assert.equal(r.status, 200, p);
      assert.equal(r.headers.get('content-type'), type, p);
      assert.equal(r.headers.get('content-security-policy'), CSP, p);
      assert.equal(r.headers.get('x-content-type-options'), 'nosniff', p);
      assert.equal(r.headers.get('cache-control'), 'no-store', p);
      const body = await r.text();
      assert.equal(body, fs.readFileSync(path.join(h.repoRoot, 'src', 'console',
        p === '/console' ? 'index.html' : path.basename(p)), 'utf8'), `${p} is served as built`);
    }
    for (const p of ['/console/nope.js', '/console/..%2fopenapi.json', '/console/']) {
      const r = await fetch(gw.base + p);
      assert.equal(r.status, 404, p);
    }
    // The page is static: no key needed to load it, no data in it.
    const html = await (await fetch(`${gw.base}/console`)).text();
    assert.doesNotMatch(html, /https?:\/\//, 'the page names no other host');
    assert.doesNotMatch(html, /<script>|style=/, 'no inline script or style (the CSP forbids them)');
  });

  test('a tenant key is refused: "This key has no admin scope" and nothing else', async () => {
    const page = await newPage();
    await login(page, h.ACME_KEY);
    const denied = page.locator('#denied-msg');
    await denied.waitFor({ state: 'visible' });
    assert.equal((await denied.textContent()).trim(), 'This key has no admin scope');
    assert.equal(await page.locator('#view-list').isVisible(), false);
    assert.equal(await page.locator('#view-saga').isVisible(), false);
    assert.equal(await page.locator('#nav').isVisible(), false);
    assert.equal(await page.locator('#sagas-body tr').count(), 0);
    assert.equal(await page.locator('#stage-legend li').count(), 0);
    assert.equal(await page.evaluate(() => sessionStorage.length), 0, 'a refused key is not kept');
    await shot(page, 'denied');
    await page.close();
    // Even a saga link, opened afresh, shows nothing without an admin key.
    const direct = await newPage();
    await direct.goto(`${gw.base}/console#/saga/0123456789abcdef01234567`);
    await direct.locator('#login-key').waitFor({ state: 'visible' });
    assert.equal(await direct.locator('#view-saga').isVisible(), false);
    await direct.close();
  });

  test('an unknown key is told so', async () => {
    const page = await newPage();
    await login(page, 'not-a-key');
    await page.locator('#login-error').filter({ hasText: 'not recognised' }).waitFor();
    assert.equal(await page.locator('#view-list').isVisible(), false);
    await page.close();
  });

  let page; // the admin's page, kept across the tests below
  const made = []; // {saga_id, order_number}

  test('admin key: posted mutations show in the stage counts and the table', async () => {
    page = await newPage();
    await page.goto(`${gw.base}/console`);
    await page.locator('#login-key').waitFor({ state: 'visible' });
    await shot(page, 'login');
    await login(page, h.ADMIN_KEY);
    await page.locator('#view-list').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('crossroads.console.key')), h.ADMIN_KEY);

    for (let i = 1; i <= 3; i++) {
      const o = await h.createOrder(gw.base, `PO-CON-${i}`);
      made.push({ saga_id: o.saga_id, order: `PO-CON-${i}`, type: 'create' });
    }
    made.push({ saga_id: await h.updateStatus(gw.base, 'PO-CON-1'), order: 'PO-CON-1', type: 'update status' });
    for (const m of made) await waitSagaOrExplain(m.saga_id, 'synced');

    // The counts: the page's legend catches up with the API within a refresh or two.
    const want = await apiCounts();
    assert.equal(want.synced, 4);
    await h.waitFor('the stage counts to show the mutations', async () =>
      JSON.stringify(await pageCounts(page)) === JSON.stringify(want), UI_MS);
    const bar = await page.locator('#stage-bar').getAttribute('aria-label');
    assert.match(bar, /synced 4/);

    // The table: every saga, newest first, with status, type, tenant, order and attempts.
    await h.waitFor('the table to list the mutations', async () => (await tableRows(page)).length === made.length, UI_MS);
    const rows = await tableRows(page);
    assert.deepEqual(rows.map((r) => r.saga), made.map((m) => m.saga_id).reverse());
    for (const r of rows) {
      const m = made.find((x) => x.saga_id === r.saga);
      assert.equal(r.status, 'synced');
      assert.match(r.pill, /st-synced/);
      assert.equal(r.type, m.type);
      assert.equal(r.tenant, 'acme-supply');
      assert.equal(r.dest, 'swift-haul');
      assert.equal(r.order, m.order);
      assert.equal(r.attempts, '1');
      assert.equal(r.message, 'HTTP 200 from destination');
    }
    const tenants = await page.$$eval('#tenant-counts .chip', (cs) => cs.map((c) => c.textContent));
    assert.ok(tenants.includes('acme-supply4'), JSON.stringify(tenants));

    // A reload keeps the key (sessionStorage): straight back to the list.
    await page.reload();
    await page.locator('#sagas-body tr').first().waitFor();
    assert.equal(await page.locator('#view-login').isVisible(), false);
  });

  test('filters narrow the table; the URL keeps them', async () => {
    await page.selectOption('#f-type', 'order_update_status');
    await page.click('#f-apply');
    await h.waitFor('the type filter', async () => {
      const rows = await tableRows(page);
      return rows.length === 1 && rows[0].type === 'update status';
    }, UI_MS);
    assert.match(page.url(), /#\/\?type=order_update_status$/);
    // By order id (from the API) and a time range that holds everything so far.
    const v = await h.api(gw.base, 'GET', `/v1/admin/sagas/${made[1].saga_id}`, { key: h.ADMIN_KEY });
    await page.click('#f-clear');
    await page.fill('#f-order', v.json.saga.order_id);
    await page.fill('#f-since', '2000-01-01T00:00:00');
    await page.click('#f-apply');
    await h.waitFor('the order filter', async () => {
      const rows = await tableRows(page);
      return rows.length === 1 && rows[0].saga === made[1].saga_id;
    }, UI_MS);
    // A malformed order id is the API's 422, said in words, not a crash.
    await page.fill('#f-order', 'zz');
    await page.click('#f-apply');
    await page.locator('#list-error').filter({ hasText: 'order_id' }).waitFor();
    await page.click('#f-clear');
    await h.waitFor('the cleared filters', async () => (await tableRows(page)).length === made.length, UI_MS);
  });

  test('"Load more" pages on with the cursor: no saga twice, none missed, while new ones arrive', async () => {
    // 55 more sagas: more than one page of 50.
    const more = [];
    for (let i = 0; i < 55; i += 11) {
      const batch = await Promise.all(Array.from({ length: 11 }, (_, k) => h.createOrder(gw.base, `PO-PAGE-${i + k}`)));
      more.push(...batch.map((b) => b.saga_id));
    }
    await h.waitFor('the first page to fill', async () => (await tableRows(page)).length === 50, UI_MS);
    // Hold the live refresh, so the first page read here is the one "Load more" continues.
    await page.uncheck('#live');
    await h.sleep(300);
    const first = await tableRows(page);
    assert.equal(await page.locator('#load-more').isVisible(), true);
    // New sagas while the operator pages: they must not shift the next page.
    const late = await h.createOrder(gw.base, 'PO-PAGE-LATE');
    await page.click('#load-more');
    await h.waitFor('the second page', async () => (await tableRows(page)).length > 50, UI_MS);
    const rows = await tableRows(page);
    const ids = rows.map((r) => r.saga);
    assert.equal(new Set(ids).size, ids.length, 'a saga listed twice');
    assert.equal(ids.length, made.length + more.length, 'every saga once, the late one not yet');
    assert.deepEqual(ids.slice(0, 50), first.map((r) => r.saga));
    assert.ok(!ids.includes(late.saga_id));
    assert.equal(await page.locator('#load-more').isVisible(), false, 'no more pages');
    await page.check('#live');
    // Paged on, the table holds still (no auto-refresh under the operator's feet).
    await h.sleep(3500);
    assert.equal((await tableRows(page)).length, ids.length);
    made.push(...more.map((s) => ({ saga_id: s })), { saga_id: late.saga_id });
    await page.click('#f-clear');
    await h.waitFor('the first page again', async () => (await tableRows(page)).length === 50, UI_MS);
    for (const m of made) await waitSagaOrExplain(m.saga_id, 'synced');
    await shot(page, 'sagas');
  });

  let failed; // the saga that ends in error

  test('a saga that ended in error is retried from its page and reaches synced', async () => {
    standin.setMode(500);
    failed = await h.createOrder(gw.base, 'PO-CON-FAIL');
    const v = await waitSagaOrExplain(failed.saga_id, 'error');
    assert.equal(v.saga.attempts, '2');

    // The error shows in the counts; the legend filters the table by it.
    await page.locator('#stage-legend .legend-item[data-status="error"] .legend-count').filter({ hasText: /^1$/ }).waitFor({ timeout: UI_MS });
    await page.click('#stage-legend .legend-item[data-status="error"]');
    await h.waitFor('the error filter', async () => {
      const rows = await tableRows(page);
      return rows.length === 1 && rows[0].saga === failed.saga_id;
    }, UI_MS);
    const [row] = await tableRows(page);
    assert.match(row.pill, /st-error/);
    assert.match(row.message, /destination failed after 2 attempts/);
    assert.equal(row.attempts, '2');

    // By keyboard: Tab to the saga's link, Enter opens its page.
    const link = page.locator(`#sagas-body a[href="#/saga/${failed.saga_id}"]`);
    await link.focus();
    await page.keyboard.press('Enter');
    await page.locator('#view-saga').waitFor({ state: 'visible' });
    assert.match(page.url(), new RegExp(`#/saga/${failed.saga_id}$`));
    await page.locator('#saga-status').filter({ hasText: 'error' }).waitFor();
    await page.locator('#retry').waitFor({ state: 'visible' });

    // Each delivery attempt: its outbound request and the stand-in's 500.
    const attempts = page.locator('#logs article.attempt');
    assert.equal(await attempts.count(), 2);
    // The last attempt starts open; the earlier ones open with a click on their summary.
    assert.equal(await attempts.nth(1).locator('details.out').evaluate((d) => d.open), true);
    assert.equal(await attempts.nth(0).locator('details.out').evaluate((d) => d.open), false);
    await attempts.nth(0).locator('details.out summary').click();
    await attempts.nth(0).locator('details.in summary').click();
    for (let i = 0; i < 2; i++) {
      const a = attempts.nth(i);
      assert.equal(await a.locator('details.out pre').isVisible(), true);
      assert.equal(await a.locator('details.in pre').isVisible(), true);
      const out = await a.locator('details.out pre').textContent();
      const inn = await a.locator('details.in pre').textContent();
      assert.match(out, new RegExp(`^POST ${standin.url}/v1/order/create`));
      assert.match(out, new RegExp(`Idempotency-Key: ${failed.saga_id}`));
      assert.match(out, /"order_number": "PO-CON-FAIL"/);
      assert.match(inn, /^HTTP 500/);
      assert.match(inn, /stand-in failure/);
      assert.match(await a.locator('details.in summary').textContent(), /HTTP 500/);
    }
    await attempts.nth(0).locator('details.out summary').click(); // closed again, for the picture
    await attempts.nth(0).locator('details.in summary').click();
    await page.evaluate(() => window.scrollTo(0, 0));
    await shot(page, 'saga-error');
    await attempts.nth(1).scrollIntoViewIfNeeded();
    await shot(page, 'saga-logs');
    await page.evaluate(() => window.scrollTo(0, 0));

    // The destination recovers; the operator retries (keyboard again).
    standin.setMode(200);
    const deliveredBefore = standin.state.count;
    await page.locator('#retry').focus();
    await page.keyboard.press('Enter');
    await page.locator('#saga-status').filter({ hasText: 'synced' }).waitFor({ timeout: UI_MS });
    assert.equal(await page.locator('#retry').isVisible(), false, 'no retry button once synced');
    assert.ok(standin.state.count > deliveredBefore, 'the retry delivered again');
    await page.locator('#toast').filter({ hasText: 'Retry requested' }).waitFor();
    await page.evaluate(() => document.getElementById('toast').classList.remove('show'));

    // The timeline: every stage the API recorded, in order, from pending through the retry.
    const api = await h.api(gw.base, 'GET', `/v1/admin/sagas/${failed.saga_id}`, { key: h.ADMIN_KEY });
    assert.equal(api.json.saga.status, 'synced');
    const want = api.json.history.map((x) => x.status);
    await h.waitFor('the timeline to show the whole history', async () =>
      JSON.stringify(await page.$$eval('#timeline .stage-name', (ns) => ns.map((n) => n.textContent.replace(/ /g, '_'))))
        === JSON.stringify(want), UI_MS);
    // Every stage, in order: the first run to its error, the operator's retry, then synced.
    const order = [...STAGES, 'error', 'retry', 'synced'];
    let at = 0;
    for (const st of want) if (st === order[at]) at++;
    assert.equal(at, order.length, `history ${JSON.stringify(want)} lacks ${order[at]} (in order ${order})`);
    const msgs = await page.$$eval('#timeline .stage-msg', (ns) => ns.map((n) => n.textContent));
    assert.deepEqual(msgs, api.json.history.map((x) => x.message));
    // The third attempt, after the retry: a 200.
    const last = page.locator('#logs article.attempt').last();
    assert.match(await last.locator('details.in pre').textContent(), /^HTTP 200/);
    await shot(page, 'saga');

    // Back to the list, by the link (the filter comes back with it).
    await page.click('#saga-back');
    await page.locator('#view-list').waitFor({ state: 'visible' });
    assert.match(page.url(), /status=error/);
    await h.waitFor('the error filter to empty', async () => (await tableRows(page)).length === 0, UI_MS);
    assert.equal(await page.locator('#list-empty').isVisible(), true);
    await page.click('#f-clear');
  });

  test('the retry API: 409 for a saga not in error, 403 for a tenant key', async () => {
    const r = await h.api(gw.base, 'POST', `/v1/admin/sagas/${failed.saga_id}/retry`, { key: h.ADMIN_KEY });
    assert.equal(r.status, 409);
    const t = await h.api(gw.base, 'POST', `/v1/admin/sagas/${failed.saga_id}/retry`, { key: h.ACME_KEY });
    assert.equal(t.status, 403);
  });

  test('the chart counts intake and completions per minute', async () => {
    const all = [];
    let cursor = '';
    do {
      const r = await h.api(gw.base, 'GET', `/v1/admin/sagas?limit=200${cursor ? `&cursor=${cursor}` : ''}`, { key: h.ADMIN_KEY });
      all.push(...r.json.items);
      cursor = r.json.next;
    } while (cursor);
    const done = all.filter((s) => ['synced', 'canceled', 'rejected', 'error'].includes(s.status)).length;
    const errors = all.filter((s) => s.status === 'error').length;
    // The chart reloads every 15 s; a fresh visit of the list draws it at once.
    await page.reload();
    await h.waitFor('the chart', async () => {
      const title = await page.locator('#chart title#chart-title').textContent().catch(() => '');
      return title === `Last 30 minutes: ${all.length} sagas accepted, ${done} completed (${errors} in error)`;
    }, 20000);
    const bars = await page.$$eval('#chart rect.bar-intake', (rs) => rs.length);
    assert.ok(bars >= 1);
    await shot(page, 'chart', { element: '#chart' });
    await shot(page, 'overview');
  });

  test('the pages asked nothing of any other host and logged no error', async () => {
    assert.deepEqual(foreign, []);
    assert.deepEqual(pageErrors, []);
  });

  test('"Forget key" drops the key and the data', async () => {
    await page.click('#logout');
    await page.locator('#view-login').waitFor({ state: 'visible' });
    assert.equal(await page.evaluate(() => sessionStorage.getItem('crossroads.console.key')), null);
    assert.equal(await page.locator('#sagas-body tr').count(), 0);
    await page.reload();
    await page.locator('#login-key').waitFor({ state: 'visible' });
    await page.close();
  });
});
