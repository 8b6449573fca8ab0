"StyleFlow edits (semstylegan.flow): exact inversion, the asked direction, locality by construction, flow files."
import pytest
import torch

pytest.importorskip('zuko', reason='StyleFlow edits need zuko: pip install "semstylegan[flow]"')
from semstylegan import flow as SF
from semstylegan.checkpoint import CheckpointError, load_generator, pretrained_path
from semstylegan.latent import WPlus
from semstylegan.edit import codes_from_seeds, region_classes
from semstylegan.attributes import ATTRIBUTE_REGIONS, load_attribute_classifier

torch.set_num_threads(2)


@pytest.fixture(scope='module')
def G():
    return load_generator(pretrained_path()).eval()


@pytest.fixture(scope='module')
def clf():
    return load_attribute_classifier()


@pytest.fixture(scope='module')
def flow():
    return SF.load_flow()




@pytest.fixture(scope='module')
def faces(G, clf):
    wp = codes_from_seeds(G, range(500, 532))                      # 32 faces the flow was not trained on
    return wp, SF.attribute_probs(G, clf, wp)


def test_flow_inverts_exactly(G, flow, faces):
    wp, src = faces
    c = wp.codes[:, G.layout.index(['mouth', 'hair', 'base'])].reshape(-1, G.cfg.style_dim)
    a = src.repeat_interleave(6, 0)
    with torch.no_grad():
        back = flow.from_latent(flow.to_latent(c, a), a)
    assert (back - c).abs().max() < 1e-4


@pytest.mark.parametrize('attr', ['mouth_open', 'long_hair'])
def test_edit_moves_the_score_both_ways_and_leaves_other_generators_bit_identical(G, clf, flow, faces, attr):
    wp, src = faces
    region, j = ATTRIBUTE_REGIONS[attr], clf.attrs.index(attr)
    moved = {G.layout.class_index(k) for k in region_classes(G.layout, region)}
    pe = G.embed(None, len(wp), 'cpu', torch.float32)
    with torch.no_grad():
        h0, d0 = G.local(pe, wp.expand())
    change = {}
    for value in (0.0, 1.0):
        e = SF.flow_edit(G, flow, clf, wp, attr, value, region, source=src)
        untouched = [i for i in range(G.layout.n_latent) if i not in G.layout.index(region)]
        assert torch.equal(e.codes[:, untouched], wp.codes[:, untouched])
        change[value] = float((SF.attribute_probs(G, clf, e)[:, j] - src[:, j]).mean())
        with torch.no_grad():
            h1, d1 = G.local(pe, e.expand())
        for k in range(G.cfg.n_classes):
            assert torch.equal(h0[k], h1[k]) == (k not in moved), (attr, value, k)
            if k not in moved:
                assert torch.equal(d0[:, k], d1[:, k]), (attr, value, k)
    assert change[0.0] < 0 < change[1.0], change            # measured: mouth_open -0.09 / +0.8, long_hair -0.4 / +0.5


def test_all_codes_edit_moves_every_slot(G, clf, flow, faces):
    wp, src = faces
    four = WPlus(wp.codes[:4], wp.layout)
    e = SF.flow_edit(G, flow, clf, four, 'long_hair', 1.0, source=src[:4])
    assert (e.codes != wp.codes[:4]).any(-1).all()
    with pytest.raises(KeyError, match="'beard' is not an attribute of the flow"):
        SF.flow_edit(G, flow, clf, wp, 'beard', 1.0, 'hair', source=src)
    other = load_attribute_classifier()
    other.attrs = other.attrs[::-1]                                # probabilities in another order: refused
    with pytest.raises(ValueError, match='the classifier gives earrings, hat'):
        SF.flow_edit(G, flow, other, four, 'long_hair', 1.0, 'hair')


def test_train_save_load_round_trip(tmp_path, one_thread):
    "A toy attribute that shifts the first coordinate: the trained flow moves codes by about that shift."
    g = torch.Generator().manual_seed(0)
    on = (torch.rand(2000, generator=g) < 0.5).float()[:, None]
    w = torch.randn(2000, 3, generator=g)
    w[:, 0] += 3 * on[:, 0]
    f, nll = SF.train_flow(w, on, ['on'], steps=300, hidden=(16, 16), transforms=2)
    assert nll < 1.55             # given the attribute 1.419 nats/dim (unit Gaussians); a Gaussian without it 1.615
    with torch.no_grad():
        moved = f.from_latent(f.to_latent(w[:200], on[:200]), torch.ones(200, 1))
    assert 2.0 < float((moved - w[:200])[on[:200, 0] == 0, 0].mean()) < 4.0
    path = SF.save_flow(f, tmp_path / 'f.safetensors', note='toy')
    back = SF.load_flow(path)
    assert back.attrs == ('on',) and back.info['note'] == 'toy' and back.info['steps'] == 300
    assert back.hyper == f.hyper
    with torch.no_grad():
        assert torch.equal(back.log_prob(w[:16], on[:16]), f.log_prob(w[:16], on[:16]))


def test_flow_file_errors_name_the_file(tmp_path, G, clf):
    with pytest.raises(FileNotFoundError, match=r'missing\.safetensors: no such file \(expected a StyleFlow file\)'):
        SF.load_flow(tmp_path / 'missing.safetensors')
    (tmp_path / 'junk.safetensors').write_bytes(b'definitely not a safetensors file')
    with pytest.raises(CheckpointError, match=r'junk\.safetensors: not a safetensors file'):
        SF.load_flow(tmp_path / 'junk.safetensors')
    with pytest.raises(CheckpointError, match='not a StyleFlow file'):
        SF.load_flow(pretrained_path())
    with pytest.raises(FileNotFoundError, match=r'missing\.safetensors'):
        SF.flow_for(G, clf, tmp_path / 'missing.safetensors')


def test_flow_for_uses_the_shipped_flow_only_where_it_fits(G, clf, flow):
    assert SF.flow_path().stat().st_size < 1_000_000
    assert SF.flow_for(G, clf).info['source'] == 'shipped'
    other = load_generator(pretrained_path('tiny-toon-full')).eval()
    assert 'another generator' in SF.flow_fits(flow, other, clf)
    small = load_attribute_classifier()
    small.attrs = ('mouth_open',)
    assert 'attributes' in SF.flow_fits(flow, G, small)


def test_cli_styleflow_edit(tmp_path, capsys):
    "`semstylegan edit --method styleflow` uses the shipped flow for the shipped model; a missing --flow file is a usage error."
    from semstylegan.cli import main
    args = ['edit', '--method', 'styleflow', '--attr', 'mouth_open', '--seeds', '0', '--values', '0', '1']
    assert main(args + ['--out', str(tmp_path), '-q']) == 0
    rec = torch.load(tmp_path / 'direction_mouth_open.pt', weights_only=False)
    assert rec['method'] == 'styleflow' and rec['flow'] == 'shipped' and rec['values'] == [0, 1]
    assert (tmp_path / 'edit_mouth_open.png').is_file()
    with pytest.raises(SystemExit) as e: main(args + ['--flow', str(tmp_path / 'none.safetensors'), '--out', str(tmp_path)])
    assert e.value.code == 2 and f"argument --flow: no such file: {tmp_path / 'none.safetensors'}" in capsys.readouterr().err
