"""CPU proxies for GPU properties: operation counts that a GPU pays per launch, checked without a GPU.

On an H200 one R1 step took 22 s instead of 0.65 s because the second derivative of the depth-wise FIR filters ran
one convolution per channel (9,896 launches). Seconds on a CPU hid it; counts do not."""
import json
import pytest
import torch
from semstylegan.bench import profile_ops
from semstylegan.data import to_model_inputs
from semstylegan.train import Trainer, train_config
from test_cli import run

def _counts(max_channels, batch=2):
    "Convolutions run by one R1 step and one path-length step of a 64 px model with the given channel cap."
    model = dict(size=64, coarse_size=32, max_channels=max_channels)
    tr = Trainer(train_config('celebamask-256', model=model, batch=batch, workers=0, n_synthetic=16, amp='off'))
    img, mask = to_model_inputs(tr.dataset[list(range(batch))], tr.cfg.n_classes)
    tr.g_trainable()
    return dict(r1=profile_ops(lambda: tr.d_reg(img, mask, {}))['convolutions'],
                pl=profile_ops(lambda: tr.g_reg({}))['convolutions'])

def test_regulariser_convolutions_do_not_grow_with_channels():
    wide, narrow = _counts(512), _counts(32)       # the default channel table (512 channels at 4..32 px) and a cap of 32
    assert wide == narrow, (wide, narrow)           # the per-channel loop made these 8,305 and 1,055 at 512
    assert wide['r1'] <= 300 and wide['pl'] <= 100, wide

def test_bench_train_default_batch(tmp_path):
    "`bench --what train` without --batch (it used to fail with a NameError): the recipe's batch, 4 at most on a CPU."
    r = run('bench', '--what', 'train', '--preset', 'tiny', '--repeat', '1', '--profile', '2', '--out', str(tmp_path / 'b.json'))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / 'b.json').read_text())
    assert res['ours']['batch'] == res['official']['batch'] == 4
    assert res['speedup'] > 0 and set(res['ours']['profile']) == {'d_main', 'd_reg', 'g_main', 'g_reg'}
    assert 0 < res['ours']['profile']['d_reg']['convolutions'] <= 300
