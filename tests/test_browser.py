"""The classroom panels work for a student in a real browser: JupyterLab (headless, offline, in a temporary home)
runs a notebook that shows a `GeneratorPanel` on a toy washer, headless Chromium moves its seed slider the way a
user does (the arrow keys on the slider's handle, no Python sent to the kernel), and the panel's figure is redrawn
by the kernel: a different, non-blank PNG, while the kernel's slider value follows the browser's. Skipped, with
the reason, where Chromium, chromedriver (Debian packages chromium, chromium-driver) or selenium is absent."""
import base64, importlib.util, io, json, os, secrets, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
WAIT = 90  # seconds: the most any one step (server start, page load, kernel start, a redraw) may take
STEPS = 3  # arrow-key presses: the seed slider goes 0 -> 3

CELLS = ["""%matplotlib inline
import torch
import torchvision.transforms.v2.functional as TF
from tocoad.data import make_toy_dataset, load_samples, read_image
from tocoad.widgets import GeneratorPanel
root = make_toy_dataset('toy', categories=('washer',), n_train=1, n_test_good=0, n_test_defect=0, size=96)
washer = TF.to_dtype(TF.pil_to_tensor(read_image(load_samples(root, 'washer')[0].path)), torch.float32, scale=True)
panel = GeneratorPanel(washer, seed=0)
import ipywidgets as W  # the kernel's side: an echo of its slider value, set after the panel has redrawn (observers run in order)
echo = W.Label('kernel seed=0'); echo.add_class('kernel-echo')
panel.seed.observe(lambda change: setattr(echo, 'value', f'kernel seed={change.new}'), names='value')
W.VBox([panel.widget, echo])"""]

@pytest.fixture
def needs_browser():
    for exe, pkg in (('chromium', 'chromium'), ('chromedriver', 'chromium-driver')):
        if shutil.which(exe) is None:
            pytest.skip(f'{exe} is not installed (Debian package {pkg}; tools/test.sh installs it where apt works)')
    if importlib.util.find_spec('selenium') is None:
        pytest.skip('selenium is not installed (pip install "selenium>=4.10", in dev_requirements)')

def _tail(path:Path, n:int=40)->str:
    return '\n'.join(path.read_text(errors='replace').splitlines()[-n:]) if path.exists() else '(no log)'

def _get(url:str, timeout:float=5)->bytes:
    with urllib.request.urlopen(url, timeout=timeout) as r: return r.read()

def _stop(proc:subprocess.Popen):
    "Stop the server, its process group and its kernels (which run in sessions of their own)."
    import psutil  # a dependency of ipykernel
    try: kids = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error: kids = []
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for p in kids:
            try: p.send_signal(sig)
            except psutil.Error: pass
        try: os.killpg(proc.pid, sig)
        except ProcessLookupError: pass
        try: proc.wait(timeout=5); psutil.wait_procs(kids, timeout=5); break
        except subprocess.TimeoutExpired: continue

@pytest.fixture
def lab(needs_browser, tmp_path):
    "JupyterLab on a free localhost port with a random token, serving tmp_path/work; its config, data and runtime under tmp_path."
    import nbformat
    work, home = tmp_path / 'work', tmp_path / 'home'; work.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    nb.metadata.kernelspec = dict(name='python3', display_name='Python 3', language='python')
    nbformat.write(nb, work / 'panel.ipynb')
    dirs = {k: home / k.lower() for k in ('JUPYTER_CONFIG_DIR', 'JUPYTER_DATA_DIR', 'JUPYTER_RUNTIME_DIR', 'IPYTHONDIR')}
    for d in dirs.values(): d.mkdir(parents=True)
    (dirs['JUPYTER_CONFIG_DIR'] / 'labconfig').mkdir()  # no news or extension-manager requests from the page
    (dirs['JUPYTER_CONFIG_DIR'] / 'labconfig' / 'page_config.json').write_text(json.dumps({'disabledExtensions': {
        '@jupyterlab/apputils-extension:announcements': True, '@jupyterlab/extensionmanager-extension': True}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(('JUPYTER', 'MPLBACKEND'))}  # the kernel draws inline, not Agg
    env.update({k: str(d) for k, d in dirs.items()}, HF_HUB_OFFLINE='1', PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get('PYTHONPATH')])))
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    token, log = secrets.token_hex(16), tmp_path / 'jupyterlab.log'
    cmd = [sys.executable, '-m', 'jupyterlab', '--no-browser', '--allow-root', '--ip=127.0.0.1', f'--port={port}', '--ServerApp.port_retries=0',
           f'--IdentityProvider.token={token}', f'--ServerApp.root_dir={work}', '--ServerApp.terminals_enabled=False',
           '--LabApp.expose_app_in_browser=True', '--LabApp.news_url=None', '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate',
           '--LabApp.extension_manager=readonly', '--LanguageServerManager.autodetect=False']
    with open(log, 'wb') as f: proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        base, deadline = f'http://127.0.0.1:{port}', time.monotonic() + WAIT
        while True:
            if proc.poll() is not None: pytest.fail(f'JupyterLab exited with {proc.returncode}:\n{_tail(log)}')
            try: _get(f'{base}/api/status?token={token}', 2); break
            except OSError:
                if time.monotonic() > deadline: pytest.fail(f'JupyterLab did not answer within {WAIT}s:\n{_tail(log)}')
                time.sleep(0.2)
        specs = json.loads(_get(f'{base}/api/kernelspecs?token={token}'))['kernelspecs']
        assert 'python3' in specs, f'no python3 kernelspec among {list(specs)}:\n{_tail(log)}'
        page = _get(f'{base}/lab?token={token}', 30).decode()
        assert '@jupyter-widgets/jupyterlab-manager' in page, f'the widgets lab extension (jupyterlab_widgets) is not found:\n{_tail(log)}'
        yield dict(url=f'{base}/lab/tree/panel.ipynb?token={token}', log=log)
    finally: _stop(proc)

@pytest.fixture
def browser(needs_browser, tmp_path):
    "Debian's headless Chromium through its own chromedriver (named explicitly: Selenium Manager never downloads one)."
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    opts = webdriver.ChromeOptions(); opts.binary_location = shutil.which('chromium')
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
              '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage', f'--user-data-dir={tmp_path / "profile"}', '--window-size=1400,1000'):
        opts.add_argument(a)
    opts.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    env = {k: v for k, v in os.environ.items() if not k.startswith('XDG_')} | {'HOME': str(tmp_path / 'browser-home')}  # its crash reports too
    driver = webdriver.Chrome(service=Service(shutil.which('chromedriver'), log_output=str(tmp_path / 'chromedriver.log'), env=env), options=opts)
    try:
        driver.set_page_load_timeout(WAIT); driver.set_script_timeout(WAIT)
        yield driver
    finally: driver.quit()

STATE = """
const slider = [...document.querySelectorAll('.widget-hslider')].find(e => e.querySelector('.widget-label')?.textContent.trim() === 'seed');
const img = document.querySelector('.widget-output img[src^="data:image/png"]');
const w = window.jupyterapp?.shell.currentWidget, kernel = w?.sessionContext?.session?.kernel;
return {slider: !!slider, readout: slider?.querySelector('.widget-readout')?.textContent.trim() ?? null, src: img ? img.src : null,
        echo: document.querySelector('.kernel-echo')?.textContent.trim() ?? null, kernel: kernel?.status ?? null,
        cells: w?.content?.widgets?.length ?? 0, prompt: document.querySelector('.jp-Cell .jp-InputPrompt')?.textContent.trim() ?? null};"""

def _png(src:str)->np.ndarray:
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(src.split(',', 1)[1]))).convert('L')).astype(float)

def test_moving_a_slider_in_the_browser_redraws_the_panel(lab, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait
    from selenium.common.exceptions import TimeoutException, WebDriverException
    def context(state=None):
        try: console = '\n'.join(f"{e['level']}: {e['message']}" for e in browser.get_log('browser')[-30:])
        except WebDriverException as e: console = f'(no console log: {e})'
        return f'\nlast page state: {state}\n-- browser console:\n{console}\n-- JupyterLab log:\n{_tail(lab["log"])}'
    def until(what, ok):
        seen = {}
        def check(d):
            seen['state'] = s = d.execute_script(STATE)
            return s if ok(s) else False
        try: return WebDriverWait(browser, WAIT, poll_frequency=0.25).until(check)
        except TimeoutException: pass
        state = {k: (v[:40] + f'... ({len(v)} chars)' if k == 'src' and v else v) for k, v in (seen.get('state') or {}).items()}
        pytest.fail(f'timed out after {WAIT}s waiting for {what}' + context(state))

    browser.get(lab['url'])
    until('the notebook to open with an idle kernel', lambda s: s['cells'] == len(CELLS) and s['kernel'] == 'idle')
    browser.execute_script("window.jupyterapp.commands.execute('notebook:run-all-cells'); return true;")
    before = until("the panel's seed slider and its figure", lambda s: s['slider'] and s['src'] and s['echo'] == 'kernel seed=0' and s['prompt'] == '[1]:')
    assert before['readout'] == '0', before['readout']

    handle = browser.find_element(By.XPATH, "//div[contains(@class,'widget-hslider')][.//*[contains(@class,'widget-label') and normalize-space()='seed']]"
                                            "//*[contains(@class,'noUi-handle')]")
    handle.send_keys(Keys.ARROW_RIGHT * STEPS)  # a user's key presses on the focused handle
    # The kernel's answer is read from the echo label, not from a cell run now: JupyterLab >= 4.4 sends widget messages to a
    # kernel subshell (ipykernel 7), so such a cell would run at the same time as the panel's pyplot callback, and pyplot
    # is not thread-safe (seen here: a blank redraw, and a cell printing a stale value).
    after = until("the readout to move, the kernel to follow and the figure to be redrawn",
                  lambda s: s['readout'] == str(STEPS) and s['echo'] == f'kernel seed={STEPS}' and s['src'] and s['src'] != before['src'])

    old, new = _png(before['src']), _png(after['src'])
    assert new.std() > 20, f'the redrawn figure looks blank (pixel std {new.std():.1f})'
    assert old.shape == new.shape, (old.shape, new.shape)
    changed = (np.abs(old - new) > 20).mean()
    assert changed > 0.01, f'only {changed:.2%} of the figure changed when the seed moved 0 -> {STEPS}'
