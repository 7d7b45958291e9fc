// Picks the address a phone on the same Wi-Fi can reach. The QR code must
// never carry localhost, and a laptop often has docker, VPN and VM bridges
// whose addresses a phone cannot reach, so candidates are ranked.
import { isIP } from 'node:net';
import os from 'node:os';
import Bowser from 'bowser';

export interface Candidate {
  iface: string;
  address: string;
  family: 'IPv4' | 'IPv6';
}

/** Interfaces that belong to containers, VMs and tunnels rather than to a real network. */
const VIRTUAL = /^(docker|br-|veth|virbr|vmnet|vboxnet|cni|flannel|cali|weave|kube|lxc|lxd|podman|tun|tap|utun|zt|tailscale|wg|ham|awdl|llw|anpi|bridge|vnic|vEthernet)/i;
/** Names of wired and wireless adapters on Linux, macOS and Windows. */
const PHYSICAL = /^(en|eth|wl|wlan|wifi|Wi-Fi|Ethernet)/i;

const isLinkLocal = (c: Candidate) => (c.family === 'IPv4' ? c.address.startsWith('169.254.') : /^fe80:/i.test(c.address));
const isPrivate4 = (a: string) => /^(10\.|192\.168\.|172\.(1[6-9]|2\d|3[01])\.)/.test(a);

/** Higher is better; -1 means never. */
export function score(c: Candidate): number {
  if (c.address === '127.0.0.1' || c.address === '::1' || c.address.startsWith('127.')) return -1;
  if (isLinkLocal(c) || VIRTUAL.test(c.iface)) return -1;
  // docker's default bridge range, even under another interface name.
  if (c.family === 'IPv4' && c.address.startsWith('172.17.')) return -1;
  let s = 0;
  if (c.family === 'IPv4') s += 100;
  if (c.family === 'IPv4' && isPrivate4(c.address)) s += 20;
  if (c.family === 'IPv6' && /^f[cd]/i.test(c.address)) s += 5;
  if (PHYSICAL.test(c.iface)) s += 10;
  return s;
}

export function rankAddresses(candidates: Candidate[]): Candidate[] {
  return candidates
    .map((c, i) => ({ c, i, s: score(c) }))
    .filter((x) => x.s >= 0)
    .sort((a, b) => b.s - a.s || a.i - b.i)
    .map((x) => x.c);
}

export function listCandidates(ifaces = os.networkInterfaces()): Candidate[] {
  const out: Candidate[] = [];
  for (const [iface, addrs] of Object.entries(ifaces)) {
    for (const a of addrs ?? []) {
      if (a.internal) continue;
      out.push({ iface, address: a.address, family: a.family === 'IPv6' ? 'IPv6' : 'IPv4' });
    }
  }
  return out;
}

/** The best LAN host for URLs, bracketed if IPv6; undefined when the machine has none. */
export function lanHost(ifaces = os.networkInterfaces()): string | undefined {
  const best = rankAddresses(listCandidates(ifaces))[0];
  if (!best) return undefined;
  return best.family === 'IPv6' ? `[${best.address}]` : best.address;
}

/**
 * Whether a client address is this machine: a loopback address, or one of
 * its own interfaces' (a browser on the laptop that opens the printed LAN
 * URL connects from that same address). IPv4-mapped IPv6 counts as IPv4.
 */
export function isThisMachine(address: string | undefined, ifaces = os.networkInterfaces()): boolean {
  if (!address) return false;
  // Without an IPv4 mapping prefix or an IPv6 zone (fe80::1%wlan0), as interfaces list them.
  const a = address.replace(/^::ffff:(?=\d+\.\d+\.\d+\.\d+$)/i, '').replace(/%.*$/, '').toLowerCase();
  if (a === '::1' || /^127\./.test(a)) return true;
  return Object.values(ifaces).some((list) => list?.some((i) => i.address.toLowerCase() === a));
}

/** Headers a proxy or tunnel adds on a client's behalf; a browser sends none of them itself. */
export const FORWARDING_HEADERS = ['forwarded', 'x-forwarded-for', 'x-forwarded-host', 'x-forwarded-proto', 'x-real-ip', 'via', 'cf-connecting-ip', 'true-client-ip'] as const;

/** What isFromThisMachine looks at in a request. */
export interface RequestOrigin {
  /**
   * The addresses the request came through, the connection's peer first:
   * with --trust-proxy, then every address X-Forwarded-For names, nearest
   * first (proxy-addr's `all`); without it, the peer alone.
   */
  chain: readonly string[];
  /** Whether the request carries any of FORWARDING_HEADERS. */
  forwarded: boolean;
  trustProxy: boolean;
}

/**
 * Whether a request comes from a browser on this machine, to which the
 * presenter's slideshow (and its notes) opens without a key.
 * - Every address on its way must be this machine's. The client a trusted
 *   proxy names is no proof (`TRUST_PROXY` may name proxies on the LAN): a
 *   phone on the Wi-Fi can put 127.0.0.1 in X-Forwarded-For itself, and a
 *   proxy here only appends the phone's own address to that.
 * - Without `--trust-proxy`, a request that carries forwarding headers came
 *   through a proxy or tunnel running here (nginx with `--public-url`,
 *   ngrok, cloudflared) on behalf of somebody else.
 * A proxy here that adds no such header cannot be told from a browser.
 */
export function isFromThisMachine(r: RequestOrigin, ifaces = os.networkInterfaces()): boolean {
  if (r.chain.length === 0 || !r.chain.every((a) => isThisMachine(a, ifaces))) return false;
  return r.trustProxy || !r.forwarded;
}

/**
 * This machine's own names for a Host check: its host name (and the
 * `.local` name mDNS gives it), and the names Clicker was told to print
 * (`--host`, the public URL's host). Lower case.
 */
export function ownHostNames(told: readonly (string | undefined)[], hostname = os.hostname()): Set<string> {
  const names = new Set<string>();
  const add = (n: string | undefined) => {
    const h = n?.toLowerCase().replace(/\.$/, '');
    if (h) names.add(h);
  };
  add(hostname);
  if (hostname && !hostname.includes('.')) add(`${hostname}.local`);
  for (const n of told) add(n);
  return names;
}

/**
 * Whether the name a browser put in the Host header is one of this machine's:
 * an IP address, `localhost` (and `*.localhost`, which browsers keep on
 * loopback), or one of `names`. Any other name is a name some DNS server
 * points here: a page on another site can rebind its own name to 127.0.0.1
 * and then read this server as its own origin (DNS rebinding), so the
 * browser on this machine that opens it is not the presenter's own.
 */
export function isOwnHostName(hostname: string, names: ReadonlySet<string>): boolean {
  const h = hostname.toLowerCase().replace(/^\[(.*)\]$/, '$1').replace(/\.$/, '');
  if (isIP(h) !== 0) return true;
  return h === 'localhost' || h.endsWith('.localhost') || names.has(h);
}

/**
 * A device's kind, summed up from its User-Agent (by bowser) for the
 * slideshow's "a phone asks to be the remote" card: a hint beside the
 * phone's name, never a proof, since a User-Agent says whatever its sender
 * likes. At most 60 characters of letters, digits, spaces and a few marks.
 */
export function deviceOf(userAgent: string | undefined): string {
  if (!userAgent) return 'unknown device';
  const { os, browser, platform } = Bowser.parse(userAgent);
  const kind = platform.model ?? os.name;
  const said = [kind, browser.name].filter((s): s is string => Boolean(s)).join(' · ');
  return said.replace(/[^\p{L}\p{N} .·()_-]/gu, '').slice(0, 60) || 'unknown device';
}
