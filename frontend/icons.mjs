// Draws the page's icon at build time and writes what browsers ask for: `favicon.ico` (a
// 32 px PNG inside an ICO, which every current browser reads) and the 192 and 512 px PNGs
// the web app manifest names. Drawn here rather than committed as binaries, so the icon is
// reviewable code and every size comes from the one shape. Called by compress.mjs.
//
// The shape: a speech bubble (white) on a rounded square of the page's accent colour, with
// the bubble inside the central 80%, the safe zone of a maskable icon.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import zlib from "node:zlib";

const ACCENT = [0x2f, 0x6f, 0xed];
const WHITE = [0xff, 0xff, 0xff];

/** Distance from (x, y) to a rounded rectangle, negative inside. */
function roundedRect(x, y, cx, cy, halfW, halfH, r) {
  const qx = Math.abs(x - cx) - halfW + r;
  const qy = Math.abs(y - cy) - halfH + r;
  const outside = Math.hypot(Math.max(qx, 0), Math.max(qy, 0));
  return outside + Math.min(Math.max(qx, qy), 0) - r;
}

/** Whether (x, y), in units of the icon's side (0..1), is inside the triangle abc. */
function inTriangle(x, y, [ax, ay], [bx, by], [cx, cy]) {
  const side = (px, py, qx, qy) => (x - qx) * (py - qy) - (px - qx) * (y - qy);
  const [d1, d2, d3] = [side(ax, ay, bx, by), side(bx, by, cx, cy), side(cx, cy, ax, ay)];
  return !((d1 < 0 || d2 < 0 || d3 < 0) && (d1 > 0 || d2 > 0 || d3 > 0));
}

/** The colour at (x, y) in 0..1 units, or null outside the icon. */
function shade(x, y) {
  if (roundedRect(x, y, 0.5, 0.5, 0.5, 0.5, 0.18) > 0) return null;
  const bubble = roundedRect(x, y, 0.5, 0.45, 0.3, 0.21, 0.1) <= 0;
  const tail = inTriangle(x, y, [0.32, 0.6], [0.46, 0.6], [0.3, 0.78]);
  return bubble || tail ? WHITE : ACCENT;
}

/** RGBA pixels of the icon at `size` px, 4x4 samples per pixel for smooth edges. */
function draw(size) {
  const n = 4;
  const rgba = Buffer.alloc(size * size * 4);
  for (let py = 0; py < size; py++) {
    for (let px = 0; px < size; px++) {
      const sum = [0, 0, 0, 0];
      for (let sy = 0; sy < n; sy++) {
        for (let sx = 0; sx < n; sx++) {
          const c = shade((px + (sx + 0.5) / n) / size, (py + (sy + 0.5) / n) / size);
          if (!c) continue;
          for (let i = 0; i < 3; i++) sum[i] += c[i];
          sum[3] += 1;
        }
      }
      const at = (py * size + px) * 4;
      // Colour averaged over the covered samples, alpha the covered share.
      for (let i = 0; i < 3; i++) rgba[at + i] = sum[3] ? Math.round(sum[i] / sum[3]) : 0;
      rgba[at + 3] = Math.round((255 * sum[3]) / (n * n));
    }
  }
  return rgba;
}

function chunk(type, data) {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(data.length, 0);
  head.write(type, 4, "ascii");
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(zlib.crc32(Buffer.concat([head.subarray(4), data])), 0);
  return Buffer.concat([head, data, crc]);
}

/** A PNG of RGBA pixels: 8-bit truecolour with alpha, no filtering, deflated. */
export function png(size, rgba) {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(size, 0);
  ihdr.writeUInt32BE(size, 4);
  ihdr[8] = 8; // bits per channel
  ihdr[9] = 6; // RGBA
  const rows = Buffer.alloc(size * (size * 4 + 1));
  for (let y = 0; y < size; y++) {
    // Each row starts with its filter type, 0 (none).
    rgba.copy(rows, y * (size * 4 + 1) + 1, y * size * 4, (y + 1) * size * 4);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    chunk("IDAT", zlib.deflateSync(rows, { level: 9 })),
    chunk("IEND", Buffer.alloc(0)),
  ]);
}

/** An ICO holding one PNG image (allowed since Windows Vista; read by every browser). */
export function ico(size, pngBytes) {
  const header = Buffer.alloc(6 + 16);
  header.writeUInt16LE(0, 0); // reserved
  header.writeUInt16LE(1, 2); // type: icon
  header.writeUInt16LE(1, 4); // one image
  header[6] = size; // width (0 would mean 256)
  header[7] = size; // height
  header.writeUInt16LE(1, 10); // colour planes
  header.writeUInt16LE(32, 12); // bits per pixel
  header.writeUInt32LE(pngBytes.length, 14);
  header.writeUInt32LE(header.length, 18); // the image follows the directory
  return Buffer.concat([header, pngBytes]);
}

/** Writes favicon.ico, icon-192.png and icon-512.png into `dir`. */
export async function writeIcons(dir) {
  await writeFile(join(dir, "favicon.ico"), ico(32, png(32, draw(32))));
  for (const size of [192, 512]) {
    await writeFile(join(dir, `icon-${size}.png`), png(size, draw(size)));
  }
  console.log("icons: favicon.ico, icon-192.png, icon-512.png");
}
