"""`semstylegan paint` and `semstylegan bench --what paint`: faces fitted to a held-out synthetic mask, the files they
leave, and the errors of masks the model cannot paint (exit 1, naming the file and the problem, nothing written)."""
import json
import numpy as np
import pytest
import torch
from PIL import Image


@pytest.fixture(scope='module')
def target(tmp_path_factory):
    "A held-out synthetic label map (64 px, index 20000: never a training face), saved as an index PNG."
    from semstylegan.synthetic import synthetic_faces
    labels = synthetic_faces(1, size=64, start=20000)[1]
    path = tmp_path_factory.mktemp('mask') / 'labels.png'
    Image.fromarray(labels[0].numpy(), 'L').save(path)
    return path, labels.long()


@pytest.fixture(scope='module')
def G():
    from semstylegan.checkpoint import load_generator, pretrained_path
    return load_generator(pretrained_path()).eval()


def test_paint_default_steps(tmp_path, run_cli, target, G):
    "Default steps, one seed: every file, a high mIoU that the written mask reproduces, codes load_codes reads."
    from semstylegan.edit import load_codes
    from semstylegan.paint import mask_scores
    path, labels = target
    out = tmp_path / 'o'
    r = run_cli('paint', '--mask', path, '--out', out, '--seeds', 7, '--device', 'cpu')
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.splitlines()) == 1 and 'mean mIoU' in r.stdout
    assert sorted(p.name for p in out.iterdir()) == ['codes.pt', 'face_01.png', 'mask_01.png', 'report.json']
    report = json.loads((out / 'report.json').read_text())
    face = report['faces'][0]
    assert face['seed'] == 7 and face['seconds'] > 0 and report['steps'] == 300 and report['final_steps'] == 100
    assert face['miou'] >= 0.7 and report['mean_miou'] == face['miou']
    im = Image.open(out / 'mask_01.png')
    assert im.mode in ('L', 'P') and im.size == (64, 64)
    written = torch.from_numpy(np.asarray(im).astype(np.int64))[None]
    assert mask_scores(written, labels, G.cfg.n_classes)['per_image'][0] == pytest.approx(face['miou'], abs=1e-9)
    assert load_codes(out / 'codes.pt', G).codes.shape == (1, G.layout.n_latent, G.cfg.style_dim)
    assert Image.open(out / 'face_01.png').mode == 'RGB'
    saved = torch.load(out / 'codes.pt', weights_only=False)
    assert saved['seeds'] == [7] and saved['mask'] == str(path)


@pytest.mark.slow
def test_paint_reaches_08_on_held_out_masks(tmp_path, run_cli):
    """Default steps on the first four held-out masks (20000-20003), one face each: a mean mIoU of at least 0.80,
    as the fits of chapter 21's table reach on 64 such masks (about half a minute)."""
    from semstylegan.synthetic import synthetic_faces
    labels = synthetic_faces(4, size=64, start=20000)[1]
    miou = []
    for i, label in enumerate(labels):
        Image.fromarray(label.numpy(), 'L').save(tmp_path / f'm{i}.png')
        r = run_cli('paint', '--mask', tmp_path / f'm{i}.png', '--out', tmp_path / f'o{i}', '--seeds', 7, '-q')
        assert r.returncode == 0, r.stderr
        miou.append(json.loads((tmp_path / f'o{i}' / 'report.json').read_text())['mean_miou'])
    assert np.mean(miou) >= 0.80, miou


def test_two_seeds_two_faces(tmp_path, run_cli, target, G):
    "One face per seed, in seed order, each with its own textures; an earlier run is refused without --force."
    from semstylegan.edit import load_codes
    path, _ = target
    out = tmp_path / 'o'
    args = ('paint', '--mask', path, '--out', out, '--seeds', 1, 2, '--steps', 30, '--final-steps', 5, '-q')
    r = run_cli(*args)
    assert r.returncode == 0 and r.stdout == '' and r.stderr == ''
    report = json.loads((out / 'report.json').read_text())
    assert [f['seed'] for f in report['faces']] == [1, 2]
    assert report['mean_miou'] == pytest.approx(np.mean([f['miou'] for f in report['faces']]))
    a, b = (np.asarray(Image.open(out / f'face_0{i}.png')).astype(float) for i in (1, 2))
    assert np.abs(a - b).mean() > 5
    assert load_codes(out / 'codes.pt', G).codes.shape[0] == 2
    r = run_cli(*args)
    assert r.returncode == 1 and '--force' in r.stderr


def bad_masks(tmp):
    "(file, the words its error must hold) for every mask the command refuses."
    rgb = np.zeros((64, 64, 3), np.uint8)
    rgb[:10, :7] = (1, 2, 3)                                         # 70 px of a colour no class has
    Image.fromarray(rgb).save(tmp / 'offpalette.png')
    ids = np.zeros((64, 64), np.uint8)
    ids[20:30, 20:30] = 40                                          # class 40: the model has 13
    Image.fromarray(ids, 'L').save(tmp / 'unknown.png')
    Image.fromarray(np.zeros((64, 64), np.uint8), 'L').save(tmp / 'background.png')
    (tmp / 'text.png').write_text('not an image')
    return [(tmp / 'missing.png', ['missing.png', 'no such file', 'class ids']),
            (tmp / 'text.png', ['text.png', 'cannot decode']),
            (tmp / 'offpalette.png', ['offpalette.png', '(1, 2, 3) in 70 px', 'not class colours']),
            (tmp / 'unknown.png', ['unknown.png', '[40]', 'not classes']),
            (tmp / 'background.png', ['background.png', 'all background'])]


def test_bad_masks(tmp_path, run_cli):
    "Each: exit 1, one line naming the file and the problem, nothing written (not even --out)."
    for path, words in bad_masks(tmp_path):
        out = tmp_path / f'out_{path.stem}'
        r = run_cli('paint', '--mask', path, '--out', out, '--steps', 1, '--final-steps', 0)
        assert r.returncode == 1, (path, r.stderr)
        line = r.stderr.strip()
        assert len(line.splitlines()) == 1 and line.startswith('semstylegan paint: error: '), line
        assert all(w in line for w in words), (words, line)
        assert r.stdout == '' and not out.exists()


def test_bad_mask_keeps_earlier_results(tmp_path, run_cli):
    "With --force too, a bad mask changes nothing in --out: the mask is read before earlier results are removed."
    out = tmp_path / 'o'
    out.mkdir()
    (out / 'report.json').write_text('{}')
    Image.fromarray(np.zeros((64, 64), np.uint8), 'L').save(tmp_path / 'empty.png')
    r = run_cli('paint', '--mask', tmp_path / 'empty.png', '--out', out, '--force')
    assert r.returncode == 1 and (out / 'report.json').read_text() == '{}'


def test_usage_errors(tmp_path, run_cli, target):
    path, _ = target
    assert run_cli('paint', '--out', tmp_path / 'o').returncode == 2                       # no --mask
    assert run_cli('paint', '--mask', path, '--out', tmp_path / 'o', '--steps', -1).returncode == 2
    r = run_cli('paint', '--mask', path, '--out', tmp_path / 'o', '--encoder', tmp_path / 'nope.safetensors')
    assert r.returncode == 2 and 'nope.safetensors' in r.stderr and not (tmp_path / 'o').exists()


def test_encoder(tmp_path, run_cli, target, G):
    """--encoder: a mask encoder's codes start each fit; 'tiny' (the shipped one) alone, with no fitting step, already
    matches the mask far better than the seed's own codes; a file that is not one: exit 1 naming it, nothing written."""
    from semstylegan.paint import new_mask_encoder, save_mask_encoder
    path, _ = target
    enc = tmp_path / 'mask-encoder.safetensors'
    save_mask_encoder(new_mask_encoder(G), enc)
    r = run_cli('paint', '--mask', path, '--out', tmp_path / 'o', '--encoder', enc, '--steps', 5, '--final-steps', 0)
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / 'o' / 'report.json').read_text())['encoder'] == str(enc)
    miou = {}
    for name, extra in (('tiny', ['--encoder', 'tiny']), ('seed', [])):
        r = run_cli('paint', '--mask', path, '--out', tmp_path / name, '--steps', 0, '--final-steps', 0, *extra)
        assert r.returncode == 0, r.stderr
        miou[name] = json.loads((tmp_path / name / 'report.json').read_text())['mean_miou']
    assert miou['tiny'] > miou['seed'] + 0.2, miou
    (tmp_path / 'junk.safetensors').write_bytes(b'junk')
    r = run_cli('paint', '--mask', path, '--out', tmp_path / 'p', '--encoder', tmp_path / 'junk.safetensors')
    assert r.returncode == 1 and 'junk.safetensors' in r.stderr and not (tmp_path / 'p').exists()


@pytest.mark.slow
def test_bench_paint(run_cli):
    "The median ms of one painter update, for the shipped tiny model and the 512 px architecture (about a minute)."
    r = run_cli('bench', '--what', 'paint', '--repeat', 1)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res['what'] == 'paint' and res['tiny']['size'] == 64 and res['celebamask-512']['size'] == 512
    assert res['tiny']['update_ms'] > 0 and res['celebamask-512']['update_ms'] > 0
    assert run_cli('bench', '--what', 'paint', '--batch', 2).returncode == 2             # --batch: not read
