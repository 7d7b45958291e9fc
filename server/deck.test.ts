// The audience's copy of a Markdown deck, checked against the renderer that
// reads it: reveal.js's markdown plugin renders each slide with marked (17, as
// reveal.js 6 bundles it), then applies `.slide:` / `.element:` comments as
// attributes and moves <aside class="notes"> into the speaker view. Random
// slides built from the pieces that decide what is code and what is HTML must
// never render, once cut, into anything reveal.js would take for notes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Marked } from 'marked';
import { markdownWithoutNotes, notesInHtml as notesIn } from './deck';
import { prng } from './testing-procs';

/** Pieces of Markdown: code's delimiters, escapes, block starts, and every way HTML can carry notes. */
const PIECES = [
  '`', '``', '```', '~~~', '\\`', '\\<', '\\', 'text ', 'i<n ', 'x>y ', '"', "'", '>', '<', '=',
  '\n', '\n', '\n\n', '  ', '   ', '    ', '- ', '> ', '# ', '1. ',
  '<aside class="notes">SECRET</aside>', '<aside class="notes">', '</aside>', '<aside class="box">', '<aside>',
  '<!-- .slide: data-notes="SECRET" -->', '<!-- .element: data-notes="SECRET" -->', '<!--', '-->',
  '<p data-notes="SECRET">x</p>', '<span data-notes="SECRET">', '<div>\n', '</div>\n', '<b>', '</b>',
  '```js\n', '```\n', '~~~\n', '<pre>', '</pre>', '<script type="text/template">',
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

test('a cut Markdown slide, rendered as reveal.js renders it, holds no notes (3,000 random slides)', () => {
  const marked = new Marked();
  const seed = Number(process.env.DECK_SEED) || Date.now() % 1_000_000;
  const rand = prng(seed);
  let withNotes = 0;
  for (let i = 0; i < 3_000; i++) {
    const slide = Array.from({ length: 3 + Math.floor(rand() * 14) }, () => PIECES[Math.floor(rand() * PIECES.length)]).join('');
    // Control: uncut, the renderer does find notes in many of them, or this test could not fail.
    if (notesIn(marked.parse(slide, { async: false })).length) withNotes++;
    const cut = markdownWithoutNotes(slide);
    const found = notesIn(marked.parse(cut, { async: false }));
    assert.deepEqual(found, [], `seed ${seed}, slide ${i}: ${JSON.stringify(slide)}\ncut to ${JSON.stringify(cut)}\nrenders ${found.join(', ')}`);
  }
  assert.ok(withNotes > 500, `only ${withNotes} of 3,000 slides had notes before the cut`);
});
