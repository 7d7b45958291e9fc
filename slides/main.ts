// Slideshow entry: reveal.js with code highlighting and the Clicker plugin.
// The same page serves the presenter (/) and the audience (/f/<channel>).
import Reveal from 'reveal.js';
import Highlight from 'reveal.js/plugin/highlight';
import 'reveal.js/reset.css';
import 'reveal.js/reveal.css';
import 'reveal.js/theme/black.css';
import 'reveal.js/plugin/highlight/monokai.css';
import './slides.css';
import { clickerPlugin, type ClickerMode } from './clicker-plugin';

const follow = /^\/f\/([A-Za-z0-9_-]{22})$/.exec(location.pathname);
const mode: ClickerMode = follow ? { mode: 'follow', channelId: follow[1]! } : { mode: 'present' };
const readOnly = mode.mode === 'follow';

const deck = new Reveal({
  hash: false,
  history: false,
  slideNumber: 'c/t',
  // Followers stay on the presenter's slide: no local navigation.
  controls: !readOnly,
  keyboard: !readOnly,
  touch: !readOnly,
  overview: !readOnly,
  progress: true,
  plugins: [Highlight, clickerPlugin(mode)],
});
void deck.initialize();
