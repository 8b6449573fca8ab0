"""CPU proxies for GPU properties: operation counts that a GPU pays per launch, and the activations autograd keeps
(most of a step's GPU memory), checked without a GPU.

On an H200 one R1 step took 22 s instead of 0.65 s because the second derivative of the depth-wise FIR filters ran
one convolution per channel (9,896 launches). Seconds on a CPU hid it; counts do not."""
import json
import pytest
import torch
from semstylegan.bench import profile_ops
from semstylegan.layers import CONV
from semstylegan.loaders import to_model_inputs
from semstylegan.train import Trainer
from semstylegan.config import train_config

def _trainer(max_channels=512, batch=2, **kw):
    "A 64 px model with the default channel table (512 channels at 4..32 px) or a lower cap, and a real batch."
    model = dict(size=64, coarse_size=32, max_channels=max_channels)
    tr = Trainer(train_config('celebamask-256', model=model, batch=batch, workers=0, n_synthetic=16, amp='off', **kw))
    tr.g_trainable()
    return tr, *to_model_inputs(tr.dataset[list(range(batch))], tr.cfg.n_classes)

def _regularisers(max_channels):
    "Convolutions run by one R1 step and one path-length step."
    tr, img, mask = _trainer(max_channels)
    return dict(r1=profile_ops(lambda: tr.d_reg(img, mask, {}))['convolutions'],
                pl=profile_ops(lambda: tr.g_reg({}))['convolutions'])

def test_regulariser_convolutions_do_not_grow_with_channels(monkeypatch):
    # as on a GPU: autograd's own convolutions (a CPU without AVX-512 gives only the wide model's large convolutions
    # matrix-product weight gradients)
    monkeypatch.setitem(CONV, 'weight_grad', 'aten')
    wide, narrow = _regularisers(512), _regularisers(32)
    assert wide == narrow, (wide, narrow)           # the per-channel loop made these 8,308 and 1,055 at 512
    assert wide['r1'] <= 300 and wide['pl'] <= 100, wide

def test_discriminator_phases_keep_one_graph():
    "D's main phase holds one D graph at a time (fake, then real), and the separate R1 one branch at a time."
    tr, img, mask = _trainer()
    one_graph = profile_ops(lambda: tr.D(img, mask).sum().backward())['saved_peak_mb']
    d_main = profile_ops(lambda: tr.d_main(img, mask, {}))['saved_peak_mb']
    assert one_graph * 0.9 < d_main < one_graph * 1.1, (d_main, one_graph)
    r1_separate = profile_ops(lambda: tr.d_reg(img, mask, {}))['saved_peak_mb']
    tr.tc.r1_mode = 'official'
    r1_coupled = profile_ops(lambda: tr.d_reg(img, mask, {}))['saved_peak_mb']
    assert r1_separate < 0.65 * r1_coupled, (r1_separate, r1_coupled)

@pytest.mark.slow
def test_bench_train_default_batch(tmp_path, run_cli):
    "`bench --what train` without --batch (it used to fail with a NameError): the recipe's batch, 4 at most on a CPU."
    r = run_cli('bench', '--what', 'train', '--preset', 'tiny', '--repeat', '1', '--profile', '2',
                '--out', str(tmp_path / 'b.json'))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / 'b.json').read_text())
    assert res['ours']['batch'] == res['official']['batch'] == 4
    assert res['speedup'] > 0 and set(res['ours']['profile']) == {'d_main', 'd_reg', 'g_main', 'g_reg'}
    assert 0 < res['ours']['profile']['d_reg']['convolutions'] <= 300

def test_training_step_never_reads_a_tensor_on_the_host(monkeypatch):
    """Our code never reads a tensor's value during a step (`.item()`, `bool(t)`, `.tolist()`, `.cpu()`...): on a GPU
    each read makes the host wait for the device. (torch.optim's reads of its CPU step counters do not wait.)"""
    import sys
    tr, _, _ = _trainer(max_channels=32)
    batch = tr.dataset[list(range(2))]
    tr.train_step(batch)                                          # step 0: all four phases, regularisers included
    reads = []
    for name in ('item', 'tolist', 'cpu', 'numpy', '__bool__', '__float__', '__int__', '__index__'):
        real = getattr(torch.Tensor, name)
        def spy(self, *a, real=real, name=name, **kw):
            caller = sys._getframe(1).f_code.co_filename
            if 'semstylegan' in caller: reads.append(f'{name} in {caller}:{sys._getframe(1).f_lineno}')
            return real(self, *a, **kw)
        monkeypatch.setattr(torch.Tensor, name, spy)
    tr.step = 0
    tr.train_step(batch)
    assert reads == [], reads

def _one_step(form='auto', timed=('cuda',), **kw):
    """Each phase's gradients and the losses of one full step (all four phases) of a fresh trainer, FIR filters in
    `form`; the optimisers do not step, so that every phase sees the initial weights."""
    from semstylegan.layers import FIR, use_fir
    tr, _, _ = _trainer(max_channels=32, **kw)
    grads = []
    def record(phase, t):
        params = t.d_params if phase in ('d_main', 'r1') else t.g_params
        grads.append(torch.cat([p.grad.flatten() for p in params if p.grad is not None]))
        for p in params: p.grad = None                             # so the optimiser leaves the weights as they are
    tr.on_update.append(record)
    saved, FIR['timed'] = FIR['timed'], timed
    try:
        with use_fir(form): stats = tr.train_step(tr.dataset[list(range(2))])
    finally: FIR['timed'] = saved
    return grads, stats

def _assert_same_step(a, b, rtol, what):
    assert len(a[0]) == len(b[0]) == 4 and set(a[1]) >= {'r1_img', 'r1_seg', 'pl_penalty'}, a[1].keys()
    for phase, (x, y) in enumerate(zip(a[0], b[0])): assert (x - y).norm() <= rtol * y.norm(), (what, phase)
    for k, v in a[1].items(): assert torch.allclose(v, b[1][k], rtol=rtol, atol=1e-7), (what, k)

def test_every_fir_form_trains_the_same_step():
    """The three FIR forms, and 'auto' timing them on this CPU as it does on a GPU, give the same training step
    (filters, their derivatives and second derivatives, in channels-last layout, inside R1 and path length)."""
    from semstylegan.layers import FIR_CHOICES, fir_report
    ref = _one_step('conv')
    FIR_CHOICES.clear()
    steps = {form: _one_step(form) for form in ('fold', 'taps')} | {'auto': _one_step('auto', timed=('cpu',))}
    for form, step in steps.items(): _assert_same_step(step, ref, 1e-5, form)
    report = fir_report()
    assert report['cases'] >= 8 and sum(report['chosen'].values()) == report['cases'], report
    assert report['ms_per_pass']['auto'] <= min(report['ms_per_pass'][f] for f in ('conv', 'fold', 'taps'))
    FIR_CHOICES.clear()

@pytest.mark.slow
def test_compiled_main_phases_compute_the_eager_step():
    """`compile=True` (torch.compile of G's synthesis and D for the main phases) computes the eager step's gradients,
    to float32 rounding, which the compiler's reordering amplifies to 1e-4 in G's main phase (in float64: 7e-9)."""
    _assert_same_step(_one_step(compile=True), _one_step(), 1e-3, 'compiled')

def test_bad_fir_setting_is_a_clear_error(monkeypatch, run_cli):
    "$SEMSTYLEGAN_FIR with an unknown form: exit 1 naming the variable, the value and the forms, no traceback."
    monkeypatch.setenv('SEMSTYLEGAN_FIR', 'fastest')
    r = run_cli('info', '--preset', 'tiny')
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert "SEMSTYLEGAN_FIR='fastest' is not a FIR form: use one of auto, conv, fold, taps" in r.stderr
    monkeypatch.setenv('SEMSTYLEGAN_FIR', 'taps')
    r = run_cli('bench', '--what', 'model', '--preset', 'tiny', '--batch', '1', '--repeat', '1', '--no-reference')
    assert r.returncode == 0 and json.loads(r.stdout)['fir'] == {'form': 'taps'}, r.stderr
