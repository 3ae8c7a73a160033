// How one CreateFeedback call reaches the service. The default speaks the Connect protocol with JSON
// bodies over fetch: one POST per call, which browsers, Node 20 and any proxy understand, and which
// needs no protobuf runtime in the bundle. The `@feedback-service/web/connect` entry point provides
// the same interface over any @connectrpc/connect transport (connect-web, connect-node, gRPC-Web).
import type { CreateFeedbackRequestJson, CreateFeedbackResponseJson } from "./gen/feedback/v1/feedback_service_pb.js";
import type { FeedbackJson } from "./gen/feedback/v1/feedback_pb.js";
import { errorFromConnectResponse, FeedbackError } from "./errors.js";

/** The path of the one RPC the SDK calls, below the service's base URL. */
export const CREATE_FEEDBACK_PATH = "/feedback.v1.FeedbackService/CreateFeedback";

/** The largest body sent with fetch keepalive (browsers allow 64 KiB in flight per page). */
export const KEEPALIVE_MAX_BYTES = 48 * 1024;

/** Per-call options of a Sender. */
export interface SendOptions {
  /** The end-user feedback token (or, on a backend, an API key): sent as `Authorization: Bearer`. */
  token?: string | undefined;
  /** Let the request outlive the page (fetch `keepalive`), unless its body is too big for that. */
  keepalive?: boolean | undefined;
  /** Give up after this long (sent to the server as the call's deadline, too). */
  timeoutMs?: number | undefined;
}

/** Sends one CreateFeedback request; resolves with the stored feedback, rejects with a FeedbackError. */
export type Sender = (request: CreateFeedbackRequestJson, options: SendOptions) => Promise<FeedbackJson>;

/** A Sender speaking the Connect protocol (JSON) to `baseUrl` with `fetch`. */
export function connectJsonSender(baseUrl: string, fetchImpl?: typeof fetch): Sender {
  const url = baseUrl.replace(/\/+$/, "") + CREATE_FEEDBACK_PATH;
  return async (request, { token, keepalive, timeoutMs }) => {
    const headers: Record<string, string> = { "Content-Type": "application/json", "Connect-Protocol-Version": "1" };
    if (token) headers.Authorization = `Bearer ${token}`;
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    if (timeoutMs) {
      headers["Connect-Timeout-Ms"] = String(timeoutMs);
      timer = setTimeout(() => controller.abort(), timeoutMs);
    }
    const json = JSON.stringify(request);
    let status: number;
    let body: unknown;
    try {
      const response = await (fetchImpl ?? fetch)(url, {
        method: "POST",
        headers,
        body: json,
        // Browsers refuse keepalive bodies beyond 64 KiB (in flight, all together): big ones go without.
        keepalive: keepalive === true && new TextEncoder().encode(json).length <= KEEPALIVE_MAX_BYTES,
        credentials: "omit", // the token is the credential; cookies are never needed
        signal: controller.signal,
      });
      status = response.status;
      const text = await response.text();
      try {
        body = text ? JSON.parse(text) : undefined;
      } catch {
        body = undefined;
      }
      if (response.ok) {
        if (body === undefined) throw new FeedbackError("internal", `the feedback service sent no JSON (HTTP ${status})`);
        return (body as CreateFeedbackResponseJson).feedback ?? {};
      }
    } catch (cause) {
      if (cause instanceof FeedbackError) throw cause;
      if (controller.signal.aborted) {
        throw new FeedbackError("deadline_exceeded", `no answer from the feedback service within ${timeoutMs} ms`, {
          network: true,
          cause,
        });
      }
      // fetch rejects without telling why: offline, server down, or the origin is not allowed (CORS).
      throw new FeedbackError("unavailable", "the feedback service could not be reached (network error, or this site is not allowed to send feedback)", {
        network: true,
        cause,
      });
    } finally {
      clearTimeout(timer);
    }
    throw errorFromConnectResponse(status, body);
  };
}
