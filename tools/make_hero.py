"""Draw the README's hero image: region edits with the tiny generator shipped in the package.

    python tools/make_hero.py [--out semstylegan/assets/tiny-region-edit.png] [--seed 3] [--donors 11 12 13 14 15]

Two blocks, each an image row above its mask row. The first column is the original sample (seed `--seed`,
truncation 0.7); in every other column only one region's W+ codes (shape and texture) are replaced by those of a
donor seed: the hair in the first block, the background in the second. All other codes
stay the same. Deterministic: constant noise and seeded codes, on the CPU."""
import argparse, sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from semstylegan.checkpoint import load_generator, pretrained_path
from semstylegan.edit import codes_from_seeds, region_slots, render
from semstylegan.latent import WPlus
from semstylegan.viz import make_grid

EDITS = (('hair', 'hair'), ('background', 'background'))
SCALE, LABEL_HEIGHT = 2, 16


def edit_rows(G, seed, donors, region):
    "Images and masks (uint8, (1 + len(donors), 3, S, S)) of the original and its region swapped from each donor."
    original = codes_from_seeds(G, [seed])
    donor_codes = codes_from_seeds(G, donors)
    targets = WPlus(original.codes.expand(len(donors), -1, -1).clone(), G.layout)
    edited = targets.replace(region_slots(G.layout, region), donor_codes)
    both = WPlus(torch.cat([original.codes, edited.codes]), G.layout)
    return render(G, both)


def block(G, seed, donors, region, title):
    "One block as a PIL image: the title, the image row, the mask row."
    images, masks = edit_rows(G, seed, donors, region)
    grid = make_grid(torch.cat([images, masks]), len(donors) + 1)
    picture = Image.fromarray(grid.permute(1, 2, 0).numpy())
    picture = picture.resize((picture.width * SCALE, picture.height * SCALE), Image.NEAREST)
    out = Image.new('RGB', (picture.width, picture.height + LABEL_HEIGHT), 'white')
    out.paste(picture, (0, LABEL_HEIGHT))
    text = f'original, then its {title} codes from {len(donors)} other seeds'
    ImageDraw.Draw(out).text((6, 3), text, fill='black', font=ImageFont.load_default())
    return out


def hero(seed=3, donors=(11, 12, 13, 14, 15)):
    "The whole hero image (PIL)."
    torch.manual_seed(0)
    G = load_generator(pretrained_path()).eval()
    blocks = [block(G, seed, list(donors), region, title) for region, title in EDITS]
    out = Image.new('RGB', (blocks[0].width, sum(b.height for b in blocks)), 'white')
    top = 0
    for b in blocks:
        out.paste(b, (0, top))
        top += b.height
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--out', default=str(ROOT / 'semstylegan' / 'assets' / 'tiny-region-edit.png'))
    parser.add_argument('--seed', type=int, default=3)
    parser.add_argument('--donors', type=int, nargs='+', default=[11, 12, 13, 14, 15])
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    hero(args.seed, args.donors).save(args.out, optimize=True)
    print(args.out)


if __name__ == '__main__':
    main()
