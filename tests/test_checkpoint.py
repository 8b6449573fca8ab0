"""Our checkpoints round-trip exactly; unsafe pickles are refused without running anything."""
import os, pickle
import pytest
import torch
from semstylegan.checkpoint import (CheckpointError, load_checkpoint, save_checkpoint, generator_ours_to_official,
                                    generator_official_to_ours, discriminator_ours_to_official, load_official)
from semstylegan.generator import Generator, preset
from semstylegan.discriminator import DualBranchDiscriminator

def make_models(seed=0):
    torch.manual_seed(seed)
    cfg = preset('tiny')
    G, D = Generator(cfg).eval(), DualBranchDiscriminator(cfg).eval()
    with torch.no_grad():
        for p in list(G.parameters()) + list(D.parameters()): p.add_(0.05 * torch.randn_like(p))
    return cfg, G, D

@pytest.mark.parametrize('suffix', ['.safetensors', '.pt'])
def test_round_trip(tmp_path, suffix):
    cfg, G, D = make_models()
    p = save_checkpoint(tmp_path / f'ckpt{suffix}', cfg, g_ema=G, d=D)
    m = load_checkpoint(p)
    assert m['config'] == cfg
    z = torch.randn(2, cfg.style_dim)
    with torch.no_grad():
        a, b = G(z, noise_mode='const'), m['g_ema'](z, noise_mode='const')
        assert torch.equal(a.image, b.image) and torch.equal(a.seg, b.seg) and torch.equal(a.depths, b.depths)
        assert torch.equal(D(a.image, a.seg), m['d'](a.image, a.seg))
    assert not list(tmp_path.glob('*.tmp'))  # atomic write leaves no temporary file

def test_official_round_trip(tmp_path):
    "ours -> official file -> ours is the identity, and the official file has the official key set and shapes."
    cfg, G, D = make_models(1)
    off = {'g_ema': generator_ours_to_official(G.state_dict(), cfg), 'd': discriminator_ours_to_official(D.state_dict(), cfg),
           'args': __import__('argparse').Namespace(**cfg.to_official())}
    assert 'local_nets.0.to_feat.upsample.kernel' in off['g_ema'] and 'local_nets.0.to_depth.conv.weight' not in off['g_ema']
    assert off['g_ema']['local_nets.3.linears.2.conv.weight'].shape == (1, cfg.local_channel, cfg.local_channel, 1, 1) == (1, 16, 16, 1, 1)
    p = tmp_path / 'official.pt'; torch.save(off, p)
    m = load_checkpoint(p)
    for k, v in G.state_dict().items(): assert torch.equal(v, m['g_ema'].state_dict()[k]), k
    for k, v in D.state_dict().items(): assert torch.equal(v, m['d'].state_dict()[k]), k

class Evil:
    "Unpickling this would create a file (standing in for arbitrary code)."
    def __init__(self, path): self.path = path
    def __reduce__(self): return (open, (self.path, 'w'))

def test_unsafe_pickle_refused(tmp_path):
    marker = tmp_path / 'pwned'
    p = tmp_path / 'evil.pt'
    torch.save({'g_ema': {'w': torch.zeros(1)}, 'payload': Evil(str(marker))}, p)
    with pytest.raises(CheckpointError, match='refused to load') as e:
        load_checkpoint(p)
    assert str(p) in str(e.value)
    assert not marker.exists()  # nothing in the file ran

def test_missing_and_garbage_files(tmp_path):
    with pytest.raises(CheckpointError, match='no such file'): load_checkpoint(tmp_path / 'none.pt')
    bad = tmp_path / 'bad.pt'; bad.write_bytes(b'not a checkpoint')
    with pytest.raises(CheckpointError, match='bad.pt'): load_checkpoint(bad)
    other = tmp_path / 'other.pt'; torch.save({'model': {'w': torch.zeros(1)}}, other)
    with pytest.raises(CheckpointError, match='neither a semstylegan checkpoint nor an official'): load_checkpoint(other)

def test_safetensors_refuses_non_models(tmp_path):
    cfg, G, _ = make_models()
    with pytest.raises(ValueError, match='use .pt'): save_checkpoint(tmp_path / 'x.safetensors', cfg, g_ema=G, step=3)

def test_official_key_sets_match_reference():
    "Exported official state dicts have exactly the official keys and shapes (reference list from the official code)."
    from conftest import SHARED
    ref_file = SHARED / 'reference' / 'official-state-dict-keys.txt'
    if not ref_file.exists(): pytest.skip(f'{ref_file} not found')
    sections, cur = {}, None
    for line in ref_file.read_text().splitlines():
        if line.startswith('#####'): cur = line.split()[1] + line.split()[2]; sections[cur] = {}
        elif cur and '\t' in line:
            k, shape = line.split('\t'); sections[cur][k] = tuple(int(s) for s in shape.strip('()').split(',') if s.strip())
    cfg = preset('celebamask-256')
    got = {'SemanticGeneratorsize=256': generator_ours_to_official(Generator(cfg).state_dict(), cfg),
           'DualBranchDiscriminatorsize=256': discriminator_ours_to_official(DualBranchDiscriminator(cfg).state_dict(), cfg)}
    for name, sd in got.items():
        assert {k: tuple(v.shape) for k, v in sd.items()} == sections[name], name

def test_saved_files_have_usual_permissions(tmp_path):
    "Atomic writes go through mkstemp (mode 0600); the final file gets the permissions a plain write would give."
    import os, stat
    cfg, G, D = make_models()
    p = save_checkpoint(tmp_path / 'g.safetensors', cfg, g_ema=G)
    umask = os.umask(0); os.umask(umask)
    assert stat.S_IMODE(p.stat().st_mode) == 0o666 & ~umask

LFS_TEXT = 'version https://git-lfs.github.com/spec/v1\noid sha256:4d7a21\nsize 81234567\n'

def _broken_files(tmp_path, suffix):
    "A real checkpoint cut in half, an empty file and a Git LFS pointer, all named `*{suffix}`."
    cfg, G, _ = make_models()
    good = save_checkpoint(tmp_path / f'good{suffix}', cfg, g_ema=G)
    data = good.read_bytes()
    (tmp_path / f'truncated{suffix}').write_bytes(data[:len(data) // 2])
    (tmp_path / f'empty{suffix}').write_bytes(b'')
    (tmp_path / f'pointer{suffix}').write_text(LFS_TEXT)
    return {n: tmp_path / f'{n}{suffix}' for n in ('truncated', 'empty', 'pointer')}

@pytest.mark.parametrize('suffix, truncated', [('.safetensors', 'truncated safetensors file'),
                                               ('.pt', 'truncated or damaged PyTorch file')])
def test_broken_weight_files_say_what_they_are(tmp_path, suffix, truncated):
    expected = {'truncated': truncated, 'empty': 'empty file (0 bytes)', 'pointer': 'run `git lfs pull`'}
    for name, path in _broken_files(tmp_path, suffix).items():
        with pytest.raises(CheckpointError) as e: load_checkpoint(path)
        assert str(e.value).startswith(f'{path}: ') and expected[name] in str(e.value), str(e.value)

def test_misnamed_weight_files_say_what_they_are(tmp_path):
    cfg, G, _ = make_models()
    pickled = tmp_path / 'pickled.safetensors'
    torch.save({'format': 'semstylegan', 'config': cfg.to_dict(), 'g_ema': G.state_dict()}, pickled)
    with pytest.raises(CheckpointError, match=r'pickled\.safetensors: a PyTorch \(pickle\) file .* rename it to NAME\.pt'):
        load_checkpoint(pickled)
    noise = tmp_path / 'noise.pt'; noise.write_bytes(bytes(range(7, 256)) * 4)
    with pytest.raises(CheckpointError, match=r'noise\.pt: not a PyTorch file \(it starts with'): load_checkpoint(noise)

def test_non_finite_weights_refused(tmp_path):
    "A diverged run's weights would sample black images: refused, counting the bad values of the model named."
    cfg, G, D = make_models()
    with torch.no_grad():
        G.render.convs[0].weight.view(-1)[:5] = float('nan')
        G.mapping.layers[0].weight.view(-1)[:2] = float('inf')
    p = save_checkpoint(tmp_path / 'diverged.safetensors', cfg, g_ema=G, d=D)
    with pytest.raises(CheckpointError) as e: load_checkpoint(p)
    msg = str(e.value)
    assert msg.startswith(f"{p} ['g_ema']: 7 of ") and 'NaN or infinite' in msg and 'diverged' in msg and 'earlier checkpoint' in msg
    off = {'g_ema': generator_ours_to_official(G.state_dict(), cfg), 'args': __import__('argparse').Namespace(**cfg.to_official())}
    torch.save(off, tmp_path / 'official.pt')
    with pytest.raises(CheckpointError, match=r"official\.pt: .*\['g_ema'\]: 7 of .* NaN or infinite"):
        load_checkpoint(tmp_path / 'official.pt')
    assert load_checkpoint(p, which=('d',))['d'] is not None     # only the models asked for are checked

def test_checkpoint_without_config_names_file_and_fix(tmp_path):
    cfg, G, _ = make_models()
    p = tmp_path / 'noconfig.pt'
    torch.save({'format': 'semstylegan', 'g_ema': G.state_dict()}, p)
    with pytest.raises(CheckpointError, match=r"noconfig\.pt: a semstylegan checkpoint without its 'config' entry .*save_checkpoint"):
        load_checkpoint(p)
