// Audit: the hash chain's status, a searchable log (who, when, purpose, operation, result), export.
import {call, describeError} from "./api.js";
import {append, clear, field, formatMs, h} from "./dom.js";

const OPERATIONS = [
  "SearchFacesByImage", "SearchFaces", "SearchUsers", "SearchUsersByImage", "CompareFaces", "IndexFaces",
  "DeleteFaces", "StreamFaceMatch", "ReviewMatchCandidate", "ReleaseMatchAlert", "ErasePerson",
  "EnforceRetention", "StartStreamProcessor", "StopStreamProcessor", "CreateAccessKey", "RevokeAccessKey",
  "AccessDenied", "GetMatchCandidate", "GetFaceThumbnails", "VerifyAuditLog", "ExportAuditLog",
];
const EXPORT_CAP = 200_000;

function localInput(ms) {
  const d = new Date(ms - new Date().getTimezoneOffset() * 60_000);
  return d.toISOString().slice(0, 16);
}

function summary(obj) {
  const text = JSON.stringify(obj || {});
  return text === "{}" ? "" : text.length > 140 ? `${text.slice(0, 139)}…` : text;
}

export async function render(page, ctx) {
  const alert = h("p", {class: "error", role: "alert"});
  const chain = h("div", {class: "panel", id: "chain-status", "aria-live": "polite"});
  const verifyButton = h("button", {type: "button", class: "secondary", text: "Verify chain again"});

  const op = h("input", {type: "text", list: "audit-ops", spellcheck: "false", maxlength: 64});
  const keyId = h("input", {type: "text", spellcheck: "false", maxlength: 128});
  const purpose = h("input", {type: "text", maxlength: 500});
  const since = h("input", {type: "datetime-local", value: localInput(Date.now() - 24 * 3600 * 1000)});
  const until = h("input", {type: "datetime-local"});
  const max = h("input", {type: "number", min: 1, max: 10000, value: 500});
  const searchButton = h("button", {type: "submit", class: "primary", text: "Search"});
  const exportButton = h("button", {type: "button", class: "secondary", text: "Export JSON lines"});
  const count = h("p", {class: "muted", id: "audit-count", role: "status"});
  const results = h("div", {id: "audit-results"});
  const form = h(
    "form",
    {class: "filters", id: "audit-filters", method: "post", "aria-label": "Audit log filters"},
    field("Operation", op, "Exact name, e.g. ReviewMatchCandidate"),
    h("datalist", {id: "audit-ops"}, OPERATIONS.map((o) => h("option", {value: o}))),
    field("Access key id", keyId),
    field("Purpose contains", purpose),
    field("From (local time)", since),
    field("Until (local time)", until),
    field("At most", max),
    h("div", {class: "actions"}, searchButton, exportButton),
  );

  page.append(
    h("h1", {text: "Audit"}),
    h("p", {class: "lede", text: "Every search, match, decision, enrolment, deletion and key change, " +
      "hash-chained: changing or removing an entry breaks the chain."}),
    alert,
    h("section", {"aria-labelledby": "chain-title"}, h("h2", {id: "chain-title", text: "Chain status"}), chain, verifyButton),
    h("section", {"aria-labelledby": "search-title"}, h("h2", {id: "search-title", text: "Search the log"}), form, count, results),
  );

  function filters() {
    const body = {};
    if (op.value.trim()) body.Operation = op.value.trim();
    if (keyId.value.trim()) body.AccessKeyId = keyId.value.trim();
    if (purpose.value.trim()) body.PurposeContains = purpose.value.trim();
    if (since.value) body.SinceMs = new Date(since.value).getTime();
    if (until.value) body.UntilMs = new Date(until.value).getTime();
    return body;
  }

  async function verify() {
    verifyButton.disabled = true;
    try {
      const v = await call("VerifyAuditLog", {});
      clear(chain);
      chain.dataset.intact = String(v.ChainIntact);
      if (v.ChainIntact) {
        append(chain, [
          h("p", {}, h("span", {class: "badge status-running", text: "Intact"}),
            ` ${v.Entries} entries verified ${formatMs(v.VerifiedAtMs)}.`),
          v.LastSeq === null ? null : h("p", {class: "muted"}, "Newest entry: seq ", h("code", {text: String(v.LastSeq)}),
            ", hash ", h("code", {class: "hash", text: v.LastHash}), `, ${formatMs(v.LastTimestampMs)}. `,
            "Write these down: a later check that finds fewer entries or another hash means the log was cut."),
        ]);
      } else {
        chain.append(
          h("p", {}, h("span", {class: "badge status-failed", text: "Broken"}),
            ` at entry ${v.FirstBadSeq}: ${v.Reason}. ${v.Entries} entries before it verified.`),
        );
      }
      ctx.announce(v.ChainIntact ? `Audit chain intact, ${v.Entries} entries` : `Audit chain broken at entry ${v.FirstBadSeq}`);
    } catch (err) {
      ctx.authFailed(err);
      clear(chain).append(
        h("p", {text: err.status === 403 ? `Verifying the audit log needs an auditor key; yours is ${ctx.role}.` : describeError(err)}),
      );
    } finally {
      verifyButton.disabled = false;
    }
  }

  // Searches can overlap (the first page load, a click): only the newest may render.
  let generation = 0;

  async function search(event) {
    if (event) event.preventDefault();
    const mine = ++generation;
    searchButton.disabled = true;
    try {
      const body = {...filters(), MaxResults: Math.min(10000, Math.max(1, Number(max.value) || 500))};
      const out = await call("QueryAuditLog", body);
      if (mine !== generation) return; // a newer search is under way
      const entries = out.Entries || [];
      clear(results);
      count.textContent = `${entries.length} entr${entries.length === 1 ? "y" : "ies"}${entries.length === body.MaxResults ? " (the limit: narrow the filters to see later ones)" : ""}.`;
      if (entries.length) {
        results.append(
          h(
            "table",
            {class: "data", id: "audit-table", "aria-label": "Audit entries, oldest first"},
            h("thead", {}, h("tr", {}, ["Seq", "When", "Who", "Operation", "Purpose", "Result", "Details"].map((t) => h("th", {scope: "col", text: t})))),
            h(
              "tbody",
              {},
              entries.map((e) =>
                h(
                  "tr",
                  {dataset: {seq: e.seq, operation: e.operation}},
                  h("td", {text: String(e.seq)}),
                  h("td", {text: formatMs(e.ts_ms)}),
                  h("td", {}, h("code", {text: e.actor?.key_id || ""}), ` (${e.actor?.role || "?"})`),
                  h("td", {text: e.operation}),
                  h("td", {text: e.purpose || ""}),
                  h("td", {class: "mono", text: summary(e.results)}),
                  h("td", {}, h("details", {}, h("summary", {text: "Inputs and results"}),
                    h("pre", {text: JSON.stringify({inputs: e.inputs, results: e.results, hash: e.hash}, null, 1)}))),
                ),
              ),
            ),
          ),
        );
      }
      alert.textContent = "";
    } catch (err) {
      if (mine !== generation) return;
      ctx.authFailed(err);
      alert.textContent = err.status === 403 ? `Reading the audit log needs an auditor key; yours is ${ctx.role}.` : describeError(err);
    } finally {
      if (mine === generation) searchButton.disabled = false;
    }
  }

  async function exportLines() {
    exportButton.disabled = true;
    try {
      const parts = [];
      let from = 0;
      let total = 0;
      for (;;) {
        const out = await call("ExportAuditLog", {...filters(), FromSeq: from, MaxResults: 20000});
        parts.push(out.JsonLines);
        total += out.Count;
        if (out.NextSeq === null || out.NextSeq === undefined || total >= EXPORT_CAP) break;
        from = out.NextSeq;
      }
      const blob = new Blob(parts, {type: "application/x-ndjson"});
      const url = URL.createObjectURL(blob);
      const stamp = new Date().toISOString().replace(/[:.]/g, "-");
      const link = h("a", {href: url, download: `facestream-audit-${stamp}.jsonl`, hidden: true});
      document.body.append(link);
      link.click();
      link.remove();
      window.setTimeout(() => URL.revokeObjectURL(url), 60_000);
      count.textContent = `Exported ${total} entries as JSON lines (each with its hash).`;
      ctx.announce(count.textContent);
    } catch (err) {
      ctx.authFailed(err);
      alert.textContent = err.status === 403 ? `Exporting the audit log needs an auditor key; yours is ${ctx.role}.` : describeError(err);
    } finally {
      exportButton.disabled = false;
    }
  }

  verifyButton.addEventListener("click", verify);
  form.addEventListener("submit", search);
  exportButton.addEventListener("click", exportLines);
  await Promise.all([verify(), search()]);
  return () => {};
}
