// Wire messages shared by the server, the slideshow and the phone.
//
// Every message is a discriminated union keyed by `type`, validated with zod
// and `.strict()` so an unknown field is an error rather than something that
// silently rides along. The slideshow maps each command type to one reveal.js
// call through a fixed switch: nothing here is ever used as a method name
// (reveal.js's own postMessage API keeps a deny-list for exactly that reason).
import { z } from 'zod';
import { CONTROLLER_KEY_RE, EVENT, MAX_CONTROLLERS } from './wire';

/** Client-made id of a command, so a retried POST is recognised and dropped. */
export const CommandId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{8,64}$/, 'command id must be 8-64 characters of A-Z, a-z, 0-9, _ or -');

const index = z.number().int().min(0).max(10_000);

export const Command = z.discriminatedUnion('type', [
  z.object({ type: z.literal('next'), id: CommandId }).strict(),
  z.object({ type: z.literal('prev'), id: CommandId }).strict(),
  z.object({ type: z.literal('first'), id: CommandId }).strict(),
  z.object({ type: z.literal('last'), id: CommandId }).strict(),
  z
    .object({
      type: z.literal('goto'),
      id: CommandId,
      h: index,
      v: index.default(0),
      f: z.number().int().min(-1).max(1_000).optional(),
    })
    .strict(),
  // `on` absent toggles, as a presenter's single "Blackout" button does.
  z.object({ type: z.literal('pause'), id: CommandId, on: z.boolean().optional() }).strict(),
]);
export type Command = z.infer<typeof Command>;
export type CommandType = Command['type'];
export const COMMAND_TYPES: readonly CommandType[] = ['next', 'prev', 'first', 'last', 'goto', 'pause'];

/**
 * Text the slideshow reports about a slide. Control characters other than tab
 * and newline are refused here; the SSE framing would also keep CR and NUL off
 * the stream, but refusing them at the edge gives the client a clear 400.
 */
const text = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !/[\u0000-\u0008\u000B-\u001F\u007F]/.test(s), 'control characters are not allowed');

/** A title is one line: no control characters at all, tab and newline included. */
const line = (max: number) =>
  z
    .string()
    .max(max)
    .refine((s) => !/[\u0000-\u001F\u007F]/.test(s), 'a title is one line, without control characters');

export const SlideRef = z
  .object({ h: index, v: index, title: line(200) })
  .strict();
export type SlideRef = z.infer<typeof SlideRef>;

/** What the slideshow reports after every slide, fragment or pause change. */
export const DeckState = z
  .object({
    indexh: index,
    indexv: index,
    /** Current fragment index; -1 before the first fragment, as reveal.js reports it. */
    indexf: z.number().int().min(-1).max(1_000),
    /** Fragments on the current slide, so a phone can say "2 of 3 builds". */
    fragments: z.number().int().min(0).max(1_000),
    paused: z.boolean(),
    /** 1-based position among all slides, vertical ones included. */
    position: z.number().int().min(1).max(10_000),
    total: z.number().int().min(1).max(10_000),
    isFirst: z.boolean(),
    isLast: z.boolean(),
    title: line(200),
    notes: text(8_000),
    nextTitle: line(200),
    /**
     * Width over height of the deck's slide area (reveal.js's default is
     * 960x700), so the phone's pointer pad has the slide's shape and a circle
     * drawn on it stays a circle. Optional: older slideshows do not send it.
     */
    aspect: z.number().min(0.2).max(5).optional(),
  })
  .strict();
export type DeckState = z.infer<typeof DeckState>;

/** The slideshow's state report, with the id of the command it just applied. */
export const StateReport = z
  .object({
    state: DeckState,
    /** The command that caused this change, if any, so the phone can measure its round trip. */
    cause: CommandId.optional(),
    /** The deck's outline, sent once per connection, so a phone can offer a jump list. */
    slides: z.array(SlideRef).max(1_000).optional(),
  })
  .strict();
export type StateReport = z.infer<typeof StateReport>;

/** A coordinate on the slide, 0 at the left or top edge, 1 at the right or bottom. */
const unit = z.number().min(0).max(1);
/** Sender's sequence number: the slideshow drops anything older than what it has drawn. */
const pointerSeq = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER);

/**
 * The laser pointer and pen, from the phone's pad. Never kept or replayed:
 * a late position is worse than none.
 */
export const Pointer = z.discriminatedUnion('type', [
  /** The finger is on the pad: show the dot here. */
  z.object({ type: z.literal('point'), x: unit, y: unit, seq: pointerSeq }).strict(),
  /** Draw mode: extend stroke `stroke` to here. */
  z.object({ type: z.literal('draw'), x: unit, y: unit, seq: pointerSeq, stroke: z.number().int().min(0).max(1_000_000) }).strict(),
  /** The finger lifted: hide the dot. */
  z.object({ type: z.literal('lift'), seq: pointerSeq }).strict(),
  /** Wipe the strokes on the current slide. */
  z.object({ type: z.literal('clear'), seq: pointerSeq }).strict(),
]);
export type Pointer = z.infer<typeof Pointer>;

/** Longest audience question. */
export const QUESTION_MAX = 280;

/** Body of POST /api/channels/:id/questions: a follower asks. Shown as text only, never as markup. */
export const Ask = z
  .object({
    text: z
      .string()
      .trim()
      .min(1, 'a question needs some text')
      .max(QUESTION_MAX)
      .refine((s) => !/[\u0000-\u0008\u000B-\u001F\u007F]/.test(s), 'control characters are not allowed'),
  })
  .strict();

/** Body of POST /api/channels/:id/questions/:qid: the presenter shows or dismisses a question. */
export const Moderate = z.object({ status: z.enum(['shown', 'dismissed']) }).strict();

/** Body of PUT /api/channels/:id/questions: the presenter turns questions on or off. */
export const QuestionsSwitch = z.object({ open: z.boolean() }).strict();

export const REACTIONS = ['thumbs', 'clap', 'question'] as const;
/** Body of POST /api/channels/:id/reactions. */
export const React = z.object({ kind: z.enum(REACTIONS) }).strict();

/** The body of a request that takes none (a new channel, a new pairing code): absent, or `{}`. */
export const NoFields = z.strictObject({}, { error: 'this request takes no fields' }).optional();

export const PairCode = z.string().regex(/^[A-Za-z0-9_-]{16,64}$/, 'a pairing code is 16-64 characters of A-Z, a-z, 0-9, _ or -');
/** A controller key's hash, as the slideshow keeps and re-registers them: 43 characters of base64url. */
export const KeyHash = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a key hash is 43 characters of base64url');

/**
 * Body of POST /api/channels/:id/pair: the code from the QR's fragment. With
 * phone approval on (the default), `key` is the controller key the first
 * answer handed out, sent again while the phone waits for the laptop to allow
 * it: the same key keeps the same name on both screens.
 */
export const PairRequest = z
  .object({
    code: PairCode,
    key: z.string().regex(CONTROLLER_KEY_RE, 'a controller key is 16-64 characters of A-Z, a-z, 0-9, _ or -').optional(),
  })
  .strict();

/** Body of POST /api/channels/:id/controllers: the slideshow allows the phone that knocked with this key hash. */
export const AllowPhone = z
  .object({
    code: PairCode,
    hash: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'hash must be a controller key hash (43 characters of base64url)'),
    ticket: z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'ticket must be the knock\'s ticket (43 characters of base64url)'),
  })
  .strict();

/**
 * Body of PUT /api/channels/:id: the slideshow re-registers its channel after a
 * server restart with the hashes of the controller keys it was told about, so
 * a paired phone keeps working without a re-scan.
 */
/**
 * The highest event id a slideshow may register its channel from. Event ids
 * are resumed (Last-Event-ID) up to 15 digits, so a channel registered at
 * this id still has a thousand times as many ids ahead of it as behind it,
 * every one of them resumable.
 */
export const MAX_REGISTERED_EVENT_ID = 1_000_000_000_000;

export const Register = z
  .object({
    controllers: z.array(KeyHash).max(MAX_CONTROLLERS).default([]),
    lastEventId: z.number().int().min(0).max(MAX_REGISTERED_EVENT_ID).default(0),
    report: StateReport.optional(),
    /**
     * The pairing code the slideshow shows: kept if it is still the open one,
     * so a reload (a saved stylesheet, say) does not turn away the phones
     * waiting to be allowed with it.
     */
    pairCode: PairCode.optional(),
  })
  .strict();
export type Register = z.infer<typeof Register>;

/**
 * `?events=` on GET /api/channels/:id/events: the event names a stream
 * carries, comma-separated, for a client that ignores the rest (the phone
 * never uses the commands it sends or its own pointer positions, a follower
 * never uses commands). Without it a stream carries every event. The
 * snapshot opens every stream whatever the list.
 */
export const EventFilter = z
  .string()
  .max(200, 'the list of event names is over 200 characters')
  .transform((s) => s.split(','))
  .pipe(z.array(z.enum(EVENT, { error: (issue) => `unknown event name ${JSON.stringify(issue.input)}` })).min(1));

export * from './wire';
