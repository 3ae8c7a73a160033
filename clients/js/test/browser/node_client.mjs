#!/usr/bin/env node
// The SDK in Node 20 against the real service, as tests/browser/test_widget.py starts it: tokens minted
// by @feedback-service/web/node, sent by the default sender (Connect JSON over Node's fetch) and through
// @connectrpc/connect-node transports (Connect binary, gRPC-Web, gRPC on the gRPC port).
//
//   node node_client.mjs '{"http": "http://127.0.0.1:8080", "grpc": "http://127.0.0.1:50051", "secret": "...", ...}'
//
// Prints one JSON line with what each call returned; the pytest side checks the stored feedback.
import { createConnectTransport, createGrpcTransport, createGrpcWebTransport } from "@connectrpc/connect-node";
import { createFeedbackClient, FeedbackError } from "../../dist/feedback-web.js";
import { connectSender } from "../../dist/connect.js";
import { mintFeedbackToken } from "../../dist/node.js";

const config = JSON.parse(process.argv[2]);
const token = (traceId) =>
  mintFeedbackToken(config.secret, {
    project: config.project,
    traceId,
    userId: config.userId,
    keys: ["thumbs", "helpfulness"],
    valueKinds: ["thumb", "score", "comment"],
    model: config.model,
    modelVersion: config.modelVersion,
  });

const senders = {
  fetch: undefined, // the default: Connect JSON over fetch
  connect: connectSender(createConnectTransport({ baseUrl: config.http, httpVersion: "1.1", useBinaryFormat: true })),
  grpcweb: connectSender(createGrpcWebTransport({ baseUrl: config.http, httpVersion: "1.1" })),
  grpc: connectSender(createGrpcTransport({ baseUrl: config.grpc })),
};

const results = {};
for (const [name, sender] of Object.entries(senders)) {
  const traceId = config.traceIds[name];
  const client = createFeedbackClient({ baseUrl: config.http, token: token(traceId), sender, retry: { maxAttempts: 1 } });
  const up = await client.thumbsUp();
  const down = await client.thumbsDown({ comment: `sent by ${name}` });
  let refused;
  try {
    await client.score("helpfulness", Number.NaN);
  } catch (error) {
    if (!(error instanceof FeedbackError)) throw error;
    refused = { code: error.code, reason: error.reason, fieldViolations: error.fieldViolations, message: error.message };
  }
  results[name] = { up: up.feedbackId, down: down.status === "stored" ? down.feedback : down, refused };
  client.close();
}
console.log(JSON.stringify(results));
