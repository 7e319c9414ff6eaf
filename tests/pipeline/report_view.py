"""Look at a Snakemake report as a person would: headless Chromium opens the self-contained
report.html, shows one figure the way a click on it in "Results" does (the report app's
`app.setView`), and takes a screenshot."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

CHROMIUM = ("chromium", "chromium-browser", "google-chrome")
_SHOW = """<script>window.addEventListener('load', () => setTimeout(() => {{
  const path = Object.keys(results).find(k => k.endsWith('/{name}'));
  app.setView({{content: '{content}', contentPath: results[path].data_uri, resultPath: path}});
}}, 200));</script>"""


def chromium() -> str | None:
    return next((shutil.which(c) for c in CHROMIUM if shutil.which(c)), None)


def screenshot(report_html: Path, out_png: Path, figure: str | None = None, size=(1400, 1000),
               content: str = "img") -> Path:
    """Screenshot of the report's home page, or of `figure` (a file name such as fig_hessian.png;
    `content` "html" for an HTML result such as scorecard.html)."""
    page = report_html
    if figure is not None:
        html = report_html.read_text()
        cut = html.rfind("</body>")
        page = out_png.with_suffix(".html")
        page.write_text(html[:cut] + _SHOW.format(name=figure, content=content) + html[cut:])
    cmd = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--window-size={size[0]},{size[1]}", "--virtual-time-budget=5000", f"--screenshot={out_png}",
           page.resolve().as_uri()]
    subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    return out_png


def colour_pixels(png: Path, rgb_hex: str, tol: int = 40) -> int:
    """Pixels within `tol` of a colour in every channel."""
    import numpy as np
    from PIL import Image

    img = np.asarray(Image.open(png).convert("RGB")).astype(int)
    target = np.array([int(rgb_hex.lstrip("#")[i:i + 2], 16) for i in (0, 2, 4)])
    return int((np.abs(img - target) <= tol).all(-1).sum())
