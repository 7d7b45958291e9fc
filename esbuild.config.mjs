// Builds the browser bundles (slideshow, phone) and the server, and reports
// the gzipped size of each browser bundle: the phone is often on venue Wi-Fi,
// so its budget is checked here on every build.
import { build } from 'esbuild';
import { cpSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { gzipSync } from 'node:zlib';

const quiet = process.argv.includes('--quiet') || process.env.npm_lifecycle_event === 'start';

/** The controller's JS + CSS must stay within this many gzipped bytes. */
const CONTROLLER_BUDGET = 25 * 1024;
/**
 * The drop-in script (dist/client/clicker.js) loads into other people's pages; most of it is the QR encoder.
 * 16.5 KiB since its streams judge a silence by the server's beats (protocol/live.ts): 0.2 KiB that finds a dead connection.
 */
const DROPIN_BUDGET = 16.5 * 1024;

const common = { bundle: true, minify: true, sourcemap: 'linked', legalComments: 'none', logLevel: 'warning' };

await Promise.all([
  build({
    ...common,
    entryPoints: { slides: 'slides/main.ts', controller: 'controller/main.ts' },
    outdir: 'dist/client',
    format: 'esm',
    platform: 'browser',
    target: ['chrome100', 'safari15', 'firefox100'],
    // reveal.js themes inline their fonts as data: URLs; anything else stays a file we serve ourselves.
    // SVGs (the reaction glyphs, a few hundred bytes each) go inline, so the
    // first reaction of a talk draws at once instead of after a fetch.
    loader: { '.woff': 'file', '.woff2': 'file', '.ttf': 'file', '.svg': 'dataurl', '.png': 'file' },
    metafile: true,
  }),
  // The drop-in script for any web page: a classic script (an IIFE defining
  // the global `Clicker`), because <script src> from another origin is how
  // pages load it. Its map is not linked: /clicker.js is served from the
  // site root, where the map is not.
  build({
    ...common,
    sourcemap: 'external',
    entryPoints: { clicker: 'dropin/clicker.ts' },
    outdir: 'dist/client',
    format: 'iife',
    globalName: 'Clicker',
    platform: 'browser',
    target: ['chrome100', 'safari15', 'firefox100'],
  }),
  build({
    ...common,
    minify: false,
    entryPoints: ['server/main.ts'],
    outdir: 'dist/server',
    platform: 'node',
    format: 'esm',
    target: 'node20',
    // Dependencies load from node_modules at run time, as installed.
    packages: 'external',
  }),
]);

// The phone's web app manifest and home-screen icons ship beside the bundles.
cpSync('controller/manifest.webmanifest', 'dist/client/manifest.webmanifest');
cpSync('controller/icons', 'dist/client', { recursive: true });

const gz = (file) => gzipSync(readFileSync(file)).length;
const sizes = {
  slides: { js: gz('dist/client/slides.js'), css: gz('dist/client/slides.css') },
  controller: { js: gz('dist/client/controller.js'), css: gz('dist/client/controller.css') },
  // Its overlay's styles live inside the script (shadow DOM), so css is 0.
  dropin: { js: gz('dist/client/clicker.js'), css: 0 },
};
mkdirSync('dist', { recursive: true });
writeFileSync('dist/sizes.json', JSON.stringify(sizes, null, 2));
const kib = (n) => `${(n / 1024).toFixed(1)} KiB`;
const controllerTotal = sizes.controller.js + sizes.controller.css;
if (!quiet) {
  console.log(
    `built: slideshow ${kib(sizes.slides.js + sizes.slides.css)} gzipped, ` +
      `controller ${kib(controllerTotal)} gzipped (budget ${kib(CONTROLLER_BUDGET)}), ` +
      `drop-in clicker.js ${kib(sizes.dropin.js)} gzipped (budget ${kib(DROPIN_BUDGET)})`,
  );
}
if (sizes.dropin.js > DROPIN_BUDGET) {
  console.error(`drop-in clicker.js is ${kib(sizes.dropin.js)} gzipped, over its ${kib(DROPIN_BUDGET)} budget`);
  process.exit(1);
}
if (controllerTotal > CONTROLLER_BUDGET) {
  console.error(`controller bundle is ${kib(controllerTotal)} gzipped, over its ${kib(CONTROLLER_BUDGET)} budget`);
  process.exit(1);
}
