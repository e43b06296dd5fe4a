// Collections: identities and their faces (with enrolled thumbnails where kept), add and remove
// faces (indexer keys), erase a person everywhere (admin keys, with a typed confirmation).
import {call, describeError, upload} from "./api.js";
import {clear, dl, field, formatMs, h, imageUrl} from "./dom.js";

const MAX_FACES = 2000;
const THUMB_ROLES = new Set(["admin", "indexer", "reviewer", "auditor"]);

async function allFaces(collection) {
  const faces = [];
  let token;
  do {
    const body = {CollectionId: collection, MaxResults: 1000};
    if (token) body.NextToken = token;
    const out = await call("ListFaces", body);
    faces.push(...(out.Faces || []));
    token = out.NextToken;
  } while (token && faces.length < MAX_FACES);
  return {faces, truncated: Boolean(token)};
}

async function thumbnails(collection, faceIds) {
  const found = new Map();
  for (let i = 0; i < faceIds.length; i += 100) {
    const out = await call("GetFaceThumbnails", {CollectionId: collection, FaceIds: faceIds.slice(i, i + 100)});
    for (const t of out.Thumbnails || []) if (t.Jpeg) found.set(t.FaceId, t.Jpeg);
  }
  return found;
}

export async function render(page, ctx) {
  const canIndex = ctx.has("indexer");
  const canErase = ctx.has("admin");
  const alert = h("p", {class: "error", role: "alert"});
  const picker = h("select", {id: "collection-select"});
  const facts = h("div", {id: "collection-facts"});
  const identities = h("div", {id: "identities"});
  const addResult = h("p", {class: "result", role: "status"});
  const eraseResult = h("div", {class: "result", role: "status", id: "erase-result"});
  let collection = null;

  // ── add a face ─────────────────────────────────────────────────────────────────
  const photo = h("input", {type: "file", accept: "image/jpeg,image/png,image/webp,image/bmp", required: true});
  const externalId = h("input", {type: "text", spellcheck: "false", maxlength: 255, pattern: "[A-Za-z0-9_.\\-:]+", required: true});
  const addButton = h("button", {type: "submit", class: "primary", text: "Add face"});
  const addForm = h(
    "form",
    {class: "panel", id: "add-face-form", "aria-labelledby": "add-title", method: "post"},
    h("h2", {id: "add-title", text: "Add a face"}),
    canIndex
      ? [
          field("Photo (JPEG or PNG, one face)", photo),
          field("External image id (who this is)", externalId, "Letters, digits and . _ - : only."),
          addButton,
          addResult,
        ]
      : h("p", {class: "note", text: `Adding and removing faces needs an indexer key; yours is ${ctx.role}.`}),
  );
  addForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (!collection) return;
    if (!photo.files.length || !externalId.value.trim()) {
      addResult.textContent = "Choose a photo and give an external image id.";
      return;
    }
    addButton.disabled = true;
    addResult.textContent = "Adding…";
    try {
      const out = await upload("IndexFaces", {Image: photo.files[0]}, {
        CollectionId: collection,
        ExternalImageId: externalId.value.trim(),
        MaxFaces: 1,
      });
      const n = (out.FaceRecords || []).length;
      addResult.textContent = n
        ? `Added ${n} face for ${externalId.value.trim()}.`
        : `No face was added: ${(out.UnindexedFaces || []).length ? "the face was filtered out (quality)" : "no face found in the photo"}.`;
      ctx.announce(addResult.textContent);
      photo.value = "";
      await load();
    } catch (err) {
      ctx.authFailed(err);
      addResult.textContent = describeError(err);
    } finally {
      addButton.disabled = false;
    }
  });

  // ── erase a person ─────────────────────────────────────────────────────────────
  const eraseId = h("input", {type: "text", spellcheck: "false", maxlength: 255, required: true});
  const eraseReason = h("input", {type: "text", maxlength: 500, required: true});
  const scopeThis = h("input", {type: "radio", name: "erase-scope", value: "this", id: "erase-scope-this", checked: true});
  const scopeAll = h("input", {type: "radio", name: "erase-scope", value: "all", id: "erase-scope-all"});
  const eraseConfirm = h("input", {type: "text", spellcheck: "false", autocomplete: "off", maxlength: 255});
  const eraseButton = h("button", {type: "submit", class: "danger", text: "Erase person", disabled: true});
  const syncErase = () => {
    const id = eraseId.value.trim();
    eraseButton.disabled = !(id && eraseReason.value.trim() && eraseConfirm.value === id);
  };
  for (const el of [eraseId, eraseReason, eraseConfirm]) el.addEventListener("input", syncErase);
  const eraseForm = h(
    "form",
    {class: "panel danger-zone", id: "erase-form", "aria-labelledby": "erase-title", method: "post"},
    h("h2", {id: "erase-title", text: "Erase a person"}),
    canErase
      ? [
          h("p", {text: "Deletes every stored face of the person and every match event naming them. " +
            "It cannot be undone; the audit log keeps the fact, with the id hashed."}),
          field("External image id to erase", eraseId),
          field("Reason (case or request reference; audited)", eraseReason),
          h(
            "fieldset",
            {},
            h("legend", {text: "Where"}),
            h("div", {class: "radio"}, scopeThis, h("label", {for: "erase-scope-this", text: "This collection only"})),
            h("div", {class: "radio"}, scopeAll, h("label", {for: "erase-scope-all", text: "Every collection"})),
          ),
          field("Type the external image id again to confirm", eraseConfirm,
            "The button is enabled once both ids match exactly."),
          eraseButton,
          eraseResult,
        ]
      : h("p", {class: "note", text: `Erasure needs an admin key; yours is ${ctx.role}.`}),
  );
  eraseForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const id = eraseId.value.trim();
    if (eraseButton.disabled || eraseConfirm.value !== id) return;
    eraseButton.disabled = true;
    clear(eraseResult).append("Erasing…");
    const reason = eraseReason.value.trim();
    const body = {ExternalImageId: id, Purpose: reason, CollectionIds: scopeThis.checked && collection ? [collection] : "all"};
    try {
      const out = await call("ErasePerson", body, {purpose: reason});
      const total = out.Total ?? Object.values(out.DeletedFaces || {}).reduce((a, b) => a + b, 0);
      const msg = `Erased ${id}: ${total} face(s), ${out.DeletedEvents ?? 0} match event(s) and ` +
        `${out.DeletedThumbnails ?? 0} enrolled photo(s) deleted.`;
      const counts = [
        ["Match events", out.DeletedEvents],
        ["Enrolled photos", out.DeletedThumbnails],
        ["Review candidates", out.DeletedCandidates],
        ["Evidence frames", out.DeletedEvidenceFrames],
        ["Undelivered alerts", out.DeletedSpooledRecords],
        ["JSON-lines records", out.DeletedJsonlLines],
      ].filter(([, n]) => n !== undefined && n !== null);
      clear(eraseResult).append(
        h("p", {text: msg}),
        dl([
          ...Object.entries(out.DeletedFaces || {}).map(([c, n]) => [`Faces in ${c}`, String(n)]),
          ...counts.map(([what, n]) => [what, String(n)]),
        ]),
      );
      ctx.announce(msg);
      eraseId.value = "";
      eraseConfirm.value = "";
      await load();
    } catch (err) {
      ctx.authFailed(err);
      clear(eraseResult).append(describeError(err));
      eraseButton.disabled = false;
    }
  });

  function startErase(ext) {
    eraseId.value = ext;
    eraseConfirm.value = "";
    syncErase();
    eraseForm.scrollIntoView({block: "start"});
    eraseReason.focus();
  }

  // ── identities ─────────────────────────────────────────────────────────────────
  function removeControls(face, cell) {
    const remove = h("button", {type: "button", class: "secondary small", text: "Remove face",
      "aria-label": `Remove face ${face.FaceId} of ${face.ExternalImageId || "unlabelled"}`});
    remove.addEventListener("click", () => {
      const yes = h("button", {type: "button", class: "danger small", text: "Yes, remove",
        "aria-label": `Yes, remove face ${face.FaceId}`});
      const no = h("button", {type: "button", class: "secondary small", text: "Cancel"});
      clear(cell).append(h("span", {class: "confirm-text", text: "Remove this face? "}), yes, " ", no);
      yes.addEventListener("click", async () => {
        yes.disabled = no.disabled = true;
        try {
          await call("DeleteFaces", {CollectionId: collection, FaceIds: [face.FaceId]});
          ctx.announce(`Removed face ${face.FaceId}`);
          await load();
          picker.focus();
        } catch (err) {
          ctx.authFailed(err);
          alert.textContent = describeError(err);
          clear(cell).append(removeControls(face, cell));
        }
      });
      no.addEventListener("click", () => {
        clear(cell).append(removeControls(face, cell));
        cell.querySelector("button").focus();
      });
      yes.focus();
    });
    return remove;
  }

  function renderIdentities(faces, thumbs, truncated, users) {
    clear(identities);
    const groups = new Map();
    for (const f of faces) {
      const key = f.ExternalImageId || "";
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push(f);
    }
    identities.append(h("h2", {id: "identities-title", text: `Identities (${groups.size})`}));
    if (truncated) identities.append(h("p", {class: "note", text: `Showing the first ${faces.length} faces.`}));
    if (!groups.size) {
      identities.append(h("p", {class: "muted", text: "No faces in this collection."}));
    } else {
      const rows = [];
      for (const [ext, list] of [...groups].sort(([a], [b]) => a.localeCompare(b))) {
        const faceItems = list.map((f) => {
          const cell = h("span", {class: "face-actions"});
          if (canIndex) cell.append(removeControls(f, cell));
          const jpeg = thumbs.get(f.FaceId);
          return h(
            "li",
            {class: "face-item", dataset: {faceId: f.FaceId}},
            jpeg
              ? h("img", {src: imageUrl(jpeg), alt: `Enrolled photo of ${ext || "an unlabelled face"}`, width: 64, height: 64})
              : h("span", {class: "no-thumb", "aria-hidden": "true", text: "—"}),
            h("code", {text: f.FaceId}),
            f.UserId ? h("span", {class: "muted", text: ` user ${f.UserId}`}) : null,
            cell,
          );
        });
        rows.push(
          h(
            "tr",
            {dataset: {externalId: ext}},
            h("th", {scope: "row", text: ext || "(no external id)"}),
            h("td", {text: String(list.length)}),
            h("td", {}, h("ul", {class: "face-list"}, faceItems)),
            h(
              "td",
              {},
              canErase && ext
                ? h("button", {type: "button", class: "secondary small", text: "Erase…",
                    "aria-label": `Erase ${ext}`, on: {click: () => startErase(ext)}})
                : null,
            ),
          ),
        );
      }
      identities.append(
        h(
          "table",
          {class: "data", "aria-labelledby": "identities-title"},
          h("thead", {}, h("tr", {}, ["External image id", "Faces", "Face ids", "Actions"].map((t) => h("th", {scope: "col", text: t})))),
          h("tbody", {}, rows),
        ),
      );
    }
    if (users.length) {
      identities.append(
        h("h3", {text: `Users (${users.length})`}),
        h("ul", {class: "users"}, users.map((u) => h("li", {text: `${u.UserId} (${u.UserStatus || "ACTIVE"})`}))),
      );
    }
  }

  // Loads can overlap (picking a collection while the first one loads, adding a face): only
  // the newest may render, or an older, slower answer would put back what was just changed.
  let generation = 0;

  async function load() {
    if (!collection) return;
    const mine = ++generation;
    try {
      const [info, policy, listed, users] = await Promise.all([
        call("DescribeCollection", {CollectionId: collection}),
        call("DescribeReviewPolicy", {CollectionId: collection}).catch(() => null),
        allFaces(collection),
        call("ListUsers", {CollectionId: collection, MaxResults: 500}).catch(() => ({Users: []})),
      ]);
      let thumbs = new Map();
      if ([...THUMB_ROLES].some((r) => ctx.has(r)) && listed.faces.length) {
        try {
          thumbs = await thumbnails(collection, listed.faces.map((f) => f.FaceId));
        } catch (err) {
          if (err.status !== 403) alert.textContent = describeError(err);
        }
      }
      if (mine !== generation) return; // a newer load is under way
      clear(facts).append(
        dl([
          ["Faces", String(info.FaceCount)],
          ["Model", info.FaceModelVersion || "—"],
          ["Created", formatMs(info.CreationTimestamp ? info.CreationTimestamp * 1000 : null)],
          ["Human confirmation", policy ? (policy.RequiredConfirmations ? `${policy.RequiredConfirmations} reviewer(s) per match` : "off") : "—"],
        ]),
      );
      renderIdentities(listed.faces, thumbs, listed.truncated, users.Users || []);
      alert.textContent = "";
    } catch (err) {
      if (mine !== generation) return;
      ctx.authFailed(err);
      alert.textContent = describeError(err);
    }
  }

  picker.addEventListener("change", () => {
    collection = picker.value;
    load();
  });

  page.append(
    h("h1", {text: "Collections"}),
    h("p", {class: "lede", text: "Who is enrolled, with which photos. Changes here are audited."}),
    alert,
    h("div", {class: "toolbar"}, h("label", {for: "collection-select", text: "Collection"}), picker),
    facts,
    identities,
    h("div", {class: "panels"}, addForm, eraseForm),
  );

  try {
    const out = await call("ListCollections", {MaxResults: 1000});
    const names = out.CollectionIds || [];
    for (const n of names) picker.append(h("option", {value: n, text: n}));
    if (!names.length) {
      identities.append(h("p", {class: "muted", text: "No collections yet (an admin creates them)."}));
      picker.disabled = true;
    } else {
      const wanted = sessionStorage.getItem("facestream.console.collection");
      collection = names.includes(wanted) ? wanted : names[0];
      picker.value = collection;
      await load();
    }
  } catch (err) {
    ctx.authFailed(err);
    alert.textContent = describeError(err);
  }
  picker.addEventListener("change", () => sessionStorage.setItem("facestream.console.collection", picker.value));
  return () => {};
}
