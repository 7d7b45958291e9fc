import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { NetworkInterfaceInfo } from 'node:os';
import { isFromThisMachine, isOwnHostName, isThisMachine, lanHost, ownHostNames, listCandidates, rankAddresses, score, type Candidate } from './net';

type Ifaces = NodeJS.Dict<NetworkInterfaceInfo[]>;

function v4(address: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask: '255.255.255.0', family: 'IPv4', mac: '02:00:00:00:00:01', internal, cidr: `${address}/24` };
}
function v6(address: string, internal = false): NetworkInterfaceInfo {
  return { address, netmask: 'ffff:ffff:ffff:ffff::', family: 'IPv6', mac: '02:00:00:00:00:01', internal, cidr: `${address}/64`, scopeid: 0 };
}

/** A typical Linux laptop: loopback, Wi-Fi, docker and a VPN. */
const laptop: Ifaces = {
  lo: [v4('127.0.0.1', true), v6('::1', true)],
  docker0: [v4('172.17.0.1')],
  'br-5f2a9c': [v4('172.18.0.1')],
  veth12ab: [v6('fe80::1c2d:3eff:fe4f:5061')],
  tailscale0: [v4('100.101.102.103')],
  wlan0: [v4('192.168.1.23'), v6('fe80::aaaa:bbbb:cccc:dddd'), v6('2001:db8::23')],
};

test('a laptop with docker and a VPN gives its Wi-Fi address', () => {
  assert.equal(lanHost(laptop), '192.168.1.23');
});

test('loopback, link-local and virtual interfaces are never candidates', () => {
  const never: Candidate[] = [
    { iface: 'lo', address: '127.0.0.1', family: 'IPv4' },
    { iface: 'eth0', address: '127.0.1.1', family: 'IPv4' },
    { iface: 'eth0', address: '::1', family: 'IPv6' },
    { iface: 'eth0', address: '169.254.10.20', family: 'IPv4' },
    { iface: 'en0', address: 'fe80::1', family: 'IPv6' },
    { iface: 'en0', address: 'FE80::abcd', family: 'IPv6' },
    { iface: 'eth1', address: '172.17.0.5', family: 'IPv4' },
  ];
  for (const iface of ['docker0', 'br-0a1b2c', 'veth9f8e', 'virbr0', 'vmnet8', 'vboxnet0', 'utun3', 'tailscale0', 'wg0', 'tun0', 'tap0', 'zt7nnig26', 'cni0', 'flannel.1', 'podman1', 'lxdbr0', 'awdl0', 'llw0', 'bridge100', 'vEthernet (WSL)']) {
    never.push({ iface, address: '192.168.50.1', family: 'IPv4' });
  }
  for (const c of never) assert.equal(score(c), -1, `${c.iface} ${c.address}`);
  assert.deepEqual(rankAddresses(never), []);
});

test('a private IPv4 address on a physical adapter beats everything else', () => {
  const candidates: Candidate[] = [
    { iface: 'eth0', address: '2001:db8::5', family: 'IPv6' },
    { iface: 'weird0', address: '10.1.2.3', family: 'IPv4' },
    { iface: 'eth0', address: '203.0.113.7', family: 'IPv4' },
    { iface: 'en0', address: '192.168.0.12', family: 'IPv4' },
  ];
  assert.deepEqual(
    rankAddresses(candidates).map((c) => c.address),
    ['192.168.0.12', '10.1.2.3', '203.0.113.7', '2001:db8::5'],
  );
});

test('each physical adapter name scores as physical', () => {
  for (const iface of ['en0', 'eth0', 'enp3s0', 'wlan0', 'wlp2s0', 'Wi-Fi', 'Ethernet 2']) {
    const physical = score({ iface, address: '192.168.1.2', family: 'IPv4' });
    const other = score({ iface: 'ppp0', address: '192.168.1.2', family: 'IPv4' });
    assert.ok(physical > other, iface);
  }
});

test('all three private IPv4 ranges count as private, neighbours of 172.16/12 do not', () => {
  const s = (address: string) => score({ iface: 'eth0', address, family: 'IPv4' });
  const privateScore = s('10.0.0.1');
  assert.equal(s('192.168.255.1'), privateScore);
  assert.equal(s('172.16.0.1'), privateScore);
  assert.equal(s('172.31.255.1'), privateScore);
  assert.ok(s('172.15.0.1') < privateScore);
  assert.ok(s('172.32.0.1') < privateScore);
  assert.ok(s('11.0.0.1') < privateScore);
});

test('IPv4 is preferred to IPv6, and a ULA to a global IPv6 address', () => {
  const ranked = rankAddresses([
    { iface: 'eth0', address: '2001:db8::1', family: 'IPv6' },
    { iface: 'eth0', address: 'fd12:3456::1', family: 'IPv6' },
    { iface: 'eth0', address: '198.51.100.4', family: 'IPv4' },
  ]);
  assert.deepEqual(
    ranked.map((c) => c.address),
    ['198.51.100.4', 'fd12:3456::1', '2001:db8::1'],
  );
});

test('equal scores keep the interface order', () => {
  const ranked = rankAddresses([
    { iface: 'eth0', address: '192.168.1.9', family: 'IPv4' },
    { iface: 'eth1', address: '192.168.2.9', family: 'IPv4' },
  ]);
  assert.deepEqual(
    ranked.map((c) => c.iface),
    ['eth0', 'eth1'],
  );
});

test('an IPv6-only network gives a bracketed host', () => {
  assert.equal(lanHost({ lo: [v6('::1', true)], en0: [v6('fe80::1'), v6('2001:db8:1::42')] }), '[2001:db8:1::42]');
});

test('undefined when nothing usable', () => {
  assert.equal(lanHost({}), undefined);
  assert.equal(lanHost({ lo: [v4('127.0.0.1', true), v6('::1', true)] }), undefined);
  assert.equal(lanHost({ lo: [v4('127.0.0.1', true)], docker0: [v4('172.17.0.1')], en0: [v4('169.254.3.4'), v6('fe80::2')] }), undefined);
  assert.equal(lanHost({ eth0: undefined }), undefined);
});

test('listCandidates skips internal addresses and keeps families', () => {
  assert.deepEqual(listCandidates(laptop), [
    { iface: 'docker0', address: '172.17.0.1', family: 'IPv4' },
    { iface: 'br-5f2a9c', address: '172.18.0.1', family: 'IPv4' },
    { iface: 'veth12ab', address: 'fe80::1c2d:3eff:fe4f:5061', family: 'IPv6' },
    { iface: 'tailscale0', address: '100.101.102.103', family: 'IPv4' },
    { iface: 'wlan0', address: '192.168.1.23', family: 'IPv4' },
    { iface: 'wlan0', address: 'fe80::aaaa:bbbb:cccc:dddd', family: 'IPv6' },
    { iface: 'wlan0', address: '2001:db8::23', family: 'IPv6' },
  ]);
});

test('lanHost reads the real interfaces by default without throwing', () => {
  const host = lanHost();
  assert.ok(host === undefined || (!host.startsWith('127.') && host !== '[::1]'), String(host));
});

test("a client on this machine: loopback, or one of its own interfaces' addresses; nobody else", () => {
  for (const a of ['127.0.0.1', '127.8.9.1', '::1', '::ffff:127.0.0.1', '192.168.1.23', '::ffff:192.168.1.23', '172.17.0.1', '2001:DB8::23', 'fe80::aaaa:bbbb:cccc:dddd%wlan0']) {
    assert.equal(isThisMachine(a, laptop), true, a);
  }
  for (const a of ['192.168.1.24', '::ffff:192.168.1.99', '10.0.0.23', '2001:db8::24', '', undefined]) {
    assert.equal(isThisMachine(a, laptop), false, String(a));
  }
});

test('a request from this machine: every address on its way here, and no proxy speaking for somebody else', () => {
  const here = (chain: string[], forwarded: boolean, trustProxy: boolean) => isFromThisMachine({ chain, forwarded, trustProxy }, laptop);
  // A browser on the laptop, straight or through its own LAN address.
  assert.equal(here(['127.0.0.1'], false, false), true);
  assert.equal(here(['192.168.1.23'], false, false), true);
  // Behind a trusted proxy here, every address it names must be this machine too.
  assert.equal(here(['127.0.0.1', '127.0.0.1'], true, true), true);
  assert.equal(here(['127.0.0.1', '203.0.113.9'], true, true), false);
  // A phone on the Wi-Fi naming 127.0.0.1 in X-Forwarded-For: straight to the server (a private address, trusted as a
  // proxy), or through nginx here, which appends the phone's address.
  assert.equal(here(['192.168.1.50', '127.0.0.1'], true, true), false);
  assert.equal(here(['127.0.0.1', '192.168.1.50', '127.0.0.1'], true, true), false);
  // Without --trust-proxy, forwarding headers mean a proxy or tunnel here is speaking for somebody else.
  assert.equal(here(['127.0.0.1'], true, false), false);
  assert.equal(here(['10.0.0.9'], false, false), false);
  assert.equal(here([], false, false), false);
});

test("a Host name is this machine's own: an address, localhost, its host name, or a name it was told; never another site's", () => {
  const names = ownHostNames(['talk.example.org', undefined], 'Presenters-MacBook');
  assert.deepEqual([...names], ['presenters-macbook', 'presenters-macbook.local', 'talk.example.org']);
  for (const h of ['127.0.0.1', '192.168.1.23', '[::1]', '[fe80::1]', 'localhost', 'LocalHost.', 'x.localhost', 'presenters-macbook', 'Presenters-MacBook.local', 'talk.example.org']) {
    assert.equal(isOwnHostName(h, names), true, h);
  }
  for (const h of ['attacker.example', 'localhost.attacker.example', '127.0.0.1.nip.io', 'presenters-macbook.attacker.example', 'talk.example.org.evil', '']) {
    assert.equal(isOwnHostName(h, names), false, h);
  }
});
