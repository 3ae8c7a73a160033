import { create } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import { describe, expect, it } from "vitest";
import { feedbackErrorOf } from "../src/connect.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../src/gen/google/rpc/error_details_pb.js";

describe("feedbackErrorOf (the ./connect entry point)", () => {
  it("turns a ConnectError and its google.rpc details into a FeedbackError", () => {
    const error = feedbackErrorOf(
      new ConnectError("over the rate limit", Code.ResourceExhausted, undefined, [
        { desc: ErrorInfoSchema, value: create(ErrorInfoSchema, { reason: "RATE_LIMITED" }) },
        { desc: RetryInfoSchema, value: create(RetryInfoSchema, { retryDelay: { seconds: 1n, nanos: 500_000_000 } }) },
        {
          desc: BadRequestSchema,
          value: create(BadRequestSchema, { fieldViolations: [{ field: "feedback.key", description: "is required" }] }),
        },
      ]),
    );
    expect(error).toMatchObject({
      code: "resource_exhausted",
      message: "over the rate limit",
      reason: "RATE_LIMITED",
      retryDelayMs: 1500,
      fieldViolations: [{ field: "feedback.key", description: "is required" }],
      network: false,
    });
    expect(error.retryable).toBe(true);
  });

  it("spells codes as the Connect protocol does and treats a failed fetch as a network error", () => {
    expect(feedbackErrorOf(new ConnectError("x", Code.InvalidArgument)).code).toBe("invalid_argument");
    expect(feedbackErrorOf(new ConnectError("x", Code.Unauthenticated)).code).toBe("unauthenticated");
    const offline = feedbackErrorOf(new ConnectError("fetch failed", Code.Unknown, undefined, undefined, new TypeError("fetch failed")));
    expect([offline.code, offline.network, offline.retryable]).toEqual(["unavailable", true, true]);
  });
});
