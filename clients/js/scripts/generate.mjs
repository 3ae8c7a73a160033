#!/usr/bin/env node
// Generate the TypeScript code of the feedback.v1 API from protos/ (buf + protoc-gen-es).
//
// The one way the generated code in src/gen is made: `buf generate` with buf.gen.yaml into a
// scratch directory, then copied over src/gen. Never edit src/gen by hand.
//
//   node scripts/generate.mjs          # regenerate (npm run generate)
//   node scripts/generate.mjs --check  # exit 1 if src/gen is stale (npm run generate:check, make lint)
import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, relative, dirname } from "node:path";
import { fileURLToPath } from "node:url";

const PACKAGE = dirname(dirname(fileURLToPath(import.meta.url)));
const OUTPUT = join(PACKAGE, "src", "gen");
const BUF = join(PACKAGE, "node_modules", ".bin", "buf");

function files(root, dir = root) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory() ? files(root, join(dir, entry.name)) : [relative(root, join(dir, entry.name))],
  );
}

function generate(scratch) {
  // buf resolves the plugin and the inputs relative to the package directory.
  execFileSync(BUF, ["generate", "--template", "buf.gen.yaml", "--output", scratch], {
    cwd: PACKAGE,
    stdio: "inherit",
  });
  return join(scratch, "src", "gen");
}

function differences(fresh, committed) {
  const left = new Set(files(fresh));
  const right = new Set(files(committed));
  const found = [];
  for (const name of [...new Set([...left, ...right])].sort()) {
    if (!right.has(name)) found.push(`missing: src/gen/${name}`);
    else if (!left.has(name)) found.push(`not generated any more: src/gen/${name}`);
    else if (!readFileSync(join(fresh, name)).equals(readFileSync(join(committed, name))))
      found.push(`stale: src/gen/${name}`);
  }
  return found;
}

const check = process.argv.includes("--check");
const scratch = mkdtempSync(join(tmpdir(), "feedback-web-gen-"));
try {
  const fresh = generate(scratch);
  if (check) {
    const stale = differences(fresh, OUTPUT);
    if (stale.length > 0) {
      console.error(`generated TypeScript code is stale; run \`npm run generate\` in clients/js:\n  ${stale.join("\n  ")}`);
      process.exitCode = 1;
    } else {
      console.log(`generated TypeScript code is up to date (${files(fresh).length} files)`);
    }
  } else {
    rmSync(OUTPUT, { recursive: true, force: true });
    cpSync(fresh, OUTPUT, { recursive: true });
    console.log(`generated ${relative(process.cwd(), OUTPUT) || OUTPUT} (${files(OUTPUT).length} files)`);
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}
