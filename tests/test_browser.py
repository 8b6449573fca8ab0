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
def lab(tmp_path, request):
    """A JupyterLab server on localhost with a token of ours, isolated config, and a notebook: the explorer one, or
    the (file name, notebook) a test asks for with `@pytest.mark.parametrize('lab', [(name, nb)], indirect=True)`."""
    pytest.importorskip('jupyterlab', reason='JupyterLab is not installed (pip install -e ".[dev]")')
    pytest.importorskip('ipywidgets', reason='ipywidgets (explore extra) is not installed (pip install -e ".[dev]")')
    name, nb = getattr(request, 'param', ('explorer.ipynb', NOTEBOOK))
    (tmp_path / name).write_text(json.dumps(nb))
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

PAINTER_NOTEBOOK = {'cells': [
    {'cell_type': 'code', 'metadata': {}, 'execution_count': None, 'outputs': [], 'source': (
        "import json, os, numpy as np, torch; torch.set_num_threads(1)\n"
        "from semstylegan.checkpoint import load_generator, pretrained_path\n"
        "from semstylegan.painter import Painter\n"
        "G = load_generator(pretrained_path()).eval()\n"
        "p = Painter(G, seed=3, budget=20, final_budget=4)\n"
        "def record(p, prefix=''):   # the kernel-side state, after every update\n"
        "    for k, v in dict(labels=p.labels.numpy(), mask=p.mask, image=p.image).items(): np.save(prefix + k, v)\n"
        "    state = dict(renders=p.renders, done=p.done, left=p.left(), ms=p.last_ms, scale=p.scale,\n"
        "                 strokes=len(p.undo_stack), size=p.size.value)\n"
        "    json.dump(state, open('state.tmp', 'w')); os.replace('state.tmp', prefix + 'state.json')\n"
        "record(p, 'before_')\n"
        "p.on_update(record)\n"
        "p")}],
    'metadata': {'kernelspec': {'display_name': 'Python 3', 'language': 'python', 'name': 'python3'}},
    'nbformat': 4, 'nbformat_minor': 5}

def open_and_run(page, url, token, name, sync_api):
    "Open notebook `name` in JupyterLab and run its first cell as a person would (again if the kernel was not ready)."
    page.goto(f'{url}/lab/tree/{name}?token={token}', timeout=90_000)
    page.wait_for_selector('.jp-Notebook .jp-Cell', timeout=90_000)
    page.wait_for_selector('.jp-Notebook-ExecutionIndicator[data-status="idle"]', timeout=90_000)
    prompt = page.locator('.jp-Cell .jp-InputPrompt').first
    for attempt in range(5):
        page.locator('.jp-Cell .jp-InputArea-editor').first.click()
        page.keyboard.press('Escape'); page.keyboard.press('Shift+Enter')
        try:
            page.wait_for_function('(el) => /[*0-9]/.test(el.textContent)', arg=prompt.element_handle(), timeout=15_000)
            return
        except sync_api.TimeoutError: page.wait_for_timeout(2_000)

def wait_for_file(path, ok, timeout):
    "The JSON in `path` once `ok(it)`; None at the timeout."
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            state = json.loads(path.read_text())
            if ok(state): return state
        except (OSError, ValueError): pass
        time.sleep(0.25)
    return None

@pytest.mark.slow
@pytest.mark.parametrize('lab', [('painter.ipynb', PAINTER_NOTEBOOK)], indirect=True)
def test_painter_in_jupyterlab(lab):
    "Draw a hair stroke on the painter's canvas with the mouse: mask and image change inside the stroke, not outside."
    exe = chromium()
    if exe is None: pytest.skip('Chromium not found: run `bash tools/install-browser.sh` or set SEMSTYLEGAN_CHROMIUM')
    pytest.importorskip('ipycanvas', reason='ipycanvas (explore extra) is not installed (pip install -e ".[dev]")')
    sync_api = pytest.importorskip('playwright.sync_api', reason='Playwright is not installed (pip install -e ".[dev]")')
    import numpy as np
    url, token, tmp = lab
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, headless=True, args=CHROME_FLAGS)
        page = browser.new_page(viewport={'width': 1400, 'height': 1100})
        try:
            open_and_run(page, url, token, 'painter.ipynb', sync_api)
            canvas = page.wait_for_selector('.jp-OutputArea .ssg-painter-canvas', timeout=120_000)
            page.wait_for_function('[...document.querySelectorAll(".jp-OutputArea .widget-html-content")]'
                                   '.some(e => e.textContent.includes("local generators"))', timeout=60_000)
            before = wait_for_file(tmp / 'before_state.json', lambda s: True, 30)
            assert before is not None, 'the notebook did not record the starting state'
            canvas.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / 'painter-before.png'))
            box, s = canvas.bounding_box(), before['scale']
            assert abs(box['width'] - 64 * s) < 2, f'the canvas is {box["width"]} px wide, not {64 * s}'
            at = lambda y, x: (box['x'] + (x + 0.5) * s, box['y'] + (y + 0.5) * s)   # label pixel -> page point
            page.mouse.move(*at(30, 14)); page.mouse.down()
            page.mouse.move(*at(44, 14), steps=15); page.mouse.up()
            t_stroke = time.time()
            state = wait_for_file(tmp / 'state.json', lambda s: s['strokes'] == 1 and s['left'] == 0, 180)
            t_fit = time.time() - t_stroke
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / 'painter-after-stroke.png'))
        except Exception:
            page.screenshot(path=str(ARTIFACTS / 'painter-failure.png'))
            (ARTIFACTS / 'lab.log').write_text((tmp / 'lab.log').read_text())
            raise
        finally:
            browser.close()
    assert state is not None, 'the painter did not finish fitting the stroke in 180 s'
    load = lambda k: np.load(tmp / f'{k}.npy')
    labels0, mask0, image0 = load('before_labels'), load('before_mask'), load('before_image')
    labels, mask, image = load('labels'), load('mask'), load('image')
    hair = 7
    yy, xx = np.mgrid[:64, :64]
    near = (np.abs(xx - 14) <= state['size'] + 1.5) & (yy >= 30 - state['size'] - 1.5) & (yy <= 44 + state['size'] + 1.5)
    changed = labels != labels0
    assert changed.sum() > 20, f'the stroke changed {changed.sum()} label pixels'
    assert not (changed & ~near).any(), 'the target changed outside the stroke'
    assert (labels[changed] == hair).all(), 'the stroke painted something other than hair'
    gain = (mask[changed] == hair).mean() - (mask0[changed] == hair).mean()
    assert gain > 0.3, f'the mask gained hair in {gain:.0%} of the stroke'
    grown = np.zeros_like(changed)
    for dy in range(-6, 7):
        for dx in range(-6, 7): grown |= np.roll(np.roll(changed, dy, 0), dx, 1)
    diff = np.abs(image.astype(int) - image0.astype(int)).max(-1)
    assert diff[changed].mean() > 15, f'the image hardly changed inside the stroke ({diff[changed].mean():.1f}/255)'
    assert (diff[~grown] > 32).mean() < 0.05, f'the image changed outside the stroke ({(diff[~grown] > 32).mean():.1%})'
    assert (mask != mask0)[~grown].mean() < 0.02, 'the mask changed outside the stroke'
    assert state['done'] == 24 and state['renders'] >= 2, state
    print(f'painter: stroke fitted in {t_fit:.1f} s, last update {state["ms"]:.0f} ms, test {time.time() - t0:.0f} s')
