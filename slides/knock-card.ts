// "A phone asks to be the remote": the card the slideshow shows while phones
// that scanned the pairing QR wait (phone approval). The presenter allows the
// one whose screen shows the same name: Enter when one waits, its number key
// when several do, or a click; Esc refuses those shown. Two phones with the
// same name cannot be allowed at all: a new code (Q) starts over.
import { cardHint, KnockQueue, rowDevice, rowName, type ShownKnock } from '../protocol/knocks';
import { HttpStatusError } from '../protocol/live';
import type { Knock } from '../protocol/wire';

export class KnockCard {
  readonly queue: KnockQueue;
  private readonly box = document.createElement('div');
  private readonly items = document.createElement('ol');
  private readonly hint = document.createElement('p');
  private readonly problem = document.createElement('p');
  private busy = false;

  /** `refuse` tells the server (a failure is retried by the queue, at the phone's next knock). */
  constructor(
    private readonly allow: (knock: Knock) => Promise<void>,
    refuse: (knock: Knock) => Promise<void>,
  ) {
    this.queue = new KnockQueue(
      () => this.render(),
      Date.now,
      (k) => void refuse(k).catch(() => undefined),
    );
    this.box.className = 'clicker-knock';
    this.box.setAttribute('data-clicker-knock', '');
    this.box.setAttribute('role', 'alertdialog');
    this.box.setAttribute('aria-label', 'A phone asks to be the remote');
    this.box.hidden = true;
    const title = document.createElement('p');
    title.className = 'clicker-knock-title';
    title.textContent = 'A phone asks to be the remote';
    this.hint.className = 'clicker-knock-hint';
    this.problem.className = 'clicker-knock-problem';
    this.problem.hidden = true;
    this.box.append(title, this.items, this.hint, this.problem);
    document.body.append(this.box);
    // Capturing, ahead of reveal.js: while the card shows, Enter, Esc and the
    // number keys are the card's (Esc would otherwise open the overview).
    addEventListener('keydown', (e) => this.onKey(e), true);
  }

  private get shown(): boolean {
    return !this.box.hidden;
  }

  private render(): void {
    const list = this.queue.list();
    const more = this.queue.hidden();
    this.box.hidden = list.length === 0;
    if (list.length === 0) this.problem.hidden = true;
    this.items.replaceChildren(...list.map((k) => this.item(k, list.length > 1)));
    this.hint.textContent = cardHint(list, more, 'Press Q for a new code, and scan again.');
  }

  private item(k: ShownKnock, numbered: boolean): HTMLLIElement {
    const li = document.createElement('li');
    li.dataset.hash = k.hash;
    if (k.clash) li.dataset.clash = '';
    const label = document.createElement('strong');
    label.className = 'clicker-knock-label';
    label.textContent = rowName(k, numbered);
    const device = document.createElement('span');
    device.className = 'clicker-knock-device';
    device.textContent = rowDevice(k);
    const allow = document.createElement('button');
    allow.type = 'button';
    allow.textContent = 'Allow';
    allow.disabled = k.clash;
    allow.setAttribute('data-clicker-allow', '');
    // A row that has only just arrived (and perhaps pushed the others down) takes no click yet.
    allow.addEventListener('click', () => {
      if (this.queue.settled(k.hash)) void this.choose(k);
    });
    const refuse = document.createElement('button');
    refuse.type = 'button';
    refuse.textContent = 'Refuse';
    refuse.setAttribute('data-clicker-refuse', '');
    refuse.addEventListener('click', () => this.queue.refuse(k.hash));
    li.append(label, device, allow, refuse);
    return li;
  }

  private onKey(e: KeyboardEvent): void {
    if (!this.shown || e.altKey || e.ctrlKey || e.metaKey) return;
    // A focused Allow or Refuse answers Enter and Space itself, as a button does.
    if ((e.key === 'Enter' || e.key === ' ') && e.target instanceof HTMLButtonElement && this.box.contains(e.target)) return;
    const action = this.queue.keyAction(e.key, e.code);
    if (action === undefined) return;
    // Enter, Esc and the digits are the card's while it shows, even when they choose nothing.
    e.preventDefault();
    e.stopImmediatePropagation();
    if (action === 'refuse') this.queue.refuseShown();
    else if (action !== 'ignore') void this.choose(action.allow);
  }

  private async choose(k: Knock): Promise<void> {
    if (this.busy) return;
    this.busy = true;
    try {
      await this.allow(k);
      this.queue.clear();
    } catch (err) {
      // The code was spent or replaced meanwhile, the slideshow has all the remotes it takes, or the server is away: say so, and keep the list.
      this.problem.textContent =
        err instanceof HttpStatusError && err.status === 409 && /remotes paired/.test(err.message)
          ? `Could not allow it: ${err.message}.`
          : 'Could not allow it. Press Q for a new code and scan again.';
      this.problem.hidden = false;
    } finally {
      this.busy = false;
    }
  }
}
