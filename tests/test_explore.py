"""Explorers beyond the chapter's examples: an official checkpoint at 512, uploads and paths in the inversion
explorer, error reporting, and the equality of cached and full synthesis over random edit sequences."""
import argparse, io
import numpy as np
import pytest
import torch
from PIL import Image
from semstylegan.checkpoint import load_generator, generator_ours_to_official
from semstylegan.checkpoint import pretrained_path
from semstylegan.edit import codes_from_seeds
from semstylegan.generator import Generator, preset
from semstylegan.latent import WPlus
from semstylegan.explore import (LiveSynthesis, RegionInterpolator, StyleMixer, ComponentExplorer, PartMover,
                                 InversionEditor, image_to_target)

torch.set_num_threads(2)

@pytest.fixture(scope='module')
def G(): return load_generator(pretrained_path()).eval()

@pytest.fixture
def widgets():
    "ipywidgets (the explore extra), or a skip: the explorers are widgets; LiveSynthesis alone needs none."
    return pytest.importorskip('ipywidgets', reason='the explore extra is missing: pip install "semstylegan[explore]"')

def test_official_checkpoint_at_512(tmp_path, widgets):
    "The paper's 512 px architecture, saved in the official file format (random weights), explored as it loads."
    torch.manual_seed(0)
    cfg = preset('celebamask-512')
    G0 = Generator(cfg).eval()
    path = tmp_path / 'official-512.pt'
    torch.save({'g_ema': generator_ours_to_official(G0.state_dict(), cfg), 'args': argparse.Namespace(**cfg.to_official())}, path)
    G = load_generator(path).eval()
    ex = RegionInterpolator(G, seed_a=0, seed_b=1, regions=['hair', 'mouth'], display=512)
    assert ex.frame.shape == (3, 512, 1024) and ex.live.reran == list(range(13))
    ex.sliders[('mouth', 'both')].value = 0.5
    assert ex.live.reran == [G.layout.class_index('mouth')]
    with torch.no_grad(): ref = G.synthesis(ex.codes(), 'const')
    torch.testing.assert_close(ex.out.image, ref.image, atol=1e-4, rtol=0)
    assert ex.last_ms > 0 and 'reran 1/13' in ex.status.value

def test_cached_equals_full_over_random_edits(G):
    "Random slot edits, moves and compositions: LiveSynthesis matches G.synthesis at every step."
    g = torch.Generator().manual_seed(0)
    live, codes = LiveSynthesis(G), codes_from_seeds(G, [0])
    pool = codes_from_seeds(G, range(1, 6)).codes
    from semstylegan.layers import make_coords, transform_coords
    uses = G.layout.expand_index().reshape(13, -1)   # the W+ slots each local generator reads
    prev = None
    for step in range(12):
        slot = int(torch.randint(G.n_latent, (1,), generator=g))
        old = codes.codes[:, slot].clone()
        codes.codes[:, slot] = pool[int(torch.randint(5, (1,), generator=g)), slot]
        coords = {'nose': transform_coords(make_coords(G.cfg.coarse_size), (0.05 * step, 0.))} if step % 3 == 0 else None
        cm = (torch.rand(13, generator=g) > 0.2).float(); cm[0] = 1
        o = live(codes, coords, cm)
        with torch.no_grad(): ref = G.synthesis(codes, 'const', coords=coords, composition_mask=cm)
        torch.testing.assert_close(o.image, ref.image, atol=1e-5, rtol=0)
        assert torch.equal(o.mask, ref.mask)
        expected = set(range(13)) if step == 0 else {k for k in range(13) if (uses[k] == slot).any() and not torch.equal(old, codes.codes[:, slot])}
        if step and (coords is not None or prev is not None): expected.add(G.layout.class_index('nose'))
        assert set(live.reran) == expected, (step, slot, live.reran)
        prev = coords

def test_inversion_editor_inputs(G, tmp_path, widgets):
    ie = InversionEditor(G, steps=20)
    # an upload, in the form the browser sends it (ipywidgets deserialises it into `value`)
    im = Image.fromarray((np.random.default_rng(0).random((80, 100, 3)) * 255).astype(np.uint8))
    buf = io.BytesIO(); im.save(buf, format='PNG')
    ie.upload.set_state({'value': [{'name': 'face.png', 'type': 'image/png', 'size': len(buf.getvalue()),
                                    'content': buf.getvalue(), 'last_modified': 1_700_000_000_000}]})
    assert ie.error is None
    torch.testing.assert_close(ie.target, image_to_target(buf.getvalue(), 64))
    assert ie.target.shape == (1, 3, 64, 64) and -1 <= ie.target.min() and ie.target.max() <= 1
    # a file path; a missing one is reported in the status line, naming the file, and the old target stays
    im.save(tmp_path / 'face.jpg')
    ie.path.value = str(tmp_path / 'face.jpg')
    assert ie.error is None and ie.renders >= 2
    before = ie.target.clone()
    ie.path.value = str(tmp_path / 'missing.png')
    assert ie.error is not None and 'missing.png' in ie.status.value
    assert torch.equal(ie.target, before)
    # a picked synthetic face, then the invert button with its progress bar
    ie.pick.value = 3
    ie.invert_button.click()
    assert ie.error is None and ie.progress.value == ie.progress.max == 20 and len(ie.losses) == 20

def test_buttons_and_save(G, tmp_path, widgets):
    ex = RegionInterpolator(G, regions=['hair', 'skin'])
    ex.region.value = 'skin'
    ex.randomise_button.click()
    assert ex.sliders[('skin', 'both')].value == 1. and 'skin' in ex.b_override
    assert ex.live.reran == [G.layout.class_index('skin')]
    ex.reset_button.click()
    assert all(s.value == 0 for s in ex.sliders.values()) and torch.equal(ex.out.wplus, ex.a.codes)
    ex.save_path.value = str(tmp_path / 'out' / 'x')
    ex.save_button.click()
    assert (tmp_path / 'out' / 'x.png').is_file() and (tmp_path / 'out' / 'x.pt').is_file()
    from semstylegan.edit import load_codes
    assert torch.equal(load_codes(tmp_path / 'out' / 'x.pt', G).codes, ex.codes().codes)

def test_seed_and_truncation_changes(G, widgets):
    mx = StyleMixer(G, target=1, donor=2)
    mx.checks['hair'].value = True
    mx.psi.value = 1.0
    assert mx.live.reran == list(range(13))                     # every code changed with the truncation
    assert torch.equal(mx.out.wplus, mx.seed_codes(1).replace('hair', mx.seed_codes(2)).codes)
    mx.donor.value = 7
    assert mx.live.reran == [G.layout.class_index('hair')]       # only the mixed region depends on the donor
    ce = ComponentExplorer(G, seed=4)
    ce.seed.value = 5
    assert ce.live.reran == list(range(13)) and ce.renders == 2
    pm = PartMover(G, seed=4)
    pm.move('face', (0.1, 0.), 1.1)
    assert sorted(pm.live.reran) == sorted(G.layout.class_index(c) for c in ('skin', 'eyes', 'brows', 'mouth', 'nose'))
