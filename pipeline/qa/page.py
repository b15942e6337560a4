"""The QA page as HTML: sections with a table of contents, warnings in words at the top,
tables that stay readable at any corpus size, and figures that cannot lack a title or axis
labels (:meth:`Page.figure` refuses them)."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

from ..extras import needs
from ..store.writer import atomic_write_bytes, atomic_write_text

# After load, the page records how many of its images decoded (checked by the browser test).
_IMG_CHECK = """<script>
window.addEventListener('load', () => {
  const imgs = Array.from(document.images);
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  document.body.dataset.images = imgs.length;
  document.body.dataset.imagesOk = ok;
});
</script>"""

_CSS = """body{font-family:sans-serif;max-width:1150px;margin:2em auto;color:#222;padding:0 1em}
table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;
font-size:13px;text-align:left}th{background:#f4f4f4}td.num{text-align:right}
img{max-width:100%;border:1px solid #eee}figure{margin:1em 0}
h2{border-bottom:2px solid #ddd;padding-bottom:3px;margin-top:1.6em}
.note{color:#555;font-size:13px}.warnings{background:#fff4e5;border:1px solid #f0a040;
padding:.4em 1em;margin:1em 0}.warnings li{margin:.2em 0}nav{font-size:13px;columns:3}
.examples{display:flex;flex-wrap:wrap;gap:12px}.example{width:250px;font-size:13px;
border:1px solid #ddd;padding:6px}.example img{width:112px;height:112px;display:block}
.good{color:#1a7f37}.bad{color:#b42318}figure.compact{display:inline-block;width:360px;
vertical-align:top;margin:.4em}"""


def plt():
    """matplotlib's pyplot on the Agg backend (the ``pipeline`` extra)."""
    with needs("the QA report", "pipeline"):
        import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    return pyplot


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def fmt(value: Any) -> str:
    if isinstance(value, float):
        return "n/a" if value != value else f"{value:.4g}"
    return str(value)


def table(rows: list[dict[str, Any]], limit: int = 200, more: str = "") -> str:
    """An HTML table of ``rows`` (at most ``limit``; ``more`` says where the rest are)."""
    if not rows:
        return "<p class='note'>none</p>"
    cols = list(dict.fromkeys(k for r in rows for k in r))
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in cols)

    def cell(v: Any) -> str:
        cls = " class='num'" if isinstance(v, (int, float)) and not isinstance(v, bool) else ""
        return f"<td{cls}>{html.escape(fmt(v) if v is not None else '')}</td>"

    body = "".join("<tr>" + "".join(cell(r.get(c)) for c in cols) + "</tr>"
                   for r in rows[:limit])
    tail = ""
    if len(rows) > limit:
        tail = (f"<p class='note'>The first {limit} of {len(rows)} rows"
                f"{'; ' + html.escape(more) if more else ''}.</p>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{tail}"


class FigureError(ValueError):
    """A figure without a title or axis labels: the page refuses it."""


def labels_of(fig) -> list[dict[str, str]]:
    """Title and axis labels of each of ``fig``'s plotting axes (a colour bar counts as an
    axis whose label is its one label); raises :class:`FigureError` when one is missing."""
    out = []
    suptitle = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) else ""
    for ax in fig.axes:
        if not ax.get_visible() or not ax.axison:
            continue
        if getattr(ax, "_colorbar", None) is not None or ax.get_label() == "<colorbar>":
            label = ax.get_ylabel() or ax.get_xlabel()
            if not label:
                raise FigureError("a colour bar without a label")
            out.append({"title": "colour bar", "x": label, "y": label})
            continue
        title = ax.get_title() or suptitle
        x, y = ax.get_xlabel(), ax.get_ylabel()
        if not (title and x and y):
            raise FigureError(f"axes without title/x label/y label: {title!r} {x!r} {y!r}")
        out.append({"title": title, "x": x, "y": y})
    if not out:
        raise FigureError("a figure without axes")
    return out


class Page:
    """One HTML page in ``out_dir`` (``index.html`` and its PNG files)."""

    def __init__(self, out_dir: Path, title: str) -> None:
        self.out = out_dir
        self.out.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.parts: list[str] = []
        self.figures: list[str] = []
        self.warnings: list[str] = []
        self.toc: list[tuple[str, str]] = []

    def h2(self, text: str) -> None:
        anchor = slug(text)
        while any(a == anchor for a, _ in self.toc):
            anchor += "-x"
        self.toc.append((anchor, text))
        self.parts.append(f"<h2 id='{anchor}'>{html.escape(text)}</h2>")

    def h3(self, text: str) -> None:
        self.parts.append(f"<h3>{html.escape(text)}</h3>")

    def p(self, text: str, note: bool = False) -> None:
        cls = " class='note'" if note else ""
        self.parts.append(f"<p{cls}>{html.escape(text)}</p>")

    def warn(self, text: str) -> None:
        """A warning, in words, in the box at the top of the page."""
        self.warnings.append(text)

    def raw(self, fragment: str) -> None:
        self.parts.append(fragment)

    def table(self, rows: list[dict[str, Any]], limit: int = 200, more: str = "") -> None:
        self.parts.append(table(rows, limit, more))

    def figure(self, fig, name: str, caption: str, compact: bool = False) -> None:
        """Save ``fig`` as ``<name>.png`` and show it; every plotting axis must have a title
        and both axis labels (a colour bar its label). ``compact``: side by side with the
        next compact figures (a grid of small ones)."""
        try:
            axes = labels_of(fig)
        except FigureError as e:
            plt().close(fig)
            raise FigureError(f"figure {name}: {e}") from None
        path = self.out / f"{name}.png"
        png = io.BytesIO()
        fig.savefig(png, format="png", dpi=90, bbox_inches="tight")
        plt().close(fig)
        atomic_write_bytes(path, png.getvalue())  # whole, and never through a planted link
        self.figures.append(path.name)
        first = axes[0]
        cls = "chart compact" if compact else "chart"
        self.parts.append(
            f"<figure class='{cls}' data-title='{html.escape(first['title'])}' "
            f"data-xlabel='{html.escape(first['x'])}' data-ylabel='{html.escape(first['y'])}'>"
            f"<img src='{path.name}' alt='{html.escape(first['title'])}'>"
            f"<figcaption class='note'>{html.escape(caption)}</figcaption></figure>"
        )

    def image(self, path: Path, caption: str) -> None:
        self.figures.append(path.name)
        self.parts.append(
            f"<figure class='picture'><img src='{html.escape(path.name)}' "
            f"alt='{html.escape(caption)}'><figcaption class='note'>{html.escape(caption)}"
            f"</figcaption></figure>"
        )

    def write(self) -> Path:
        warn = (
            "<div class='warnings' id='warnings-in-brief'><strong>Warnings</strong><ul>"
            + "".join(f"<li>{html.escape(w)}</li>" for w in self.warnings) + "</ul></div>"
            if self.warnings else
            "<p class='note' id='warnings-in-brief'>No warnings: no clip failed or was doubted "
            "by any stage.</p>"
        )
        nav = "<nav>" + "".join(
            f"<div><a href='#{a}'>{html.escape(t)}</a></div>" for a, t in self.toc
        ) + "</nav>"
        page = (
            f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>"
            f"{html.escape(self.title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(self.title)}</h1>{warn}{nav}{''.join(self.parts)}{_IMG_CHECK}"
            f"</body></html>\n"
        )
        path = self.out / "index.html"
        atomic_write_text(path, page)
        return path
