// Channel ids, keys and pairing codes. Secrets are kept only as SHA-256
// hashes, so a memory dump or a shared store (Redis, later) never holds a
// usable key, and comparisons run in constant time over equal-length digests.
import { createHash, createHmac, hash } from 'node:crypto';
import { nanoid } from 'nanoid';

/** 32 nanoid characters carry 192 bits. */
export const newSecret = (): string => nanoid(32);

/** Base64url SHA-256 of a secret: 43 characters. */
export function hashSecret(secret: string): string {
  // One-shot, with no Hash object to build: every tap hashes the key it carries.
  return hash('sha256', secret, 'base64url');
}

/**
 * The channel id is derived from the deck key (132 bits of its hash). After a
 * server restart only the holder of the deck key can bring a channel id back,
 * so nobody who saw the public id can claim it first.
 */
export function channelIdFor(deckKey: string): string {
  return createHash('sha256').update(`clicker-channel:${deckKey}`, 'utf8').digest('base64url').slice(0, 22);
}

/**
 * Constant-time comparison of two hashes (as hashSecret makes them): every
 * character is looked at, wherever the first difference is. Written out
 * rather than crypto.timingSafeEqual, which needs two Buffers made per call,
 * on every tap; a hash's length is public (always 43), so it may end early.
 */
export function sameHash(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

/** Constant-time comparison of a presented secret against a stored hash. */
export function matchesHash(secret: string, storedHash: string): boolean {
  return sameHash(hashSecret(secret), storedHash);
}

/** Reads `Authorization: Bearer <key>`; anything else is no key at all. */
export function bearer(header: string | undefined): string | undefined {
  const m = header === undefined ? null : /^Bearer ([A-Za-z0-9_-]{16,128})$/.exec(header);
  return m?.[1];
}

/**
 * What a key holder's event stream shows to be one (`?as=`): derived from
 * the key's hash, so the server checks it against what it stores. It earns
 * a stream one of the slots kept for the deck and its phones, and the deck's
 * stream the knocks of waiting phones (their names, which the slideshow shows
 * on the projector anyway, and tickets that allow nothing without the deck
 * key); never any control, so it may stand in a URL (and a proxy's log)
 * where a key may not.
 */
export function streamTokenFor(keyHash: string): string {
  return hashSecret(`clicker-stream:${keyHash}`);
}

/**
 * Short, distinct words for a waiting phone's name: easy to read off a
 * phone at arm's length and to match on the projector. None is a prefix
 * of another, and no two look alike at a glance.
 */
const LABEL_WORDS = [
  'Otter', 'Maple', 'Comet', 'Tiger', 'Cedar', 'Pluto', 'Mango', 'Heron',
  'Ruby', 'Falcon', 'Lemon', 'Bison', 'Coral', 'Panda', 'Olive', 'Raven',
  'Koala', 'Amber', 'Yak', 'Fig', 'Jade', 'Moose', 'Quartz', 'Walrus',
  'Lynx', 'Gecko', 'Dingo', 'Sable', 'Ivory', 'Kiwi', 'Nutmeg', 'Wren',
] as const;

/**
 * A waiting phone's name ("Otter 27"), from its key's hash: the same key
 * gives the same name on every instance and every knock, and nobody can
 * pick it without the key. 32 words and 90 numbers: two phones in one
 * channel's queue share a name about once in 2,880 pairs.
 */
export function labelFor(keyHash: string): string {
  const bytes = Buffer.from(keyHash, 'base64url');
  return `${LABEL_WORDS[bytes[0]! % LABEL_WORDS.length]} ${10 + (bytes.readUInt16BE(1) % 90)}`;
}

/**
 * A waiting phone's controller key, made by the server: when it was made, a
 * nonce, and an HMAC of both and of the open pairing code's hash, keyed with
 * the deck key's hash, which never leaves the server. A phone brings it back
 * on each knock. One it made up itself is refused, so nobody can search
 * offline for a key whose name matches the presenter's phone; one made for
 * an earlier code (before Q) or longer ago than WAITING_KEY_TTL_MS is refused
 * too, so nobody can stock up names for later either. Stateless: any
 * instance that reads the channel checks it.
 */
export function issueWaitingKey(deckHash: string, pairCodeHash: string, now = Date.now()): string {
  const head = now.toString(36).padStart(WAITING_TIME, '0') + nanoid(WAITING_NONCE);
  return head + waitingMac(deckHash, pairCodeHash, head);
}

/** A waiting phone's key stays good this long: a phone still waiting after it scans the QR again. */
export const WAITING_KEY_TTL_MS = 15 * 60_000;

/** Whether `key` is one issueWaitingKey made for this deck and this code, not too long ago. */
export function isWaitingKey(deckHash: string, pairCodeHash: string, key: string, now = Date.now()): boolean {
  if (key.length !== WAITING_TIME + WAITING_NONCE + WAITING_MAC) return false;
  const head = key.slice(0, WAITING_TIME + WAITING_NONCE);
  if (!sameHash(key.slice(head.length), waitingMac(deckHash, pairCodeHash, head))) return false;
  const age = now - parseInt(head.slice(0, WAITING_TIME), 36);
  return age >= -60_000 && age <= WAITING_KEY_TTL_MS;
}

const WAITING_TIME = 9;
const WAITING_NONCE = 12;
const WAITING_MAC = 22;
const waitingMac = (deckHash: string, pairCodeHash: string, head: string) =>
  createHmac('sha256', deckHash).update(`clicker-waiting:${pairCodeHash}:${head}`).digest('base64url').slice(0, WAITING_MAC);

/**
 * What the slideshow hands back to allow a waiting phone: proof that this
 * key hash knocked with the code now open. A hash that never knocked, or
 * knocked with a code since replaced, has none.
 */
export function knockTicket(deckHash: string, pairCodeHash: string, controllerHash: string): string {
  return createHmac('sha256', deckHash).update(`clicker-knock:${pairCodeHash}:${controllerHash}`).digest('base64url');
}
