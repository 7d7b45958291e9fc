// The phone remote. Pairs once with the one-time code in the URL fragment,
// keeps its controller key across reloads, sends commands on pointerdown
// (a click waits for the finger to lift), and shows where the deck really is
// from the slideshow's own state reports.
import NoSleep from 'nosleep.js';
import './controller.css';
import {
  canStep,
  CONTROLLER_KEY_RE,
  EVENT,
  ID_RE,
  type PairPending,
  type PairResult,
  type PublicDeckState,
  type SlideRef,
  type SlideshowLink,
  type Snapshot,
  type SpeakerNotes,
  type StateEvent,
} from '../protocol/wire';
import { commandId, COMMAND_DEADLINE_MS, HttpStatusError, LiveStream, requestJson, sendCommand, type LinkState } from '../protocol/live';
import { PointerPad } from './pointer';
import { QUESTION_EVENTS, QuestionsPanel } from './questions';

const $ = <T extends HTMLElement = HTMLElement>(id: string) => document.getElementById(id) as T;

const channelId = location.pathname.split('/')[2] ?? '';
const keyName = `clicker.remote.${channelId}`;
/** Where the phone keeps its stream token, beside its key. */
const tokenName = `${keyName}.stream`;
const api = `/api/channels/${channelId}`;
const followUrl = `${location.origin}/f/${channelId}`;

let state: PublicDeckState | null = null;
let slides: SlideRef[] = [];
let key = '';
/** The laser pointer and pen (pointer.ts), once the remote is up. */
let pad: PointerPad | null = null;

// ---------------------------------------------------------------- views
function showMessage(title: string, text: string, link?: string): void {
  $('app').dataset.view = 'message';
  $('remote').hidden = true;
  $('message').hidden = false;
  $('message-title').textContent = title;
  $('message-text').textContent = text;
  $('message-label').hidden = true;
  const a = $<HTMLAnchorElement>('message-link');
  a.hidden = !link;
  if (link) a.href = link;
}

function showRemote(): void {
  $('app').dataset.view = 'remote';
  $('message').hidden = true;
  $('remote').hidden = false;
}

const LINK_TEXT: Record<LinkState, string> = {
  connecting: 'Connecting…',
  live: 'Live',
  reconnecting: 'Reconnecting…',
  // The server is up and does not know the channel: the laptop's slideshow brings it back once it is open.
  // Short: it shares the top bar with the position.
  waiting: 'No slideshow',
  offline: 'Offline',
};

function setLink(s: LinkState): void {
  $('conn').dataset.state = s;
  $('conn-text').textContent = LINK_TEXT[s];
}

/** Renders the deck's state. Everything goes in as text, never as markup. */
function render(): void {
  if (!state) return;
  const s = state;
  pad?.update(s);
  const title = s.title || `Slide ${s.position}`;
  const builds = s.fragments > 0 ? `${s.indexf + 1} of ${s.fragments} builds shown` : '';
  $('position').textContent = `${s.position} / ${s.total}`;
  $('title').textContent = title;
  $('fragments').textContent = builds;
  announce(`Slide ${s.position} of ${s.total}: ${title}${builds ? `, ${builds}` : ''}${s.paused ? ', blacked out' : ''}`);
  showNotes();
  $('next-title').textContent = s.isLast ? 'End of deck' : s.nextTitle || '—';
  $<HTMLButtonElement>('prev').disabled = !canStep(s, 'prev');
  $<HTMLButtonElement>('next').disabled = !canStep(s, 'next');
  $<HTMLButtonElement>('first').disabled = s.isFirst;
  $<HTMLButtonElement>('last').disabled = s.isLast;
  const black = $<HTMLButtonElement>('blackout');
  black.setAttribute('aria-pressed', String(s.paused));
  black.classList.toggle('on', s.paused);
  document.body.classList.toggle('paused', s.paused);
  if (s.paused) $('pad').dataset.hint = 'Blacked out: ‹ or › brings it back';
  else delete $('pad').dataset.hint;
}

/**
 * Tells a screen reader where the deck is, through a polite live region: the
 * position and title on the screen change silently otherwise. Written only
 * when it changes, so a report that moved nothing (a notes edit, a repeat
 * after a reconnect) is not read out again.
 */
function announce(text: string): void {
  const el = $('announce');
  if (el.textContent !== text) el.textContent = text;
}

// ---------------------------------------------------------------- speaker notes
// The streams carry no notes: anyone who scans the follow QR may open one.
// The phone asks for the notes with its key after each move to another
// slide, and keeps what it was told per slide until the deck is reloaded.
const notesBySlide = new Map<string, string>();
let notesInFlight = false;
/** The slide changed while a request was out: ask once more when it is back. */
let notesAgain = false;
const slideKey = (h: number, v: number) => `${h}.${v}`;

/** Shows the current slide's notes; undefined when they are not known yet (shown blank meanwhile, not the last slide's). */
function renderNotes(): string | undefined {
  if (!state) return '';
  const notes = notesBySlide.get(slideKey(state.indexh, state.indexv));
  $('notes').textContent = notes === undefined ? '' : notes || 'No notes for this slide.';
  $('notes').classList.toggle('empty', !notes);
  return notes;
}

/** Shows the current slide's notes, asking for them if they are not known yet. */
function showNotes(): void {
  if (renderNotes() === undefined) void fetchNotes();
}

/**
 * One request at a time. It answers for the slide the deck is on, which the
 * next state event brings here too: so a move while it is out asks once
 * more, and an answer for a slide this phone has not heard of yet waits for
 * that event rather than asking again and again.
 */
async function fetchNotes(): Promise<void> {
  if (notesInFlight) {
    notesAgain = true;
    return;
  }
  notesInFlight = true;
  notesAgain = false;
  try {
    const got = await requestJson<SpeakerNotes>('GET', `${api}/notes`, { key });
    notesBySlide.set(slideKey(got.indexh, got.indexv), got.notes);
  } catch (err) {
    if (err instanceof HttpStatusError && err.status === 401) unpaired();
    // Otherwise (offline, or no slide reported yet) the next state event asks again.
    return;
  } finally {
    notesInFlight = false;
  }
  if (notesAgain) showNotes();
  else renderNotes();
}

function renderSlideList(): void {
  const list = $('slide-items');
  list.replaceChildren(
    ...slides.map((s) => {
      const li = document.createElement('li');
      const b = document.createElement('button');
      b.type = 'button';
      b.textContent = s.title;
      // Each title reads in its own script's direction (Arabic, Hebrew), as the title above does.
      b.dir = 'auto';
      b.className = 'slide-item';
      if (s.v > 0) b.classList.add('vertical');
      if (state && state.indexh === s.h && state.indexv === s.v) b.setAttribute('aria-current', 'true');
      b.addEventListener('click', () => {
        send({ type: 'goto', h: s.h, v: s.v });
        $<HTMLDialogElement>('slide-list').close();
      });
      li.append(b);
      return li;
    }),
  );
}

// ---------------------------------------------------------------- commands
type Cmd =
  | { type: 'next' | 'prev' | 'first' | 'last' }
  | { type: 'goto'; h: number; v: number }
  | { type: 'pause'; on: boolean };

/** The presenter revoked this phone (a command or a pointer update answered 401). */
function unpaired(): void {
  localStorage.removeItem(keyName);
  localStorage.removeItem(tokenName);
  showMessage('This remote was unpaired', 'The presenter revoked this phone. You can still follow along.', followUrl);
}

// ---------------------------------------------------------------- taps in flight
// A tap on a good network is answered in milliseconds, and the deck moves. When
// the Wi-Fi drops or the server restarts, sendCommand keeps retrying (with the
// same id) for up to 30 s, and the deck does not move meanwhile. Without a word
// on the phone, a presenter taps again, and every one of those taps lands when
// the network is back. So the phone says how many taps are waiting, and says so
// when one was given up.

/** An answer slower than this is a hiccup, not a tap on its way: only then is it shown. */
const SLOW_TAP_MS = 600;
/** How long "not delivered" stays up (a new tap clears it sooner). */
const LOST_NOTICE_MS = 6_000;
/** Taps sent and not yet answered, with when each was sent. */
const waiting = new Set<{ at: number }>();
/** Taps given up since the last notice (no answer within sendCommand's deadline, or refused). */
let lost = 0;
let lostTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * A tap the server took, whose move the slideshow has not reported yet. The
 * slideshow reports after every command it applies (naming the command), so
 * a report that does not come means the slideshow is not there to apply it:
 * its tab was closed, or the laptop sleeps. The phone's own link can be fine
 * meanwhile, so 'Live' alone would say nothing of it.
 */
const unreported = new Map<string, ReturnType<typeof setTimeout>>();
/** How long a slideshow may take to report a move before the phone says so. */
const REPORT_WAIT_MS = 3_000;
/**
 * A report this late has more likely been lost on the phone's own stream
 * (a Wi-Fi change that left it open and deaf) than not made: the stream is
 * renewed, and the renewed one's snapshot shows the deck as it is now.
 */
const RENEW_AFTER_MS = 1_200;
let deckSilent = false;
/** The phone's stream, renewed when a report is overdue. */
let stream: LiveStream | undefined;
/** When the stream was last renewed for an overdue report: once per wait is enough. */
let renewedAt = -Infinity;
/**
 * The server says no slideshow stream is open (EVENT.slideshow): its tab
 * was closed, or the laptop is asleep or off the network. Said a few seconds
 * after it went, and at once when it is back, so the phone knows before a
 * tap goes unanswered, and knows when it is safe to tap again.
 */
let deckAway = false;

function slideshowLink(connected: boolean): void {
  if (deckAway === !connected) return;
  deckAway = !connected;
  // Back: whatever went unreported while it was away is not its silence now.
  if (connected) deckSilent = false;
  renderTaps();
}
/** Commands the slideshow has reported already: its report can come before the answer to a retried POST. */
const reportedCauses = new Set<string>();

function expectReport(id: string): void {
  if (reportedCauses.has(id)) return;
  const renew = setTimeout(() => {
    if (!unreported.has(id) || performance.now() - renewedAt < REPORT_WAIT_MS) return;
    renewedAt = performance.now();
    stream?.renew();
  }, RENEW_AFTER_MS);
  unreported.set(
    id,
    setTimeout(() => {
      clearTimeout(renew);
      unreported.delete(id);
      deckSilent = true;
      renderTaps();
    }, REPORT_WAIT_MS),
  );
}

/**
 * A fresh snapshot shows the deck somewhere new while taps wait for their
 * reports: the slideshow did move, and its reports were lost with the old
 * stream. Those taps count as reported. The same place proves nothing (the
 * slideshow may be asleep), so then the wait goes on.
 */
function movedSince(before: PublicDeckState | null, now: PublicDeckState | null, connected: boolean): void {
  if (!connected || unreported.size === 0 || !now || JSON.stringify(before) === JSON.stringify(now)) return;
  for (const timer of unreported.values()) clearTimeout(timer);
  unreported.clear();
  reported(undefined);
}

/** The slideshow reported: it is there, whatever it was that it reported. */
function reported(cause: string | undefined): void {
  if (cause !== undefined) {
    clearTimeout(unreported.get(cause));
    unreported.delete(cause);
    reportedCauses.add(cause);
    if (reportedCauses.size > 64) reportedCauses.delete(reportedCauses.values().next().value!);
  }
  if (!deckSilent) return;
  deckSilent = false;
  renderTaps();
}

function renderTaps(): void {
  const now = performance.now();
  let slow = false;
  // A millisecond of slack: the timer that calls this fires at SLOW_TAP_MS, and clocks are coarse.
  for (const t of waiting) if (now - t.at >= SLOW_TAP_MS - 1) slow = true;
  const plural = (n: number) => (n === 1 ? '1 tap' : `${n} taps`);
  // Every waiting tap is counted once one is slow: they all land together when the link is back.
  const text = slow
    ? `${plural(waiting.size)} waiting to send…`
    : lost
      ? `${plural(lost)} not delivered`
      : deckAway
        ? 'The slideshow is not connected: is it open on the laptop?'
        : deckSilent
          ? 'The slideshow is not answering: is it open on the laptop?'
          : '';
  const el = $('taps');
  // Written only when it changes: an answered tap on a good network touches nothing.
  if (el.textContent === text && el.hidden === !text) return;
  el.textContent = text;
  el.hidden = !text;
  el.dataset.kind = slow ? 'waiting' : lost ? 'lost' : deckAway ? 'away' : 'silent';
}

/**
 * Taps leave one after another, in the order they were made: a tap waits for
 * the one before it to be answered (or given up). On a good network that
 * answer takes milliseconds; through a Wi-Fi drop each tap would otherwise
 * retry on its own schedule, and a later tap could land first (Prev before
 * the Last it was meant to follow).
 */
let outbox: Promise<unknown> = Promise.resolve();

function send(cmd: Cmd): void {
  const body = { ...cmd, id: commandId() };
  // A tap's 30 s start when it is made, not when its turn comes.
  const deadline = Date.now() + COMMAND_DEADLINE_MS;
  const go = () => sendCommand(`${api}/commands`, key, body, deadline);
  // With no tap still waiting for its answer, the request leaves within this
  // call; the buzz (a call into the browser) and the bookkeeping can wait the microseconds.
  const sent = (waiting.size === 0 ? go() : outbox.then(go)).then(() => expectReport(body.id));
  outbox = sent.catch(() => undefined);
  navigator.vibrate?.(12);
  const tap = { at: performance.now() };
  waiting.add(tap);
  // A new tap: the notice about an earlier one has served its purpose.
  lost = 0;
  // Already telling of waiting taps: count this one in at once.
  if (!$('taps').hidden) renderTaps();
  const slowTimer = setTimeout(renderTaps, SLOW_TAP_MS);
  sent
    .catch((err: unknown) => {
      if (err instanceof HttpStatusError && err.status === 401) return unpaired();
      lost++;
      clearTimeout(lostTimer);
      lostTimer = setTimeout(() => {
        lost = 0;
        renderTaps();
      }, LOST_NOTICE_MS);
    })
    .finally(() => {
      waiting.delete(tap);
      clearTimeout(slowTimer);
      renderTaps();
    });
}

/** How long after a pressed button's pointer lifts its click still belongs to that press. */
const PRESS_CLICK_MS = 1_000;

/**
 * Fires on pointerdown for touch and mouse (no wait for the finger to lift),
 * and on click only for keyboard and assistive activation, which produce no
 * pointerdown. A pointer's click that ends a press comes when the finger lifts, which
 * may be seconds later for a thumb resting on the button: it is the same
 * press while the pointer is down, and for a moment after it lifts.
 */
function onPress(el: HTMLElement, fn: () => void): void {
  /** The pointer pressing the button, until it lifts. */
  let down: number | null = null;
  let liftedAt = -Infinity;
  el.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 || (el as HTMLButtonElement).disabled) return;
    down = e.pointerId;
    fn();
  });
  // On the window: the finger may lift, or the browser take the gesture over, anywhere.
  // Only that finger: another one scrolling the notes meanwhile lifts nothing here.
  const lift = (e: PointerEvent) => {
    if (e.pointerId !== down) return;
    down = null;
    liftedAt = performance.now();
  };
  window.addEventListener('pointerup', lift, true);
  window.addEventListener('pointercancel', lift, true);
  el.addEventListener('click', (e) => {
    // detail 0: the keyboard's Enter or Space, never a pointer's click.
    if (e.detail !== 0 && (down !== null || performance.now() - liftedAt < PRESS_CLICK_MS)) return;
    fn();
  });
}

function wireControls(): void {
  onPress($('next'), () => send({ type: 'next' }));
  onPress($('prev'), () => send({ type: 'prev' }));
  onPress($('first'), () => send({ type: 'first' }));
  onPress($('last'), () => send({ type: 'last' }));
  onPress($('blackout'), () => send({ type: 'pause', on: !(state?.paused ?? false) }));
  $('jump').addEventListener('click', () => {
    renderSlideList();
    $<HTMLDialogElement>('slide-list').showModal();
    $('slide-items').querySelector<HTMLElement>('[aria-current]')?.scrollIntoView({ block: 'center' });
  });
  $('slide-list-close').addEventListener('click', () => $<HTMLDialogElement>('slide-list').close());

  // Swipe anywhere on the remote: left for next, right for previous, as on the slideshow.
  let start: { x: number; y: number } | null = null;
  const area = $('remote');
  area.addEventListener('touchstart', (e) => {
    const t = e.touches[0];
    // A touch that begins on a button has already done that button's job (buttons fire on
    // pointerdown): a swipe from there must not move the deck a second time.
    // A disabled one did nothing (Previous on the first slide): from there a swipe is a swipe.
    const onButton = e.target instanceof Element && e.target.closest('button:not(:disabled)') !== null;
    start = e.touches.length === 1 && t && !onButton ? { x: t.clientX, y: t.clientY } : null;
  }, { passive: true });
  area.addEventListener('touchend', (e) => {
    const t = e.changedTouches[0];
    if (!start || !t) return;
    const dx = t.clientX - start.x;
    const dy = t.clientY - start.y;
    start = null;
    if (Math.abs(dx) < 50 || Math.abs(dx) < Math.abs(dy) * 1.5) return;
    if (dx < 0 && canStep(state, 'next')) send({ type: 'next' });
    if (dx > 0 && canStep(state, 'prev')) send({ type: 'prev' });
  });

  // Notes size, remembered on this phone.
  // Held to the buttons' range: a stored 9999 (a hand edit) must not fill the screen with one letter.
  let size = Math.min(40, Math.max(12, Math.round(Number(localStorage.getItem('clicker.notesSize')) || 18)));
  const applySize = () => {
    $('notes').style.fontSize = `${size}px`;
    localStorage.setItem('clicker.notesSize', String(size));
  };
  applySize();
  $('font-up').addEventListener('click', () => {
    size = Math.min(40, size + 2);
    applySize();
  });
  $('font-down').addEventListener('click', () => {
    size = Math.max(12, size - 2);
    applySize();
  });
}

// ---------------------------------------------------------------- time
/**
 * The saved timer, or a fresh one. Whatever is in the store is checked, not
 * trusted: one bad value there (an older format, a hand edit) must never
 * keep the remote from starting.
 */
function readTimer(): { since: number | null; acc: number } {
  const ms = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  try {
    const v = JSON.parse(localStorage.getItem(`clicker.timer.${channelId}`) ?? 'null') as { since?: unknown; acc?: unknown } | null;
    // A start in the future (the clock was set back since) would count down: it starts now instead.
    const since = ms(v?.since) ? Math.min(v.since, Date.now()) : null;
    return { since, acc: ms(v?.acc) ? v.acc : 0 };
  } catch {
    return { since: null, acc: 0 };
  }
}

function wireTime(): void {
  // The timer survives a reload: it is a start time plus what ran before a pause.
  const saved = readTimer();
  let since: number | null = saved.since;
  let acc = saved.acc;
  const persist = () => localStorage.setItem(`clicker.timer.${channelId}`, JSON.stringify({ since, acc }));
  const fmt = (ms: number) => {
    const t = Math.floor(ms / 1000);
    const h = Math.floor(t / 3600);
    const m = Math.floor((t % 3600) / 60);
    const s = String(t % 60).padStart(2, '0');
    return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
  };
  const tick = () => {
    const now = Date.now();
    const elapsed = acc + (since ? now - since : 0);
    $('elapsed').textContent = fmt(elapsed);
    // Past an hour the count is wider: on the smallest phones it sets itself smaller, so its row never wraps (controller.css).
    $('elapsed').classList.toggle('hours', elapsed >= 3_600_000);
    $('timer-toggle').textContent = since ? 'Pause' : acc ? 'Resume' : 'Start';
    $('elapsed').classList.toggle('running', since !== null);
    $('clock').textContent = new Date(now).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  };
  // Each tick lands just after the next whole second of the running timer
  // (or of the clock, when it is stopped): a fixed 1 s interval would show
  // the count up to a second late.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const schedule = () => {
    clearTimeout(timer);
    const now = Date.now();
    const into = since ? (acc + now - since) % 1_000 : now % 1_000;
    timer = setTimeout(() => {
      tick();
      schedule();
    }, 1_000 - into + 5);
  };
  const changed = () => {
    persist();
    tick();
    schedule();
  };
  $('timer-toggle').addEventListener('click', () => {
    if (since) {
      acc += Date.now() - since;
      since = null;
    } else since = Date.now();
    changed();
  });
  $('timer-reset').addEventListener('click', () => {
    since = null;
    acc = 0;
    changed();
  });
  tick();
  schedule();
}

/**
 * Keeps the screen on for the whole talk. The Wake Lock API exists only in
 * secure contexts, and a phone on the laptop's LAN address is on plain http,
 * so NoSleep falls back to a tiny muted looping video there. Both need a user
 * gesture, hence the first touch arms it; a tab brought back re-arms it.
 */
function keepAwake(): void {
  const noSleep = new NoSleep();
  let triedAt = -Infinity;
  const arm = () => {
    // A refused wake lock (battery saver, a browser policy) is asked again now and then, not on every tap.
    if (noSleep.isEnabled || performance.now() - triedAt < 10_000) return;
    triedAt = performance.now();
    noSleep.enable().catch(() => undefined);
  };
  // Bubbling, so a tap's own command is on its way before this runs; the gesture still counts.
  document.addEventListener('pointerdown', arm);
  document.addEventListener('click', arm);
  document.addEventListener('visibilitychange', () => {
    if (document.visibilityState === 'hidden') noSleep.disable();
    // Back in front: the next tap asks at once.
    triedAt = -Infinity;
  });
}

// ---------------------------------------------------------------- start
/**
 * A pairing under way (phone approval): the code and the key, kept while it
 * waits, across a reload and across a second scan of the QR (a new tab): the
 * phone keeps one name on the slideshow's card.
 */
interface Waiting {
  code: string;
  key?: string;
}
const waitingName = `${keyName}.waiting`;

function readWaiting(): Waiting | null {
  try {
    const w = JSON.parse(localStorage.getItem(waitingName) ?? 'null') as { code?: unknown; key?: unknown } | null;
    if (!w || typeof w.code !== 'string') return null;
    // A key the server would refuse as malformed (400) would be sent at every knock: asked without it, the server hands out a new one.
    return typeof w.key === 'string' && CONTROLLER_KEY_RE.test(w.key) ? { code: w.code, key: w.key } : { code: w.code };
  } catch {
    return null;
  }
}

/** How often a phone waiting for the laptop asks again: the allowed phone goes live within this. */
const KNOCK_EVERY_MS = 1_000;
/**
 * A knock's longest wait for its answer, and the pause after a failed one:
 * together well under the 8 s after which the slideshow's card drops a phone
 * that has stopped knocking (KNOCK_FRESH_MS), so a slow network does not take
 * the phone off the card, or give it a new number.
 */
const KNOCK_TIMEOUT_MS = 2_500;
const KNOCK_RETRY_MS = 1_500;

/**
 * Pairs with a code from the QR. With phone approval the server answers 202
 * and a name: the phone shows the name and asks again every second, with the
 * key it was given, until the presenter allows it on the laptop (201). A code
 * the server refused is final; one that never reached it is not spent, and it
 * is no longer in the address bar, so a phone with no key yet is offered to
 * try the same code again.
 */
async function pair(code: string, canWait: boolean): Promise<boolean> {
  const kept = readWaiting();
  let waiting: Waiting = kept?.code === code ? kept : { code };
  for (;;) {
    try {
      const res = await requestJson<PairResult | PairPending>('POST', `${api}/pair`, { body: waiting, ...(waiting.key ? { timeoutMs: KNOCK_TIMEOUT_MS } : {}) });
      if ('pending' in res) {
        waiting = { code, key: res.controllerKey };
        localStorage.setItem(waitingName, JSON.stringify(waiting));
        showWaiting(res.label);
        await sleep(KNOCK_EVERY_MS);
        continue;
      }
      localStorage.removeItem(waitingName);
      key = res.controllerKey;
      localStorage.setItem(keyName, key);
      localStorage.setItem(tokenName, res.streamToken);
      return true;
    } catch (err) {
      const refused = err instanceof HttpStatusError && err.status === 410 && err.body.refused === true;
      // Final answers: a spent or replaced code, a channel gone, a key this slideshow did not issue.
      // A refused phone keeps its key: scanned again, the same code gets the same answer, not a new name on the card.
      if (err instanceof HttpStatusError && [403, 404, 410].includes(err.status) && !refused) localStorage.removeItem(waitingName);
      if (refused) {
        showMessage(
          'This phone was not allowed',
          'The presenter did not allow this phone to be the remote. If it is the presenter’s own, put up a new pairing code on the laptop (Q on the slideshow, or New code) and scan that. You can follow along meanwhile.',
          typeof err.body.followUrl === 'string' ? err.body.followUrl : followUrl,
        );
        return false;
      }
      if (err instanceof HttpStatusError && err.status === 403 && waiting.key) {
        showMessage('Scan the QR code again', 'This phone’s request belongs to an earlier slideshow. Scan the QR code on the slides again.', followUrl);
        return false;
      }
      if (err instanceof HttpStatusError && err.status === 410) {
        showMessage(
          waiting.key ? 'This phone was not allowed' : 'This code was already used',
          waiting.key
            ? 'The presenter allowed another phone, or put up a new QR code. To ask again, scan the QR code on the slides. You can follow along meanwhile.'
            : 'Someone already paired a remote with this QR code, so this phone cannot control the slides. You can follow along instead.',
          typeof err.body.followUrl === 'string' ? err.body.followUrl : followUrl,
        );
        return false;
      }
      if (err instanceof HttpStatusError && err.status === 409) {
        // The slideshow has all the remotes it takes (the server says how many).
        showMessage('Too many remotes', `${err.message[0]?.toUpperCase() ?? ''}${err.message.slice(1)}.`, followUrl);
        return false;
      }
      if (err instanceof HttpStatusError && err.status === 400) {
        // Not a code the server could ever take (a link cut short, or typed by hand): no retry will change that.
        localStorage.removeItem(waitingName);
        showMessage('Scan the QR code again', 'This link does not hold a whole pairing code. Scan the QR code on the slides again.', followUrl);
        return false;
      }
      if (err instanceof HttpStatusError && err.status === 404) {
        showMessage('No such presentation', 'This presentation is not running any more. Scan the QR code on the slides again.');
        return false;
      }
      if (err instanceof HttpStatusError && err.status === 429 && !waiting.key) {
        showMessage('Too many phones', 'Too many phones on this network asked to pair just now. Wait a minute, then try again.');
        await retryPressed();
        showMessage('Pairing…', '');
        continue;
      }
      if (waiting.key) {
        // Waiting already, and the Wi-Fi hiccuped (or the address's knocks ran over): keep the name on screen and keep asking.
        $('message-text').textContent = 'Reconnecting to the slideshow…';
        await sleep(KNOCK_RETRY_MS);
        continue;
      }
      if (!canWait) return false;
      showMessage('Could not pair', 'The slideshow could not be reached. Check that this phone is on the same Wi-Fi as the laptop, then try again.');
      await retryPressed();
      showMessage('Pairing…', '');
    }
  }
}

/** The phone's name, big, and what the presenter does on the laptop. */
function showWaiting(label: string): void {
  showMessage('Allow this phone on the laptop', '');
  $('message-label').textContent = label;
  $('message-label').hidden = false;
  $('message-text').textContent = `The slideshow asks whether to let “${label}” be the remote. If it shows this same name, press Enter there, or click Allow.`;
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Shows the message's "Try again" button until it is pressed. */
function retryPressed(): Promise<void> {
  const button = $<HTMLButtonElement>('message-retry');
  button.hidden = false;
  return new Promise((resolve) => {
    button.addEventListener(
      'click',
      () => {
        button.hidden = true;
        resolve();
      },
      { once: true },
    );
  });
}

async function start(): Promise<void> {
  if (!ID_RE.test(channelId)) {
    showMessage('Not a Clicker link', 'Scan the QR code on the title slide.');
    return;
  }
  // A phone still waiting for the laptop when its page reloaded carries on with the same code and name.
  const code = location.hash.slice(1) || readWaiting()?.code || '';
  // The code is spent once used; drop it from the address bar (and from any later share of this URL).
  if (code) history.replaceState(null, '', location.pathname);
  // A new QR opened in this same tab (some scanner apps reuse one) differs
  // only after the #, so the browser does not load it: start over with it.
  addEventListener('hashchange', () => {
    if (location.hash.length > 1) location.reload();
  });
  key = localStorage.getItem(keyName) ?? '';
  if (code) {
    // A fresh code replaces whatever key this phone had (it may have been revoked);
    // a spent one is fine if this phone already holds a key.
    if (!(await pair(code, !key)) && !key) return;
  } else if (!key) {
    showMessage('Not paired', 'Scan the pairing QR code on the title slide to use this phone as the remote.', followUrl);
    return;
  }

  showRemote();
  wireControls();
  pad = new PointerPad({ api, key: () => key, nav: (type) => send({ type }), unpaired });
  wireTime();
  keepAwake();
  const questions = new QuestionsPanel({ api, key: () => key, unpaired });
  stream = new LiveStream(`${api}/events`, [EVENT.snapshot, EVENT.state, EVENT.slideshow, ...QUESTION_EVENTS], {
    onEvent(name, data) {
      questions.onEvent(name, data);
      if (name === EVENT.snapshot) {
        const snap = data as Snapshot;
        // A fresh snapshot (a reconnect, a restart): the deck may have been edited meanwhile.
        notesBySlide.clear();
        movedSince(state, snap.state, snap.slideshow !== false);
        state = snap.state;
        if (snap.slides) slides = snap.slides;
        // Only a `false` means away: a snapshot without the field (an older server) says nothing of it.
        slideshowLink(snap.slideshow !== false);
      } else if (name === EVENT.slideshow) {
        return slideshowLink((data as SlideshowLink).connected);
      } else if (name === EVENT.state) {
        const ev = data as StateEvent;
        reported(ev.cause);
        state = ev.state;
        // An outline comes with a slideshow (re)load: the deck file may have changed, notes included.
        if (ev.slides) {
          slides = ev.slides;
          notesBySlide.clear();
        }
      } else {
        // Questions and spotlight are the panel's own: the remote's view is unchanged.
        return;
      }
      render();
    },
    onState: setLink,
    token: () => localStorage.getItem(tokenName) ?? undefined,
  });
  stream.start();
}

void start();
