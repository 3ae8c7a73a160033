// The reviewer console and dashboard of the feedback service, served at / (index.html loads this
// bundle, console.js, built by scripts/build-console.mjs from clients/js/console).
import { render } from "preact";
import { App } from "./app.js";
import { startSession } from "./session.js";

const session = startSession(location, history, sessionStorage);
const root = document.getElementById("app");
if (root) render(<App initial={session} />, root);
