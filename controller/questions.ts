// The audience's questions on the presenter's phone: a "Questions" button
// with a badge of the ones waiting, and a panel listing the kept ones (the
// last 30), each with Show (onto the slideshow) and Dismiss, plus the switch
// that turns asking on or off.
//
// The public stream carries only counts, never a question's text, so the list
// comes from GET .../questions with this phone's controller key: on opening
// the panel, on every `questions` event, and on each (re)connection's
// snapshot, so a phone that reloads or reconnects still sees them all.
// Question text is the audience's: it is only ever set with textContent.
import './questions.css';
import { EVENT, type Question, type QuestionList, type QuestionsSummary, type Snapshot, type Spotlight } from '../protocol/wire';
import { HttpStatusError, requestJson } from '../protocol/live';

/** Events the panel wants from the stream, besides the snapshot. */
export const QUESTION_EVENTS = [EVENT.questions, EVENT.spotlight] as const;

export interface QuestionsPanelOptions {
  /** The channel's API base, `/api/channels/<id>`. */
  api: string;
  key(): string;
  /** The server refused the key: the presenter revoked this phone. */
  unpaired(): void;
}

const $ = (id: string) => document.getElementById(id)!;

export class QuestionsPanel {
  private readonly dialog = $('questions-panel') as HTMLDialogElement;
  private readonly openButton = $('questions-open');
  private readonly badge = $('questions-badge');
  private readonly toggle = $('questions-switch');
  private readonly list = $('questions-items');
  private readonly empty = $('questions-empty');
  private readonly error = $('questions-error');
  private questions: Question[] = [];
  private open = true;
  private pending = 0;
  /** Id of the question on the slideshow now: a later Show replaces it there, whatever the list says. */
  private onScreen: string | null = null;
  private loading = false;
  private again = false;

  constructor(private readonly opts: QuestionsPanelOptions) {
    this.openButton.addEventListener('click', () => {
      this.error.hidden = true;
      this.render();
      this.dialog.showModal();
      this.refresh();
    });
    $('questions-close').addEventListener('click', () => this.dialog.close());
    this.toggle.addEventListener('click', () => void this.setOpen(!this.open));
    this.summary({ open: true, pending: 0 });
  }

  /** Takes any stream event; ignores the ones that are not about questions. */
  onEvent(name: string, data: unknown): void {
    if (name === EVENT.snapshot) {
      const snap = data as Partial<Snapshot>;
      this.onScreen = snap.spotlight?.id ?? null;
      if (snap.questions) this.summary(snap.questions);
      this.refresh();
    } else if (name === EVENT.questions) {
      this.summary(data as QuestionsSummary);
      this.refresh();
    } else if (name === EVENT.spotlight) {
      this.onScreen = (data as Partial<Spotlight> | null)?.question?.id ?? null;
      this.render();
    }
  }

  /** Fetches the list; calls that arrive while one is out are folded into one more fetch after it. */
  refresh(): void {
    if (this.loading) {
      this.again = true;
      return;
    }
    this.loading = true;
    void requestJson<QuestionList>('GET', `${this.opts.api}/questions`, { key: this.opts.key() })
      .then((list) => {
        this.questions = Array.isArray(list.questions) ? list.questions : [];
        this.error.hidden = true;
        this.summary(list);
      })
      .catch((err: unknown) => this.fail(err, 'Could not load the questions. They will load when the connection is back.'))
      .finally(() => {
        this.loading = false;
        if (this.again) {
          this.again = false;
          this.refresh();
        }
      });
  }

  private summary(s: Partial<QuestionsSummary>): void {
    if (typeof s.open === 'boolean') this.open = s.open;
    if (typeof s.pending === 'number') this.pending = s.pending;
    this.badge.textContent = this.pending > 99 ? '99+' : String(this.pending);
    this.badge.hidden = this.pending === 0;
    this.openButton.setAttribute('aria-label', this.pending ? `Questions, ${this.pending} waiting` : 'Questions');
    this.openButton.classList.toggle('off', !this.open);
    this.toggle.setAttribute('aria-checked', String(this.open));
    this.render();
  }

  private render(): void {
    this.list.replaceChildren(...this.questions.map((q) => this.item(q)));
    this.empty.hidden = this.questions.length > 0;
    this.empty.textContent = this.open
      ? 'No questions yet. The audience can ask from the follow page.'
      : 'Questions are off: the audience cannot ask right now.';
  }

  private item(q: Question): HTMLLIElement {
    const live = q.id === this.onScreen;
    const li = document.createElement('li');
    li.className = 'q-item';
    li.dataset.status = live ? 'live' : q.status;
    const text = document.createElement('p');
    text.className = 'q-text';
    text.dir = 'auto';
    text.textContent = q.text;
    const meta = document.createElement('span');
    meta.className = 'q-meta';
    const at = document.createElement('time');
    at.dateTime = new Date(q.at).toISOString();
    at.textContent = new Date(q.at).toLocaleTimeString([], { hour: 'numeric', minute: '2-digit' });
    const chip = document.createElement('span');
    chip.className = 'q-chip';
    chip.textContent = live ? 'On screen' : q.status === 'pending' ? 'Waiting' : q.status === 'shown' ? 'Shown' : 'Dismissed';
    meta.append(at, chip);
    // The one on screen has nothing to show: only Dismiss, which takes it off.
    const show = this.button('Show', 'show');
    show.hidden = live;
    show.addEventListener('click', () => void this.moderate(q, 'shown', li));
    const dismiss = this.button('Dismiss', 'dismiss');
    dismiss.hidden = q.status === 'dismissed' && !live;
    dismiss.addEventListener('click', () => void this.moderate(q, 'dismissed', li));
    const row = document.createElement('div');
    row.className = 'q-row';
    row.append(meta, show, dismiss);
    li.append(text, row);
    return li;
  }

  private button(label: string, className: string): HTMLButtonElement {
    const b = document.createElement('button');
    b.type = 'button';
    b.className = `small ${className}`;
    b.textContent = label;
    return b;
  }

  private async moderate(q: Question, status: 'shown' | 'dismissed', li: HTMLElement): Promise<void> {
    for (const b of li.querySelectorAll('button')) b.disabled = true;
    try {
      await requestJson('POST', `${this.opts.api}/questions/${encodeURIComponent(q.id)}`, { key: this.opts.key(), body: { status } });
      // At once, rather than after the stream's echo: the presenter is mid-talk.
      q.status = status;
      if (status === 'shown') this.onScreen = q.id;
      else if (this.onScreen === q.id) this.onScreen = null;
      this.error.hidden = true;
    } catch (err) {
      // Gone from the list (30 newer ones came after it): the fresh list shows that.
      if (err instanceof HttpStatusError && err.status === 404) this.refresh();
      this.fail(err, status === 'shown' ? 'Could not show that question. Try again.' : 'Could not dismiss that question. Try again.');
    }
    this.render();
  }

  private async setOpen(open: boolean): Promise<void> {
    const before = this.open;
    this.summary({ open });
    try {
      await requestJson('PUT', `${this.opts.api}/questions`, { key: this.opts.key(), body: { open } });
    } catch (err) {
      this.summary({ open: before });
      this.fail(err, 'Could not change the switch. Try again.');
    }
  }

  private fail(err: unknown, message: string): void {
    if (err instanceof HttpStatusError && err.status === 401) {
      this.dialog.close();
      this.opts.unpaired();
      return;
    }
    this.error.textContent = message;
    this.error.hidden = false;
  }
}
