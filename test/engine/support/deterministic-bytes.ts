import { createCipheriv, createHash } from 'node:crypto';

/**
 * `length` random-looking but reproducible bytes derived from `seed` (the AES-256-CTR keystream
 * under sha256(seed)). Incompressible, so a layer made of them really costs its size on the wire,
 * and fast enough for tens of megabytes.
 */
export function deterministicBytes(seed: string, length: number): Buffer {
  const key = createHash('sha256').update(`image-keeper test bytes:${seed}`).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16, 0));
  return Buffer.concat([cipher.update(Buffer.alloc(length, 0)), cipher.final()]);
}
