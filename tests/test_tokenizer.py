import importlib.util
import pathlib
import sysconfig

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dediffusion.model.tokenizer import allowed_ids, clip_tokenizer, decode_ids, word_token_ids
from dediffusion.data.world.scenes import vocabulary_words


def test_vocabulary_is_clip_bpe():
    tok = clip_tokenizer()
    assert len(tok) == 49408 and tok.bos_token_id == 49406 and tok.eos_token_id == 49407
    assert tok.model_max_length == 77


def test_matches_open_clip_reference_tokenizer():
    path = pathlib.Path(sysconfig.get_paths()["purelib"]) / "open_clip" / "tokenizer.py"
    if not path.is_file():
        pytest.skip("open-clip-torch not installed")
    pytest.importorskip("ftfy")
    spec = importlib.util.spec_from_file_location("oc_tok", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    ref = mod.SimpleTokenizer()
    tok = clip_tokenizer()
    for text in ["a large red circle at the top left", "Hello, world! 42 cats", "on a gray background"]:
        assert tok(text, add_special_tokens=False).input_ids == ref.encode(text)


def test_word_vocab_excludes_punctuation_and_specials():
    tok = clip_tokenizer()
    ids = set(word_token_ids(tok))
    assert not ids & set(tok.all_special_ids)
    assert tok.convert_tokens_to_ids(",</w>") not in ids and tok.convert_tokens_to_ids("!</w>") not in ids
    assert tok.convert_tokens_to_ids("red</w>") in ids
    assert 0.85 * 49406 < len(ids) < 0.99 * 49406  # the paper: ~6% punctuation removed


@settings(max_examples=50, deadline=None)
@given(st.lists(st.sampled_from(allowed_ids(clip_tokenizer(), "allow_list", vocabulary_words()).tolist()), min_size=1, max_size=32))
def test_ids_text_ids_round_trip_for_allow_list(ids):
    tok = clip_tokenizer()
    assert tok(decode_ids(tok, ids), add_special_tokens=False).input_ids == ids
