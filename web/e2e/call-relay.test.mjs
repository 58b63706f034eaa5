// End-to-end: a call between two browsers connected to two different
// nodes of a cluster (one PostgreSQL schema, one NATS). alice's page is
// served by node 1, bob's by node 2, each page's Content-Security-Policy
// allowing only its own node. alice calls, so node 1 hosts the room; bob
// joins through node 2, which relays his call signalling to node 1 over
// NATS, while his media goes straight to node 1's SFU. Both pages decrypt
// the other's frames.
//
// Needs PostgreSQL at 127.0.0.1:5432 (trust auth, database test, psql to
// make a schema) and NATS with JetStream at 127.0.0.1:4222: without them
// the test is skipped, with the reason, except in CI (CI set), where it
// fails as web_test.go does.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { T, callStats, eventually, freePort, hushBinary, launchBrowser, openConversation, person, serveHush, signUp, startChat } from './harness.mjs';

const run = promisify(execFile);
const postgres = process.env.HUSH_TEST_POSTGRES || 'postgres://postgres@127.0.0.1:5432/test?sslmode=disable';
const nats = 'nats://127.0.0.1:4222';

function reachable(port) {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port }, () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
    s.setTimeout(2000, () => {
      s.destroy();
      resolve(false);
    });
  });
}

async function missingServices() {
  const missing = [];
  if (!(await reachable(5432))) missing.push('PostgreSQL at 127.0.0.1:5432');
  if (!(await reachable(4222))) missing.push('NATS at 127.0.0.1:4222');
  try {
    await run('psql', ['--version']);
  } catch {
    missing.push('psql');
  }
  return missing;
}

/** Starts one node of the cluster; returns { url, logs, stop }. */
async function startNode(bin, dir, store) {
  const port = await freePort();
  return serveHush(bin, { port, data: path.join(dir, `data-${port}`), args: ['--store', store, '--bus', nats] });
}

/** A node's metric, from its Prometheus text. */
async function metric(node, name) {
  const text = await (await fetch(node.url + '/metrics')).text();
  const m = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  return m ? Number(m[1]) : NaN;
}

const missing = await missingServices();
if (missing.length && process.env.CI) {
  throw new Error(`CI must run the cluster call test, but these are missing: ${missing.join(', ')}`);
}

describe('a call across two cluster nodes', { timeout: 300_000, skip: missing.length ? `missing ${missing.join(', ')}` : false }, () => {
  let dir, schema, nodes, browser, alice, bob;

  before(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'hush-e2e-relay-'));
    const bin = await hushBinary(dir);
    schema = 'hush_web_' + randomBytes(6).toString('hex');
    await run('psql', [postgres, '-c', `CREATE SCHEMA ${schema}`]);
    const store = `${postgres}&search_path=${schema}&pool_max_conns=4`;
    nodes = [await startNode(bin, dir, store), await startNode(bin, dir, store)];
    browser = await launchBrowser();
    alice = await person(browser, nodes[0], 'alice');
    bob = await person(browser, nodes[1], 'bob');
  });

  after(async () => {
    const errors = [...(alice?.errors ?? []), ...(bob?.errors ?? [])];
    await browser?.close();
    for (const n of nodes ?? []) await n.stop();
    if (schema) await run('psql', [postgres, '-c', `DROP SCHEMA ${schema} CASCADE`]).catch((e) => console.error(e.message));
    if (dir) await rm(dir, { recursive: true, force: true });
    assert.deepEqual(errors, [], 'errors in the pages');
  });

  it('alice on node 1 calls bob on node 2: node 1 hosts the room, node 2 relays bob, both decrypt', async () => {
    await signUp(alice);
    await signUp(bob);
    await startChat(alice, 'bob');
    await bob.page.locator('[data-testid=conversation][data-title="alice"]').waitFor({ timeout: T });
    await openConversation(bob, 'alice');

    await alice.page.click('[data-testid=call-button]');
    await alice.page.locator('[data-testid=call]').waitFor({ timeout: T });
    await bob.page.locator('[data-testid=ringing]').waitFor({ timeout: T });
    await bob.page.click('[data-testid=accept-call]');
    for (const p of [alice, bob]) {
      const s = await eventually(`${p.name}'s received frames to decrypt`, async () => {
        const s = await callStats(p);
        return s.decrypted > 50 && s.encryptedAudio > 20 && s.encryptedVideo > 20 ? s : null;
      });
      assert.equal(s.failed, 0, `${p.name}: frames that did not open: ${s.error}`);
    }
    const [n1, n2] = nodes;
    assert.equal(await metric(n1, 'hush_call_rooms'), 1, 'node 1 hosts the room');
    assert.equal(await metric(n2, 'hush_call_rooms'), 0, 'node 2 hosts no room');
    assert.equal(await metric(n1, 'hush_call_participants'), 2, "both devices are in node 1's room");
    assert.equal(await metric(n1, 'hush_call_relayed_sessions_hosted'), 1, "bob's session is relayed to node 1");
    assert.equal(await metric(n2, 'hush_call_relayed_sessions_out'), 1, "node 2 relays bob's session");
    assert.ok((await metric(n1, 'hush_call_packets_forwarded_total')) > 0, "node 1's SFU forwards the media");
    assert.equal(await metric(n2, 'hush_call_packets_forwarded_total'), 0, "node 2's SFU forwards none");

    await bob.page.click('[data-testid=hangup]');
    await bob.page.locator('[data-testid=call]').waitFor({ state: 'detached', timeout: T });
    await eventually('node 1 to free bob\'s place', async () => (await metric(n1, 'hush_call_participants')) === 1 && (await metric(n2, 'hush_call_relayed_sessions_out')) === 0);
    await alice.page.click('[data-testid=hangup]');
    await alice.page.locator('[data-testid=call]').waitFor({ state: 'detached', timeout: T });
    await eventually('node 1 to close the room', async () => (await metric(n1, 'hush_call_rooms')) === 0);
  });
});
