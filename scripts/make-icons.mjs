#!/usr/bin/env node
// Draws the home-screen icons (a white "next" chevron on Clicker blue) as
// PNGs. Run once when the design changes; the PNGs are committed.
import { writeFileSync } from 'node:fs';
import { PNG } from 'pngjs';

function inChevron(x, y) {
  // Two thick strokes meeting at the right: from (0.38,0.25) to (0.64,0.5) to (0.38,0.75).
  const dist = (px, py, ax, ay, bx, by) => {
    const t = Math.max(0, Math.min(1, ((px - ax) * (bx - ax) + (py - ay) * (by - ay)) / ((bx - ax) ** 2 + (by - ay) ** 2)));
    return Math.hypot(px - (ax + t * (bx - ax)), py - (ay + t * (by - ay)));
  };
  const w = 0.065;
  return dist(x, y, 0.38, 0.25, 0.64, 0.5) < w || dist(x, y, 0.64, 0.5, 0.38, 0.75) < w;
}

for (const size of [192, 512]) {
  const png = new PNG({ width: size, height: size });
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      const i = (y * size + x) * 4;
      const white = inChevron((x + 0.5) / size, (y + 0.5) / size);
      png.data[i] = white ? 255 : 0x3d;
      png.data[i + 1] = white ? 255 : 0x8b;
      png.data[i + 2] = white ? 255 : 0xfd;
      png.data[i + 3] = 255;
    }
  }
  writeFileSync(`controller/icons/icon-${size}.png`, PNG.sync.write(png));
}
console.log('wrote controller/icons/icon-192.png and icon-512.png');
