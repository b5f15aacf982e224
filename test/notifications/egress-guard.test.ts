import { describe, expect, it } from 'vitest';
import { egressPolicy, guardedLookup, isAddressAllowed, EgressBlockedError } from '../../src/notifications/egress-guard.ts';

const strict = egressPolicy(undefined);

describe('egress guard', () => {
  it('refuses loopback, private, link-local, CGNAT, metadata and reserved IPv4', () => {
    for (const address of [
      '127.0.0.1',
      '10.0.0.1',
      '172.16.5.4',
      '192.168.1.1',
      '169.254.169.254',
      '100.64.0.1',
      '0.0.0.0',
      '224.0.0.1',
      '255.255.255.255',
      '198.18.0.1',
    ]) {
      expect(isAddressAllowed(strict, address), address).toBe(false);
    }
  });

  it('refuses the IPv6 equivalents, including v4 addresses mapped or embedded in v6', () => {
    for (const address of [
      '::1',
      '::',
      'fe80::1',
      'fd00::1',
      'fc00::1',
      'ff02::1',
      '::ffff:127.0.0.1',
      '::ffff:a9fe:a9fe',
      '64:ff9b::a9fe:a9fe',
      '2002:a00:1::1',
      '2001:db8::1',
    ]) {
      expect(isAddressAllowed(strict, address), address).toBe(false);
    }
  });

  it('allows public addresses', () => {
    for (const address of ['8.8.8.8', '1.1.1.1', '2606:4700:4700::1111', '2002:808:808::1']) {
      expect(isAddressAllowed(strict, address), address).toBe(true);
    }
  });

  it('lets an explicit allow-list through', () => {
    const local = egressPolicy('127.0.0.0/8, ::1/128');
    expect(isAddressAllowed(local, '127.0.0.1')).toBe(true);
    expect(isAddressAllowed(local, '::1')).toBe(true);
    expect(isAddressAllowed(local, '::ffff:127.0.0.1')).toBe(true);
    expect(isAddressAllowed(local, '10.0.0.1')).toBe(false);
  });

  it('checks the resolved address in the lookup the socket uses', async () => {
    const lookup = guardedLookup(strict);
    const error = await new Promise<Error | null>((resolve) => lookup('localhost', {}, (err) => resolve(err)));
    expect(error).toBeInstanceOf(EgressBlockedError);
    const allowed = guardedLookup(egressPolicy('127.0.0.0/8,::1/128'));
    const address = await new Promise<string>((resolve, reject) =>
      allowed('localhost', {}, (err, addr) => (err ? reject(err) : resolve(addr as string))),
    );
    expect(['127.0.0.1', '::1']).toContain(address);
  });
});
