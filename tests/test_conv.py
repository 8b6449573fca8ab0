"""Convolutions whose CPU weight gradient is a matrix product (`semstylegan.layers.conv2d`): the training step they
compute, where 'auto' uses them, and the per-kind seconds `bench --profile` reports."""
import json
import torch
from semstylegan.layers import CONV, conv2d, conv_transpose2d
from test_gpu_proxies import _one_step, _assert_same_step


def _with(form, fn):
    old, CONV['weight_grad'] = CONV['weight_grad'], form
    try: return fn()
    finally: CONV['weight_grad'] = old


def test_matrix_product_weight_gradients_train_the_same_step():
    "All four phases (R1 and path length differentiate every convolution twice), through `_Conv` and through autograd."
    _assert_same_step(_with('mm', _one_step), _with('aten', _one_step), 1e-5, 'mm')


def test_auto_uses_them_for_large_weight_gradients_on_a_cpu_without_avx512(monkeypatch):
    "From 2**26 multiply-adds per sample: output pixels (a transpose's input) times the weight's size."
    w = torch.randn(64, 64, 3, 3, requires_grad=True)                  # 36,864 weights: 2**26 is about 43^2 outputs
    def backward_name(hw, transposed=False, stride=1):
        x = torch.randn(1, 64, hw, hw)
        y = conv_transpose2d(x, w.transpose(0, 1), 2) if transposed else conv2d(x, w, None, stride, 1)
        return type(y.grad_fn).__name__
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'AVX2')
    assert _with('auto', lambda: (backward_name(43), backward_name(42), backward_name(86, stride=2),
                                  backward_name(84, stride=2), backward_name(43, True), backward_name(42, True))) == \
        ('_ConvBackward', 'ConvolutionBackward0', '_ConvBackward', 'ConvolutionBackward0', '_ConvBackward',
         'ConvolutionBackward0')
    with torch.no_grad(): assert _with('mm', lambda: conv2d(torch.randn(1, 64, 8, 8), w).grad_fn) is None
    monkeypatch.setattr(torch.backends.cpu, 'get_cpu_capability', lambda: 'AVX512')
    assert _with('auto', lambda: backward_name(64)) == 'ConvolutionBackward0'


def test_bench_profile_reports_seconds_per_convolution_kind(tmp_path, run_cli):
    r = run_cli('bench', '--what', 'model', '--preset', 'tiny', '--batch', '2', '--repeat', '1', '--profile', '2',
                '--conv-wgrad', 'mm', '--out', str(tmp_path / 'b.json'))
    assert r.returncode == 0, r.stderr
    res = json.loads((tmp_path / 'b.json').read_text())
    kinds = res['profile']['g_d_step']['conv_kinds']
    assert res['conv'] == {'weight_grad': 'mm'} and res['g_d_forward_backward_speedup'] > 0
    assert {'conv 3x3', 'conv 3x3 transposed stride 2', 'conv 3x3 stride 2', 'fir'} <= set(kinds), kinds
    assert all(k['backward_calls'] > 0 and k['backward_per_forward'] > 0 for k in kinds.values()), kinds
    floor = res['floor']                                    # each pass at this CPU's measured pace
    assert floor['gflop_per_s'] > 0 and floor['gb_per_s'] > 0, floor
    for name in ('g_forward', 'g_d_forward_backward'):
        f = floor[name]
        assert f['tflop'] > 0 and f['bound_s'] > 0 and f['ours_over_bound'] > 0 and f['official_over_bound'] > 0, f
        assert f['ours_over_bound'] == res[f'{name}_s'] / f['bound_s']


def test_bad_weight_gradient_setting_is_a_clear_error(monkeypatch, run_cli):
    monkeypatch.setenv('SEMSTYLEGAN_CONV_WGRAD', 'fast')
    r = run_cli('bench', '--what', 'model', '--preset', 'tiny', '--batch', '1', '--repeat', '1', '--no-reference')
    assert r.returncode == 1 and 'Traceback' not in r.stderr, r.stderr
    assert "SEMSTYLEGAN_CONV_WGRAD='fast' is not a weight-gradient form" in r.stderr


def test_the_winograd_probe_computes_the_convolution_and_its_gradients():
    "tools/bench_winograd.py: F(4x4, 3x3) against `F.conv2d`, odd sizes included, and in double precision exactly."
    import importlib.util, pathlib
    import torch.nn.functional as F
    path = pathlib.Path(__file__).parents[1] / 'tools' / 'bench_winograd.py'
    spec = importlib.util.spec_from_file_location('bench_winograd', path)
    wino = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(wino)
    x = torch.randn(2, 5, 11, 9, dtype=torch.float64, requires_grad=True)
    w = torch.randn(7, 5, 3, 3, dtype=torch.float64, requires_grad=True)
    got, ref = wino.winograd_conv3x3(x, w), F.conv2d(x, w, padding=1)
    assert got.shape == ref.shape and torch.allclose(got, ref, atol=1e-10)
    gy = torch.randn_like(ref)
    grads = [torch.autograd.grad(f, (x, w), gy) for f in (got, ref)]
    assert all(torch.allclose(a, b, atol=1e-9) for a, b in zip(*grads))
    r = wino.compare(1, 8, 12, repeat=1)
    assert r['rel_error'] < 1e-4 and r['speedup_forward'] > 0 and r['shape'] == [1, 8, 12, 12]
