"""Train the attribute classifier shipped beside the tiny model and print its held-out report.

    python tools/make_classifier.py [--steps 3000]

Writes semstylegan/assets/tiny-synthetic-attributes.safetensors: every attribute of `semstylegan.edit.EDIT_ATTRIBUTES`
at 64 px, trained on the built-in synthetic faces. Refuses to write a classifier that does not beat the majority
rate of every attribute (`check_classifier`)."""
import argparse, json, sys, time
from pathlib import Path
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from semstylegan.attributes import EDIT_ATTRIBUTES, train_attribute_classifier, check_classifier, save_attribute_classifier, attribute_classifier_path

def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--steps', type=int, default=3000)
    p.add_argument('--size', type=int, default=64)
    a = p.parse_args(argv)
    t = time.time()
    clf, report = train_attribute_classifier(EDIT_ATTRIBUTES, a.size, a.steps, progress=True)
    check_classifier(report, EDIT_ATTRIBUTES)
    minutes = (time.time() - t) / 60
    save_attribute_classifier(clf, attribute_classifier_path(), steps=a.steps, minutes=round(minutes, 1), report=report,
                              command=f'python tools/make_classifier.py --steps {a.steps}')
    print(json.dumps(report, indent=1))
    print(f'wrote {attribute_classifier_path()} in {minutes:.1f} min')

if __name__ == '__main__':
    main()
