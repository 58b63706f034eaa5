// End-to-end: two people in their own browser contexts (alice and bob) and
// one on the command line (carol), against a real `hush serve`. Each step
// builds on the one before, as people would use Hush.

import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { T, callStats, cliUser, conversation, eventually, launchBrowser, openConversation, person, screenshot, signUp, startChat, startServer } from './harness.mjs';
import { makeMedia } from './media.mjs';


let server, browser, alice, bob, carol;

/** messages of a CLI user's conversation, from `hush read --json` (JSON lines). */
async function cliMessages(u, conv) {
  const out = await u.run('read', conv, '--json', '-n', '0');
  return out
    .split('\n')
    .filter((l) => l.trim())
    .map((l) => JSON.parse(l));
}

/** The call screen's counts: the transform worker's and the PeerConnection's. */
/** Frames in the IVF files and packets in the Ogg files of a recording directory. */
async function recorded(dir) {
  let ivfFrames = 0;
  let oggPackets = 0;
  for (const name of await readdir(dir)) {
    const b = await readFile(path.join(dir, name));
    if (name.endsWith('.ivf')) {
      for (let off = 32; off + 12 <= b.length; ) {
        const n = b.readUInt32LE(off);
        if (off + 12 + n > b.length) break; // being written
        ivfFrames++;
        off += 12 + n;
      }
    } else if (name.endsWith('.ogg')) {
      // Pages: count the packets each ends (lacing values below 255).
      for (let off = 0; off + 27 <= b.length && b.toString('latin1', off, off + 4) === 'OggS'; ) {
        const nseg = b[off + 26];
        if (off + 27 + nseg > b.length) break;
        let body = 0;
        for (let i = 0; i < nseg; i++) {
          const l = b[off + 27 + i];
          body += l;
          if (l < 255) oggPackets++;
        }
        off += 27 + nseg + body;
      }
      oggPackets = Math.max(0, oggPackets - 2); // OpusHead, OpusTags
    }
  }
  return { ivfFrames, oggPackets };
}

/** The message whose own text (not a quote of another) has text. */
function message(p, text) {
  return p.page.locator('[data-testid=message]').filter({ has: p.page.locator('[data-testid=text]', { hasText: text }) });
}

async function send(p, text) {
  await p.page.fill('[data-testid=composer]', text);
  await p.page.press('[data-testid=composer]', 'Enter');
  await message(p, text).first().waitFor({ timeout: T });
}

async function react(p, text, emoji) {
  const m = message(p, text).first();
  await m.hover();
  await m.locator('[data-testid=react-button]').click();
  await m.locator(`[data-testid=emoji-picker] [data-emoji="${emoji}"]`).click();
  await m.locator('[data-testid=reaction]', { hasText: emoji }).waitFor({ timeout: T });
}

/** A picture drawn in the page: a PNG that the image preview must show. */
async function drawPhoto(page) {
  const dataURL = await page.evaluate(() => {
    const c = document.createElement('canvas');
    c.width = 640;
    c.height = 400;
    const g = c.getContext('2d');
    const sky = g.createLinearGradient(0, 0, 0, 400);
    sky.addColorStop(0, '#ffb36b');
    sky.addColorStop(0.55, '#ff7e8a');
    sky.addColorStop(1, '#5b4b9e');
    g.fillStyle = sky;
    g.fillRect(0, 0, 640, 400);
    g.fillStyle = '#ffe8a3';
    g.beginPath();
    g.arc(440, 230, 60, 0, Math.PI * 2);
    g.fill();
    g.fillStyle = '#2d2553';
    g.beginPath();
    g.moveTo(0, 400);
    g.lineTo(0, 280);
    g.lineTo(150, 190);
    g.lineTo(280, 300);
    g.lineTo(400, 220);
    g.lineTo(640, 330);
    g.lineTo(640, 400);
    g.fill();
    return c.toDataURL('image/png');
  });
  return Buffer.from(dataURL.split(',')[1], 'base64');
}

describe('hush in the browser', { timeout: 600_000 }, () => {
  before(async () => {
    server = await startServer();
    browser = await launchBrowser();
    alice = await person(browser, server, 'alice');
    bob = await person(browser, server, 'bob');
    carol = await cliUser(server, 'carol');
  });

  after(async () => {
    const errors = [...(alice?.errors ?? []), ...(bob?.errors ?? [])];
    await browser?.close();
    await server?.stop();
    assert.deepEqual(errors, [], 'errors in the pages');
  });

  it('signs up alice and bob in the browser, and carol on the command line', async () => {
    await alice.page.locator('[data-testid=onboarding]').waitFor({ timeout: T });
    await alice.page.fill('[data-testid=username]', 'alice');
    await screenshot(alice.page, '01-sign-up');
    await signUp(alice);
    await signUp(bob);
    const out = await carol.run('register', 'carol', '--server', server.url);
    assert.match(out, /Registered carol/);
  });

  it('chats one to one: send, unread count, read receipt, reply, reaction, edit, typing', async () => {
    await startChat(alice, 'bob');
    await send(alice, 'Hi Bob! Are we still on for the climbing gym tomorrow?');
    await send(alice, 'I can bring the spare harness 🧗');

    // Bob sees the chat with two unread messages.
    const badge = conversation(bob, 'alice').locator('[data-testid=unread]');
    await badge.waitFor({ timeout: T });
    await eventually('two unread', async () => (await badge.textContent()) === '2');
    await screenshot(bob.page, '02-conversation-list-unread');

    await openConversation(bob, 'alice');
    await message(bob, 'spare harness').waitFor({ timeout: T });
    // Opening it sends read receipts: the badge goes, alice sees them read.
    await eventually('the badge to clear', async () => (await badge.count()) === 0);
    await message(alice, 'spare harness').locator('[data-testid=read]').waitFor({ timeout: T });

    // Bob types: alice sees it.
    await bob.page.fill('[data-testid=composer]', 'Yes');
    await bob.page.locator('[data-testid=composer]').pressSequentially('!', { delay: 50 });
    await alice.page.locator('[data-testid=typing]').waitFor({ timeout: T });

    // Bob replies to the first message and reacts to the second.
    const first = message(bob, 'climbing gym').first();
    await first.hover();
    await first.locator('[data-testid=reply-button]').click();
    await bob.page.locator('[data-testid=composer-context]').waitFor();
    await bob.page.fill('[data-testid=composer]', 'Yes! 7pm works for me.');
    await bob.page.press('[data-testid=composer]', 'Enter');
    await react(bob, 'spare harness', '👍');

    const reply = message(alice, '7pm works');
    await reply.waitFor({ timeout: T });
    assert.match(await reply.locator('[data-testid=quote]').textContent(), /climbing gym/);
    await message(alice, 'spare harness').locator('[data-testid=reaction]', { hasText: '👍' }).waitFor({ timeout: T });

    // Alice edits a message; bob sees the new text, marked edited.
    const mine = message(alice, 'spare harness').first();
    await mine.hover();
    await mine.locator('[data-testid=edit-button]').click();
    await alice.page.fill('[data-testid=composer]', 'I can bring the spare harness and chalk 🧗');
    await alice.page.press('[data-testid=composer]', 'Enter');
    await message(bob, 'and chalk').locator('.meta', { hasText: 'edited' }).waitFor({ timeout: T });
    await react(alice, '7pm works', '❤️');

    // Delete for everyone: bob's page forgets the text.
    await send(alice, 'Oops, wrong chat');
    await message(bob, 'Oops, wrong chat').waitFor({ timeout: T });
    const oops = message(alice, 'Oops, wrong chat');
    await oops.hover();
    alice.page.once('dialog', (d) => d.accept());
    await oops.locator('[data-testid=delete-button]').click();
    await message(bob, 'Oops, wrong chat').waitFor({ state: 'detached', timeout: T });
    await bob.page.locator('[data-testid=message] .deleted-text').waitFor({ timeout: T });
    await screenshot(alice.page, '03-chat');
  });

  it('runs a group with a command-line member: messages, reactions, a photo', async () => {
    await alice.page.click('[data-testid=new-group]');
    await alice.page.fill('[data-testid=group-name]', 'Weekend trip');
    await alice.page.fill('[data-testid=group-members]', 'bob, carol');
    await alice.page.click('[data-testid=group-create]');
    await alice.page.locator('[data-testid=conv-title]', { hasText: 'Weekend trip' }).waitFor({ timeout: T });
    await send(alice, 'Who is in for the lake on Saturday?');

    // carol, on the command line, reads it and answers.
    await eventually('carol to get the group message', async () => (await cliMessages(carol, 'Weekend trip')).some((m) => m.text?.includes('the lake')));
    await carol.run('send', 'Weekend trip', 'Count me in! I will bring the tent 🏕️');

    await openConversation(bob, 'Weekend trip');
    await message(bob, 'Count me in').waitFor({ timeout: T });
    assert.equal(await message(bob, 'Count me in').getAttribute('data-sender'), 'carol');
    await send(bob, 'Same here, I will drive');
    await react(bob, 'Count me in', '🎉');

    // carol sees bob's reaction and message.
    await eventually('carol to see the reaction', async () => {
      const msgs = await cliMessages(carol, 'Weekend trip');
      return msgs.some((m) => m.text?.includes('Count me in') && m.reactions?.some((r) => r.user === 'bob' && r.emoji === '🎉')) && msgs.some((m) => m.text?.includes('I will drive'));
    });

    // A photo from alice: encrypted in her browser, previewed in bob's,
    // and the same bytes on carol's command line.
    const photo = await drawPhoto(alice.page);
    await alice.page.setInputFiles('[data-testid=file-input]', { name: 'sunset.png', mimeType: 'image/png', buffer: photo });
    await alice.page.locator('[data-testid=message] [data-testid=image]').waitFor({ timeout: T });
    const img = bob.page.locator('[data-testid=message] [data-testid=image]');
    await img.waitFor({ timeout: T });
    await eventually('the preview to load', () => img.evaluate((el) => el.complete && el.naturalWidth === 640));
    const msgs = await eventually('carol to get the photo', async () => (await cliMessages(carol, 'Weekend trip')).find((m) => m.attachment?.name === 'sunset.png'));
    await carol.run('download', msgs.id, server.dir);
    assert.deepEqual(await readFile(path.join(server.dir, 'sunset.png')), photo);

    await bob.page.click('[data-testid=details-button]');
    await bob.page.locator('[data-testid=members] li', { hasText: 'carol' }).waitFor({ timeout: T });
    await screenshot(bob.page, '04-group');
    await bob.page.click('[data-testid=details-button]');
  });

  it('shows the safety number and its QR code, the same on both sides', async () => {
    await openConversation(alice, 'bob');
    await alice.page.click('[data-testid=verify-button]');
    const number = alice.page.locator('[data-testid=safety-number]');
    await number.waitFor({ timeout: T });
    await alice.page.locator('[data-testid=qr]').waitFor();
    const a = (await number.textContent()).replace(/\D/g, '');
    assert.equal(a.length, 60);

    await openConversation(bob, 'alice');
    await bob.page.click('[data-testid=verify-button]');
    await bob.page.locator('[data-testid=safety-number]').waitFor({ timeout: T });
    const b = (await bob.page.locator('[data-testid=safety-number]').textContent()).replace(/\D/g, '');
    assert.equal(a, b, 'alice and bob compute the same safety number');
    await screenshot(alice.page, '05-safety-number');
    await alice.page.click('[data-testid=mark-verified]');
    await alice.page.locator('[data-testid=verified]').waitFor({ timeout: T });
    await alice.page.keyboard.press('Escape');
    await bob.page.keyboard.press('Escape');
  });

  it('keeps the account and its conversations across a reload', async () => {
    await bob.page.reload();
    await bob.page.locator('[data-testid=sidebar]').waitFor({ timeout: T });
    await conversation(bob, 'alice').waitFor({ timeout: T });
    await conversation(bob, 'Weekend trip').waitFor({ timeout: T });
    await openConversation(bob, 'alice');
    await message(bob, 'climbing gym').waitFor({ timeout: T });
    // The MLS state survived too: new messages both ways still decrypt.
    await send(alice, 'See you there!');
    await message(bob, 'See you there!').waitFor({ timeout: T });
    await send(bob, 'See you 👋');
    await message(alice, 'See you 👋').waitFor({ timeout: T });
  });

  it('makes a 5-second disappearing message vanish from both pages', async () => {
    await openConversation(alice, 'bob');
    await openConversation(bob, 'alice');
    await alice.page.click('[data-testid=timer-button]');
    await alice.page.click('[data-testid=timer-5]');
    await alice.page.locator('[data-testid=timer-pill]', { hasText: '5 seconds' }).waitFor({ timeout: T });
    // The timer is group state: bob's side agrees.
    await bob.page.locator('[data-testid=timer-pill]', { hasText: '5 seconds' }).waitFor({ timeout: T });

    const text = 'The door code is 4711 (this disappears)';
    await send(alice, text);
    await message(bob, text).waitFor({ timeout: T });
    // Both show the time left; bob's timer starts when he sees it.
    await message(alice, text).locator('[data-testid=expires]').waitFor({ timeout: T });
    await message(bob, text).locator('[data-testid=expires]').waitFor({ timeout: T });
    await screenshot(bob.page, '07-disappearing');
    const shownAt = Date.now();
    await message(alice, text).waitFor({ state: 'detached', timeout: 20_000 });
    await message(bob, text).waitFor({ state: 'detached', timeout: 20_000 });
    assert.ok(Date.now() - shownAt < 15_000, 'gone within its 5 seconds and a little');
    // Gone from storage too, not just hidden: a reload does not bring it back.
    await bob.page.reload();
    await openConversation(bob, 'alice');
    await message(bob, 'See you 👋').waitFor({ timeout: T });
    assert.equal(await message(bob, text).count(), 0);

    await alice.page.click('[data-testid=timer-button]');
    await alice.page.click('[data-testid=timer-0]');
    await alice.page.locator('[data-testid=timer-pill]').waitFor({ state: 'detached', timeout: T });
  });

  it('calls between two browsers through the SFU: ringing, SFrame on every frame, keys from the MLS group', async () => {
    await openConversation(alice, 'bob');
    await openConversation(bob, 'alice');
    await alice.page.click('[data-testid=call-button]');
    await alice.page.locator('[data-testid=call]').waitFor({ timeout: T });
    // Bob's page rings (an MLS message from alice), and he answers.
    await bob.page.locator('[data-testid=ringing]').waitFor({ timeout: T });
    assert.match(await bob.page.locator('[data-testid=ringing]').textContent(), /alice/);
    await screenshot(bob.page, '10-ringing');
    await bob.page.click('[data-testid=accept-call]');
    for (const p of [alice, bob]) {
      const s = await eventually(`${p.name}'s received frames to decrypt`, async () => {
        const s = await callStats(p);
        return s.decrypted > 50 && s.encryptedAudio > 20 && s.encryptedVideo > 20 && s.framesDecoded > 10 && s.audioPackets > 10 ? s : null;
      });
      assert.equal(s.failed, 0, `${p.name}: frames that did not open: ${s.error}`);
      assert.ok(s.epoch >= 1, `${p.name}: keyed from an MLS epoch`);
    }
    await alice.page.waitForTimeout(1500);
    await screenshot(bob.page, '08-call');
    // Alice turns her microphone and camera off: what leaves is silence
    // and black, still encrypted, and bob goes on decrypting it; then on.
    await alice.page.click('[data-testid=mute-audio]');
    await alice.page.click('[data-testid=mute-video]');
    assert.equal(await alice.page.getAttribute('[data-testid=mute-audio]', 'aria-pressed'), 'true');
    assert.equal(await alice.page.getAttribute('[data-testid=mute-video]', 'aria-pressed'), 'true');
    const before = { a: await callStats(alice), b: await callStats(bob) };
    await eventually('frames to go on while muted', async () => {
      const a = await callStats(alice);
      const b = await callStats(bob);
      return a.encryptedAudio > before.a.encryptedAudio + 20 && a.encryptedVideo > before.a.encryptedVideo + 5 && b.decrypted > before.b.decrypted + 20 ? b : null;
    });
    assert.equal((await callStats(bob)).failed, 0);
    await alice.page.click('[data-testid=mute-audio]');
    await alice.page.click('[data-testid=mute-video]');
    assert.equal(await alice.page.getAttribute('[data-testid=mute-audio]', 'aria-pressed'), 'false');
    // Alice hangs up: bob is alone in the call, then hangs up too.
    await alice.page.click('[data-testid=hangup]');
    await alice.page.locator('[data-testid=call]').waitFor({ state: 'detached', timeout: T });
    await bob.page.locator('[data-testid=call][data-participants="0"]').waitFor({ timeout: T });
    assert.equal((await callStats(bob)).failed, 0);
    await bob.page.click('[data-testid=hangup]');
    await bob.page.locator('[data-testid=call]').waitFor({ state: 'detached', timeout: T });
  });

  it('rings again for a call that outlived its caller (a page gone mid-call)', async () => {
    await openConversation(alice, 'bob');
    await openConversation(bob, 'alice');
    const placed = Date.now();
    await alice.page.click('[data-testid=call-button]');
    await alice.page.locator('[data-testid=call]').waitFor({ timeout: T });
    await bob.page.locator('[data-testid=ringing]').waitFor({ timeout: T });
    await bob.page.click('[data-testid=decline-call]');
    // Alice's page goes away in the middle of the call without hanging up
    // (a reload here; a crash or a closed laptop alike): nobody tells the
    // members, so the call stays current on bob's side, with alice in it.
    await alice.page.reload();
    await alice.page.locator('[data-testid=sidebar]').waitFor({ timeout: T });
    await openConversation(alice, 'bob');
    await bob.page.locator('[data-testid=join-call]').waitFor({ timeout: T });
    // Once the call is older than client.RingAgainAfter (10 s), bob joins
    // it, finds nobody in the SFU's room, and rings alice again.
    await bob.page.waitForTimeout(Math.max(0, placed + 11_000 - Date.now()));
    await bob.page.click('[data-testid=join-call]');
    await bob.page.locator('[data-testid=call]').waitFor({ timeout: T });
    await alice.page.locator('[data-testid=ringing]').waitFor({ timeout: T });
    assert.match(await alice.page.locator('[data-testid=ringing]').textContent(), /bob/);
    await alice.page.click('[data-testid=accept-call]');
    for (const p of [alice, bob]) {
      const s = await eventually(`${p.name}'s frames in the call rung again`, async () => {
        const s = await callStats(p);
        return s.decrypted > 20 ? s : null;
      });
      assert.equal(s.failed, 0, `${p.name}: frames that did not open: ${s.error}`);
    }
    for (const p of [alice, bob]) {
      await p.page.click('[data-testid=hangup]');
      await p.page.locator('[data-testid=call]').waitFor({ state: 'detached', timeout: T });
    }
  });

  it('calls between a browser and the command line through the SFU, each side decrypting the other', async () => {
    // Real Opus and VP8 for carol, encoded by the browser's WebCodecs.
    const ogg = path.join(server.dir, 'carol.ogg');
    const ivf = path.join(server.dir, 'carol.ivf');
    const made = await makeMedia(alice.page, 60, ogg, ivf);
    assert.ok(made.audioPackets >= 3000 && made.videoFrames >= 1800, JSON.stringify(made));

    // Alice calls the group; bob declines; carol joins from the command line.
    await openConversation(alice, 'Weekend trip');
    await openConversation(bob, 'Weekend trip');
    await alice.page.click('[data-testid=call-button]');
    await alice.page.locator('[data-testid=call]').waitFor({ timeout: T });
    await bob.page.locator('[data-testid=ringing]').waitFor({ timeout: T });
    await bob.page.click('[data-testid=decline-call]');
    await bob.page.locator('[data-testid=ringing]').waitFor({ state: 'detached', timeout: T });
    // The call goes on: bob's header offers to join it.
    await bob.page.locator('[data-testid=join-call]').waitFor({ timeout: T });

    const rec = path.join(server.dir, 'carol-recording');
    await mkdir(rec, { recursive: true });
    const cli = carol.spawn('call', 'Weekend trip', '--audio', ogg, '--video', ivf, '--record', rec);
    const running = () => {
      if (cli.proc.exitCode !== null) throw new Error(`hush call exited (${cli.proc.exitCode}): ${cli.output()}`);
    };
    try {
      // Alice's page receives carol's audio and video and decrypts them.
      const s = await eventually("carol's frames to decrypt in alice's page", async () => {
        running();
        const s = await callStats(alice);
        return s.decrypted > 100 && s.framesDecoded > 10 && s.audioPackets > 50 ? s : null;
      }, 60_000);
      assert.equal(s.failed, 0, `frames that did not open: ${s.error}`);
      await screenshot(alice.page, '11-call-cli');
      // Carol's recording of alice's streams holds frames, and more later.
      const first = await eventually("carol's recording of alice", async () => {
        running();
        const c = await recorded(rec);
        return c.ivfFrames > 10 && c.oggPackets > 10 ? c : null;
      }, 60_000);
      const later = await eventually('the recording to grow', async () => {
        const c = await recorded(rec);
        return c.ivfFrames > first.ivfFrames && c.oggPackets > first.oggPackets ? c : null;
      });
      assert.ok(later.ivfFrames > first.ivfFrames);

      // A commit mid-call (bob, who declined, sets the group's timer):
      // the epoch moves, and both sides' keys follow it.
      const before = await callStats(alice);
      await bob.page.click('[data-testid=timer-button]');
      await bob.page.click('[data-testid=timer-3600]');
      await bob.page.locator('[data-testid=timer-pill]', { hasText: '1 hour' }).waitFor({ timeout: T });
      const after = await eventually("alice's keys to follow the commit", async () => {
        const s = await callStats(alice);
        return s.epoch > before.epoch && s.decrypted > before.decrypted + 100 ? s : null;
      });
      const rekeyed = await recorded(rec);
      await eventually("carol's recording to go on after the commit", async () => (await recorded(rec)).ivfFrames > rekeyed.ivfFrames + 30);
      assert.equal(after.failed, 0, `frames that did not open after the commit: ${after.error}`);
      assert.equal((await callStats(alice)).failed, 0, 'no frame failed in alice\'s page');
      await bob.page.click('[data-testid=timer-button]');
      await bob.page.click('[data-testid=timer-0]');
      await bob.page.locator('[data-testid=timer-pill]').waitFor({ state: 'detached', timeout: T });
    } finally {
      await cli.stop();
      // Whatever happened, alice leaves the call, for the tests after.
      if (await alice.page.locator('[data-testid=hangup]').count()) await alice.page.click('[data-testid=hangup]');
    }
    await alice.page.locator('[data-testid=call]').waitFor({ state: 'detached', timeout: T });
  });

  it('links a browser as another device of an account made on the command line', async () => {
    // carol runs `hush link`, which prints a code and waits.
    const env = { ...process.env, XDG_DATA_HOME: path.join(server.dir, 'xdg-carol'), HOME: path.join(server.dir, 'xdg-carol') };
    const proc = spawn(server.bin, ['link', '--profile', 'carol', '--json'], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.stderr.on('data', (d) => (out += d));
    const exit = new Promise((r) => proc.on('exit', r));
    const code = await eventually('the link code', async () => out.match(/"code":\s*"([^"]+)"/)?.[1]);

    const carolWeb = await person(browser, server, 'carol-web');
    await carolWeb.page.locator('[data-testid=onboarding]').waitFor({ timeout: T });
    await carolWeb.page.click('[data-testid=tab-link]');
    await carolWeb.page.fill('[data-testid=link-code]', code);
    await screenshot(carolWeb.page, '06-link-browser');
    await carolWeb.page.click('[data-testid=link]');
    await carolWeb.page.locator('[data-testid=sidebar]').waitFor({ timeout: 60_000 });
    assert.equal(await exit, 0, `hush link: ${out}`);

    // The group arrives once the CLI device has added the browser, and new
    // messages reach it.
    await eventually('the group on the linked browser', async () => {
      const c = conversation(carolWeb, 'Weekend trip');
      return (await c.count()) > 0 && !(await c.getAttribute('class')).includes('inactive');
    }, 60_000);
    await openConversation(alice, 'Weekend trip');
    await send(alice, 'Carol, your browser is in the group now');
    await openConversation(carolWeb, 'Weekend trip');
    await message(carolWeb, 'your browser is in the group').waitFor({ timeout: T });
    // ... and what the browser sends shows on carol's other device.
    await send(carolWeb, 'Hello from my browser');
    await eventually('the CLI device to see it', async () => (await cliMessages(carol, 'Weekend trip')).some((m) => m.text === 'Hello from my browser' && m.outgoing));
    assert.deepEqual(carolWeb.errors, []);
    await carolWeb.context.close();
  });

  it('links a command-line device to an account made in the browser', async () => {
    await alice.page.click('[data-testid=me]');
    await alice.page.click('[data-testid=menu-link]');
    const code = (await alice.page.locator('[data-testid=link-offer-code]').textContent({ timeout: T })).trim();
    assert.match(await alice.page.locator('[data-testid=link-command]').textContent(), /hush link --code/);
    await screenshot(alice.page, '09-link-device');
    const laptop = await cliUser(server, 'alice-laptop');
    await laptop.run('link', '--code', code, '--server', server.url);
    await alice.page.locator('[data-testid=linked]').waitFor({ timeout: 60_000 });
    await alice.page.keyboard.press('Escape');
    await openConversation(alice, 'Weekend trip');
    await send(alice, 'Sent from the browser, read on the laptop');
    await eventually('the linked CLI device to read it', async () => (await cliMessages(laptop, 'Weekend trip')).some((m) => m.text === 'Sent from the browser, read on the laptop'), 60_000);
  });
});
