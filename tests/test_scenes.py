import numpy as np

from dediffusion.data.world.scenes import (BACKGROUNDS, CELLS, COLOURS, SHAPES, SIZES, full_caption, human_caption,
    render, sample_scene, vocabulary_words, web_caption)


def test_scenes_are_deterministic_and_seeds_differ():
    a = [sample_scene(0, i) for i in range(50)]
    assert a == [sample_scene(0, i) for i in range(50)]
    b = [sample_scene(1, i) for i in range(50)]
    assert sum(x == y for x, y in zip(a, b)) < 5
    assert np.array_equal(render(a[3]), render(sample_scene(0, 3)))


def test_scene_contents_are_valid():
    for i in range(200):
        s = sample_scene(3, i)
        assert 1 <= len(s.objects) <= 3
        cells = [o.cell for o in s.objects]
        assert len(set(cells)) == len(cells) and cells == sorted(cells)
        assert s.background in BACKGROUNDS
        assert all(o.shape in SHAPES and o.colour in COLOURS and o.size in SIZES for o in s.objects)


def test_render_draws_objects_in_their_cell():
    s = sample_scene(0, 0)
    img = render(s, 16).astype(int)
    bg = np.array(BACKGROUNDS[s.background])
    for o in s.objects:
        row, col = divmod(o.cell, 2)
        centre = img[row * 8 + 4, col * 8 + 4]
        assert np.abs(centre - np.array(COLOURS[o.colour])).sum() < np.abs(centre - bg).sum()


def test_captions_state_what_they_should():
    s = sample_scene(0, 5)
    human, full = human_caption(s), full_caption(s)
    for o in s.objects:
        assert f"{o.colour} {o.shape}" in human and f"{o.colour} {o.shape}" in full
        assert f"{o.size} {o.colour} {o.shape} at the {CELLS[o.cell]}" in full
    assert s.background in full and "background" not in human
    assert not any(c in human for c in CELLS) and not any(z in human.split() for z in SIZES)


def test_web_captions_mention_each_attribute_about_as_often_as_asked():
    rng = np.random.default_rng(0)
    counts = {"size": 0, "colour": 0, "position": 0, "background": 0}
    n = 400
    words = set(vocabulary_words())
    for i in range(n):
        s = sample_scene(9, i)
        cap = web_caption(s, rng, p_mention=0.5)
        assert set(cap.split()) <= words
        o = s.objects[0]
        counts["size"] += o.size in cap.split()
        counts["colour"] += o.colour in cap.split()
        counts["position"] += CELLS[o.cell] in cap
        counts["background"] += "background" in cap
    for k, c in counts.items():
        assert 0.35 < c / n < 0.75, (k, c / n)
