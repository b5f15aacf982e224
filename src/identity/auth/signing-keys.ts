import { randomUUID } from 'node:crypto';
import { and, desc, eq, isNull } from 'drizzle-orm';
import { CompactSign, compactVerify, exportJWK, generateKeyPair, importJWK, type JWK } from 'jose';
import { rewrap, seal, unseal } from '../../platform/crypto/envelope.ts';
import type { Keyring } from '../../platform/crypto/keyring.ts';
import type { Db, Executor } from '../../platform/db/database.ts';
import { signingKeys } from '../identity.tables.ts';

export type KeyPurpose = (typeof signingKeys.$inferSelect)['purpose'];
type KeyMaterial = Awaited<ReturnType<typeof importJWK>>;
export type SigningKey = { kid: string; privateKey: KeyMaterial };

const ALG = 'RS256';

/**
 * RS256 key pairs kept in the database (private half sealed), so every process signs with the same
 * active key and verifies any key still published.
 */
export function signingKeyStore(deps: { db: Db; keyring: Keyring }) {
  const { db, keyring } = deps;
  const active = new Map<KeyPurpose, SigningKey>();
  const publicKeys = new Map<string, KeyMaterial>();

  async function create(purpose: KeyPurpose): Promise<SigningKey> {
    const { publicKey, privateKey } = await generateKeyPair(ALG, { extractable: true, modulusLength: 2048 });
    const kid = randomUUID();
    const publicJwk = { ...(await exportJWK(publicKey)), kid, alg: ALG, use: 'sig' };
    const sealed = seal(keyring, JSON.stringify(await exportJWK(privateKey)), `signing_keys:${kid}`);
    await db.insert(signingKeys).values({ kid, purpose, publicJwk, ...sealed });
    return { kid, privateKey };
  }

  return {
    /** The newest unretired key for `purpose`, created on first use. */
    async activeKey(purpose: KeyPurpose): Promise<SigningKey> {
      const cached = active.get(purpose);
      if (cached) return cached;
      const [row] = await db
        .select()
        .from(signingKeys)
        .where(and(eq(signingKeys.purpose, purpose), isNull(signingKeys.retiredAt)))
        .orderBy(desc(signingKeys.createdAt))
        .limit(1);
      const key = row
        ? { kid: row.kid, privateKey: await importJWK(JSON.parse(unseal(keyring, row, `signing_keys:${row.kid}`)) as JWK, ALG) }
        : await create(purpose);
      active.set(purpose, key);
      return key;
    },

    async publicKey(kid: string, purpose: KeyPurpose): Promise<KeyMaterial | undefined> {
      const cached = publicKeys.get(kid);
      if (cached) return cached;
      const [row] = await db
        .select({ publicJwk: signingKeys.publicJwk })
        .from(signingKeys)
        .where(and(eq(signingKeys.kid, kid), eq(signingKeys.purpose, purpose), isNull(signingKeys.retiredAt)));
      if (!row) return undefined;
      const key = await importJWK(row.publicJwk as JWK, ALG);
      publicKeys.set(kid, key);
      return key;
    },

    /**
     * The public key of `kid` only if the row's sealed private half opens under our master keys
     * (bound to its kid) and is that public key's pair: a key row written by someone with database
     * access alone (a forged anchor key) is not trusted. Undefined otherwise.
     */
    async trustedPublicKey(kid: string, purpose: KeyPurpose): Promise<KeyMaterial | undefined> {
      const [row] = await db
        .select()
        .from(signingKeys)
        .where(and(eq(signingKeys.kid, kid), eq(signingKeys.purpose, purpose), isNull(signingKeys.retiredAt)));
      if (!row) return undefined;
      let privateJwk: JWK;
      try {
        privateJwk = JSON.parse(unseal(keyring, row, `signing_keys:${row.kid}`)) as JWK;
      } catch {
        return undefined;
      }
      const publicJwk = row.publicJwk as JWK;
      if (privateJwk.n !== publicJwk.n || privateJwk.e !== publicJwk.e) return undefined;
      return importJWK(publicJwk, ALG);
    },

    async jwks(purpose: KeyPurpose): Promise<{ keys: JWK[] }> {
      await this.activeKey(purpose);
      const rows = await db
        .select({ publicJwk: signingKeys.publicJwk })
        .from(signingKeys)
        .where(and(eq(signingKeys.purpose, purpose), isNull(signingKeys.retiredAt)))
        .orderBy(desc(signingKeys.createdAt));
      return { keys: rows.map((row) => row.publicJwk as JWK) };
    },
  };
}

export type SigningKeyStore = ReturnType<typeof signingKeyStore>;

/** Re-wraps the sealed private keys under the active master key. */
export async function rewrapSigningKeys(tx: Executor, keyring: Keyring): Promise<number> {
  const rows = await tx.select().from(signingKeys).for('update');
  let count = 0;
  for (const row of rows) {
    if (row.keyId === keyring.activeKeyId) continue;
    await tx.update(signingKeys).set(rewrap(keyring, row)).where(eq(signingKeys.kid, row.kid));
    count++;
  }
  return count;
}

/**
 * The audit log's anchor signer: a compact JWS (RS256) with the active `audit_anchor` key, its
 * `kid` in the header; `verify` answers the payload when the key is one of ours (its sealed
 * private half opens and matches, see `trustedPublicKey`) and unretired.
 */
export function anchorSigner(keys: SigningKeyStore) {
  return {
    async sign(payload: Record<string, unknown>): Promise<string> {
      const key = await keys.activeKey('audit_anchor');
      return new CompactSign(new TextEncoder().encode(JSON.stringify(payload)))
        .setProtectedHeader({ alg: ALG, kid: key.kid })
        .sign(key.privateKey);
    },
    async verify(jws: string): Promise<Record<string, unknown> | undefined> {
      try {
        const { payload } = await compactVerify(jws, async (header) => {
          const key = header.kid ? await keys.trustedPublicKey(header.kid, 'audit_anchor') : undefined;
          if (!key) throw new Error('unknown anchor key');
          return key;
        });
        return JSON.parse(new TextDecoder().decode(payload)) as Record<string, unknown>;
      } catch {
        return undefined;
      }
    },
  };
}
