// The presenter's status overlay: paired or not, connection state, and the
// two pairing actions. It sits in a corner outside the slide area and fades
// out when the mouse is idle, so it never shows up on the projected slides.
// It also marks the page while the laptop's mouse is in use (`clicker-mouse`
// on <body>), for controls that only the presenter at the laptop needs.
import type { Presence } from '../protocol/messages';
import type { LinkState } from '../protocol/live';

const LINK_TEXT: Record<LinkState, string> = {
  connecting: 'connecting…',
  live: 'live',
  reconnecting: 'reconnecting…',
  // A follower's: the slideshow itself registers its channel again as it reconnects (setLink).
  // Not "offline", which is the follower's own network.
  waiting: 'presenter offline',
  offline: 'offline',
};
const IDLE_MS = 4_000;

/**
 * Q, as in "QR": the key for a fresh pairing code, bound through reveal.js
 * (the plugin calls addKeyBinding), so it is listed in reveal.js's help (?)
 * and follows its keyboard settings. Not P: reveal.js moves back on P, and a
 * presenter pressing it for that put a new pairing QR up for the whole room.
 */
export const NEW_CODE_KEY = { keyCode: 81, key: 'Q', description: 'New pairing code (Clicker)' } as const;

export class PresenterStatus {
  private readonly root: HTMLElement;
  private readonly pairText: HTMLElement;
  private readonly linkText: HTMLElement;
  private readonly actions: HTMLElement;
  /** What became of the last action that failed, until the next one. */
  private readonly note: HTMLElement;
  private newCode: (() => Promise<void>) | null = null;
  private revoke: (() => Promise<void>) | null = null;
  private hideTimer: ReturnType<typeof setTimeout> | undefined;
  /** The follower's own link, as last set. */
  private link: LinkState = 'connecting';
  /** A follower's: the server says the presenter's slideshow is not connected (EVENT.slideshow). */
  private presenterAway = false;
  private mouseTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(mode: 'present' | 'follow') {
    this.root = document.createElement('aside');
    this.root.className = 'clicker-status';
    this.root.setAttribute('role', 'status');
    this.root.dataset.mode = mode;
    this.pairText = document.createElement('span');
    this.pairText.className = 'clicker-status-pair';
    this.linkText = document.createElement('span');
    this.linkText.className = 'clicker-status-link';
    this.actions = document.createElement('span');
    this.actions.className = 'clicker-status-actions';
    this.note = document.createElement('span');
    this.note.className = 'clicker-status-note';
    this.note.setAttribute('role', 'alert');
    this.note.hidden = true;
    this.root.append(this.pairText, this.linkText, this.note, this.actions);
    if (mode === 'present') {
      this.actions.append(
        this.button(`New pairing code (${NEW_CODE_KEY.key})`, () => this.requestNewCode()),
        this.button('Revoke remotes', () => this.act('Remotes not revoked', this.revoke)),
      );
    } else {
      this.pairText.textContent = 'Following the presenter';
    }
    document.body.append(this.root);
    const wake = () => {
      this.show();
      this.markMouse();
    };
    document.addEventListener('mousemove', wake, { passive: true });
    this.setLink('connecting');
  }

  setLink(link: LinkState): void {
    this.link = link;
    // The slideshow's own channel is missing only until its reconnect registers it again.
    let state = link === 'waiting' && this.root.dataset.mode === 'present' ? 'reconnecting' : link;
    // A follower's link can be live while the presenter's slideshow is gone:
    // the slide on screen is then where the talk stopped, not where it is.
    if (state === 'live' && this.presenterAway) state = 'waiting';
    this.root.dataset.link = state;
    this.linkText.textContent = LINK_TEXT[state];
    // Trouble stays visible; a healthy link fades away.
    this.show(state !== 'live');
  }

  /** A follower's: whether the presenter's slideshow is connected to the server. */
  setSlideshow(connected: boolean): void {
    if (this.presenterAway === !connected) return;
    this.presenterAway = !connected;
    this.setLink(this.link);
  }

  setPresence(p: Presence): void {
    this.root.dataset.paired = String(p.controllers > 0);
    this.pairText.textContent =
      p.controllers === 0 ? 'No remote paired' : p.controllers === 1 ? 'Remote paired' : `${p.controllers} remotes paired`;
    this.show();
  }

  /** A fresh one-time pairing code, to add or replace a phone: the button, or the key (NEW_CODE_KEY). */
  requestNewCode(): Promise<void> {
    return this.act('No new pairing code', this.newCode);
  }

  onNewCode(fn: () => Promise<void>): void {
    this.newCode = fn;
  }

  onRevoke(fn: () => Promise<void>): void {
    this.revoke = fn;
  }

  /**
   * Runs a pairing action. When the server cannot be reached the presenter is
   * told so, and it stays said until the next action: a presenter who
   * believes an intruder's phone was revoked when it was not is worse off
   * than one who knows to try again.
   */
  private async act(failed: string, fn: (() => Promise<void>) | null): Promise<void> {
    this.note.hidden = true;
    try {
      await fn?.();
    } catch {
      this.note.textContent = `${failed}: the server did not answer. Try again.`;
      this.note.hidden = false;
      this.show(true);
    }
  }

  private button(label: string, fn: () => unknown): HTMLButtonElement {
    const b = document.createElement('button');
    b.type = 'button';
    b.textContent = label;
    b.addEventListener('click', (e) => {
      e.stopPropagation();
      void fn();
    });
    return b;
  }

  /** The mouse moved: mark the page until it has been still for IDLE_MS (the class is written once, not on every move). */
  private markMouse(): void {
    const body = document.body.classList;
    if (!body.contains('clicker-mouse')) body.add('clicker-mouse');
    clearTimeout(this.mouseTimer);
    this.mouseTimer = setTimeout(() => body.remove('clicker-mouse'), IDLE_MS);
  }

  private show(sticky = false): void {
    this.root.classList.add('visible');
    clearTimeout(this.hideTimer);
    if (!sticky) this.hideTimer = setTimeout(() => this.root.classList.remove('visible'), IDLE_MS);
  }
}
