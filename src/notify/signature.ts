import { createHmac, timingSafeEqual } from "node:crypto";

/** Header carrying the signature: `v1=<hex HMAC-SHA256(secret, timestamp + "." + body)>`. */
export const SIGNATURE_HEADER = "Releasegate-Signature";
/** Header carrying the signing time, Unix seconds. */
export const TIMESTAMP_HEADER = "Releasegate-Timestamp";
/** Header carrying the event id: the same on every attempt of a delivery (idempotency key). */
export const EVENT_ID_HEADER = "Releasegate-Event-Id";
/** The conventional idempotency header, with the same event id. */
export const IDEMPOTENCY_HEADER = "Idempotency-Key";
/** Header carrying the event kind. */
export const EVENT_KIND_HEADER = "Releasegate-Event-Kind";

/** The `Releasegate-Signature` value of `body` sent at `timestamp` (Unix seconds). */
export function signBody(secret: string, timestamp: number, body: string): string {
  return `v1=${createHmac("sha256", secret).update(`${timestamp}.${body}`).digest("hex")}`;
}

/** Checks a signature as a receiver would (constant-time compare). */
export function verifySignature(secret: string, timestamp: string, body: string, signature: string): boolean {
  const expected = Buffer.from(signBody(secret, Number(timestamp), body));
  const given = Buffer.from(signature);
  return expected.length === given.length && timingSafeEqual(expected, given);
}
