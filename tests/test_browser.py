"""The region interpolation explorer in a real JupyterLab, in a real (headless) Chromium, driven like a person would:
open the notebook, run it, drag a slider, and see the picture change.

Needs Chromium (`bash tools/install-browser.sh` installs Debian's package) and Playwright's Python package (the
`dev` extra; its own browser download is not used). Screenshots go to $SEMSTYLEGAN_ARTIFACTS (default:
test-artifacts/)."""
import json, os, secrets, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get('SEMSTYLEGAN_ARTIFACTS', ROOT / 'test-artifacts'))
CHROME_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage']

def chromium():
    for c in (os.environ.get('SEMSTYLEGAN_CHROMIUM'), 'chromium', 'chromium-browser', 'google-chrome'):
        if c and shutil.which(c): return shutil.which(c)
    return None

NOTEBOOK = {'cells': [
    {'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': (
        "import torch; torch.set_num_threads(1)\n"
        "from semstylegan.checkpoint import load_generator\n"
        "from semstylegan.checkpoint import pretrained_path\n"
        "from semstylegan.explore import RegionInterpolator\n"
        "G = load_generator(pretrained_path()).eval()\n"
        "ex = RegionInterpolator(G, seed_a=3, seed_b=8, regions=['hair', 'skin', 'background'])\n"
        "ex")}],
    'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}},
    'nbformat': 4, 'nbformat_minor': 5}

def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture
def lab(tmp_path):
    "A JupyterLab server on localhost with a token of ours, isolated config, and the explorer notebook."
    pytest.importorskip('jupyterlab', reason='JupyterLab is not installed (pip install -e ".[dev]")')
    pytest.importorskip('ipywidgets', reason='ipywidgets (explore extra) is not installed (pip install -e ".[dev]")')
    (tmp_path / 'explorer.ipynb').write_text(json.dumps(NOTEBOOK))
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join(filter(None, [str(ROOT), os.environ.get('PYTHONPATH')])),
           **{k: str(tmp_path / v) for k, v in (('JUPYTER_CONFIG_DIR', 'cfg'), ('JUPYTER_RUNTIME_DIR', 'run'),
                                                ('JUPYTERLAB_SETTINGS_DIR', 'settings'), ('JUPYTERLAB_WORKSPACES_DIR', 'ws'))}}
    log = open(tmp_path / 'lab.log', 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'jupyterlab', '--no-browser', f'--port={port}', '--ip=127.0.0.1',
                             f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={tmp_path}',
                             '--LabApp.news_url=', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
                             '--LabApp.extension_manager=readonly'] + (['--allow-root'] if os.geteuid() == 0 else []),
                            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f'http://127.0.0.1:{port}'
    try:
        for _ in range(120):
            if proc.poll() is not None: pytest.fail(f'JupyterLab exited: {(tmp_path / "lab.log").read_text()[-2000:]}')
            try:
                urllib.request.urlopen(f'{url}/api/status?token={token}', timeout=2); break
            except OSError: time.sleep(0.5)
        else: pytest.fail('JupyterLab did not start in 60 s')
        yield url, token, tmp_path
    finally:
        proc.terminate()
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill()
        log.close()

@pytest.mark.slow
def test_explorer_in_jupyterlab(lab):
    exe = chromium()
    if exe is None: pytest.skip('Chromium not found: run `bash tools/install-browser.sh` (Debian: apt-get install chromium) '
                                'or set SEMSTYLEGAN_CHROMIUM')
    sync_api = pytest.importorskip('playwright.sync_api', reason='Playwright is not installed (pip install -e ".[dev]")')
    url, token, tmp = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROME_FLAGS)
        page = browser.new_page(viewport={'width': 1280, 'height': 1000})
        try:
            page.goto(f'{url}/lab/tree/explorer.ipynb?token={token}', timeout=90_000)
            page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=90_000)
            # wait for the kernel to be ready
            page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
            # run the cell as a person would: click it, Shift+Enter; again if the kernel was not ready to take it
            prompt = page.locator('.jp-Cell .jp-InputPrompt').first
            for attempt in range(5):
                page.locator('.jp-Cell .jp-InputArea-editor').first.click()
                page.keyboard.press('Escape'); page.keyboard.press('Shift+Enter')
                try:
                    page.wait_for_function('(el) => /[*0-9]/.test(el.textContent)', arg=prompt.element_handle(), timeout=15_000)
                    break
                except sync_api.TimeoutError: page.wait_for_timeout(2_000)
            img = page.wait_for_selector('.jp-OutputArea img.widget-image', timeout=90_000)
            page.wait_for_function('document.querySelector(".jp-OutputArea .widget-html-content") && '
                                   'document.querySelector(".jp-OutputArea .widget-html-content").textContent.includes("local generators")',
                                   timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / 'explorer-before.png'))
            before = img.screenshot()
            status = page.locator('.jp-OutputArea .widget-html-content').first
            renders0 = int(status.text_content().split()[1])
            handle = page.locator('.ssg-slider-hair-both .noUi-handle')
            box = handle.bounding_box()
            x, y = box['x'] + box['width'] / 2, box['y'] + box['height'] / 2
            page.mouse.move(x, y); page.mouse.down(); page.mouse.move(x + 120, y, steps=12); page.mouse.up()
            readout = page.locator('.ssg-slider-hair-both .widget-readout')
            deadline, after = time.time() + 60, before
            while time.time() < deadline:
                after = img.screenshot()
                if after != before and 'reran' in status.text_content(): break
                time.sleep(0.25)
            time.sleep(1)   # let any pending (debounced) update land
            page.screenshot(path=str(ARTIFACTS / 'explorer-after-drag.png'))
            status_text, value = status.text_content(), float(readout.text_content())
            after = img.screenshot()
        except Exception:
            page.screenshot(path=str(ARTIFACTS / 'explorer-failure.png'))
            (ARTIFACTS / 'lab.log').write_text((tmp / 'lab.log').read_text())
            raise
        finally:
            browser.close()
    assert value > 0.1, f'the hair slider did not move (readout {value})'
    assert after != before, 'the explorer picture did not change after dragging the slider'
    assert 'reran 1/13' in status_text, f'one region changed, so one local generator should rerun; status: {status_text!r}'
    updates = int(status_text.split()[1]) - renders0
    assert 1 <= updates <= 6, f'a 12-step drag gave {updates} updates: the browser updates should be debounced'
