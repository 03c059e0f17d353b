"""Property tests: token ids -> text -> ids, and arbitrary Unicode through the prompt path."""
import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from dediffusion.data.prompts import clean_prompt
from dediffusion.model.tokenizer import clip_tokenizer, decode_ids, word_token_ids
from dediffusion.data.world.scenes import vocabulary_words

TOK = clip_tokenizer()
_VOCAB = {i: t for t, i in TOK.get_vocab().items()}
WHOLE_WORDS = [i for i in word_token_ids(TOK) if _VOCAB[i].endswith("</w>")]  # what a text of words is made of


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(WHOLE_WORDS), min_size=1, max_size=75))
def test_whole_word_ids_text_ids_round_trip(ids):
    assert TOK(decode_ids(TOK, ids), add_special_tokens=False).input_ids == ids


@settings(max_examples=100, deadline=None)
@given(st.lists(st.sampled_from(vocabulary_words()), min_size=1, max_size=20),
       st.lists(st.sampled_from([" ", "  ", "\t", "\n", " \u00a0"]), min_size=20, max_size=20))
def test_world_text_ids_text_round_trip(words, gaps):
    text = "".join(w + g for w, g in zip(words, gaps))
    assert decode_ids(TOK, TOK(text, add_special_tokens=False).input_ids) == " ".join(words)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=200))
def test_any_unicode_cleans_and_tokenizes(text):
    clean = clean_prompt(text)
    assert clean_prompt(clean) == clean  # idempotent
    assert not any(unicodedata.category(c) in ("Cc", "Cs") for c in clean)
    assert clean == clean.strip() and "  " not in clean
    ids = TOK(clean, add_special_tokens=False).input_ids
    assert all(0 <= i < len(TOK) for i in ids) and not set(ids) & set(TOK.all_special_ids)
    decode_ids(TOK, ids)  # never raises
