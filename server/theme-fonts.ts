// Eight of reveal.js's themes load their fonts from Google Fonts
// (`@import "https://fonts.googleapis.com/css?family=Lato:400,700"`). Clicker
// serves everything itself: a talk runs offline, on a venue's closed Wi-Fi,
// and the pages' Content-Security-Policy allows no other origin anyway. So
// the theme is served with those imports replaced by the same fonts from
// Fontsource's npm packages (@fontsource/*), whose files Clicker serves at
// /assets/fonts/<family>/. A font Clicker does not carry is left to the
// theme's own fallback (its CSS names one after every web font).
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';

const require = createRequire(import.meta.url);

/** Google Fonts family name to Fontsource package folder, for every family reveal.js's themes import. */
export const THEME_FONTS: Readonly<Record<string, string>> = {
  Lato: 'lato',
  Montserrat: 'montserrat',
  'News Cycle': 'news-cycle',
  'Open Sans': 'open-sans',
  Quicksand: 'quicksand',
  Ubuntu: 'ubuntu',
};

/** Where the font files are served: /assets/fonts/<slug>/<file>. */
export const FONTS_PATH = '/assets/fonts';

/** The `files` folder of a Fontsource package, or undefined when it is not installed. */
export function fontFilesDir(slug: string): string | undefined {
  try {
    return path.join(path.dirname(require.resolve(`@fontsource/${slug}/package.json`)), 'files');
  } catch {
    return undefined;
  }
}

const GOOGLE_IMPORT = /@import\s+(?:url\(\s*)?["']?https?:\/\/fonts\.googleapis\.com\/css2?\?family=([^"')\s;]+)["']?\s*\)?\s*;/g;

/**
 * The @font-face rules for one `family=` value (`Open+Sans:400italic,700`),
 * with their font URLs under FONTS_PATH; '' for a family Clicker does not carry.
 */
function fontFaces(spec: string): string {
  const [rawName = '', rawVariants = '400'] = decodeURIComponent(spec.replace(/\+/g, ' ')).split(':');
  const slug = THEME_FONTS[rawName.trim()];
  const dir = slug && fontFilesDir(slug);
  if (!slug || !dir) return '';
  const pkg = path.dirname(dir);
  let css = '';
  for (const variant of rawVariants.split(',')) {
    const m = /^(\d{3})(italic)?$/.exec(variant.trim());
    if (!m) continue;
    let rules: string;
    try {
      // Fontsource's per-weight stylesheet: one @font-face per script subset, each with its unicode-range.
      rules = readFileSync(path.join(pkg, `${m[1]}${m[2] ? '-italic' : ''}.css`), 'utf8');
    } catch {
      // Not drawn in this style (Quicksand has no italics): the browser slants the upright one, as Google's would.
      continue;
    }
    css += rules.replace(/url\(\s*["']?\.\/files\/([\w.-]+)["']?\s*\)/g, (_all, file: string) => `url(${FONTS_PATH}/${slug}/${file})`);
  }
  return css;
}

/**
 * A theme's CSS with each Google Fonts import replaced by the @font-face
 * rules of the same family and styles, served by Clicker. The rules go after
 * any other @import (which must come first), and the rest is unchanged.
 */
export function withLocalFonts(css: string): string {
  const faces: string[] = [];
  const rest = css.replace(GOOGLE_IMPORT, (_all, spec: string) => {
    faces.push(fontFaces(spec));
    return '';
  });
  if (faces.length === 0) return css;
  // Any @import left (a theme's own) must stay ahead of every rule.
  const imports = /^(\s*(?:@charset[^;]*;|@import[^;]*;)\s*)*/.exec(rest)?.[0] ?? '';
  return imports + faces.join('') + rest.slice(imports.length);
}
