"""The official generator, loaded through our official-checkpoint importer, reproduces the reference outputs."""
import argparse, warnings
import pytest
import torch
from semstylegan.checkpoint import load_checkpoint, load_official, safe_load
from semstylegan.generator import ModelConfig

TOL = 1e-4
CASES = ['z', 'wplus', 'trunc', 'composition']
FIELDS = {'rgb': 'image', 'seg': 'seg', 'seg_coarse': 'seg_coarse', 'depths': 'depths', 'latent_expanded': 'codes'}

def run_case(G, fx, case):
    inp = fx['inputs']
    with torch.no_grad():
        if case == 'z': return G(inp['z'], noise_mode='const')
        if case == 'wplus': return G.synthesis(inp['wplus'], noise_mode='const')
        if case == 'trunc': return G(inp['z'], truncation=0.7, w_avg=inp['wmean'], noise_mode='const')
        return G(inp['z'], composition_mask=inp['composition_mask'], noise_mode='const')

@pytest.fixture(scope='module')
def fx(fixture_path): return safe_load(fixture_path)

@pytest.fixture(scope='module')
def official_ckpt(fx, tmp_path_factory):
    "An official-format training checkpoint built from the fixture: g, g_ema, args (Namespace)."
    p = tmp_path_factory.mktemp('official') / '000100.pt'
    torch.save({'g': fx['g_state'], 'g_ema': fx['g_state'], 'args': argparse.Namespace(**fx['config'], iter=100, batch=4)}, p)
    return p

def test_config_from_args(fx):
    cfg = ModelConfig.from_official(fx['config'])
    assert (cfg.size, cfg.style_dim, cfg.n_classes, cfg.coarse_size, cfg.coarse_channel) == (64, 64, 13, 32, 64)
    assert cfg.layout.n_latent == fx['n_latent'] and cfg.layout.n_latent_expand == fx['n_latent_expand']

@pytest.mark.parametrize('case', CASES)
def test_outputs_match(fx, official_ckpt, case):
    G = load_checkpoint(official_ckpt)['g_ema']
    out, ref = run_case(G, fx, case), fx['outputs'][case]
    for theirs, ours in FIELDS.items():
        err = (getattr(out, ours) - ref[theirs]).abs().max().item()
        assert err < TOL, f'{case}/{theirs}: max abs diff {err:.2e}'

def test_mapping_matches(fx, official_ckpt):
    G = load_checkpoint(official_ckpt)['g_ema']
    with torch.no_grad(): assert (G.mapping(fx['inputs']['z']) - fx['mapped_w']).abs().max() < TOL

def test_bare_state_dict(fx, tmp_path):
    "A bare generator state dict: the config is inferred from the shapes (with a warning for what shapes cannot tell)."
    p = tmp_path / 'g.pt'; torch.save(fx['g_state'], p)
    with pytest.warns(UserWarning, match='assuming official defaults'):
        m = load_checkpoint(p)
    assert m['config'] == ModelConfig.from_official(fx['config'])
    out = run_case(m['g_ema'], fx, 'z')
    assert (out.image - fx['outputs']['z']['rgb']).abs().max() < TOL

def test_wrong_config_lists_problems(fx):
    with pytest.raises(Exception) as e:
        load_official({'g_ema': fx['g_state'], 'args': argparse.Namespace(**{**fx['config'], 'local_channel': 16})})
    msg = str(e.value)
    assert 'shape mismatches' in msg and 'local_nets.0.linears.0.conv.weight: file (1, 32, 32, 1, 1) vs model (1, 16, 16, 1, 1)' in msg
