"""Winograd F(4x4, 3x3) in PyTorch ops beside the library's 3x3 convolution, per layer shape (JSON on stdout).

The one algorithm with fewer multiply-adds than a direct 3x3 convolution (36 products per 16 outputs instead of 144):
each 6x6 input tile is transformed (B^T d B), one batched matrix product per tile point does the channel sums, and
the 4x4 output is transformed back (A^T m A); autograd differentiates it into the same three steps, so the backward
does 4x fewer products too. The transforms are memory passes; this measures whether they cost less than the products
saved. `direct`: `semstylegan.layers.conv2d` (its CPU weight-gradient rule included). Usage:
    python tools/bench_winograd.py [--batch 4] [--repeat 3] [--threads 2]
To see an AVX2-only CPU on a newer one: ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 MKL_ENABLE_INSTRUCTIONS=AVX2"""
import argparse, json
import torch, torch.nn.functional as F
from semstylegan.bench import time_fn
from semstylegan.layers import conv2d

BT = torch.tensor([[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0], [0, -2, -1, 2, 1, 0],
                   [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
G = torch.tensor([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6], [1 / 24, 1 / 12, 1 / 6],
                  [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]], dtype=torch.float64)
AT = torch.tensor([[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0], [0, 1, -1, 8, -8, 1]],
                  dtype=torch.float64)
KB, KG, KA = torch.kron(BT, BT), torch.kron(G, G), torch.kron(AT, AT)   # on row-major flattened tiles

def winograd_conv3x3(x, w):
    "`F.conv2d(x, w, padding=1)` for a 3x3 `w` (O, I, 3, 3) by Winograd F(4x4, 3x3)."
    n, c, h, wd = x.shape
    th, tw = -(-h // 4), -(-wd // 4)
    xp = F.pad(x.permute(0, 2, 3, 1), (0, 0, 1, 4 * tw + 1 - wd, 1, 4 * th + 1 - h))          # (N, H', W', I)
    d = torch.stack([xp[:, i:i + 4 * th:4, j:j + 4 * tw:4] for i in range(6) for j in range(6)])  # (36, N, th, tw, I)
    v = (KB.to(x) @ d.reshape(36, -1)).reshape(36, n * th * tw, c)
    u = (KG.to(w) @ w.permute(2, 3, 1, 0).reshape(9, -1)).reshape(36, c, w.shape[0])
    y = (KA.to(x) @ torch.bmm(v, u).reshape(36, -1)).reshape(4, 4, n, th, tw, -1)
    return y.permute(2, 5, 3, 0, 4, 1).reshape(n, -1, 4 * th, 4 * tw)[:, :, :h, :wd]

def compare(n, c, size, repeat):
    "Forward and forward+backward seconds of both forms on (n, c, size, size), and Winograd's relative error."
    x = torch.randn(n, c, size, size).contiguous(memory_format=torch.channels_last).requires_grad_()
    w = (torch.randn(c, c, 3, 3) / (3 * c ** 0.5)).requires_grad_()
    gy = torch.randn(n, c, size, size)
    forms = dict(direct=lambda a, b: conv2d(a, b, padding=1), winograd=winograd_conv3x3)
    def fwd(f):
        with torch.no_grad(): f(x, w)
    def step(f):
        f(x, w).backward(gy)
        x.grad = w.grad = None
    with torch.no_grad(): ref, got = F.conv2d(x, w, padding=1), winograd_conv3x3(x, w)
    res = dict(shape=[n, c, size, size], rel_error=((got - ref).abs().max() / ref.abs().max()).item())
    for name, f in forms.items():
        res[f'{name}_forward_s'] = time_fn(lambda: fwd(f), repeat=repeat)
        res[f'{name}_forward_backward_s'] = time_fn(lambda: step(f), repeat=repeat)
    res['speedup_forward'] = res['direct_forward_s'] / res['winograd_forward_s']
    res['speedup_forward_backward'] = res['direct_forward_backward_s'] / res['winograd_forward_backward_s']
    return res

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--batch', type=int, default=4); p.add_argument('--repeat', type=int, default=3)
    p.add_argument('--threads', type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    shapes = [(512, 16), (512, 32), (512, 64), (256, 128), (128, 256)]   # the 3x3 layers of celebamask-256
    out = dict(capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads(),
               layers=[compare(a.batch, c, s, a.repeat) for c, s in shapes])
    print(json.dumps(out, indent=1))
