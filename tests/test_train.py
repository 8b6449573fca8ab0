"""Training: multi-process equivalence (gloo), kill and resume through the CLI, bad settings."""
import json, os, signal, time
from pathlib import Path
import pytest
import torch
import torch.nn.functional as F
import torch.multiprocessing as tmp_mp

from semstylegan.train import Trainer
from semstylegan.config import train_config
from _helpers import popen_cli

SMALL = dict(size=32, coarse_size=16, min_feat_size=8, style_dim=32, n_mlp=2, local_channel=16, coarse_channel=32, max_channels=32)

def small_tc(**kw):
    return train_config('tiny', **{**dict(model=SMALL, batch=4, n_synthetic=64, workers=0), **kw})

def _rank(rank, world, init_file, out):
    import torch.distributed as dist
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}', rank=rank, world_size=world)
    tr = Trainer(small_tc(), rank=rank, world_size=world)
    n = tr.batch_rank
    for step in range(2):
        tr.train_step(tr.dataset[list(range(step * 4 + rank * n, step * 4 + (rank + 1) * n))])
    if rank == 0:
        torch.save({'G': tr.G.state_dict(), 'D': tr.D.state_dict(), 'G_ema': tr.G_ema.state_dict(), 'pl': tr.pl_mean}, out)
    dist.barrier()              # leave together: a rank that tears gloo down while the other still works aborts (SIGABRT)
    dist.destroy_process_group()

def test_ddp_two_processes_equal_one(tmp_path):
    """2 gloo processes x 2 samples == 1 process with batch 4 in rounds of 2 (the same step, regularisers included)."""
    torch.set_num_threads(1)
    one = Trainer(small_tc(batch_gpu=2))
    assert one.rounds == 2
    init = {n: {k: v.clone() for k, v in getattr(one, n).state_dict().items()} for n in ('G', 'D')}
    for step in range(2): one.train_step(one.dataset[list(range(step * 4, step * 4 + 4))])
    tmp_mp.spawn(_rank, args=(2, str(tmp_path / 'pg'), str(tmp_path / 'ddp.pt')), nprocs=2, join=True)
    ddp = torch.load(tmp_path / 'ddp.pt')
    # equal up to float rounding: the difference is below 1e-4 of what the two steps changed
    for name in ('G', 'D'):
        ref = getattr(one, name).state_dict()
        diff = max((ddp[name][k] - ref[k]).abs().max() for k in ref if ref[k].is_floating_point())
        moved = max((init[name][k] - ref[k]).abs().max() for k in ref if ref[k].is_floating_point())

        assert moved > 1e-3 and diff < 1e-4 * moved, (name, float(diff), float(moved))
    ref = one.G_ema.state_dict()
    assert all(torch.allclose(v, ref[k], atol=1e-5) for k, v in ddp['G_ema'].items())
    assert torch.allclose(ddp['pl'], one.pl_mean, rtol=1e-5)

def test_batch_must_split(tmp_path):
    with pytest.raises(ValueError, match='multiple of the 3 processes'):
        Trainer(small_tc(batch=4), world_size=3)

SMALL_SET = [a for k, v in SMALL.items() for a in ('--set', f'model.{k}={v}')]

def test_kill_and_resume(tmp_path, run_cli):
    """kill -9 in the middle of a run; --resume continues from the last whole checkpoint and finishes."""
    out = tmp_path / 'run'
    args = ['train', '--preset', 'tiny', '--out', out, '--steps', 1000, '--batch', 4, '-q', *SMALL_SET,
            '--set', 'ckpt_every=2', '--set', 'log_every=2', '--set', 'sample_every=1000', '--set', 'n_synthetic=64']
    p = popen_cli(*args, env={'OMP_NUM_THREADS': '1'})
    deadline = time.time() + 240
    while time.time() < deadline and len(list((out / 'checkpoints').glob('*.pt'))) < 2: time.sleep(0.2)
    time.sleep(0.3)
    p.send_signal(signal.SIGKILL); p.wait()
    ckpts = sorted((out / 'checkpoints').glob('[0-9]*.pt'))
    assert ckpts, p.stderr.read().decode()
    from semstylegan.checkpoint import safe_load
    last = safe_load(ckpts[-1]); step = last['step']
    assert step >= 2 and last['kind'] == 'training'
    r = run_cli('train', '--out', out, '--resume', '--steps', step + 2, '-q', timeout=300)
    assert r.returncode == 0, r.stderr
    assert safe_load(sorted((out / 'checkpoints').glob('[0-9]*.pt'))[-1])['step'] == step + 2
    assert (out / 'final.safetensors').exists()
    steps = [json.loads(l)['step'] for l in (out / 'metrics.jsonl').read_text().splitlines()]
    assert steps == sorted(set(steps)) and steps[-1] == step + 2, steps     # no step logged twice after the resume

def test_train_bad_settings(tmp_path, run_cli):
    r = run_cli('train', '--out', tmp_path / 'x', '--set', 'r1_sge=3')
    assert r.returncode == 1 and "unknown training setting 'r1_sge'" in r.stderr
    r = run_cli('train', '--data', tmp_path / 'nothing', '--out', tmp_path / 'x', '-q')
    assert r.returncode == 2 and 'no such folder' in r.stderr
    r = run_cli('train', '--data', tmp_path, '--out', tmp_path / 'x', '-q')
    assert r.returncode == 1 and 'not a prepared dataset' in r.stderr
    r = run_cli('train', '--print-config', '--set', 'lr=0.01')
    assert r.returncode == 0 and 'lr               0.01' in r.stdout
    for args, code, message in [
            (('--resume',), 1, 'no run to resume here'), (('--steps', '-5'), 2, "--steps: expected a positive integer"),
            (('--set', 'ema_decay=2'), 1, 'ema_decay=2.0 must be in'), (('--minutes', '0'), 2, '--minutes: expected a number'),
            (('--device', 'gpu'), 1, "'gpu' is not a device"), (('--batch', '0'), 2, '--batch: expected a positive integer'),
            (('--set', 'batch=0'), 1, 'batch=0 must be at least 1')]:
        r = run_cli('train', '--out', tmp_path / 'typo', '-q', *args)
        assert r.returncode == code and message in r.stderr and 'Traceback' not in r.stderr, (args, r.stderr)
        assert not (tmp_path / 'typo').exists(), args                       # nothing written

def test_shipped_checkpoint_is_trained(tmp_path):
    """The packaged tiny checkpoint loads, is the tiny preset, and draws faces: a face part at the centre of most samples."""
    from semstylegan.checkpoint import pretrained_path
    from semstylegan.demo import demo
    from semstylegan.checkpoint import load_generator
    from semstylegan.generator import preset
    G = load_generator(pretrained_path())
    assert G.cfg == preset('tiny')
    with torch.no_grad():
        o = G(torch.randn(32, G.cfg.style_dim, generator=torch.Generator().manual_seed(0)), noise_mode='const')
    centre = o.seg.argmax(1)[:, 28:36, 28:36]
    face = ((centre >= 1) & (centre <= 5)).float().mean((1, 2)) > 0.5
    assert face.float().mean() > 0.75, face
    from semstylegan.generator import Generator      # the same check fails for a random generator
    torch.manual_seed(0); R = Generator(preset('tiny')).eval()
    with torch.no_grad(): c = R(torch.randn(32, 64), noise_mode='const').seg.argmax(1)[:, 28:36, 28:36]
    assert (((c >= 1) & (c <= 5)).float().mean((1, 2)) > 0.5).float().mean() < 0.75
    info = demo(tmp_path / 'd', minutes=0.01, pretrained=True, progress=False, log=lambda *a: None)
    assert info['summary']['start'] == 'shipped checkpoint' and (tmp_path / 'd' / 'index.html').exists()

def test_bf16_autocast_step():
    """The mixed-precision path (bf16 autocast for the main phases, fp32 regularisers) computes the float32 step
    to within bf16 rounding (CPU autocast)."""
    tr, ref = Trainer(small_tc(amp='bf16')), Trainer(small_tc(amp='off'))
    assert tr.amp_dtype == torch.bfloat16 and ref.amp_dtype is None
    batch = tr.dataset[list(range(4))]
    st, st_ref = tr.train_step(batch), ref.train_step(batch)
    assert all(torch.isfinite(v) for v in st.values()) and {'r1_img', 'r1_seg', 'pl_penalty'} <= set(st)
    # D's phase runs first, on identical weights: its loss and scores agree with float32 to bf16 precision
    for k in ('d_loss', 'real_score', 'fake_score'):
        assert abs(st[k] - st_ref[k]) < 0.02 * max(1.0, abs(st_ref[k])), (k, st[k], st_ref[k])
    # the step moved D's weights in the same direction (Adam's first step is about lr * sign(grad))
    d0 = dict(Trainer(small_tc()).D.named_parameters())
    delta = lambda t: torch.cat([(p - d0[n]).flatten() for n, p in t.D.named_parameters()])
    assert F.cosine_similarity(delta(tr), delta(ref), 0) > 0.9   # 0.98 here; unrelated runs give about 0
    with pytest.raises(ValueError, match="amp=fp8 must be one of"):
        Trainer(small_tc(amp='fp8'))

def test_bf16_warns_without_native_bf16(monkeypatch):
    import semstylegan.train as T
    monkeypatch.setattr(T, 'cpu_has_bf16', lambda: False)
    with pytest.warns(UserWarning, match='emulated'): Trainer(small_tc(amp='bf16'))

def _three_class_data(root, n=8, size=32):
    "A prepared folder of n images with 3-class PNG label maps (background, left half, right half)."
    import numpy as np
    from PIL import Image
    from semstylegan import data
    from semstylegan.prepare import prepare
    for d in ('images', 'labels'): (root / d).mkdir(parents=True, exist_ok=True)
    for k in range(n):
        img = np.random.default_rng(k).integers(0, 255, (size, size, 3), dtype=np.uint8)
        lab = np.zeros((size, size), np.uint8); lab[8:24, 4:16] = 1; lab[8:24, 16:28] = 2
        Image.fromarray(img).save(root / 'images' / f'{k}.png'); Image.fromarray(lab).save(root / 'labels' / f'{k}.png')
    (root / 'classes.json').write_text(json.dumps({'names': ['background', 'left', 'right']}))
    src = data.ImageFolder(root / 'images', root / 'labels', root / 'classes.json', size=size)
    prepare(src, root / 'prepared', workers=0)
    return root / 'prepared'

def test_model_classes_come_from_the_data(tmp_path):
    "A custom dataset brings its classes; a model set to others, or an --init checkpoint with others, is a clear error."
    from semstylegan.checkpoint import CheckpointError, save_checkpoint
    from semstylegan.generator import Generator
    folder = _three_class_data(tmp_path)
    tr = Trainer(small_tc(data=str(folder), workers=0))
    assert tr.cfg.n_classes == 3 and tr.cfg.class_names == ('background', 'left', 'right')
    assert tr.tc.model['n_classes'] == 3 and tr.G.render.to_segs[0].conv.weight.shape[0] == 3
    stats = tr.train_step(tr.dataset[list(range(4))])
    assert all(torch.isfinite(v) for v in stats.values())
    with pytest.raises(ValueError, match="the data has 3 classes .* but the model is set to 13"):
        Trainer(small_tc(data=str(folder), model={**SMALL, 'n_classes': 13}))
    thirteen = Trainer(small_tc())                                   # the synthetic faces: 13 classes
    save_checkpoint(tmp_path / 'c13.safetensors', thirteen.cfg, g_ema=thirteen.G_ema, g=thirteen.G, d=thirteen.D)
    with pytest.raises(CheckpointError, match='the data has 3 classes and the checkpoint 13'):
        Trainer(small_tc(data=str(folder), init=str(tmp_path / 'c13.safetensors')))
    ft = Trainer(small_tc(data=str(folder), init=str(tmp_path / 'c13.safetensors'), image_only=True))
    assert ft.cfg.n_classes == 13                                     # fine-tuning on images keeps the checkpoint's

def test_full_disk_at_checkpoint(small_disk, run_cli):
    "The disk fills up at a checkpoint: a message naming the last whole checkpoint and --resume, exit 1, nothing lost."
    from semstylegan.checkpoint import safe_load
    out = small_disk('5m') / 'run'                          # room for two checkpoints of the small model (2 MB each)
    r = run_cli('train', '--preset', 'tiny', '--out', out, '--steps', 40, '--batch', 4, '-q', *SMALL_SET,
                '--set', 'ckpt_every=1', '--set', 'keep=1000', '--set', 'sample_every=1000',
                '--set', 'n_synthetic=64', '--workers', 0, timeout=300)
    assert r.returncode == 1 and 'could not write the checkpoint' in r.stderr and '--resume' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr
    ckpts = sorted((out / 'checkpoints').glob('*.pt'), key=lambda p: int(p.stem))
    assert ckpts and f'the last whole checkpoint is {ckpts[-1]}' in r.stderr
    assert safe_load(ckpts[-1])['step'] == len(ckpts)                  # the last one named is whole
    assert not list((out / 'checkpoints').glob('.*.tmp'))                # no partial file left behind

def test_killed_loader_worker_gives_a_resume_hint(tmp_path):
    "A data loader worker killed mid-run (as the OOM killer would): exit 1, a message with --resume, no traceback."
    out = tmp_path / 'run'
    p = popen_cli('train', '--preset', 'tiny', '--out', out, '--steps', 100000, '--batch', 4, '-q', *SMALL_SET,
                  '--set', 'ckpt_every=2', '--set', 'sample_every=100000', '--set', 'n_synthetic=64',
                  '--workers', 2, text=True, env={'OMP_NUM_THREADS': '1'})
    deadline = time.time() + 120
    while time.time() < deadline and not list((out / 'checkpoints').glob('*.pt')): time.sleep(0.2)
    children = Path(f'/proc/{p.pid}/task/{p.pid}/children')
    if not children.exists(): p.kill(); pytest.skip('needs /proc/PID/task/PID/children (Linux)')
    workers = [int(c) for c in children.read_text().split()]
    assert workers, 'no loader workers found'
    os.kill(workers[0], signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1 and 'a data loader worker died' in err and '--resume' in err, err
    assert 'Traceback' not in err

def test_full_disk_outside_a_checkpoint(small_disk, run_cli):
    "The disk fills up while writing samples (not a checkpoint): the same clear message, exit 1, no traceback."
    disk = small_disk('2m')
    (disk / 'filler').write_bytes(bytes(2 * 2**20 - 48 * 2**10))       # leaves about 48 KiB
    r = run_cli('train', '--preset', 'tiny', '--out', disk / 'run', '--steps', 3, '--batch', 4, '-q',
                *SMALL_SET, '--set', 'sample_every=1', '--set', 'n_synthetic=64', '--workers', 0, timeout=300)
    assert r.returncode == 1 and 'the disk is full' in r.stderr and '--resume' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr
