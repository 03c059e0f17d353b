"""The reader-independent text probe (logistic regression on word n-grams) and the surface statistics."""
from dediffusion.eval.text_probe import attribute_targets, featurise, surface_stats, text_probe
from dediffusion.data.world.batches import scenes
from dediffusion.data.world.scenes import full_caption, human_caption


def test_text_probe_ranks_full_over_human_over_empty_and_reads_what_the_text_states():
    fit, test = scenes(1, 0, 400), scenes(7, 0, 200)
    acc = {name: text_probe([f(s) for s in fit], fit, [f(s) for s in test], test)["all"]
           for name, f in (("full", full_caption), ("human", human_caption), ("empty", lambda s: ""))}
    assert acc["full"] > acc["human"] + 0.1 > acc["empty"] + 0.1
    background_only = text_probe([s.background for s in fit], fit, [s.background for s in test], test)
    assert background_only["background"] == 1.0 and background_only["content"] < 0.6


def test_features_are_binary_ngrams_over_the_fit_vocabulary_and_targets_mark_missing_checks():
    x, vocab = featurise(["red circle red", "blue square"])
    assert set(vocab) == {"red", "circle", "red circle", "circle red", "blue", "square", "blue square"}
    assert x[0, vocab["red"]] == 1 and x[0].sum() == 4 + 1  # 4 n-grams + bias
    x2, _ = featurise(["green circle"], vocab)
    assert x2[0, vocab["circle"]] == 1 and x2[0].sum() == 2  # unseen n-grams are dropped
    s = scenes(1, 0, 20)
    y = attribute_targets(s)
    for i, scene in enumerate(s):
        assert int((y["colour"][i] >= 0).sum()) == len(scene.objects) == int((y["content"][i] > 0).sum())


def test_surface_stats_count_content_words():
    stats = surface_stats(["a red circle at the top", "red red"])
    assert stats["content_word_share"] == 5 / 8 and stats["distinct_text_fraction"] == 1.0 and stats["mean_words"] == 4


def test_surface_stats_read_caption_order_and_repeats():
    # caption pairs: (a,red) (red,circle) human-like, (circle,at) (at,the) (the,top) full; not (left,top), (red,red)
    stats = surface_stats(["a red circle at the top", "red red", "left top"])
    assert stats["caption_pair_share"] == 5 / 7 and stats["repeat_pair_share"] == 1 / 7
