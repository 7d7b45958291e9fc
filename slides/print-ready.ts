// The PDF export's wait for what the slides draw. reveal.js lays out the
// print view's pages once, when it starts, measuring each slide; it waits for
// the window's load event, but the Markdown plugin adds its slides' images
// after that, so they were measured (and printed) before they had arrived:
// a handout came out with pictures missing, or with a slide's picture pushed
// onto a page of its own, depending on the run. Registered after the Markdown
// plugin, whose slides are in the page by then, this plugin's init holds
// reveal.js's start until every image, slide background image and web font
// has loaded, or failed, or `limitMs` has passed.
import type { RevealPlugin } from 'reveal.js';

const settled = (p: Promise<unknown>) => p.then(
  () => undefined,
  () => undefined,
);

/** Resolves when `img` has loaded or failed; an image off screen with loading="lazy" is made eager first. */
function loaded(img: HTMLImageElement): Promise<void> {
  img.loading = 'eager';
  if (img.complete && img.naturalWidth > 0) return Promise.resolve();
  return settled(img.decode());
}

export function printReady(limitMs = 20_000): RevealPlugin {
  return {
    id: 'clicker-print-ready',
    init(deck) {
      const slides = deck.getSlidesElement();
      if (!slides) return;
      const images = [...slides.querySelectorAll<HTMLImageElement>('img')];
      // Backgrounds are drawn from data-background-image, loaded as CSS later: fetched here first, they come from the cache then.
      // reveal.js takes a comma-separated list there, one image over another.
      const backgrounds = [...slides.querySelectorAll<HTMLElement>('[data-background-image]')]
        .flatMap((s) => s.dataset.backgroundImage!.split(',').map((u) => u.trim()).filter(Boolean))
        .map((url) => {
          const img = new Image();
          img.src = new URL(url, document.baseURI).href;
          return settled(img.decode());
        });
      const all = Promise.all([...images.map(loaded), ...backgrounds, settled(document.fonts.ready)]);
      return Promise.race([all, new Promise<void>((resolve) => setTimeout(resolve, limitMs))]).then(() => undefined);
    },
  };
}
