import { describe, expect, it } from "vitest";
import { retryDelay } from "../src/backoff.js";

describe("retryDelay", () => {
  it("doubles from 250 ms with jitter between half and all of the step, up to 4 s", () => {
    const low = [1, 2, 3, 4, 5, 6].map((failed) => retryDelay(failed, undefined, { maxAttempts: 10 }, () => 0));
    const high = [1, 2, 3, 4, 5, 6].map((failed) => retryDelay(failed, undefined, { maxAttempts: 10 }, () => 1));
    expect(low).toEqual([125, 250, 500, 1000, 2000, 2000]);
    expect(high).toEqual([250, 500, 1000, 2000, 4000, 4000]);
  });

  it("stops after the last attempt (4 by default)", () => {
    expect(retryDelay(3, undefined, {}, () => 0)).toBe(500);
    expect(retryDelay(4, undefined, {}, () => 0)).toBeUndefined();
    expect(retryDelay(1, undefined, { maxAttempts: 1 })).toBeUndefined();
  });

  it("waits at least as long as the server's RetryInfo asks", () => {
    expect(retryDelay(1, 3000, {}, () => 1)).toBe(3000);
    expect(retryDelay(3, 10, {}, () => 1)).toBe(1000);
  });

  it("gives up when the server asks for a longer wait than the policy accepts", () => {
    expect(retryDelay(1, 15001, {}, () => 0)).toBeUndefined();
    expect(retryDelay(1, 60000, { maxRetryInfoDelayMs: 60000 }, () => 0)).toBe(60000);
  });
});
