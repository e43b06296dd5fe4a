// Review: the queue of candidate matches; the stream's face crop beside the enrolled photos;
// confirm or reject with a reason. N distinct reviewer keys release the alert.
import {call, describeError} from "./api.js";
import {clear, dl, formatTime, h, imageUrl} from "./dom.js";

const POLL_MS = 5000;
const STATUSES = [
  ["PENDING", "Pending"],
  ["CONFIRMED", "Confirmed"],
  ["REJECTED", "Rejected"],
  ["", "All"],
];

function who(c) {
  return c.ExternalImageId || c.FaceId;
}

function confirmations(c) {
  const n = (c.Decisions || []).filter((d) => d.Decision === "CONFIRM").length;
  return `${n} of ${c.RequiredConfirmations}`;
}

function candidateLabel(c) {
  return `${who(c)}, similarity ${Number(c.Similarity).toFixed(1)}%, stream ${c.StreamProcessorName}, ` +
    `${formatTime(c.ServerTimestamp)}, ${c.Status.toLowerCase()}, ${confirmations(c)} confirmations`;
}

function figure(b64, alt, caption) {
  return h(
    "figure",
    {class: "face"},
    b64 ? h("img", {src: imageUrl(b64), alt, width: 160, height: 160}) : h("div", {class: "no-image", text: "no image kept"}),
    h("figcaption", {text: caption}),
  );
}

export async function render(page, ctx) {
  const canDecide = ctx.has("reviewer");
  const alert = h("p", {class: "error", role: "alert"});
  const statusSelect = h(
    "select",
    {id: "review-status"},
    STATUSES.map(([v, label]) => h("option", {value: v, text: label})),
  );
  const refresh = h("button", {type: "button", class: "secondary", text: "Refresh"});
  const queue = h("ul", {class: "queue", id: "review-queue", "aria-label": "Candidate matches"});
  const queueNote = h("p", {class: "muted", id: "review-count"});
  const detail = h("section", {class: "detail", id: "review-detail", "aria-labelledby": "detail-title"});
  page.append(
    h("h1", {text: "Review"}),
    h("p", {
      class: "lede",
      text: "Matches against collections that require human confirmation wait here. Compare the face " +
        "from the stream with the enrolled photos; each reviewer decides once. No alert leaves the " +
        "system until enough different reviewers confirm; one rejection suppresses the whole track.",
    }),
    h("p", {class: "note", hidden: canDecide, text: `Your key's role is ${ctx.role}: you can look, ` +
      "but only reviewer keys can confirm or reject."}),
    alert,
    h(
      "div",
      {class: "review-layout"},
      h(
        "section",
        {class: "queue-pane", "aria-labelledby": "queue-title"},
        h("h2", {id: "queue-title", text: "Queue"}),
        h("div", {class: "toolbar"}, h("label", {for: "review-status", text: "Show"}), statusSelect, refresh),
        queueNote,
        queue,
      ),
      detail,
    ),
  );
  clear(detail).append(
    h("h2", {id: "detail-title", tabindex: "-1", text: "Candidate"}),
    h("p", {class: "muted", text: "Choose a candidate from the queue."}),
  );

  let selected = null;
  let stopped = false;
  let timer = null;
  let lastCount = null;

  // Polls, filter changes and decisions all reload the queue: only the newest answer renders.
  let generation = 0;

  async function loadQueue({announceChange = false} = {}) {
    const mine = ++generation;
    try {
      const body = {MaxResults: 200};
      if (statusSelect.value) body.Status = statusSelect.value;
      const out = await call("ListMatchCandidates", body);
      if (stopped || mine !== generation) return;
      const items = out.Candidates || [];
      // Rebuilt every few seconds: keep a keyboard user's focus on the same candidate.
      const focused = queue.contains(document.activeElement) ? document.activeElement.dataset.eventId : null;
      clear(queue);
      for (const c of items) {
        const current = c.EventId === selected;
        const button = h(
          "button",
          {
            type: "button",
            class: `candidate status-${c.Status.toLowerCase()}`,
            "aria-current": current ? "true" : null,
            dataset: {eventId: c.EventId, status: c.Status},
            on: {click: () => open(c.EventId)},
          },
          h("span", {class: "cand-who", text: who(c)}),
          h("span", {class: "meta", text: `${Number(c.Similarity).toFixed(1)}% · ${c.StreamProcessorName} · ${formatTime(c.ServerTimestamp)}`}),
          h("span", {class: `badge status-${c.Status.toLowerCase()}`, text: `${c.Status} ${confirmations(c)}`}),
        );
        button.setAttribute("aria-label", candidateLabel(c));
        queue.append(h("li", {}, button));
        if (c.EventId === focused) button.focus();
      }
      const label = statusSelect.selectedOptions[0].textContent.toLowerCase();
      queueNote.textContent = items.length ? `${items.length} ${label === "all" ? "" : `${label} `}candidate(s)` : `No ${label === "all" ? "" : `${label} `}candidates.`;
      if (announceChange && lastCount !== null && items.length !== lastCount) ctx.announce(queueNote.textContent);
      lastCount = items.length;
      alert.textContent = "";
    } catch (err) {
      if (mine !== generation) return;
      ctx.authFailed(err);
      alert.textContent =
        err.status === 403
          ? `The review queue is for reviewer, auditor and admin keys; yours is ${ctx.role}.`
          : describeError(err);
    }
  }

  function decisionsList(c) {
    const ds = c.Decisions || [];
    if (!ds.length) return h("p", {class: "muted", text: "No decisions yet."});
    return h(
      "ul",
      {class: "decisions"},
      ds.map((d) => h("li", {text: `${d.Decision} by ${d.Reviewer} at ${formatTime(d.Timestamp)}${d.Reason ? `: “${d.Reason}”` : ""}`})),
    );
  }

  function renderDetail(data, message = "") {
    const c = data.Candidate;
    clear(detail);
    detail.dataset.eventId = c.EventId;
    detail.dataset.status = c.Status;
    detail.dataset.released = String(Boolean(c.Released));
    const enrolled = data.EnrolledFaces || [];
    const mine = (c.Decisions || []).find((d) => d.Reviewer === ctx.keyId);
    detail.append(
      h("h2", {id: "detail-title", tabindex: "-1", text: `Candidate: ${who(c)}`}),
      h(
        "div",
        {class: "faces"},
        figure(
          data.StreamFace && data.StreamFace.Jpeg,
          `Face from stream ${c.StreamProcessorName} at ${formatTime(c.ServerTimestamp)}`,
          "From the stream",
        ),
        enrolled.length
          ? enrolled.map((f) => figure(f.Jpeg, `Enrolled photo of ${f.ExternalImageId || f.FaceId}`, `Enrolled: ${f.ExternalImageId || f.FaceId}`))
          : h("p", {class: "muted", text: "No enrolled photo: the person may have been erased."}),
      ),
      dl([
        ["Similarity", `${Number(c.Similarity).toFixed(2)}%`],
        ["Stream", c.StreamProcessorName],
        ["Time", `${formatTime(c.ServerTimestamp)} (${Number(c.FrameOffsetInSeconds).toFixed(2)} s into the stream)`],
        ["Track", c.TrackId],
        ["Collection", c.CollectionId],
        ["Status", c.Status],
        ["Confirmations", confirmations(c)],
        ["Alert released", c.Released ? "yes" : "no"],
      ]),
      h("h3", {text: "Decisions"}),
      decisionsList(c),
    );
    const result = h("p", {class: "result", role: "status", id: "review-result", text: message});
    if (c.Status !== "PENDING") {
      detail.append(h("p", {class: "note", text: `Decided: ${c.Status}${c.Released ? "; the alert was released." : "."}`}));
    } else if (mine) {
      detail.append(h("p", {class: "note", id: "already-reviewed", text: `You already reviewed this candidate (${mine.Decision}). Another reviewer must decide.`}));
    } else if (canDecide) {
      const reason = h("textarea", {id: "review-reason", rows: 2, maxlength: 500});
      const decide = async (decision, button) => {
        for (const b of detail.querySelectorAll("button")) b.disabled = true;
        try {
          const out = await call("ReviewMatchCandidate", {EventId: c.EventId, Decision: decision, Reason: reason.value.trim()});
          const after = out.Candidate;
          const msg =
            decision === "REJECT"
              ? "Rejected: no alert will be sent for this track."
              : after.Released
                ? `Confirmed by ${confirmations(after)} reviewers: the alert was released.`
                : `Your confirmation is recorded: ${confirmations(after)}. Another reviewer must confirm.`;
          ctx.announce(msg);
          await open(c.EventId, msg);
          await loadQueue();
        } catch (err) {
          ctx.authFailed(err);
          alert.textContent = describeError(err);
          for (const b of detail.querySelectorAll("button")) b.disabled = false;
          button.focus();
        }
      };
      const confirmBtn = h("button", {type: "button", class: "primary", text: "Confirm match"});
      const rejectBtn = h("button", {type: "button", class: "danger", text: "Reject match"});
      confirmBtn.addEventListener("click", () => decide("CONFIRM", confirmBtn));
      rejectBtn.addEventListener("click", () => decide("REJECT", rejectBtn));
      detail.append(
        h("div", {class: "field"}, h("label", {for: "review-reason", text: "Reason (kept in the audit log)"}), reason),
        h("div", {class: "actions"}, confirmBtn, rejectBtn),
      );
    }
    detail.append(result);
  }

  async function open(eventId, message = "") {
    selected = eventId;
    for (const b of queue.querySelectorAll("button.candidate")) {
      if (b.dataset.eventId === eventId) b.setAttribute("aria-current", "true");
      else b.removeAttribute("aria-current");
    }
    try {
      const data = await call("GetMatchCandidate", {EventId: eventId});
      if (stopped) return;
      renderDetail(data, message);
      if (!message) detail.querySelector("h2").focus();
    } catch (err) {
      ctx.authFailed(err);
      alert.textContent = describeError(err);
    }
  }

  statusSelect.addEventListener("change", () => loadQueue());
  refresh.addEventListener("click", async () => {
    await loadQueue();
    ctx.announce(queueNote.textContent);
  });

  async function poll() {
    await loadQueue({announceChange: true});
    if (!stopped) timer = window.setTimeout(poll, POLL_MS);
  }
  await poll();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}
