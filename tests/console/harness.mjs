// harness.mjs - what the console's browser tests run against, all on loopback and all private:
// a redis-server in a temp dir, the real gateway binary (through a link of its own name, as
// tests/support/harness.c does) on a free port with a config derived from
// tests/fixtures/configs/gateway.json, and a destination stand-in: a tiny Node HTTP server that
// answers every delivery 200 (or 500, switched by the test) and counts what it got.
//
// Paths come from the environment ctest sets (CR_BIN, CR_REDIS_SERVER, CR_FIXTURES); without it
// the defaults are build/crossroads, redis-server on PATH and tests/fixtures of this checkout.
// Every child is stopped by stop() or, if the test process dies, by an exit hook (SIGKILL).
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const repoRoot = path.resolve(here, '..', '..');

export const ADMIN_KEY = 'demo-admin-key'; // acme-supply's operator key (scopes admin, order:read)
export const ACME_KEY = 'demo-acme-key'; // a tenant key: order:*, no admin
export const SWIFT_KEY = 'demo-swift-key';

const children = new Set();
process.on('exit', () => {
  for (const c of children) {
    try {
      c.kill('SIGKILL');
    } catch {
      /* already gone */
    }
  }
});

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A free TCP port on 127.0.0.1 (bind to 0, read it back, close). */
export async function freePort() {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address();
  srv.close();
  await once(srv, 'close');
  return port;
}

/** Poll fn until it returns a truthy value or deadline ms pass; throws with what on time-out. */
export async function waitFor(what, fn, deadline = 15000, every = 50) {
  const end = Date.now() + deadline;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(every);
  }
}

function tempDir(tag) {
  return fs.mkdtempSync(path.join(process.env.TMPDIR || os.tmpdir(), `cr-${tag}-`));
}

function track(child, logPath) {
  const log = fs.openSync(logPath, 'a');
  child.stdout?.on('data', (d) => fs.writeSync(log, d));
  child.stderr?.on('data', (d) => fs.writeSync(log, d));
  children.add(child);
  child.exited = new Promise((resolve) => {
    child.on('exit', (code, signal) => {
      children.delete(child);
      fs.closeSync(log);
      resolve({ code, signal });
    });
  });
  return child;
}

async function stopChild(child, ms) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return child?.exited;
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), ms);
  const r = await child.exited;
  clearTimeout(timer);
  return r;
}

/* ------------------------------------------------------------------ redis */

export async function startRedis() {
  const dir = tempDir('redis');
  const port = await freePort();
  const bin = process.env.CR_REDIS_SERVER || 'redis-server';
  const child = track(
    spawn(bin, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no',
      '--dir', dir, '--daemonize', 'no'], { stdio: ['ignore', 'pipe', 'pipe'] }),
    path.join(dir, 'redis.log'));
  await waitFor(`redis-server on ${port}`, () => redisCommand(port, ['PING']).then((r) => r === 'PONG'), 10000);
  return {
    port,
    command: (args) => redisCommand(port, args),
    async stop() {
      await stopChild(child, 10000);
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** One RESP command on a fresh connection; the reply decoded (arrays, strings, integers). */
export function redisCommand(port, args) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    sock.setTimeout(5000, () => sock.destroy(new Error('redis: timeout')));
    sock.on('error', reject);
    sock.on('connect', () => {
      let out = `*${args.length}\r\n`;
      for (const a of args) out += `$${Buffer.byteLength(String(a))}\r\n${a}\r\n`;
      sock.write(out);
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      const r = parseResp(buf, 0);
      if (r) {
        sock.end();
        if (r.value instanceof Error) reject(r.value);
        else resolve(r.value);
      }
    });
  });
}

function parseResp(buf, at) {
  const eol = buf.indexOf('\r\n', at);
  if (eol < 0) return null;
  const type = String.fromCharCode(buf[at]);
  const line = buf.toString('utf8', at + 1, eol);
  const next = eol + 2;
  if (type === '+') return { value: line, end: next };
  if (type === '-') return { value: new Error(line), end: next };
  if (type === ':') return { value: Number(line), end: next };
  if (type === '$') {
    const n = Number(line);
    if (n < 0) return { value: null, end: next };
    if (buf.length < next + n + 2) return null;
    return { value: buf.toString('utf8', next, next + n), end: next + n + 2 };
  }
  if (type === '*') {
    const n = Number(line);
    if (n < 0) return { value: null, end: next };
    const out = [];
    let pos = next;
    for (let i = 0; i < n; i++) {
      const r = parseResp(buf, pos);
      if (!r) return null;
      out.push(r.value);
      pos = r.end;
    }
    return { value: out, end: pos };
  }
  throw new Error(`redis: unexpected reply type ${type}`);
}

/* ------------------------------------------------------------------ destination stand-in */

/**
 * The tenants' systems: answers every request `mode` (200: {"received": true, "order_number":
 * "SW-<n>"}; 500: {"error": "stand-in failure"}), whatever the path. setMode switches it.
 */
export async function startStandin() {
  const state = { mode: 200, count: 0, answered: 0, requests: [] };
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      state.count++;
      state.requests.push({ method: req.method, url: req.url, status: state.mode, body: Buffer.concat(chunks).toString() });
      let body;
      if (state.mode === 200) {
        state.answered++;
        body = JSON.stringify({ received: true, order_number: `SW-${state.answered}` });
      } else {
        body = JSON.stringify({ error: 'stand-in failure', code: state.mode });
      }
      res.writeHead(state.mode, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body) });
      res.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  return {
    port,
    url: `http://127.0.0.1:${port}`,
    state,
    setMode(status) {
      state.mode = status;
    },
    async stop() {
      server.closeAllConnections?.();
      await new Promise((r) => server.close(r));
    },
  };
}

/* ------------------------------------------------------------------ gateway */

const SANITIZER_MARKS = ['ERROR: AddressSanitizer', 'runtime error:', 'LeakSanitizer'];

/**
 * Start the gateway: the fixture config with listen.port, redis.url and every tenant's connector
 * URL replaced, then `overrides` (top-level sections merged one level deep) applied. Resolves once
 * GET /readyz answers 200.
 */
export async function startGateway({ redisPort, standinUrl, overrides = {} }) {
  const fixtures = process.env.CR_FIXTURES || path.join(repoRoot, 'tests', 'fixtures');
  const bin = path.resolve(process.env.CR_BIN || path.join(repoRoot, 'build', 'crossroads'));
  if (!fs.existsSync(bin)) throw new Error(`gateway binary ${bin} not found (set CR_BIN)`);
  const cfg = JSON.parse(fs.readFileSync(path.join(fixtures, 'configs', 'gateway.json'), 'utf8'));
  const dir = tempDir('gw');
  const port = await freePort();
  cfg.listen = { ...cfg.listen, host: '127.0.0.1', port };
  cfg.redis = { ...cfg.redis, url: `redis://127.0.0.1:${redisPort}/0` };
  for (const t of cfg.tenants) t.connector.url = standinUrl;
  for (const [k, v] of Object.entries(overrides)) {
    cfg[k] = v && typeof v === 'object' && !Array.isArray(v) && cfg[k] && typeof cfg[k] === 'object'
      ? { ...cfg[k], ...v } : v;
  }
  const configPath = path.join(dir, 'config.json');
  fs.writeFileSync(configPath, JSON.stringify(cfg, null, 2));
  // A link with a name of its own, so a "pkill crossroads" elsewhere cannot stop this gateway.
  const link = path.join(dir, 'cr-gw');
  fs.symlinkSync(bin, link);
  const logPath = path.join(dir, 'gateway.log');
  const env = { ...process.env };
  delete env.CROSSROADS_LISTEN;
  delete env.CROSSROADS_REDIS_URL;
  delete env.CROSSROADS_CONFIG;
  env.ACME_WEBHOOK_SECRET = 'acme-console-test-secret';
  env.SWIFT_WEBHOOK_SECRET = 'swift-console-test-secret';
  env.TECSPAL_TOKEN = 'tecspal-console-test-token';
  const child = track(spawn(link, ['serve', '--config', configPath], { env, stdio: ['ignore', 'pipe', 'pipe'] }), logPath);
  const base = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`gateway /readyz on ${port}`, async () => {
      if (child.exitCode !== null) throw new Error(`gateway exited with ${child.exitCode}`);
      const r = await fetch(`${base}/readyz`);
      return r.status === 200;
    }, 10000);
  } catch (e) {
    await stopChild(child, 2000);
    throw new Error(`${e.message}\n---- gateway log ----\n${fs.readFileSync(logPath, 'utf8')}`);
  }
  return {
    port,
    base,
    configPath,
    log: () => fs.readFileSync(logPath, 'utf8'),
    /**
     * SIGTERM; resolves to the exit status ({code, signal}), with code forced to -2 when the log
     * holds a sanitizer report (as tests/support/harness.c does). The temp dir goes on a clean
     * exit; otherwise it stays and the log is printed.
     */
    async stop() {
      const r = await stopChild(child, 15000);
      const text = fs.existsSync(logPath) ? fs.readFileSync(logPath, 'utf8') : '';
      if (r && SANITIZER_MARKS.some((m) => text.includes(m))) r.code = -2;
      if (r && r.code === 0) fs.rmSync(dir, { recursive: true, force: true });
      else process.stderr.write(`---- gateway log ${logPath} ----\n${text.slice(-8000)}\n`);
      return r;
    },
  };
}

/* ------------------------------------------------------------------ the API, as a tenant would call it */

export async function api(base, method, p, { key, dest, body } = {}) {
  const headers = {};
  if (key) headers['X-API-Key'] = key;
  if (dest) headers['X-Dest-Tenant-Name'] = dest;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const r = await fetch(base + p, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* not JSON */
  }
  return { status: r.status, headers: r.headers, text, json };
}

/** An order_create body (acme-supply's references, all mapped in the fixture). */
export function createBody(orderNumber) {
  return {
    order_number: orderNumber,
    requested_delivery: '2026-05-12T08:00:00.000Z',
    notes: 'console test',
    lines: [{ product: { source_id: 'ULSD' }, terminal: { source_id: 'HOU-T1' }, site: { source_id: 'ATX-S12' }, quantity: 8000, uom: 'gal' }],
  };
}

/** POST /v1/order/create as acme-supply to swift-haul; resolves to {saga_id, order_id}. */
export async function createOrder(base, orderNumber) {
  const r = await api(base, 'POST', '/v1/order/create', { key: ACME_KEY, dest: 'swift-haul', body: createBody(orderNumber) });
  if (r.status !== 200) throw new Error(`create ${orderNumber}: ${r.status} ${r.text}`);
  return { saga_id: r.json.log.saga_id, order_id: r.json.order_id };
}

/** POST /v1/order/update_status for an existing order number; resolves to the saga id. */
export async function updateStatus(base, orderNumber, progress = 'arrived_at_load') {
  const r = await api(base, 'POST', '/v1/order/update_status', {
    key: ACME_KEY,
    dest: 'swift-haul',
    body: { order: { order_number: orderNumber }, progress_status: progress, location: { source_id: 'HOU-T1' }, eta: '2026-05-11T19:25:51.332Z' },
  });
  if (r.status !== 200) throw new Error(`update_status ${orderNumber}: ${r.status} ${r.text}`);
  return r.json.log.saga_id;
}

const TERMINAL = new Set(['synced', 'canceled', 'rejected', 'error']);

/** Poll the admin API until the saga's status is one of want (default: any terminal one). */
export async function waitSaga(base, sagaId, want = null, deadline = 20000) {
  return waitFor(`saga ${sagaId} to reach ${want ?? 'a final status'}`, async () => {
    const r = await api(base, 'GET', `/v1/admin/sagas/${sagaId}`, { key: ADMIN_KEY });
    const st = r.json?.saga?.status;
    if (r.status !== 200) return null;
    if (want ? [].concat(want).includes(st) : TERMINAL.has(st)) return r.json;
    return null;
  }, deadline, 50);
}
