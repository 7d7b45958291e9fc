// PDF handouts: the deck in reveal.js's print-pdf view, printed by Chromium
// through Playwright. The app runs in-process on loopback for the duration.
import { existsSync } from 'node:fs';
import path from 'node:path';

export class ExportError extends Error {}

export function findChromium(env: NodeJS.ProcessEnv): string | undefined {
  return [env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'].find(
    (p): p is string => typeof p === 'string' && existsSync(p),
  );
}

/** Prints `${base}/?print-pdf` to `pdf`; answers the number of pages reveal.js laid out. */
export async function exportPdf(base: string, pdf: string, env: NodeJS.ProcessEnv): Promise<number> {
  const executablePath = findChromium(env);
  if (!executablePath) throw new ExportError('export needs Chromium: install it (Debian: apt-get install chromium) or set CHROMIUM_PATH');
  // Loaded only here: Playwright adds tens of MiB to a process that never exports.
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  });
  try {
    const page = await browser.newPage();
    await page.goto(`${base}/?print-pdf`, { waitUntil: 'load' });
    // reveal.js lays the slides out as .pdf-page elements once Markdown and highlighting are done.
    await page.waitForFunction(() => document.querySelector('.reveal.ready') !== null && document.querySelectorAll('.pdf-page').length > 0, undefined, { timeout: 30_000 });
    // Then everything the pages draw, or the PDF drops what was late: every
    // image (a lazy one is made eager, as off screen it would never load),
    // every slide background image (CSS, so not among document.images), and
    // the theme's web fonts (font-display: swap prints the fallback meanwhile).
    await page.evaluate(async (limitMs) => {
      const settled = (p: Promise<unknown>) => p.then(() => undefined, () => undefined);
      const backgrounds = new Set<string>();
      for (const el of document.querySelectorAll<HTMLElement>('.slide-background, .slide-background-content, .reveal section')) {
        for (const m of getComputedStyle(el).backgroundImage.matchAll(/url\("?([^")]+)"?\)/g)) backgrounds.add(m[1]!);
      }
      const all = Promise.all([
        ...[...document.images].map((img) => {
          img.loading = 'eager';
          return settled(img.decode());
        }),
        ...[...backgrounds].map((url) => {
          const img = new Image();
          img.src = url;
          return settled(img.decode());
        }),
        settled(document.fonts.ready),
      ]);
      // A picture that never settles (a server that never answers) costs the handout that picture, not the export.
      await Promise.race([all, new Promise((resolve) => setTimeout(resolve, limitMs))]);
    }, 30_000);
    // And anything those started (a video's poster, a font's other subset).
    await page.waitForLoadState('networkidle', { timeout: 30_000 }).catch(() => undefined);
    const pages = await page.locator('.pdf-page').count();
    await page.pdf({ path: path.resolve(pdf), preferCSSPageSize: true, printBackground: true });
    return pages;
  } finally {
    await browser.close();
  }
}
