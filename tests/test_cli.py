"""The `semstylegan` console script: help, exit codes, outputs."""
import json, subprocess, sys
from pathlib import Path
import pytest
import torch

EXE = Path(sys.executable).parent / 'semstylegan'

def run(*args):
    cmd = [str(EXE)] if EXE.exists() else [sys.executable, '-c', 'import sys; from semstylegan.cli import main; sys.exit(main())']
    return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=600)

def test_help():
    r = run('--help')
    assert r.returncode == 0 and all(c in r.stdout for c in ('info', 'sample', 'convert', 'bench'))
    assert run().returncode == 2  # no subcommand: usage error

def test_info_json():
    r = run('info', '--preset', 'celebamask-256', '--json')
    info = json.loads(r.stdout)
    assert info['parameters'] == {'g_ema': 20_208_020, 'd': 51_169_793}
    assert info['latent']['names'][16] == 'hair.shape'

def test_sample_quiet_and_outputs(tmp_path):
    r = run('sample', '--preset', 'tiny', '-n', '3', '--out', str(tmp_path / 's'))
    assert r.returncode == 0 and r.stdout == '' and r.stderr == ''
    assert len(list((tmp_path / 's' / 'images').glob('*.png'))) == 3 and (tmp_path / 's' / 'grid.png').exists()

def test_convert_both_ways(tmp_path):
    from semstylegan.generator import Generator, preset
    from semstylegan.checkpoint import save_checkpoint, load_checkpoint
    cfg = preset('tiny'); torch.manual_seed(0); G = Generator(cfg)
    ours = save_checkpoint(tmp_path / 'a.safetensors', cfg, g_ema=G)
    assert run('convert', str(ours), '--to', 'official', '--out', str(tmp_path / 'off.pt')).returncode == 0
    assert run('convert', str(tmp_path / 'off.pt'), '--out', str(tmp_path / 'b.safetensors')).returncode == 0
    G2 = load_checkpoint(tmp_path / 'b.safetensors')['g_ema']
    assert all(torch.equal(v, G2.state_dict()[k]) for k, v in G.state_dict().items())

def test_errors_exit_1(tmp_path):
    r = run('info', '--ckpt', str(tmp_path / 'missing.pt'))
    assert r.returncode == 1 and 'missing.pt: no such file' in r.stderr and r.stdout == ''

def test_bench_json(tmp_path):
    r = run('bench', '--preset', 'tiny', '--batch', '2', '--repeat', '1', '--out', str(tmp_path / 'b.json'))
    assert r.returncode == 0
    res = json.loads((tmp_path / 'b.json').read_text())
    assert res['g_forward_s'] > 0 and res['g_forward_official_algorithm_s'] > 0 and res['preset'] == 'tiny'
