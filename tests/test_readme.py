"""README.md is generated from nbs/index.ipynb and its Quick start holds the two commands CI runs."""
import subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

def test_readme_in_sync():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'make_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

def test_quickstart_commands():
    sys.path.insert(0, str(ROOT / 'tools'))
    from readme_command import quickstart_commands
    cmds = quickstart_commands()
    assert 'semstylegan demo' in cmds['main'] and 'constraints.txt' in cmds['main']
    assert 'nbdev_test' in cmds['test'] and 'pytest' in cmds['test'] and '.[dev]' in cmds['test']
