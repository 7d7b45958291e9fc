// The deck to present: the built-in one, a Markdown file, an HTML file of
// reveal.js <section>s, or a folder holding index.md or index.html. A deck is
// rendered into the slideshow shell (slides/shell.html) with its theme, title
// and transition; files beside it are served as its assets.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseYaml } from 'yaml';

export const TRANSITIONS = ['none', 'fade', 'slide', 'convex', 'concave', 'zoom'] as const;

/** reveal.js's own theme folder, served at /assets/theme. */
export const THEME_DIR = path.dirname(fileURLToPath(import.meta.resolve('reveal.js/theme/black.css')));

/** Every theme reveal.js ships, read from its own dist folder so a new release's themes just work. */
export const THEMES: readonly string[] = readdirSync(THEME_DIR)
  .filter((f) => f.endsWith('.css'))
  .map((f) => f.slice(0, -4))
  .sort();

export class DeckError extends Error {}

export interface DeckOptions {
  theme?: string;
  title?: string;
  transition?: string;
}

export interface Deck {
  kind: 'builtin' | 'markdown' | 'html';
  /** The file that is watched and re-read. */
  file: string;
  /** Folder whose files are served as the deck's assets; null for the built-in deck. */
  assetsDir: string | null;
  /** The full slideshow page. */
  page(): string;
  /** The Markdown source without its front matter, for reveal.js's markdown plugin. */
  markdown(): string | null;
}

export function checkOptions(o: DeckOptions): void {
  if (o.theme !== undefined && !THEMES.includes(o.theme)) {
    throw new DeckError(`unknown theme "${o.theme}"; choose one of: ${THEMES.join(', ')}`);
  }
  if (o.transition !== undefined && !(TRANSITIONS as readonly string[]).includes(o.transition)) {
    throw new DeckError(`unknown transition "${o.transition}"; choose one of: ${TRANSITIONS.join(', ')}`);
  }
}

/** Drops unset options, so an absent flag does not hide the front matter's value. */
const defined = (o: DeckOptions): DeckOptions =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as DeckOptions;

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Splits `---\nyaml\n---\n` off the top of a Markdown file. */
export function splitFrontMatter(text: string): { data: DeckOptions; body: string } {
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?/.exec(text);
  if (!m) return { data: {}, body: text };
  let raw: unknown;
  try {
    raw = parseYaml(m[1]!);
  } catch (err) {
    throw new DeckError(`front matter is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const data: DeckOptions = {};
  if (raw && typeof raw === 'object') {
    const r = raw as Record<string, unknown>;
    for (const key of ['theme', 'title', 'transition'] as const) {
      if (r[key] !== undefined) data[key] = String(r[key]);
    }
  }
  return { data, body: text.slice(m[0].length) };
}

/** The slides of an HTML deck: the inside of its .slides element, or the whole file if it is just sections. */
function htmlSections(text: string, file: string): string {
  const inner = /<div\s+class=["'][^"']*\bslides\b[^"']*["'][^>]*>([\s\S]*)<\/div>\s*<\/div>/i.exec(text);
  if (inner) return inner[1]!;
  if (!/<section[\s>]/i.test(text)) throw new DeckError(`${file} has no <section> elements; an HTML deck is a list of reveal.js <section>s`);
  return text;
}

function resolveDeckFile(arg: string): { file: string; kind: 'markdown' | 'html' } {
  const full = path.resolve(arg);
  if (!existsSync(full)) throw new DeckError(`no such file or folder: ${arg}`);
  if (statSync(full).isDirectory()) {
    for (const [name, kind] of [['index.md', 'markdown'], ['index.html', 'html']] as const) {
      if (existsSync(path.join(full, name))) return { file: path.join(full, name), kind };
    }
    throw new DeckError(`${arg} holds neither index.md nor index.html`);
  }
  if (/\.(md|markdown)$/i.test(full)) return { file: full, kind: 'markdown' };
  if (/\.html?$/i.test(full)) return { file: full, kind: 'html' };
  throw new DeckError(`${arg} is not a deck: give a .md or .html file, or a folder with index.md or index.html`);
}

/**
 * Loads a deck. Options given on the command line win over front matter.
 * The page is rendered on every call, so an edited file shows on reload.
 */
export function loadDeck(rootDir: string, arg: string | undefined, cli: DeckOptions): Deck {
  checkOptions(cli);
  const shell = readFileSync(path.join(rootDir, 'slides', 'shell.html'), 'utf8');
  const resolved = arg === undefined ? null : { ...resolveDeckFile(arg), given: arg };
  // Which deck this is, for the slideshow's saved position: a reload or a
  // restart brings the same deck back where it was, another deck starts at
  // its title slide. A hash, so the page does not show the laptop's paths.
  const deckId = createHash('sha256').update(resolved?.file ?? 'builtin').digest('base64url').slice(0, 16);
  const render = (body: string, o: DeckOptions) => {
    checkOptions(o);
    const vars: Record<string, string> = {
      title: escapeHtml(o.title ?? 'Clicker'),
      theme: o.theme ?? 'black',
      transition: o.transition ?? 'slide',
      deck: deckId,
      slides: body,
    };
    // One pass: a title holding "{{slides}}" is text, not a place for the slides.
    return shell.replace(/\{\{(title|theme|transition|deck|slides)\}\}/g, (_m, k: string) => vars[k]!);
  };

  if (resolved === null) {
    const file = path.join(rootDir, 'slides', 'deck.html');
    return {
      kind: 'builtin',
      file,
      assetsDir: null,
      page: () => render(readFileSync(file, 'utf8'), { title: 'Clicker', ...defined(cli) }),
      markdown: () => null,
    };
  }

  const { file, kind, given } = resolved;
  const read = () => readFileSync(file, 'utf8');
  const assetsDir = path.dirname(file);
  const stem = path.basename(file).replace(/\.[^.]+$/, '');
  if (kind === 'html') {
    // Fail at start, not on the first page view.
    htmlSections(read(), given);
    return {
      kind,
      file,
      assetsDir,
      page: () => render(htmlSections(read(), given), { title: stem, ...defined(cli) }),
      markdown: () => null,
    };
  }
  const first = splitFrontMatter(read());
  checkOptions(first.data);
  // reveal.js's conventions: --- between slides, -- between vertical slides,
  // and its own default for the notes, Note: or Notes: in any case.
  const body =
    '<section data-markdown="/_deck.md" data-separator="^\\r?\\n---\\r?\\n$" ' +
    'data-separator-vertical="^\\r?\\n--\\r?\\n$" data-separator-notes="^\\s*notes?:"></section>';
  return {
    kind,
    file,
    assetsDir,
    page: () => {
      const { data } = splitFrontMatter(read());
      return render(body, { title: stem, ...data, ...defined(cli) });
    },
    markdown: () => splitFrontMatter(read()).body,
  };
}
