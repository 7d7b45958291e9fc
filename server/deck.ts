// The deck to present: the built-in one, a Markdown file, an HTML file of
// reveal.js <section>s, or a folder holding index.md or index.html. A deck is
// rendered into the slideshow shell (slides/shell.html) with its theme, title
// and transition; files beside it are served as its assets.
import { createHash } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, statSync, type Dirent } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse as parseHtml, parseFragment, serializeOuter, type DefaultTreeAdapterTypes as Html } from 'parse5';
import { parse as parseYaml } from 'yaml';
import escapeHtml from 'escape-html';
import RevealMarkdown from 'reveal.js/plugin/markdown';
import type { RevealApi } from 'reveal.js';
import { fontFilesDir, THEME_FONTS } from './theme-fonts';

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
  /**
   * The slideshow page. The audience's (the follow page) has no speaker
   * notes in it: anyone who scans the follow QR may open it.
   */
  page(view?: DeckView): string;
  /** The Markdown source without its front matter, for reveal.js's markdown plugin; the audience's without notes. */
  markdown(view?: DeckView): string | null;
  /**
   * Renders every view from the file as it is now, and throws what is wrong
   * with it. `page` and `markdown` never throw once the deck has loaded: a
   * file saved half-way (a front matter being typed, a deleted file) gives
   * what was last rendered without an error.
   */
  check(): void;
}

/** Who a deck is rendered for: the presenter's slideshow, or a follower's copy without the speaker notes. */
export type DeckView = 'presenter' | 'audience';

/** Where the follow page's Markdown is served: the presenter's (/_deck.md) holds the notes. */
export const AUDIENCE_MARKDOWN_PATH = '/_audience.md';

/**
 * An editor's copies, backups and swap files (talk.md~, #talk.md#,
 * talk.md.orig, .talk.md.swp, Vim's 4913 probe): they hold a deck's notes,
 * so they are never served, and they are saved on every keystroke, so they
 * never reload the slideshow.
 */
export const EDITOR_FILE = /~$|^#.*#$|\.(orig|bak|swp|swo|swx|tmp|rej|crswap)$|^4913$/i;

const isNotesAside = (el: Html.Element) => el.tagName === 'aside' && hasClass(el, 'notes');

/**
 * Slides as HTML without their speaker notes: every <aside class="notes">
 * and every data-notes attribute is cut out of the text as written (found by
 * parse5, so an aside inside any markup is found as a browser would).
 */
export function htmlWithoutNotes(html: string): string {
  const cuts: [number, number][] = [];
  walkHtml(parseFragment(html, { sourceCodeLocationInfo: true }), (node) => {
    if (!('tagName' in node)) return;
    const loc = node.sourceCodeLocation;
    if (isNotesAside(node) && loc) {
      cuts.push([loc.startOffset, loc.endOffset]);
      return false;
    }
    const attrLoc = loc?.attrs?.['data-notes'];
    if (attrLoc) cuts.push([attrLoc.startOffset, attrLoc.endOffset]);
  });
  let out = html;
  for (const [from, to] of cuts.sort((a, b) => b[0] - a[0])) out = out.slice(0, from) + out.slice(to);
  return out;
}

/** reveal.js's slide separators as the page gives them to its markdown plugin (horizontal, vertical). */
const MD_SLIDE_SEPARATOR = /^\r?\n(?:---|--)\r?\n$/gm;
/** Where a slide's notes begin, as data-separator-notes says (reveal.js applies it case-insensitively). */
const MD_NOTES = /^\s*notes?:/im;

/** A start tag as CommonMark (and so marked) reads one: a name, then attributes, each value quoted or bare. */
const MD_OPEN_TAG = String.raw`<[a-z][a-z0-9-]*(?:\s+[a-z_:][\w.:-]*(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>\`]+))?)*\s*\/?>`;

/**
 * A Markdown slide's text, read left to right as CommonMark reads it
 * (whichever begins first wins), down to what decides where notes can hide:
 * - a fenced code block: 3 or more backticks (none after them on the line)
 *   or tildes, up to 3 spaces in, to a line of the same at least as long;
 * - an escaped character, which is text: \` begins no code, \< no tag;
 * - an HTML comment, where reveal.js's markdown plugin reads `.slide:` and
 *   `.element:` attributes;
 * - an <aside> element, to its end tag or the slide's end;
 * - any other start tag, its quoted values whole (a backtick in one begins
 *   no code);
 * - a code span: a run of backticks to the next run of the same length,
 *   within its paragraph, which ends at a blank line or at a line that
 *   begins with a tag (an HTML block such as <aside> interrupts it); or a
 *   run with none to close it, which is text.
 * Code is something shown and stays as written; the HTML may carry notes.
 * Where this reading and marked's differ (a fence inside a list item, say),
 * it errs towards cutting: code may lose an aside it shows.
 */
const MD_PARTS = new RegExp(
  [
    String.raw`^ {0,3}(?<fence>\`{3,}(?=[^\`\n]*$)|~{3,})[^\n]*\n[\s\S]*?^ {0,3}\k<fence>[\`~]*[ \t]*$`,
    String.raw`\\[\s\S]`,
    String.raw`(?<comment><!--[\s\S]*?-->)`,
    String.raw`(?<aside><aside\b(?:[^>"']|"[^"]*"|'[^']*')*>(?:[\s\S]*?<\/aside\s*>|[\s\S]*(?![\s\S])))`,
    `(?<tag>${MD_OPEN_TAG})`,
    String.raw`(?<ticks>\`+)(?!\`)(?:(?!\n[ \t]*\n|\n {0,3}<)[\s\S])*?(?<!\`)\k<ticks>(?!\`)`,
    String.raw`\`+`,
  ].join('|'),
  'gim',
);
/**
 * A data-notes attribute as the plugin reads one from a comment
 * (double-quoted). Cut wherever it stands, even run on from `.slide:` or
 * another name: an odd attribute lost from the audience's copy costs
 * nothing. Any case, since the browser lowercases the name the plugin sets.
 */
const COMMENT_DATA_NOTES = /data-notes="[^"]*"/gi;
const withoutCommentNotes = (html: string) => html.replace(/<!--[\s\S]*?-->/g, (comment) => comment.replace(COMMENT_DATA_NOTES, ''));

/** `text` with `fn` applied to each stretch between matches of `re` (a /g regex); the matches are kept as they are. */
function mapBetween(text: string, re: RegExp, fn: (stretch: string) => string): string {
  let out = '';
  let last = 0;
  for (const m of text.matchAll(re)) {
    out += fn(text.slice(last, m.index)) + m[0];
    last = m.index + m[0].length;
  }
  return out + fn(text.slice(last));
}

/** A Markdown slide without its notes written as HTML, read as MD_PARTS reads it: asides, data-notes attributes, and data-notes in comments; code as written. */
function scannedWithoutNotes(slide: string): string {
  return slide.replace(MD_PARTS, (part: string, ...rest: unknown[]) => {
    const groups = rest.at(-1) as Record<'fence' | 'comment' | 'aside' | 'tag' | 'ticks', string | undefined>;
    if (groups.comment !== undefined) return withoutCommentNotes(part);
    // An aside that is not notes may hold a `.slide:` comment of its own.
    if (groups.aside !== undefined) return withoutCommentNotes(htmlWithoutNotes(part));
    if (groups.tag !== undefined) return htmlWithoutNotes(part);
    return part;
  });
}

/**
 * The renderer the audience's slideshow itself uses: reveal.js's markdown
 * plugin, the same module the slideshow bundles, with the bundled marked it
 * configures in `init` (its code renderer, which writes a fence's info string
 * into the class unescaped, and its blank-line renderer). The slideshow
 * passes the plugin no markdown options, so neither does this. The plugin's
 * `init` reads only the deck's config and looks for `[data-markdown]`
 * sections to convert; a stand-in with no sections gives it nothing to do.
 * Its `marked` is set before `init` returns.
 */
function pluginsMarked(): { parse(src: string, options: { async: false }): string } {
  const plugin = RevealMarkdown();
  const noSections = { querySelectorAll: () => [] };
  const deckStandIn = { getConfig: () => ({}), getRevealElement: () => noSections };
  void plugin.init?.(deckStandIn as unknown as RevealApi);
  const marked = plugin.marked;
  if (!marked) throw new Error("reveal.js's markdown plugin set up no marked");
  return marked;
}

const revealMarked = pluginsMarked();

/**
 * A slide's text as the plugin hands it to marked: it takes the leading
 * white space before the slide's first line (tabs, or more than one space)
 * off every later run of it, wherever it stands, as its own pattern does.
 */
function asThePluginReadsIt(slide: string): string {
  const tabs = /^\n?(\t*)/.exec(slide)![1]!.length;
  if (tabs > 0) return slide.replace(new RegExp(`\\n?\\t{${tabs}}(.*)`, 'g'), '\n$1');
  const spaces = /^\n?(\s*)/.exec(slide)![1]!.length;
  if (spaces > 1) return slide.replace(new RegExp(`\\n? {${spaces}}(.*)`, 'g'), '\n$1');
  return slide;
}

/**
 * The plugin keeps each slide in a <script type="text/template"> and
 * protects only `</script>` written just so; `</SCRIPT >` or `</script/`
 * would end the template there and leave the rest to the browser as HTML.
 * In the audience's copy every such end tag is written just so (what
 * followed `</script` is left as text after it, never taken with it).
 */
const withPlainScriptEnds = (slide: string) => slide.replace(/<\/script(?=[\s/>]|$)>?/gi, '</script>');

/**
 * What reveal.js would take for speaker notes in a slide's rendered HTML:
 * an <aside class="notes">, a data-notes attribute, data-notes in a comment
 * (which the markdown plugin turns into an attribute), or a comment that
 * gives an element the class notes (`<!-- .element: class="notes" -->`).
 */
export function notesInHtml(html: string): string[] {
  const found: string[] = [];
  walkHtml(parseFragment(html), (node) => {
    if (node.nodeName === '#comment') {
      const text = (node as Html.CommentNode).data;
      // The plugin's attribute pattern: a double-quoted, non-empty value.
      if (/data-notes="[^"]+"/i.test(text)) found.push('data-notes in a comment');
      if (/class="[^"]*\bnotes\b[^"]*"/.test(text)) found.push('class notes in a comment');
      return;
    }
    if (!('tagName' in node)) return;
    if (isNotesAside(node)) found.push('aside.notes');
    if (node.attrs.some((a) => a.name === 'data-notes')) found.push(`${node.tagName}[data-notes]`);
  });
  return found;
}

const rendersNotes = (slide: string) => notesInHtml(revealMarked.parse(asThePluginReadsIt(slide), { async: false })).length > 0;

/**
 * The slide read as HTML throughout, code and all: parse5 finds each aside
 * and attribute as a browser would. A comment is read inside too, closed or
 * not: marked may take `<!--` for text where parse5 takes the rest of the
 * slide for a comment. Then every aside whose opening tag says notes, and
 * every data-notes, as text. Again while that still changes anything.
 */
function cutAsHtml(slide: string): string {
  let out = slide;
  for (let i = 0; i < 4; i++) {
    // The last step takes data-notes out of comments as well.
    const next = htmlWithoutNotes(out).replace(/<!--([\s\S]*?)(-->|(?![\s\S]))/g, (_c, inner: string, end: string) => `<!--${htmlWithoutNotes(inner)}${end}`);
    const asText = withoutNotesAsidesAsText(next).replace(/\bdata-notes\s*=\s*(?:"[^"]*"|'[^']*'|[^\s>]+)/gi, '');
    if (asText === out) break;
    out = asText;
  }
  return out;
}

/**
 * Every aside whose opening tag says notes, to its end tag (or the end), found
 * as text: quoted values whole, and whatever a parser would take for script,
 * comment or plain text around it.
 */
function withoutNotesAsidesAsText(html: string): string {
  const open = /<aside\b((?:[^>"']|"[^"]*"|'[^']*')*)>?/gi;
  const close = /<\/aside\s*>/gi;
  let out = '';
  let last = 0;
  for (let m = open.exec(html); m; m = open.exec(html)) {
    if (!/notes/i.test(m[1]!)) continue;
    close.lastIndex = open.lastIndex;
    const end = close.exec(html) ? close.lastIndex : html.length;
    out += html.slice(last, m.index);
    last = end;
    open.lastIndex = end;
  }
  return out + html.slice(last);
}

/** How a slide's notes were cut: by the reading that keeps code, as HTML throughout, or with the whole slide. */
export type NotesCut = 'read' | 'as-html' | 'dropped';

/**
 * A Markdown slide without its notes written as HTML. The reading above
 * keeps what is shown as code; the renderer then checks the result, since
 * CommonMark has more ways to make text HTML (an HTML block's raw lines, for
 * one) than a reading in regular expressions follows. Should reveal.js
 * still find notes, the slide is cut as HTML throughout, code or not; should
 * even that leave some, the audience gets the slide empty, never its notes.
 */
export function cutSlideNotes(slide: string): { text: string; cut: NotesCut } {
  const plain = withPlainScriptEnds(slide);
  const read = scannedWithoutNotes(plain);
  if (!rendersNotes(read)) return { text: read, cut: 'read' };
  const asHtml = cutAsHtml(read);
  if (!rendersNotes(asHtml)) return { text: asHtml, cut: 'as-html' };
  return { text: '', cut: 'dropped' };
}

/**
 * A Markdown deck without its speaker notes: each slide is cut where its
 * notes begin, as reveal.js splits them, and notes written as HTML into a
 * slide are cut too (but not those shown as code).
 */
export function markdownWithoutNotes(md: string, separators: { slide: RegExp; notes: RegExp } = { slide: MD_SLIDE_SEPARATOR, notes: MD_NOTES }): string {
  return mapBetween(md, separators.slide, (slide) => {
    const m = separators.notes.exec(slide);
    return cutSlideNotes(m ? slide.slice(0, m.index) : slide).text;
  });
}

/**
 * The separators a `<section data-markdown>` gives reveal.js's markdown
 * plugin, with the plugin's defaults. One that is no valid pattern makes
 * the whole section one slide, cut at its first notes (never less is cut).
 */
function sectionSeparators(section: Html.Element): { slide: RegExp; notes: RegExp } {
  const given = (name: string) => section.attrs.find((a) => a.name === name)?.value;
  const horizontal = given('data-separator') ?? '\\r?\\n---\\r?\\n';
  const vertical = given('data-separator-vertical');
  const notesGiven = given('data-separator-notes');
  let slide = /(?!)/g;
  let notes = MD_NOTES;
  try {
    slide = new RegExp(vertical ? `${horizontal}|${vertical}` : horizontal, 'gm');
  } catch {
    // One slide, then.
  }
  try {
    if (notesGiven !== undefined) notes = new RegExp(notesGiven, 'mi');
  } catch {
    // The default.
  }
  return { slide, notes };
}

/**
 * An HTML deck's Markdown sections for the audience: reveal.js's markdown
 * plugin makes notes of their `Note:` parts, so each section's Markdown is
 * cut as a Markdown deck's is. A section that loads its Markdown from a file
 * (`data-markdown="part.md"`) gets it inline, cut: the file itself is the
 * presenter's (`readMarkdown` gives null for one that is missing or outside
 * the deck's folder, and the section stays empty).
 */
export function markdownSectionsWithoutNotes(html: string, readMarkdown: (ref: string) => string | null): string {
  const edits: { from: number; to: number; text: string }[] = [];
  walkHtml(parseFragment(html, { sourceCodeLocationInfo: true }), (node) => {
    if (!('tagName' in node) || node.tagName !== 'section') return;
    const ref = node.attrs.find((a) => a.name === 'data-markdown');
    const loc = node.sourceCodeLocation;
    if (!ref || !loc?.startTag) return;
    const separators = sectionSeparators(node);
    if (ref.value !== '') {
      const md = readMarkdown(ref.value);
      const attrLoc = loc.attrs?.['data-markdown'];
      const innerEnd = loc.endTag?.startOffset ?? loc.endOffset;
      if (!attrLoc) return false;
      edits.push({ from: attrLoc.startOffset, to: attrLoc.endOffset, text: 'data-markdown=""' });
      edits.push({ from: loc.startTag.endOffset, to: innerEnd, text: `<textarea data-template>${escapeHtml(md === null ? '' : markdownWithoutNotes(md, separators))}</textarea>` });
      return false;
    }
    // The plugin reads the first [data-template], else the first <script>, else the section itself.
    const children = [...elementsOf(node)];
    const template = children.find((el) => el.attrs.some((a) => a.name === 'data-template')) ?? children.find((el) => el.tagName === 'script');
    const holder = template ?? node;
    const hloc = holder.sourceCodeLocation;
    const from = hloc?.startTag?.endOffset;
    const to = hloc?.endTag?.startOffset ?? hloc?.endOffset;
    if (from === undefined || to === undefined) return false;
    const raw = html.slice(from, to);
    // A <textarea> holds text with character references, which the plugin reads decoded; a <script> holds raw text.
    const text = holder.tagName === 'textarea' ? textOf(holder) : raw;
    const cut = markdownWithoutNotes(text, separators);
    edits.push({ from, to, text: holder.tagName === 'textarea' ? escapeHtml(cut) : cut });
    return false;
  });
  let out = html;
  for (const e of edits.sort((a, b) => b.from - a.from)) out = out.slice(0, e.from) + e.text + out.slice(e.to);
  return out;
}

/** The text of an element's text children (a <textarea>'s value as written, references decoded). */
const textOf = (el: Html.Element): string => el.childNodes.map((c) => ('value' in c ? c.value : '')).join('');

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

/** Splits `---\nyaml\n---\n` off the top of a Markdown file. */
/**
 * A file that opens with `---` and key: value lines for the deck's own
 * options, and no second `---` line at all: front matter being typed, not a
 * slide that starts with a rule.
 */
function unclosedFrontMatter(text: string): boolean {
  const m = /^\uFEFF?---\r?\n([\s\S]*)$/.exec(text);
  if (!m || /^---\s*$/m.test(m[1]!)) return false;
  let raw: unknown;
  try {
    raw = parseYaml(m[1]!);
  } catch {
    return false;
  }
  return raw !== null && typeof raw === 'object' && !Array.isArray(raw) && Object.keys(raw).every((key) => ['theme', 'title', 'transition'].includes(key));
}

export function splitFrontMatter(text: string): { data: DeckOptions; body: string } {
  // A byte order mark (Windows editors write one) is not part of the text.
  const t = text.replace(/^\uFEFF/, '');
  const m = /^---\r?\n([\s\S]*?)\r?\n---\r?\n?/.exec(t);
  if (!m) return { data: {}, body: t };
  let raw: unknown;
  try {
    raw = parseYaml(m[1]!);
  } catch (err) {
    // Where the YAML went wrong, counted in the file's lines (the front matter starts on line 2).
    const first = (err as Error).message.split('\n')[0]!.replace(/:\s*$/, '');
    throw new DeckError(`front matter is not valid YAML: ${first.replace(/\bline (\d+)/, (_l, n: string) => `line ${Number(n) + 1}`)}`);
  }
  // A deck that opens with a slide separator (---, a title, ---) has no front
  // matter: YAML would read its heading as a comment, and the slide would go.
  if (m[1]!.trim() !== '' && (raw === null || typeof raw !== 'object' || Array.isArray(raw))) return { data: {}, body: t };
  const data: DeckOptions = {};
  if (raw && typeof raw === 'object') {
    const r = raw as Record<string, unknown>;
    for (const key of ['theme', 'title', 'transition'] as const) {
      if (r[key] !== undefined) data[key] = String(r[key]);
    }
  }
  return { data, body: t.slice(m[0].length) };
}

/** What Clicker takes from an HTML deck: its slides, and from a full reveal.js page its title, theme and own styles. */
interface HtmlDeck {
  /** The inside of its .slides element, as written, or the whole file if it is just sections. */
  sections: string;
  title?: string;
  theme?: string;
  /** Its own <style> blocks and stylesheets from its folder, for the page's head. */
  head: string;
}

/**
 * reveal.js's own files, which the page loads its own copies of: a full
 * deck's links to reveal.css, reset.css and reveal's highlight styles are
 * dropped (Clicker's page carries monokai). Themes are read separately; the
 * deck's own stylesheets, in a theme/ or plugin/ folder or anywhere, are kept.
 */
const REVEAL_OWN = /(^|\/)(reveal|reset)\.css$|(^|\/)plugin\/highlight\/(monokai|zenburn)\.css$/;
/** An href to another host (or scheme), which the page's Content-Security-Policy would block anyway. */
const FOREIGN = /^([a-z][a-z0-9+.-]*:|\/\/)/i;

/** Every element under `node`, in document order. */
/**
 * Calls `visit` on every node under `root` in document order, a template's
 * content included (notes may hide there), comments and text too; a node it
 * answers false for is not entered. elementsOf, below, is the plain walk of
 * a page's elements.
 */
function walkHtml(root: Html.ParentNode, visit: (node: Html.ChildNode) => boolean | void): void {
  for (const node of root.childNodes) {
    if (visit(node) === false || !('tagName' in node)) continue;
    walkHtml('content' in node ? (node as Html.Template).content : node, visit);
  }
}

function* elementsOf(node: Html.ParentNode): Generator<Html.Element> {
  for (const child of node.childNodes) {
    if (!('tagName' in child)) continue;
    yield child;
    yield* elementsOf(child);
  }
}

const attr = (el: Html.Element, name: string): string => el.attrs.find((a) => a.name === name)?.value ?? '';
const hasClass = (el: Html.Element, name: string): boolean => attr(el, 'class').split(/\s+/).includes(name);

/**
 * Reads an HTML deck with parse5, the HTML standard's own parsing algorithm,
 * so a page the browser would show (an unclosed tag, a stray `</h3>`, a
 * `</style >`) is read as the browser reads it. A full reveal.js page keeps
 * what a presenter sees as part of the talk: its <title>, its theme (a link
 * to theme/NAME.css) and its own styles. Its scripts and reveal.js setup are
 * left out: Clicker's page runs its own.
 */
function htmlDeck(text: string, file: string): HtmlDeck {
  const doc = parseHtml(text, { sourceCodeLocationInfo: true });
  const all = [...elementsOf(doc)];
  const reveal = all.find((el) => hasClass(el, 'reveal'));
  const slides = (reveal && [...elementsOf(reveal)].find((el) => hasClass(el, 'slides'))) ?? all.find((el) => hasClass(el, 'slides'));
  // A page of its own (it writes <html>, <head> or <body>, or has a .reveal),
  // as opposed to a bare list of sections: implied elements have no location.
  const page = all.some((el) => (['html', 'head', 'body'].includes(el.tagName) && el.sourceCodeLocation) || hasClass(el, 'reveal'));
  let sections: string;
  if (slides) {
    // The source inside the element, as written: nothing re-serialized.
    const loc = slides.sourceCodeLocation;
    const from = loc?.startTag?.endOffset ?? 0;
    const to = loc?.endTag?.startOffset ?? loc?.endOffset ?? from;
    sections = text.slice(from, to);
  } else if (page) {
    // Taking the whole page would put its scripts and reveal.js setup on the slides.
    throw new DeckError(`${file} is a whole page but has no <div class="slides">; put its <section>s inside one, or give just the <section>s`);
  } else {
    sections = text;
  }
  if (!/<section[\s>]/i.test(sections)) throw new DeckError(`${file} has no <section> elements; an HTML deck is a list of reveal.js <section>s`);
  const head = all.find((el) => el.tagName === 'head' && el.sourceCodeLocation);
  const out: HtmlDeck = { sections, head: '' };
  if (!head) return out;
  const inHead = [...elementsOf(head)];
  const titleEl = inHead.find((el) => el.tagName === 'title');
  const title = titleEl?.childNodes.map((c) => ('value' in c ? c.value : '')).join('').trim();
  if (title) out.title = title;
  const parts: string[] = [];
  for (const el of inHead) {
    if (el.tagName === 'style') {
      parts.push(serializeOuter(el));
      continue;
    }
    if (el.tagName !== 'link') continue;
    const href = attr(el, 'href');
    if (!/(^|\s)stylesheet(\s|$)/i.test(attr(el, 'rel')) || href === '' || FOREIGN.test(href)) continue;
    const theme = /(?:^|\/)theme\/([\w-]+)\.css$/.exec(href)?.[1];
    if (theme !== undefined && THEMES.includes(theme)) out.theme = theme;
    else if (!REVEAL_OWN.test(href)) parts.push(`<link rel="stylesheet" href="${escapeHtml(href)}">`);
  }
  out.head = parts.join('\n');
  return out;
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

/** Top-level folders and files of a deck's folder that Clicker's own routes answer for. */
const ROUTE_FOLDERS = new Set(['f', 'r', 'api']);
const ROUTE_FILES = new Set(['favicon.ico', 'clicker.js', 'healthz', 'readyz', 'metrics', '_deck.md', '_audience.md']);

/**
 * A deck's files that Clicker's own serve in their place: /assets/NAME is
 * Clicker's bundle when one has that name, /assets/theme/NAME reveal.js's
 * theme and /assets/fonts/FAMILY/FILE a theme's font, before a miss falls through to the deck's folder (app.ts). Named at
 * start, so the presenter renames them rather than wonder why their style is gone.
 */
export function shadowedAssets(deck: Pick<Deck, 'assetsDir'>, clientDir: string): string[] {
  if (!deck.assetsDir) return [];
  const entries = (dir: string): Dirent[] => {
    try {
      return readdirSync(dir, { withFileTypes: true });
    } catch {
      return [];
    }
  };
  const names = (dir: string) => entries(dir).filter((e) => e.isFile()).map((e) => e.name);
  const ours = new Set(names(clientDir));
  const themes = new Set(names(THEME_DIR));
  const own = path.join(deck.assetsDir, 'assets');
  const top = entries(deck.assetsDir);
  return [
    // Clicker's own routes at the top: /f/ and /r/ (the follow and remote pages), /api/, and its files.
    ...top.filter((e) => e.isDirectory() && ROUTE_FOLDERS.has(e.name)).map((e) => `${e.name}/`),
    ...top.filter((e) => e.isFile() && ROUTE_FILES.has(e.name)).map((e) => e.name),
    ...names(own).filter((n) => ours.has(n)).map((n) => `assets/${n}`),
    ...names(path.join(own, 'theme')).filter((n) => themes.has(n)).map((n) => `assets/theme/${n}`),
    // The themes' fonts Clicker serves itself (theme-fonts.ts).
    ...Object.values(THEME_FONTS).flatMap((slug) => {
      const dir = fontFilesDir(slug);
      const theirs = dir ? new Set(names(dir)) : new Set<string>();
      return names(path.join(own, 'fonts', slug)).filter((n) => theirs.has(n)).map((n) => `assets/fonts/${slug}/${n}`);
    }),
  ].sort();
}

const forView = (sections: string, view: DeckView = 'presenter', readMarkdown: (ref: string) => string | null = () => null) =>
  view === 'audience' ? htmlWithoutNotes(markdownSectionsWithoutNotes(sections, readMarkdown)) : sections;

/**
 * A Markdown file an HTML deck's section loads (`data-markdown="part.md"`),
 * read from the deck's folder; null for one elsewhere (another origin, a
 * path out of the folder) or missing.
 */
function markdownBeside(dir: string): (ref: string) => string | null {
  return (ref) => {
    if (/^[a-z][a-z0-9+.-]*:|^\/\//i.test(ref)) return null;
    let rel: string;
    try {
      rel = decodeURIComponent(ref.split(/[?#]/)[0]!);
    } catch {
      return null;
    }
    const file = path.resolve(dir, rel.replace(/^\/+/, ''));
    if (file !== dir && !file.startsWith(dir + path.sep)) return null;
    try {
      return readFileSync(file, 'utf8');
    } catch {
      return null;
    }
  };
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
  const render = (body: string, o: DeckOptions, head = '') => {
    checkOptions(o);
    const vars: Record<string, string> = {
      title: escapeHtml(o.title ?? 'Clicker'),
      theme: o.theme ?? 'black',
      transition: o.transition ?? 'slide',
      deck: deckId,
      head,
      slides: body,
    };
    // One pass: a title holding "{{slides}}" is text, not a place for the slides.
    return shell.replace(/\{\{(title|theme|transition|deck|head|slides)\}\}/g, (_m, k: string) => vars[k]!);
  };

  if (resolved === null) {
    const file = path.join(rootDir, 'slides', 'deck.html');
    return lastGood({
      kind: 'builtin',
      file,
      assetsDir: null,
      page: (view) => render(forView(readFileSync(file, 'utf8'), view), { title: 'Clicker', ...defined(cli) }),
      markdown: () => null,
    });
  }

  const { file, kind, given } = resolved;
  const read = () => readFileSync(file, 'utf8');
  const assetsDir = path.dirname(file);
  // The page's title when nothing else names the deck: the file's name, or its folder's for an index file.
  const stem = path.basename(/^index\.[^.]+$/i.test(path.basename(file)) ? path.dirname(file) : file).replace(/\.[^.]+$/, '');
  if (kind === 'html') {
    // lastGood renders every view at once: a broken deck fails at start, not on the first page view.
    return lastGood({
      kind,
      file,
      assetsDir,
      page: (view) => {
        const { sections, title, theme, head } = htmlDeck(read(), given);
        // As with front matter: what the page says wins over the file's name, and flags win over both.
        return render(forView(sections, view, markdownBeside(assetsDir)), { title: stem, ...defined({ title, theme }), ...defined(cli) }, head);
      },
      markdown: () => null,
    });
  }
  // reveal.js's conventions: --- between slides, -- between vertical slides,
  // and its own default for the notes, Note: or Notes: in any case.
  let audience: { md: string; cut: string } | undefined;
  const body = (view: DeckView = 'presenter') =>
    `<section data-markdown="${view === 'audience' ? AUDIENCE_MARKDOWN_PATH : '/_deck.md'}" data-separator="^\\r?\\n---\\r?\\n$" ` +
    'data-separator-vertical="^\\r?\\n--\\r?\\n$" data-separator-notes="^\\s*notes?:"></section>';
  // An editor that saves by truncating, then writing, leaves the file empty
  // for a moment: once the deck has had slides, that is a broken save, not a
  // deck of one blank slide (which would put the slideshow back on its first
  // slide once the words return). Likewise a front matter still being typed
  // (no closing ---) is not a slide. A deck that starts empty shows empty:
  // its author is about to write it, and live reload shows each save.
  let hadSlides = false;
  const slidesOf = () => {
    const text = read();
    const parts = splitFrontMatter(text);
    const empty = parts.body.replace(/^-{2,3}[ \t]*$/gm, '').trim() === '';
    if (hadSlides && empty) throw new DeckError(`${given} has no slides: it is empty${Object.keys(parts.data).length ? ' after its front matter' : ''}`);
    if (hadSlides && unclosedFrontMatter(text)) throw new DeckError(`${given}: its front matter has no closing --- line`);
    if (!empty) hadSlides = true;
    return parts;
  };
  return lastGood({
    kind,
    file,
    assetsDir,
    page: (view) => {
      const { data } = slidesOf();
      return render(body(view), { title: stem, ...data, ...defined(cli) });
    },
    markdown: (view) => {
      const md = slidesOf().body;
      if (view !== 'audience') return md;
      // A room of followers loads this at once; the cut renders every slide, so it is done once per edit.
      if (audience?.md !== md) audience = { md, cut: markdownWithoutNotes(md) };
      return audience.cut;
    },
  });
}

/**
 * A deck whose views, once rendered, outlive a broken file: each call reads
 * the file afresh, and on an error gives that view's last good rendering
 * (every view is rendered here first, so each has one). `check` renders
 * them strictly, for the watcher to say what is wrong.
 */
function lastGood(deck: Omit<Deck, 'check'>): Deck {
  const views: DeckView[] = ['presenter', 'audience'];
  const good = new Map<string, string | null>();
  const render = (key: string, make: () => string | null, strict: boolean): string | null => {
    try {
      const out = make();
      good.set(key, out);
      return out;
    } catch (err) {
      if (strict || !good.has(key)) throw err;
      return good.get(key)!;
    }
  };
  const check = () => {
    for (const v of views) {
      render(`page:${v}`, () => deck.page(v), true);
      render(`md:${v}`, () => deck.markdown(v), true);
    }
  };
  check();
  return {
    ...deck,
    page: (view = 'presenter') => render(`page:${view}`, () => deck.page(view), false)!,
    markdown: (view = 'presenter') => render(`md:${view}`, () => deck.markdown(view), false),
    check,
  };
}
