// The console's only way to the server: POST /v1/<Operation> with the bearer key.
// The key lives in this tab's sessionStorage only: never in a URL, a cookie or localStorage,
// and it is gone when the tab closes or the user signs out.

const STORE_KEY = "facestream.console.key";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function saveKey(accessKeyId, secret) {
  sessionStorage.setItem(STORE_KEY, JSON.stringify({id: accessKeyId, secret}));
}

export function savedKey() {
  try {
    const v = JSON.parse(sessionStorage.getItem(STORE_KEY) || "null");
    return v && typeof v.id === "string" && typeof v.secret === "string" ? v : null;
  } catch {
    return null;
  }
}

/** Forget the key and everything else the console kept in this tab. */
export function forgetKey() {
  for (const name of Object.keys(sessionStorage)) {
    if (name.startsWith("facestream.console.")) sessionStorage.removeItem(name);
  }
}

function endpoint(op) {
  // Relative to the page (served at <prefix>/console/), so a route prefix in front still works.
  return new URL(`../v1/${encodeURIComponent(op)}`, document.baseURI);
}

function headers(extra = {}) {
  const key = savedKey();
  if (!key) throw new ApiError(401, "NotSignedIn", "sign in first");
  return {Authorization: `Bearer ${key.id}:${key.secret}`, ...extra};
}

async function answer(resp) {
  let data = null;
  try {
    data = await resp.json();
  } catch {
    data = null;
  }
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.code || `HTTP${resp.status}`, err.message || resp.statusText);
  }
  return data;
}

/** Call an operation; `purpose` goes in the X-Facestream-Purpose header (audited). */
export async function call(op, body = {}, {purpose, signal} = {}) {
  const extra = {"Content-Type": "application/json"};
  if (purpose) extra["X-Facestream-Purpose"] = purpose;
  const resp = await fetch(endpoint(op), {
    method: "POST",
    headers: headers(extra),
    body: JSON.stringify(body),
    cache: "no-store",
    credentials: "omit",
    signal,
  });
  return answer(resp);
}

/** Multipart upload (POST /v1/<Operation>/upload): image file parts + the other fields as JSON. */
export async function upload(op, files, request = {}, {purpose} = {}) {
  const form = new FormData();
  for (const [name, file] of Object.entries(files)) form.append(name, file, file.name || name);
  form.append("request", JSON.stringify(request));
  const extra = purpose ? {"X-Facestream-Purpose": purpose} : {};
  const resp = await fetch(new URL(`${endpoint(op).pathname}/upload`, document.baseURI), {
    method: "POST",
    headers: headers(extra),
    body: form,
    cache: "no-store",
    credentials: "omit",
  });
  return answer(resp);
}

/** A message for people: "AccessDeniedException: ..." stays readable, with what to do. */
export function describeError(err) {
  if (err instanceof ApiError) {
    if (err.status === 403) return `Your key's role may not do this. ${err.message}`;
    if (err.status === 401) return `Not signed in or the key is no longer valid. ${err.message}`;
    return `${err.code}: ${err.message}`;
  }
  return `Could not reach the server (${err && err.message ? err.message : err}).`;
}
