// The console shell: sign-in, navigation between pages (#streams, #review, ...), announcements.
import {ApiError, call, describeError, forgetKey, saveKey, savedKey} from "./api.js";
import {clear} from "./dom.js";
import * as audit from "./page-audit.js";
import * as collections from "./page-collections.js";
import * as errors from "./page-errors.js";
import * as review from "./page-review.js";
import * as streams from "./page-streams.js";

const PAGES = {
  streams: {module: streams, title: "Streams"},
  review: {module: review, title: "Review"},
  collections: {module: collections, title: "Collections"},
  audit: {module: audit, title: "Audit"},
  errors: {module: errors, title: "Error rates"},
};
// Where each role starts (roles do not nest: each page says what another role would be needed for).
const HOME = {
  reviewer: "review",
  auditor: "audit",
  viewer: "streams",
  admin: "collections",
  indexer: "collections",
  searcher: "errors",
};

const $ = (id) => document.getElementById(id);
let identity = null;
let cleanup = null;
let rendering = 0;

/** Say something to screen-reader users (polite live region); repeated messages are re-read. */
export function announce(message) {
  const region = $("announcer");
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = message;
  }, 30);
}

function stopPage() {
  if (typeof cleanup === "function") {
    try {
      cleanup();
    } catch (err) {
      console.error(err);
    }
  }
  cleanup = null;
}

function showLogin(message = "") {
  stopPage();
  identity = null;
  $("nav").hidden = true;
  $("who").hidden = true;
  $("page").hidden = true;
  clear($("page"));
  $("login").hidden = false;
  $("login-error").textContent = message;
  document.title = "Sign in — facestream console";
  $("key-id").focus();
}

function signOut(message = "") {
  forgetKey();
  showLogin(message);
  if (location.hash) history.replaceState(null, "", location.pathname);
  announce(message || "Signed out");
}

function currentPage() {
  const name = location.hash.replace(/^#/, "");
  return Object.hasOwn(PAGES, name) ? name : null;
}

async function render() {
  if (!identity) return;
  const name = currentPage() || HOME[identity.Role] || "streams";  // Role: the key's first role
  if (!currentPage()) {
    history.replaceState(null, "", `#${name}`);
  }
  const {module, title} = PAGES[name];
  stopPage();
  const token = ++rendering;
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const page = $("page");
  clear(page);
  page.hidden = false;
  page.dataset.page = name;
  document.title = `${title} — facestream console`;
  const ctx = {
    // A key may hold several roles; pages test ctx.has(role), messages show ctx.role.
    role: (identity.Roles || [identity.Role]).join("+"),
    has: (r) => (identity.Roles || [identity.Role]).includes(r),
    keyId: identity.AccessKeyId,
    announce,
    authFailed: (err) => {
      if (err instanceof ApiError && err.status === 401) signOut(describeError(err));
    },
  };
  const done = await module.render(page, ctx);
  if (token !== rendering) {
    if (typeof done === "function") done();
    return;
  }
  cleanup = done;
  const heading = page.querySelector("h1");
  if (heading) {
    heading.tabIndex = -1;
    heading.focus();
  }
}

async function signedIn(who) {
  identity = who;
  $("login").hidden = true;
  $("nav").hidden = false;
  $("who").hidden = false;
  $("who-text").textContent = `Signed in: ${who.AccessKeyId} (${(who.Roles || [who.Role]).join(", ")})`;
  await render();
}

async function onLogin(event) {
  event.preventDefault();
  const idInput = $("key-id");
  const secretInput = $("key-secret");
  const id = idInput.value.trim();
  const secret = secretInput.value;
  if (!id || !secret) {
    $("login-error").textContent = "Enter both the access key id and its secret.";
    (id ? secretInput : idInput).focus();
    return;
  }
  saveKey(id, secret);
  secretInput.value = "";
  try {
    const who = await call("GetCallerIdentity");
    announce(`Signed in as ${who.Role}`);
    await signedIn(who);
  } catch (err) {
    forgetKey();
    $("login-error").textContent =
      err instanceof ApiError && err.status === 401
        ? "That key is unknown, revoked, or the secret is wrong."
        : describeError(err);
    idInput.focus();
  }
}

async function start() {
  $("login-form").addEventListener("submit", onLogin);
  $("sign-out").addEventListener("click", () => signOut());
  window.addEventListener("hashchange", () => {
    if (identity) render();
  });
  if (!savedKey()) {
    showLogin();
    return;
  }
  try {
    await signedIn(await call("GetCallerIdentity"));
  } catch (err) {
    forgetKey();
    showLogin(err instanceof ApiError && err.status === 401 ? "Please sign in again." : describeError(err));
  }
}

start();
