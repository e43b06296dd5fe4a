// Tiny DOM helpers. Text always goes in through textContent / createTextNode, never as HTML:
// every value the API returns (names, reasons, purposes) is untrusted.

/**
 * h("button", {type: "button", class: "primary", on: {click: fn}}, "Confirm")
 * props: class, text, hidden, disabled, on (events), dataset, and any other attribute.
 */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "text") el.textContent = String(value);
    else if (key === "on") for (const [ev, fn] of Object.entries(value)) el.addEventListener(ev, fn);
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key === "hidden" || key === "disabled" || key === "required" || key === "checked" ||
             key === "multiple" || key === "selected") el[key] = Boolean(value);
    else if (key === "value") el.value = String(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

export function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function clear(el) {
  while (el.firstChild) el.removeChild(el.firstChild);
  return el;
}

/** A labelled form control: <div class="field"><label for=id>..</label><input id=id ..></div>. */
let fieldCounter = 0;
export function field(label, control, hint) {
  const id = control.id || `f${++fieldCounter}`;
  control.id = id;
  const parts = [h("label", {for: id, text: label}), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", {class: "hint", id: hintId, text: hint}));
  }
  return h("div", {class: "field"}, parts);
}

export function formatTime(seconds) {
  if (seconds === null || seconds === undefined) return "—";
  const d = new Date(seconds * 1000);
  return d.toLocaleString(undefined, {hour12: false});
}

export function formatMs(ms) {
  return ms === null || ms === undefined ? "—" : formatTime(ms / 1000);
}

export function pct(x, digits = 2) {
  return x === null || x === undefined ? "—" : `${(x * 100).toFixed(digits)}%`;
}

/** A data: URL for a base64 JPEG/PNG from the API (CSP allows data: images only). */
export function imageUrl(b64, type = "image/jpeg") {
  return `data:${type};base64,${b64}`;
}

/** A description list from [term, value] pairs. */
export function dl(pairs, cls = "facts") {
  return h("dl", {class: cls}, pairs.map(([t, v]) => [h("dt", {text: t}), h("dd", {}, v)]));
}
