// The backend of examples/web: serves the page with a feedback token minted for the AI answer on it.
// FEEDBACK_TOKEN_SECRET: a secret of the service's FEEDBACK_TOKEN_SECRETS (make run keeps one in data/token.secret).
import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import { createServer } from "node:http";
import { mintFeedbackToken } from "@feedback-service/web/node";

const service = process.env.FEEDBACK_URL ?? "http://127.0.0.1:8080"; // the service's HTTP face
const secret = process.env.FEEDBACK_TOKEN_SECRET ?? readFileSync(new URL("../../data/token.secret", import.meta.url), "utf8").trim();
const page = readFileSync(new URL("index.html", import.meta.url), "utf8");
const port = Number(process.env.PORT ?? 3000);

createServer((request, response) => {
  const traceId = randomBytes(16).toString("hex"); // yours: the trace id of the AI call that wrote the answer
  const token = mintFeedbackToken(secret, {
    project: "demo", traceId, userId: "customer-42", keys: ["thumbs"], valueKinds: ["thumb", "comment"],
    model: "support-bot", modelVersion: "v8", ttlS: 3600,
  });
  response.writeHead(200, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
  response.end(page.replaceAll("{{SERVICE}}", service).replace("{{TOKEN}}", token).replace("{{TRACE}}", traceId));
}).listen(port, "127.0.0.1", () => console.log(`open http://127.0.0.1:${port}`));
