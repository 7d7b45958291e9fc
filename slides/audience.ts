// The follower's side of audience questions and reactions: a small bar on the
// follow page with three reaction buttons and "Ask", which opens a form.
//
// Follow mode stays read-only for the deck: this module only ever POSTs to
// the two public audience endpoints, and only when the follower taps. Those
// are rate-limited per address on the server; the answers (questions off, too
// many, too long) are told to the follower in plain words.
import { EVENT, QUESTION_MAX, REACTIONS, type QuestionsSummary, type ReactionKind, type Snapshot } from '../protocol/messages';
import { glyph } from './spotlight';
import './audience.css';

/** Events the bar wants from the stream, besides the snapshot. */
export const AUDIENCE_EVENTS = [EVENT.questions] as const;

const REACTION_LABEL: Record<ReactionKind, string> = { thumbs: 'Thumbs up', clap: 'Applause', question: 'Question mark' };
/** Control characters other than tab and newline are refused by the server; a paste may carry some. */
const CONTROL = /[\u0000-\u0008\u000B-\u001F\u007F]/g;
/** Count turns amber this close to the limit, so nobody is surprised by it. */
const COUNT_WARN_AT = QUESTION_MAX - 20;
const NOTE_MS = 3_500;

interface Answer {
  status: number;
  /** Seconds from Retry-After, when the server sent one. */
  retryAfter: number | null;
}

/** A JSON POST that never throws: 0 stands for "no answer" (offline, timeout). */
async function post(url: string, body: unknown): Promise<Answer> {
  try {
    const res = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      cache: 'no-store',
      signal: AbortSignal.timeout(8_000),
    });
    const after = Number(res.headers.get('Retry-After'));
    return { status: res.status, retryAfter: Number.isFinite(after) && after > 0 ? after : null };
  } catch {
    return { status: 0, retryAfter: null };
  }
}

const wait = (s: number | null) => (s === null ? 'a moment' : s >= 90 ? `${Math.ceil(s / 60)} minutes` : `${Math.ceil(s)} seconds`);

/** What the follower reads after a refused question: what happened and what to do. */
function askError(a: Answer, length: number): string {
  switch (a.status) {
    case 403:
      return 'Questions are off right now: the presenter is not taking questions.';
    case 429:
      return `Too many questions from this device. Try again in ${wait(a.retryAfter)}.`;
    case 400:
      return length > QUESTION_MAX
        ? `Too long: a question can have at most ${QUESTION_MAX} characters.`
        : 'That question could not be sent. Check the text and try again.';
    case 404:
      return 'This presentation has ended.';
    case 0:
      return 'Could not reach the presenter. Check your connection and try again.';
    default:
      return 'Something went wrong on the way to the presenter. Try again in a moment.';
  }
}

function el<K extends keyof HTMLElementTagNameMap>(tag: K, className: string, text?: string): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  e.className = className;
  if (text !== undefined) e.textContent = text;
  return e;
}

export class AudienceBar {
  private readonly root = el('aside', 'clicker-audience');
  private readonly form = el('form', 'clicker-ask');
  private readonly input = el('textarea', 'clicker-ask-text');
  private readonly count = el('span', 'clicker-ask-count');
  private readonly send = el('button', 'clicker-ask-send', 'Send');
  private readonly message = el('p', 'clicker-ask-message');
  private readonly note = el('p', 'clicker-audience-note');
  private readonly askButton = el('button', 'clicker-ask-open');
  private readonly reactions: HTMLButtonElement[] = [];
  private open = true;
  private sending = false;
  private noteTimer: ReturnType<typeof setTimeout> | undefined;
  private closeTimer: ReturnType<typeof setTimeout> | undefined;
  private reactPausedUntil = 0;

  constructor(private readonly api: string) {
    this.root.setAttribute('aria-label', 'Audience');
    this.root.dataset.questions = 'open';
    this.buildForm();
    const bar = el('div', 'clicker-audience-bar');
    for (const kind of REACTIONS) {
      const b = el('button', 'clicker-react');
      b.append(glyph(kind));
      b.type = 'button';
      b.dataset.kind = kind;
      b.setAttribute('aria-label', REACTION_LABEL[kind]);
      b.title = REACTION_LABEL[kind];
      b.addEventListener('click', () => void this.react(kind, b));
      b.addEventListener('animationend', () => b.classList.remove('pop'));
      this.reactions.push(b);
      bar.append(b);
    }
    this.askButton.type = 'button';
    // The visible word starts the accessible name, so voice control ("tap Ask") finds it.
    this.askButton.setAttribute('aria-label', 'Ask a question');
    this.askButton.setAttribute('aria-expanded', 'false');
    this.askButton.append(glyph('ask', 'clicker-glyph clicker-ask-icon'), el('span', 'clicker-ask-word', 'Ask'));
    this.askButton.addEventListener('click', () => this.toggleForm());
    bar.append(this.askButton);
    this.note.setAttribute('role', 'status');
    this.note.hidden = true;
    this.root.append(this.form, this.note, bar);
    document.body.append(this.root);
    document.body.classList.add('clicker-audience-on');
  }

  /** Takes any stream event; follows whether the presenter takes questions. */
  onEvent(name: string, data: unknown): void {
    if (name === EVENT.snapshot) this.setOpen((data as Partial<Snapshot>).questions);
    else if (name === EVENT.questions) this.setOpen(data as Partial<QuestionsSummary> | null);
  }

  private buildForm(): void {
    const id = 'clicker-ask-text';
    this.form.id = 'clicker-ask';
    this.form.hidden = true;
    this.form.noValidate = true;
    this.form.setAttribute('aria-label', 'Ask a question');
    const head = el('div', 'clicker-ask-head');
    const label = el('label', 'clicker-ask-label', 'Ask the presenter');
    label.htmlFor = id;
    const close = el('button', 'clicker-ask-close', '×');
    close.type = 'button';
    close.setAttribute('aria-label', 'Close');
    close.addEventListener('click', () => this.toggleForm(false));
    head.append(label, close);
    this.input.id = id;
    this.input.maxLength = QUESTION_MAX;
    this.input.rows = 3;
    this.input.placeholder = 'Type your question…';
    this.input.setAttribute('aria-describedby', 'clicker-ask-count');
    this.input.addEventListener('input', () => this.updateCount());
    // Enter adds a line; Ctrl/Cmd+Enter sends, as in most chat boxes.
    this.input.addEventListener('keydown', (e) => {
      if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
        e.preventDefault();
        this.form.requestSubmit();
      } else if (e.key === 'Escape') this.toggleForm(false);
    });
    this.count.id = 'clicker-ask-count';
    this.send.type = 'submit';
    this.message.setAttribute('role', 'status');
    this.message.hidden = true;
    const foot = el('div', 'clicker-ask-foot');
    foot.append(this.count, this.send);
    this.form.append(head, this.input, foot, this.message);
    this.askButton.setAttribute('aria-controls', this.form.id);
    // Never a real submission: the page's CSP has form-action 'none' anyway.
    this.form.addEventListener('submit', (e) => {
      e.preventDefault();
      void this.ask();
    });
    this.updateCount();
  }

  private toggleForm(show: boolean = Boolean(this.form.hidden)): void {
    clearTimeout(this.closeTimer);
    this.form.hidden = !show;
    this.askButton.setAttribute('aria-expanded', String(show));
    this.root.classList.toggle('asking', show);
    if (show) {
      // A fresh start: last time's "Sent" or error is old news.
      if (!this.open) this.say('Questions are off right now: the presenter is not taking questions.', 'info');
      else this.message.hidden = true;
      this.input.focus();
    } else this.askButton.focus();
  }

  private setOpen(summary: Partial<QuestionsSummary> | null | undefined): void {
    if (typeof summary?.open !== 'boolean' || summary.open === this.open) return;
    this.open = summary.open;
    this.root.dataset.questions = this.open ? 'open' : 'off';
    this.askButton.title = this.open ? '' : 'Questions are off';
    if (!this.open) {
      // Told at once if the form is open; otherwise on opening it.
      if (!this.form.hidden) this.say('Questions are off right now: the presenter is not taking questions.', 'info');
    } else if (this.message.dataset.tone === 'info') {
      this.say('The presenter is taking questions again.', 'ok');
    }
    this.updateCount();
  }

  private updateCount(): void {
    const n = this.input.value.length;
    this.count.textContent = `${n} / ${QUESTION_MAX}`;
    this.count.classList.toggle('near', n >= COUNT_WARN_AT);
    this.send.disabled = this.sending || !this.open || this.input.value.trim() === '';
  }

  private say(text: string, tone: 'ok' | 'error' | 'info'): void {
    this.message.textContent = text;
    this.message.dataset.tone = tone;
    this.message.hidden = false;
  }

  private async ask(): Promise<void> {
    const text = this.input.value.replace(CONTROL, '').trim();
    if (!text || this.sending) return;
    if (text.length > QUESTION_MAX) {
      this.say(askError({ status: 400, retryAfter: null }, text.length), 'error');
      return;
    }
    this.sending = true;
    this.send.textContent = 'Sending…';
    this.updateCount();
    const a = await post(`${this.api}/questions`, { text });
    this.sending = false;
    this.send.textContent = 'Send';
    if (a.status === 201) {
      this.input.value = '';
      this.say('Sent. The presenter will see your question.', 'ok');
      // Out of the way again, unless the follower has started another one.
      this.closeTimer = setTimeout(() => {
        if (!this.input.value && !this.form.hidden) this.toggleForm(false);
      }, 2_500);
    } else {
      this.say(askError(a, text.length), 'error');
    }
    this.updateCount();
  }

  private async react(kind: ReactionKind, button: HTMLButtonElement): Promise<void> {
    if (Date.now() < this.reactPausedUntil) return;
    button.classList.remove('pop');
    // Restart the little pop even on a quick second tap.
    void button.offsetWidth;
    button.classList.add('pop');
    const a = await post(`${this.api}/reactions`, { kind });
    if (a.status === 429) {
      const s = Math.min(a.retryAfter ?? 5, 10);
      this.reactPausedUntil = Date.now() + s * 1000;
      for (const b of this.reactions) b.disabled = true;
      setTimeout(() => {
        for (const b of this.reactions) b.disabled = false;
      }, s * 1000);
      this.flash(`Easy there! Reactions are back in ${wait(s)}.`);
    } else if (a.status === 0) {
      this.flash('Could not reach the presenter.');
    }
  }

  /** A short note above the bar, for reactions (the form has its own line). */
  private flash(text: string): void {
    this.note.textContent = text;
    this.note.hidden = false;
    clearTimeout(this.noteTimer);
    this.noteTimer = setTimeout(() => (this.note.hidden = true), NOTE_MS);
  }
}
