"""Bad files, bad arguments, mixed outputs, signals and short runs for the newer commands (`train-encoder`,
`invert --encoder`, `edit --method styleflow`, `edit --text`, `--codes` files, `eval masks`, `bench`, `demo`).

Each test builds its own bad input in a temporary folder and checks what the program does with it: the exit status,
a message naming the file or value and the fix, no traceback, nothing written, and for signals a checkpoint that
loads and a run that resumes. The cases fall out of shared mechanisms (`semstylegan.core`'s checked path for files,
`semstylegan.cli.args` for arguments and outputs, `stop_on_sigterm`); `test_every_option_is_typed` keeps new options
on them."""
import json, os, signal, time
from pathlib import Path
import pytest
import torch
from _helpers import popen_cli
from semstylegan.cli import main, make_parser
from semstylegan.checkpoint import load_generator, pretrained_path, save_checkpoint
from semstylegan.core import fingerprint, load_tagged, save_tagged
from semstylegan.encoder import ENCODER_FORMAT, load_encoder
from semstylegan.edit import save_codes
from semstylegan.synthetic import synthetic_faces

TINY_ENCODER = pretrained_path('tiny-synthetic-encoder')


def run(capsys, *argv):
    "`semstylegan ARGV` in this process: (exit status, stderr); never a traceback, never the internal-error net."
    try: code = main([str(a) for a in argv])
    except SystemExit as e: code = e.code
    err = capsys.readouterr().err
    assert 'Traceback' not in err and 'internal error' not in err, err
    return code, err


def photos(folder, n=2, names=None):
    "`n` synthetic faces as PNG files in `folder` (or one per relative path in `names`)."
    from PIL import Image
    names = names or [f'p{i}.png' for i in range(n)]
    img = synthetic_faces(len(names), 64, seed=0, start=20_000)[0]
    for name, im in zip(names, img):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(im.permute(1, 2, 0).numpy()).save(folder / name)
    return folder


def encoder_file(path, edit):
    "The shipped encoder re-saved with `edit(state, info)` applied: a file broken in one chosen way."
    state, info = load_tagged(TINY_ENCODER, ENCODER_FORMAT, 'an encoder')
    edit(state, info)
    return save_tagged(path, state, ENCODER_FORMAT, **info)


# ---- files: one checked path for every kind ----

def test_resume_never_runs_code_from_a_checkpoint(tmp_path, capsys):
    "A pickle in an encoder run's checkpoint is refused before anything in it runs."
    marker = tmp_path / 'ran'

    class Payload:
        def __reduce__(self): return (Path.touch, (marker,))
    out = tmp_path / 'run'
    (out / 'checkpoints').mkdir(parents=True)
    torch.save({'format': ENCODER_FORMAT, 'x': Payload()}, out / 'checkpoints' / '000010.pt')
    code, err = run(capsys, 'train-encoder', '--out', out, '--resume', '--steps', 11, '-q')
    assert code == 1 and 'refused to load' in err and '000010.pt' in err, err
    assert not marker.exists()


@pytest.mark.parametrize('content, says', [
    (b'', 'empty file (0 bytes)'),
    (b'<!DOCTYPE html><html><body>Not Found</body></html>', 'not a safetensors file'),
    ('cut', 'truncated safetensors file')])
def test_broken_encoder_files(tmp_path, capsys, content, says):
    bad = tmp_path / 'encoder.safetensors'
    bad.write_bytes(TINY_ENCODER.read_bytes()[:5000] if content == 'cut' else content)
    code, err = run(capsys, 'invert', photos(tmp_path), '--encoder', bad, '--out', tmp_path / 'out', '-q')
    assert code == 1 and f'{bad}: {says}' in err, err
    assert not (tmp_path / 'out' / 'codes.pt').exists()


@pytest.mark.parametrize('edit, says', [
    (lambda s, i: i['hp'].update(heads=4), 'has settings this version does not know: heads'),
    (lambda s, i: i.pop('hp'), "its settings are a NoneType"),
    (lambda s, i: s.pop(sorted(s)[0]), 'missing keys (1)'),
    (lambda s, i: s.update(extra=torch.ones(2)), 'unexpected keys (1)'),
    (lambda s, i: s.update({k: torch.full_like(v, float('nan')) for k, v in s.items() if v.is_floating_point()}),
     'NaN or infinite')])
def test_encoders_that_do_not_fit(tmp_path, capsys, edit, says):
    bad = encoder_file(tmp_path / 'e.safetensors', edit)
    code, err = run(capsys, 'invert', photos(tmp_path), '--encoder', bad, '--out', tmp_path / 'out', '-q')
    assert code == 1 and str(bad) in err and says in err, err


def test_encoder_of_another_generator_of_the_same_shapes(tmp_path, capsys):
    G = load_generator(pretrained_path())
    torch.manual_seed(1)
    other = type(G)(G.cfg).eval()
    save_checkpoint(tmp_path / 'other.safetensors', G.cfg, g_ema=other)
    code, err = run(capsys, 'invert', photos(tmp_path), '--encoder', 'tiny', '--ckpt', tmp_path / 'other.safetensors',
                    '--out', tmp_path / 'out', '-q')
    assert code == 1 and 'trained for another generator of the same shapes' in err, err
    assert load_encoder(TINY_ENCODER, G).info['generator_fingerprint'] == fingerprint(G)


def test_flow_and_classifier_files(tmp_path, capsys):
    from semstylegan.flow import FLOW_FORMAT, flow_path
    from semstylegan.attributes import attribute_classifier_path
    state, info = load_tagged(flow_path(), FLOW_FORMAT, 'a flow')
    info['attrs'] = info['attrs'][:-1]
    save_tagged(tmp_path / 'f.safetensors', state, FLOW_FORMAT, **info)
    code, err = run(capsys, 'edit', '--method', 'styleflow', '--flow', tmp_path / 'f.safetensors', '--seeds', 0,
                    '--out', tmp_path / 'o1', '-q')
    assert code == 1 and 'f.safetensors does not match' in err and 'shape mismatches' in err, err
    clf = tmp_path / 'clf.safetensors'
    clf.write_bytes(attribute_classifier_path().read_bytes()[:3000])
    code, err = run(capsys, 'edit', '--clf', clf, '--seeds', 0, '--out', tmp_path / 'o2', '-q')
    assert code == 1 and f'{clf}: truncated safetensors file' in err, err


@pytest.mark.parametrize('codes, says', [
    (torch.zeros(0, 64), 'holds no codes'),
    (torch.full((2, 64), float('nan')), '2 of 2 codes hold NaN or infinite values'),
    (torch.tensor([[1.0] * 63 + [float('inf')]]), '1 of 1 codes hold NaN or infinite values')])
@pytest.mark.parametrize('command', ['components', 'mix', 'interpolate'])
def test_codes_files_checked_on_load(tmp_path, capsys, codes, says, command):
    save_codes(tmp_path / 'c.pt', codes)
    code, err = run(capsys, command, '--codes', tmp_path / 'c.pt', '--out', tmp_path / 'out', '-q')
    assert code == 1 and f'{tmp_path / "c.pt"}: {says}' in err, err
    assert not any((tmp_path / 'out').glob('*.png'))


def test_segmenter_of_other_classes(tmp_path, capsys):
    from semstylegan.masks import Segmenter, save_segmenter
    save_segmenter(Segmenter(4, 8), tmp_path / 'seg.safetensors')
    code, err = run(capsys, 'eval', 'masks', pretrained_path(), '--segmenter', tmp_path / 'seg.safetensors',
                    '--num', 4, '--out', tmp_path / 'ev', '-q')
    assert code == 1 and 'a segmenter of 4 classes, but the generator has 13' in err, err


def test_folders_and_files_named_for_each_other(tmp_path, capsys):
    (tmp_path / 'x.safetensors').mkdir()
    (tmp_path / 'taken').write_text('a file')
    code, err = run(capsys, 'train-encoder', '--out', tmp_path / 'taken')
    assert code == 2 and 'taken is a file; expected a folder to write into' in err, err
    code, err = run(capsys, 'convert', pretrained_path(), '--out', tmp_path / 'x.safetensors')
    assert code == 2 and 'x.safetensors is a folder; expected the name of a file to write' in err, err
    code, err = run(capsys, 'edit', '--clf', tmp_path / 'x.safetensors', '--seeds', 0)
    assert code == 2 and 'x.safetensors is a folder; expected a file' in err, err
    code, err = run(capsys, 'invert', photos(tmp_path / 'p'), '--encoder', tmp_path / 'x.safetensors', '-q',
                    '--out', tmp_path / 'o')
    assert code == 1 and 'no encoder.safetensors and no checkpoint in this folder' in err, err
    (tmp_path / 'file').write_text('x')
    code, err = run(capsys, 'train-encoder', '--out', tmp_path / 'r', '--real', tmp_path / 'file')
    assert code == 2 and 'is a file; expected a folder' in err, err


# ---- arguments: one type per kind of value, a usage error before any work ----

@pytest.mark.parametrize('argv, says', [
    (['train-encoder', '--batch', '0'], "--batch: expected a positive integer, got '0'"),
    (['train-encoder', '--batch', '-2'], "--batch: expected a positive integer, got '-2'"),
    (['train-encoder', '--ckpt-every', '0'], "--ckpt-every: expected a positive integer, got '0'"),
    (['train-encoder', '--iterations', '0'], "--iterations: expected a positive integer"),
    (['train-encoder', '--lr', 'nan'], "--lr: expected a number more than 0, got 'nan'"),
    (['train-encoder', '--seed', str(2**64)], '--seed: expected a seed from 0 to 4294967295'),
    (['invert', '.', '--pti-steps', '-5'], "--pti-steps: expected a whole number, 0 or more, got '-5'"),
    (['edit', '--method', 'styleflow', '--values', '5', '-3'], "--values: expected a probability from 0 to 1"),
    (['edit', '--method', 'styleflow', '--values', 'nan'], "--values: expected a probability from 0 to 1"),
    (['sample', '--seed', '99999999999999999999'], '--seed: expected a seed'),
    (['edit', '--text', 'hair: long hair', '--values', '0.5'], '--values: no effect with --text'),
    (['edit', '--text', 'hair: long hair', '--method', 'styleflow'], '--method: no effect with --text'),
    (['edit', '--alphas', '1', '--method', 'styleflow'], '--alphas: no effect with --method styleflow'),
    (['edit', '--clip', 'tiny'], '--clip: no effect without --text'),
    (['components', '--seeds', '1', '--codes', 'README.md'], 'not allowed with argument --seeds'),
    (['bench', '--what', 'synthetic', '--device', 'cuda'], '--device: no effect with --what synthetic'),
    (['bench', '--what', 'model', '--data', '.'], '--data: no effect with --what model'),
    (['eval', 'fid', '.', '--segmenter', 'README.md'], '--segmenter: no effect for fid'),
    (['interpolate', '--fps', '5'], '--fps: no effect without --gif or --mp4'),
    (['demo', '--minutes', '1', '--steps', '3'], 'not allowed with argument --minutes')])
def test_bad_arguments_are_usage_errors(tmp_path, capsys, monkeypatch, argv, says):
    monkeypatch.chdir(Path(__file__).parent.parent)                     # '.' and README.md exist there
    code, err = run(capsys, *argv, '--out', tmp_path / 'out') if argv[0] != 'bench' else run(capsys, *argv)
    assert code == 2 and says in err, err
    assert not (tmp_path / 'out').exists()


def test_every_option_is_typed():
    "No option of any command parses a number with bare int/float, or a file or folder (in or out) without a check."
    import semstylegan.cli.args as A
    # --inception and --lpips go to `metrics.find_weights`, which checks them and says where to download the weights
    inputs = {'ckpt', 'codes', 'clf', 'flow', 'segmenter', 'encoder', 'images', 'src', 'labels', 'classes', 'init',
              'baseline', 'clip', 'real', 'data', 'root', 'out'}
    def parsers(p):
        yield p
        for a in p._actions:
            for s in getattr(a, 'choices', None).values() if isinstance(a.choices, dict) else (): yield from parsers(s)
    bad = []
    for p in parsers(make_parser()):
        for a in p._actions:
            if a.type in (int, float): bad.append(f'{p.prog} {a.dest}: {a.type.__name__}')
            if a.dest in inputs and not (a.type and a.type.__module__ == A.__name__):
                bad.append(f'{p.prog} {a.dest}: unchecked path ({a.type})')
    assert not bad, bad


# ---- outputs: never two runs in one folder, never two inputs on one name ----

def test_sample_into_a_used_folder(tmp_path, capsys):
    out = tmp_path / 's'
    assert run(capsys, 'sample', '--preset', 'tiny', '-n', 6, '--out', out)[0] == 0
    code, err = run(capsys, 'sample', '--preset', 'tiny', '-n', 2, '--out', out)
    assert code == 1 and f'{out}: holds the results of an earlier run' in err and '--force' in err, err
    assert len(list((out / 'images').iterdir())) == 6
    assert run(capsys, 'sample', '--preset', 'tiny', '-n', 2, '--out', out, '--force')[0] == 0
    assert len(list((out / 'images').iterdir())) == 2
    assert torch.load(out / 'codes.pt', weights_only=True)['wplus'].shape[0] == 2


def test_invert_names_never_collide_and_never_read_its_outputs(tmp_path, capsys):
    src = photos(tmp_path / 'in', names=['a/face.png', 'b/face.png', 'c/face.jpg', 'c/face.png'])
    out = src / 'inverted'
    args = ['invert', src, '--encoder', 'tiny', '--out', out, '-q']
    assert run(capsys, *args)[0] == 0
    names = sorted(str(p.relative_to(out / 'recon')) for p in (out / 'recon').rglob('*.png'))
    assert names == ['a/face.png', 'b/face.png', 'c/face.jpg.png', 'c/face.png.png'], names
    code, err = run(capsys, *args)
    assert code == 1 and 'holds the results of an earlier run' in err
    assert run(capsys, *args, '--force')[0] == 0
    assert len(torch.load(out / 'codes.pt', weights_only=True)['files']) == 4        # not its own reconstructions


# ---- resume: the run's settings, or a refusal naming them ----

def test_encoder_resume_with_other_settings(tmp_path, capsys):
    out = tmp_path / 'run'
    base = ['train-encoder', '--out', out, '--batch', 2, '--ckpt-every', 1, '-q']
    assert run(capsys, *base, '--steps', 1)[0] == 0
    code, err = run(capsys, 'train-encoder', '--out', out, '--resume', '--steps', 2, '--batch', 4, '--lr', 0.01)
    assert code == 1 and 'batch 4 (the run has 2)' in err and 'lr 0.01 (the run has 0.001)' in err, err
    G = load_generator(pretrained_path())
    torch.manual_seed(1)
    save_checkpoint(tmp_path / 'other.safetensors', G.cfg, g_ema=type(G)(G.cfg))
    code, err = run(capsys, 'train-encoder', '--out', out, '--resume', '--steps', 2, '--ckpt', tmp_path / 'other.safetensors')
    assert code == 1 and 'trained for another generator' in err, err
    assert run(capsys, 'train-encoder', '--out', out, '--resume', '--steps', 2, '--ckpt-every', 5, '-q')[0] == 0


def test_encoder_with_fewer_real_photos_than_a_grid(tmp_path, capsys):
    out = tmp_path / 'run'
    code, err = run(capsys, 'train-encoder', '--out', out, '--real', photos(tmp_path / 'p', 2), '--batch', 2,
                    '--steps', 1, '--ckpt-every', 1, '-q')
    assert code == 0, err
    assert (out / 'encoder.safetensors').exists() and (out / 'samples' / '000001.png').exists()


# ---- signals and short runs ----

def _wait_for(p, cond, seconds=240):
    deadline = time.time() + seconds
    while time.time() < deadline and not cond() and p.poll() is None: time.sleep(0.2)
    assert cond(), p.stderr.read().decode()


@pytest.mark.slow
def test_sigterm_stops_train_encoder_cleanly_and_it_resumes(tmp_path):
    out = tmp_path / 'run'
    p = popen_cli('train-encoder', '--out', out, '--batch', 2, '--ckpt-every', 1, '--steps', 10_000, '-q',
                  env={'OMP_NUM_THREADS': '1'})
    _wait_for(p, lambda: len(list((out / 'checkpoints').glob('*.pt'))) >= 1)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    err = p.stderr.read().decode()
    assert p.returncode == 143 and 'terminated (SIGTERM)' in err and '--resume' in err and 'Traceback' not in err, err
    step = int(sorted((out / 'checkpoints').glob('*.pt'))[-1].stem)
    r = popen_cli('train-encoder', '--out', out, '--resume', '--steps', step + 1, '-q')
    assert r.wait(timeout=300) == 0, r.stderr.read().decode()
    assert load_encoder(out).info['steps'] == step + 1


@pytest.mark.slow
def test_sigterm_stops_demo(tmp_path):
    out = tmp_path / 'demo'
    p = popen_cli('demo', '--out', out, '--minutes', 30, '-q', env={'OMP_NUM_THREADS': '1'})
    _wait_for(p, lambda: (out / 'run' / 'train_config.json').exists())
    time.sleep(1)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    err = p.stderr.read().decode()
    assert p.returncode == 143 and 'demo: terminated (SIGTERM); --resume continues' in err, err


def test_demo_shorter_than_its_first_log(tmp_path, capsys):
    code, err = run(capsys, 'demo', '--out', tmp_path / 'd', '--minutes', 0.0001, '-q')
    assert code == 0, err
    summary = json.loads((tmp_path / 'd' / 'summary.json').read_text())
    assert summary['steps'] >= 0 and (tmp_path / 'd' / 'index.html').exists()


def _processes_mentioning(text):
    "Pids of live processes whose command line holds `text` (forked workers keep their parent's)."
    pids = []
    for d in Path('/proc').iterdir():
        try:
            if d.name.isdigit() and text in (d / 'cmdline').read_bytes().decode(errors='replace'): pids.append(int(d.name))
        except OSError: pass
    return pids


@pytest.mark.slow
def test_sigterm_stops_prepare_and_its_workers(tmp_path):
    "SIGTERM to the main process only: exit 143, the workers gone, and the same command resumes."
    import numpy as np
    out = tmp_path / 'd'
    args = ['prepare', 'synthetic', '--n', 4000, '--n-test', 0, '--size', 128, '--workers', 2, '--out', out]
    p = popen_cli(*args)
    status = tmp_path / '.d.partial' / 'train_status.npy'
    def started():
        try: return bool(np.load(status, mmap_mode='r').any())
        except (OSError, ValueError): return False
    _wait_for(p, started, 120)
    p.send_signal(signal.SIGTERM)
    p.wait(timeout=60)
    err = p.stderr.read().decode()
    assert p.returncode == 143 and 'prepare: terminated (SIGTERM); run the same command again to resume' in err, err
    deadline = time.time() + 10
    while time.time() < deadline and _processes_mentioning(str(out)): time.sleep(0.2)
    assert not _processes_mentioning(str(out))
    assert not out.exists()


def test_killed_prepare_worker(tmp_path):
    "A worker killed as the OOM killer would: a clear OSError saying how to resume, not BrokenProcessPool."
    from semstylegan.data import Synthetic
    from semstylegan.prepare import prepare
    parent = os.getpid()

    class Dies(Synthetic):
        def load_chunk(self, keys):
            if os.getpid() != parent: os.kill(os.getpid(), signal.SIGKILL)
            return super().load_chunk(keys)
    with pytest.raises(OSError, match='a prepare worker process died .* run the same command again to resume'):
        prepare(Dies(n=64, size=32, n_test=0), tmp_path / 'd', workers=2, chunk=8)


def test_docs_build_names_a_notebook_that_is_not_one(tmp_path):
    import subprocess, sys
    nbs = tmp_path / 'nbs'
    nbs.mkdir()
    (nbs / '01_x.ipynb').write_text('{"cells": 3, "metadata": {}}')
    tool = Path(__file__).parent.parent / 'tools' / 'build_docs.py'
    r = subprocess.run([sys.executable, tool, '--nbs', nbs, '--out', tmp_path / 'site'], capture_output=True, text=True)
    assert r.returncode == 1 and f'{nbs / "01_x.ipynb"}: not a readable notebook' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr


def test_train_resume_with_other_settings(tmp_path, capsys):
    "train --resume takes the run's settings; a flag or --set that asks for another value is refused, naming it."
    out = tmp_path / 'run'
    small = ['--set', 'model.local_channel=16', '--set', 'model.coarse_channel=16', '--set', 'model.max_channels=32',
             '--set', 'n_synthetic=8', '--set', 'sample_every=1000']
    assert run(capsys, 'train', '--out', out, '--steps', 1, '--batch', 2, '-q', *small)[0] == 0
    code, err = run(capsys, 'train', '--out', out, '--resume', '--steps', 2, '--batch', 4, '--set', 'lr=0.01', '-q')
    assert code == 1 and 'batch 4 (the run has 2)' in err and 'lr 0.01 (the run has 0.002)' in err, err
    assert run(capsys, 'train', '--out', out, '--resume', '--steps', 2, '--set', 'log_every=1', '-q')[0] == 0


def test_unreadable_real_photo_without_skip_bad(tmp_path, capsys):
    "train-encoder --real has no --skip-bad: its message does not offer it."
    folder = photos(tmp_path / 'p', 2)
    (folder / 'bad.png').write_bytes(b'not an image')
    code, err = run(capsys, 'train-encoder', '--out', tmp_path / 'r', '--real', folder, '--steps', 1, '-q')
    assert code == 1 and f'{folder / "bad.png"}: cannot decode image' in err and '--skip-bad' not in err, err


def test_unforeseen_errors_are_one_line_unless_asked(tmp_path, capsys, monkeypatch):
    "The net under every command: an error no check foresaw is one line and exit 1; $SEMSTYLEGAN_TRACEBACK shows it."
    import semstylegan.cli as cli
    def broken(args): raise RuntimeError('something nobody checked')
    argv = ['info', '--preset', 'tiny']
    parser = cli.make_parser
    monkeypatch.setattr(cli, 'make_parser', lambda: _with_fn(parser(), 'info', broken))
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith('semstylegan info: internal error: RuntimeError: something nobody checked (a bug') and \
        err.count('\n') == 1, err
    monkeypatch.setenv('SEMSTYLEGAN_TRACEBACK', '1')
    with pytest.raises(RuntimeError, match='something nobody checked'): main(argv)


def _with_fn(parser, command, fn):
    "`parser` with the subcommand `command` running `fn`."
    next(a for a in parser._actions if isinstance(a.choices, dict)).choices[command].set_defaults(fn=fn)
    return parser


def test_disk_full_in_a_newer_command(tmp_path, capsys, small_disk):
    "train-encoder on a disk that fills at its first checkpoint: one line naming the disk and --resume, exit 1."
    out = small_disk('256k') / 'run'
    code, err = run(capsys, 'train-encoder', '--out', out, '--batch', 2, '--steps', 1, '--ckpt-every', 1, '-q')
    assert code == 1 and 'the disk is full' in err and '--resume continues' in err, err
    assert not [p for p in out.rglob('*') if p.name.endswith('.tmp')]            # no partial file left behind
