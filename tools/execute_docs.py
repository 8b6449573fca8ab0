"""Execute documentation notebooks in place with their outputs and widget state (so readers see the explorers).

    .venv/bin/python tools/execute_docs.py nbs/17_explore.ipynb

nbclient stores the state of every widget model in the notebook's metadata (`store_widget_state`); `nbdev_clean`
keeps it. Run `nbdev_clean` afterwards, as before any commit."""
import argparse, sys, time
from pathlib import Path
import nbformat
from nbclient import NotebookClient

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('notebooks', nargs='+', type=Path)
    ap.add_argument('--timeout', type=int, default=1800, help='seconds per cell')
    args = ap.parse_args(argv)
    for p in args.notebooks:
        nb = nbformat.read(p, as_version=4)
        t = time.time()
        NotebookClient(nb, timeout=args.timeout, kernel_name='python3', store_widget_state=True,
                       resources={'metadata': {'path': str(p.parent)}}).execute()
        n = len(nb.metadata.get('widgets', {}).get('application/vnd.jupyter.widget-state+json', {}).get('state', {}))
        nbformat.write(nb, p)
        print(f'{p}: executed in {time.time() - t:.0f} s, {n} widget models saved')

if __name__ == '__main__':
    sys.exit(main())
