"""Accessibility checks run inside the real browser on whatever page is showing.

- contrast: every visible element with its own text has a WCAG contrast ratio of at least 4.5
  (3 for large text) against the background it is drawn on (alpha-blended up the tree);
- names: every visible form control and button has an accessible name (a <label>, aria-label
  or, for buttons, text);
- focus: the focused element is drawn with a visible outline.
"""

from __future__ import annotations

from typing import Any

CONTRAST_JS = r"""
() => {
  const parse = (c) => {
    const m = /rgba?\(([^)]+)\)/.exec(c || "");
    if (!m) return null;
    const p = m[1].split(/[\s,\/]+/).filter(Boolean).map(Number);
    return {r: p[0], g: p[1], b: p[2], a: p.length > 3 ? p[3] : 1};
  };
  const blend = (top, bottom) => ({
    r: top.r * top.a + bottom.r * (1 - top.a),
    g: top.g * top.a + bottom.g * (1 - top.a),
    b: top.b * top.a + bottom.b * (1 - top.a),
    a: 1,
  });
  const lum = ({r, g, b}) => {
    const f = (v) => { v /= 255; return v <= 0.03928 ? v / 12.92 : Math.pow((v + 0.055) / 1.055, 2.4); };
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    const layers = [];
    for (let e = el; e; e = e.parentElement) {
      const c = parse(getComputedStyle(e).backgroundColor);
      if (c && c.a > 0) { layers.push(c); if (c.a >= 1) break; }
    }
    let color = {r: 255, g: 255, b: 255, a: 1};
    for (const layer of layers.reverse()) color = blend(layer, color);
    return color;
  };
  const bad = [];
  let checked = 0;
  for (const el of document.querySelectorAll("body *")) {
    if (!el.checkVisibility({opacityProperty: true, visibilityProperty: true})) continue;
    const text = [...el.childNodes].filter((n) => n.nodeType === 3 && n.textContent.trim())
      .map((n) => n.textContent.trim()).join(" ");
    if (!text) continue;
    const st = getComputedStyle(el);
    const bg = background(el);
    const fg = blend(parse(st.color), bg);
    const l1 = lum(fg), l2 = lum(bg);
    const ratio = (Math.max(l1, l2) + 0.05) / (Math.min(l1, l2) + 0.05);
    const size = parseFloat(st.fontSize);
    const large = size >= 24 || (Number(st.fontWeight) >= 700 && size >= 18.66);
    checked += 1;
    const what = `${el.tagName.toLowerCase()}.${el.className} "${text.slice(0, 40)}"`;
    if (ratio < (large ? 3 : 4.5)) bad.push(`${what}: ${ratio.toFixed(2)}`);
  }
  return {checked, bad};
}
"""

NAMES_JS = r"""
() => [...document.querySelectorAll("input, select, textarea, button")]
  .filter((e) => e.type !== "hidden" && e.checkVisibility())
  .filter((e) => !((e.labels && e.labels.length) || e.getAttribute("aria-label") ||
                   (e.tagName === "BUTTON" && e.textContent.trim())))
  .map((e) => e.outerHTML.slice(0, 120))
"""

FOCUS_JS = r"""
() => {
  const el = document.activeElement;
  if (!el || el === document.body) return null;
  const st = getComputedStyle(el);
  return {tag: el.tagName.toLowerCase(), id: el.id, text: (el.textContent || "").trim().slice(0, 40),
          outline: st.outlineStyle, width: parseFloat(st.outlineWidth)};
}
"""


LEAKS_JS = r"""
() => {
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  const found = [];
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!el || el.closest("code, pre, .mono, [hidden]") || !el.checkVisibility()) continue;
    const raw = /\[object |\bundefined\b|\bnull\b|\bNaN\b/;
    if (raw.test(n.textContent)) found.push(n.textContent.trim().slice(0, 80));
  }
  return found;
}
"""


def check_page(page: Any, where: str) -> int:
    """Contrast and names on the page as it is now, and no programming value shown as text
    ("null", "[object ...]"); returns how many text elements were checked."""
    leaks = page.evaluate(LEAKS_JS)
    assert not leaks, f"{where}: raw values shown to people: {leaks}"
    contrast = page.evaluate(CONTRAST_JS)
    assert not contrast["bad"], f"{where}: text below WCAG AA contrast: {contrast['bad']}"
    unnamed = page.evaluate(NAMES_JS)
    assert not unnamed, f"{where}: controls without an accessible name: {unnamed}"
    return int(contrast["checked"])


def focused(page: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None = page.evaluate(FOCUS_JS)
    return out


def tab_to(page: Any, predicate: Any, max_tabs: int = 40) -> dict[str, Any]:
    """Press Tab until ``predicate(focused element info)``; every stop must show a visible outline."""
    for _ in range(max_tabs):
        page.keyboard.press("Tab")
        info = focused(page)
        if info is None:
            continue
        assert info["outline"] != "none" and info["width"] >= 2, f"focus not visible on {info}"
        if predicate(info):
            return info
    raise AssertionError(f"could not reach the element with Tab in {max_tabs} presses")
