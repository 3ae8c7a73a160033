import { describe, expect, it } from "vitest";
import { FeedbackError } from "../src/errors.js";
import { connectJsonSender, KEEPALIVE_MAX_BYTES } from "../src/sender.js";

// What the default sender puts on the wire. (Its answers from the real service are proven by
// tests/browser/, against the service itself.)
function capture() {
  const requests: { url: string; init: RequestInit }[] = [];
  const fetch = (async (url: string, init: RequestInit) => {
    requests.push({ url, init });
    throw new TypeError("Failed to fetch");
  }) as unknown as typeof globalThis.fetch;
  return { requests, fetch };
}

describe("connectJsonSender", () => {
  it("POSTs Connect JSON with the token as Authorization: Bearer, the header gRPC uses too", async () => {
    const { requests, fetch } = capture();
    const send = connectJsonSender("http://127.0.0.1:8080/", fetch);
    const error = await send({ feedback: { key: "thumbs", thumb: "THUMB_UP" } }, { token: "fbt1.x", timeoutMs: 5000 }).catch((e) => e);
    expect(requests).toHaveLength(1);
    const [{ url, init }] = requests as [{ url: string; init: RequestInit }];
    expect(url).toBe("http://127.0.0.1:8080/feedback.v1.FeedbackService/CreateFeedback");
    expect(init.method).toBe("POST");
    expect(init.headers).toEqual({
      "Content-Type": "application/json",
      "Connect-Protocol-Version": "1",
      "Connect-Timeout-Ms": "5000",
      Authorization: "Bearer fbt1.x",
    });
    expect(JSON.parse(init.body as string)).toEqual({ feedback: { key: "thumbs", thumb: "THUMB_UP" } });
    expect([init.keepalive, init.credentials]).toEqual([false, "omit"]);
    expect(error).toBeInstanceOf(FeedbackError);
    expect([error.code, error.network, error.retryable]).toEqual(["unavailable", true, true]);
  });

  it("asks for keepalive, except for bodies too big for it", async () => {
    const { requests, fetch } = capture();
    const send = connectJsonSender("https://f.example.com", fetch);
    await send({}, { keepalive: true }).catch(() => undefined);
    await send({ feedback: { comment: "é".repeat(KEEPALIVE_MAX_BYTES / 2) } }, { keepalive: true }).catch(() => undefined);
    expect(requests.map((r) => r.init.keepalive)).toEqual([true, false]);
    expect(requests[0]!.init.headers).not.toHaveProperty("Authorization");
  });

  it("gives up after the timeout with DEADLINE_EXCEEDED", async () => {
    const hanging = ((_: string, init: RequestInit) =>
      new Promise((_resolve, reject) => init.signal?.addEventListener("abort", () => reject(new DOMException("aborted", "AbortError"))))) as unknown as typeof fetch;
    const error = await connectJsonSender("http://x", hanging)({}, { timeoutMs: 20 }).catch((e) => e);
    expect([error.code, error.retryable]).toEqual(["deadline_exceeded", true]);
  });
});
