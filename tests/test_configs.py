"""Every configuration field of the official model works: the fast generator equals the official algorithm
(re-enacted in `semstylegan.bench.reference_synthesis`), D runs, official state dicts round-trip, derivatives work."""
import pytest
import torch
from semstylegan.bench import reference_synthesis
from semstylegan.checkpoint import generator_ours_to_official, generator_official_to_ours, load_into, infer_official_config
from semstylegan.discriminator import DualBranchDiscriminator
from semstylegan.generator import Generator, ModelConfig

CONFIGS = {
    'two-classes': dict(size=64, n_classes=2, style_dim=32, n_mlp=2, local_channel=16, coarse_size=32, coarse_channel=32, max_channels=64),
    'no-base-no-refine': dict(size=128, n_classes=4, base_layers=0, depth_layers=3, local_layers=5, transparent_classes=(2,),
                              residual_refine=False, detach_texture=True, min_feat_size=8, coarse_size=32, channel_multiplier=1,
                              style_dim=32, local_channel=16, coarse_channel=32, max_channels=64),
    'celeba-classes-small': dict(size=64, base_layers=3, depth_layers=4, local_layers=6, coarse_size=32, style_dim=32,
                                 local_channel=16, coarse_channel=24, max_channels=32),
    'coarse64-cm2': dict(size=128, n_classes=5, coarse_size=64, coarse_channel=48, local_channel=24, channel_multiplier=2,
                         style_dim=48, max_channels=64, transparent_classes=(1, 4)),
}

def perturbed(cfg, seed=0):
    torch.manual_seed(seed)
    G = Generator(cfg).eval()
    with torch.no_grad():
        for p in G.parameters(): p.add_(0.1 * torch.randn_like(p))
    return G

@pytest.mark.parametrize('name', CONFIGS)
def test_fast_path_equals_official_algorithm(name):
    cfg = ModelConfig(**CONFIGS[name]); G = perturbed(cfg)
    wp = torch.randn(3, cfg.layout.n_latent, cfg.style_dim)
    with torch.no_grad():
        out = G.synthesis(wp, noise_mode='const')
        ref = reference_synthesis(G, cfg.layout.expand(wp), G.render.make_noise('const'))
    for a, b, what in zip([out.image, out.seg, out.seg_coarse, out.depths], ref, ['image', 'seg', 'seg_coarse', 'depths']):
        assert a.shape == b.shape and (a - b).abs().max() < 1e-4, f'{name}: {what}'
    assert out.image.shape == (3, 3, cfg.size, cfg.size) and out.seg.shape == (3, cfg.n_classes, cfg.size, cfg.size)
    D = DualBranchDiscriminator(cfg)
    assert D(out.image, out.seg).shape == (3, 1) and D(out.image).shape == (3, 1)

@pytest.mark.parametrize('name', CONFIGS)
def test_official_state_dict_round_trip(name):
    cfg = ModelConfig(**CONFIGS[name]); G = perturbed(cfg, 1)
    off = generator_ours_to_official(G.state_dict(), cfg)
    sd, problems = generator_official_to_ours(off, cfg)
    G2 = load_into(Generator(cfg), sd, name, problems)
    for k, v in G.state_dict().items(): assert torch.equal(v, G2.state_dict()[k]), k
    if cfg.max_channels == 512:  # shape inference works on official channel tables
        assert infer_official_config(off, **{k: getattr(cfg, k) for k in ('base_layers', 'depth_layers', 'residual_refine', 'transparent_classes')}) == cfg

def test_official_shape_inference():
    for size in (256, 512):
        cfg = ModelConfig(size=size)
        off = generator_ours_to_official(Generator(cfg).state_dict(), cfg)
        with pytest.warns(UserWarning): assert infer_official_config(off) == cfg

def test_path_length_double_backward():
    "Path-length regularisation: d/dtheta of |J^T y| needs the double backward through the whole generator."
    cfg = ModelConfig(**CONFIGS['coarse64-cm2']); G = perturbed(cfg).train()
    codes = G.layout.expand(torch.randn(2, cfg.layout.n_latent, cfg.style_dim)).requires_grad_(True)
    img = G.synthesis(codes).image
    y = torch.randn_like(img) / cfg.size
    (g,) = torch.autograd.grad((img * y).sum(), codes, create_graph=True)
    g.pow(2).sum(2).mean(1).sqrt().mean().backward()
    assert G.local.weight.grad.abs().sum() > 0 and G.render.convs[0].weight.grad.abs().sum() > 0
    assert G.mapping.layers[0].weight.grad is None  # codes were given: the mapping is not in the graph
