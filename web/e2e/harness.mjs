// Test harness of the browser end-to-end tests: a real `hush serve` (built
// from this repository into a temporary directory, with its data there
// too), Debian's Chromium driven by playwright-core, and the real `hush`
// CLI for command-line participants.
//
// Environment:
//   HUSH_BIN   use this hush binary instead of building one
//   CHROMIUM   the browser (default /usr/bin/chromium)
//   HUSH_E2E_KEEP=1  keep the temporary directory (its path is printed)
//   HUSH_E2E_SCREENSHOTS=update  write the screenshots into the committed
//              e2e/screenshots/ (make web-screenshots) instead of the
//              ignored e2e/out/screenshots/

import { spawn, execFile } from 'node:child_process';
import { mkdtemp, mkdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { chromium } from 'playwright-core';

const run = promisify(execFile);
export const webDir = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const repoDir = path.resolve(webDir, '..');
// A test run writes its screenshots where git ignores them; the committed
// ones in e2e/screenshots/ change only when asked (make web-screenshots).
export const screenshotDir =
  process.env.HUSH_E2E_SCREENSHOTS === 'update'
    ? path.join(webDir, 'e2e', 'screenshots')
    : path.join(webDir, 'e2e', 'out', 'screenshots');

export const chromiumPath = process.env.CHROMIUM || '/usr/bin/chromium';

export function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.unref();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

/** The hush binary to test: HUSH_BIN, or one built from this repository into dir. */
export async function hushBinary(dir) {
  if (process.env.HUSH_BIN) return process.env.HUSH_BIN;
  const bin = path.join(dir, 'hush');
  await run('go', ['build', '-o', bin, './cmd/hush'], { cwd: repoDir, maxBuffer: 16 << 20 });
  return bin;
}

/**
 * Starts `hush serve` on 127.0.0.1:port with its data in data and the
 * extra args, and waits until it answers; returns { url, logs, stop }.
 */
export async function serveHush(bin, { port, data, args = [] }) {
  const url = `http://127.0.0.1:${port}`;
  const logs = [];
  const proc = spawn(bin, ['serve', '--addr', `127.0.0.1:${port}`, '--data', data, '--log-level', 'warn', '--device-rate', '-1', '--ip-rate', '-1', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  proc.stdout.on('data', (d) => logs.push(String(d)));
  proc.stderr.on('data', (d) => logs.push(String(d)));
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  for (let i = 0; ; i++) {
    try {
      const r = await fetch(url + '/healthz');
      if (r.ok) break;
    } catch {}
    if (i > 150 || proc.exitCode !== null) throw new Error(`hush serve did not start:\n${logs.join('')}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    logs,
    async stop() {
      proc.kill('SIGTERM');
      await Promise.race([exited, new Promise((r) => setTimeout(r, 10000))]);
    },
  };
}

/** Starts a real hush server; returns { url, bin, dir, logs, stop }. */
export async function startServer() {
  const dir = await mkdtemp(path.join(tmpdir(), 'hush-e2e-'));
  const bin = await hushBinary(dir);
  const server = await serveHush(bin, { port: await freePort(), data: path.join(dir, 'data') });
  const page = await fetch(server.url + '/');
  if (!(page.headers.get('content-type') ?? '').includes('text/html')) {
    await server.stop();
    throw new Error('hush serve does not serve the web client at / (the server must mount web.Handler())');
  }
  return {
    url: server.url,
    bin,
    dir,
    logs: server.logs,
    async stop() {
      await server.stop();
      if (process.env.HUSH_E2E_KEEP) console.log('kept', dir);
      else await rm(dir, { recursive: true, force: true });
    },
  };
}

/** How long the tests wait for something to show. */
export const T = 30_000;

/** Polls fn until it returns something truthy, or fails after timeout. */
export async function eventually(what, fn, timeout = T, every = 500) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((r) => setTimeout(r, every));
  }
}

/** Signs p up under its name and waits until it is online. */
export async function signUp(p) {
  await p.page.locator('[data-testid=onboarding]').waitFor({ timeout: T });
  await p.page.fill('[data-testid=username]', p.name);
  await p.page.click('[data-testid=signup]');
  await p.page.locator('[data-testid=sidebar]').waitFor({ timeout: T });
  await p.page.locator('.status.on').waitFor({ timeout: T });
}

/** p starts the 1:1 chat with username and waits until it is open. */
export async function startChat(p, username) {
  await p.page.click('[data-testid=new-chat]');
  await p.page.fill('[data-testid=new-chat-user]', username);
  await p.page.click('[data-testid=new-chat-start]');
  await p.page.locator('[data-testid=conv-title]', { hasText: username }).waitFor({ timeout: T });
}

/** The conversation titled title in p's sidebar. */
export function conversation(p, title) {
  return p.page.locator(`[data-testid=conversation][data-title="${title}"]`);
}

export async function openConversation(p, title) {
  await conversation(p, title).click();
  await p.page.locator('[data-testid=conv-title]', { hasText: title }).waitFor({ timeout: T });
}

/** The call view's SFrame counters (data attributes of call-secure). */
export async function callStats(p) {
  const d = await p.page.locator('[data-testid=call-secure]').evaluate((e) => ({ ...e.dataset }));
  const n = (k) => Number(d[k] ?? 0);
  return {
    encrypted: n('encrypted'),
    encryptedAudio: n('encryptedAudio'),
    encryptedVideo: n('encryptedVideo'),
    decrypted: n('decrypted'),
    failed: n('failed'),
    epoch: n('epoch'),
    framesDecoded: n('framesDecoded'),
    audioPackets: n('audioPackets'),
    error: d.error ?? '',
  };
}

/** Launches headless Chromium with fake media devices. */
export async function launchBrowser() {
  if (!existsSync(chromiumPath)) throw new Error(`no browser at ${chromiumPath} (apt-get install chromium, or set CHROMIUM)`);
  return chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-ui-for-media-stream',
      '--use-fake-device-for-media-stream',
      // Calls between two pages of this browser connect over loopback.
      '--disable-features=WebRtcHideLocalIpsWithMdns',
      // The SFU of a hush serve on a loopback address offers loopback
      // candidates only.
      '--allow-loopback-in-peer-connection',
    ],
  });
}

/** A browser context and page for one person, with the page's errors kept. */
export async function person(browser, server, name) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, deviceScaleFactor: 1, locale: 'en-US', timezoneId: 'UTC' });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(`${name}: ${e.message}`));
  // 4xx answers are part of the protocol (a KeyPackage not uploaded yet
  // while linking, an unknown user); 5xx are not.
  page.on('response', (r) => {
    if (r.status() >= 500) errors.push(`${name}: HTTP ${r.status()} ${r.request().method()} ${new URL(r.url()).pathname}`);
  });
  page.on('console', (m) => {
    if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) errors.push(`${name} console: ${m.text()}`);
  });
  await page.goto(server.url + '/');
  return { name, context, page, errors };
}

/** A CLI participant: runs `hush ARGS --profile NAME` with its own data. */
export async function cliUser(server, name) {
  const home = path.join(server.dir, 'xdg-' + name);
  await mkdir(home, { recursive: true });
  const env = { ...process.env, XDG_DATA_HOME: home, HOME: home };
  return {
    name,
    async run(...args) {
      const { stdout } = await run(server.bin, [...args, '--profile', name], { env, maxBuffer: 16 << 20, timeout: 60000 }).catch((e) => {
        throw new Error(`hush ${args.join(' ')}: ${e.message}\n${e.stdout ?? ''}${e.stderr ?? ''}`);
      });
      return stdout;
    },
    /** Starts `hush ARGS` in the background; stop() interrupts it and waits. */
    spawn(...args) {
      const proc = spawn(server.bin, [...args, '--profile', name], { env, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      proc.stdout.on('data', (d) => (out += d));
      proc.stderr.on('data', (d) => (out += d));
      const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
      return {
        proc,
        output: () => out,
        exited,
        async stop() {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGINT');
          const r = await Promise.race([exited, new Promise((res) => setTimeout(() => res(null), 10000))]);
          if (!r) proc.kill('SIGKILL');
          return out;
        },
      };
    },
    async json(...args) {
      return JSON.parse(await this.run(...args, '--json'));
    },
  };
}

export async function screenshot(page, name) {
  await mkdir(screenshotDir, { recursive: true });
  // No hover effects; let transitions and images settle.
  await page.mouse.move(1, 1);
  await page.waitForTimeout(300);
  await page.screenshot({ path: path.join(screenshotDir, `${name}.png`) });
}
