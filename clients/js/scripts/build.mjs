#!/usr/bin/env node
// Build @feedback-service/web with esbuild.
//
//   node scripts/build.mjs          # npm run build: the bundle (committed, served by the service) + dist/
//   node scripts/build.mjs --check  # npm run build:check (make lint): fail if the committed bundle is stale
//   node scripts/build.mjs --dist   # dist/ only, the committed bundle left as it is (for tests)
//
// The browser bundle (src/index.ts: SDK + <feedback-thumbs>, every dependency inlined, one ES module)
// is written to service/feedback_service/web/static/feedback-web.js, which the service serves at
// /sdk/feedback-web.js and git keeps (so `make run` needs no JS toolchain), and to
// dist/feedback-web.js, the same bytes, which the npm package ships. The build is deterministic: the
// same sources, lockfile and esbuild version give the same bytes (no time stamps, no absolute paths,
// no source maps). It prints the bundle's size and fails above the budget of 15,000 bytes gzipped.
//
// dist/ also gets node.js (mintFeedbackToken, for backends), connect.js (the SDK over any Connect
// transport; @connectrpc/connect and @bufbuild/protobuf stay imports) and the type declarations.
import { build } from "esbuild";
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync, existsSync, rmSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

const PACKAGE = dirname(dirname(fileURLToPath(import.meta.url)));
const ROOT = dirname(dirname(PACKAGE));
const SERVED = join(ROOT, "service", "feedback_service", "web", "static", "feedback-web.js");
const DIST = join(PACKAGE, "dist");
const GZIP_BUDGET = 15_000;
const { name, version } = JSON.parse(readFileSync(join(PACKAGE, "package.json"), "utf8"));
const BANNER = `/* ${name} ${version}: the browser SDK and <feedback-thumbs> of the feedback service (Apache-2.0).
   Built by clients/js/scripts/build.mjs from clients/js/src; do not edit. */`;

const common = {
  absWorkingDir: PACKAGE,
  bundle: true,
  format: "esm",
  minify: true,
  legalComments: "none",
  charset: "utf8",
  write: false,
  logLevel: "warning",
};

async function browserBundle() {
  const result = await build({
    ...common,
    entryPoints: ["src/index.ts"],
    platform: "browser",
    target: ["es2020", "chrome90", "firefox90", "safari15"],
    banner: { js: BANNER },
    outfile: "dist/feedback-web.js",
  });
  return result.outputFiles[0].contents;
}

// connect.js shares the bundle's FeedbackError (instanceof works across both): its ./errors.js
// import becomes an import of ./feedback-web.js.
const errorsFromBundle = {
  name: "errors-from-bundle",
  setup(context) {
    context.onResolve({ filter: /^\.\/errors\.js$/ }, () => ({ path: "./feedback-web.js", external: true }));
  },
};

async function packageEntries() {
  const node = await build({
    ...common,
    entryPoints: ["src/tokens.ts"],
    platform: "node",
    target: "node20",
    outfile: "dist/node.js",
  });
  const connect = await build({
    ...common,
    entryPoints: ["src/connect.ts"],
    platform: "neutral",
    target: "es2020",
    external: ["@connectrpc/connect", "@bufbuild/protobuf", "@bufbuild/protobuf/*"],
    plugins: [errorsFromBundle],
    outfile: "dist/connect.js",
  });
  return { "node.js": node.outputFiles[0].contents, "connect.js": connect.outputFiles[0].contents };
}

function report(bundle) {
  const gzipped = gzipSync(bundle, { level: 9 }).length;
  const line = `${relative(process.cwd(), SERVED)}: ${bundle.length.toLocaleString("en")} bytes, ${gzipped.toLocaleString("en")} bytes gzipped (budget ${GZIP_BUDGET.toLocaleString("en")})`;
  if (gzipped > GZIP_BUDGET) {
    console.error(`${line}: OVER BUDGET`);
    process.exitCode = 1;
  } else {
    console.log(line);
  }
}

const bundle = await browserBundle();
report(bundle);
if (process.argv.includes("--check")) {
  const committed = existsSync(SERVED) ? readFileSync(SERVED) : undefined;
  if (committed === undefined || !Buffer.from(bundle).equals(committed)) {
    console.error(
      `${relative(process.cwd(), SERVED)} is ${committed ? "stale" : "missing"}: run \`npm run build\` in clients/js and commit it`,
    );
    process.exitCode = 1;
  } else {
    console.log("the committed bundle is up to date");
  }
} else {
  if (!process.argv.includes("--dist")) {
    mkdirSync(dirname(SERVED), { recursive: true });
    writeFileSync(SERVED, bundle);
  }
  rmSync(DIST, { recursive: true, force: true });
  mkdirSync(DIST, { recursive: true });
  writeFileSync(join(DIST, "feedback-web.js"), bundle);
  for (const [file, contents] of Object.entries(await packageEntries())) writeFileSync(join(DIST, file), contents);
  execFileSync(join(PACKAGE, "node_modules", ".bin", "tsc"), ["-p", "tsconfig.build.json"], { cwd: PACKAGE, stdio: "inherit" });
  console.log(`wrote ${relative(process.cwd(), DIST)}/ (feedback-web.js, node.js, connect.js, types/)`);
}
