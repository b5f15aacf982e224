import { StrKey } from '@stellar/stellar-base';
import { INT4_MAX } from '../../platform/http/integers.ts';

/**
 * Reads the part of TokenD's XDR (tokend/xdr: Transaction-entry.x, operation-manage-signer.x,
 * types.x) that wallet updates carry: a TransactionEnvelope whose operations are ManageSigner.
 * Any other operation type is refused, since this server only keeps signers.
 */
export type SignerChange =
  | { action: 'create' | 'update'; publicKey: string; roleId: number; weight: number; identity: number; details: string }
  | { action: 'remove'; publicKey: string };

export type DecodedEnvelope = {
  sourceAccount: string;
  salt: bigint;
  minTime: bigint;
  maxTime: bigint;
  operations: { sourceAccount: string | undefined; change: SignerChange }[];
  /** The Transaction's own XDR bytes: what signatures are made over (with the network id). */
  transactionXdr: Buffer;
  signatures: { hint: Buffer; signature: Buffer }[];
};

export class XdrError extends Error {}

const MANAGE_SIGNER_OPERATION = 38;
const MANAGE_SIGNER_ACTIONS = ['create', 'update', 'remove'] as const;

class Reader {
  private offset = 0;
  constructor(private readonly bytes: Buffer) {}

  get position() {
    return this.offset;
  }
  private take(length: number): Buffer {
    if (this.offset + length > this.bytes.length) throw new XdrError('envelope is truncated');
    const slice = this.bytes.subarray(this.offset, this.offset + length);
    this.offset += length;
    return slice;
  }
  int32() {
    return this.take(4).readInt32BE(0);
  }
  uint32() {
    return this.take(4).readUInt32BE(0);
  }
  uint64() {
    return this.take(8).readBigUInt64BE(0);
  }
  fixedOpaque(length: number) {
    const value = this.take(length);
    this.take((4 - (length % 4)) % 4);
    return Buffer.from(value);
  }
  varOpaque(max: number) {
    const length = this.uint32();
    if (length > max) throw new XdrError(`opaque value longer than ${max} bytes`);
    return this.fixedOpaque(length);
  }
  string(max = 0xffffffff) {
    return this.varOpaque(max).toString('utf8');
  }
  arrayLength(max: number) {
    const length = this.uint32();
    if (length > max) throw new XdrError(`array longer than ${max} items`);
    return length;
  }
  bool() {
    const value = this.int32();
    if (value !== 0 && value !== 1) throw new XdrError('invalid boolean');
    return value === 1;
  }
  emptyExt() {
    if (this.int32() !== 0) throw new XdrError('unsupported extension version');
  }
  publicKey() {
    if (this.int32() !== 0) throw new XdrError('unsupported key type');
    return StrKey.encodeEd25519PublicKey(this.fixedOpaque(32));
  }
  done() {
    if (this.offset !== this.bytes.length) throw new XdrError('unexpected bytes after the envelope');
  }
}

function readMemo(reader: Reader) {
  const type = reader.int32();
  if (type === 0) return;
  if (type === 1) reader.string(28);
  else if (type === 2) reader.uint64();
  else if (type === 3 || type === 4) reader.fixedOpaque(32);
  else throw new XdrError('invalid memo type');
}

function readSignerChange(reader: Reader): SignerChange {
  const action = MANAGE_SIGNER_ACTIONS[reader.int32()];
  if (!action) throw new XdrError('invalid manage signer action');
  const publicKey = reader.publicKey();
  if (action === 'remove') {
    reader.emptyExt();
    reader.emptyExt();
    return { action, publicKey };
  }
  const roleId = reader.uint64();
  const weight = reader.uint32();
  const identity = reader.uint32();
  const details = reader.string();
  reader.emptyExt();
  reader.emptyExt();
  if (roleId > BigInt(Number.MAX_SAFE_INTEGER)) throw new XdrError('role id out of range');
  // Stored in PostgreSQL integer and text columns: uint32 values past int4, or a NUL, cannot be.
  if (weight > INT4_MAX || identity > INT4_MAX) throw new XdrError('signer weight or identity out of range');
  if (details.includes('\0')) throw new XdrError('signer details must not contain NUL');
  return { action, publicKey, roleId: Number(roleId), weight, identity, details };
}

export function decodeEnvelope(base64: string): DecodedEnvelope {
  const bytes = Buffer.from(base64, 'base64');
  const reader = new Reader(bytes);
  const sourceAccount = reader.publicKey();
  const salt = reader.uint64();
  const minTime = reader.uint64();
  const maxTime = reader.uint64();
  readMemo(reader);
  const operations: DecodedEnvelope['operations'] = [];
  const operationCount = reader.arrayLength(100);
  for (let index = 0; index < operationCount; index++) {
    const operationSource = reader.bool() ? reader.publicKey() : undefined;
    const type = reader.int32();
    if (type !== MANAGE_SIGNER_OPERATION) throw new XdrError(`operation type ${type} is not supported; only manage signer is`);
    operations.push({ sourceAccount: operationSource, change: readSignerChange(reader) });
  }
  reader.emptyExt();
  const transactionXdr = bytes.subarray(0, reader.position);
  const signatures: DecodedEnvelope['signatures'] = [];
  const signatureCount = reader.arrayLength(20);
  for (let index = 0; index < signatureCount; index++) {
    signatures.push({ hint: reader.fixedOpaque(4), signature: reader.varOpaque(64) });
  }
  reader.done();
  return { sourceAccount, salt, minTime, maxTime, operations, transactionXdr: Buffer.from(transactionXdr), signatures };
}
