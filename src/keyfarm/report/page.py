"""The HTML shell shared by the report pages: a strict Content-Security-Policy and the assets.

Stage: report. Pages are offline: `default-src 'none'` forbids every request, inline scripts are
allowed by their SHA-256 hash only (so an injected `onerror=` attribute would not run even if an
escaping bug let one through), and vis-network is either copied beside the pages (assets/) or
inlined for a self-contained page (the notebook's).
"""
from __future__ import annotations

import base64
import hashlib
from functools import lru_cache
from importlib import resources
from pathlib import Path

import pyvis

from keyfarm.report.escape import esc, script_json

VIS_JS = "vis-network.min.js"


def vis_network_source() -> str:
    """vis-network as shipped inside the pyvis package (the version pyvis's own pages use)."""
    return (Path(pyvis.__file__).parent / "lib" / "vis-9.1.2" / VIS_JS).read_text(encoding="utf-8")


@lru_cache(maxsize=None)
def asset(name: str) -> str:
    """One of keyfarm's own assets (CSS or JS) from keyfarm/report/assets/."""
    return resources.files("keyfarm.report").joinpath("assets", name).read_text(encoding="utf-8")


def _inline_script(code: str) -> str:
    if "</script" in code.lower():
        raise ValueError("inline script contains </script")
    return code


def _sha256(code: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(code.encode("utf-8")).digest()).decode() + "'"


ASSET_FILES = ("report.css", "cluster.js", "index.js")   # copied to report/assets/ by write_report


def html_page(title: str, body: str, *, scripts: list[str] = (), data=None, vis: str | None = None,
              sources: list[str] = (), assets: str | None = None, data_plain: bool = False) -> str:
    """A complete page: `body` (already escaped HTML), `data` embedded as JSON for `scripts`.

    `scripts`: names of keyfarm's own scripts (assets/). `assets`: the relative URL of the
    report's assets folder, whose copies of the stylesheet and scripts the page loads (a
    report's 1,000 pages then do not each carry them); None inlines them (a self-contained page).
    `vis`: None (no graph library), a relative URL of vis-network.min.js, or "inline".
    `sources`: relative URLs of further script files loaded in the head (beside the pages).
    `data_plain`: `data` holds only JSON types already (see escape.script_json).
    """
    inline = [] if assets else [_inline_script(asset(name)) for name in scripts]
    head_scripts = ""
    if vis == "inline":
        inline.insert(0, _inline_script(vis_network_source()))
    elif vis:
        head_scripts = f'<script src="{esc(vis)}"></script>\n'
    head_scripts += "".join(f'<script src="{esc(src)}"></script>\n' for src in sources)
    hashes = " ".join(_sha256(code) for code in inline)
    csp = (f"default-src 'none'; script-src 'self' file: {hashes}; style-src 'self' file: 'unsafe-inline'; "
           "img-src data:; base-uri 'none'; form-action 'none'")
    data_block = (f'<script type="application/json" id="kf-data">{script_json(data, plain_already=data_plain)}</script>\n'
                  if data is not None else "")
    vis_inline = f"<script>{inline.pop(0)}</script>\n" if vis == "inline" else ""
    if assets:
        style = f'<link rel="stylesheet" href="{esc(assets)}report.css">'
        tail = "".join(f'<script src="{esc(assets)}{esc(name)}"></script>\n' for name in scripts)
    else:
        style = f"<style>{asset('report.css')}</style>"
        tail = "".join(f"<script>{code}</script>\n" for code in inline)
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head>\n<meta charset=\"utf-8\">\n"
            f"<meta http-equiv=\"Content-Security-Policy\" content=\"{csp}\">\n"
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
            f"<title>{esc(title)}</title>\n{style}\n"
            f"{head_scripts}{vis_inline}</head>\n<body>\n{body}\n{data_block}{tail}</body></html>\n")
