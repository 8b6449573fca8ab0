"""Package a finished `semstylegan train` run as a checkpoint shipped in the package and rewrite the model card.

    python tools/make_pretrained.py RUN_DIR --command "semstylegan train ..." [--machine "..."]
    python tools/make_pretrained.py RUN_DIR --command "..." --name tiny-toon-frozen --about "..."

The first form writes semstylegan/assets/tiny-synthetic.safetensors (g_ema, g, d and the model config) and the sample
grid; `--name` writes semstylegan/assets/NAME.safetensors with g_ema only (a fine-tune for the chapters). Each run's
facts (command, steps, images, wall time, losses) are kept in semstylegan/assets/models.json, from which
semstylegan/assets/MODEL_CARD.md is written, with the shipped attribute classifier's held-out report."""
import argparse, json, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from semstylegan.checkpoint import load_checkpoint, save_checkpoint
from semstylegan.run import read_metrics

ASSETS = ROOT / 'semstylegan' / 'assets'
MAIN = 'tiny-synthetic'
LOSSES = ('d_loss', 'g_loss', 'mask_loss', 'real_score', 'fake_score')
RECIPE = ('lr', 'r1_img', 'r1_seg', 'lambda_mask', 'mixing', 'path_regularize', 'ema_rampup', 'seed', 'data',
          'image_only', 'freeze_local')

def run_facts(run, command, machine, about):
    recs = read_metrics(run / 'metrics.jsonl')
    last = recs[-1]
    tc = json.loads((run / 'train_config.json').read_text())
    early = [r for r in recs if r['step'] <= max(100, last['step'] // 20)][0]
    return dict(command=command, machine=machine, about=about, steps=last['step'], batch=tc['batch'],
                images=last['step'] * tc['batch'], minutes=round(last['time'] / 60, 1), log_every=tc['log_every'],
                recipe={k: tc[k] for k in RECIPE if k in tc}, final={k: last[k] for k in LOSSES if k in last},
                early={k: early[k] for k in LOSSES[:3] if k in early})

def model_section(name, f):
    rows = [f"### `{name}`", '', f['about'], '', f"- **Command:** `{f['command']}`",
            f"- **Steps:** {f['steps']:,} at batch {f['batch']} ({f['images']:,} images), **wall time** {f['minutes']} min"
            + (f" on {f['machine']}" if f['machine'] else ''),
            '- **Recipe:** ' + ', '.join(f'{k}={v}' for k, v in f['recipe'].items()),
            f"- **Final losses** (mean of the last {f['log_every']} steps): " + ', '.join(f'{k} {v:.4g}' for k, v in f['final'].items()),
            '- **Early losses** (first logs): ' + ', '.join(f'{k} {v:.4g}' for k, v in f['early'].items())]
    return '\n'.join(rows)

def classifier_section():
    from semstylegan.attributes import load_attribute_classifier, attribute_classifier_path
    if not attribute_classifier_path().is_file(): return ''
    info = load_attribute_classifier().info
    rows = ['### `tiny-synthetic-attributes`', '', 'The attribute classifier of the editing chapter and `semstylegan edit`: '
            f"a small CNN at {info['size']} px, trained by `{info['command']}` ({info['steps']:,} steps, {info['minutes']} min). "
            'Held-out accuracy on 1,024 faces of another seed, beside the majority rate (always answering the more common label):',
            '', '| attribute | accuracy | majority rate |', '|---|---|---|']
    rows += [f"| {a} | {r['accuracy']:.3f} | {r['majority']:.3f} |" for a, r in info['report'].items()]
    return '\n'.join(rows)

def encoder_section():
    from semstylegan.encoder import load_encoder
    path = ASSETS / f'{MAIN}-encoder.safetensors'
    if not path.is_file(): return ''
    info = load_encoder(path).info
    rows = [f'### `{MAIN}-encoder`', '', 'The encoder into W+ of chapter 14 and `semstylegan invert --encoder` '
            f"(ReStyle-style, {info['iterations']} iterations), trained for the model above by `{info['command']}` "
            f"({info['steps']:,} steps at batch {info['batch']}, {info['minutes']} min on {info['machine']}).",
            '', 'On 32 held-out synthetic faces (indices from 20,000, never seen in training); speed is measured '
            'side by side in chapter 14, not here (this machine was shared while the table was made):', '',
            '| method | MSE | pyramid L1 | mask agreement |', '|---|---|---|---|']
    rows += [f"| {k} | {r['mse']:.4f} | {r['perceptual']:.4f} | {r['mask_agreement']:.3f} |"
             for k, r in info['table'].items()]
    return '\n'.join(rows)

def clip_section():
    from semstylegan.text import load_clip, clip_path
    if not clip_path().is_file(): return ''
    info = load_clip('tiny').info
    auc = ', '.join(f'{a} {v:.2f}' for a, v in info['auc'].items())
    return '\n'.join([f'### `{MAIN}-clip`', '',
                      'The tiny CLIP of chapter 16 and `semstylegan edit --text ... --clip tiny`: an open_clip CLIP '
                      '(a small ResNet image tower at 64 px, a 2-layer text tower over the '
                      f"{len(info['token_ids'])} word pieces of the captions) trained contrastively on synthetic faces "
                      f"and captions written from their attributes, by `{info['command']}` ({info['steps']:,} steps, "
                      f"{info['minutes']} min). Held-out AUC of each attribute's prompt: {auc}."])

def flow_section():
    from semstylegan.flow import load_flow, flow_path
    if not flow_path().is_file(): return ''
    flow = load_flow()
    info, hp = flow.info, flow.hyper
    return '\n'.join([f'### `{MAIN}-flow`', '', 'The conditional flow of chapter 15 and `semstylegan edit --method '
                      f"styleflow` (zuko, {hp['transforms']} autoregressive transforms over w given the 8 attributes), "
                      f"fitted to {info['samples']:,} codes of the model labelled by the attribute classifier, by "
                      f"`{info['command']}` ({info['steps']:,} steps, {info['minutes']} min; labelling "
                      f"{info['label_minutes']} min). Held-out negative log-likelihood per code: "
                      f"{info['heldout_nll']}."])

def ship_encoder(run, command, minutes, machine):
    "Copy a train-encoder run's encoder into the package with its command, wall time and a held-out table."
    import torch
    from semstylegan.checkpoint import load_generator
    from semstylegan.encoder import load_encoder, save_encoder, compare_inversions
    from semstylegan.synthetic import synthetic_faces
    from semstylegan.viz import from_uint8
    G = load_generator(ASSETS / f'{MAIN}.safetensors')
    E = load_encoder(run, G)
    img, lab, _ = synthetic_faces(32, G.cfg.size, seed=0, start=20_000)
    torch.manual_seed(0)
    table, _ = compare_inversions(G, E, from_uint8(img), lab.long(), steps=300, hybrid_steps=100)
    info = dict(E.info, command=command, minutes=minutes, machine=machine, table=table)
    return save_encoder(E, ASSETS / f'{MAIN}-encoder.safetensors', **info)

def mask_encoder_section():
    from semstylegan.paint import load_mask_encoder
    path = ASSETS / f'{MAIN}-mask-encoder.safetensors'
    if not path.is_file(): return ''
    info = load_mask_encoder(path).info
    if 'table' not in info: return ''
    rows = [f'### `{MAIN}-mask-encoder`', '', 'The mask encoder of chapter 21 and `semstylegan paint --encoder tiny` '
            '(a label map to the base and shape codes, the instant start that fitting refines), trained for the model '
            f"above on its own samples and the synthetic label maps by `{info['command']}` ({info['steps']:,} steps at "
            f"batch {info['batch']}, {info['minutes']} min on {info['machine']}).", '',
            f"On {info['held_out']} held-out synthetic label maps (indices from 20,000, never seen in training), "
            f"mIoU of the final mask against the target; fitting is {info['fit_steps']} coarse + "
            f"{info['final_steps']} final steps (this machine may have been shared while the table was made):", '',
            '| method | mIoU | pixel accuracy | ms per mask |', '|---|---|---|---|']
    rows += [f"| {k} | {r['miou']:.3f} | {r['pixel_acc']:.3f} | {r['ms_per_mask']:.0f} |"
             for k, r in info['table'].items()]
    return '\n'.join(rows)

def ship_mask_encoder(run, command, minutes, machine, n=64, steps=300, final_steps=100):
    """Copy a train-mask-encoder run's encoder into the package with its command, wall time and a held-out table
    (the shipped encoder itself: the table re-measured, the facts it has kept unless given)."""
    import torch
    from semstylegan.checkpoint import load_generator
    from semstylegan.paint import load_mask_encoder, save_mask_encoder, compare_mask_methods
    from semstylegan.synthetic import synthetic_faces
    G = load_generator(ASSETS / f'{MAIN}.safetensors').eval()
    E = load_mask_encoder(run, G).eval()
    _, labels, _ = synthetic_faces(n, G.cfg.size, seed=0, start=20_000)
    torch.manual_seed(0)
    table, _ = compare_mask_methods(G, E, labels.long(), steps, final_steps)
    given = {k: v for k, v in dict(command=command, minutes=minutes, machine=machine).items() if v}
    info = dict(E.info, **given, table=table, held_out=n, fit_steps=steps, final_steps=final_steps)
    info.pop('generator', None)
    return save_mask_encoder(E, ASSETS / f'{MAIN}-mask-encoder.safetensors', **info)

def write_card(models):
    from semstylegan.checkpoint import load_generator
    G = load_generator(ASSETS / f'{MAIN}.safetensors')
    n = sum(v.numel() for v in G.parameters())
    head = f"""# The checkpoints shipped in the package

`tiny-synthetic` is a `tiny` SemanticStyleGAN (64 px, 13 classes, {n:,} generator parameters) trained on the built-in
synthetic faces by the project's own training command, so that notebooks, the demo and the explorers show a trained
model on a fresh machine. It is a toy: cartoon faces at 64 px, for trying the tools, not for research results. Load it
with `semstylegan.checkpoint.load_generator(semstylegan.checkpoint.pretrained_path())`; `semstylegan demo --pretrained`
continues training it. The other files are made from it or for it, each by the command given.

![samples](tiny-synthetic-samples.png)
"""
    extras = [classifier_section(), encoder_section(), mask_encoder_section(), flow_section(), clip_section()]
    parts = [head] + [model_section(k, v) for k, v in models.items()] + extras
    (ASSETS / 'MODEL_CARD.md').write_text('\n\n'.join(p for p in parts if p) + '\n')

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('run', type=Path, nargs='?', help='a finished run folder (none: only rewrite the card)')
    p.add_argument('--command', default='')
    p.add_argument('--machine', default='')
    p.add_argument('--name', default=MAIN)
    p.add_argument('--about', default='The model itself: g_ema, g and d, so that training can continue.')
    p.add_argument('--encoder', type=Path, help='a finished train-encoder run: ship its encoder (with --command)')
    p.add_argument('--mask-encoder', type=Path, help='a finished train-mask-encoder run: ship it (with --command); '
                   'the shipped encoder: re-measure its table, keeping its command')
    p.add_argument('--minutes', type=float, help='--encoder, --mask-encoder: the wall time of its training')
    a = p.parse_args(argv)
    if a.encoder:
        print(f'wrote {ship_encoder(a.encoder, a.command, a.minutes, a.machine)}')
    if a.mask_encoder:
        print(f'wrote {ship_mask_encoder(a.mask_encoder, a.command, a.minutes, a.machine)}')
    db = ASSETS / 'models.json'
    models = json.loads(db.read_text()) if db.exists() else {}
    if a.run and not (a.encoder or a.mask_encoder):
        m = load_checkpoint(a.run / 'final.safetensors')
        parts = dict(g_ema=m['g_ema'], g=m['g'], d=m['d']) if a.name == MAIN else dict(g_ema=m['g_ema'])
        out = save_checkpoint(ASSETS / f'{a.name}.safetensors', m['config'], **parts)
        samples = sorted((a.run / 'samples').glob('*.png'))
        if a.name == MAIN and samples: (ASSETS / 'tiny-synthetic-samples.png').write_bytes(samples[-1].read_bytes())
        models[a.name] = run_facts(a.run, a.command, a.machine, a.about)
        db.write_text(json.dumps(models, indent=1) + '\n')
        print(f'wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)')
    write_card(models)
    print(f'wrote {ASSETS / "MODEL_CARD.md"}')

if __name__ == '__main__':
    main()
