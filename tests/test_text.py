"Text-guided region edits (issue 16): CLIP from local files only, region locality of the edit, clear errors."
import re, socket
import pytest
import torch

pytest.importorskip('open_clip', reason='text edits need open_clip: pip install "semstylegan[text]"')
from semstylegan import text as T
from semstylegan.checkpoint import CheckpointError, load_generator, pretrained_path
from semstylegan.edit import codes_from_seeds, region_slots



pytestmark = pytest.mark.usefixtures('one_thread')   # small batches: one thread is faster


@pytest.fixture(scope='module')
def G():
    return load_generator(pretrained_path()).eval()


@pytest.fixture(scope='module')
def small():
    "A small randomly initialised open_clip CLIP (a ViT tower: a random ResNet one hardly responds), built locally."
    vit = dict(embed_dim=32, vision_cfg=dict(image_size=64, layers=2, width=32, patch_size=8, head_width=16),
               text_cfg=dict(context_length=32, width=32, heads=2, layers=1))
    return T.tiny_clip(T.caption_token_ids(), vit, seed=0)


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*a, **k): raise AssertionError('tried to reach the network')
    monkeypatch.setattr(socket.socket, 'connect', refuse)
    monkeypatch.setattr(socket, 'create_connection', refuse)


def test_missing_clip_file_says_how_to_get_one(tmp_path, monkeypatch, no_network):
    monkeypatch.delenv(T.CLIP_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match=r'no CLIP weights given \(no --clip, \$SEMSTYLEGAN_CLIP unset\)') as e:
        T.load_clip()
    assert 'ViT-B-32' in str(e.value) and 'open_clip_pytorch_model.bin' in str(e.value) and 'nothing is downloaded' in str(e.value)
    monkeypatch.setenv(T.CLIP_ENV, str(tmp_path / 'weights.bin'))
    with pytest.raises(FileNotFoundError, match=re.escape(f'{tmp_path / "weights.bin"}: no such file (expected CLIP weights)')):
        T.load_clip()
    (tmp_path / 'other.bin').write_bytes(b'x')
    with pytest.raises(ValueError, match="needs the name of its open_clip model.*got 'no-such-model'"):
        T.load_clip(tmp_path / 'other.bin', model='no-such-model')


def test_small_clip_file_round_trip_offline(small, tmp_path, no_network):
    T.save_clip(small, tmp_path / 'c.safetensors', note='test')
    again = T.load_clip(tmp_path / 'c.safetensors')
    assert again.info['note'] == 'test' and again.token_ids == small.token_ids
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.allclose(again.encode_image(x), small.encode_image(x), atol=2e-2)   # float16 weights in the file
        assert torch.allclose(again.encode_text('long hair'), small.encode_text('long hair'), atol=2e-2)
    with pytest.raises(ValueError, match='unknown: beard'):
        small.tokenize('long beard')
    (tmp_path / 'bad.safetensors').write_bytes(b'not safetensors')
    with pytest.raises(CheckpointError, match='bad.safetensors: not a safetensors file'):
        T.load_clip(tmp_path / 'bad.safetensors')


def test_text_edit_lowers_clip_loss_and_leaves_other_regions_bit_identical(G, small):
    wp = codes_from_seeds(G, [1, 2])
    pe = G.embed(None, 2, 'cpu', torch.float32)
    for regions, kind in (('hair', 'both'), ('face', 'texture')):
        edited, hist = T.text_edit(G, small, 'long hair', wp, regions, steps=8, kind=kind)
        assert len(hist) == 9 and hist[-1] < hist[0], hist
        changed = (edited.codes != wp.codes).any(-1).any(0).nonzero().flatten().tolist()
        assert changed == G.layout.index(region_slots(G.layout, regions, kind))
        with torch.no_grad():
            (h1, d1), (h2, d2) = [G.local(pe, G.prepare_codes(w)[0]) for w in (wp, edited)]
        moved = {G.layout.class_index(c) for c in T.region_classes(G.layout, regions)}
        for k in range(G.cfg.n_classes):
            if k not in moved:
                assert torch.equal(h1[k], h2[k]), (regions, k)
                if k: assert torch.equal(d1[:, k], d2[:, k]), (regions, k)
        if kind == 'texture': assert torch.equal(d1, d2)          # texture codes never touch the depths
    _, hist = T.text_edit(G, small, 'open mouth', wp, 'mouth', steps=8, negatives=['closed mouth'])
    assert hist[-1] < hist[0]


def test_sequential_edits_and_command(G, small, tmp_path, monkeypatch):
    import argparse
    from semstylegan.cli.edit import add_edit_parsers
    from semstylegan.cli.text import add_text_args, cmd_text_edit
    from semstylegan.edit import load_codes
    states, hists = T.sequential_text_edits(G, small, [('long hair', 'hair'), ('open mouth', 'mouth', ['bald'])],
                                            codes_from_seeds(G, [3]), steps=3)
    assert len(states) == 3 and len(hists) == 2
    assert T.parse_text_edits(['hair+mouth: long hair | bald', 'smiling'], ['mouth']) == [
        ('long hair', ['hair', 'mouth'], ('bald',)), ('smiling', ['mouth'], ())]
    T.save_clip(small, tmp_path / 'c.safetensors')
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest='command')
    add_edit_parsers(sub)
    add_text_args(sub.choices['edit'])
    args = parser.parse_args(['edit', '--seeds', '1', '--text', 'hair: long hair', '--clip', str(tmp_path / 'c.safetensors'),
                              '--text-steps', '2', '--out', str(tmp_path / 'out')])
    args.out.mkdir()
    assert "'long hair' on hair: CLIP" in cmd_text_edit(args, G)
    assert load_codes(args.out / 'text_codes.pt', G).codes.shape == (1, 28, 64) and (args.out / 'text_edit.png').is_file()
    monkeypatch.delenv(T.CLIP_ENV, raising=False)
    args.clip = None
    with pytest.raises(FileNotFoundError, match=r'\$SEMSTYLEGAN_CLIP unset'):
        cmd_text_edit(args, G)


def test_cli_missing_clip_exits_1(tmp_path, monkeypatch, capsys):
    from semstylegan.cli import main, make_parser
    edit = make_parser()._subparsers._group_actions[0].choices['edit']
    if not any('--text' in a.option_strings for a in edit._actions):
        pytest.skip('`semstylegan edit --text` is not wired into the CLI yet')
    monkeypatch.delenv(T.CLIP_ENV, raising=False)
    assert main(['edit', '--seeds', '1', '--text', 'hair: long hair', '--out', str(tmp_path), '-q']) == 1
    err = capsys.readouterr().err
    assert err.startswith('semstylegan edit: error: no CLIP weights given') and 'ViT-B-32' in err
