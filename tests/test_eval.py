"Evaluation: folder mode, the statistics cache, LPIPS weights loading, and `semstylegan eval` end to end (stand-in extractor)."
import json, os
from pathlib import Path
import numpy as np
import pytest
import torch
from PIL import Image

from semstylegan import metrics as M
from semstylegan import locality as LO
from semstylegan import masks as MK
from semstylegan.cli import main
from semstylegan.checkpoint import pretrained_path
from semstylegan.data import Synthetic
from semstylegan.prepare import prepare
from semstylegan.synthetic import synthetic_faces

torch.set_num_threads(2)
EXTRA = 'the eval extra is not installed: pip install -c constraints.txt "semstylegan[eval]"'


@pytest.fixture
def clean_fid():
    "clean-fid and scipy (the eval extra), or a skip: every feature extractor resizes with clean-fid, FID needs scipy."
    pytest.importorskip('scipy', reason=EXTRA)
    return pytest.importorskip('cleanfid.fid', reason=EXTRA)


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('SEMSTYLEGAN_CACHE', str(tmp_path / 'cache'))
    for v in (M.INCEPTION_ENV, M.ALEXNET_ENV): monkeypatch.delenv(v, raising=False)
    return tmp_path / 'cache'


def _write_folder(folder, start, n=24, size=48, brighten=0):
    folder.mkdir(parents=True)
    imgs = synthetic_faces(n, size, start=start)[0]
    for i, im in enumerate(imgs):
        a = np.clip(im.permute(1, 2, 0).numpy().astype(int) + brighten, 0, 255).astype(np.uint8)
        Image.fromarray(a).save(folder / f'{i:03d}.png')
    return folder


def test_folder_mode_known_cases(tmp_path, clean_fid):
    "Folder vs folder: identical folders give ~0, a brightened folder is farther than another sample of the same faces."
    ext = M.TinyExtractor()
    a = _write_folder(tmp_path / 'a', 0)
    b = _write_folder(tmp_path / 'b', 100)
    c = _write_folder(tmp_path / 'c', 100, brighten=60)
    same = M.evaluate_quality(['fid', 'kid'], a, a, ext)
    near = M.evaluate_quality(['fid', 'kid'], b, a, ext)
    far = M.evaluate_quality(['fid', 'kid'], c, a, ext)
    assert abs(same['fid']) < 1e-3 and abs(same['kid']) < 0.2 * far['kid']   # KID is unbiased: about 0, can be below
    assert far['fid'] > 2 * near['fid'] and far['kid'] > near['kid']
    assert same['n_fake'] == same['n_real'] == 24 and 'stand-in' in same['protocol']


def test_stats_cache_is_keyed_by_manifest(tmp_path, cache, clean_fid):
    "Statistics are cached in the user cache (not site-packages) and recomputed when the dataset changes."
    ext = M.TinyExtractor()
    d1 = tmp_path / 'd1'
    prepare(Synthetic(n=16, size=32, n_test=4), d1, workers=0)
    f1, _ = M.dataset_stats(d1, ext, size=32)
    files = list((cache / 'stats').glob('*.npz'))
    assert len(files) == 1 and f1.shape == (16, 64)
    calls = []
    orig = ext.forward
    ext.forward = lambda x: calls.append(1) or orig(x)
    f1b, _ = M.dataset_stats(d1, ext, size=32)
    assert not calls and np.array_equal(f1, f1b)                           # from the cache
    d2 = tmp_path / 'd2'
    prepare(Synthetic(n=16, size=32, n_test=4, seed=1), d2, workers=0)     # another dataset: another key
    f2, _ = M.dataset_stats(d2, ext, size=32)
    assert calls and not np.array_equal(f1, f2) and len(list((cache / 'stats').glob('*.npz'))) == 2
    M.dataset_stats(d1, M.TinyExtractor(seed=1), size=32)                 # another extractor: another key
    assert len(list((cache / 'stats').glob('*.npz'))) == 3


def test_lpips_from_local_alexnet(tmp_path):
    "LPIPS takes its AlexNet backbone from a local torchvision file; a missing or wrong file is a clear error."
    pytest.importorskip('lpips', reason=EXTRA)
    tv = pytest.importorskip('torchvision', reason=EXTRA)
    with pytest.raises(M.WeightsMissing, match='--lpips'):
        LO.load_lpips()
    torch.manual_seed(0)
    alex = tv.models.alexnet()
    path = tmp_path / M.ALEXNET_FILE
    torch.save(alex.state_dict(), path)
    lp = LO.load_lpips(path)
    assert torch.equal(getattr(lp.net.slice1, '0').weight, alex.features[0].weight)
    assert torch.equal(getattr(lp.net.slice5, '10').weight, alex.features[10].weight)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    d = lp(x, x.flip(0))
    assert d.shape == (2, 1, 64, 64) and d.min() >= 0 and lp(x, x).abs().max() < 1e-6
    torch.save({'classifier.1.weight': torch.zeros(1)}, tmp_path / 'wrong.pth')
    with pytest.raises(M.WeightsMissing, match='expected torchvision AlexNet'):
        LO.load_lpips(tmp_path / 'wrong.pth')


def test_eval_locality_cli_with_baseline(tmp_path):
    "`semstylegan eval locality` writes JSON, a table and a chart, and the shared-code baseline leaks more."
    from semstylegan.checkpoint import load_checkpoint, save_checkpoint
    obj = load_checkpoint(pretrained_path(), which=('g_ema',))
    cfg = obj['config'].__class__(**{**obj['config'].to_dict(), 'shared_codes': True})
    save_checkpoint(tmp_path / 'base.safetensors', cfg, g_ema=obj['g_ema'])
    out = tmp_path / 'ev'
    rc = main(['eval', 'locality', str(pretrained_path()), '--baseline', str(tmp_path / 'base.safetensors'),
               '--num', '16', '--batch', '16', '--truncation', '0.7', '--out', str(out), '-q'])
    assert rc == 0
    res = json.loads((out / 'locality.json').read_text())
    assert set(res['per_region']) == set(obj['config'].class_names)
    assert res['baseline']['overall']['both']['leak_ratio'] > 2 * res['overall']['both']['leak_ratio']
    assert (out / 'locality.png').stat().st_size > 1000 and '| hair |' in (out / 'locality.md').read_text()


def test_eval_masks_cli_saves_and_reuses_segmenter(tmp_path):
    out = tmp_path / 'ev'
    args = ['eval', 'masks', str(pretrained_path()), '--num', '8', '--batch', '8', '--out', str(out), '-q']
    assert main(args + ['--seg-steps', '3']) == 0
    res = json.loads((out / 'masks.json').read_text())
    assert 0 <= res['generated']['miou'] <= 1 and set(res['generated']['per_class']) == set(res['segmenter_on_real']['per_class'])
    assert main(args + ['--segmenter', str(out / 'segmenter.safetensors')]) == 1      # the earlier results are there
    assert main(args + ['--segmenter', str(out / 'segmenter.safetensors'), '--force']) == 0
    assert json.loads((out / 'masks.json').read_text())['generated'] == res['generated']    # same segmenter, same numbers
    with pytest.raises(SystemExit) as e:
        main(['eval', 'masks', str(pretrained_path()), '--segmenter', str(tmp_path / 'x.safetensors'), '--out', str(out), '-q'])
    assert e.value.code == 2


def test_broken_weight_files_are_clear_errors(tmp_path, capsys, clean_fid):
    "A truncated segmenter (through `eval masks`), an LFS-pointer AlexNet and an empty Inception file name the file."
    seg = tmp_path / 'seg.safetensors'
    MK.save_segmenter(MK.Segmenter(13, 8), seg)
    data = seg.read_bytes(); seg.write_bytes(data[:len(data) // 2])
    rc = main(['eval', 'masks', str(pretrained_path()), '--segmenter', str(seg), '--out', str(tmp_path / 'ev'), '-q'])
    err = capsys.readouterr().err
    assert rc == 1 and err.startswith(f'semstylegan eval: error: {seg}: truncated safetensors file') and 'Traceback' not in err
    pointer = tmp_path / M.ALEXNET_FILE
    pointer.write_text('version https://git-lfs.github.com/spec/v1\noid sha256:4d7a21\nsize 244408911\n')
    with pytest.raises(Exception, match=f'{pointer}: a Git LFS pointer .*run `git lfs pull`'): LO.load_lpips(pointer)
    empty = tmp_path / M.INCEPTION_FILE; empty.write_bytes(b'')
    with pytest.raises(M.WeightsMissing, match=f'{empty}: empty file \\(0 bytes\\)'): M.InceptionExtractor(empty)
