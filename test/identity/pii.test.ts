import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { johnSmith } from '../support/fixtures.ts';
import { startTestApp, type TestApp } from '../support/harness.ts';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(() => t.close());

async function expectFieldError(body: Record<string, unknown>, field: string) {
  const me = await t.signIn(`field-${field}-${Math.random()}@example.com`);
  const response = await t.post('/identity/user-pii', body, me.auth);
  expect(response.status, JSON.stringify(response.body)).toBe(400);
  expect(response.body.error.code).toBe('VALIDATION_ERROR');
  expect(response.body.error.field).toBe(field);
}

describe('user-pii happy', () => {
  it('creates the record from the spec example and returns it with the SSN and ID number masked', async () => {
    const me = await t.signIn('john@example.com');
    const created = await t.post('/identity/user-pii', johnSmith, me.auth);
    expect(created.status).toBe(201);
    expect(created.body.data).toMatchObject({
      user_id: me.userId,
      first_name: 'JOHN',
      last_name: 'SMITH',
      state: 'GA',
      ssn: '*****3333',
      id_number: '******6789',
      dob_day: '28',
    });
    const read = await t.get(`/identity/user-pii/${me.userId}`, me.auth);
    expect(read.body.data).toEqual(created.body.data);
    expect(read.text).not.toContain('112223333');
  });

  it('accepts ssnLast4 instead of a full SSN', async () => {
    const me = await t.signIn('last4@example.com');
    const created = await t.post('/identity/user-pii', { firstName: 'Ann', lastName: 'Lee', ssnLast4: '4321' }, me.auth);
    expect(created.body.data.ssn).toBe('*****4321');
  });

  it('PATCH merges fields; a full SSN replaces a stored last-4 and the reverse', async () => {
    const me = await t.signIn('patch@example.com');
    await t.post('/identity/user-pii', { firstName: 'Pat', lastName: 'Chen', ssnLast4: '1111' }, me.auth);
    const patched = await t.patch(`/identity/user-pii/${me.userId}`, { city: 'BOSTON', ssn: '123456789' }, me.auth);
    expect(patched.status).toBe(200);
    expect(patched.body.data).toMatchObject({ first_name: 'Pat', city: 'BOSTON', ssn: '*****6789' });
    const back = await t.patch(`/identity/user-pii/${me.userId}`, { ssnLast4: '2222' }, me.auth);
    expect(back.body.data.ssn).toBe('*****2222');
  });

  it('DELETE removes the record', async () => {
    const me = await t.signIn('erase@example.com');
    await t.post('/identity/user-pii', { firstName: 'Eve', lastName: 'Rase' }, me.auth);
    expect((await t.delete(`/identity/user-pii/${me.userId}`, me.auth)).status).toBe(200);
    expect((await t.get(`/identity/user-pii/${me.userId}`, me.auth)).status).toBe(404);
    expect((await t.delete(`/identity/user-pii/${me.userId}`, me.auth)).status).toBe(404);
  });

  it('an org_admin creates and reads PII for a user of the org', async () => {
    const admin = await t.signIn('admin@example.com');
    const member = await t.signIn('managed@example.com');
    const created = await t.post('/identity/user-pii', { userId: member.userId, firstName: 'Man', lastName: 'Aged' }, admin.auth);
    expect(created.status).toBe(201);
    expect((await t.get(`/identity/user-pii/${member.userId}`, member.auth)).body.data.first_name).toBe('Man');
  });
});

describe('user-pii error', () => {
  it('rejects SSNs with dashes or the wrong length, naming the field', async () => {
    await expectFieldError({ ...johnSmith, ssn: '112-22-3333' }, 'ssn');
    await expectFieldError({ ...johnSmith, ssn: '11222333' }, 'ssn');
    const { ssn: _ssn, ...withoutSsn } = johnSmith;
    await expectFieldError({ ...withoutSsn, ssnLast4: '12 4' }, 'ssnLast4');
  });

  it('rejects both ssn and ssnLast4 together', async () => {
    await expectFieldError({ ...johnSmith, ssnLast4: '3333' }, 'ssnLast4');
  });

  it('requires a real date of birth', async () => {
    await expectFieldError({ ...johnSmith, dobMonth: '02', dobDay: '30' }, 'dobDay');
    await expectFieldError({ ...johnSmith, dobMonth: '13' }, 'dobMonth');
    await expectFieldError({ ...johnSmith, dobYear: '2999' }, 'dobYear');
    await expectFieldError({ ...johnSmith, dobYear: '1899' }, 'dobYear');
    await expectFieldError({ ...johnSmith, dobDay: '5' }, 'dobDay');
    const { dobDay: _day, ...partial } = johnSmith;
    await expectFieldError(partial, 'dobDay');
  });

  it('accepts 29 February only in a leap year', async () => {
    await expectFieldError({ ...johnSmith, dobMonth: '02', dobDay: '29', dobYear: '1975' }, 'dobDay');
    const me = await t.signIn('leap@example.com');
    expect((await t.post('/identity/user-pii', { ...johnSmith, dobMonth: '02', dobDay: '29', dobYear: '1976' }, me.auth)).status).toBe(201);
  });

  it('checks state, zip and country formats', async () => {
    await expectFieldError({ ...johnSmith, state: 'ZZ' }, 'state');
    await expectFieldError({ ...johnSmith, state: 'ga' }, 'state');
    await expectFieldError({ ...johnSmith, zip: '3031' }, 'zip');
    await expectFieldError({ ...johnSmith, zip: 'SW1A 1AA' }, 'zip');
    await expectFieldError({ ...johnSmith, country: 'US' }, 'country');
    const me = await t.signIn('uk@example.com');
    const abroad = await t.post('/identity/user-pii', { ...johnSmith, country: 'GBR', state: 'LND', zip: 'SW1A 1AA' }, me.auth);
    expect(abroad.status).toBe(201);
  });

  it('checks the other fields and refuses unknown ones', async () => {
    await expectFieldError({ ...johnSmith, email: 'nope' }, 'email');
    await expectFieldError({ ...johnSmith, telephone: '555-1212' }, 'telephone');
    await expectFieldError({ ...johnSmith, idType: 'library_card' }, 'idType');
    await expectFieldError({ ...johnSmith, firstName: '' }, 'firstName');
    await expectFieldError({ lastName: 'X' }, 'firstName');
    const me = await t.signIn('unknown-field@example.com');
    const response = await t.post('/identity/user-pii', { ...johnSmith, favouriteColour: 'blue' }, me.auth);
    expect(response.status).toBe(400);
    expect(response.body.error.message).toMatch(/favouriteColour/);
  });

  it('PATCH validates the merged record', async () => {
    const me = await t.signIn('merge@example.com');
    await t.post('/identity/user-pii', { ...johnSmith }, me.auth);
    const response = await t.patch(`/identity/user-pii/${me.userId}`, { zip: 'ABCDE' }, me.auth);
    expect(response.status).toBe(400);
    expect(response.body.error.field).toBe('zip');
    expect((await t.patch(`/identity/user-pii/${me.userId}`, {}, me.auth)).status).toBe(400);
  });

  it('refuses a second record (409) and a missing one (404)', async () => {
    const me = await t.signIn('twice@example.com');
    expect((await t.post('/identity/user-pii', { firstName: 'A', lastName: 'B' }, me.auth)).status).toBe(201);
    const again = await t.post('/identity/user-pii', { firstName: 'A', lastName: 'B' }, me.auth);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe('CONFLICT');
    const fresh = await t.signIn('none@example.com');
    expect((await t.get(`/identity/user-pii/${fresh.userId}`, fresh.auth)).status).toBe(404);
    expect((await t.patch(`/identity/user-pii/${fresh.userId}`, { city: 'X' }, fresh.auth)).status).toBe(404);
  });
});

describe('user-pii security', () => {
  it("never shows another org's PII, nor a peer's", async () => {
    const owner = await t.signIn('owner@example.com');
    await t.post('/identity/user-pii', { firstName: 'Own', lastName: 'Er' }, owner.auth);
    const other = await t.createOrg({ name: 'Rival', adminEmails: ['admin@rival.com'] });
    const rivalAdmin = await t.signIn('admin@rival.com', other);
    const peer = await t.signIn('peer@example.com');
    for (const auth of [rivalAdmin.auth, peer.auth]) {
      expect((await t.get(`/identity/user-pii/${owner.userId}`, auth)).status).toBe(404);
      expect((await t.patch(`/identity/user-pii/${owner.userId}`, { city: 'X' }, auth)).status).toBe(404);
      expect((await t.delete(`/identity/user-pii/${owner.userId}`, auth)).status).toBe(404);
    }
    const planted = await t.post('/identity/user-pii', { userId: owner.userId, firstName: 'X', lastName: 'Y' }, rivalAdmin.auth);
    expect(planted.status).toBe(404);
  });

  it('requires a Bearer token', async () => {
    expect((await t.post('/identity/user-pii', johnSmith)).status).toBe(401);
  });
});
