// Benchmark (not a test): what SFrame costs in the page's transform worker,
// i.e. package sframe compiled to WebAssembly (dist/sframe.wasm), per
// frame, in Debian's Chromium. Two pages keyed as two members of one
// epoch: the first encrypts video frames of a few sizes, the second
// decrypts them (every one must open). Prints wall time per frame and the
// page's main-thread CPU time (Chrome's TaskDuration metric), which on a
// shared machine is the steadier figure.
//
//   node bench/sframe.mjs        (HUSH_BIN=path to use a built hush)

import { launchBrowser, startServer } from '../e2e/harness.mjs';

const server = await startServer();
const browser = await launchBrowser();
try {
  const a = await sframePage(0);
  const b = await sframePage(1);
  // The first size is run twice: its first pass warms up (JIT tiers, key
  // derivation) and is not printed.
  for (const [i, size] of [100, 100, 1200, 10000].entries()) {
    const n = size > 5000 ? 1000 : 5000;
    const enc = await measure(a, ([size, n]) => {
      const frame = new Uint8Array(size).fill(1);
      globalThis.out = [];
      for (let i = 0; i < n; i++) globalThis.out.push(globalThis.hushSFrame.encrypt(true, frame));
      return globalThis.out.length;
    }, [size, n]);
    // Carried as base64: Playwright's JSON of numbers is slow.
    const cts = await a.evaluate(() => globalThis.out.map((c) => btoa(String.fromCharCode(...c))));
    await b.evaluate((cts) => (globalThis.in = cts.map((s) => Uint8Array.from(atob(s), (x) => x.charCodeAt(0)))), cts);
    const dec = await measure(b, () => globalThis.in.filter((c) => globalThis.hushSFrame.decrypt(c) instanceof Uint8Array).length);
    if (dec.result !== n) throw new Error(`only ${dec.result} of ${n} frames opened`);
    if (i === 0) continue;
    const us = (x) => ((x * 1e6) / n).toFixed(0).padStart(5);
    console.log(`${String(size).padStart(5)} B × ${n}: encrypt ${us(enc.wall)} µs wall ${us(enc.cpu)} µs CPU; decrypt ${us(dec.wall)} µs wall ${us(dec.cpu)} µs CPU (per frame)`);
  }
} finally {
  await browser.close();
  await server.stop();
}

async function sframePage(leaf) {
  const page = await (await browser.newContext()).newPage();
  await page.goto(server.url + '/');
  await page.evaluate(async (leaf) => {
    await new Promise((resolve) => {
      globalThis.hushSFrameReady = resolve;
      const go = new Go();
      WebAssembly.instantiateStreaming(fetch('/sframe.wasm'), go.importObject).then(({ instance }) => go.run(instance));
    });
    const err = globalThis.hushSFrame.setEpoch(1, 2, leaf, new Uint8Array(16).fill(7));
    if (err) throw new Error(err);
  }, leaf);
  page.cdp = await page.context().newCDPSession(page);
  await page.cdp.send('Performance.enable');
  return page;
}

/** Runs fn in page; returns its result, seconds of wall time and of main-thread CPU. */
async function measure(page, fn, arg) {
  const cpu = async () => (await page.cdp.send('Performance.getMetrics')).metrics.find((m) => m.name === 'TaskDuration').value;
  const c0 = await cpu();
  const { result, ms } = await page.evaluate(
    ([src, arg]) => {
      const t = performance.now();
      const result = (0, eval)(src)(arg);
      return { result, ms: performance.now() - t };
    },
    [fn.toString(), arg],
  );
  return { result, wall: ms / 1000, cpu: (await cpu()) - c0 };
}
