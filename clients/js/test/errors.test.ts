import { create, toBinary } from "@bufbuild/protobuf";
import { base64Encode } from "@bufbuild/protobuf/wire";
import { describe, expect, it } from "vitest";
import { codeOfHttpStatus, decodeErrorDetails, errorFromConnectResponse, FeedbackError } from "../src/errors.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";

// The bundle decodes google.rpc details with its own small reader; the generated schemas (what the
// server's protobuf writes) are the reference it must agree with.
const badRequest = create(BadRequestSchema, {
  fieldViolations: [
    { field: "feedback.score", description: "must be a finite number", reason: "NOT_FINITE" },
    { field: "feedback.trace_id", description: "is required — ünïcode" },
  ],
});
const errorInfo = create(ErrorInfoSchema, { reason: "INVALID_REQUEST", domain: "feedback.v1", metadata: { a: "b" } });
const retryInfo = create(RetryInfoSchema, { retryDelay: { seconds: 3n, nanos: 250_000_000 } });
const detail = (type: string, bytes: Uint8Array, encoding: "std" | "std_raw" | "url" = "std_raw") => ({
  type,
  value: base64Encode(bytes, encoding),
});

describe("decodeErrorDetails", () => {
  it("reads ErrorInfo, BadRequest and RetryInfo as @bufbuild/protobuf writes them", () => {
    const found = decodeErrorDetails([
      detail("google.rpc.ErrorInfo", toBinary(ErrorInfoSchema, errorInfo)),
      detail("google.rpc.BadRequest", toBinary(BadRequestSchema, badRequest), "std"),
      detail("google.rpc.RetryInfo", toBinary(RetryInfoSchema, retryInfo), "url"),
    ]);
    expect(found).toEqual({
      reason: "INVALID_REQUEST",
      fieldViolations: [
        { field: "feedback.score", description: "must be a finite number" },
        { field: "feedback.trace_id", description: "is required — ünïcode" },
      ],
      retryDelayMs: 3250,
    });
  });

  it("reads retry delays beyond 32 bits of seconds", () => {
    const long = create(RetryInfoSchema, { retryDelay: { seconds: 5_000_000_000n } });
    expect(decodeErrorDetails([detail("google.rpc.RetryInfo", toBinary(RetryInfoSchema, long))]).retryDelayMs).toBe(5e12);
  });

  it("skips unknown and unreadable details", () => {
    expect(
      decodeErrorDetails([
        { type: "google.rpc.DebugInfo", value: "CgVoZWxsbw" },
        { type: "google.rpc.BadRequest", value: "Cg" }, // truncated
        { type: "google.rpc.ErrorInfo" },
      ]),
    ).toEqual({ reason: "" });
  });
});

describe("errorFromConnectResponse", () => {
  it("keeps the server's code and message and decodes the details", () => {
    const error = errorFromConnectResponse(400, {
      code: "invalid_argument",
      message: "feedback.score: must be a finite number",
      details: [detail("google.rpc.BadRequest", toBinary(BadRequestSchema, badRequest))],
    });
    expect(error).toBeInstanceOf(FeedbackError);
    expect(error.code).toBe("invalid_argument");
    expect(error.message).toBe("feedback.score: must be a finite number");
    expect(error.fieldViolations.map((v) => v.field)).toEqual(["feedback.score", "feedback.trace_id"]);
    expect(error.retryable).toBe(false);
  });

  it("makes RESOURCE_EXHAUSTED with RetryInfo retryable after the server's delay", () => {
    const error = errorFromConnectResponse(429, {
      code: "resource_exhausted",
      message: "over the rate limit",
      details: [detail("google.rpc.RetryInfo", toBinary(RetryInfoSchema, retryInfo))],
    });
    expect([error.code, error.retryable, error.retryDelayMs]).toEqual(["resource_exhausted", true, 3250]);
  });

  it("falls back to the HTTP status when the body is no Connect error", () => {
    expect(errorFromConnectResponse(503, undefined).code).toBe("unavailable");
    expect(errorFromConnectResponse(401, "<html>").code).toBe("unauthenticated");
    expect(errorFromConnectResponse(500, { code: "not-a-code" }).message).toBe("HTTP 500 from the feedback service");
    expect([400, 403, 404, 429, 502, 504, 418].map(codeOfHttpStatus)).toEqual([
      "internal",
      "permission_denied",
      "unimplemented",
      "unavailable",
      "unavailable",
      "unavailable",
      "unknown",
    ]);
  });
});
