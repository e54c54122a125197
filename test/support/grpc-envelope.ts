/** gRPC's length-prefixed message framing, for tests that write raw HTTP/2 bodies. */

/** Flag byte of a compressed message (grpc-encoding applies to it). */
export const COMPRESSED = 1;

/**
 * One length-prefixed message: flags, big-endian length, payload.
 * `lengthDelta` makes the prefix lie about the payload's length (fuzzing).
 */
export function envelope(payload: Uint8Array, flags = 0, lengthDelta = 0): Buffer {
  const out = Buffer.alloc(5 + payload.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(Math.max(0, payload.length + lengthDelta), 1);
  out.set(payload, 5);
  return out;
}
