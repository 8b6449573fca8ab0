"""The `semstylegan` console script: help, exit codes, outputs."""
import json
import pytest
import torch
from _helpers import popen_cli

def test_help(run_cli):
    r = run_cli('--help')
    assert r.returncode == 0 and all(c in r.stdout for c in ('info', 'sample', 'convert', 'prepare', 'bench'))
    assert run_cli().returncode == 2  # no subcommand: usage error

def test_info_json(run_cli):
    r = run_cli('info', '--preset', 'celebamask-256', '--json')
    info = json.loads(r.stdout)
    assert info['parameters'] == {'g_ema': 20_208_020, 'd': 51_169_793}
    assert info['latent']['names'][16] == 'hair.shape'

def test_sample_quiet_and_outputs(tmp_path, run_cli):
    r = run_cli('sample', '--preset', 'tiny', '-n', '3', '--out', str(tmp_path / 's'))
    assert r.returncode == 0 and r.stdout == '' and r.stderr == ''
    assert len(list((tmp_path / 's' / 'images').glob('*.png'))) == 3 and (tmp_path / 's' / 'grid.png').exists()

def test_convert_both_ways(tmp_path, run_cli):
    from semstylegan.generator import Generator, preset
    from semstylegan.checkpoint import save_checkpoint, load_checkpoint
    cfg = preset('tiny'); torch.manual_seed(0); G = Generator(cfg)
    ours = save_checkpoint(tmp_path / 'a.safetensors', cfg, g_ema=G)
    assert run_cli('convert', str(ours), '--to', 'official', '--out', str(tmp_path / 'off.pt')).returncode == 0
    assert run_cli('convert', str(tmp_path / 'off.pt'), '--out', str(tmp_path / 'b.safetensors')).returncode == 0
    G2 = load_checkpoint(tmp_path / 'b.safetensors')['g_ema']
    assert all(torch.equal(v, G2.state_dict()[k]) for k, v in G.state_dict().items())

def test_errors_exit_1(tmp_path, run_cli):
    "A file that is there but broken: exit 1 naming it; one that is not there: a usage error (exit 2) before any work."
    (tmp_path / 'empty.pt').write_bytes(b'')
    r = run_cli('info', '--ckpt', str(tmp_path / 'empty.pt'))
    assert r.returncode == 1 and 'empty.pt: empty file (0 bytes)' in r.stderr and r.stdout == ''
    r = run_cli('info', '--ckpt', str(tmp_path / 'missing.pt'))
    assert r.returncode == 2 and 'no such file: ' in r.stderr and 'missing.pt' in r.stderr and r.stdout == ''

def test_bench_json(tmp_path, run_cli):
    r = run_cli('bench', '--preset', 'tiny', '--batch', '2', '--repeat', '1', '--out', str(tmp_path / 'b.json'))
    assert r.returncode == 0
    res = json.loads((tmp_path / 'b.json').read_text())
    assert res['g_forward_s'] > 0 and res['g_forward_official_algorithm_s'] > 0 and res['preset'] == 'tiny'

def test_prepare_help(run_cli):
    r = run_cli('prepare', '--help')
    assert r.returncode == 0 and all(c in r.stdout for c in ('synthetic', 'celebamask-hq', 'folder'))

def test_prepare_synthetic_end_to_end(tmp_path, run_cli):
    from semstylegan.loaders import PreparedDataset
    from semstylegan.synthetic import synthetic_faces
    r = run_cli('prepare', 'synthetic', '--n', '10', '--n-test', '3', '--size', '32', '--workers', '2',
                '--out', str(tmp_path / 'd'))
    assert r.returncode == 0 and r.stderr == ''
    lines = r.stdout.splitlines()                                   # the summary is the output
    assert lines[0] == 'semstylegan-data 32px from synthetic: train 10, test 3, skipped 0' and lines[1].startswith('class')
    assert len(lines) == 2 + 13 and lines[2].startswith('background')
    img, lab, _ = synthetic_faces(13, 32)
    tr, te = PreparedDataset(tmp_path / 'd'), PreparedDataset(tmp_path / 'd', 'test')
    assert torch.equal(tr[list(range(10))]['image'], img[:10]) and torch.equal(te[[0, 1, 2]]['label'], lab[10:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ['d']

def test_prepare_folder_skip_bad(tmp_path, run_cli):
    import numpy as np
    from PIL import Image
    (tmp_path / 'i').mkdir(); (tmp_path / 'l').mkdir()
    for k in range(4):
        Image.fromarray(np.full((8, 8, 3), 40 * k, np.uint8)).save(tmp_path / 'i' / f'{k}.png')
        Image.fromarray(np.full((8, 8), k, np.uint8)).save(tmp_path / 'l' / f'{k}.png')
    Image.fromarray(np.full((8, 8), 99, np.uint8)).save(tmp_path / 'l' / '2.png')
    args = ['prepare', 'folder', str(tmp_path / 'i'), '--labels', str(tmp_path / 'l'), '--size', '8', '--workers', '0', '--out', str(tmp_path / 'o')]
    r = run_cli(*args)
    assert r.returncode == 1 and r.stdout == '' and len(r.stderr.splitlines()) == 1
    assert r.stderr.startswith('semstylegan prepare: error: ') and '2.png: label values [99] are not classes' in r.stderr
    r = run_cli(*args, '--skip-bad')
    assert r.returncode == 0 and 'train 3, skipped 1' in r.stdout and '2.png: label values [99]' in r.stdout
    assert json.loads((tmp_path / 'o' / 'train_keys.json').read_text()) == ['0', '1', '3']

def test_prepare_errors_exit_1_and_usage_exit_2(tmp_path, run_cli):
    r = run_cli('prepare', 'celebamask-hq', str(tmp_path), '--out', str(tmp_path / 'o'))
    assert r.returncode == 1 and 'not a CelebAMask-HQ folder: CelebA-HQ-img/ is missing' in r.stderr
    r = run_cli('prepare', 'folder', str(tmp_path / 'nope'), '--out', str(tmp_path / 'o'))
    assert r.returncode == 2 and r.stderr.strip().endswith(f'error: argument images: no such folder: {tmp_path / "nope"}')
    r = run_cli('prepare', 'synthetic', '--out', str(tmp_path / 'o'), '--size', '0')
    assert r.returncode == 2 and 'usage:' in r.stderr and 'expected a positive integer' in r.stderr
    from semstylegan.cli import main                                 # the other usage errors in this process (faster)
    for args in [('prepare',), ('prepare', 'synthetic'), ('prepare', 'folder', '.', '--out', 'x', '--test-frac', '1'),
                 ('prepare', 'lmdb', '--out', 'x'), ('bench', '--what', 'loader'), ('bench', '--what', 'disk')]:
        with pytest.raises(SystemExit) as e: main(list(args))
        assert e.value.code == 2, args
    assert not (tmp_path / 'o').exists()

def test_prepare_ctrl_c_then_resume(tmp_path, run_cli):
    "A real Ctrl-C (SIGINT to the process group, workers included): exit 130, no output folder, and the same command resumes."
    import os, signal, time
    import numpy as np
    from semstylegan.synthetic import synthetic_faces
    out = tmp_path / 'd'
    args = ['prepare', 'synthetic', '--n', '4000', '--n-test', '0', '--size', '128', '--workers', '2',
            '--out', str(out)]                                 # long enough to interrupt on a busy machine
    # a job started in the background by a non-interactive shell inherits SIGINT ignored: give the child the default
    default_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)
    p = popen_cli(*args, text=True, start_new_session=True, preexec_fn=default_sigint)
    status, t0 = tmp_path / '.d.partial' / 'train_status.npy', time.time()
    while time.time() - t0 < 120 and p.poll() is None:
        try:
            if np.load(status, mmap_mode='r').any(): break
        except (OSError, ValueError): pass
        time.sleep(0.01)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130 and err.strip() == 'semstylegan prepare: interrupted; run the same command again to resume'
    assert not out.exists() and 0 < np.load(status).astype(bool).sum() < 4000
    r = run_cli(*args)
    assert r.returncode == 0 and 'train 4,000, skipped 0' in r.stdout
    img, lab, _ = synthetic_faces(4, 128, indices=[0, 1, 2000, 3999])
    assert (np.load(out / 'train_images.npy', mmap_mode='r')[[0, 1, 2000, 3999]] == img.numpy()).all()
    assert (np.load(out / 'train_labels.npy', mmap_mode='r')[[0, 1, 2000, 3999]] == lab.numpy()).all()

def test_bench_loader_and_synthetic_json(tmp_path, run_cli):
    r = run_cli('prepare', 'synthetic', '--n', '16', '--n-test', '0', '--size', '16', '--workers', '0',
                '--out', str(tmp_path / 'd'))
    assert r.returncode == 0
    r = run_cli('bench', '--what', 'loader', '--data', str(tmp_path / 'd'), '--workers', '2', '--batch', '4',
                '--batches', '10', '--out', str(tmp_path / 'b.json'))
    assert r.returncode == 0 and r.stdout == ''
    res = json.loads((tmp_path / 'b.json').read_text())
    assert res['what'] == 'loader' and res['workers'] == 2 and res['batch'] == 4 and res['resolution'] == 16 and res['flip'] is True
    assert res['pairs_per_s'] > 0
    r = run_cli('bench', '--what', 'synthetic', '--size', '32', '--batch', '8', '--batches', '2', '--repeat', '1')
    res = json.loads(r.stdout)
    assert r.returncode == 0 and res['what'] == 'synthetic' and res['size'] == 32 and res['n'] == 16 and res['pairs_per_s'] > 0
    r = run_cli('bench', '--what', 'loader', '--data', str(tmp_path / 'nope'))
    assert r.returncode == 2 and 'no such folder' in r.stderr
    r = run_cli('bench', '--what', 'loader', '--data', str(tmp_path))
    assert r.returncode == 1 and 'not a prepared dataset' in r.stderr

def test_sample_bf16_matches_float32(tmp_path, run_cli):
    "`sample --amp bf16` (the CUDA default) draws the same faces as float32, to within bf16 rounding."
    import numpy as np
    from PIL import Image
    for amp in ('off', 'bf16'):
        r = run_cli('sample', '--preset', 'tiny', '-n', '2', '--amp', amp, '--out', str(tmp_path / amp))
        assert r.returncode == 0
    for kind in ('images', 'masks'):
        a, b = (np.stack([np.asarray(Image.open(f), dtype=np.float32) for f in sorted((tmp_path / amp / kind).glob('*.png'))])
                for amp in ('off', 'bf16'))
        if kind == 'images': assert 0 < np.abs(a - b).mean() < 4, np.abs(a - b).mean()   # of 255 levels
        else: assert (a == b).mean() > 0.9

def test_broken_checkpoints_exit_1_without_traceback(tmp_path, run_cli):
    pointer = tmp_path / 'model.safetensors'
    pointer.write_text('version https://git-lfs.github.com/spec/v1\noid sha256:4d7a21\nsize 81234567\n')
    r = run_cli('sample', '--ckpt', str(pointer), '--out', str(tmp_path / 's'))
    assert r.returncode == 1 and 'Traceback' not in r.stderr
    assert r.stderr.startswith(f'semstylegan sample: error: {pointer}: a Git LFS pointer') and 'run `git lfs pull`' in r.stderr
    from semstylegan.generator import Generator, preset
    from semstylegan.checkpoint import save_checkpoint
    cfg = preset('tiny'); G = Generator(cfg)
    with torch.no_grad(): G.render.convs[0].weight.fill_(float('nan'))
    nan = save_checkpoint(tmp_path / 'nan.pt', cfg, g_ema=G)
    r = run_cli('info', '--ckpt', str(nan))
    assert r.returncode == 1 and f"{nan} ['g_ema']:" in r.stderr and 'NaN or infinite' in r.stderr and 'Traceback' not in r.stderr

def test_convert_to_official_refuses_safetensors_out(tmp_path, run_cli):
    from semstylegan.generator import Generator, preset
    from semstylegan.checkpoint import save_checkpoint
    cfg = preset('tiny')
    ours = save_checkpoint(tmp_path / 'a.safetensors', cfg, g_ema=Generator(cfg))
    out = tmp_path / 'off.safetensors'
    r = run_cli('convert', str(ours), '--to', 'official', '--out', str(out))
    assert r.returncode == 1 and not out.exists()
    assert 'official checkpoints are torch (pickle) files' in r.stderr and f'use --out {tmp_path / "off.pt"}' in r.stderr

@pytest.mark.parametrize('argv', [['sample', '-n', '0'], ['sample', '--ncol', '0'], ['sample', '--batch', '0'],
                                  ['sample', '--batch', '-3'], ['eval', 'fid', '.', '--num', '0'],
                                  ['eval', 'masks', '.', '--batch', '-3'], ['eval', 'masks', '.', '--seg-steps', '0'],
                                  ['interpolate', '--steps', '0'], ['interpolate', '--fps', '0'],
                                  ['invert', '.', '--batch', '0'],
                                  ['edit', '--samples', '0'], ['edit', '--clf-steps', '-5']])
def test_counts_must_be_positive_usage_error(argv, capsys):
    from semstylegan.cli import main
    with pytest.raises(SystemExit) as e: main(argv)
    err = capsys.readouterr().err
    bad = argv[-1]
    assert e.value.code == 2 and f"expected a positive integer, got '{bad}'" in err, err


def test_invert_steps_may_be_zero_but_not_negative(capsys):
    "`invert --steps 0` is the encoder alone; a negative count is a usage error (exit 2) that says what is allowed."
    from semstylegan.cli import main
    with pytest.raises(SystemExit) as e: main(['invert', '.', '--steps', '-1'])
    assert e.value.code == 2 and "expected a whole number, 0 or more, got '-1'" in capsys.readouterr().err
