// The security model as people meet it, in a real Chromium against a real
// server process: the projected QR code pairs one phone only; everyone else
// who scans it is told so and offered follow mode; follow mode is read-only;
// P issues a fresh code; "Revoke remotes" unpairs every phone; and whatever
// text the slideshow reports is shown on the phone as text, never as markup.
//
// Only 127.0.0.1 is ever opened: QR codes carry the LAN address, which is
// read, checked, and swapped for loopback (toLoopback) before a page goes
// there. Every context records the hosts it contacts, and the test fails if
// one is not loopback.
import { devices, expect, test, type Browser, type Page } from '@playwright/test';
import { SETTLE_MS } from '../protocol/knocks';
import { ClickerServer, closePages, decodeQr, deckPosition, lanAddresses, LoopbackOnly, readDeckQr, toLoopback, allowPhone } from './fixtures';

const phoneDevice = devices['Pixel 7'];
let server: ClickerServer;
const loopback = new LoopbackOnly();

test.beforeEach(async () => {
  loopback.reset();
  server = await ClickerServer.start();
});
test.afterEach(async ({ browser }) => {
  await closePages(browser);
  await server.stop();
  expect(loopback.off, 'every request went to 127.0.0.1').toEqual([]);
});


/** The slideshow on the laptop, with its first pairing QR decoded. */
async function openDeck(browser: Browser): Promise<{ deck: Page; qr: URL; id: string; total: string }> {
  const deck = await loopback.newPage(browser, { viewport: { width: 1280, height: 720 } });
  await deck.goto(`${server.base}/`);
  const qr = new URL(await readDeckQr(deck));
  // The QR carries the LAN address, never loopback; tests only ever open it rewritten.
  expect(lanAddresses()).toContain(qr.hostname);
  const id = qr.pathname.split('/').pop() ?? '';
  await expect.poll(() => deckPosition(deck)).toMatch(/^1 \/ \d+$/);
  const total = (await deckPosition(deck)).split(' / ')[1] ?? '';
  return { deck, qr, id, total };
}

async function openPhone(browser: Browser, deck: Page, qr: URL | string): Promise<Page> {
  const phone = await loopback.newPage(browser, { ...phoneDevice });
  await phone.goto(toLoopback(qr.toString()));
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  return phone;
}

/** Methods and URLs of every request a page sends from now on. */
function recordRequests(page: Page): string[] {
  const seen: string[] = [];
  page.on('request', (req) => seen.push(`${req.method()} ${req.url()}`));
  return seen;
}

test('the room cannot race the presenter to the QR: phones wait under their own names, a refused one stays away, and only the one the presenter picks becomes the remote', async ({ browser }) => {
  const { deck, qr, id, total } = await openDeck(browser);
  const card = deck.locator('[data-clicker-knock]');
  const waitingPhone = async () => {
    const page = await loopback.newPage(browser, { ...phoneDevice });
    await page.goto(toLoopback(qr.toString()));
    await expect(page.getByRole('heading', { name: 'Allow this phone on the laptop' })).toBeVisible();
    const name = (await page.locator('#message-label').textContent()) ?? '';
    expect(name).toMatch(/^[A-Z][a-z]+ [1-9]\d$/);
    return { page, name };
  };

  // Someone in the room scans the projected QR before the presenter does.
  const first = await waitingPhone();
  await expect(card.locator('li strong')).toHaveText([first.name]);
  await expect(card).toBeInViewport({ ratio: 1 });
  await expect(card).toContainText('Android · Chrome');
  // Waiting, it holds a key that moves nothing.
  const heldKey = await first.page.evaluate(() => {
    const name = Object.keys(localStorage).find((k) => k.endsWith('.waiting'));
    return (JSON.parse(localStorage.getItem(name ?? '') ?? '{}') as { key?: string }).key ?? '';
  });
  expect(heldKey).toMatch(/^[A-Za-z0-9_-]{43}$/);
  const tried = await first.page.evaluate(
    async ([channel, key]) =>
      (await fetch(`/api/channels/${channel}/commands`, { method: 'POST', headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` }, body: JSON.stringify({ type: 'next', id: 'waiting-phone-1' }) })).status,
    [id, heldKey] as const,
  );
  expect(tried).toBe(401);
  // The presenter does not know that name: Esc refuses it, and its knocks, once a second, do not bring it back.
  await deck.waitForTimeout(SETTLE_MS + 200);
  await deck.keyboard.press('Escape');
  await expect(card).toBeHidden();
  await deck.waitForTimeout(2_500);
  await expect(card).toBeHidden();
  await expect(deck.locator('.reveal')).not.toHaveClass(/\boverview\b/);
  // The refused phone is told so, at its next knock, and offered follow mode.
  await expect(first.page.getByRole('heading', { name: 'This phone was not allowed' })).toBeVisible();
  await expect(first.page.getByText('The presenter did not allow this phone')).toBeVisible();
  // The slideshow reloads (a saved stylesheet, say): the refusal is the server's, and holds.
  await deck.reload();
  await expect(deck.locator('[data-clicker-qr][data-url]')).toHaveAttribute('data-url', qr.toString());
  // Scanned again, the same QR gets the same answer, not a new name on the card.
  await first.page.goto(toLoopback(qr.toString()));
  await expect(first.page.getByRole('heading', { name: 'This phone was not allowed' })).toBeVisible();
  await deck.waitForTimeout(2_500);
  await expect(card).toBeHidden();

  // Another audience phone and the presenter's own scan at the same moment.
  const second = await waitingPhone();
  const mine = await waitingPhone();
  await expect(card.locator('li strong')).toHaveText([`1. ${second.name}`, `2. ${mine.name}`]);
  // Whole, on screen, over the slide: nothing of the talk's own covers it.
  await expect(card).toBeInViewport({ ratio: 1 });
  await expect(card.getByRole('button', { name: 'Allow' })).toHaveCount(2);
  const box = (await card.boundingBox())!;
  expect(await deck.evaluate(([x, y]) => !!document.elementFromPoint(x!, y!)?.closest('[data-clicker-knock]'), [box.x + box.width / 2, box.y + 10])).toBe(true);
  // With two waiting, Enter guesses nothing: the presenter picks by the name on their own phone.
  await deck.waitForTimeout(SETTLE_MS + 200);
  await deck.keyboard.press('Enter');
  // Long enough for a wrong allow to have reached the phones (they knock every second).
  await deck.waitForTimeout(2_500);
  await expect(card.locator('li')).toHaveCount(2);
  await expect(mine.page.locator('#remote')).toBeHidden();
  await expect(second.page.locator('#remote')).toBeHidden();
  await expect(mine.page.locator('#message-label')).toHaveText(mine.name);
  expect(await deckPosition(deck)).toBe(`1 / ${total}`);
  // For the README.
  await deck.screenshot({ path: 'docs/approve.png' });
  await mine.page.screenshot({ path: 'docs/phone-waiting.png' });
  await deck.keyboard.press('2');

  await expect(mine.page.locator('#conn')).toHaveAttribute('data-state', 'live');
  await expect(card).toBeHidden();
  await expect(deck.locator('[data-clicker-qr]')).toHaveAttribute('data-kind', 'follow');
  for (const other of [first, second]) {
    await expect(other.page.getByRole('heading', { name: 'This phone was not allowed' })).toBeVisible();
    await expect(other.page.getByRole('link', { name: 'Follow along' })).toBeVisible();
    await expect(other.page.locator('#remote')).toBeHidden();
    // No controller key; the refused phone keeps only its waiting key, which the server refuses.
    expect(await other.page.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('clicker.remote.')))).toEqual(other === first ? [expect.stringMatching(/\.waiting$/)] : []);
  }
  await mine.page.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe(`2 / ${total}`);
});

test('a second phone scanning the used QR is told so, offered follow mode, has no Next button, and cannot move the deck', async ({ browser }) => {
  const { deck, qr, id, total } = await openDeck(browser);
  const phone = await openPhone(browser, deck, qr);
  await expect(deck.locator('[data-clicker-qr]')).toHaveAttribute('data-kind', 'follow');

  // Someone in the room photographed the projected QR and opens it a moment later.
  const intruder = await loopback.newPage(browser, { ...phoneDevice });
  const sent = recordRequests(intruder);
  await intruder.goto(toLoopback(qr.toString()));
  await expect(intruder.getByRole('heading', { name: 'This code was already used' })).toBeVisible();
  await expect(intruder.locator('#message-text')).toContainText('cannot control the slides');
  const follow = intruder.getByRole('link', { name: 'Follow along' });
  await expect(follow).toBeVisible();
  expect(new URL((await follow.getAttribute('href')) ?? '').pathname).toBe(`/f/${id}`);
  await expect(intruder.getByRole('button', { name: 'Next' })).toHaveCount(0);
  await expect(intruder.locator('#remote')).toBeHidden();
  // No live remote's header over the message: no 'Connecting…' that never connects, no '– / –'.
  await expect(intruder.locator('#conn')).toBeHidden();
  await expect(intruder.locator('#position')).toBeHidden();
  // The spent code is dropped from the address bar, and no key was stored.
  expect(new URL(intruder.url()).hash).toBe('');
  expect(await intruder.evaluate(() => Object.keys(localStorage).filter((k) => k.startsWith('clicker.remote.')))).toEqual([]);
  expect(sent.filter((r) => !r.startsWith('GET '))).toEqual([`POST ${server.base}/api/channels/${id}/pair`]);

  // Everything it can do: the keys and gestures of a remote, and the API by hand from its page.
  await intruder.keyboard.press('ArrowRight');
  await intruder.locator('#next').dispatchEvent('pointerdown');
  await intruder.locator('#last').dispatchEvent('click');
  const statuses = await intruder.evaluate(
    async ({ id, code }) => {
      const send = (method: string, path: string, body: unknown, key?: string) =>
        fetch(path, {
          method,
          headers: { 'Content-Type': 'application/json', ...(key ? { Authorization: `Bearer ${key}` } : {}) },
          body: JSON.stringify(body),
        }).then((r) => r.status);
      const base = `/api/channels/${id}`;
      return [
        await send('POST', `${base}/commands`, { type: 'last', id: 'intruder-00000001' }),
        await send('POST', `${base}/commands`, { type: 'last', id: 'intruder-00000002' }, code),
        await send('POST', `${base}/commands`, { type: 'last', id: 'intruder-00000003' }, 'A'.repeat(32)),
        await send('POST', `${base}/pair`, { code }),
        await send('POST', `${base}/pair-codes`, {}),
        await send('DELETE', `${base}/controllers`, {}),
        await send('PUT', `${base}/state`, { state: {} }),
      ];
    },
    { id, code: qr.hash.slice(1) },
  );
  expect(statuses).toEqual([401, 401, 401, 410, 401, 401, 401]);

  // The presenter's phone still drives, and one tap moves exactly one step: had any of the
  // intruder's "last" commands got through, the deck would be on its last slide.
  await expect(deck.locator('.clicker-status')).toHaveAttribute('data-paired', 'true');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe(`2 / ${total}`);
  await expect(phone.locator('#position')).toHaveText(`2 / ${total}`);
  await expect(deck.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(0);
});

test('follow mode shows the presenter\'s slide on join, follows every move, and sends no write at all', async ({ browser }) => {
  const { deck, qr, id, total } = await openDeck(browser);
  const phone = await openPhone(browser, deck, qr);
  // Once a phone is paired, the title slide shows the follow QR instead.
  const box = deck.locator('[data-clicker-qr]');
  await expect(box).toHaveAttribute('data-kind', 'follow');
  const followUrl = (await box.getAttribute('data-url')) ?? '';
  await expect.poll(() => readDeckQr(deck)).toBe(followUrl);
  expect(new URL(followUrl).pathname).toBe(`/f/${id}`);
  expect(new URL(followUrl).hash).toBe('');

  // The presenter is a few steps in before the audience member joins.
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe(`2 / ${total}`);
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(deck.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(1);

  const audience = await loopback.newPage(browser, { viewport: { width: 1024, height: 640 } });
  const sent = recordRequests(audience);
  await audience.goto(toLoopback(followUrl));
  // The snapshot on join puts it where the presenter is, fragment included.
  await expect.poll(() => deckPosition(audience)).toBe(`2 / ${total}`);
  await expect(audience.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(1);
  await expect(audience.locator('.clicker-status')).toContainText('Following the presenter');
  await expect(audience.locator('[data-clicker-qr]')).toBeHidden();

  // Its own keys do nothing, here or on the laptop.
  await audience.locator('body').click({ position: { x: 500, y: 40 } });
  for (const key of ['ArrowRight', 'Space', 'End', 'p', 'n']) await audience.keyboard.press(key);

  // It follows the presenter: a fragment, then the last slide.
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect(audience.locator('.reveal .slides section.present .fragment.visible')).toHaveCount(2);
  await phone.getByRole('button', { name: 'Last' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe(`${total} / ${total}`);
  await expect.poll(() => deckPosition(audience)).toBe(`${total} / ${total}`);
  await phone.getByRole('button', { name: 'First' }).tap();
  await expect.poll(() => deckPosition(audience)).toBe(`1 / ${total}`);
  expect(await deckPosition(deck)).toBe(`1 / ${total}`);

  // On a phone held upright too, a follower sees the presenter's slide and
  // its number, not reveal.js's scrolling page of every slide.
  const pocket = await loopback.newPage(browser, { ...phoneDevice });
  await pocket.goto(toLoopback(followUrl));
  await expect.poll(() => deckPosition(pocket)).toBe(`1 / ${total}`);
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(pocket)).toBe(`2 / ${total}`);
  expect(await deckPosition(deck)).toBe(`2 / ${total}`);
  await expect(pocket.locator('.reveal-viewport')).not.toHaveClass(/reveal-scroll/);
  await expect(pocket.locator('.reveal .slides section.present')).toBeInViewport();

  const streams = sent.filter((r) => r.startsWith(`GET ${server.base}/api/channels/${id}/events`));
  expect(streams.length, 'the recorder saw the stream').toBeGreaterThan(0);
  // A follower follows the slideshow's state reports: the commands are never sent to it.
  for (const r of streams) {
    const events = new URL(r.slice('GET '.length)).searchParams.get('events')?.split(',');
    expect(events).toContain('state');
    expect(events).not.toContain('command');
  }
  expect(sent.filter((r) => !/^(GET|HEAD) /.test(r)), 'follow mode sends nothing but reads').toEqual([]);
  // It never opened a channel of its own either.
  expect(await audience.evaluate(() => localStorage.getItem('clicker.deck.v1'))).toBeNull();
});

test("a follower's first placement, overtaken by the presenter's next move, keeps the deck's slide transition", async ({ browser }) => {
  const { deck, qr, id, total } = await openDeck(browser);
  const phone = await openPhone(browser, deck, qr);
  await expect(deck.locator('.reveal')).toHaveClass(/\bslide\b/);
  await phone.getByRole('button', { name: 'Slides' }).tap();
  await phone.getByRole('dialog', { name: 'Jump to slide' }).getByRole('button').nth(3).tap();
  await expect.poll(() => deckPosition(deck)).toBe(`3 / ${total}`);

  // The follower's animation frames are held back, so its first placement
  // (made with the transition off, shown a frame later) is still waiting
  // when the presenter's next move arrives.
  const audience = await loopback.newPage(browser, { viewport: { width: 1024, height: 640 } });
  await audience.addInitScript(() => {
    const held: FrameRequestCallback[] = [];
    const real = window.requestAnimationFrame.bind(window);
    let holding = true;
    window.requestAnimationFrame = (cb) => (holding ? (held.push(cb), 0) : real(cb));
    (window as unknown as { releaseFrames: () => void }).releaseFrames = () => {
      holding = false;
      for (const cb of held.splice(0)) real(cb);
    };
  });
  await audience.goto(`${server.base}/f/${id}`);
  await expect.poll(() => deckPosition(audience)).toBe(`3 / ${total}`);
  await expect(audience.locator('.reveal')).toHaveClass(/\bclicker-restoring\b/);
  await phone.getByRole('button', { name: 'Last' }).tap();
  await expect.poll(() => deckPosition(audience)).toBe(`${total} / ${total}`);
  await audience.evaluate(() => (window as unknown as { releaseFrames: () => void }).releaseFrames());
  await expect(audience.locator('.reveal')).not.toHaveClass(/\bclicker-restoring\b/);
  // The author's transition is back (reveal.js names it in a class of the deck), not the borrowed "none".
  await expect(audience.locator('.reveal')).toHaveClass(/\bslide\b/);
  await expect(audience.locator('.reveal')).not.toHaveClass(/\bnone\b/);
});

test('a revoke or a new code the server does not get is said on the slideshow, never taken for done', async ({ browser }) => {
  const { deck, qr } = await openDeck(browser);
  await openPhone(browser, deck, qr);
  const status = deck.locator('.clicker-status');
  await expect(status).toHaveAttribute('data-paired', 'true');
  const errors: string[] = [];
  deck.on('pageerror', (e) => errors.push(e.message));

  // The server is out of reach for these two requests.
  await deck.route('**/api/channels/*/controllers', (route) => route.abort('connectionrefused'));
  await deck.route('**/api/channels/*/pair-codes', (route) => route.abort('connectionrefused'));
  await status.hover();
  await deck.getByRole('button', { name: 'Revoke remotes' }).click();
  const note = status.getByRole('alert');
  await expect(note).toHaveText('Remotes not revoked: the server did not answer. Try again.');
  await expect(status).toHaveAttribute('data-paired', 'true');
  await deck.keyboard.press('q');
  await expect(note).toHaveText('No new pairing code: the server did not answer. Try again.');
  expect(errors).toEqual([]);

  // Back: the same button works, and the notice goes.
  await deck.unroute('**/api/channels/*/controllers');
  await status.hover();
  await deck.getByRole('button', { name: 'Revoke remotes' }).click();
  await expect(status).toHaveAttribute('data-paired', 'false');
  await expect(note).toBeHidden();
});

test("the pairing key is listed in reveal.js's own keyboard help", async ({ browser }) => {
  const { deck } = await openDeck(browser);
  await deck.keyboard.press('Shift+Slash');
  await expect(deck.getByRole('row').filter({ hasText: 'New pairing code (Clicker)' })).toContainText('Q');
});

test('Q issues a fresh pairing code for a new phone; "Revoke remotes" unpairs every phone and they say so', async ({ browser }) => {
  const { deck, qr, id, total } = await openDeck(browser);
  const first = await openPhone(browser, deck, qr);
  await expect(deck.locator('[data-clicker-qr]')).toHaveAttribute('data-kind', 'follow');
  await first.getByRole('button', { name: 'Next' }).tap();
  await first.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toBe(`2 / ${total}`);
  await expect.poll(() => deck.locator('.reveal .slides section.present .fragment.visible').count()).toBe(1);

  // P stays reveal.js's "previous": one build back, and no pairing code for the room to scan.
  await deck.keyboard.press('p');
  await expect.poll(() => deck.locator('.reveal .slides section.present .fragment.visible').count()).toBe(0);
  expect(await deckPosition(deck)).toBe(`2 / ${total}`);
  await expect(deck.locator('[data-clicker-qr]')).toHaveAttribute('data-kind', 'follow');

  // Q mid-talk: the fresh code shows over the slide, and the deck stays where the room is.
  const panel = deck.locator('[data-clicker-pair-panel]');
  const panelQr = async () => {
    await deck.waitForFunction(() => (document.querySelector<HTMLImageElement>('[data-clicker-pair-panel] img')?.naturalWidth ?? 0) > 0);
    return decodeQr(await panel.locator('img').screenshot());
  };
  await deck.keyboard.press('q');
  await expect(panel).toBeVisible();
  await expect(deck.locator('[data-clicker-qr]')).toHaveAttribute('data-kind', 'pair');
  const shown = new URL(await panelQr());
  expect(shown.pathname).toBe(qr.pathname);
  expect(shown.hostname).toBe(qr.hostname);
  expect(shown.hash).toMatch(/^#[A-Za-z0-9_-]{32}$/);
  expect(shown.hash).not.toBe(qr.hash);
  expect(await deckPosition(deck)).toBe(`2 / ${total}`);
  // Q again hides it; once more gives a newer code, which replaces the one before.
  await deck.keyboard.press('q');
  await expect(panel).toBeHidden();
  await deck.keyboard.press('q');
  await expect(panel).toBeVisible();
  await expect.poll(async () => new URL(await panelQr()).hash).not.toBe(shown.hash);
  const fresh = new URL(await panelQr());
  expect(await deckPosition(deck)).toBe(`2 / ${total}`);

  const second = await openPhone(browser, deck, fresh);
  await expect(deck.locator('.clicker-status')).toContainText('2 remotes paired');
  // Spent: the panel goes by itself.
  await expect(panel).toBeHidden();
  await expect(second.locator('#position')).toHaveText(`2 / ${total}`);
  await second.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deck.locator('.reveal .slides section.present .fragment.visible').count()).toBe(1);
  expect(await deckPosition(deck)).toBe(`2 / ${total}`);

  // The status overlay fades when the mouse rests; hovering brings it back.
  await deck.locator('.clicker-status').hover();
  await deck.getByRole('button', { name: 'Revoke remotes' }).click();
  await expect(deck.locator('.clicker-status')).toHaveAttribute('data-paired', 'false');
  // With no phone left, the title slide offers a fresh pairing code again.
  await expect(deck.locator('[data-clicker-qr]')).toHaveAttribute('data-kind', 'pair');
  const position = await deckPosition(deck);

  for (const phone of [first, second]) {
    // Told without a tap: the deck re-registers with its outline, each phone asks for the notes again, and is refused.
    await expect(phone.getByRole('heading', { name: 'This remote was unpaired' })).toBeVisible();
    await expect(phone.getByRole('button', { name: 'Next' })).toBeHidden();
    const link = phone.getByRole('link', { name: 'Follow along' });
    expect(new URL((await link.getAttribute('href')) ?? '').pathname).toBe(`/f/${id}`);
    expect(await phone.evaluate((key) => localStorage.getItem(key), `clicker.remote.${id}`)).toBeNull();
  }
  // Nothing moved the deck.
  expect(await deckPosition(deck)).toBe(position);
  // And a revoked phone that reloads is simply not paired.
  await first.reload();
  await expect(first.getByRole('heading', { name: 'Not paired' })).toBeVisible();
});

test('titles, notes and the outline are shown on the phone as text: markup is never turned into elements', async ({ browser }) => {
  const { deck, qr, id, total } = await openDeck(browser);
  const phone = await openPhone(browser, deck, qr);
  await expect(deck.locator('.clicker-status')).toHaveAttribute('data-paired', 'true');
  await expect(phone.locator('#title')).toHaveText('Clicker');

  // The deck key is the slideshow's own secret, kept in its localStorage.
  const saved = JSON.parse((await deck.evaluate(() => localStorage.getItem('clicker.deck.v1'))) ?? '{}') as { id?: string; deckKey?: string };
  expect(saved.id).toBe(id);
  const title = '<img src=x onerror="window.__pwned=1">';
  const notes = '<script>window.__pwned=2</script><b>bold</b>\n<iframe src="javascript:window.__pwned=3"></iframe>';
  const nextTitle = '<svg onload="window.__pwned=4"></svg>';
  const outlineTitle = '<a href="javascript:window.__pwned=5">jump</a><img src=x onerror="window.__pwned=6">';
  const n = Number(total);
  const res = await fetch(`${server.base}/api/channels/${id}/state`, {
    method: 'PUT',
    headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${saved.deckKey ?? ''}` },
    body: JSON.stringify({
      state: { indexh: 0, indexv: 0, indexf: -1, fragments: 0, paused: false, position: 1, total: n, isFirst: true, isLast: false, title, notes, nextTitle },
      slides: [
        { h: 0, v: 0, title: outlineTitle },
        { h: 1, v: 0, title: '<b>second</b>' },
      ],
    }),
  });
  expect(res.status).toBe(200);

  await expect(phone.locator('#title')).toHaveText(title);
  expect(await phone.locator('#notes').textContent()).toBe(notes);
  await expect(phone.locator('#next-title')).toHaveText(nextTitle);
  await phone.getByRole('button', { name: 'Slides' }).tap();
  const list = phone.getByRole('dialog', { name: 'Jump to slide' });
  await expect(list.getByRole('button', { name: outlineTitle, exact: true })).toBeVisible();
  await expect(list.getByRole('button', { name: '<b>second</b>', exact: true })).toBeVisible();

  // No element was made from any of it, and nothing ran.
  for (const where of ['#title', '#notes', '#next-title', '#slide-items button']) {
    await expect(phone.locator(`${where} *`)).toHaveCount(0);
  }
  await expect(phone.locator('img[src="x"], iframe, svg[onload], a[href^="javascript:"], b')).toHaveCount(0);
  expect(await phone.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
});

test('a phone refused by mistake pairs with the next code, even when the scanner opens it in the same tab (only the # differs)', async ({ browser }) => {
  const { deck, qr } = await openDeck(browser);
  const card = deck.locator('[data-clicker-knock]');
  const phone = await loopback.newPage(browser, { ...phoneDevice });
  await phone.goto(toLoopback(qr.toString()));
  await expect(phone.getByRole('heading', { name: 'Allow this phone on the laptop' })).toBeVisible();
  await expect(card).toBeVisible();
  await deck.waitForTimeout(SETTLE_MS + 200);
  await deck.keyboard.press('Escape');
  await expect(phone.getByRole('heading', { name: 'This phone was not allowed' })).toBeVisible();
  // It says how the presenter undoes that.
  await expect(phone.getByText('put up a new pairing code on the laptop (Q on the slideshow, or New code)')).toBeVisible();

  await deck.keyboard.press('q');
  const shown = deck.locator('[data-clicker-qr][data-kind="pair"]').first();
  await expect(shown).not.toHaveAttribute('data-url', qr.toString());
  const fresh = new URL((await shown.getAttribute('data-url')) ?? '');
  expect(fresh.pathname).toBe(qr.pathname);
  expect(fresh.hash).toMatch(/^#[A-Za-z0-9_-]{32}$/);
  // The tab is still on the refusal, at the same path: the browser only fires hashchange.
  expect(new URL(phone.url()).pathname).toBe(fresh.pathname);
  await phone.evaluate((url) => {
    location.href = url;
  }, toLoopback(fresh.toString()));
  await expect(phone.getByRole('heading', { name: 'Allow this phone on the laptop' })).toBeVisible();
  await allowPhone(deck, phone);
  await expect(phone.locator('#conn')).toHaveAttribute('data-state', 'live');
  await phone.getByRole('button', { name: 'Next' }).tap();
  await expect.poll(() => deckPosition(deck)).toMatch(/^2 \//);
});
