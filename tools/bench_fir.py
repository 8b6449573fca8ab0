"""R1 and path-length steps with the two FIR formulations side by side in one process (JSON on stdout).

`direct`: the depth-wise convolution differentiated by autograd (the earlier form); `upfirdn2d`: the autograd Function
whose derivatives are FIR filters again (now); `official`: the re-enacted official step. Usage:
    python tools/bench_fir.py [--preset celebamask-256] [--batch 4] [--device cpu] [--repeat 1]"""
import argparse, json
import torch
import semstylegan.layers as layers
from semstylegan.speed import train_speed

def regularisers(form, **kw):
    "Seconds and convolutions of R1 and path length with FIR form `form`."
    saved = layers.upfirdn2d
    if form == 'direct': layers.upfirdn2d = layers.upfirdn2d_direct
    try: r = train_speed(official=form == 'official', profile=1, **kw)
    finally: layers.upfirdn2d = saved
    return {k: r[k] for k in ('d_reg_s', 'g_reg_s', 'step_s', 'images_per_s')} | {
        f'{k}_convolutions': r['profile'][k]['convolutions'] for k in ('d_reg', 'g_reg')}

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--preset', default='celebamask-256'); p.add_argument('--batch', type=int, default=4)
    p.add_argument('--device', default='cpu'); p.add_argument('--repeat', type=int, default=1)
    a = p.parse_args()
    kw = dict(preset_name=a.preset, batch=a.batch, device=a.device, repeat=a.repeat)
    res = {form: regularisers(form, **kw) for form in ('upfirdn2d', 'direct', 'official')}
    res['speedup_vs_direct'] = {k: res['direct'][k] / res['upfirdn2d'][k] for k in ('d_reg_s', 'g_reg_s')}
    print(json.dumps(dict(preset=a.preset, batch=a.batch, device=a.device, threads=torch.get_num_threads(), **res), indent=1))
