import { defineConfig } from "vitest/config";

// Unit tests of pure logic (token vectors, error details, backoff, outbox, request shapes) and of the
// widget's rendering in happy-dom. The SDK against the real service, in Chromium and Node, is proven by
// tests/browser/ (pytest starts the service; see README "Feedback from a web page").
export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    environment: "node",
    restoreMocks: true,
  },
});
