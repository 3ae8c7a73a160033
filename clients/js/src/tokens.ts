// End-user feedback tokens for Node backends: `import { mintFeedbackToken } from "@feedback-service/web/node"`.
//
// Server-side only: minting needs the shared secret (FEEDBACK_TOKEN_SECRETS of the service), which must
// never reach a browser; this entry point is not part of the browser bundle. The tokens are
// byte-for-byte those of the Python SDK (clients/python/src/feedback_client/tokens.py):
// clients/testdata/feedback_token_vectors.json holds the shared test vectors.
//
// Format: `fbt1.<payload>.<signature>`, both base64url without padding; the payload is JSON with
// sorted keys and no spaces, non-ASCII characters escaped as in Python's json.dumps; the signature
// is HMAC-SHA256 over `fbt1.<payload>`.
import { createHash, createHmac } from "node:crypto";

export const TOKEN_PREFIX = "fbt1";
export const DEFAULT_TTL_S = 24 * 3600;
export const MAX_TTL_S = 7 * 24 * 3600;
export const VALUE_KINDS = ["thumb", "score", "label", "comment", "correction"] as const;
export type ValueKind = (typeof VALUE_KINDS)[number];

export interface MintOptions {
  project: string;
  traceId: string;
  /** Your user's id; only its hash (per project) goes into the token and becomes the feedback's author. */
  userId: string;
  /** The feedback keys the user may send, e.g. ["thumbs"]. */
  keys: readonly string[];
  /** The kinds of value the user may send (default: all of them). */
  valueKinds?: readonly ValueKind[];
  spanId?: string;
  model?: string;
  modelVersion?: string;
  /** Lifetime in seconds: more than 0, at most 7 days (default 24 h). */
  ttlS?: number;
  /** The time of minting in Unix seconds (default: now). */
  now?: number;
}

/** A short, public name of a signing secret, so the server picks the right one during rotation. */
export function secretId(secret: string): string {
  return createHash("sha256").update(secret, "utf8").digest("hex").slice(0, 8);
}

/** The pseudonymous author id of an end user: the raw id never leaves the backend. */
export function hashUserId(project: string, userId: string): string {
  return "u_" + createHash("sha256").update(`${project}\u0000${userId}`, "utf8").digest("hex").slice(0, 32);
}

/** JSON as Python's json.dumps(ensure_ascii=True) writes it: every character outside ' '..'~' escaped. */
function asciiJson(value: unknown): string {
  return JSON.stringify(value).replace(/[\u007f-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

/** A signed end-user feedback token; `userId` is hashed before it goes in. */
export function mintFeedbackToken(secret: string, options: MintOptions): string {
  const ttl = options.ttlS ?? DEFAULT_TTL_S;
  if (!(Number.isInteger(ttl) && ttl > 0 && ttl <= MAX_TTL_S)) {
    throw new RangeError(`ttlS must be between 1 and ${MAX_TTL_S} seconds (7 days), got ${ttl}`);
  }
  const kinds = options.valueKinds ?? VALUE_KINDS;
  if (kinds.length === 0 || kinds.some((k) => !(VALUE_KINDS as readonly string[]).includes(k))) {
    throw new RangeError(`valueKinds must be a non-empty subset of ${VALUE_KINDS.join(", ")}, got ${JSON.stringify(kinds)}`);
  }
  if (options.keys.length === 0) throw new RangeError("keys must name at least one feedback key");
  const issued = Math.trunc(options.now ?? Date.now() / 1000);
  // In the order of Python's sort_keys=True.
  const payload = {
    exp: issued + ttl,
    keys: [...options.keys],
    kid: secretId(secret),
    kinds: [...kinds],
    mdl: options.model ?? "",
    prj: options.project,
    sid: options.spanId ?? "",
    tid: options.traceId,
    usr: hashUserId(options.project, options.userId),
    ver: options.modelVersion ?? "",
  };
  const signed = `${TOKEN_PREFIX}.${Buffer.from(asciiJson(payload), "utf8").toString("base64url")}`;
  return `${signed}.${createHmac("sha256", Buffer.from(secret, "utf8")).update(signed, "utf8").digest("base64url")}`;
}
