"""The `semstylegan` command line in a subprocess, for the tests (the fixture `run_cli` in conftest.py returns
`run_cli` from here).

The console script beside this Python runs it, as a user would; where it is not installed (a checkout on PYTHONPATH
only), `python -m semstylegan.cli` does. Plain functions, so module-level helpers and Popen cases (Ctrl-C, SIGKILL,
SIGTERM) can import them: `from _helpers import cli_command, popen_cli`."""
import os, subprocess, sys
from pathlib import Path

EXE = Path(sys.executable).parent / 'semstylegan'
TIMEOUT = 600


def cli_command(*args):
    "The argv list of `semstylegan ARGS` (each argument made a string: paths and numbers may be given)."
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, '-m', 'semstylegan.cli']
    return cmd + [str(a) for a in args]


def cli_env(env=None):
    "The environment of the subprocess: this one, with the variables in `env` (a dict) set on top; None: inherited."
    if env is None:
        return None
    return {**os.environ, **{k: str(v) for k, v in env.items()}}


def run_cli(*args, env=None, timeout=TIMEOUT, capture=True, **kw):
    """Run `semstylegan ARGS` to its end: a `subprocess.CompletedProcess` with `returncode`, and `stdout` and `stderr`
    as text (with `capture=True`). `env`: extra environment variables; `timeout`: seconds (TimeoutExpired after)."""
    cmd = cli_command(*args)
    return subprocess.run(cmd, capture_output=capture, text=True, timeout=timeout, env=cli_env(env), **kw)


def popen_cli(*args, env=None, **kw):
    """Start `semstylegan ARGS` and return the `subprocess.Popen`, for tests that signal or kill it while it runs.
    stdout and stderr are pipes (bytes) unless given in `kw` (`text=True`, `stdout=subprocess.DEVNULL`, ...)."""
    kw.setdefault('stdout', subprocess.PIPE)
    kw.setdefault('stderr', subprocess.PIPE)
    return subprocess.Popen(cli_command(*args), env=cli_env(env), **kw)
