// The command line as a user meets it: real processes of the built CLI, their
// exit codes and their one-line errors, the starter deck and the PDF export.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PDFParse } from 'pdf-parse';
import { PNG } from 'pngjs';
import { parseCli } from './cli';
import { ConfigError } from './config';
import { DeckError, htmlWithoutNotes, loadDeck, markdownWithoutNotes, shadowedAssets, splitFrontMatter, THEMES } from './deck';
import { sleep } from './testing-procs';

const ROOT = path.resolve(import.meta.dirname, '..');
const BIN = path.join(ROOT, 'bin', 'clicker.mjs');

function clicker(args: string[], cwd: string, env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [BIN, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 60_000 });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** The built server as shipped, on loopback, once it has printed its banner: the slideshow URL, then the QR code. */
async function serveShipped(env: NodeJS.ProcessEnv = {}): Promise<{ proc: ChildProcess; url: string; banner: () => string }> {
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist/server/main.js'), '--port', '0', '--bind', '127.0.0.1'], { cwd: ROOT, env: { ...process.env, ...env } });
  let out = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  try {
    const url = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no URL printed: ${out}`)), 30_000);
      proc.stdout.on('data', () => {
        const m = /Open the slideshow on this laptop:\s+(\S+)/.exec(out);
        // Wait for the QR code too, which follows the URL.
        if (m && /[▀▄█]{5,}/.test(out)) {
          clearTimeout(timer);
          resolve(m[1]!);
        }
      });
    });
    return { proc, url, banner: () => out };
  } catch (err) {
    proc.kill('SIGTERM');
    throw err;
  }
}
const tmp = () => mkdtempSync(path.join(os.tmpdir(), 'clicker-cli-'));

test('--help and --version', () => {
  const help = clicker(['--help'], ROOT);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /clicker export DECK --pdf FILE\.pdf/);
  assert.match(help.stdout, /--theme NAME\s+.*\bsolarized\b/);
  // Every setting an operator may give names its environment variable too.
  for (const name of ['PORT', 'CLICKER_HOST', 'PUBLIC_URL', 'BIND', 'TRUST_PROXY', 'PRESENTER_KEY', 'PRESENTER_ANYWHERE', 'ALLOW_ORIGINS', 'REDIS_URL', 'LOG_LEVEL', 'CHROMIUM_PATH']) {
    assert.match(help.stdout, new RegExp(`\\b${name}\\b`), name);
  }
  const version = clicker(['--version'], ROOT);
  assert.equal(version.code, 0);
  const pkg = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  assert.equal(version.stdout.trim(), `clicker ${pkg.version}`);
});

for (const [name, args, message] of [
  ['a missing file', ['no-such-talk.md'], /^clicker: no such file or folder: no-such-talk\.md$/],
  ['an unknown flag', ['--prot', '3000'], /^clicker: Unknown option '--prot' \(see clicker --help\)$/],
  ['a bad theme', ['--theme', 'neon'], /^clicker: unknown theme "neon"; choose one of: .*\bblack\b/],
  ['a bad transition', ['--transition', 'spin'], /^clicker: unknown transition "spin"/],
  ['a file that is not a deck', ['package.json'], /^clicker: package\.json is not a deck/],
  ['export without --pdf', ['export'], /^clicker: export needs --pdf FILE\.pdf/],
] as const) {
  test(`${name} gets a one-line error and exit code 2`, () => {
    const r = clicker([...args], ROOT);
    assert.equal(r.code, 2);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trimEnd(), message);
  });
}

// Settings that only fail once the server starts: each must be refused as the
// flags are, not crash later with node's or a library's own message.
for (const [name, env, message] of [
  ['HEADERS_TIMEOUT_MS above REQUEST_TIMEOUT_MS', { HEADERS_TIMEOUT_MS: '20000' }, /^clicker: HEADERS_TIMEOUT_MS \(20000\) must not exceed REQUEST_TIMEOUT_MS \(15000, the default\)$/],
  ['REQUEST_TIMEOUT_MS below HEADERS_TIMEOUT_MS', { REQUEST_TIMEOUT_MS: '5000' }, /^clicker: HEADERS_TIMEOUT_MS \(10000, the default\) must not exceed REQUEST_TIMEOUT_MS \(5000\)$/],
  ['HEARTBEAT_MS past what a timer holds', { HEARTBEAT_MS: '3000000000' }, /^clicker: HEARTBEAT_MS must be at most 2147483647 ms \(about 24 days\), got "3000000000"$/],
  ['an unknown LOG_LEVEL', { LOG_LEVEL: 'verbose' }, /^clicker: LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent; got "verbose"$/],
  ['PRESENTER_ANYWHERE without a PRESENTER_KEY', { PRESENTER_ANYWHERE: '1' }, /^clicker: the slideshow holds the speaker notes: to open it from other machines, set PRESENTER_KEY/],
] as const) {
  test(`${name} gets a one-line error and exit code 2`, () => {
    // Loopback and a free port, in case a server that should refuse to start does start.
    const r = clicker(['--port', '0', '--bind', '127.0.0.1'], ROOT, env);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr.trimEnd().split('\n').length, 1, r.stderr);
    assert.match(r.stderr.trimEnd(), message);
  });
}

test('a bad theme in the front matter is refused at start too', () => {
  const dir = tmp();
  writeFileSync(path.join(dir, 'talk.md'), '---\ntheme: neon\n---\n# Hi\n');
  const r = clicker(['talk.md'], dir);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^clicker: unknown theme "neon"/);
});

test('init writes a starter deck once, and refuses to overwrite it', () => {
  const dir = tmp();
  const first = clicker(['init', 'talk.md'], dir);
  assert.equal(first.code, 0, first.stderr);
  const md = readFileSync(path.join(dir, 'talk.md'), 'utf8');
  // Every feature the starter promises: front matter, slides, vertical slides, fragments, code, notes, an image.
  assert.match(md, /^---\ntitle: .+\ntheme: \w+\ntransition: \w+\n---\n/);
  assert.match(md, /\n---\n/);
  assert.match(md, /\n--\n/);
  assert.match(md, /class="fragment"/);
  assert.match(md, /```js/);
  assert.match(md, /^Note:$/m);
  assert.ok(existsSync(path.join(dir, 'clicker-logo.svg')));
  const again = clicker(['init', 'talk.md'], dir);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already exists; not overwriting it/);
  // A second starter deck in the same folder shares the logo the first one put there.
  const second = clicker(['init', 'other.md'], dir);
  assert.equal(second.code, 0, second.stderr);
  assert.equal(readFileSync(path.join(dir, 'other.md'), 'utf8'), md);
  // A logo of the user's own by that name is theirs: refused, not overwritten.
  const own = tmp();
  writeFileSync(path.join(own, 'clicker-logo.svg'), '<svg>mine</svg>');
  const refused = clicker(['init', 'talk.md'], own);
  assert.equal(refused.code, 2);
  assert.match(refused.stderr, /clicker-logo\.svg already exists/);
  assert.equal(readFileSync(path.join(own, 'clicker-logo.svg'), 'utf8'), '<svg>mine</svg>');
  assert.ok(!existsSync(path.join(own, 'talk.md')));
});

test("the starter deck's code lines fit its slide: none is over 60 characters (reveal.js's code font fits about 62 across a slide)", () => {
  const md = readFileSync(path.join(ROOT, 'slides', 'starter.md'), 'utf8');
  const code = [...md.matchAll(/^```[^\n]*\n([\s\S]*?)^```/gm)].flatMap((m) => m[1]!.split('\n'));
  assert.ok(code.length >= 3, 'the starter deck has a code block');
  assert.deepEqual(code.filter((l) => l.length > 60), []);
});

test('export writes a PDF with one page per slide', async () => {
  const dir = tmp();
  assert.equal(clicker(['init', 'talk.md'], dir).code, 0);
  const r = clicker(['export', 'talk.md', '--pdf', 'talk.pdf'], dir);
  assert.equal(r.code, 0, r.stderr);
  const parser = new PDFParse({ data: readFileSync(path.join(dir, 'talk.pdf')) });
  const info = await parser.getInfo();
  const text = await parser.getText();
  await parser.destroy();
  // The starter deck has 7 slides, one of them vertical; its fragments do not add pages.
  assert.equal(info.total, 7);
  assert.match(text.text, /MY TALK/i);
  assert.match(text.text, /A VERTICAL SLIDE/i);
  // Notes stay off the handout.
  assert.doesNotMatch(text.text, /Speaker notes start with/);
});

test('export prints every image: those in the slides, slide background images, and ones loaded lazily', async () => {
  const dir = tmp();
  // Noise, so no two images are alike and each stays an image of its own in
  // the PDF; large, as a photo is, so each takes a while to arrive (reveal.js
  // laid the pages out before they had, and the handout lost them).
  const png = (w: number, h: number, seed: number) => {
    const img = new PNG({ width: w, height: h });
    let x = seed;
    for (let i = 0; i < img.data.length; i++) img.data[i] = i % 4 === 3 ? 255 : (x = (x * 1103515245 + 12345) % 2 ** 31) % 256;
    return PNG.sync.write(img);
  };
  mkdirSync(path.join(dir, 'img'));
  const slides: string[] = [];
  for (let i = 1; i <= 6; i++) {
    writeFileSync(path.join(dir, 'img', `p${i}.png`), png(1200, 750, i));
    slides.push(
      i % 3 === 0
        ? `<!-- .slide: data-background-image="img/p${i}.png" -->\n\n## Background ${i}`
        : i % 3 === 1
          ? `## Picture ${i}\n\n<img src="img/p${i}.png" width="480" alt="${i}">`
          : `## Lazy ${i}\n\n<img src="img/p${i}.png" loading="lazy" width="480" alt="${i}">`,
    );
  }
  writeFileSync(path.join(dir, 'talk.md'), slides.join('\n\n---\n\n'));
  const r = clicker(['export', 'talk.md', '--pdf', 'talk.pdf'], dir);
  assert.equal(r.code, 0, r.stderr);
  const parser = new PDFParse({ data: readFileSync(path.join(dir, 'talk.pdf')) });
  const images = await parser.getImage({ imageThreshold: 50, imageDataUrl: false, imageBuffer: false });
  await parser.destroy();
  // One page per slide, each with its picture, the backgrounds included.
  assert.deepEqual(
    images.pages.map((p) => p.images.filter((i) => i.width >= 320).length),
    [1, 1, 1, 1, 1, 1],
  );
});

test('parseCli: commands, deck options, and what wins', () => {
  assert.deepEqual(parseCli(['--help'], {}), { kind: 'help' });
  assert.equal(parseCli(['-v'], {}).kind, 'version');
  const serve = parseCli(['talk.md', '--theme', 'white', '--port', '0'], {});
  assert.equal(serve.kind, 'serve');
  if (serve.kind === 'serve') {
    assert.equal(serve.deck, 'talk.md');
    assert.equal(serve.options.theme, 'white');
    assert.equal(serve.config.port, 0);
  }
  const exp = parseCli(['export', 'talk.md', '--pdf', 'out.pdf'], {});
  assert.deepEqual(exp.kind === 'export' && [exp.deck, exp.pdf], ['talk.md', 'out.pdf']);
  assert.throws(() => parseCli(['a.md', 'b.md'], {}), ConfigError);
  assert.throws(() => parseCli(['talk.md', '--pdf', 'x.pdf'], {}), ConfigError);
  assert.throws(() => parseCli(['init'], {}), ConfigError);
  assert.throws(() => parseCli(['--theme', 'nope'], {}), DeckError);
});

test('decks: front matter, flags over front matter, folders, HTML sections', () => {
  assert.ok(THEMES.includes('black') && THEMES.includes('solarized') && THEMES.length >= 12);
  assert.deepEqual(splitFrontMatter('---\ntitle: T\ntheme: sky\n---\n# A\n'), { data: { title: 'T', theme: 'sky' }, body: '# A\n' });
  assert.deepEqual(splitFrontMatter('# No front matter\n---\n# B'), { data: {}, body: '# No front matter\n---\n# B' });
  assert.throws(() => splitFrontMatter('---\n: [\n---\n'), DeckError);
  // A byte order mark before the front matter is no part of the text.
  assert.deepEqual(splitFrontMatter('\uFEFF---\ntitle: BOM\ntheme: white\n---\n# One'), { data: { title: 'BOM', theme: 'white' }, body: '# One' });
  assert.deepEqual(splitFrontMatter('\uFEFF# One'), { data: {}, body: '# One' });
  // A deck that opens with a separator keeps its first slide: a heading is no YAML mapping.
  assert.deepEqual(splitFrontMatter('---\n\n# Slide one\n\n---\n\n# Slide two'), { data: {}, body: '---\n\n# Slide one\n\n---\n\n# Slide two' });
  assert.deepEqual(splitFrontMatter('---\n\n---\n# A'), { data: {}, body: '# A' });
  // A YAML error says where, in the file's own lines, with nothing left dangling.
  assert.throws(() => splitFrontMatter('---\ntitle: ok\ntheme: "unterminated\n---\n'), (e: unknown) => e instanceof DeckError && /line [3-9]\b/.test(e.message) && !/:$/.test(e.message));

  const dir = tmp();
  writeFileSync(path.join(dir, 'index.md'), '---\ntitle: From front matter\ntheme: sky\n---\n# A\n');
  const md = loadDeck(ROOT, dir, { theme: 'white' });
  assert.equal(md.kind, 'markdown');
  assert.match(md.page(), /<title>From front matter<\/title>/);
  assert.match(md.page(), /href="\/assets\/theme\/white\.css"/, 'the flag wins over front matter');
  assert.equal(md.markdown(), '# A\n');

  const htmlDir = tmp();
  writeFileSync(path.join(htmlDir, 'talk.html'), '<section><h1>Mine</h1></section><section>Two</section>');
  const html = loadDeck(ROOT, path.join(htmlDir, 'talk.html'), {});
  assert.match(html.page(), /<div class="slides">\n<section><h1>Mine<\/h1><\/section><section>Two<\/section>\n<\/div>/);
  writeFileSync(path.join(htmlDir, 'bad.html'), '<p>no sections</p>');
  assert.throws(() => loadDeck(ROOT, path.join(htmlDir, 'bad.html'), {}), DeckError);
  // A title with markup is escaped into the page's <title>.
  assert.match(loadDeck(ROOT, undefined, { title: '<script>x</script>' }).page(), /<title>&lt;script&gt;x&lt;\/script&gt;<\/title>/);
  // A full reveal.js page: its title, theme and own styles come along; reveal.js's own files, its scripts and other hosts' files do not.
  const full = tmp();
  const slidesHtml = '\n      <section><h1>Full</h1><!-- kept as written --></section>\n      <section data-markdown><textarea data-template>## Two</textarea></section>\n    ';
  writeFileSync(
    path.join(full, 'index.html'),
    '<!doctype html><html><head><title>My reveal &amp; talk</title>' +
      '<link rel="stylesheet" href="dist/reset.css"><link rel="stylesheet" href="dist/reveal.css">' +
      '<link rel="stylesheet" href="dist/theme/white.css" id="theme"><link rel="stylesheet" href="plugin/highlight/monokai.css">' +
      '<link rel="stylesheet" href="css/custom.css"><link rel="stylesheet" href="https://cdn.example/x.css"><link rel="icon" href="favicon.png">' +
      '<link rel="stylesheet" href="theme/company.css"><link rel="stylesheet" href="plugin/chart/chart.css">' +
      '<style>.reveal h1 { color: tomato; }</style><script>alert(1)</script></head>' +
      `<body><div class="reveal"><div class="slides">${slidesHtml}</div></div><script src="dist/reveal.js"></script></body></html>`,
  );
  const fullPage = loadDeck(ROOT, full, {}).page();
  assert.match(fullPage, /<title>My reveal &amp; talk<\/title>/);
  assert.match(fullPage, /href="\/assets\/theme\/white\.css"/);
  assert.ok(fullPage.includes(`<div class="slides">\n${slidesHtml}\n</div>`), 'the slides exactly as written');
  const head = fullPage.slice(0, fullPage.indexOf('</head>'));
  assert.match(head, /<link rel="stylesheet" href="css\/custom\.css">/);
  assert.match(head, /<style>\.reveal h1 \{ color: tomato; \}<\/style>/);
  // The deck's own stylesheets are kept, in a theme/ or plugin/ folder too.
  assert.match(head, /<link rel="stylesheet" href="theme\/company\.css">/);
  assert.match(head, /<link rel="stylesheet" href="plugin\/chart\/chart\.css">/);
  for (const gone of ['dist/reveal.css', 'dist/reset.css', 'monokai', 'cdn.example', 'favicon.png', 'alert(1)', 'dist/reveal.js']) assert.ok(!fullPage.includes(gone), gone);
  assert.match(loadDeck(ROOT, full, { theme: 'sky', title: 'Flag' }).page(), /<title>Flag<\/title>[\s\S]*theme\/sky\.css/);
  // Markup a browser shows anyway is read as a browser reads it: a stray end
  // tag, an end tag with a space. Only the slides come along, never the page's scripts.
  const sloppy = tmp();
  writeFileSync(
    path.join(sloppy, 'index.html'),
    '<html><head><title>Sloppy</title><style>h2 { color: teal; }</style ></head>' +
      '<body><div class="reveal"><div class="slides"><section><h2>One</h3></section><section><p>Two<div>open</section></div></div>' +
      '<script src="dist/reveal.js"></script><script>Reveal.initialize()</script></body></html>',
  );
  const sloppyPage = loadDeck(ROOT, sloppy, {}).page();
  assert.match(sloppyPage, /<title>Sloppy<\/title>/);
  assert.match(sloppyPage, /<style>h2 \{ color: teal; \}<\/style>/);
  assert.match(sloppyPage, /<div class="slides">\n<section><h2>One<\/h3><\/section><section><p>Two<div>open<\/section>\n<\/div>/);
  for (const gone of ['dist/reveal.js', 'Reveal.initialize']) assert.ok(!sloppyPage.includes(gone), gone);
  // A whole page with no .slides to take is refused at start, rather than put on the slides, scripts and all.
  const noSlides = tmp();
  writeFileSync(path.join(noSlides, 'index.html'), '<html><body><div class="reveal"><section>One</section></div><script>Reveal.initialize()</script></body></html>');
  assert.throws(() => loadDeck(ROOT, noSlides, {}), (err: Error) => err instanceof DeckError && /no <div class="slides">/.test(err.message));
  // A folder's index file without a title of its own is named after the folder.
  const named = path.join(tmp(), 'owl-talk');
  mkdirSync(named);
  writeFileSync(path.join(named, 'index.md'), '# Owls\n');
  assert.match(loadDeck(ROOT, named, {}).page(), /<title>owl-talk<\/title>/);

  // A title that reads like a placeholder stays a title: the slides still go where they belong.
  const curly = loadDeck(ROOT, path.join(htmlDir, 'talk.html'), { title: 'All the {{slides}} and {{theme}}' }).page();
  assert.match(curly, /<title>All the \{\{slides\}\} and \{\{theme\}\}<\/title>/);
  assert.match(curly, /<div class="slides">\n<section><h1>Mine<\/h1>/);

  // Each deck file has its own id on the page (a hash, not its path); the same file keeps it.
  const deckId = (page: string) => /<meta name="clicker-deck" content="([A-Za-z0-9_-]{16})">/.exec(page)?.[1];
  const ids = [html.page(), loadDeck(ROOT, path.join(htmlDir, 'talk.html'), { theme: 'white' }).page(), md.page(), loadDeck(ROOT, undefined, {}).page()].map(deckId);
  assert.ok(ids.every((id) => id !== undefined), JSON.stringify(ids));
  assert.equal(ids[0], ids[1]);
  assert.equal(new Set(ids).size, 3);
  assert.ok(!html.page().includes(htmlDir), 'no path of the laptop on the page');
});

test("the audience's copy of a deck has no speaker notes: HTML asides and data-notes, Markdown Note: sections", () => {
  const html =
    '<section data-notes="attr notes"><h1>One</h1><aside class="notes">aside notes</aside></section>\n' +
    '<section><section><p>Two <b>bold</b></p><aside class="big notes" id="n">nested <em>notes</em></aside></section></section>\n' +
    '<section><pre><code>&lt;aside class="notes"&gt;shown as code&lt;/aside&gt;</code></pre><aside>a plain aside stays</aside></section>';
  assert.equal(
    htmlWithoutNotes(html),
    '<section ><h1>One</h1></section>\n<section><section><p>Two <b>bold</b></p></section></section>\n' +
      '<section><pre><code>&lt;aside class="notes"&gt;shown as code&lt;/aside&gt;</code></pre><aside>a plain aside stays</aside></section>',
  );
  const md = '# One\n\nNote:\nfirst notes\n\n---\n\n## Two\n\nnotes: lower case\n\n--\n\n## Three\n\nNo notes here: none.\n\n---\n\n## Four\n  NOTES: indented\nmore';
  assert.equal(markdownWithoutNotes(md), '# One\n\n---\n\n## Two\n\n--\n\n## Three\n\nNo notes here: none.\n\n---\n\n## Four\n');
  // Notes written as HTML into a Markdown slide go too; the same markup shown as code stays.
  const asides =
    '## Five\n\n<aside class="notes">hand-written notes</aside>\n\nText with `<aside class="notes">inline code</aside>`.\n\n' +
    '```html\n<aside class="notes">fenced code</aside>\n```\n\n<p data-notes="attribute notes">Shown</p>\n';
  assert.equal(
    markdownWithoutNotes(asides),
    '## Five\n\n\n\nText with `<aside class="notes">inline code</aside>`.\n\n```html\n<aside class="notes">fenced code</aside>\n```\n\n<p >Shown</p>\n',
  );

  // Notes given as an attribute in reveal.js's `.slide:` or `.element:` comment go; the comment's other attributes stay.
  const commented =
    '## Six\n<!-- .slide: data-background="#fff" data-notes="comment notes" -->\n\n- a\n<!-- .element: class="fragment" DATA-NOTES="shouted" -->\n' +
    '<!-- .slide:data-notes="run on" -->\n\n`<!-- .slide: data-notes="shown as code" -->`\n';
  assert.equal(
    markdownWithoutNotes(commented),
    '## Six\n<!-- .slide: data-background="#fff"  -->\n\n- a\n<!-- .element: class="fragment"  -->\n<!-- .slide: -->\n\n`<!-- .slide: data-notes="shown as code" -->`\n',
  );

  // Notes holding code: a backtick inside a comment, an aside or an attribute does not begin code there (CommonMark:
  // whichever begins first wins), so the notes still go; an unclosed aside runs to the slide's end, and a tag's case does not matter.
  const withCode =
    '<!-- .slide: data-notes="run `npm start` now" -->\n# Hi\n\n<aside class="notes">Say `x`, then the secret</aside>\n\n' +
    '<p data-notes="see `foo` first">Shown</p> <ASIDE CLASS="notes">upper</ASIDE> `<aside class="notes">code</aside>`\n\n<aside class="notes">unclosed, to the end';
  // On a line that begins with <p (an HTML block), the backticks are no code: that aside is notes too, and goes.
  assert.equal(markdownWithoutNotes(withCode), '<!-- .slide:  -->\n# Hi\n\n\n\n<p >Shown</p>  ``\n\n');

  // Markdown that a looser reading takes for code or for one long tag, while marked renders the aside (or comment) as HTML:
  // each secret must go, and the code before it stay.
  for (const [md, shown] of [
    ['while i<n.\n\n<aside class="notes">SECRET</aside>', 'while i<n.'],
    ['i<n `x>y` <aside class="notes">SECRET</aside>', '`x>y`'],
    ['\\`<aside class="notes">SECRET`', '\\`'],
    ['Type `` ` `` then <aside class="notes">say `x` SECRET</aside>', '`` ` ``'],
    ['  ```\ncode\n  ````\n<aside class="notes">SECRET</aside>', 'code'],
    ['```js `not a fence\n<aside class="notes">SECRET</aside>\n```', 'not a fence'],
    ['a ` b\n\n<aside class="notes">SECRET</aside> ` c', 'a ` b'],
    ['<aside class="box"><!-- .slide: data-notes="SECRET" --> box</aside>', 'box'],
  ]) {
    const cut = markdownWithoutNotes(md!);
    assert.ok(!cut.includes('SECRET') && cut.includes(shown!), `${JSON.stringify(md)} -> ${JSON.stringify(cut)}`);
  }

  // Through loadDeck: the presenter's page and Markdown keep them, the audience's do not.
  const dir = tmp();
  writeFileSync(path.join(dir, 'talk.md'), '---\ntitle: T\n---\n# Owls\n\nNote:\nThe secret plan.\n');
  const mdDeck = loadDeck(ROOT, path.join(dir, 'talk.md'), {});
  assert.match(mdDeck.markdown() ?? '', /The secret plan/);
  assert.doesNotMatch(mdDeck.markdown('audience') ?? '', /secret/);
  assert.match(mdDeck.page(), /data-markdown="\/_deck\.md"/);
  assert.match(mdDeck.page('audience'), /data-markdown="\/_audience\.md"/);
  const builtin = loadDeck(ROOT, undefined, {});
  assert.match(builtin.page(), /<aside class="notes">/);
  assert.doesNotMatch(builtin.page('audience'), /class="notes"|Three steps\. Scan once/);
  assert.match(builtin.page('audience'), /How it works/);
});

test('a deck file saved half-way, or gone, leaves every page on its last good version; check() says what is wrong', () => {
  const dir = tmp();
  const file = path.join(dir, 'talk.md');
  writeFileSync(file, '---\ntitle: Good\n---\n# Owls\n\nNote:\nsecret\n');
  const deck = loadDeck(ROOT, file, {});
  const before = { page: deck.page(), audience: deck.page('audience'), md: deck.markdown(), audienceMd: deck.markdown('audience') };
  writeFileSync(file, '---\ntitle: "unterminated\n---\n# Owls, edited\n');
  assert.throws(() => deck.check(), DeckError);
  assert.deepEqual({ page: deck.page(), audience: deck.page('audience'), md: deck.markdown(), audienceMd: deck.markdown('audience') }, before);
  // An editor that truncates, then writes: for a moment the file is empty, or holds only the front matter being typed.
  for (const moment of ['', '\n\n', '---\ntitle: Good\n---\n\n', '---\ntitle: broken\n', '---\n', '---\n\n---\n']) {
    writeFileSync(file, moment);
    assert.throws(() => deck.check(), DeckError, JSON.stringify(moment));
    assert.deepEqual({ page: deck.page(), audience: deck.page('audience'), md: deck.markdown(), audienceMd: deck.markdown('audience') }, before, JSON.stringify(moment));
  }
  rmSync(file);
  assert.throws(() => deck.check());
  assert.equal(deck.page('audience'), before.audience);
  // Fixed: the next read has the new version.
  writeFileSync(file, '---\ntitle: Better\n---\n# Owls, fixed\n');
  deck.check();
  assert.match(deck.page(), /<title>Better<\/title>/);
  assert.match(deck.markdown() ?? '', /Owls, fixed/);
  // A deck that starts empty shows empty (its author is about to write it), and takes its first slides as they come.
  const blank = path.join(dir, 'blank.md');
  writeFileSync(blank, '');
  const fresh = loadDeck(ROOT, blank, {});
  writeFileSync(blank, '# First words\n');
  fresh.check();
  assert.match(fresh.markdown() ?? '', /First words/);
  writeFileSync(blank, '');
  assert.throws(() => fresh.check(), DeckError, 'emptied again, it is a broken save');
  assert.match(fresh.markdown() ?? '', /First words/);
  // A deck that opens with a rule and a slide, with no front matter, is still a deck.
  writeFileSync(file, '---\n# Opens with a rule\n');
  deck.check();
  assert.match(deck.markdown() ?? '', /Opens with a rule/);
  // An HTML deck likewise.
  const html = path.join(dir, 'deck.html');
  writeFileSync(html, '<section><h1>One</h1></section>');
  const htmlDeck = loadDeck(ROOT, html, {});
  const shown = htmlDeck.page();
  writeFileSync(html, '<p>no sections at all</p>');
  assert.throws(() => htmlDeck.check(), DeckError);
  assert.equal(htmlDeck.page(), shown);
});

test("an HTML deck's Markdown sections reach the audience without their notes: inline templates, and files they load, which come inline", () => {
  const dir = tmp();
  writeFileSync(path.join(dir, 'part.md'), '## From a file\n\nNote:\nEXTERNAL SECRET\n\n---\n\n## Its second slide\nshown\n');
  writeFileSync(path.join(dir, 'custom.md'), '## Custom\n\n???\nCUSTOM SECRET\n');
  writeFileSync(
    path.join(dir, 'deck.html'),
    '<section data-markdown><textarea data-template>\n## Inline &amp; more\nNote:\nINLINE SECRET\n</textarea></section>\n' +
      '<section data-markdown><script type="text/template">\n## Script\n\nnotes: SCRIPT SECRET\n</script></section>\n' +
      '<section data-markdown="part.md"></section>\n' +
      '<section data-markdown="custom.md" data-separator-notes="^\\?\\?\\?"></section>\n' +
      '<section data-markdown="../outside.md"></section>\n',
  );
  writeFileSync(path.join(path.dirname(dir), 'outside.md'), 'OUTSIDE SECRET');
  const deck = loadDeck(ROOT, path.join(dir, 'deck.html'), {});
  const presenter = deck.page();
  assert.match(presenter, /INLINE SECRET/);
  assert.match(presenter, /data-markdown="part\.md"/);
  const audience = deck.page('audience');
  for (const secret of ['INLINE', 'SCRIPT', 'EXTERNAL', 'CUSTOM', 'OUTSIDE']) assert.doesNotMatch(audience, new RegExp(`${secret} SECRET`), secret);
  // What is not notes stays, inline and from the file, its second slide included; character references still read right.
  assert.match(audience, /<textarea data-template>## Inline &amp; more\n<\/textarea>/);
  assert.match(audience, /## Script/);
  assert.match(audience, /<section data-markdown=""><textarea data-template>## From a file\n\n---\n\n## Its second slide\nshown\n<\/textarea><\/section>/);
  assert.match(audience, /## Custom/);
  assert.doesNotMatch(audience, /data-markdown="[^"]/);
});

test("a deck's assets/ files that Clicker's own would answer for are named at start", async () => {
  const dir = tmp();
  writeFileSync(path.join(dir, 'talk.md'), '# Talk\n');
  mkdirSync(path.join(dir, 'assets', 'theme'), { recursive: true });
  mkdirSync(path.join(dir, 'assets', 'fonts', 'lato'), { recursive: true });
  for (const f of ['slides.css', 'logo.png', 'theme/white.css', 'theme/mine.css', 'fonts/lato/lato-latin-400-normal.woff2', 'fonts/lato/mine.woff2']) writeFileSync(path.join(dir, 'assets', f), 'x');
  // Folders and files the follow and remote pages, the API and Clicker's own files answer for.
  for (const d of ['f', 'r', 'figures']) mkdirSync(path.join(dir, d));
  for (const f of ['favicon.ico', 'clicker.js', 'notes.txt']) writeFileSync(path.join(dir, f), 'x');
  const deck = loadDeck(ROOT, path.join(dir, 'talk.md'), {});
  assert.deepEqual(shadowedAssets(deck, path.join(ROOT, 'dist', 'client')), ['assets/fonts/lato/lato-latin-400-normal.woff2', 'assets/slides.css', 'assets/theme/white.css', 'clicker.js', 'f/', 'favicon.ico', 'r/']);
  assert.deepEqual(shadowedAssets(loadDeck(ROOT, undefined, {}), path.join(ROOT, 'dist', 'client')), [], 'the built-in deck has none');
  // And the running server says so, once per file, where the presenter looks.
  const proc = spawn(process.execPath, [path.join(ROOT, 'dist/server/main.js'), path.join(dir, 'talk.md'), '--port', '0', '--bind', '127.0.0.1'], { cwd: ROOT });
  try {
    let logs = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no warning: ${logs}`)), 10_000);
      proc.stderr.on('data', (d: Buffer) => {
        logs += d.toString();
        if (/the deck's r\/ is never served/.test(logs)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    const warned = logs.split('\n').filter((l) => l.includes('is never served'));
    assert.equal(warned.length, 7, logs);
    assert.match(warned[0]!, /the deck's assets\/fonts\/lato\/lato-latin-400-normal\.woff2 is never served: Clicker's own \/assets\/fonts\/lato\/lato-latin-400-normal\.woff2 answers that URL; rename it/);
    assert.match(warned[1]!, /the deck's assets\/slides\.css is never served: Clicker's own \/assets\/slides\.css answers that URL; rename it/);
  } finally {
    proc.kill('SIGTERM');
  }
});

test('the server prints the LAN URL and its QR code, starts quickly, and a port in use is a one-line error naming the flag', async () => {
  const started = performance.now();
  const { proc: first, url, banner } = await serveShipped();
  try {
    // A figure for the closing note, never an assertion: machines differ.
    console.log(`startup: ${(performance.now() - started).toFixed(0)} ms from spawn to the printed URL and QR`);
    // Phone approval is on: the banner says what the presenter does after scanning.
    assert.match(banner(), /scan the QR code on the title slide with your phone \(same Wi-Fi\),\n {2}and press Enter on the slideshow when it shows your phone's name\./);
    const host = new URL(url).hostname;
    assert.notEqual(host, 'localhost');
    assert.notEqual(host, '127.0.0.1');
    const port = new URL(url).port;
    const second = clicker(['--port', port, '--bind', '127.0.0.1'], ROOT);
    assert.equal(second.code, 2);
    assert.equal(second.stdout, '');
    assert.equal(second.stderr.trimEnd().split('\n').length, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`^clicker: port ${port} is already in use; pick another with --port <n> \\(or PORT=<n>\\)`));
  } finally {
    first.kill('SIGTERM');
  }
});

test('the served app warms its hot path right after the banner, on a private port; /readyz says 503 until it is done', { timeout: 60_000 }, async () => {
  const run = (env: NodeJS.ProcessEnv) =>
    new Promise<{ logs: string; readyDuring?: number; readyAfter?: number; body?: unknown }>((resolve, reject) => {
      const proc = spawn(process.execPath, [path.join(ROOT, 'dist/server/main.js'), '--port', '0', '--bind', '127.0.0.1'], {
        cwd: ROOT,
        env: { ...process.env, LOG_LEVEL: 'debug', ...env },
      });
      const result: { logs: string; readyDuring?: number; readyAfter?: number; body?: unknown } = { logs: '' };
      let out = '';
      let port: string | undefined;
      // Loopback only: the banner's URL carries the LAN address, which tests never call.
      const readyz = async () => {
        const res = await fetch(`http://127.0.0.1:${port}/readyz`);
        return { status: res.status, body: (await res.json()) as unknown };
      };
      proc.stdout.on('data', (d: Buffer) => {
        out += d.toString();
        const m = /Open the slideshow on this laptop:\s+http:\/\/[^/]+:(\d+)\//.exec(out);
        if (m && port === undefined) {
          port = m[1];
          void readyz().then((r) => {
            result.readyDuring = r.status;
            result.body = r.body;
          });
        }
      });
      const timer = setTimeout(() => proc.kill('SIGTERM'), 6_000);
      proc.stderr.on('data', (d: Buffer) => {
        result.logs += d.toString();
        if (/warmed up the hot path|warm-up failed/.test(result.logs) && result.readyAfter === undefined) {
          result.readyAfter = 0;
          void readyz().then((r) => {
            result.readyAfter = r.status;
            proc.kill('SIGTERM');
          });
        }
      });
      proc.on('exit', () => {
        clearTimeout(timer);
        if (port === undefined) reject(new Error(`no banner: ${out}${result.logs}`));
        else resolve(result);
      });
    });
  const warm = await run({ WARMUP_COMMANDS: '3000' });
  const line = warm.logs.split('\n').find((l) => l.includes('warmed up the hot path'));
  assert.ok(line, warm.logs);
  assert.equal((JSON.parse(line) as { commands: number }).commands, 3000);
  assert.doesNotMatch(warm.logs, /warm-up failed/);
  assert.equal(warm.readyDuring, 503, 'not ready while warming up');
  assert.deepEqual(warm.body, { error: 'warming up' });
  assert.equal(warm.readyAfter, 200, 'ready once warm');
  const cold = await run({ WARMUP_COMMANDS: '0' });
  assert.doesNotMatch(cold.logs, /warm/, 'WARMUP_COMMANDS=0 turns it off');
  assert.equal(cold.readyDuring, 200);
});

/** Voluntary context switches of every thread of a process so far: each is a wake-up from sleep. */
function wakeups(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const m = /^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8'));
    n += Number(m?.[1] ?? 0);
  }
  return n;
}

test('an idle server lets the laptop sleep: with a slideshow connected it hardly wakes, and a scraper still gets process metrics', { skip: !existsSync('/proc/self/task') && 'needs /proc', timeout: 60_000 }, async () => {
  // As shipped, startup warm-up included: its throwaway app must not leave a timer behind either.
  const { proc, url } = await serveShipped();
  const stream = new AbortController();
  try {
    // Loopback only: the banner's URL carries the LAN address, which tests never call.
    const port = new URL(url).port;
    const base = `http://127.0.0.1:${port}`;
    while ((await fetch(`${base}/readyz`)).status !== 200) await sleep(100);
    // A slideshow's channel and its open stream, on loopback.
    const created = (await (await fetch(`${base}/api/channels`, { method: 'POST' })).json()) as { id: string };
    const res = await fetch(`${base}/api/channels/${created.id}/events`, { signal: stream.signal });
    assert.equal(res.status, 200);
    const reader = res.body!.getReader();
    assert.match(new TextDecoder().decode((await reader.read()).value), /retry: \d+/);
    // Let startup's file reads and the first collections settle, then count for 3 s.
    await sleep(1_500);
    const before = wakeups(proc.pid!);
    await sleep(3_000);
    const woke = wakeups(proc.pid!) - before;
    console.log(`idle server: ${woke} wake-ups in 3 s over all its threads`);
    // prom-client's lag sampling, started with the server, made this about 300.
    assert.ok(woke <= 15, `an idle server woke ${woke} times in 3 s`);
    // An operator's scraper still gets the process metrics, from its first scrape on.
    const text = await (await fetch(`${base}/metrics`)).text();
    assert.match(text, /^clicker_process_process_cpu_seconds_total \d/m);
    // Sampled before the first answer: no empty histogram's NaN or 2^63 ns.
    const lag = (name: string) => Number(new RegExp(`^clicker_process_nodejs_eventloop_lag_${name}_seconds (\\S+)$`, 'm').exec(text)?.[1]);
    for (const name of ['min', 'mean', 'p99']) assert.ok(lag(name) > 0 && lag(name) < 60, `lag ${name}: ${lag(name)}`);
    assert.match(text, /^clicker_commands_total 0$/m);
  } finally {
    stream.abort();
    proc.kill('SIGTERM');
  }
});

test('with PRESENTER_KEY, the banner gives the presenter link for other machines without printing the key', { timeout: 60_000 }, async () => {
  const key = 'banner-test-presenter-key';
  const { proc, url, banner } = await serveShipped({ PRESENTER_KEY: key, PRESENTER_ANYWHERE: '1' });
  try {
    assert.match(banner(), new RegExp(`Or on any machine, with the presenter key:\\s+${url.replace(/[.]/g, '\\.')}\\?key=<PRESENTER_KEY>\\n`));
    assert.ok(!banner().includes(key), 'the key itself is not printed');
    // The shipped server takes the link (on loopback, as every test calls it).
    const base = `http://127.0.0.1:${new URL(url).port}`;
    const res = await fetch(`${base}/?key=${key}`, { redirect: 'manual' });
    assert.equal(res.status, 303);
    assert.match(res.headers.get('set-cookie') ?? '', /^clicker_presenter=/);
  } finally {
    proc.kill('SIGTERM');
  }
});

test('a terminal that has gone away does not crash the server: its stdout closed, it still shuts down cleanly', async () => {
  const { proc } = await serveShipped();
  let stderr = '';
  proc.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<string>((resolve) => proc.on('exit', (code, signal) => resolve(`${code} ${signal}`)));
  // The reader of its output goes (`clicker | head`); the next line printed, "shutting down", meets a closed pipe.
  proc.stdout!.destroy();
  proc.kill('SIGTERM');
  assert.equal(await exited, '0 null', stderr);
  assert.doesNotMatch(stderr, /EPIPE|Unhandled/);
});
