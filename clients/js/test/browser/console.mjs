#!/usr/bin/env node
// One scenario of tests/browser/test_console.py: the reviewer console, served by the service at /, in
// headless Chromium (playwright-core with Debian's /usr/bin/chromium). The pytest side starts the
// service, creates keys, queues and console links over gRPC and checks what was stored; this script
// only drives the pages (with the keyboard wherever a reviewer would) and reports what it saw.
//
//   node console.mjs '{"scenario": "annotate", "service": "http://127.0.0.1:8080", "screenshots": "build/screenshots", ...}'
//
// Prints one JSON line (the scenario's findings, the page's console, any dialog that opened, CSP
// violations); exits 1 with the reason when a wait times out.
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
  "--font-render-hinting=none",
];

const browser = await chromium.launch({ executablePath: config.chromium ?? "/usr/bin/chromium", headless: true, args: CHROMIUM_ARGS });
const context = await browser.newContext({ viewport: config.viewport ?? { width: 1280, height: 860 }, deviceScaleFactor: 1 });
// Whatever would show that content ran: CSP violations and DOM nodes of kinds the console never makes.
await context.addInitScript(() => {
  window.cspViolations = [];
  document.addEventListener("securitypolicyviolation", (e) => window.cspViolations.push(`${e.violatedDirective}: ${e.blockedURI}`));
});
const console_ = [];
const dialogs = [];
mkdirSync(config.screenshots, { recursive: true });

async function newPage() {
  const page = await context.newPage();
  page.on("console", (message) => console_.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => console_.push(`pageerror: ${error.message}`));
  page.on("dialog", async (dialog) => {
    dialogs.push(dialog.message());
    await dialog.dismiss();
  });
  return page;
}

const shot = (page, name, fullPage = false) => page.screenshot({ path: join(config.screenshots, `${name}.png`), fullPage });

/** Opens a console link and waits for the queues page: the fragment is gone, the token kept in the tab. */
async function openLink(page, url) {
  await page.goto(url);
  await page.getByRole("heading", { name: "Queues" }).waitFor({ timeout: WAIT_MS });
  return {
    url: page.url(),
    stored: await page.evaluate(() => sessionStorage.getItem("feedback-console-session") ?? ""),
  };
}

/**
 * Waits until `predicate(argument)`, run in the page, is truthy. (page.waitForFunction compiles its
 * predicate with eval in the page, which the console's CSP forbids; page.evaluate is not affected.)
 */
async function until(page, predicate, argument, { timeout = WAIT_MS } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    const value = await page.evaluate(predicate, argument);
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout} ms waiting for ${predicate}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** Enter on the queues page, once the first queue's "Start reviewing" has the focus. */
async function startReviewing(page) {
  await until(page, () => document.activeElement?.textContent === "Start reviewing");
  await page.keyboard.press("Enter");
}

/** The trace of the item on screen once it has loaded, or "" when the queue has nothing left. */
async function nextItem(page, previous) {
  await until(
    page,
    (before) => {
      const review = document.querySelector(".review");
      if (!review) return false;
      if (document.querySelector("[data-testid=empty]")) return true;
      const trace = document.querySelector("[data-testid=trace]")?.textContent ?? "";
      return review.dataset.phase === "item" && trace !== before && document.querySelector("[data-row]") !== null;
    },
    previous,
  );
  if (await page.locator("[data-testid=empty]").count()) return "";
  return (await page.locator("[data-testid=trace]").textContent()) ?? "";
}

/**
 * One reviewer's keyboard-only pass: Enter on the queues page starts reviewing; on each item, the digits
 * of config.plan[trace][reviewer] pick one choice per key (the focus moves on to the next key, then to
 * Submit) and Enter submits; the next item loads by itself. Returns what each item showed and the time.
 */
async function reviewPass(page, reviewer, plan, { correction, screenshot } = {}) {
  await startReviewing(page);
  let trace = await nextItem(page, "");
  const seen = [];
  const started = Date.now();
  while (trace) {
    const digits = plan[trace]?.[reviewer];
    if (!digits) throw new Error(`no plan for trace ${trace} and ${reviewer}`);
    // End users' feedback arrives with a second call (GetItemContext) just after the item.
    await until(page, () => document.querySelector(".user-feedback, [data-testid=context-error]") !== null);
    seen.push({
      trace,
      userFeedback: await page.locator(".user-feedback li").allTextContents(),
      traceLink: await page.locator(".item-meta a").getAttribute("href").catch(() => null),
      output: await page.locator(".content-part.output").textContent().catch(() => null),
    });
    for (const digit of digits) await page.keyboard.press(String(digit));
    const showcase = screenshot && trace === config.showcase;
    if (correction && seen.length === 1) {
      // The correction editor, by keyboard: back from Submit into it, replace the output, submit.
      await page.keyboard.press("Shift+Tab");
      await page.keyboard.press("Control+A");
      await page.keyboard.type(correction);
      if (showcase) await shot(page, screenshot);
      await page.keyboard.press("Control+Enter");
    } else {
      if (showcase) await shot(page, screenshot);
      if (screenshot && seen.length === 2) {
        await page.keyboard.press("?");
        await page.locator("[data-testid=help]").waitFor({ timeout: WAIT_MS });
        await shot(page, `${screenshot}-keys`);
        await page.keyboard.press("Escape");
        await page.locator("[data-testid=help]").waitFor({ state: "detached", timeout: WAIT_MS });
      }
      await page.keyboard.press("Enter");
    }
    trace = await nextItem(page, trace);
  }
  const ms = Date.now() - started;
  return { seen, ms, done: await page.locator("[data-testid=done-count]").textContent() };
}

async function agreementOf(page, key) {
  const card = page.locator(`.agreement[data-key="${key}"]`);
  await card.waitFor({ timeout: WAIT_MS });
  return {
    value: await card.locator("[data-testid=agreement-value]").textContent(),
    method: await card.locator("[data-testid=method]").textContent(),
    items: await card.locator("[data-testid=items]").textContent(),
    reviewers: await card.locator("[data-testid=reviewers]").textContent(),
    ratings: await card.locator("[data-testid=ratings]").textContent(),
    disagreed: await card.locator("[data-testid=disagreement]").evaluateAll((rows) =>
      rows.map((row) => ({
        trace: row.querySelector("code")?.textContent ?? null,
        link: row.querySelector("a")?.getAttribute("href") ?? null,
        ratings: [...row.querySelectorAll(".chip")].map((chip) => chip.textContent),
      })),
    ),
  };
}

/** A Connect JSON call from the page, as the console makes it: the link from sessionStorage as bearer. */
async function callFromPage(page, method, body) {
  return page.evaluate(
    async ([path, message]) => {
      const session = JSON.parse(sessionStorage.getItem("feedback-console-session") ?? "{}");
      const response = await fetch(`/feedback.v1.AnnotationService/${path}`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${session.token}` },
        body: JSON.stringify(message),
      });
      return { status: response.status, body: await response.json() };
    },
    [method, body],
  );
}

/** Content holding markup and script on one page: what the review shows, and whether anything ran. */
async function hostileOn(page, name, link) {
  await openLink(page, link);
  await startReviewing(page);
  await nextItem(page, "");
  await page.locator(".user-feedback li").first().waitFor({ timeout: WAIT_MS });
  for (const summary of await page.locator("details.context summary").all()) await summary.click();
  await page.waitForTimeout(500); // an onerror of an <img src=x> fires within a few ms
  const found = await page.evaluate(() => {
    const review = document.querySelector(".review");
    return {
      scripts: document.querySelectorAll("script").length,
      injected: review.querySelectorAll("script, img, iframe, object, embed, svg image, [onerror], [onclick], [onload]").length,
      javascriptLinks: [...document.querySelectorAll("a")].filter((a) => !/^(https?:|mailto:|#)/.test(a.getAttribute("href") ?? "#")).length,
      links: [...review.querySelectorAll("a")].map((a) => a.getAttribute("href")),
      xss: window.xss ?? null,
      csp: window.cspViolations,
      text: review.innerText,
    };
  });
  await shot(page, name, true);
  return found;
}

const scenarios = {
  // Two reviewers with their own links annotate the queue with the keyboard; then agreement.
  async annotate() {
    const alice = await newPage();
    const opened = await openLink(alice, config.links.alice);
    await shot(alice, "console-1-queues");
    const first = await reviewPass(alice, "alice", config.plan, { correction: config.correction, screenshot: "console-2-review" });
    await alice.close();
    const bob = await newPage();
    await openLink(bob, config.links.bob);
    const second = await reviewPass(bob, "bob", config.plan);
    await bob.close();
    const lead = await newPage();
    await openLink(lead, config.links.read);
    await lead.locator(`.queue[data-queue="${config.queueId}"] .reviewers`).waitFor({ timeout: WAIT_MS });
    await shot(lead, "console-3-queues");
    const progress = {
      done: await lead.locator(`.queue[data-queue="${config.queueId}"] [data-testid=done]`).textContent(),
      reviewers: await lead.locator(`.queue[data-queue="${config.queueId}"] .reviewers tbody tr`).allTextContents(),
      startReviewing: await lead.getByText("Start reviewing").count(),
    };
    await lead.locator(`.queue[data-queue="${config.queueId}"]`).getByText("Agreement").click();
    const agreement = {};
    for (const key of config.keys) agreement[key] = await agreementOf(lead, key);
    await shot(lead, "console-4-agreement");
    return { opened, alice: first, bob: second, progress, agreement };
  },

  // A reviewer's link acts as its reviewer on its queue only: in the console and with hand-made calls.
  async forbidden() {
    const page = await newPage();
    await openLink(page, config.links.alice);
    const asBob = await callFromPage(page, "ClaimNextItem", { queueId: config.queueId, reviewer: "bob" });
    const otherQueue = await callFromPage(page, "ClaimNextItem", { queueId: config.otherQueueId, reviewer: "alice" });
    const bobsClaim = await callFromPage(page, "SubmitAnnotation", {
      queueId: config.queueId,
      claimId: config.bobsClaimId,
      feedback: [{ key: "verdict", thumb: "THUMB_UP", author: "bob" }],
    });
    await page.evaluate((queueId) => {
      location.hash = `#/review/${queueId}`;
    }, config.otherQueueId);
    await page.locator(".review .note.error").waitFor({ timeout: WAIT_MS });
    const shown = await page.locator(".review .note.error").textContent();
    await shot(page, "console-5-other-queue-refused");
    return { asBob, otherQueue, bobsClaim, shown };
  },

  // Content holding markup and script: it must show as text, and nothing may run or be injected.
  async hostile() {
    const enforced = await hostileOn(await newPage(), "console-6-hostile-content", config.links.alice);
    // Again with the page's CSP switched off: the rendering alone must keep the content inert.
    const open = await browser.newContext({ viewport: { width: 1280, height: 860 }, bypassCSP: true });
    const unguarded = await open.newPage();
    unguarded.on("dialog", async (dialog) => {
      dialogs.push(`(without CSP) ${dialog.message()}`);
      await dialog.dismiss();
    });
    const bypassed = await hostileOn(unguarded, "console-6-hostile-content-no-csp", config.links.bob);
    await open.close();
    return { ...enforced, bypassed };
  },

  // The operators' path: an API key pasted into the sign-in form; the dashboard follows live.
  async dashboard() {
    const page = await newPage();
    await page.goto(`${config.service}/`);
    await page.getByLabel("API key").waitFor({ timeout: WAIT_MS });
    await shot(page, "console-7-sign-in");
    await page.keyboard.type(config.apiKey); // the key field has the focus
    await page.keyboard.press("Tab");
    await page.keyboard.type(config.project);
    await page.keyboard.press("Enter");
    await page.getByRole("heading", { name: "Queues" }).waitFor({ timeout: WAIT_MS });
    await page.getByRole("link", { name: "Dashboard" }).click();
    await page.locator(".card.model").first().waitFor({ timeout: WAIT_MS });
    await page.getByRole("link", { name: config.model }).click();
    const cell = page.locator(`td[data-version="${config.version}"][data-key="thumbs"]`);
    await cell.locator("[data-testid=count]").waitFor({ timeout: WAIT_MS });
    await page.locator(".live.live").waitFor({ timeout: WAIT_MS });
    await page.locator("[data-testid=verdicts] li").first().waitFor({ timeout: WAIT_MS });
    const before = {
      count: await cell.locator("[data-testid=count]").textContent(),
      positive: await cell.locator("[data-testid=positive]").textContent(),
      verdicts: await page.locator("[data-testid=verdicts] li").allTextContents(),
      chartVersions: await page.locator(".chart g.series").evaluateAll((gs) => gs.map((g) => g.dataset.version)),
    };
    await shot(page, "console-8-dashboard", true);
    // The test creates one thumbs-up over gRPC now; the page must show it without a reload.
    console.log(JSON.stringify({ ready: true }));
    const waited = Date.now();
    await until(
      page,
      ([selector, old]) => document.querySelector(selector)?.textContent !== old,
      [`td[data-version="${config.version}"][data-key="thumbs"] [data-testid=count]`, before.count],
    );
    const after = {
      count: await cell.locator("[data-testid=count]").textContent(),
      positive: await cell.locator("[data-testid=positive]").textContent(),
      ms: Date.now() - waited,
      navigations: await page.evaluate(() => performance.getEntriesByType("navigation").length),
    };
    await shot(page, "console-9-dashboard-updated", true);
    return { before, after };
  },

  // A lease that runs out: the page says so and Enter takes the next item; s skips it.
  async lease() {
    const page = await newPage();
    await openLink(page, config.links.alice);
    await startReviewing(page);
    const first = await nextItem(page, "");
    await page.locator("[data-testid=expired]").waitFor({ timeout: WAIT_MS });
    const expired = await page.locator("[data-testid=expired]").textContent();
    await shot(page, "console-10-lease-expired");
    await page.keyboard.press("Enter");
    const next = await nextItem(page, "-");
    await page.keyboard.press("s"); // skip it: the other item (or nothing) comes next
    const afterSkip = await nextItem(page, next);
    return { first, expired, next, afterSkip };
  },

  // The ten-item pass whose wall time the README reports (keyboard only, one reviewer).
  async pass() {
    const page = await newPage();
    await openLink(page, config.links.alice);
    const pass = await reviewPass(page, "alice", config.plan);
    return { pass };
  },
};

let failure;
let result;
try {
  result = await scenarios[config.scenario]();
  result.csp ??= await Promise.all(context.pages().map((p) => p.evaluate(() => window.cspViolations).catch(() => []))).then((all) => all.flat());
} catch (error) {
  failure = error;
  for (const [n, page] of context.pages().entries()) await shot(page, `failed-${config.scenario}-${n}`, true).catch(() => undefined);
  result = {};
} finally {
  await browser.close();
}
console.log(JSON.stringify({ ...result, dialogs, console: console_ }));
if (failure) {
  console.error(`scenario ${config.scenario} failed: ${failure.stack ?? failure}`);
  process.exitCode = 1;
}
