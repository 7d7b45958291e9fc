// Gzipped bundle sizes, as the build measured them: the phone loads its
// bundle over venue Wi-Fi, so its size is a figure to watch across commits.
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { isRecord } from '../lib/http';
import type { Scenario } from '../lib/scenario';

interface Pair {
  js: number;
  css: number;
}

function pair(v: unknown, what: string): Pair {
  if (!isRecord(v) || typeof v.js !== 'number' || typeof v.css !== 'number') {
    throw new Error(`dist/sizes.json: ${what} should be {"js": bytes, "css": bytes}`);
  }
  return { js: v.js, css: v.css };
}

const kib = (bytes: number) => Math.round((bytes / 1024) * 10) / 10;

export const sizesScenario: Scenario = {
  name: 'sizes',
  description: 'gzipped browser bundles, from dist/sizes.json',
  needsServers: false,
  async run(ctx) {
    const file = path.join(ctx.rootDir, 'dist', 'sizes.json');
    const raw: unknown = JSON.parse(await readFile(file, 'utf8'));
    if (!isRecord(raw)) throw new Error('dist/sizes.json: not an object');
    const slides = pair(raw.slides, 'slides');
    const controller = pair(raw.controller, 'controller');
    return {
      rows: [
        { figure: 'slideshow bundle js+css (gzip)', clicker: kib(slides.js + slides.css), relay: null, unit: 'KiB' },
        { figure: 'controller bundle js+css (gzip)', clicker: kib(controller.js + controller.css), relay: null, unit: 'KiB' },
      ],
      data: { bytes: { slides: { ...slides }, controller: { ...controller } } },
    };
  },
};
