// The audience's copy of a Markdown deck, checked against the renderer that
// reads it: reveal.js's markdown plugin renders each slide with marked (17, as
// reveal.js 6 bundles it), then applies `.slide:` / `.element:` comments as
// attributes and moves <aside class="notes"> into the speaker view. Random
// slides built from the pieces that decide what is code and what is HTML must
// be cut without dropping the slide (the last resort, which is always safe),
// and so without reveal.js finding notes in what is left.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { cutSlideNotes, markdownWithoutNotes, notesInHtml as notesIn } from './deck';
import { prng } from './testing-procs';

/** Pieces of Markdown: code's delimiters, escapes, block starts, and every way HTML can carry notes. */
const PIECES = [
  '`', '``', '```', '~~~', '\\`', '\\<', '\\', 'text ', 'i<n ', 'x>y ', '"', "'", '>', '<', '=',
  '\n', '\n', '\n\n', '  ', '   ', '    ', '- ', '> ', '# ', '1. ',
  '<aside class="notes">SECRET</aside>', '<aside class="notes">', '</aside>', '<aside class="box">', '<aside>',
  '<!-- .slide: data-notes="SECRET" -->', '<!-- .element: data-notes="SECRET" -->', '<!--', '-->',
  '<p data-notes="SECRET">x</p>', '<span data-notes="SECRET">', '<div>\n', '</div>\n', '<b>', '</b>',
  '```js\n', '```\n', '~~~\n', '<pre>', '</pre>', '<script type="text/template">', '</SCRIPT >', '</script/',
  '```x"><aside class="notes">SECRET</aside><i class="\n', '\t', '<aside title="a>b" class="notes">SECRET</aside>',
  '<style>', '<textarea>', '<![CDATA[', ']]>', '<?', '?>', '&lt;', '<aside class=notes>SECRET</aside>', "<aside class='notes'>SECRET</aside>",
];

test('what reveal.js would take for notes in rendered HTML is found', () => {
  assert.deepEqual(notesIn('<aside class="x notes">a</aside><p data-notes="b">c</p><!-- .slide: data-notes="d" --><template><i data-notes="e"></i></template>'), [
    'aside.notes',
    'p[data-notes]',
    'data-notes in a comment',
    'i[data-notes]',
  ]);
  assert.deepEqual(notesIn('<aside class="notesy">a</aside><p>data-notes="b"</p><code>&lt;aside class="notes"&gt;</code><!-- data-notes="" -->'), []);
});

test('a cut Markdown slide keeps what is code, and reveal.js finds no notes in it: 3,000 random slides, none dropped', () => {
  const seed = Number(process.env.DECK_SEED) || Date.now() % 1_000_000;
  const rand = prng(seed);
  const cuts = { read: 0, 'as-html': 0, dropped: 0 };
  for (let i = 0; i < 3_000; i++) {
    const slide = Array.from({ length: 3 + Math.floor(rand() * 14) }, () => PIECES[Math.floor(rand() * PIECES.length)]).join('');
    const { text, cut } = cutSlideNotes(slide);
    cuts[cut]++;
    // "dropped" means neither cut left the slide free of notes: the audience would get it empty.
    assert.notEqual(cut, 'dropped', `seed ${seed}, slide ${i}: ${JSON.stringify(slide)}`);
    assert.equal(markdownWithoutNotes(slide), text);
  }
  console.log(`[deck cut] seed ${seed}: ${JSON.stringify(cuts)}`);
  // Most are settled by the reading that keeps code; the rest show the check at work.
  assert.ok(cuts.read > 2_000 && cuts['as-html'] > 0, JSON.stringify(cuts));
});

test('markup only the plugin makes into notes is cut too; a class given by comment empties the slide', () => {
  // An info string goes into the code's class unescaped; indentation is taken off every later run of it.
  for (const slide of ['```x"><aside class="notes">SECRET</aside><i class="\ncode\n```', '  # Title\n  <b>x</b>  <aside class="notes">SECRET</aside>', 'a </SCRIPT > <aside class="notes">SECRET</aside>']) {
    const { text, cut } = cutSlideNotes(slide);
    assert.ok(!text.includes('SECRET') && cut !== 'dropped', `${JSON.stringify(slide)} -> ${cut} ${JSON.stringify(text)}`);
  }
  // Cutting the comment would put the aside on the follower's screen, so nothing of the slide goes.
  assert.deepEqual(cutSlideNotes('<aside>\nSECRET\n</aside>\n<!-- .element: class="notes" -->'), { text: '', cut: 'dropped' });
  assert.deepEqual(notesIn('<!-- .element: class="big notes" -->'), ['class notes in a comment']);
});
