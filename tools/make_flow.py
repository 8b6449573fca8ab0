"""Train the StyleFlow flow shipped beside the tiny model and its attribute classifier.

    OMP_NUM_THREADS=1 python tools/make_flow.py [--samples 10000] [--steps 3000]

Draws `--samples` codes w of the shipped tiny model, labels their images with the shipped attribute classifier (all of
`semstylegan.edit.EDIT_ATTRIBUTES`), fits a conditional flow by maximum likelihood (`semstylegan.flow.train_flow`) and
writes semstylegan/assets/tiny-synthetic-flow.safetensors with its record (samples, steps, held-out NLL, minutes, the
fingerprints of the generator and classifier it fits). A few minutes on one or two CPU cores."""
import argparse, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from semstylegan.checkpoint import load_generator, pretrained_path
from semstylegan.attributes import load_attribute_classifier, label_samples
from semstylegan.flow import train_flow, save_flow, flow_path, fingerprint

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--samples', type=int, default=10_000)
    p.add_argument('--steps', type=int, default=3000)
    p.add_argument('--seed', type=int, default=1)
    p.add_argument('--out', type=Path, default=flow_path())
    a = p.parse_args(argv)
    t = time.time()
    G = load_generator(pretrained_path()).eval()
    clf = load_attribute_classifier()
    w, probs = label_samples(G, clf, a.samples, batch=200, seed=a.seed)
    labelled = time.time() - t
    print(f'labelled {a.samples} samples in {labelled / 60:.1f} min; positive rates',
          {k: round(float(v), 3) for k, v in zip(clf.attrs, (probs > 0.5).float().mean(0))})
    flow, nll = train_flow(w, probs, clf.attrs, a.steps, seed=a.seed, progress=True)
    minutes = (time.time() - t) / 60
    cmd = 'python tools/make_flow.py' + ''.join(f' --{k} {v}' for k, v in (('samples', a.samples), ('steps', a.steps),
                                                                           ('seed', a.seed)))
    save_flow(flow, a.out, generator=fingerprint(G.mapping), classifier=fingerprint(clf), minutes=round(minutes, 1),
              label_minutes=round(labelled / 60, 1), command=cmd, model='tiny-synthetic')
    print(f'held-out NLL {nll:.3f} nats/dim; wrote {a.out} ({a.out.stat().st_size / 1e6:.2f} MB) in {minutes:.1f} min')

if __name__ == '__main__':
    main()
