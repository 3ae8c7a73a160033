#!/usr/bin/env node
// One browser scenario of tests/browser/test_widget.py, in headless Chromium (playwright-core with
// Debian's /usr/bin/chromium). The pytest side starts the service and the page servers, mints the
// tokens and checks what was stored over gRPC; this script only drives the page and reports.
//
//   node scenarios.mjs '{"scenario": "vote", "pageUrl": "...", "screenshots": "build/screenshots"}'
//
// Prints one JSON line: {"states": [...], "status": "...", "pressed": [...]}; exits 1 with the reason
// (and the page's console) when a wait times out.
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";
import { join } from "node:path";

const config = JSON.parse(process.argv[2]);
const WAIT_MS = 30_000;
const CHROMIUM_ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

const browser = await chromium.launch({ executablePath: config.chromium ?? "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
const context = await browser.newContext({ viewport: config.viewport ?? { width: 640, height: 300 }, deviceScaleFactor: 1 });
// Every state the widget goes through, in order, before any script of the page runs.
await context.addInitScript(() => {
  window.feedbackStates = [];
  document.addEventListener("feedback-state", (event) => window.feedbackStates.push(event.detail));
});
const page = await context.newPage();
const console_ = [];
page.on("console", (message) => console_.push(`${message.type()}: ${message.text()}`));
page.on("pageerror", (error) => console_.push(`pageerror: ${error.message}`));

const widget = page.locator("feedback-thumbs");
const up = widget.locator("[data-vote=up]");
const down = widget.locator("[data-vote=down]");
mkdirSync(config.screenshots, { recursive: true });
const shot = (name) => page.screenshot({ path: join(config.screenshots, `${name}.png`) });

/** Waits until the widget went through `count` states equal to `state` in all (from the page's log). */
async function reached(state, count = 1) {
  await page.waitForFunction(
    ([wanted, times]) => window.feedbackStates.filter((s) => s.state === wanted).length >= times,
    [state, count],
    { timeout: WAIT_MS },
  );
}

async function report() {
  return {
    states: await page.evaluate(() => window.feedbackStates.map((s) => s.state)),
    status: await widget.locator("[part~=status]").textContent(),
    pressed: [await up.getAttribute("aria-pressed"), await down.getAttribute("aria-pressed")],
    state: await widget.getAttribute("state"),
  };
}

const scenarios = {
  // Keyboard up, mouse down, then a comment: one vote (down) with the comment is what must be stored.
  async vote() {
    await page.keyboard.press("Tab");
    if (!(await up.evaluate((button) => button.matches(":focus")))) throw new Error("Tab did not focus the up button");
    await page.keyboard.press("Enter");
    await reached("saved", 1);
    await shot("widget-1-voted-up");
    await down.click();
    await reached("saved", 2);
    await shot("widget-2-changed-to-down");
    await widget.locator("textarea").fill(config.comment);
    await widget.locator("[part~=send]").click();
    await reached("saved", 3);
    await shot("widget-3-comment-saved");
  },
  // A page whose origin is not on FEEDBACK_CORS_ORIGINS: the browser refuses the call. The SDK retries
  // a call that got no answer a few times (about 1 to 2 s), which is when the sending state shows.
  async refused() {
    await up.click();
    await reached("sending");
    await shot("widget-0-sending");
    await reached("error");
    await shot("widget-4-origin-refused");
  },
  async tampered() {
    await up.click();
    await reached("error");
    await shot("widget-5-tampered-token");
  },
  async expired() {
    await down.click();
    await reached("error");
    await shot("widget-6-expired-token");
  },
  // Offline: the vote waits in localStorage, and goes when the browser is online again.
  async offline() {
    await context.setOffline(true);
    await down.click();
    await reached("queued");
    await shot("widget-7-offline-queued");
    const stored = await page.evaluate(() => Object.entries(localStorage).filter(([key]) => key.startsWith("feedback-web:outbox:")));
    if (stored.length !== 1 || JSON.parse(stored[0][1]).length !== 1) throw new Error(`expected one item in localStorage: ${JSON.stringify(stored)}`);
    await context.setOffline(false);
    await reached("saved");
    await shot("widget-8-back-online-saved");
  },
  // A vote, and the page is gone at once (the user closed the tab): the send in flight uses fetch
  // keepalive, so it still arrives. The test reads the stored vote; the page can report nothing.
  async leave() {
    await up.click();
    await page.goto("about:blank");
    return { left: true };
  },
  // examples/web as its README section walks through it: vote, comment, saved.
  async example() {
    await down.click();
    await reached("saved");
    await widget.locator("textarea").fill(config.comment);
    await widget.locator("[part~=send]").click();
    await reached("saved", 2);
    await page.mouse.move(0, 0); // no hover highlight in the picture
    await shot("example-web");
    return { trace: await page.locator("code").textContent() };
  },
};

let failure;
let result;
try {
  await page.goto(config.pageUrl);
  await page.waitForFunction(() => customElements.get("feedback-thumbs") !== undefined, null, { timeout: WAIT_MS });
  const extra = await scenarios[config.scenario]();
  result = { ...(extra?.left ? {} : await report()), ...extra };
} catch (error) {
  failure = error;
  await shot(`failed-${config.scenario}`).catch(() => undefined);
  result = await report().catch(() => ({}));
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...result, console: console_ }));
if (failure) {
  console.error(`scenario ${config.scenario} failed: ${failure.stack ?? failure}`);
  process.exitCode = 1;
}
