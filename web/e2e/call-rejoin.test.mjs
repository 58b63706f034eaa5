// End-to-end: a call in two browsers survives the server restarting
// mid-call. Both pages lose their push WebSocket (and the SFU its room),
// show "Reconnecting…", and once the server is back join the same call
// again by themselves (same call id, same keys, no new ring): each page
// decrypts the other's frames again, and the call view never closed.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { T, callStats, eventually, freePort, hushBinary, launchBrowser, person, serveHush, signUp, startChat } from './harness.mjs';

// While the server is down, the pages' reconnection attempts fail in the
// console; those are expected.
const downNoise = /WebSocket|ERR_CONNECTION_REFUSED|Failed to load resource|Failed to fetch/;

describe('a call survives the server restarting', { timeout: 300_000 }, () => {
  let dir, bin, port, server, browser, alice, bob;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hush-e2e-rejoin-'));
    bin = await hushBinary(dir);
    port = await freePort();
    server = await serveHush(bin, { port, data: path.join(dir, 'data') });
    browser = await launchBrowser();
    alice = await person(browser, server, 'alice');
    bob = await person(browser, server, 'bob');
  });

  after(async () => {
    const errors = [...(alice?.errors ?? []), ...(bob?.errors ?? [])].filter((e) => !downNoise.test(e));
    await browser?.close();
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
    assert.deepEqual(errors, [], 'errors in the pages');
  });

  it('both pages show Reconnecting…, rejoin by themselves, and decrypt each other again', async () => {
    await signUp(alice);
    await signUp(bob);
    await startChat(alice, 'bob');
    await bob.page.locator('[data-testid=conversation][data-title="alice"]').click({ timeout: T });

    await alice.page.click('[data-testid=call-button]');
    await alice.page.locator('[data-testid=call]').waitFor({ timeout: T });
    await bob.page.locator('[data-testid=ringing]').waitFor({ timeout: T });
    await bob.page.click('[data-testid=accept-call]');
    for (const p of [alice, bob]) {
      await eventually(`${p.name}'s frames to decrypt`, async () => (await callStats(p)).decrypted > 50);
    }
    const callId = await alice.page.locator('[data-testid=call]').getAttribute('data-call');

    await server.stop();
    for (const p of [alice, bob]) {
      await p.page.locator('[data-testid=call-status]', { hasText: 'Reconnecting…' }).waitFor({ timeout: T });
    }
    const before = { alice: (await callStats(alice)).decrypted, bob: (await callStats(bob)).decrypted };
    server = await serveHush(bin, { port, data: path.join(dir, 'data') });

    for (const p of [alice, bob]) {
      p.page.on('console', (m) => m.type() === 'warning' && console.log(`${p.name} console: ${m.text()}`));
      p.page.on('domcontentloaded', () => console.log(`${p.name}: page reloaded`));
    }
    for (const p of [alice, bob]) {
      const toast = p.page.locator('[data-testid=toast]');
      await p.page.locator('[data-testid=call-secure]').waitFor({ timeout: 1000 }).catch(async () => {
        throw new Error(`${p.name}'s call view closed: ${(await toast.count()) ? await toast.textContent() : 'no toast'}`);
      });
      await eventually(`${p.name} to decrypt again after the restart`, async () => {
        const st = await callStats(p);
        return st.decrypted > before[p.name] + 50;
      }, 60_000);
      assert.equal(await p.page.locator('[data-testid=call]').getAttribute('data-call'), callId, `${p.name} is in the same call`);
      const s = await callStats(p);
      assert.equal(s.failed, 0, `${p.name}: frames that did not open: ${s.error}`);
      await eventually(`${p.name}'s status to leave Reconnecting…`, async () => !(await p.page.locator('[data-testid=call-status]').textContent()).includes('Reconnecting'));
    }
    // bob was not rung again: his page shows no incoming call.
    assert.equal(await bob.page.locator('[data-testid=ringing]').count(), 0, 'bob was rung again');

    await bob.page.click('[data-testid=hangup]');
    await bob.page.locator('[data-testid=call]').waitFor({ state: 'detached', timeout: T });
    await alice.page.click('[data-testid=hangup]');
    await alice.page.locator('[data-testid=call]').waitFor({ state: 'detached', timeout: T });
  });
});
