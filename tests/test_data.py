"""The data layer end to end: CelebAMask-HQ-shaped trees painted pixel for pixel, folders, bad input, interruption and
resume, loaders."""
import json, os, shutil, signal, struct, subprocess, sys, time, zlib
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image
from semstylegan import data as D, prepare as P, loaders as L
from semstylegan.data import CelebAMaskHQ, ImageFolder, Synthetic, ClassMap, DataError
from semstylegan.prepare import prepare, summary
from semstylegan.loaders import PreparedDataset, make_loader, to_model_inputs
from semstylegan.synthetic import synthetic_faces
from _helpers import popen_cli, run_cli

# The official painting order, written out here on purpose (not imported): later parts overwrite earlier ones.
OFFICIAL_ORDER = [('skin', 1), ('eye_g', 10), ('l_eye', 2), ('r_eye', 2), ('l_brow', 3), ('r_brow', 3), ('mouth', 4),
                  ('l_lip', 4), ('u_lip', 4), ('nose', 5), ('hair', 7), ('l_ear', 6), ('r_ear', 6), ('neck', 8),
                  ('neck_l', 8), ('cloth', 9), ('hat', 11), ('ear_r', 12)]
IDS = [0, 1, 2, 2001, 27999, 28000, 29999]          # four annotation subfolders, both sides of the 28,000 split
IMG, MASK = 64, 32


# ---------------------------------------------------------------- helpers

def _dilate(m, r=1):
    out = m.copy()
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            out |= np.roll(np.roll(m, dy, 0), dx, 1)
    return out

def part_masks(lab):
    """Overlapping CelebAMask-HQ-style part masks from a 13-class synthetic label, so that the painting order matters."""
    S = lab.shape[0]
    yy, xx = np.mgrid[:S, :S]
    left, top = xx < S // 2, yy < S // 2
    face = np.isin(lab, [1, 2, 3, 4, 5])
    eyes, brows, mouth = lab == 2, lab == 3, lab == 4
    mrow = np.median(yy[mouth]) if mouth.any() else S
    m = {}
    m['skin'] = face | ((lab == 7) & ~top)                       # skin goes on under the hair at the sides
    m['eye_g'] = _dilate(eyes, 2) | (lab == 10)                 # glasses frame around (and over) the eyes
    m['l_eye'], m['r_eye'] = eyes & left, eyes & ~left
    m['l_brow'], m['r_brow'] = brows & left, brows & ~left
    m['mouth'] = mouth
    m['u_lip'], m['l_lip'] = _dilate(mouth) & (yy < mrow), _dilate(mouth) & (yy >= mrow)
    m['nose'] = lab == 5
    m['hair'] = (lab == 7) | (_dilate(lab == 7, 2) & face & top)  # bangs over the forehead
    ears = _dilate(lab == 6)
    m['l_ear'], m['r_ear'] = ears & left, ears & ~left
    m['neck'] = (lab == 8) | (_dilate(lab == 8, 2) & (lab == 9))  # neck goes on under the cloth
    m['neck_l'] = (lab == 8) & (yy == (yy[lab == 8].max() if (lab == 8).any() else 0))  # a necklace on the neck
    m['cloth'] = lab == 9
    hair_top = yy[lab == 7].min() if (lab == 7).any() else 0
    m['hat'] = (lab == 11) | (_dilate(lab == 11, 2) & (lab == 7)) | ((lab == 7) & (yy <= hair_top + 1))  # a cap on the hair
    ear_row = int(np.median(yy[ears])) if ears.any() else S // 2
    m['ear_r'] = (lab == 12) | (ears & (yy == ear_row))                # earrings over the ears
    # an order strip in the top row: pixel k is covered by parts k and k+1 of the order only, which pins every adjacent
    # pair of the painting order (and puts every part in every face)
    for p in m: m[p][0, :len(OFFICIAL_ORDER) - 1] = False
    for k in range(len(OFFICIAL_ORDER) - 1):
        m[OFFICIAL_ORDER[k][0]][0, k] = m[OFFICIAL_ORDER[k + 1][0]][0, k] = True
    return m

def make_celebamask(root, ids=IDS, drop=()):
    """A CelebAMask-HQ-shaped tree: {i}.jpg (64 px) and one binary 0/255 PNG per part (32 px). `drop`: (id, part) pairs
    left out (a face without that part). Returns {id: {part: mask}} of what was written."""
    root = Path(root)
    (root / 'CelebA-HQ-img').mkdir(parents=True)
    imgs, _, _ = synthetic_faces(len(ids), IMG, seed=3, indices=ids)
    _, labs, _ = synthetic_faces(len(ids), MASK, seed=3, indices=ids)
    written = {}
    for i, img, lab in zip(ids, imgs.numpy(), labs.numpy()):
        Image.fromarray(img.transpose(1, 2, 0)).save(root / 'CelebA-HQ-img' / f'{i}.jpg', quality=90)
        sub = root / 'CelebAMask-HQ-mask-anno' / str(i // 2000); sub.mkdir(parents=True, exist_ok=True)
        written[i] = {}
        for part, mask in part_masks(lab).items():
            if (i, part) in drop or not mask.any(): continue
            Image.fromarray(mask.astype(np.uint8) * 255).save(sub / f'{i:05d}_{part}.png')
            written[i][part] = mask
    return written

def expected_label(root, i):
    "Paint the part PNGs on disk in the official order (independent of semstylegan.data)."
    out = np.zeros((MASK, MASK), np.uint8)
    for part, cls in OFFICIAL_ORDER:
        f = Path(root) / 'CelebAMask-HQ-mask-anno' / str(i // 2000) / f'{i:05d}_{part}.png'
        if f.exists(): out[np.asarray(Image.open(f)) == 255] = cls
    return out

def load_split(out, split):
    out = Path(out)
    keys = json.loads((out / f'{split}_keys.json').read_text())
    imgs = np.load(out / f'{split}_images.npy')
    labs = np.load(out / f'{split}_labels.npy') if (out / f'{split}_labels.npy').exists() else None
    return keys, imgs, labs

def png16(path, a):
    "Write a 16-bit grayscale (H,W) or RGB (H,W,3) PNG by hand (PIL cannot write 16-bit RGB)."
    h, w = a.shape[:2]
    raw = b''.join(b'\x00' + a[y].astype('>u2').tobytes() for y in range(h))
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    Path(path).write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, 2 if a.ndim == 3 else 0, 0, 0, 0))
                           + chunk(b'IDAT', zlib.compress(raw)) + chunk(b'IEND', b''))

def rgb(seed, h, w):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)

def remapped(raw): return np.select([raw == 255, raw == 40], [0, 2], raw.astype(np.int64))

LR_MAP = {'names': ['background', 'thing', 'other'], 'remap': {'255': 0, '40': 2}}

def make_folder(root, n=6, size=24, classes=True):
    "Paired folder: images/ (nested) and labels/ with raw values 0, 1, 40 and 255 (255 -> 0, 40 -> 2 by the class map)."
    root = Path(root)
    labels = {}
    for k in range(n):
        d = root / 'images' / ('a' if k % 2 else 'b'); d.mkdir(parents=True, exist_ok=True)
        (root / 'labels').mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb(k, size, size)).save(d / f'f{k}.png')
        raw = np.random.default_rng(100 + k).choice(np.array([0, 1, 40, 255], np.uint8), (size, size))
        Image.fromarray(raw).save(root / 'labels' / f'f{k}.png')
        labels[f'f{k}'] = raw
    if classes: (root / 'classes.json').write_text(json.dumps(LR_MAP))
    return labels


# ---------------------------------------------------------------- CelebAMask-HQ

@pytest.fixture(scope='module')
def celeba(tmp_path_factory):
    root = tmp_path_factory.mktemp('celeba')
    written = make_celebamask(root, drop={(1, 'eye_g'), (2001, 'hat')})
    return root, written

def test_celebamask_tree_has_overlaps(celeba):
    "The fixture really exercises the order: parts overlap, and the overlaps resolve as the official order says."
    root, written = celeba
    names = {p for w in written.values() for p in w}
    assert names == {p for p, _ in OFFICIAL_ORDER}                     # all 18 part names occur
    assert len({i // 2000 for i in IDS}) == 4
    # for each pair (earlier part, later part): some pixel lies in both and ends up in the later part's class
    for a, b, cls in [('eye_g', 'l_eye', 2), ('eye_g', 'r_eye', 2), ('skin', 'hair', 7), ('skin', 'nose', 5),
                      ('neck', 'cloth', 9), ('hair', 'hat', 11), ('hair', 'l_ear', 6), ('l_ear', 'ear_r', 12),
                      ('mouth', 'u_lip', 4), ('neck', 'neck_l', 8)]:
        won = [(expected_label(root, i)[w[a] & w[b]] == cls).sum() for i, w in written.items() if a in w and b in w]
        assert sum(won) > 0, f'{a} and {b} never overlap'
    # the order strip: pixel k ends up in the class of part k+1 (where both parts of that face were written)
    for i, w in written.items():
        e = expected_label(root, i)
        for k in range(len(OFFICIAL_ORDER) - 1):
            (a, _), (b, cls) = OFFICIAL_ORDER[k], OFFICIAL_ORDER[k + 1]
            if a in w and b in w: assert e[0, k] == cls
    # glasses are painted before the eyes, so glasses remain only around the eyes
    e = expected_label(root, 0)
    assert (e == 10).any() and not (e[written[0]['l_eye']] == 10).any()

@pytest.mark.parametrize('workers', [0, 2])
def test_celebamask_prepare_pixel_for_pixel(celeba, tmp_path, workers):
    root, _ = celeba
    man = prepare(CelebAMaskHQ(root, size=MASK), tmp_path / 'out', workers=workers, chunk=2)
    assert man['splits']['train']['count'] == 5 and man['splits']['test']['count'] == 2 and man['skipped'] == []
    for split, ids in [('train', [0, 1, 2, 2001, 27999]), ('test', [28000, 29999])]:
        keys, imgs, labs = load_split(tmp_path / 'out', split)
        assert keys == ids
        for k, i in enumerate(ids):
            np.testing.assert_array_equal(labs[k], expected_label(root, i), err_msg=f'label of id {i}')
            jpg = Image.open(root / 'CelebA-HQ-img' / f'{i}.jpg').convert('RGB')
            np.testing.assert_array_equal(imgs[k], np.asarray(jpg.resize((MASK, MASK), Image.LANCZOS)).transpose(2, 0, 1))
    assert man['classes']['names'][10] == 'eyeglasses' and man['classes']['transparent'] == [10, 12]
    freq = man['splits']['train']['class_pixel_fraction']
    assert abs(sum(freq) - 1) < 1e-4 and all(f > 0 for f in freq)
    assert 'train 5, test 2, skipped 0' in summary(man)

def test_celebamask_prepare_resized(celeba, tmp_path):
    root, _ = celeba
    prepare(CelebAMaskHQ(root, size=16), tmp_path / 'out16', workers=0)
    keys, imgs, labs = load_split(tmp_path / 'out16', 'train')
    for k, i in enumerate(keys):
        want = np.asarray(Image.fromarray(expected_label(root, i)).resize((16, 16), Image.NEAREST))
        np.testing.assert_array_equal(labs[k], want)
        jpg = Image.open(root / 'CelebA-HQ-img' / f'{i}.jpg').convert('RGB')
        np.testing.assert_array_equal(imgs[k], np.asarray(jpg.resize((16, 16), Image.LANCZOS)).transpose(2, 0, 1))

def test_celebamask_bad_input(tmp_path):
    root = tmp_path / 'c'
    make_celebamask(root, ids=[0, 1, 2, 3, 28000])
    anno = root / 'CelebAMask-HQ-mask-anno' / '0'
    (root / 'CelebA-HQ-img' / '1.jpg').write_bytes((root / 'CelebA-HQ-img' / '1.jpg').read_bytes()[:300])  # truncated
    for f in anno.glob('00002_*.png'): f.unlink()                                                         # no label
    for f in anno.glob('00003_*.png'): Image.fromarray(np.zeros((MASK, MASK), np.uint8)).save(f)           # all empty
    with pytest.raises(DataError, match=r'1\.jpg: cannot decode image'):
        prepare(CelebAMaskHQ(root, MASK), tmp_path / 'o1', workers=0)
    src = CelebAMaskHQ(root, MASK)
    assert 'missing label' in str(D._try(lambda: src.label(2)))
    assert 'empty label' in str(D._try(lambda: src.label(3)))          # never a silent all-background mask
    man = prepare(src, tmp_path / 'o2', workers=0, skip_bad=True)
    assert sorted((b['key'], Path(b['file']).name) for b in man['skipped']) == [(1, '1.jpg'), (2, '00002_*.png'), (3, '00003_*.png')]
    keys, imgs, labs = load_split(tmp_path / 'o2', 'train')
    assert keys == [0] and (labs[0] == expected_label(root, 0)).all()
    assert load_split(tmp_path / 'o2', 'test')[0] == [28000]
    assert 'skipped 3' in summary(man)
    # part masks of one id with different sizes
    Image.fromarray(np.zeros((MASK + 2, MASK), np.uint8)).save(anno / '00000_hat.png')
    with pytest.raises(DataError, match=r'00000_hat\.png: part mask is 32x34'):
        CelebAMaskHQ(root, MASK).label(0)

def test_celebamask_not_a_tree(tmp_path):
    with pytest.raises(DataError, match='not a CelebAMask-HQ folder: CelebA-HQ-img/ is missing'):
        CelebAMaskHQ(tmp_path)


# ---------------------------------------------------------------- folders

def test_folder_with_class_map(tmp_path):
    raw = make_folder(tmp_path)
    src = ImageFolder(tmp_path / 'images', tmp_path / 'labels', tmp_path / 'classes.json', size=24)
    man = prepare(src, tmp_path / 'out', workers=0)
    assert man['classes']['names'] == LR_MAP['names'] and man['source']['kind'] == 'folder'
    keys, imgs, labs = load_split(tmp_path / 'out', 'train')
    assert keys == sorted(raw)
    for k, s in enumerate(keys):
        np.testing.assert_array_equal(labs[k], remapped(raw[s]))
        np.testing.assert_array_equal(imgs[k], rgb(int(s[1:]), 24, 24).transpose(2, 0, 1))
    # without the class map, 40 and 255 are not classes: an error naming the file and the values
    with pytest.raises(DataError, match=r'f\d\.png: label values \[40, 255\] are not classes'):
        prepare(ImageFolder(tmp_path / 'images', tmp_path / 'labels', size=24), tmp_path / 'out2', workers=0)

def test_folder_resize_non_square(tmp_path):
    (tmp_path / 'i').mkdir(); (tmp_path / 'l').mkdir()
    img = rgb(0, 32, 48); lab = (np.arange(48)[None, :].repeat(32, 0) // 6).astype(np.uint8)  # ids 0..7, by column
    Image.fromarray(img).save(tmp_path / 'i' / 'x.png'); Image.fromarray(lab).save(tmp_path / 'l' / 'x.png')
    prepare(ImageFolder(tmp_path / 'i', tmp_path / 'l', size=16), tmp_path / 'out', workers=0)
    _, imgs, labs = load_split(tmp_path / 'out', 'train')
    # shorter side to 16 (48x32 -> 24x16), then the centre 16 columns (4..19)
    want = np.asarray(Image.fromarray(img).resize((24, 16), Image.LANCZOS))[:, 4:20]
    np.testing.assert_array_equal(imgs[0], want.transpose(2, 0, 1))
    np.testing.assert_array_equal(labs[0], np.asarray(Image.fromarray(lab).resize((24, 16), Image.NEAREST))[:, 4:20])

def test_image_only_folder(tmp_path):
    make_folder(tmp_path, n=4, classes=False)
    man = prepare(ImageFolder(tmp_path / 'images', size=12), tmp_path / 'out', workers=0)
    assert man['has_labels'] is False and not (tmp_path / 'out' / 'train_labels.npy').exists()
    ds = PreparedDataset(tmp_path / 'out', flip=True)
    b = ds[[0, 4]]
    assert set(b) == {'image'} and b['image'].shape == (2, 3, 12, 12) and torch.equal(b['image'][1], b['image'][0].flip(-1))
    img, mask = to_model_inputs(b, 13)
    assert mask is None and img.shape == (2, 3, 12, 12)
    assert 'class' not in summary(man)

def test_folder_test_frac(tmp_path):
    for k in range(60): Image.fromarray(rgb(k, 4, 4)).save((tmp_path / f's{k:02d}.png'))
    a = ImageFolder(tmp_path, size=4, test_frac=0.25).splits()
    b = ImageFolder(tmp_path, size=4, test_frac=0.25).splits()
    assert a == b and 5 < len(a['test']) < 25 and sorted(a['train'] + a['test']) == [f's{k:02d}' for k in range(60)]
    for k in range(60, 80): Image.fromarray(rgb(k, 4, 4)).save((tmp_path / f's{k:02d}.png'))
    c = ImageFolder(tmp_path, size=4, test_frac=0.25).splits()
    assert set(a['test']) == set(c['test']) & set(a['test'] + a['train'])   # new files do not move the old ones
    assert ImageFolder(tmp_path, size=4).splits()['test'] == []


# ---------------------------------------------------------------- bad input

def test_bad_folder_items_error_or_skip(tmp_path):
    raw = make_folder(tmp_path, n=8)
    I, L = tmp_path / 'images', tmp_path / 'labels'
    p = {s: next(I.rglob(f'{s}.png')) for s in raw}
    p['f0'].write_bytes(p['f0'].read_bytes()[:100])                                   # truncated image
    (L / 'f1.png').unlink()                                                           # missing label
    bad = raw['f2'].copy(); bad[3, 3] = 7; Image.fromarray(bad).save(L / 'f2.png')    # 7: not a class
    Image.fromarray(raw['f3'][:20]).save(L / 'f3.png')                                # label 24x20, image 24x24
    Image.fromarray(rgb(9, 24, 24)).save(I / 'f4.jpg')                                # duplicate stem f4
    cm = tmp_path / 'classes.json'
    errors = {'f0': r'f0\.png: cannot decode image', 'f1': r'f1\.png: missing label: no f1\.\* in',
              'f2': r'f2\.png: label values \[7\] are not classes of the class map',
              'f3': r'f3\.png: label is 24x20 but its image \S*/f3\.png is 24x24', 'f4': r'f4\.(png|jpg): duplicate file stem'}
    src = ImageFolder(I, L, cm, size=24)
    for s, msg in errors.items():
        with pytest.raises(DataError, match=msg): src.load(s)
    with pytest.raises(DataError, match='|'.join(errors.values())):
        prepare(src, tmp_path / 'out', workers=0)
    assert not (tmp_path / 'out').exists()
    man = prepare(ImageFolder(I, L, cm, size=24), tmp_path / 'out', workers=0, skip_bad=True, chunk=3)
    assert sorted(b['key'] for b in man['skipped']) == ['f0', 'f1', 'f2', 'f3', 'f4']
    assert all(b['problem'] and b['file'] for b in man['skipped'])
    keys, imgs, labs = load_split(tmp_path / 'out', 'train')                          # compacted, and still right
    assert keys == ['f5', 'f6', 'f7'] and man['splits']['train']['count'] == 3 and len(imgs) == len(labs) == 3
    for k, s in enumerate(keys):
        np.testing.assert_array_equal(labs[k], remapped(raw[s]))
        np.testing.assert_array_equal(imgs[k], rgb(int(s[1:]), 24, 24).transpose(2, 0, 1))
    assert 'skipped 5' in summary(man) and 'f2.png: label values [7]' in summary(man)

def test_odd_image_modes_are_converted(tmp_path):
    (tmp_path / 'i').mkdir()
    g = rgb(1, 8, 8)[..., 0]
    Image.fromarray(g).save(tmp_path / 'i' / 'gray.png')
    rgba = np.dstack([rgb(2, 8, 8), np.where(np.arange(8)[:, None] < 4, 255, 0).repeat(8, 1).astype(np.uint8)])
    Image.fromarray(rgba, 'RGBA').save(tmp_path / 'i' / 'rgba.png')
    g16 = np.random.default_rng(3).integers(0, 65536, (8, 8)).astype(np.uint16); png16(tmp_path / 'i' / 'g16.png', g16)
    dark16 = np.full((8, 8), 200, np.uint16); png16(tmp_path / 'i' / 'dark16.png', dark16)
    c16 = np.random.default_rng(4).integers(0, 65536, (8, 8, 3)).astype(np.uint16); png16(tmp_path / 'i' / 'c16.png', c16)
    Image.fromarray(g, 'L').convert('1').save(tmp_path / 'i' / 'bw.png')
    man = prepare(ImageFolder(tmp_path / 'i', size=8), tmp_path / 'out', workers=0)
    assert man['skipped'] == []
    keys, imgs, _ = load_split(tmp_path / 'out', 'train')
    got = {k: imgs[j].transpose(1, 2, 0) for j, k in enumerate(keys)}
    assert (got['gray'] == g[..., None]).all()
    want = rgba[..., :3].copy(); want[4:] = 255                                        # transparent rows over white
    assert (got['rgba'] == want).all()
    assert (got['g16'] == (g16 >> 8)[..., None]).all()
    assert (got['dark16'] == 0).all()                                                  # 200/65535 is black, not 200/255
    assert (got['c16'] == c16 >> 8).all()
    assert set(np.unique(got['bw'])) <= {0, 255} and (got['bw'][..., 0] == got['bw'][..., 2]).all()

def test_empty_and_missing_folders(tmp_path):
    (tmp_path / 'empty').mkdir(); (tmp_path / 'empty' / 'notes.txt').write_text('x')
    with pytest.raises(DataError, match='empty: no image files'): ImageFolder(tmp_path / 'empty')
    with pytest.raises(DataError, match='nope: no such folder'): ImageFolder(tmp_path / 'nope')
    (tmp_path / 'i').mkdir(); Image.fromarray(rgb(0, 4, 4)).save(tmp_path / 'i' / 'a.png')
    with pytest.raises(DataError, match='empty: no image files'): ImageFolder(tmp_path / 'i', tmp_path / 'empty')
    with pytest.raises(DataError, match=r'c\.json: no such class map'): ImageFolder(tmp_path / 'i', tmp_path / 'i', tmp_path / 'c.json')

def test_output_checks(tmp_path):
    src = Synthetic(n=4, size=16, n_test=0)
    (tmp_path / 'full').mkdir(); (tmp_path / 'full' / 'x').write_text('x')
    with pytest.raises(DataError, match='full: exists and is not a prepared dataset'): prepare(src, tmp_path / 'full', workers=0)
    (tmp_path / 'afile').write_text('x')
    with pytest.raises(DataError, match='afile: exists and is not a prepared dataset'): prepare(src, tmp_path / 'afile', workers=0)
    prepare(src, tmp_path / 'ok', workers=0)
    with pytest.raises(DataError, match='ok: already a prepared dataset'): prepare(src, tmp_path / 'ok', workers=0)
    man = prepare(Synthetic(n=6, size=16, n_test=0), tmp_path / 'ok', workers=0, overwrite=True)
    assert man['splits']['train']['count'] == 6 and len(np.load(tmp_path / 'ok' / 'train_images.npy')) == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ['afile', 'full', 'ok']     # no leftovers

def test_output_under_a_file(tmp_path):
    "Unwritable even for root: the output would be inside a regular file."
    (tmp_path / 'f').write_text('x')
    with pytest.raises(DataError, match='f/data: cannot create the output'):
        prepare(Synthetic(n=4, size=16, n_test=0), tmp_path / 'f' / 'data', workers=0)

@pytest.mark.skipif(os.geteuid() == 0, reason='root ignores file permissions')
def test_unwritable_output(tmp_path):
    ro = tmp_path / 'ro'; ro.mkdir(); ro.chmod(0o555)
    try:
        with pytest.raises(DataError, match='ro/data: cannot create the output'):
            prepare(Synthetic(n=4, size=16, n_test=0), ro / 'data', workers=0)
    finally: ro.chmod(0o755)


# ---------------------------------------------------------------- interruption and resume

class Counting(Synthetic):
    "Synthetic faces that count the keys they load and can be made to fail (Ctrl-C) after `fail_after` chunks."
    def __init__(self, *a, fail_after=None, **k):
        super().__init__(*a, **k); self.loaded, self.fail_after, self.calls = [], fail_after, 0
    def load_chunk(self, keys):
        if self.fail_after is not None and self.calls >= self.fail_after: raise KeyboardInterrupt
        self.calls += 1; self.loaded += list(keys)
        return super().load_chunk(keys)

def test_interrupted_then_resumed(tmp_path):
    out = tmp_path / 'data'
    src = Counting(n=20, size=16, n_test=6, fail_after=3)
    with pytest.raises(KeyboardInterrupt): prepare(src, out, workers=0, chunk=4)
    assert not (out / 'manifest.json').exists() and not out.exists()
    assert src.loaded == list(range(12))
    with pytest.raises(DataError, match='interrupted preparation'): PreparedDataset(out)
    with pytest.raises(DataError, match='unfinished preparation with other settings'):
        prepare(Synthetic(n=20, size=24, n_test=6), out, workers=0)
    with pytest.raises(DataError, match='unfinished preparation with other settings'):
        prepare(Synthetic(n=21, size=16, n_test=6), out, workers=0)
    again = Counting(n=20, size=16, n_test=6)
    man = prepare(again, out, workers=0, chunk=4)
    assert sorted(again.loaded) == list(range(12, 26))                                # rows done before are not redone
    ref = prepare(Synthetic(n=20, size=16, n_test=6), tmp_path / 'ref', workers=0)
    for f in ['train_images.npy', 'train_labels.npy', 'train_attrs.npy', 'test_images.npy', 'test_labels.npy', 'train_keys.json']:
        assert (out / f).read_bytes() == (tmp_path / 'ref' / f).read_bytes(), f
    assert {k: v for k, v in man.items() if k != 'created'} == {k: v for k, v in ref.items() if k != 'created'}
    assert sorted(p.name for p in tmp_path.iterdir()) == ['data', 'ref']              # the hidden partial folder is gone

def test_interrupted_with_workers(tmp_path):
    out = tmp_path / 'data'
    with pytest.raises(KeyboardInterrupt): prepare(Counting(n=24, size=16, n_test=0, fail_after=0), out, workers=2, chunk=4)
    assert not out.exists()
    man = prepare(Synthetic(n=24, size=16, n_test=0), out, workers=2, chunk=4)
    img, lab, _ = synthetic_faces(24, 16, 0)
    assert (np.load(out / 'train_images.npy') == img.numpy()).all() and (np.load(out / 'train_labels.npy') == lab.numpy()).all()

def test_bad_item_stops_and_resumes(tmp_path):
    "Without --skip-bad, a bad file stops the run; after fixing it, the same command goes on from there."
    raw = make_folder(tmp_path, n=6)
    lab = tmp_path / 'labels' / 'f4.png'; good = lab.read_bytes(); lab.write_bytes(b'garbage')
    with pytest.raises(DataError, match=r'f4\.png: cannot decode label'):
        prepare(ImageFolder(tmp_path / 'images', tmp_path / 'labels', tmp_path / 'classes.json', 24), tmp_path / 'out', workers=0, chunk=2)
    lab.write_bytes(good)
    prepare(ImageFolder(tmp_path / 'images', tmp_path / 'labels', tmp_path / 'classes.json', 24), tmp_path / 'out', workers=0, chunk=2)
    keys, imgs, labs = load_split(tmp_path / 'out', 'train')
    assert keys == sorted(raw) and all((labs[k] == remapped(raw[s])).all() for k, s in enumerate(keys))


# ---------------------------------------------------------------- datasets and loaders

@pytest.fixture(scope='module')
def prepared(tmp_path_factory):
    out = tmp_path_factory.mktemp('syn') / 'data'
    prepare(Synthetic(n=40, size=16, n_test=0), out, workers=0)
    return out

def test_loader_workers_match(prepared):
    ds = PreparedDataset(prepared, flip=True)
    assert len(ds) == 80
    take = lambda dl, k: [next(dl) for _ in range(k)]
    b0 = take(iter(make_loader(ds, 8, workers=0, seed=5)), 12)                  # 96 > 80: crosses an epoch
    b2 = take(iter(make_loader(ds, 8, workers=2, seed=5)), 12)
    for x, y in zip(b0, b2):
        assert x.keys() == y.keys() == {'image', 'label'} and all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(b0[0]['image'], take(iter(make_loader(ds, 8, workers=0, seed=6)), 1)[0]['image'])
    resumed = take(iter(make_loader(ds, 8, workers=0, seed=5, start=5 * 8)), 3)   # resume at step 5
    assert all(torch.equal(x['label'], y['label']) for x, y in zip(b0[5:8], resumed))

def test_flip_and_model_inputs(prepared):
    ds = PreparedDataset(prepared, flip=True)
    img, lab, _ = synthetic_faces(40, 16, 0)
    b = ds[[3, 43, 39, 79]]
    assert b['image'].dtype == b['label'].dtype == torch.uint8
    assert torch.equal(b['image'][0], img[3]) and torch.equal(b['image'][1], img[3].flip(-1))
    assert torch.equal(b['label'][3], lab[39].flip(-1)) and torch.equal(ds[43]['label'], lab[3].flip(-1))
    assert len(PreparedDataset(prepared)) == 40
    idx = [17, 2, 45, 0, 2, 79]                                                  # unsorted, repeated, flipped
    b2 = ds[idx]
    for j, i in enumerate(idx):
        want = img[i % 40].flip(-1) if i >= 40 else img[i % 40]
        assert torch.equal(b2['image'][j], want) and torch.equal(b2['label'][j], lab[i % 40].flip(-1) if i >= 40 else lab[i % 40])
    x, m = to_model_inputs(b, 13)
    assert x.dtype == torch.float32 and x.min() >= -1 and x.max() <= 1
    assert torch.allclose(x, b['image'].float() / 127.5 - 1)
    assert set(m.unique().tolist()) == {-1.0, 1.0} and m.shape == (4, 13, 16, 16)
    assert torch.equal(m.argmax(1), b['label'].long()) and ((m == 1).sum(1) == 1).all()

@pytest.mark.parametrize('size', [16, 12])                      # 12: a width that is not a multiple of 8 bytes
def test_flip_paths_agree(tmp_path, size):
    "The numpy flip (torch multi-threaded) and torch.flip (single-threaded, as in loader workers) give the same mirror."
    prepare(Synthetic(n=6, size=size, n_test=0), tmp_path / 'd', workers=0)
    ds, idx = PreparedDataset(tmp_path / 'd', flip=True), [7, 1, 11, 6, 7]
    img, lab, _ = synthetic_faces(6, size, 0)
    threads = torch.get_num_threads()
    try:
        got = {}
        for th in (1, 2):
            torch.set_num_threads(th); got[th] = ds[idx]; got[-th] = L.SyntheticDataset(6, size, flip=True)[idx]
    finally: torch.set_num_threads(threads)
    for th, b in got.items():
        for j, i in enumerate(idx):
            want_i, want_l = (img[i - 6].flip(-1), lab[i - 6].flip(-1)) if i >= 6 else (img[i], lab[i])
            assert torch.equal(b['image'][j], want_i) and torch.equal(b['label'][j], want_l), (th, i)

def test_open_dataset(prepared):
    assert L.open_dataset(prepared, size=16).n == 40
    with pytest.raises(DataError, match='prepared at 16px but the model needs 32px'): L.open_dataset(prepared, size=32)
    s = L.open_dataset('synthetic', size=16, split='test', n=40, flip=False)
    assert torch.equal(s[0]['label'], synthetic_faces(1, 16, 0, start=40)[1][0])


def _fail_on_replace(monkeypatch, when):
    "Make os.replace in semstylegan.prepare raise KeyboardInterrupt on the first call where when(src, dst) is true."
    real, state = os.replace, {'done': False}
    def fake(src, dst):
        if not state['done'] and when(Path(src), Path(dst)): state['done'] = True; raise KeyboardInterrupt
        return real(src, dst)
    monkeypatch.setattr(P.os, 'replace', fake)
    return state

@pytest.mark.parametrize('where', ['compaction', 'rename'])
def test_interrupted_while_finishing(tmp_path, monkeypatch, where):
    "Ctrl-C during the compaction of skipped rows, or just before the final rename: running again finishes correctly."
    raw = make_folder(tmp_path, n=6)
    (tmp_path / 'labels' / 'f2.png').unlink()
    src = lambda: ImageFolder(tmp_path / 'images', tmp_path / 'labels', tmp_path / 'classes.json', 24)
    when = (lambda s, d: d.name == 'train_labels.npy') if where == 'compaction' else (lambda s, d: d == tmp_path / 'out')
    state = _fail_on_replace(monkeypatch, when)
    with pytest.raises(KeyboardInterrupt): prepare(src(), tmp_path / 'out', workers=0, skip_bad=True)
    assert state['done'] and not (tmp_path / 'out').exists()
    if where == 'compaction':                                  # images compacted, labels not yet
        assert len(np.load(tmp_path / '.out.partial' / 'train_images.npy', mmap_mode='r')) == 5
        assert len(np.load(tmp_path / '.out.partial' / 'train_labels.npy', mmap_mode='r')) == 6
    again = src(); calls = []
    monkeypatch.setattr(again, 'load', lambda s: calls.append(s))
    man = prepare(again, tmp_path / 'out', workers=0, skip_bad=True)
    assert calls == []                                         # nothing loaded again
    keys, imgs, labs = load_split(tmp_path / 'out', 'train')
    assert keys == ['f0', 'f1', 'f3', 'f4', 'f5'] and [b['key'] for b in man['skipped']] == ['f2']
    for k, s in enumerate(keys):
        np.testing.assert_array_equal(labs[k], remapped(raw[s]))
        np.testing.assert_array_equal(imgs[k], rgb(int(s[1:]), 24, 24).transpose(2, 0, 1))
    assert sorted(p.name for p in (tmp_path / 'out').iterdir()) == ['manifest.json', 'train_images.npy', 'train_keys.json', 'train_labels.npy']
    assert not (tmp_path / '.out.partial').exists()


# ---------------------------------------------------------------- refused input (and the CLI's answer to it)

def assert_cli_error(args, *fragments, command='prepare'):
    "The console script in a subprocess, as a user runs it: exit 1, one error line naming the problem, no traceback."
    r = run_cli(*args)
    assert r.returncode == 1, r.stderr
    assert r.stderr.startswith(f'semstylegan {command}: error: ') and 'Traceback' not in r.stderr, r.stderr
    assert all(f in r.stderr for f in fragments), r.stderr

def folder_args(root, out='out'):
    return ['prepare', 'folder', root / 'images', '--labels', root / 'labels', '--classes', root / 'classes.json',
            '--size', '24', '--workers', '0', '--out', root / out]

def test_jpeg_labels_refused(tmp_path):
    raw = make_folder(tmp_path, n=3)
    lab = tmp_path / 'labels' / 'f1.png'
    lab.unlink()
    Image.fromarray(raw['f1']).save(tmp_path / 'labels' / 'f1.jpg', quality=95)
    assert (np.asarray(Image.open(tmp_path / 'labels' / 'f1.jpg')) != raw['f1']).mean() > 0.05   # why: ids moved
    msg = r'f1\.jpg: label map saved as lossy JPEG \(1 JPEG labels in .*labels\); .*save label maps as PNG'
    with pytest.raises(DataError, match=msg):
        ImageFolder(tmp_path / 'images', tmp_path / 'labels', tmp_path / 'classes.json', 24)
    assert_cli_error(folder_args(tmp_path), 'f1.jpg: label map saved as lossy JPEG', 'save label maps as PNG')
    assert not (tmp_path / 'out').exists()
    (tmp_path / 'labels' / 'f1.jpg').rename(lab)                                      # a JPEG under a PNG name
    with pytest.raises(DataError, match=r'f1\.png: label map is a lossy JPEG file; .*save label maps as PNG'):
        prepare(ImageFolder(tmp_path / 'images', tmp_path / 'labels', tmp_path / 'classes.json', 24), tmp_path / 'o2',
                workers=0)

def test_celebamask_image_and_masks_of_other_aspect_refused(tmp_path):
    root = tmp_path / 'c'
    make_celebamask(root, ids=[0, 1, 2])
    Image.fromarray(rgb(0, 48, 64)).save(root / 'CelebA-HQ-img' / '1.jpg')      # 64x48, its masks are 32x32
    Image.fromarray(rgb(1, 96, 96)).save(root / 'CelebA-HQ-img' / '2.jpg')      # 96x96: another size, same frame, fine
    msg = r'1\.jpg: image is 64x48 but its part masks .*00001_\*\.png are 32x32: other aspect ratios'
    with pytest.raises(DataError, match=msg):
        prepare(CelebAMaskHQ(root, MASK), tmp_path / 'o', workers=0)
    assert_cli_error(['prepare', 'celebamask-hq', root, '--size', MASK, '--workers', '0', '--out', tmp_path / 'o'],
                     '1.jpg: image is 64x48 but its part masks', '00001_*.png are 32x32')
    man = prepare(CelebAMaskHQ(root, MASK), tmp_path / 'o', workers=0, skip_bad=True)
    assert [(b['key'], Path(b['file']).name) for b in man['skipped']] == [(1, '1.jpg')]
    keys, _, labs = load_split(tmp_path / 'o', 'train')
    assert keys == [0, 2] and (labs[1] == expected_label(root, 2)).all()

def test_same_id_twice_refused(tmp_path):
    (tmp_path / 'i').mkdir()
    for k, name in enumerate(['5.jpg', '5.JPG', '6.png', '6.jpg', '7.png']):
        Image.fromarray(rgb(k, 8, 8)).save(tmp_path / 'i' / name)
    src = ImageFolder(tmp_path / 'i', size=8)
    with pytest.raises(DataError, match=r'5\.jpg: duplicate file stem \(also .*5\.JPG\)'): src.load('5')
    with pytest.raises(DataError, match=r'6\.png: duplicate file stem \(also .*6\.jpg\)'): src.load('6')
    man = prepare(src, tmp_path / 'o', workers=0, skip_bad=True)
    assert sorted(b['key'] for b in man['skipped']) == ['5', '6'] and load_split(tmp_path / 'o', 'train')[0] == ['7']
    # CelebAMask-HQ: ids are numbers, so 5.JPG and 05.jpg are id 5 as well; a part mask may not come twice either
    root = tmp_path / 'c'
    make_celebamask(root, ids=[4, 5, 6])
    img = root / 'CelebA-HQ-img'
    shutil.copy(img / '5.jpg', img / '5.JPG')
    shutil.copy(img / '6.jpg', img / '06.jpg')
    anno = root / 'CelebAMask-HQ-mask-anno'
    (anno / '1').mkdir()
    shutil.copy(anno / '0' / '00004_skin.png', anno / '1' / '00004_skin.png')
    with pytest.raises(DataError, match=r'1/00004_skin\.png: part skin of id 4 given twice \(also .*/0/00004_skin'):
        prepare(CelebAMaskHQ(root, MASK), tmp_path / 'o2', workers=0)
    src = CelebAMaskHQ(root, MASK)
    with pytest.raises(DataError, match=r'5\.jpg: a second image for id 5 \(also .*5\.JPG\)'): src.load(5)
    with pytest.raises(DataError, match=r'6\.jpg: a second image for id 6 \(also .*06\.jpg\)'): src.load(6)
    assert prepare(src, tmp_path / 'o2', workers=0, skip_bad=True)['splits']['train']['count'] == 0

def test_hidden_files_and_folders_skipped(tmp_path):
    raw = make_folder(tmp_path, n=2)
    for d in ['images/.ipynb_checkpoints', 'images/a/.thumbnails', 'labels/.ipynb_checkpoints']:
        (tmp_path / d).mkdir(parents=True)
    Image.fromarray(rgb(7, 24, 24)).save(tmp_path / 'images/.ipynb_checkpoints/f0-checkpoint.png')
    Image.fromarray(rgb(8, 8, 8)).save(tmp_path / 'images/a/.thumbnails/f1.png')            # would be a duplicate f1
    Image.fromarray(rgb(9, 24, 24)).save(tmp_path / 'images/._f0.png')
    Image.fromarray(raw['f0']).save(tmp_path / 'labels/.ipynb_checkpoints/f0-checkpoint.png')
    found = [p.relative_to(tmp_path).as_posix() for p in D.image_files(tmp_path / 'images')]
    assert found == ['images/a/f1.png', 'images/b/f0.png']
    src = ImageFolder(tmp_path / 'images', tmp_path / 'labels', tmp_path / 'classes.json', 24)
    man = prepare(src, tmp_path / 'o', workers=0)
    assert man['skipped'] == [] and load_split(tmp_path / 'o', 'train')[0] == ['f0', 'f1']
    hidden_root = tmp_path / '.cache' / 'pics'                  # the folder given may itself sit in a hidden one
    hidden_root.mkdir(parents=True)
    Image.fromarray(rgb(0, 4, 4)).save(hidden_root / 'x.png')
    assert D.image_files(hidden_root) == [hidden_root / 'x.png']
    root = tmp_path / 'c'
    make_celebamask(root, ids=[0, 1])
    img, anno = root / 'CelebA-HQ-img', root / 'CelebAMask-HQ-mask-anno'
    for d in [img / '.thumbnails', anno / '.ipynb_checkpoints']: d.mkdir()
    Image.fromarray(rgb(1, 8, 8)).save(img / '.thumbnails' / '1.jpg')                   # would be a second id 1
    Image.fromarray(rgb(1, 8, 8)).save(img / '.1.jpg')
    shutil.copy(anno / '0' / '00000_skin.png', anno / '.ipynb_checkpoints' / '00000_skin.png')   # a second skin of 0
    shutil.copy(anno / '0' / '00001_skin.png', anno / '0' / '.00001_hat.png')
    man = prepare(CelebAMaskHQ(root, MASK), tmp_path / 'oc', workers=0)
    keys, _, labs = load_split(tmp_path / 'oc', 'train')
    assert man['skipped'] == [] and keys == [0, 1]
    assert all((labs[k] == expected_label(root, i)).all() for k, i in enumerate(keys))

@pytest.mark.parametrize('names, msg', [
    ('abcdefghijklm', r'"names" must be a list of class names such as \["background", "skin"\], got \'abcdefghijklm\''),
    ([], r'"names" must list 2 to 256 classes, got 0'),
    (['background', 'skin', 'background'], r"duplicate class names \['background'\]"),
    (['background', 7], r'"names" must be non-empty strings, got \[7\]')])
def test_class_map_names_must_be_a_list_of_strings(tmp_path, names, msg):
    (tmp_path / 'classes.json').write_text(json.dumps({'names': names}))
    with pytest.raises(DataError, match=r'classes\.json: ' + msg): ClassMap.load(tmp_path / 'classes.json')

def test_class_map_string_names_cli(tmp_path):
    make_folder(tmp_path, n=2, classes=False)
    (tmp_path / 'classes.json').write_text('{"names": "abcdefghijklm"}')
    assert_cli_error(folder_args(tmp_path), 'classes.json: "names" must be a list of class names',
                     "got 'abcdefghijklm'")

def test_labels_without_image_refused_or_listed(tmp_path):
    raw = make_folder(tmp_path, n=3)
    for k in range(3, 10): Image.fromarray(raw['f0']).save(tmp_path / 'labels' / f'g{k}.png')
    src = lambda: ImageFolder(tmp_path / 'images', tmp_path / 'labels', tmp_path / 'classes.json', 24)
    msg = r'labels: 7 labels have no image: g3\.png, g4\.png, g5\.png, g6\.png, g7\.png and 2 more; .*--skip-bad'
    with pytest.raises(DataError, match=msg): prepare(src(), tmp_path / 'out', workers=0)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['classes.json', 'images', 'labels']   # nothing written
    assert_cli_error(folder_args(tmp_path), 'labels: 7 labels have no image: g3.png, g4.png, g5.png, g6.png, g7.png '
                     'and 2 more')
    man = prepare(src(), tmp_path / 'out', workers=0, skip_bad=True)
    assert [(b['key'], Path(b['file']).name) for b in man['skipped']] == [(f'g{k}', f'g{k}.png') for k in range(3, 10)]
    assert all(b['problem'].startswith('label without an image: no g') for b in man['skipped'])
    assert man['splits']['train']['count'] == 3 and 'skipped 7' in summary(man)
    # CelebAMask-HQ: part masks of an id whose image is missing
    root = tmp_path / 'c'
    make_celebamask(root, ids=[0, 1])
    (root / 'CelebA-HQ-img' / '1.jpg').unlink()
    with pytest.raises(DataError, match=r'0: 1 labels have no image: 00001_\*\.png'):
        prepare(CelebAMaskHQ(root, MASK), tmp_path / 'oc', workers=0)
    man = prepare(CelebAMaskHQ(root, MASK), tmp_path / 'oc', workers=0, skip_bad=True)
    want = f'part masks without an image: no 1.jpg in {root / "CelebA-HQ-img"}'
    assert [(b['key'], b['problem']) for b in man['skipped']] == [(1, want)]

def test_exif_orientation_applied(tmp_path):
    (tmp_path / 'i').mkdir()
    (tmp_path / 'l').mkdir()
    stored = np.zeros((8, 16, 3), np.uint8)
    stored[:, :8] = 255                                          # stored 16 wide, 8 high, left half white
    exif = Image.Exif()
    exif[0x0112] = 6                                             # orientation 6: viewers turn it 90 degrees clockwise
    Image.fromarray(stored).save(tmp_path / 'i' / 'p.jpg', exif=exif, quality=95)
    lab = np.zeros((16, 8), np.uint8)
    lab[:8] = 1                                                  # drawn on the photo as shown: white top half
    Image.fromarray(lab).save(tmp_path / 'l' / 'p.png')
    as_stored = np.asarray(Image.open(tmp_path / 'i' / 'p.jpg').convert('RGB'))
    np.testing.assert_array_equal(D.read_image(tmp_path / 'i' / 'p.jpg'), np.rot90(as_stored, -1))
    prepare(ImageFolder(tmp_path / 'i', tmp_path / 'l', size=8), tmp_path / 'o', workers=0)
    _, imgs, labs = load_split(tmp_path / 'o', 'train')
    grey = imgs[0].mean(0)
    assert (labs[0] == 1).sum() == 32 and grey[labs[0] == 1].min() > 200 and grey[labs[0] == 0].max() < 55

@pytest.fixture
def damaged(tmp_path):
    "A fresh small prepared folder to damage."
    prepare(Synthetic(n=8, size=16, n_test=0), tmp_path / 'd', workers=0)
    return tmp_path / 'd'

def _edit_manifest(folder, fn):
    man = json.loads((folder / 'manifest.json').read_text())
    fn(man)
    (folder / 'manifest.json').write_text(json.dumps(man))

@pytest.mark.parametrize('damage, msg', [
    ('cut_bytes', r'train_images\.npy: cannot read the images array \(.*\); .*run `semstylegan prepare` again'),
    ('fewer_rows', r'train_labels\.npy: the labels array is \(5, 16, 16\) uint8 but manifest\.json says \(8, 16, 16\)'),
    ('count', r'train_images\.npy: the images array is \(8, 3, 16, 16\) uint8 but manifest\.json says \(9, 3, 16'),
    ('resolution', r'train_images\.npy: the images array is \(8, 3, 16, 16\) uint8 but manifest\.json says \(8, 3, 32'),
    ('no_count', r'manifest\.json: damaged manifest \(KeyError: .count.\); .*run `semstylegan prepare` again'),
    ('not_json', r'manifest\.json: not valid JSON'),
    ('missing', r'train_labels\.npy: cannot read the labels array')])
def test_damaged_prepared_folder(damaged, damage, msg):
    if damage == 'cut_bytes':
        f = damaged / 'train_images.npy'
        f.write_bytes(f.read_bytes()[:f.stat().st_size // 2])
    if damage == 'fewer_rows': np.save(damaged / 'train_labels.npy', np.load(damaged / 'train_labels.npy')[:5])
    if damage == 'count': _edit_manifest(damaged, lambda m: m['splits']['train'].update(count=9))
    if damage == 'resolution': _edit_manifest(damaged, lambda m: m.update(resolution=32))
    if damage == 'no_count': _edit_manifest(damaged, lambda m: m['splits']['train'].pop('count'))
    if damage == 'not_json': (damaged / 'manifest.json').write_text('{"format": ')
    if damage == 'missing': (damaged / 'train_labels.npy').unlink()
    with pytest.raises(DataError, match=msg): PreparedDataset(damaged)

def test_damaged_prepared_folder_cli(damaged):
    np.save(damaged / 'train_images.npy', np.load(damaged / 'train_images.npy')[:3])
    assert_cli_error(['bench', '--what', 'loader', '--data', damaged, '--workers', '0', '--batches', '1'],
                     'train_images.npy: the images array is (3, 3, 16, 16) uint8 but manifest.json says (8, 3, 16, 16)',
                     'run `semstylegan prepare` again', command='bench')

def _children(pid):
    "Process ids of the children of `pid` (Linux /proc)."
    kids = []
    for f in Path(f'/proc/{pid}/task').glob('*/children'):
        try: kids += [int(c) for c in f.read_text().split()]
        except OSError: pass
    return kids

def _alive(pid):
    "Running (a zombie waiting for its reaper counts as gone)."
    try: return Path(f'/proc/{pid}/stat').read_text().rsplit(')', 1)[1].split()[0] != 'Z'
    except OSError: return False

@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='the parent-death signal (prctl) is Linux only')
def test_workers_die_with_a_killed_main_process(tmp_path):
    args = ['prepare', 'synthetic', '--n', '4000', '--size', '128', '--workers', '2', '--out', tmp_path / 'x']
    p = popen_cli(*args, stdout=subprocess.DEVNULL, text=True)
    kids, t0 = [], time.time()
    try:
        while time.time() - t0 < 120 and p.poll() is None and len(kids) < 2:
            kids = _children(p.pid)
            time.sleep(0.05)
        assert len(kids) == 2, f'no workers seen (exit {p.poll()}): {p.stderr.read() if p.poll() is not None else ""}'
        time.sleep(1)                                            # the workers are past their start-up, busy with chunks
        os.kill(p.pid, signal.SIGKILL)
        p.wait(timeout=10)
        t1 = time.time()
        while time.time() - t1 < 10 and any(_alive(k) for k in kids): time.sleep(0.05)
        left = [k for k in kids if _alive(k)]
        assert not left, f'workers {left} outlived the killed main process by 10 s'
    finally:
        for k in kids:
            if _alive(k): os.kill(k, signal.SIGKILL)
        if p.poll() is None: p.kill()

def test_out_on_a_mount_point_refused_before_work(small_disk):
    "--out on an (empty) mounted volume: refused at once, not at the final rename after all the work."
    mnt = small_disk('4m')
    with pytest.raises(DataError, match='is a mount point.*give a folder inside it'):
        prepare(Synthetic(8, 16, 0, 0), mnt, workers=0)
    assert list(mnt.iterdir()) == [] and not (mnt.parent / f'.{mnt.name}.partial').exists()
    man = prepare(Synthetic(8, 16, 0, 0), mnt / 'data', workers=0)     # the fix the message gives works
    assert man['splits']['train']['count'] == 8

def test_full_disk_is_an_error_not_sigbus(small_disk):
    "prepare on a disk too small for its arrays: exit 1 and a message (memory-mapped writes used to die of SIGBUS)."
    r = run_cli('prepare', 'synthetic', '--n', '400', '--size', '64', '--workers', '0',
                '--out', small_disk('1m') / 'data', timeout=300)
    assert r.returncode == 1 and 'cannot reserve' in r.stderr and 'No space left' in r.stderr, (r.returncode, r.stderr)
    assert 'Traceback' not in r.stderr
