import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { hashUserId, mintFeedbackToken, secretId, type MintOptions } from "../src/tokens.js";

interface Vectors {
  vectors: { name: string; secret: string; options: MintOptions; token: string; hashed_user: string }[];
  refused: { name: string; secret: string; options: MintOptions }[];
}

// Made by clients/testdata/generate_token_vectors.py with the Python SDK; tests/test_token_vectors.py
// checks the Python side against the same file.
const shared = JSON.parse(
  readFileSync(new URL("../../testdata/feedback_token_vectors.json", import.meta.url), "utf8"),
) as Vectors;

describe("mintFeedbackToken", () => {
  it.each(shared.vectors.map((v) => [v.name, v] as const))("mints the Python SDK's token: %s", (_, vector) => {
    expect(mintFeedbackToken(vector.secret, vector.options)).toBe(vector.token);
    expect(hashUserId(vector.options.project, vector.options.userId)).toBe(vector.hashed_user);
  });

  it.each(shared.refused.map((c) => [c.name, c] as const))("refuses what the Python SDK refuses: %s", (_, refused) => {
    expect(() => mintFeedbackToken(refused.secret, refused.options)).toThrow(RangeError);
  });

  it("names the signing secret by the first 8 hex digits of its SHA-256", () => {
    const [vector] = shared.vectors;
    const payload = JSON.parse(Buffer.from(vector!.token.split(".")[1]!, "base64url").toString("utf8"));
    expect(payload.kid).toBe(secretId(vector!.secret));
    expect(secretId("abc")).toBe("ba7816bf");
  });

  it("expires 24 hours after now by default", () => {
    const token = mintFeedbackToken("s".repeat(32), { project: "p", traceId: "t", userId: "u", keys: ["thumbs"], now: 1000.7 });
    const payload = JSON.parse(Buffer.from(token.split(".")[1]!, "base64url").toString("utf8"));
    expect(payload.exp).toBe(1000 + 24 * 3600);
    expect(payload.usr).not.toContain("u_u"); // the raw user id never goes in
  });
});
