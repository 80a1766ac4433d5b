"""Every lab, opened in JupyterLab in headless Chromium, runs clean and its explorers respond.

One JupyterLab server (on a free localhost port, serving a temporary copy of labs/) and one
browser serve all labs. For each lab the test clears the stored outputs, runs all cells and
checks what a student would see:

  * no cell shows an error or writes to stderr;
  * the browser console logs no error and the page raises no exception;
  * every cell that shows a plot (an explorer, a dashboard or `show(...)`) renders a bokeh
    canvas (`.bk-Canvas`, inside bokeh's shadow DOM), and no label of its controls (buttons,
    toggles, checkboxes, slider names and read-outs) is cut short;
  * moving one control of each explorer (the action in CONTROLS) changes the data of its
    plot: the ColumnDataSources of the bokeh documents on the page, read through BokehJS,
    differ before and after.

Screenshots of every lab (one per plot cell and one of the whole page) are saved under
build/screenshots/ (git-ignored) for a person to look at.

It needs the Debian package `chromium` (/usr/bin/chromium; never a downloaded browser) and the
Python package `playwright`; without either it is skipped with the reason.
"""

from __future__ import annotations

import json
import os
import pathlib
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
# The labs to open (another folder of notebooks with VMLAB_BROWSER_LABS, e.g. to try a broken one).
LABS_DIR = pathlib.Path(os.environ.get("VMLAB_BROWSER_LABS", ROOT / "labs"))
LABS = sorted(p.name for p in LABS_DIR.glob("[0-9][0-9]-*.ipynb"))
SHOTS = ROOT / "build" / "screenshots"
CHROMIUM = os.environ.get("VMLAB_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TOKEN = "vmlab-browser-test"
RUN_TIMEOUT_S = 240          # one lab, all cells (they take seconds; this is only a guard)

# A plot cell (marked NBVAL_IGNORE_OUTPUT in the labs) calls bokeh's show() or shows an explorer.
SHOW = re.compile(r"\bshow\(")
WIDGET = re.compile(r"\b(?:(\w+)\s*=\s*)?(\w+(?:Explorer|Dashboard|Comparer|Visualizer))\(")


def plot_cells(srcs: list[str]) -> list[int]:
    return [i for i, s in enumerate(srcs)
            if "NBVAL_IGNORE_OUTPUT" in s and (SHOW.search(s) or widget_class(srcs, i))]


def widget_class(srcs: list[str], i: int) -> str | None:
    """The explorer cell i shows: built there, or named by its last line (`explorer`)."""
    made = {var: cls for s in srcs[:i + 1] for var, cls in WIDGET.findall(s) if var}
    found = WIDGET.findall(srcs[i])
    last = srcs[i].strip().splitlines()[-1].strip()
    if found and not found[-1][0]:
        return found[-1][1]
    return made.get(last)

# One control per explorer, moved as a student would: (widget class, kind, what, value).
CONTROLS = {
    "DomainDashboard": ("fill-then-click", "name", "vmbrowser", "create"),   # a new guest on the map
    "PageWalkExplorer": ("checkbox", "2 MiB nested pages"),
    "TrafficExplorer": ("select", "scenario", "build"),
    "PathComparer": ("toggle", "nested"),
    "BatchingExplorer": ("select", "workload", "ptemod"),
    "MigrationExplorer": ("select", "policy", "xen3"),
    "RingVisualizer": ("checkbox", "notification suppression"),
    "IoExplorer": ("toggle", "HVM (emulated IDE)"),
    "PoolDashboard": ("select-then-click", "server", 0, "fail"),
}

# Reads every ColumnDataSource of every bokeh document on the page (BokehJS's own registry).
READ_SOURCES = """() => {
  const docs = (window.Bokeh && window.Bokeh.documents) || [];
  const out = [];
  for (const doc of docs) {
    for (const m of doc.all_models) {
      if (m.type !== "ColumnDataSource" && !(m.constructor && m.constructor.__name__ === "ColumnDataSource")) continue;
      const cols = {};
      const data = m.data instanceof Map ? m.data : new Map(Object.entries(m.data));
      for (const [k, v] of data) cols[k] = Array.from(v, x => (typeof x === "object" ? JSON.stringify(x) : x));
      out.push(JSON.stringify(cols));
    }
  }
  return out.sort();
}"""

# Every element matching `sel` under `root`, through open shadow roots (bokeh draws in one).
DEEP_COUNT = """([root, sel]) => {
  let n = 0;
  const walk = (node) => {
    if (node.matches && node.matches(sel)) n += 1;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const c of node.children || []) walk(c);
  };
  walk(root);
  return n;
}"""


# Control labels cut short (the text overflows its box and shows "..."), under `root`.
CUT_LABELS = """(root) => Array.from(root.querySelectorAll(
    '.widget-label, .widget-label-basic, .widget-toggle-button, .jupyter-button, .widget-readout, .widget-checkbox label'))
  .filter(e => e.offsetParent !== null && e.scrollWidth > e.clientWidth + 1)
  .map(e => (e.textContent || '').trim())"""


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (Debian package 'chromium'; .ci/run installs it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the Python package 'playwright' is not installed (it is in the 'test' extra)"
    try:
        import jupyterlab  # noqa: F401
    except ImportError:
        return "JupyterLab is not installed (the 'lab' extra)"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=_missing() or "")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """One JupyterLab on a free localhost port, serving a temporary copy of labs/."""
    tmp = tmp_path_factory.mktemp("browser")
    root = tmp / "labs"
    shutil.copytree(LABS_DIR, root, ignore=shutil.ignore_patterns("src", ".ipynb_checkpoints"))
    config = tmp / "config"
    (config / "labconfig").mkdir(parents=True)
    # No announcements (they would fetch news from the internet).
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    settings = tmp / "settings" / "@jupyterlab" / "notebook-extension"
    settings.mkdir(parents=True)
    # Every cell in the DOM (no windowing), so every output can be checked and photographed.
    (settings / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none"}))
    port = _free_port()
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTERLAB_SETTINGS_DIR": str(tmp / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp / "workspaces"), "JUPYTER_RUNTIME_DIR": str(tmp / "runtime")}
    log = open(tmp / "jupyter.log", "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyterlab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={TOKEN}", "--allow-root",
         "--LabApp.expose_app_in_browser=True", "--ServerApp.port_retries=0"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"JupyterLab did not start: see {tmp / 'jupyter.log'}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        yield b
        b.close()


class Lab:
    """One open notebook: run it, read its cells, move its controls."""

    def __init__(self, page, name: str) -> None:
        self.page, self.name = page, name

    def cell(self, i: int):
        """Cell i (notebook order); run_all() tags every cell's node with its index."""
        return self.page.locator(f"[data-vmlab-cell='{i}']")

    def sources(self) -> list[str]:
        return self.page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
                                       .map(c => c.model.sharedModel.getSource())""")

    def run_all(self) -> None:
        page = self.page
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.content", timeout=60_000)
        page.evaluate("""async () => {
            const w = window.jupyterapp.shell.currentWidget;
            await w.context.ready; await w.sessionContext.ready;
            await window.jupyterapp.commands.execute('notebook:clear-all-cell-outputs');
        }""")
        page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
        # Done when the kernel is idle and every code cell has run, or a cell failed (run-all stops
        # there; errors_shown() then says which).
        page.wait_for_function("""() => {
            const w = window.jupyterapp.shell.currentWidget;
            const k = w.sessionContext.session && w.sessionContext.session.kernel;
            const cells = w.content.widgets.filter(c => c.model.type === 'code');
            const ran = cells.every(c => c.model.executionCount !== null
                                         && !c.node.querySelector('.jp-InputArea-prompt').textContent.includes('*'));
            const failed = cells.some(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'));
            return k && k.status === 'idle' && (ran || failed);
        }""", timeout=RUN_TIMEOUT_S * 1000, polling=500)
        page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets
                              .forEach((c, i) => c.node.setAttribute('data-vmlab-cell', String(i)))""")

    def errors_shown(self) -> list[str]:
        """Every cell's error or stderr output, as the page shows it (first line of the cell: text)."""
        shown = self.page.evaluate("""() => window.jupyterapp.shell.currentWidget.content.widgets.map(c =>
            c.model.type !== 'code' ? [] : c.model.outputs.toJSON()
              .filter(o => o.output_type === 'error' || (o.output_type === 'stream' && o.name === 'stderr'))
              .map(o => o.output_type === 'error' ? o.ename + ': ' + o.evalue : [].concat(o.text).join('')))""")
        srcs = self.sources()
        return [f"cell {i} ({srcs[i].splitlines()[0][:60] if srcs[i] else ''}): {' | '.join(e)[:300]}"
                for i, e in enumerate(shown) if e]

    def canvases(self, i: int) -> int:
        handle = self.cell(i).element_handle()
        return self.page.evaluate(DEEP_COUNT, [handle, ".bk-Canvas"])

    def cut_labels(self, i: int) -> list[str]:
        return self.page.evaluate(CUT_LABELS, self.cell(i).element_handle())

    def sources_data(self) -> list[str]:
        return self.page.evaluate(READ_SOURCES)

    def move(self, i: int, action: tuple) -> None:
        cell = self.cell(i).locator(".jp-OutputArea")
        kind = action[0]
        if kind == "checkbox":
            cell.locator(".widget-checkbox", has_text=action[1]).locator("input").click()
        elif kind == "toggle":
            cell.locator("button.widget-toggle-button", has_text=action[1]).click()
        elif kind == "select":
            box = cell.locator(".widget-dropdown", has_text=action[1]).locator("select")
            box.select_option(action[2])
        elif kind == "click":
            cell.locator("button", has_text=re.compile(rf"^\s*{re.escape(action[1])}\s*$")).first.click()
        elif kind == "fill-then-click":
            cell.locator(".widget-text", has_text=action[1]).locator("input").fill(action[2])
            cell.locator("button", has_text=re.compile(rf"^\s*{re.escape(action[3])}\s*$")).first.click()
        elif kind == "select-then-click":
            box = cell.locator(".widget-dropdown", has_text=action[1]).locator("select")
            box.select_option(index=action[2])
            cell.locator("button", has_text=re.compile(rf"^\s*{re.escape(action[3])}\s*$")).first.click()


@pytest.mark.parametrize("name", LABS)
def test_lab_runs_clean_in_the_browser(server, browser, name):
    shots = SHOTS / name.removesuffix(".ipynb")
    shutil.rmtree(shots, ignore_errors=True)
    shots.mkdir(parents=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    console: list[str] = []
    page.on("console", lambda m: console.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: console.append(f"page error: {e}"))
    try:
        page.goto(f"{server}/lab/tree/{name}?token={TOKEN}&reset", wait_until="domcontentloaded")
        lab = Lab(page, name)
        lab.run_all()
        srcs = lab.sources()
        assert lab.errors_shown() == [], f"{name}: cells show errors"

        plots = plot_cells(srcs)
        assert plots, f"{name}: no plot cell found"
        missing = []
        for i in plots:
            deadline = time.monotonic() + 30
            while lab.canvases(i) == 0 and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            if lab.canvases(i) == 0:
                missing.append(i)
        page.wait_for_timeout(1000)   # let bokeh finish its first paint before the photographs
        for i in plots:
            lab.cell(i).screenshot(path=str(shots / f"cell{i:02d}.png"))
        assert missing == [], f"{name}: plot cells without a bokeh canvas: {missing}"
        cut = {i: lab.cut_labels(i) for i in plots if lab.cut_labels(i)}
        assert cut == {}, f"{name}: control labels cut short (cell: labels): {cut}"

        for i in plots:
            cls = widget_class(srcs, i)
            if cls is None:     # a plain bokeh figure: nothing to move
                continue
            assert cls in CONTROLS, f"{name}: no control to move is listed for {cls}"
            before = lab.sources_data()
            assert before, f"{name}: BokehJS holds no document (Bokeh.documents is empty)"
            lab.move(i, CONTROLS[cls])
            deadline = time.monotonic() + 30
            while lab.sources_data() == before and time.monotonic() < deadline:
                page.wait_for_timeout(250)
            page.wait_for_timeout(500)
            lab.cell(i).screenshot(path=str(shots / f"cell{i:02d}-after-{CONTROLS[cls][0]}.png"))
            assert lab.sources_data() != before, f"{name}: {cls} ({CONTROLS[cls]}) did not change its plot's data"
        assert lab.errors_shown() == [], f"{name}: moving a control showed an error"
        assert console == [], f"{name}: browser console errors:\n" + "\n".join(console)
    finally:
        page.screenshot(path=str(shots / "page.png"))
        page.close()
