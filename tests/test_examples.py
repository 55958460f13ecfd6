"""The example scripts in experiments/ run end to end at tiny sizes."""

from experiments import own_cnn


def test_own_cnn_searches_a_users_module_and_counts_the_winner_exactly():
    found = own_cnn.main("tiny", progress=False)
    assert found["params"] == found["params_counted_in_the_retrained_variables"]
    assert 0.0 <= found["best_accuracy"] <= 1.0 and found["evaluated"] == 4 and found["flops"] > 0
    assert {"op", "stage.depth", "stage.block1.conv.features", "stage.block1.conv.kernel_size", "skip",
            "fc.features"} <= set(found["decisions"])
    blocks = [line for line in found["network"] if line.startswith("  block")]   # the stage's blocks
    assert len(blocks) == int(found["best_architecture"]["stage.depth"])   # only the chosen ones
