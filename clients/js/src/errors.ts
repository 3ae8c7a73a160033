// Errors of the feedback service, as the SDK hands them to callers: one class, FeedbackError, with the
// Connect/gRPC code, the message the server wrote, and the google.rpc details it attached (ErrorInfo
// reason, BadRequest field violations, RetryInfo delay).
//
// The details arrive as binary protobuf in the Connect error JSON. They are decoded here by a small
// reader instead of @bufbuild/protobuf's reflection runtime, which alone is larger than the whole
// widget bundle may be; test/details.test.ts checks this reader against the generated schemas.

/** The Connect/gRPC status codes, as the Connect protocol spells them. */
export type FeedbackErrorCode =
  | "canceled"
  | "unknown"
  | "invalid_argument"
  | "deadline_exceeded"
  | "not_found"
  | "already_exists"
  | "permission_denied"
  | "resource_exhausted"
  | "failed_precondition"
  | "aborted"
  | "out_of_range"
  | "unimplemented"
  | "internal"
  | "unavailable"
  | "data_loss"
  | "unauthenticated";

/** One bad field of a refused request (google.rpc.BadRequest.FieldViolation). */
export interface FieldViolation {
  /** The path of the field in the request, e.g. "feedback.score". */
  field: string;
  /** Why the value is bad. */
  description: string;
}

/** What a FeedbackError carries besides code and message. */
export interface FeedbackErrorDetails {
  /** The stable reason of google.rpc.ErrorInfo, e.g. "INVALID_REQUEST", "UNAUTHENTICATED". */
  reason?: string | undefined;
  /** Every bad field, for INVALID_ARGUMENT. */
  fieldViolations?: FieldViolation[] | undefined;
  /** How long the server asks the client to wait before retrying (google.rpc.RetryInfo). */
  retryDelayMs?: number | undefined;
  /** True when no response arrived: network down, server unreachable, or refused by CORS. */
  network?: boolean | undefined;
  cause?: unknown;
}

/** A call that failed: the server refused it, or it could not reach the server. */
export class FeedbackError extends Error {
  override readonly name = "FeedbackError";
  readonly code: FeedbackErrorCode;
  readonly reason: string | undefined;
  readonly fieldViolations: readonly FieldViolation[];
  readonly retryDelayMs: number | undefined;
  readonly network: boolean;

  constructor(code: FeedbackErrorCode, message: string, details: FeedbackErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.reason = details.reason;
    this.fieldViolations = details.fieldViolations ?? [];
    this.retryDelayMs = details.retryDelayMs;
    this.network = details.network ?? false;
  }

  /** Whether sending the same feedback again (same feedback_id) may succeed. */
  get retryable(): boolean {
    return this.network || this.code === "unavailable" || this.code === "resource_exhausted";
  }
}

const CODES: ReadonlySet<string> = new Set<FeedbackErrorCode>([
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
]);

/** The code of an HTTP status without a Connect error body (a proxy's page, say); Connect spec table. */
export function codeOfHttpStatus(status: number): FeedbackErrorCode {
  switch (status) {
    case 400:
      return "internal";
    case 401:
      return "unauthenticated";
    case 403:
      return "permission_denied";
    case 404:
      return "unimplemented";
    case 429:
    case 502:
    case 503:
    case 504:
      return "unavailable";
    default:
      return "unknown";
  }
}

// -- google.rpc details: a minimal protobuf wire reader ----------------------------------------------

type Fields = Map<number, (number | Uint8Array)[]>;

/** The fields of one protobuf message: varints as numbers, length-delimited values as bytes. */
export function readFields(bytes: Uint8Array): Fields {
  const fields: Fields = new Map();
  let at = 0;
  const varint = (): number => {
    let value = 0;
    let scale = 1;
    for (;;) {
      if (at >= bytes.length) throw new RangeError("truncated protobuf varint");
      const byte = bytes[at++] as number;
      value += (byte & 0x7f) * scale; // arithmetic, not shifts: int64 seconds do not fit 32 bits
      if (byte < 0x80) return value;
      scale *= 128;
    }
  };
  while (at < bytes.length) {
    const tag = varint();
    const number = Math.floor(tag / 8);
    let value: number | Uint8Array;
    switch (tag & 7) {
      case 0:
        value = varint();
        break;
      case 1:
        at += 8;
        continue;
      case 2: {
        const length = varint();
        if (at + length > bytes.length) throw new RangeError("truncated protobuf field");
        value = bytes.subarray(at, at + length);
        at += length;
        break;
      }
      case 5:
        at += 4;
        continue;
      default:
        throw new RangeError(`unsupported protobuf wire type ${tag & 7}`);
    }
    const list = fields.get(number);
    if (list) list.push(value);
    else fields.set(number, [value]);
  }
  return fields;
}

const utf8 = new TextDecoder();

function text(fields: Fields, number: number): string {
  const value = fields.get(number)?.at(-1);
  return value instanceof Uint8Array ? utf8.decode(value) : "";
}

function messages(fields: Fields, number: number): Fields[] {
  return (fields.get(number) ?? []).filter((v): v is Uint8Array => v instanceof Uint8Array).map(readFields);
}

function base64Bytes(encoded: string): Uint8Array {
  const standard = encoded.replace(/-/g, "+").replace(/_/g, "/");
  const binary = atob(standard + "=".repeat((4 - (standard.length % 4)) % 4));
  return Uint8Array.from(binary, (c) => c.charCodeAt(0));
}

/** One detail of a Connect error: its type name and its binary value, base64-encoded. */
export interface ErrorDetailJson {
  type?: string;
  value?: string;
}

/** Reason, field violations and retry delay out of a Connect error's details; unknown types are skipped. */
export function decodeErrorDetails(details: readonly ErrorDetailJson[]): FeedbackErrorDetails {
  const found: FeedbackErrorDetails = {};
  for (const detail of details) {
    let fields: Fields;
    try {
      fields = readFields(base64Bytes(detail.value ?? ""));
    } catch {
      continue; // a detail we cannot read must not hide the error itself
    }
    switch (detail.type) {
      case "google.rpc.ErrorInfo":
        found.reason = text(fields, 1);
        break;
      case "google.rpc.BadRequest":
        found.fieldViolations = messages(fields, 1).map((v) => ({ field: text(v, 1), description: text(v, 2) }));
        break;
      case "google.rpc.RetryInfo": {
        const delay = messages(fields, 1)[0];
        if (delay) {
          const seconds = Number(delay.get(1)?.at(-1) ?? 0);
          const nanos = Number(delay.get(2)?.at(-1) ?? 0);
          found.retryDelayMs = seconds * 1000 + Math.round(nanos / 1e6);
        }
        break;
      }
    }
  }
  return found;
}

/** The FeedbackError of a Connect protocol error response (`{code, message, details}`). */
export function errorFromConnectResponse(status: number, body: unknown): FeedbackError {
  const json = typeof body === "object" && body !== null ? (body as Record<string, unknown>) : {};
  const code = typeof json.code === "string" && CODES.has(json.code) ? (json.code as FeedbackErrorCode) : undefined;
  const message = typeof json.message === "string" ? json.message : "";
  const details = Array.isArray(json.details) ? decodeErrorDetails(json.details as ErrorDetailJson[]) : {};
  if (code === undefined) {
    return new FeedbackError(codeOfHttpStatus(status), message || `HTTP ${status} from the feedback service`, details);
  }
  return new FeedbackError(code, message || code.replace(/_/g, " "), details);
}
