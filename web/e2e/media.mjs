// Media files for a command-line participant of a call (`hush call
// --audio F.ogg --video F.ivf`): real Opus and VP8, encoded by Chromium's
// WebCodecs from a generated tone and a generated moving picture, in an
// Ogg Opus file (RFC 7845) and an IVF file, so that a browser on the other
// side of the call can decode and show what the CLI sends.

import { writeFile } from 'node:fs/promises';

/**
 * makeMedia encodes `seconds` of a 440 Hz tone (Opus, 48 kHz mono, 20 ms
 * packets) and of a moving test picture (VP8, 320×240, 30 frames a
 * second, a keyframe every second) in page, and writes them to oggPath
 * and ivfPath.
 */
export async function makeMedia(page, seconds, oggPath, ivfPath) {
  const { opus, vp8 } = await page.evaluate(async (seconds) => {
    const b64 = (u8) => {
      let s = '';
      for (let i = 0; i < u8.length; i += 0x8000) s += String.fromCharCode(...u8.subarray(i, i + 0x8000));
      return btoa(s);
    };
    const chunkBytes = (c) => {
      const b = new Uint8Array(c.byteLength);
      c.copyTo(b);
      return b;
    };

    // Opus: 20 ms frames of a tone.
    const packets = [];
    let audioError = null;
    const ae = new AudioEncoder({ output: (c) => packets.push(chunkBytes(c)), error: (e) => (audioError = e) });
    ae.configure({ codec: 'opus', sampleRate: 48000, numberOfChannels: 1, bitrate: 48000 });
    const n = 960;
    for (let i = 0; i < seconds * 50; i++) {
      const data = new Float32Array(n);
      for (let j = 0; j < n; j++) data[j] = 0.3 * Math.sin((2 * Math.PI * 440 * (i * n + j)) / 48000);
      const ad = new AudioData({ format: 'f32-planar', sampleRate: 48000, numberOfFrames: n, numberOfChannels: 1, timestamp: (i * n * 1e6) / 48000, data });
      ae.encode(ad);
      ad.close();
    }
    await ae.flush();
    if (audioError) throw audioError;

    // VP8: a gradient with a square that moves, and the frame number.
    const frames = [];
    let videoError = null;
    const ve = new VideoEncoder({ output: (c) => frames.push(chunkBytes(c)), error: (e) => (videoError = e) });
    ve.configure({ codec: 'vp8', width: 320, height: 240, bitrate: 400_000, framerate: 30 });
    const canvas = new OffscreenCanvas(320, 240);
    const g = canvas.getContext('2d');
    for (let i = 0; i < seconds * 30; i++) {
      const grad = g.createLinearGradient(0, 0, 320, 240);
      grad.addColorStop(0, '#6a7cff');
      grad.addColorStop(1, '#8f5cf0');
      g.fillStyle = grad;
      g.fillRect(0, 0, 320, 240);
      g.fillStyle = '#ffe8a3';
      g.fillRect(20 + ((i * 4) % 240), 80, 60, 60);
      g.fillStyle = '#fff';
      g.font = '20px sans-serif';
      g.fillText(`carol · ${i}`, 16, 30);
      const vf = new VideoFrame(canvas, { timestamp: Math.round((i * 1e6) / 30) });
      ve.encode(vf, { keyFrame: i % 30 === 0 });
      vf.close();
      if (ve.encodeQueueSize > 30) await new Promise((r) => setTimeout(r, 10));
    }
    await ve.flush();
    if (videoError) throw videoError;
    return { opus: packets.map(b64), vp8: frames.map(b64) };
  }, seconds);
  await writeFile(oggPath, oggOpus(opus.map((s) => Buffer.from(s, 'base64'))));
  await writeFile(ivfPath, ivf(vp8.map((s) => Buffer.from(s, 'base64')), 320, 240, 30));
  return { audioPackets: opus.length, videoFrames: vp8.length };
}

// ---- IVF: a 32-byte header, then per frame its size, timestamp, bytes.
function ivf(frames, width, height, rate) {
  const h = Buffer.alloc(32);
  h.write('DKIF', 0, 'latin1');
  h.writeUInt16LE(0, 4);
  h.writeUInt16LE(32, 6);
  h.write('VP80', 8, 'latin1');
  h.writeUInt16LE(width, 12);
  h.writeUInt16LE(height, 14);
  h.writeUInt32LE(rate, 16); // timebase denominator
  h.writeUInt32LE(1, 20); // timebase numerator
  h.writeUInt32LE(frames.length, 24);
  const parts = [h];
  frames.forEach((f, i) => {
    const fh = Buffer.alloc(12);
    fh.writeUInt32LE(f.length, 0);
    fh.writeBigUInt64LE(BigInt(i), 4);
    parts.push(fh, f);
  });
  return Buffer.concat(parts);
}

// ---- Ogg Opus: OpusHead and OpusTags pages, then one packet per page.
const crcTable = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let r = i << 24;
    for (let j = 0; j < 8; j++) r = r & 0x80000000 ? (r << 1) ^ 0x04c11db7 : r << 1;
    t[i] = r >>> 0;
  }
  return t;
})();

function oggCRC(b) {
  let crc = 0;
  for (const x of b) crc = ((crc << 8) ^ crcTable[((crc >>> 24) ^ x) & 0xff]) >>> 0;
  return crc;
}

function oggPage(packet, { serial, seq, granule, flags }) {
  const lacing = [];
  let left = packet.length;
  while (left >= 255) {
    lacing.push(255);
    left -= 255;
  }
  lacing.push(left);
  const h = Buffer.alloc(27 + lacing.length);
  h.write('OggS', 0, 'latin1');
  h.writeUInt8(0, 4);
  h.writeUInt8(flags, 5);
  h.writeBigInt64LE(BigInt(granule), 6);
  h.writeUInt32LE(serial, 14);
  h.writeUInt32LE(seq, 18);
  h.writeUInt32LE(0, 22);
  h.writeUInt8(lacing.length, 26);
  Buffer.from(lacing).copy(h, 27);
  const page = Buffer.concat([h, packet]);
  page.writeUInt32LE(oggCRC(page), 22);
  return page;
}

function oggOpus(packets) {
  const serial = 0x48757368; // "Hush"
  const preSkip = 312;
  const head = Buffer.alloc(19);
  head.write('OpusHead', 0, 'latin1');
  head.writeUInt8(1, 8); // version
  head.writeUInt8(1, 9); // channels
  head.writeUInt16LE(preSkip, 10);
  head.writeUInt32LE(48000, 12);
  head.writeInt16LE(0, 16);
  head.writeUInt8(0, 18); // mapping family
  const vendor = Buffer.from('hush e2e', 'latin1');
  const tags = Buffer.alloc(8 + 4 + vendor.length + 4);
  tags.write('OpusTags', 0, 'latin1');
  tags.writeUInt32LE(vendor.length, 8);
  vendor.copy(tags, 12);
  tags.writeUInt32LE(0, 12 + vendor.length);
  const pages = [oggPage(head, { serial, seq: 0, granule: 0, flags: 0x02 }), oggPage(tags, { serial, seq: 1, granule: 0, flags: 0 })];
  let granule = preSkip;
  packets.forEach((p, i) => {
    granule += 960;
    pages.push(oggPage(p, { serial, seq: i + 2, granule, flags: i === packets.length - 1 ? 0x04 : 0 }));
  });
  return Buffer.concat(pages);
}
