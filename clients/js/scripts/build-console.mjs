#!/usr/bin/env node
// Build the reviewer console and dashboard (clients/js/console) with esbuild.
//
//   node scripts/build-console.mjs          # write the console into the service's static files
//   node scripts/build-console.mjs --check  # (npm run lint, make lint) fail if the committed files are stale
//
// The service serves service/feedback_service/web/static/console/ at / (index.html) and /console/
// (console.js: the app with Preact, connect-web and the protobuf runtime inlined; console.css), and git
// keeps those files so that `make run` needs no JavaScript toolchain. The build is deterministic: the
// same sources, lockfile and esbuild give the same bytes (no time stamps, no absolute paths, no source
// maps), which --check compares with the committed files. It prints the sizes and fails when the script
// is above its budget.
import { build } from "esbuild";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const PACKAGE = dirname(dirname(fileURLToPath(import.meta.url)));
const ROOT = dirname(dirname(PACKAGE));
const SOURCE = join(PACKAGE, "console");
const SERVED = join(ROOT, "service", "feedback_service", "web", "static", "console");
const GZIP_BUDGET = 80_000; // console.js, gzipped (58 kB at first: Preact, connect-web, the protobuf runtime)
const BANNER = "/* The feedback service's reviewer console (Apache-2.0). Built by clients/js/scripts/build-console.mjs from clients/js/console; do not edit. */";

async function bundle() {
  const common = { absWorkingDir: PACKAGE, bundle: true, minify: true, legalComments: "none", charset: "utf8", write: false, logLevel: "warning" };
  const script = await build({
    ...common,
    entryPoints: ["console/src/main.tsx"],
    format: "esm",
    platform: "browser",
    target: ["es2020", "chrome90", "firefox90", "safari15"],
    jsx: "automatic",
    jsxImportSource: "preact",
    banner: { js: BANNER },
    outfile: "console.js",
  });
  const style = await build({ ...common, entryPoints: ["console/console.css"], loader: { ".css": "css" }, banner: { css: BANNER }, outfile: "console.css" });
  return {
    "index.html": readFileSync(join(SOURCE, "index.html")),
    "console.js": script.outputFiles[0].contents,
    "console.css": style.outputFiles[0].contents,
  };
}

const files = await bundle();
for (const [name, contents] of Object.entries(files)) {
  const gzipped = gzipSync(contents, { level: 9 }).length;
  const over = name === "console.js" && gzipped > GZIP_BUDGET;
  const line = `${relative(process.cwd(), join(SERVED, name))}: ${contents.length.toLocaleString("en")} bytes, ${gzipped.toLocaleString("en")} gzipped${name === "console.js" ? ` (budget ${GZIP_BUDGET.toLocaleString("en")})` : ""}`;
  if (over) {
    console.error(`${line}: OVER BUDGET`);
    process.exitCode = 1;
  } else {
    console.log(line);
  }
}
if (process.argv.includes("--check")) {
  const stale = Object.entries(files).filter(([name, contents]) => {
    const path = join(SERVED, name);
    return !existsSync(path) || !Buffer.from(contents).equals(readFileSync(path));
  });
  if (stale.length) {
    for (const [name] of stale) console.error(`${relative(process.cwd(), join(SERVED, name))} is stale or missing`);
    console.error("run `npm run build:console` in clients/js and commit service/feedback_service/web/static/console/");
    process.exitCode = 1;
  } else {
    console.log("the committed console is up to date");
  }
} else {
  mkdirSync(SERVED, { recursive: true });
  for (const [name, contents] of Object.entries(files)) writeFileSync(join(SERVED, name), contents);
}
