// Slideshow entry: reveal.js with Markdown, code highlighting and the Clicker
// plugin. The same page serves the presenter (/), the audience
// (/f/<channel>) and the PDF export (?print-pdf). The theme is a separate
// stylesheet chosen by the server, so every reveal.js theme works.
import Reveal from 'reveal.js';
import Highlight from 'reveal.js/plugin/highlight';
import Markdown from 'reveal.js/plugin/markdown';
import 'reveal.js/reset.css';
import 'reveal.js/reveal.css';
import 'reveal.js/plugin/highlight/monokai.css';
import './slides.css';
import { clickerPlugin, type ClickerMode } from './clicker-plugin';
import { printReady } from './print-ready';

const follow = /^\/f\/([A-Za-z0-9_-]{22})$/.exec(location.pathname);
const printing = /print-pdf/i.test(location.search);
const mode: ClickerMode = follow ? { mode: 'follow', channelId: follow[1]! } : { mode: 'present' };
const readOnly = mode.mode === 'follow';
const root = document.querySelector<HTMLElement>('.reveal');
const TRANSITIONS = ['none', 'fade', 'slide', 'convex', 'concave', 'zoom'] as const;
const transition = TRANSITIONS.find((t) => t === root?.dataset.transition) ?? 'slide';

const deck = new Reveal({
  hash: false,
  history: false,
  slideNumber: 'c/t',
  transition,
  // Followers stay on the presenter's slide: no local navigation.
  controls: !readOnly,
  keyboard: !readOnly,
  touch: !readOnly,
  overview: !readOnly,
  // reveal.js turns a window narrower than 435 px (a phone held upright) into
  // a scrolling page of every slide. A follower must not wander off the
  // presenter's slide, and there its slide number counted a slide too many.
  // 0 turns that off (reveal.js compares the width with it).
  ...(readOnly ? { scrollActivationWidth: 0 } : {}),
  progress: true,
  // A handout has one page per slide, with every fragment shown.
  pdfSeparateFragments: false,
  // A PDF export is not a talk: no channel, no QR.
  // After Markdown: its slides' images are in the page by the time printReady waits for them.
  plugins: printing ? [Markdown, Highlight, printReady()] : [Markdown, Highlight, clickerPlugin(mode)],
});
/**
 * A talk-sized deck keeps every slide rendered. reveal.js hides slides beyond
 * `viewDistance` (3 by default) with display:none, so each move shows one
 * slide and hides another, and the browser rebuilds their layout inside the
 * move: about a millisecond per tap on a modest laptop. A long deck keeps the
 * default, which also keeps lazy-loaded media of far slides unloaded.
 */
const KEEP_RENDERED_UP_TO = 40;

void deck.initialize().then(() => {
  const total = deck.getTotalSlides();
  if (!printing && total <= KEEP_RENDERED_UP_TO) deck.configure({ viewDistance: total, mobileViewDistance: total });
});
