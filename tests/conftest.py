import os
from pathlib import Path
import pytest
import torch
import _helpers

torch.set_num_threads(2)
ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get('SEMSTYLEGAN_SHARED', ROOT.parent / 'shared'))

@pytest.fixture(scope='session')
def fixture_path():
    p = SHARED / 'fixtures' / 'official_tiny64.pt'
    if not p.exists(): pytest.skip(f'reference fixture not found at {p} (set SEMSTYLEGAN_SHARED to the shared folder)')
    return p

@pytest.fixture(scope='session')
def run_cli():
    """`run_cli('info', '--json', env={'OMP_NUM_THREADS': '1'}, timeout=300)`: `semstylegan ARGS` run to its end in a
    subprocess (the console script, else `python -m semstylegan.cli`), stdout and stderr captured as text. For Popen
    cases (signals, kills) import `cli_command` or `popen_cli` from tests/_helpers.py."""
    return _helpers.run_cli

@pytest.fixture
def one_thread():
    "One torch thread for the test: small matrices in sequential loops only wait for a second one (more so when busy)."
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

@pytest.fixture
def small_disk(tmp_path):
    "`small_disk('5m')`: a fresh tmpfs of that size, a disk that fills up (root on Linux; skips elsewhere)."
    import subprocess
    mounts = []
    def mount(size):
        mnt = tmp_path / f'disk{len(mounts)}'; mnt.mkdir()
        cmd = ['mount', '-t', 'tmpfs', '-o', f'size={size}', 'tmpfs', str(mnt)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode:
            pytest.skip(f'cannot mount a tmpfs here ({r.stderr.strip() or r.returncode}): needs root on Linux')
        mounts.append(mnt)
        return mnt
    yield mount
    for mnt in mounts: subprocess.run(['umount', '-l', str(mnt)])
