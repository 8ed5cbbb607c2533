"""The report rules in a real run of the whole pipeline on a tiny config, then the HTML
report opened in a real headless Chromium.

One `snakemake` run in a temp folder: the data stages on tests/data/pipeline_vi.txt (two
shards, tokenizers symato and bytes) and two tiny RWKV training runs, then collect, fit,
plots and summary. Two runs are too few for any fit, so this also checks the "points only,
with the reason" path end to end (fits on enough runs: tests/test_plots.py, test_scaling.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from _workflow import CORPUS, REPO, SNAKEMAKE, tiny_data_config

CONFIG = tiny_data_config(
    train={
        "grids": [{"name": "tiny", "tokenizers": "all", "archs": ["rwkv"], "sizes": ["L1-D16"],
                   "tokens": [4096]}],
        "settings": {"ctx_len": 32, "batch_size": 4, "warmup_steps": 2, "eval_interval": 8,
                     "eval_windows": 2, "checkpoint_steps": 0, "checkpoint_minutes": 0},
    },
    eval={"restoration_syllables": 50, "prompts": [""], "sample_tokens": 8},
    report={"bootstrap": 10, "dpi": 60},
)
FIGURES = ["scaling_params", "loss_vs_compute", "training_curves", "tokenizers"]
CATEGORIES = ["Corpus", "Vocabulary", "Training", "Scaling laws"]
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.slow


def _snakemake(work: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    cmd = [str(SNAKEMAKE), "-s", str(REPO / "Snakefile"), "--directory", str(work),
           "--configfile", str(work / "config.yaml"), "--cores", "2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny pipeline, run once to completion, with its HTML report."""
    work = tmp_path_factory.mktemp("report")
    (work / "input").mkdir()
    shutil.copy(CORPUS, work / "input" / "vi.txt")
    (work / "config.yaml").write_text(yaml.safe_dump(CONFIG, allow_unicode=True),
                                      encoding="utf-8")
    proc = _snakemake(work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    proc = _snakemake(work, "--report", "results/report.html", timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return work


def test_report_stage_outputs(work: Path) -> None:
    results = work / "results"
    runs = (results / "scaling/runs.csv").read_text().splitlines()
    assert len(runs) == 3 and runs[0].startswith("tokenizer,arch,run,")
    fits = json.loads((results / "scaling/fits.json").read_text())
    assert set(fits["groups"]) == {"symato/rwkv", "bytes/rwkv"}
    for group in fits["groups"].values():
        assert group["status"] == "too_few_runs"
        assert "needs at least 4 runs, got 1" in group["reason"]
    for name in FIGURES:
        assert (results / "plots" / f"{name}.png").stat().st_size > 5000
        assert (results / "plots" / f"{name}.svg").exists()
    summary = (results / "summary.md").read_text()
    for heading in ("## Runs", "## Fitted scaling laws", "## Tokenizer comparison"):
        assert heading in summary
    assert "symato/rwkv L(N): L(N) needs at least 4 runs" in summary
    assert "| symato | train |" in summary  # tokens per syllable from the real manifest


def test_report_regenerates_without_rerunning(work: Path) -> None:
    """After a run nothing is out of date, and --report only reads what is on disk."""
    watched = [p for p in (work / "results").rglob("*") if p.is_file()
               and "report.html" not in p.name and ".snakemake" not in p.parts]
    before = {p: p.stat().st_mtime_ns for p in watched}
    dry = _snakemake(work, "-n", timeout=120)
    assert dry.returncode == 0 and "Nothing to be done" in dry.stdout + dry.stderr
    again = work / "results" / "report2.html"
    proc = _snakemake(work, "--report", str(again), timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert again.stat().st_size > 100_000
    assert {p: p.stat().st_mtime_ns for p in watched} == before
    html = again.read_text(encoding="utf-8")
    for category in CATEGORIES:
        assert f'"{category}"' in html
    for name in FIGURES:
        assert f"results/plots/{name}.png" in html


# ------------------------------------------------------------------------ headless browser
def _chromium() -> str:
    """A Chromium binary, installed from Debian when we are root and apt can; else skip."""
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("chromium is not installed and we are not root with apt-get to install it")
    policy = subprocess.run(["apt-cache", "policy", "chromium"], capture_output=True,
                            text=True, check=False).stdout
    if "Candidate: (none)" in policy or "Candidate:" not in policy:
        subprocess.run(["apt-get", "update"], capture_output=True, timeout=600, check=False)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    proc = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                          capture_output=True, text=True, timeout=900, env=env, check=False)
    found = shutil.which("chromium")
    if not found:
        pytest.skip(f"apt-get could not install chromium: {proc.stderr[-500:]}")
    return found


# Appended to a copy of the report: after load, open a category and show one figure the
# way a click on its eye button does, then record the decoded image size on <body>.
DRIVER = """
<script>
var symatoTries = 0;
function symatoDrive() {
  // React renders asynchronously: wait until the App component has set the global `app`.
  if (typeof app === "undefined") {
    if (++symatoTries < 100) { setTimeout(symatoDrive, 50); }
    return;
  }
  app.showCategory(%(category)s);
  setTimeout(function () {  // after the category's state update: it would override ours
    app.setView({content: "img", contentPath: results[%(path)s].data_uri, resultPath: %(path)s});
  }, 100);
  setTimeout(function () {
    var img = document.querySelector("#app img[src^='data:image/png']");
    document.body.setAttribute("data-figure",
      img && img.complete ? img.naturalWidth + "x" + img.naturalHeight : "missing");
  }, 600);
}
window.addEventListener("load", symatoDrive);
</script>
"""


def _driven_copy(report: Path, out: Path, category: str, path: str) -> Path:
    html = report.read_text(encoding="utf-8")
    script = DRIVER % {"category": json.dumps(category), "path": json.dumps(path)}
    head, tag, tail = html.rpartition("</body>")  # the last one: JS libraries contain others
    assert tag, f"{report} has no </body>"
    out.write_text(head + script + tag + tail, encoding="utf-8")
    return out


def _browser(chromium: str, profile: Path, page: Path, *args: str) -> str:
    cmd = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}",
           "--virtual-time-budget=10000", *args, page.as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def _visible_text(dom: str) -> str:
    """The rendered DOM without <script>/<style> bodies (which hold the raw JSON data)."""
    import re

    return re.sub(r"<(script|style)\b.*?</\1>", "", dom, flags=re.S | re.I)


def _pixel_std(png: Path) -> float:
    import matplotlib.image as mpimg

    return float(mpimg.imread(png)[..., :3].std())


def test_report_renders_in_headless_chromium(work: Path, tmp_path: Path) -> None:
    chromium = _chromium()
    report = work / "results" / "report.html"
    # The landing page: navigation with every category, rule graph.
    shot = tmp_path / "report.png"
    _browser(chromium, tmp_path / "p0", report, f"--screenshot={shot}", "--window-size=1400,1000")
    assert _pixel_std(shot) > 0.05, "report landing page screenshot is blank"
    dom = _visible_text(_browser(chromium, tmp_path / "p1", report, "--dump-dom"))
    for heading in ("Snakemake", "Workflow", *CATEGORIES):
        assert f">{heading}<" in dom, f"{heading!r} not rendered"
    # Each report figure opened in its category, as a reader would click through.
    for name, category in (("scaling_params", "Scaling laws"), ("training_curves", "Training"),
                           ("tokenizers", "Vocabulary")):
        page = _driven_copy(report, tmp_path / f"{name}.html", category,
                            f"results/plots/{name}.png")
        dom = _visible_text(_browser(chromium, tmp_path / f"d-{name}", page, "--dump-dom"))
        width, _, height = dom.split('data-figure="', 1)[1].split('"', 1)[0].partition("x")
        assert width.isdigit() and int(width) > 200 and int(height) > 100, dom[:500]
        assert f"{name}.png" in dom and f">{category}<" in dom
        shot = tmp_path / f"{name}.png"
        _browser(chromium, tmp_path / f"s-{name}", page, f"--screenshot={shot}",
                 "--window-size=1400,1000")
        assert _pixel_std(shot) > 0.05, f"{name} screenshot is blank"
        shutil.copy(shot, work / f"screenshot_{name}.png")  # for a human to look at
