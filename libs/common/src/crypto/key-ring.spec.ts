import { KeyRing } from './key-ring';

const k = (byte: number) => Buffer.alloc(32, byte);

describe('KeyRing', () => {
  const ring = new KeyRing([{ id: 'k1', key: k(1) }], k(9));

  it('round-trips text, unicode included, and never stores it in the clear', () => {
    const sealed = ring.encrypt('+15551234567 José Núñez');
    expect(sealed).not.toContain('5551234567');
    expect(sealed.startsWith('v1.k1.')).toBe(true);
    expect(ring.decrypt(sealed)).toBe('+15551234567 José Núñez');
  });

  it('uses a fresh nonce each time', () => {
    expect(ring.encrypt('same')).not.toBe(ring.encrypt('same'));
  });

  it('rejects tampered ciphertext', () => {
    const sealed = ring.encrypt('hello');
    const parts = sealed.split('.');
    const body = Buffer.from(parts[3], 'base64url');
    body[0] ^= 1;
    parts[3] = body.toString('base64url');
    expect(() => ring.decrypt(parts.join('.'))).toThrow();
  });

  it('decrypts under an old key after rotation and reports what needs re-encrypting', () => {
    const old = ring.encrypt('old secret');
    const rotated = new KeyRing(
      [
        { id: 'k2', key: k(2) },
        { id: 'k1', key: k(1) },
      ],
      k(9),
    );
    expect(rotated.decrypt(old)).toBe('old secret');
    expect(rotated.needsRotation(old)).toBe(true);
    expect(rotated.needsRotation(rotated.encrypt('new'))).toBe(false);
  });

  it('refuses a value whose key was removed, naming the key id', () => {
    const other = new KeyRing([{ id: 'k3', key: k(3) }], k(9));
    expect(() => other.decrypt(ring.encrypt('x'))).toThrow(/k1/);
  });

  it('gives a stable blind index that depends on the index key', () => {
    expect(ring.blindIndex('+15551234567')).toBe(ring.blindIndex('+15551234567'));
    expect(ring.blindIndex('+15551234567')).not.toBe(
      new KeyRing([{ id: 'k1', key: k(1) }], k(8)).blindIndex('+15551234567'),
    );
  });
});
