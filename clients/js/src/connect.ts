// `@feedback-service/web/connect`: the SDK over any @connectrpc/connect transport, and the generated
// feedback.v1 schemas for calling the rest of the API.
//
//   import { createConnectTransport } from "@connectrpc/connect-node"; // or -web, or createGrpcWebTransport
//   import { createFeedbackClient } from "@feedback-service/web";
//   import { connectSender } from "@feedback-service/web/connect";
//   const transport = createConnectTransport({ baseUrl: "http://127.0.0.1:8080", httpVersion: "1.1" });
//   const client = createFeedbackClient({ baseUrl: "http://127.0.0.1:8080", token, sender: connectSender(transport) });
//
// The default sender of the browser bundle speaks the same Connect protocol without the protobuf
// runtime (which alone is larger than the bundle's budget); this entry point brings
// @bufbuild/protobuf and @connectrpc/connect (peer dependencies) for binary encoding, gRPC-Web and
// Node's HTTP/2 transport.
import { Code, ConnectError, createClient, type Transport } from "@connectrpc/connect";
import { fromJson, toJson } from "@bufbuild/protobuf";
import { CreateFeedbackRequestSchema, FeedbackService } from "./gen/feedback/v1/feedback_service_pb.js";
import { FeedbackSchema, type FeedbackJson } from "./gen/feedback/v1/feedback_pb.js";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "./gen/google/rpc/error_details_pb.js";
import { FeedbackError, type FeedbackErrorCode } from "./errors.js";
import type { Sender } from "./sender.js";

export * from "./gen/feedback/v1/feedback_pb.js";
export * from "./gen/feedback/v1/feedback_service_pb.js";
export * from "./gen/feedback/v1/aggregates_pb.js";
export * from "./gen/google/rpc/error_details_pb.js";

/** "InvalidArgument" -> "invalid_argument", the Connect protocol's spelling. */
function codeName(code: Code): FeedbackErrorCode {
  return Code[code].replace(/[A-Z]/g, (c, at: number) => (at ? "_" : "") + c.toLowerCase()) as FeedbackErrorCode;
}

/** The FeedbackError of anything a Connect call threw, with the google.rpc details decoded. */
export function feedbackErrorOf(thrown: unknown): FeedbackError {
  const error = ConnectError.from(thrown);
  const retry = error.findDetails(RetryInfoSchema)[0]?.retryDelay;
  // fetch (connect-web, Node's fetch) rejects with a TypeError when no response arrived at all.
  // (connect-node reports a refused or dropped connection as UNAVAILABLE itself.)
  const network = error.code === Code.Unknown && error.cause instanceof TypeError;
  return new FeedbackError(network ? "unavailable" : codeName(error.code), error.rawMessage, {
    reason: error.findDetails(ErrorInfoSchema)[0]?.reason,
    fieldViolations: error
      .findDetails(BadRequestSchema)
      .flatMap((b) => b.fieldViolations.map(({ field, description }) => ({ field, description }))),
    retryDelayMs: retry ? Number(retry.seconds) * 1000 + Math.round(retry.nanos / 1e6) : undefined,
    network,
    cause: thrown,
  });
}

/** A Sender over a Connect transport (connect-web, connect-node; Connect, gRPC-Web or gRPC protocol). */
export function connectSender(transport: Transport): Sender {
  const client = createClient(FeedbackService, transport);
  return async (request, { token, timeoutMs }) => {
    try {
      const response = await client.createFeedback(fromJson(CreateFeedbackRequestSchema, request), {
        headers: token ? { authorization: `Bearer ${token}` } : {},
        ...(timeoutMs ? { timeoutMs } : {}),
      });
      return response.feedback ? (toJson(FeedbackSchema, response.feedback) as FeedbackJson) : {};
    } catch (thrown) {
      throw feedbackErrorOf(thrown);
    }
  };
}
