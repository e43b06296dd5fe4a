// Streams: one card per stream processor, refreshed every 2 s.
import {call, describeError} from "./api.js";
import {clear, formatTime, h, imageUrl} from "./dom.js";

const POLL_MS = 2000;
let cardCounter = 0;

function sum(obj) {
  return Object.values(obj || {}).reduce((a, b) => a + (Number(b) || 0), 0);
}

function makeCard(name) {
  const titleId = `stream-${++cardCounter}-title`;
  const parts = {
    status: h("span", {class: "badge"}),
    message: h("span", {class: "status-message"}),
    fps: h("dd", {dataset: {field: "fps"}}),
    analysed: h("dd", {dataset: {field: "analysed"}}),
    drops: h("dd", {dataset: {field: "drops"}}),
    events: h("dd", {dataset: {field: "events"}}),
    lastEvent: h("dd", {dataset: {field: "last-event"}}),
    collection: h("dd", {dataset: {field: "collection"}}),
    preview: h("div", {class: "preview"}),
  };
  const card = h(
    "article",
    {class: "card stream-card", "aria-labelledby": titleId, dataset: {name}},
    h("h2", {id: titleId, text: name}),
    h("p", {class: "status-line"}, parts.status, " ", parts.message),
    h(
      "dl",
      {class: "facts"},
      h("dt", {text: "Analysed"}), parts.fps,
      h("dt", {text: "Frames analysed"}), parts.analysed,
      h("dt", {text: "Frames dropped"}), parts.drops,
      h("dt", {text: "Match events"}), parts.events,
      h("dt", {text: "Last event"}), parts.lastEvent,
      h("dt", {text: "Collection"}), parts.collection,
    ),
    parts.preview,
  );
  return {card, parts, last: null, status: null, events: null, lastEventAt: null, previewTs: undefined};
}

function updateCard(entry, d, preview, now, announce) {
  const {parts} = entry;
  const fs = d.Facestream || {};
  const counters = fs.Counters || {};
  const analysed = Number(counters.analysed || 0);
  const status = d.Status || "UNKNOWN";
  parts.status.textContent = status;
  parts.status.className = `badge status-${status.toLowerCase()}`;
  parts.message.textContent = d.StatusMessage || "";
  entry.card.dataset.status = status;
  if (entry.status !== null && entry.status !== status) announce(`${d.Name}: ${status}`);
  entry.status = status;

  let fps = null;
  if (entry.last && now > entry.last.t) fps = (analysed - entry.last.analysed) / ((now - entry.last.t) / 1000);
  entry.last = {analysed, t: now};
  parts.fps.textContent = fps === null ? "measuring…" : `${Math.max(0, fps).toFixed(1)} frames/s`;
  parts.analysed.textContent = String(analysed);
  const drops = counters.drops || {};
  const reasons = Object.entries(drops).filter(([, n]) => n > 0).map(([r, n]) => `${r} ${n}`);
  parts.drops.textContent = `${sum(drops)}${reasons.length ? ` (${reasons.join(", ")})` : ""}`;

  const events = Number(fs.Events || 0);
  if (entry.events !== null && events > entry.events) entry.lastEventAt = now / 1000;
  entry.events = events;
  parts.events.textContent = String(events);
  parts.lastEvent.textContent = entry.lastEventAt
    ? formatTime(entry.lastEventAt)
    : events > 0 ? "before this page was opened" : "none yet";
  parts.collection.textContent = d.Settings?.FaceSearch?.CollectionId || "—";

  if (preview && preview.Timestamp !== entry.previewTs) {
    entry.previewTs = preview.Timestamp;
    clear(parts.preview);
    if (preview.Jpeg) {
      parts.preview.append(
        h("img", {
          src: imageUrl(preview.Jpeg),
          alt: `Recent frame of ${d.Name}, every face blurred, taken ${formatTime(preview.Timestamp)}`,
          width: 320,
        }),
      );
    } else {
      parts.preview.append(h("p", {class: "muted", text: "No preview: this processor keeps no frames."}));
    }
  } else if (preview === null && entry.previewTs === undefined) {
    entry.previewTs = null;
    clear(parts.preview);
    parts.preview.append(h("p", {class: "muted", text: "No preview for your role."}));
  }
}

export async function render(page, ctx) {
  const alert = h("p", {class: "error", role: "alert"});
  const cards = h("div", {class: "cards", id: "stream-cards"});
  const summary = h("p", {class: "muted", id: "streams-summary", text: "Loading…"});
  page.append(
    h("h1", {text: "Streams"}),
    h("p", {
      class: "lede",
      text: "Every stream processor, refreshed every 2 seconds. Previews appear only where the " +
        "processor's settings allow keeping a frame, and every face in them is blurred.",
    }),
    alert,
    summary,
    cards,
  );
  const entries = new Map();
  let stopped = false;
  let timer = null;
  let lastError = "";
  let canPreview = true;

  async function poll() {
    try {
      const list = await call("ListStreamProcessors", {});
      const names = (list.StreamProcessors || []).map((p) => p.Name);
      for (const [name, entry] of entries) {
        if (!names.includes(name)) {
          entry.card.remove();
          entries.delete(name);
        }
      }
      const results = await Promise.all(
        names.map(async (name) => {
          const d = await call("DescribeStreamProcessor", {Name: name});
          let preview = null;
          if (canPreview) {
            try {
              preview = await call("GetStreamPreview", {Name: name});
            } catch (err) {
              if (err.status === 403) canPreview = false;
              else throw err;
            }
          }
          return [name, d, preview];
        }),
      );
      if (stopped) return;
      const now = Date.now();
      results.forEach(([name, d, preview]) => {
        let entry = entries.get(name);
        if (!entry) {
          entry = makeCard(name);
          entries.set(name, entry);
          cards.append(entry.card);
        }
        updateCard(entry, d, preview, now, ctx.announce);
      });
      summary.textContent = names.length
        ? `${names.length} stream processor(s); updated ${formatTime(now / 1000)}`
        : "No stream processors yet (an admin creates them with CreateStreamProcessor).";
      page.dataset.updated = String(now);
      if (lastError) {
        alert.textContent = "";
        lastError = "";
      }
    } catch (err) {
      ctx.authFailed(err);
      const msg =
        err.status === 403
          ? `Streams are shown to viewer and auditor keys; yours is ${ctx.role}.`
          : describeError(err);
      if (msg !== lastError) alert.textContent = msg;
      lastError = msg;
      summary.textContent = "";
    }
    if (!stopped) timer = window.setTimeout(poll, POLL_MS);
  }
  await poll();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
