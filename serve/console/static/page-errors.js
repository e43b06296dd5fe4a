// Error rates: the latest per-group report (facestream report errors --save): plot and table.
import {call, describeError} from "./api.js";
import {dl, formatMs, h, imageUrl, pct} from "./dom.js";

function interval(ci) {
  return Array.isArray(ci) && ci.length === 2 ? `${pct(ci[0])} – ${pct(ci[1])}` : "—";
}

export async function render(page, ctx) {
  const alert = h("p", {class: "error", role: "alert"});
  const body = h("div", {id: "error-report"});
  page.append(
    h("h1", {text: "Error rates"}),
    h("p", {class: "lede", text: "False-match and false-non-match rates of the deployed model, per group of a " +
      "labelled set, with 95% intervals. Differences smaller than the intervals mean nothing."}),
    alert,
    body,
  );
  try {
    const out = await call("GetErrorReport", {});
    const r = out.Report;
    if (!r) {
      body.append(h("p", {class: "note"}, "No report yet. Run ",
        h("code", {text: "facestream report errors --pairs PAIRS --groups GROUPS --save"}),
        " on the server's state directory to publish one here."));
      return () => {};
    }
    const groups = r.groups || [];
    body.append(
      dl([
        ["Model", r.model || "—"],
        ["Similarity threshold", r.threshold === undefined ? "—" : String(r.threshold)],
        ["Pairs", r.pairs === undefined ? "—" : String(r.pairs)],
        ["Labelled set", r.pairs_file || "—"],
        ["Generated", formatMs(r.generated_at_ms)],
      ]),
      out.Png
        ? h("figure", {class: "plot"},
            h("img", {src: imageUrl(out.Png, "image/png"), alt: `Bar charts of false-match and false-non-match rate per group for ${r.model} at Similarity ${r.threshold}; the table below has the same numbers.`}),
            h("figcaption", {text: "Bars: rate; whiskers: 95% Wilson interval."}))
        : h("p", {class: "muted", text: "No plot was saved with this report."}),
      h(
        "table",
        {class: "data", id: "error-table"},
        h("caption", {text: `Per group at Similarity ${r.threshold}`}),
        h("thead", {}, h("tr", {}, ["Group", "Genuine pairs", "False non-matches", "FNMR", "FNMR 95% interval",
          "Impostor pairs", "False matches", "FMR", "FMR 95% interval"].map((t) => h("th", {scope: "col", text: t})))),
        h("tbody", {}, groups.map((g) => h("tr", {dataset: {group: g.group}},
          h("th", {scope: "row", text: g.group}),
          h("td", {text: String(g.genuine_pairs)}),
          h("td", {text: String(g.false_non_matches)}),
          h("td", {text: pct(g.fnmr)}),
          h("td", {text: interval(g.fnmr_ci95)}),
          h("td", {text: String(g.impostor_pairs)}),
          h("td", {text: String(g.false_matches)}),
          h("td", {text: pct(g.fmr)}),
          h("td", {text: interval(g.fmr_ci95)}),
        ))),
      ),
    );
  } catch (err) {
    ctx.authFailed(err);
    alert.textContent = describeError(err);
  }
  return () => {};
}
