import { createHash, createHmac, scryptSync } from 'node:crypto';
import sdk from '@tokend/js-sdk';
import { describe, expect, it } from 'vitest';
import { decodeEnvelope, XdrError } from '../../src/keyserver/accounts/tokend-xdr.ts';
import { blobId } from '../../src/keyserver/blobs/blobs.routes.ts';
import { verificationLink } from '../../src/keyserver/wallets/wallets.service.ts';

// research/tokend.md §3.2: wallet id = hex(HMAC-SHA256(scrypt(password, SHA-256(0x01 || salt || email)), "WALLET_ID")).
function walletId(email: string, password: string, salt: string) {
  const composed = createHash('sha256')
    .update(Buffer.concat([Buffer.from([1]), Buffer.from(salt, 'base64'), Buffer.from(email, 'utf8')]))
    .digest();
  const master = scryptSync(Buffer.from(password, 'utf8'), composed, 32, { N: 4096, r: 8, p: 1 });
  return createHmac('sha256', master).update('WALLET_ID').digest('hex');
}

describe('TokenD wallet vectors', () => {
  it('derives the published wallet id, and the SDK derives the same', () => {
    const expected = '96319900eff4dcc51beabd55200aa0f29490191ede16d26cd6adcc2554416dc3';
    expect(walletId('oleg@tokend.org', 'qwe123', '67ufG1N/Rf+j2ugDaXaopw==')).toBe(expected);
    const kdf = { algorithm: 'scrypt', bits: 256, n: 4096, r: 8, p: 1, id: 2 };
    expect(sdk.Wallet.deriveId('oleg@tokend.org', 'qwe123', kdf, '67ufG1N/Rf+j2ugDaXaopw==')).toBe(expected);
  });

  it('builds the verification link payload clients decode', () => {
    const link = verificationLink('https://app.example', 'ab'.repeat(32), 'JOqIgfCNSjnGWDrTPWbW');
    const payload = link.slice('https://app.example/'.length);
    expect(payload).not.toContain('=');
    expect(JSON.parse(Buffer.from(payload, 'base64url').toString())).toEqual({
      type: 1,
      meta: { wallet_id: 'ab'.repeat(32), token: 'JOqIgfCNSjnGWDrTPWbW' },
    });
  });

  it('derives content-addressed blob ids (52 base32 characters, no padding)', () => {
    const id = blobId('GBLTOG6EJS5OWDNQNSCEAVDNMPBY6F73XZHHKR27YE5AKE23ZZEXOLBK', 2048, '{}');
    expect(id).toMatch(/^[A-Z2-7]{52}$/);
    expect(blobId('GBLTOG6EJS5OWDNQNSCEAVDNMPBY6F73XZHHKR27YE5AKE23ZZEXOLBK', 2048, '{}')).toBe(id);
    expect(blobId('GBLTOG6EJS5OWDNQNSCEAVDNMPBY6F73XZHHKR27YE5AKE23ZZEXOLBK', 2048, '{ }')).not.toBe(id);
  });
});

describe('TokenD envelopes', () => {
  it('decodes signer changes built by the SDK and refuses other operations and garbage', () => {
    const { Keypair, TransactionBuilder, ManageSignerBuilder, Operation, xdr } = sdk.base;
    const source = Keypair.random();
    const added = Keypair.random();
    const builder = new TransactionBuilder(source.accountId());
    builder.operations = [
      ManageSignerBuilder.createSigner({ publicKey: added.accountId(), weight: 1000, identity: 0, roleID: '2', details: {} }),
      ManageSignerBuilder.deleteSigner({ publicKey: source.accountId() }),
    ];
    const envelope = builder.build();
    envelope.sign(source);
    const decoded = decodeEnvelope(envelope.toEnvelope().toXDR().toString('base64'));
    expect(decoded.sourceAccount).toBe(source.accountId());
    expect(decoded.operations.map((operation) => operation.change)).toEqual([
      { action: 'create', publicKey: added.accountId(), roleId: 2, weight: 1000, identity: 0, details: '{}' },
      { action: 'remove', publicKey: source.accountId() },
    ]);
    expect(decoded.signatures).toHaveLength(1);

    const payment = new TransactionBuilder(source.accountId());
    payment.operations = [
      Operation.manageBalance({ destination: source.accountId(), asset: 'USD', action: xdr.ManageBalanceAction.create() }),
    ];
    const other = payment.build();
    other.sign(source);
    expect(() => decodeEnvelope(other.toEnvelope().toXDR().toString('base64'))).toThrow(XdrError);
    expect(() => decodeEnvelope('AAAA')).toThrow(XdrError);
  });
});
