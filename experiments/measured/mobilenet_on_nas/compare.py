"""Old hand-masked MobileNet supernet vs the nas-based one: same function from the same weights."""
import sys
sys.path.insert(0, "/tmp/old")
import jax, jax.numpy as jnp, numpy as np
import old_mobilenet as old
from supernet import spaces

def rename(tree):
    out = {}
    for k, v in tree.items():
        if k.startswith("stage") and "_block" in k:
            s, b = k.split("_")
            out.setdefault(s, {})[b] = v
        else:
            out[k] = v
    return {"net": out}

for cfg in [dict(input_shape=(16, 16, 3), width_mults=(0.5, 0.75, 1.0)),
            dict(input_shape=(12, 2), stages=((4, 2, 1), (8, 3, 2)), kernel_sizes=(3, 5), expand_ratios=(2, 3),
                 width_mults=(0.5, 1.0), stem_channels=4, head_channels=16, min_depth=1)]:
    new_space = spaces.get("mobilenet", **cfg)
    old_space = old.MobileNetSpace(**cfg)
    assert new_space.decision_names == old_space.decision_names and new_space.options == old_space.options
    x = jax.random.normal(jax.random.key(0), (8, *cfg["input_shape"]))
    old_model = old_space.supernet()
    params = old_model.init(jax.random.key(1), x, old_space.largest(), train=True)["params"]
    params = jax.tree_util.tree_map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(2), p.shape), params)
    new_model = new_space.supernet()
    new_params = rename(params)
    ref = jax.eval_shape(lambda: new_model.init(jax.random.key(1), x, new_space.largest(), train=True))["params"]
    assert jax.tree_util.tree_structure(ref) == jax.tree_util.tree_structure(new_params)
    assert all(a.shape == b.shape for a, b in zip(jax.tree_util.tree_leaves(ref), jax.tree_util.tree_leaves(new_params)))
    archs = np.asarray(new_space.sample(jax.random.key(3), 40))
    worst = 0.0
    for arch in archs:
        a = old_model.apply({"params": params}, x, arch, train=True)
        b = new_model.apply({"params": new_params}, x, arch, train=True)
        worst = max(worst, float(jnp.abs(a - b).max()))
        assert old_space.params(arch) == new_space.params(arch) and old_space.flops(arch) == new_space.flops(arch)
        assert np.array_equal(old_space.canonical(arch), new_space.canonical(arch))
    logits = jax.random.normal(jax.random.key(4), (new_space.num_decisions, max(new_space.num_choices)))
    soft = jax.nn.softmax(jnp.where(new_space.option_mask(), logits, -jnp.inf), axis=-1)
    soft_diff = float(jnp.abs(old_model.apply({"params": params}, x, soft, train=True)
                              - new_model.apply({"params": new_params}, x, soft, train=True)).max())
    print(cfg["input_shape"], "decisions", new_space.num_decisions, "40 archs: max |old - new| logits", worst,
          "soft weights:", soft_diff, "params/flops/canonical equal")
