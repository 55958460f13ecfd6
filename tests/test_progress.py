"""Progress bars: a long label (an architecture's string) is cut so that the bar stays on one line."""

from supernet import runtime, training


def test_a_long_progress_label_is_cut_and_a_short_one_kept(capsys):
    label = "retrain " + ",".join(f"blocks.block{i}.mixer=MultiHeadAttention(attention)" for i in range(1, 4))
    state, ran = training.run_loop(lambda state, t: (state + 1, {"loss": 0.0}), 0, steps=3,
                                   runtime=runtime.Runtime(progress=True), desc=label)
    shown = capsys.readouterr().err
    assert (state, ran) == (3, 3)
    assert label[:training.BAR_DESC_CHARS - 3] + "...:" in shown and label not in shown
    assert training.shortened("retrain") == "retrain"
