"""Package a finished `semstylegan train` run as the shipped `tiny` checkpoint and write its model card.

    python tools/make_pretrained.py RUN_DIR --command "semstylegan train ..." [--machine "..."]

Writes semstylegan/assets/tiny-synthetic.safetensors (g_ema, g, d and the model config) and
semstylegan/assets/MODEL_CARD.md (command, steps, images, wall time, final losses, a sample grid)."""
import argparse, json, sys
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from semstylegan.checkpoint import load_checkpoint, save_checkpoint
from semstylegan.train import read_metrics

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('run', type=Path); p.add_argument('--command', required=True); p.add_argument('--machine', default='')
    a = p.parse_args(argv)
    m = load_checkpoint(a.run / 'final.safetensors')
    assets = ROOT / 'semstylegan' / 'assets'; assets.mkdir(exist_ok=True)
    out = save_checkpoint(assets / 'tiny-synthetic.safetensors', m['config'], g_ema=m['g_ema'], g=m['g'], d=m['d'])
    recs = read_metrics(a.run / 'metrics.jsonl'); last = recs[-1]
    tc = json.loads((a.run / 'train_config.json').read_text())
    samples = sorted((a.run / 'samples').glob('*.png'))
    if samples: (assets / 'tiny-synthetic-samples.png').write_bytes(samples[-1].read_bytes())
    early = [r for r in recs if r['step'] <= max(100, last['step'] // 20)]
    card = f"""# `tiny-synthetic`: the shipped tiny SemanticStyleGAN

A `tiny` model (64 px, 13 classes, {sum(v.numel() for v in m['g_ema'].parameters()):,} generator parameters) trained on the
built-in synthetic faces by the project's own training command, so that notebooks, the demo and the explorers show a
trained model on a fresh machine. It is a toy: cartoon faces at 64 px, for trying the tools, not for research results.

- **Command:** `{a.command}`
- **Steps:** {last['step']:,} at batch {tc['batch']} ({last['step'] * tc['batch']:,} images), **wall time** {last['time'] / 60:.1f} min
  {('on ' + a.machine) if a.machine else ''}
- **Recipe:** the `tiny` training preset: {', '.join(f'{k}={tc[k]}' for k in ('lr', 'r1_img', 'r1_seg', 'lambda_mask', 'mixing', 'path_regularize', 'ema_rampup', 'seed'))}
- **Final losses** (mean of the last {tc['log_every']} steps): """ + ', '.join(f"{k} {last[k]:.4g}" for k in ('d_loss', 'g_loss', 'mask_loss', 'real_score', 'fake_score') if k in last) + f"""
- **Early losses** (first logs): """ + ', '.join(f"{k} {early[0][k]:.4g}" for k in ('d_loss', 'g_loss', 'mask_loss') if k in early[0]) + f"""
- **File:** `tiny-synthetic.safetensors` holds `g_ema`, `g`, `d` and the model config (load with
  `semstylegan.checkpoint.load_generator(semstylegan.demo.pretrained_path())`; `semstylegan demo --pretrained` continues
  training it).

![samples](tiny-synthetic-samples.png)
"""
    (assets / 'MODEL_CARD.md').write_text(card)
    print(f'wrote {out} ({out.stat().st_size / 2**20:.1f} MiB) and {assets / "MODEL_CARD.md"}')

if __name__ == '__main__':
    main()
