import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';
import type { PhiKey } from '../config/config';

const VERSION = 'v1';

/**
 * Encrypts PHI with AES-256-GCM. Ciphertext is `v1.<keyId>.<iv>.<ciphertext+tag>` (base64url parts) so
 * a value names the key that sealed it: the first key encrypts, every key decrypts, and rotation
 * re-encrypts at leisure.
 */
export class KeyRing {
  private readonly byId: Map<string, Buffer>;
  private readonly current: PhiKey;

  constructor(
    keys: PhiKey[],
    private readonly indexKey: Buffer,
  ) {
    if (keys.length === 0) throw new Error('a key ring needs at least one key');
    this.current = keys[0];
    this.byId = new Map(keys.map((k) => [k.id, k.key]));
  }

  get currentKeyId(): string {
    return this.current.id;
  }

  encrypt(plaintext: string): string {
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.current.key, iv);
    cipher.setAAD(Buffer.from(this.current.id));
    const sealed = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final(), cipher.getAuthTag()]);
    return [VERSION, this.current.id, iv.toString('base64url'), sealed.toString('base64url')].join('.');
  }

  decrypt(ciphertext: string): string {
    const [version, keyId, iv, sealed] = ciphertext.split('.');
    const key = this.byId.get(keyId);
    if (version !== VERSION || !key || !iv || !sealed) {
      throw new Error(`cannot decrypt: unknown format or key id "${keyId ?? ''}"`);
    }
    const body = Buffer.from(sealed, 'base64url');
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(iv, 'base64url'));
    decipher.setAAD(Buffer.from(keyId));
    decipher.setAuthTag(body.subarray(body.length - 16));
    return Buffer.concat([decipher.update(body.subarray(0, body.length - 16)), decipher.final()]).toString(
      'utf8',
    );
  }

  encryptOptional(plaintext: string | null | undefined): string | null {
    return plaintext === null || plaintext === undefined ? null : this.encrypt(plaintext);
  }

  decryptOptional(ciphertext: string | null | undefined): string | null {
    return ciphertext === null || ciphertext === undefined ? null : this.decrypt(ciphertext);
  }

  /** True when a value was sealed under a key other than the current one. */
  needsRotation(ciphertext: string): boolean {
    return ciphertext.split('.')[1] !== this.current.id;
  }

  /**
   * A keyed hash of consent evidence, chained in its consent event, so the evidence can be proved unchanged
   * although its ciphertext is rewritten by key rotation. Domain-separated from the phone index.
   */
  evidenceMac(evidence: string): string {
    return createHmac('sha256', this.indexKey).update(`consent-evidence\n${evidence}`).digest('hex');
  }

  /** A deterministic keyed hash, so a phone can be found without storing it in the clear. */
  blindIndex(value: string): string {
    return createHmac('sha256', this.indexKey).update(value).digest('hex');
  }
}
