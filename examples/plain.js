// A plain page of slides, driven by the Clicker phone remote through the
// drop-in script (window.Clicker, loaded by the <script> tag before this one).
//
// The page moves on its own ArrowLeft/ArrowRight/Home/End keys; Clicker presses
// those keys for the phone's Next, Previous, First and Last, so nothing else
// is needed to be driven. Clicker.report() tells the phone where the page is.
const slides = [...document.querySelectorAll('.slide')];
const titles = slides.map((s) => s.querySelector('h1').textContent.trim());
const positionEl = document.getElementById('position');
const statusEl = document.getElementById('status');
let current = 0;

function show(index) {
  current = Math.max(0, Math.min(slides.length - 1, index));
  slides.forEach((s, i) => s.classList.toggle('current', i === current));
  positionEl.textContent = `${current + 1} / ${slides.length}`;
  Clicker.report({
    position: current + 1,
    total: slides.length,
    title: titles[current],
    notes: slides[current].dataset.notes ?? '',
    // The phone's "Slides" list: a jump there calls onGoto below.
    slides: titles,
  });
}

document.addEventListener('keydown', (event) => {
  if (event.key === 'ArrowRight') show(current + 1);
  else if (event.key === 'ArrowLeft') show(current - 1);
  else if (event.key === 'Home') show(0);
  else if (event.key === 'End') show(slides.length - 1);
});

function setStatus(state, text) {
  statusEl.dataset.state = state;
  statusEl.textContent = text;
}

// Reported before start() resolves: Clicker sends it as soon as the channel is open.
show(0);

// Default keys map next/prev/first/last to ArrowRight/ArrowLeft/Home/End; goto has no key, so it gets a callback.
Clicker.start({
  onGoto: (position) => show(position - 1),
  // Start-up failures (this origin not allowed, server down) and later ones (a refused report) land here.
  onError: (err) => setStatus('error', err.message),
})
  .then(() => setStatus('ready', 'Remote ready: press “Pair phone”'))
  .catch(() => {
    // Already shown by onError; catching keeps the rejection from being reported as unhandled.
  });

document.getElementById('pair').addEventListener('click', () => Clicker.showQr());
