"""supernet.nas: decisions traced from a user's Linen module, exact extraction, counts, errors."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.own_cnn import Net  # the own-model example CNN: one copy for the example and its tests
from supernet import nas
from supernet.evaluation import calibrate_variables
from supernet.nas.check import xla_flops
from supernet.nas.space import grouped_network


@pytest.fixture(scope="module")
def setup():
    x = jax.random.normal(jax.random.key(0), (16, 8, 8, 1))
    space = nas.space(Net(), x[:2])
    model = space.supernet()
    largest = space.largest()
    variables = jax.jit(lambda k: model.init(k, x, largest, train=False))(jax.random.key(1))
    return space, model, variables, x


def test_decisions_named_by_path_in_call_order(setup):
    space = setup[0]
    assert space.decision_names == (
        "op", "stage.depth", "stage.block1.conv.features", "stage.block1.conv.kernel_size",
        "stage.block2.conv.features", "stage.block2.conv.kernel_size", "stage.block3.conv.features",
        "stage.block3.conv.kernel_size", "skip", "fc.features")
    assert space.num_choices == (3, 3, 2, 2, 2, 2, 2, 2, 2, 2)
    assert space.options[0] == ("Conv(16 3x3)", "Conv(16 1x1)", "MyPool")   # what each candidate computes
    arch = np.asarray([2, 1, 0, 1, 0, 0, 0, 0, 1, 1])
    assert space.to_string(arch).startswith("op=MyPool,") and (space.from_string(space.to_string(arch)) == arch).all()


def test_extracted_network_equals_calibrated_supernet_with_one_compile(setup):
    space, model, variables, x = setup
    traces = []

    @jax.jit
    def calibrated(arch):
        traces.append(1)
        v = calibrate_variables(model, variables, arch, x)
        return v, model.apply(v, x, arch, train=False)

    archs = np.asarray(space.sample(jax.random.key(2), 24))
    for arch in archs:
        v, logits = calibrated(jnp.asarray(arch))
        extracted = space.extract_variables(v, arch)
        standalone = space.standalone(arch).apply(extracted, x, train=False)
        np.testing.assert_allclose(standalone, logits, atol=1e-4)
        counted = sum(leaf.size for leaf in jax.tree_util.tree_leaves(extracted["params"]))
        assert space.params(arch) == counted
    assert len(traces) == 1
    assert "supernet_stats" not in extracted and set(extracted) == {"params", "batch_stats"}


def test_flops_match_xla_cost_analysis(setup):
    """Within 5%: the formulas count convs, dense layers, biases and BN; XLA also counts the ReLUs,
    residual adds, pooling and means. Every layer's output is returned to XLA, so that it keeps (and
    counts) a stage that the skip input leaves unused, as the extracted network holds it."""
    space, _, _, x = setup
    for arch in [space.largest(), space.smallest()] + list(np.asarray(space.sample(jax.random.key(3), 2))):
        network = space.standalone(arch)
        v = jax.eval_shape(lambda: network.init(jax.random.key(0), x[:1]))
        cost = xla_flops(network, v, x[:1])
        assert abs(space.flops(arch) - cost) <= 0.05 * cost, (space.to_string(arch), space.flops(arch), cost)


def test_skipped_blocks_are_canonical_and_extremes(setup):
    space = setup[0]
    a = np.asarray([0, 0, 1, 1, 1, 1, 1, 1, 0, 1])   # depth 1: blocks 2 and 3 are inactive
    assert np.asarray(space.canonical(a)).tolist() == [0, 0, 1, 1, 0, 0, 0, 0, 0, 1]
    many = np.asarray(space.sample(jax.random.key(0), 64))   # numpy in: computed on the host, as jitted
    assert isinstance(space.canonical(many), np.ndarray)
    assert np.array_equal(space.canonical(many), np.asarray(jax.jit(space.canonical)(many)))
    assert space.inactive_decisions(a) == ["stage.block2.conv.features", "stage.block2.conv.kernel_size",
                                           "stage.block3.conv.features", "stage.block3.conv.kernel_size"]
    assert space.inactive_decisions(space.largest()) == []
    assert space.params(space.largest()) > space.params(space.smallest())
    assert space.parameter_free(np.asarray([2, 0, 0, 0, 0, 0, 0, 0, 0, 0]))[0]
    assert not space.parameter_free(space.largest())[0]
    skip, op = space.decision_names.index("skip"), space.decision_names.index("op")
    assert space.largest()[skip] == 1 and space.smallest()[skip] == 0   # the deepest input, the stem
    assert space.parameter_free(space.smallest())[op]                   # the lightest candidate: MyPool


def test_soft_weights_mix_the_options(setup):
    space, model, variables, x = setup
    weights = jnp.asarray(space.option_mask(), jnp.float32)
    weights = weights / weights.sum(1, keepdims=True)
    assert jnp.isfinite(model.apply(variables, x, weights, train=True)).all()


def test_trains_through_the_training_loop(setup):
    import optax
    from supernet import data, training
    from supernet.runtime import Runtime
    from supernet.sharding import make_mesh
    space, model, _, x = setup
    y = jnp.arange(16) % 10
    split = data.Split(np.asarray(x), np.asarray(y))
    state = training.train_supernet(space, model, split, steps=3, batch_size=8, optimizer=optax.adam(1e-3),
                                    key=jax.random.key(0), runtime=Runtime(make_mesh(), progress=False))
    assert int(state.step) == 3


def _trace(body, x=None):
    class M(nn.Module):
        @nn.compact
        def __call__(self, x):
            return body(x)
    return nas.space(M(), jnp.zeros((1, 4, 4, 2)) if x is None else x)


@pytest.mark.parametrize("body, message", [
    (lambda x: nas.Conv(features=(2, 4))(x), "nas.Conv at .* has no name: pass name="),
    (lambda x: nas.Choice([nn.relu, nn.tanh])(x), "nas.Choice at .* has no name"),
    (lambda x: nas.Repeat(lambda: nn.Conv(2, (1, 1)), depth=(1, 2))(x), "nas.Repeat at .* has no name"),
    (lambda x: nas.InputChoice()([x, x]), "nas.InputChoice at .* has no name"),
    (lambda x: nas.Dense(features=(2, 4), name="a")(nas.Conv(features=(2, 3), name="a")(x)), "duplicate module name 'a'"),
    (lambda x: nas.Choice([nn.Conv(2, (3, 3), name="c2"), nn.Conv(3, (3, 3), name="c3")], name="op")(x),
     r"'op': candidates return different shapes, Conv\(c2\) -> \(1, 4, 4, 2\) and Conv\(c3\) -> \(1, 4, 4, 3\)"),
    (lambda x: nas.Repeat(lambda: nn.Conv(3, (3, 3)), depth=(0, 1), name="r")(x), "changes the shape"),
    (lambda x: nas.InputChoice(n_chosen=3, name="skip")([x, x]), "n_chosen=3 but 2 inputs"),
    (lambda x: nas.Conv(features=(), name="c")(x), "features has no option"),
    (lambda x: nas.DepthwiseConv(kernel_size=(3, 4), name="d")(x), "nas.DepthwiseConv d: kernel sizes must be odd"),
    (lambda x: nas.Choice([nn.relu, nn.tanh], labels=["a"], name="op")(x), r"labels \['a'\] must name each of the 2"),
    (lambda x: nas.Choice([nn.relu, nn.tanh], labels=["a", "b=c"], name="op")(x), "label 'b=c' is empty or holds"),
    (lambda x: nas.InputChoice(name="skip")([x, nn.Conv(3, (1, 1))(x)]),
     r"nas.InputChoice skip: inputs of shapes \[\(1, 4, 4, 2\), \(1, 4, 4, 3\)\], but reduction='sum' needs one shape"),
    (lambda x: nas.Conv(features=(2, 4), kernel_size=(3, 3), name="c")(x),
     r"kernel_size=\(3, 3\) repeats an option; a tuple lists the options to search"),
    (lambda x: nas.Dense(features=(0, 4), name="d")(x), "features 0 is not a whole number >= 1"),
    (lambda x: nas.Conv(features=nas.Value("w", (4.5, 8)), name="c")(x), r"features 4.5 is not a whole number"),
    (lambda x: nas.Repeat(lambda: nn.relu, depth=(-1, 2), name="r")(x), "depth -1 is not a whole number >= 0"),
    (lambda x: nas.Choice([nn.Dense, nn.relu], name="op")(x), "candidate Dense is a class; pass a module instance"),
    (lambda x: nn.Dropout(0.1, deterministic=False)(nas.Conv(features=(2, 4), name="c")(x)),
     r"nn.Dropout\(rate=0.1\) at Dropout_0 drops with train=False: .* pass deterministic=not train"),
    (lambda x: nn.Dropout(0.1, rng_collection="noise")(nas.Conv(features=(2, 4), name="c")(x), deterministic=True),
     r"nn.Dropout\(rate=0.1\) at Dropout_0 draws from the PRNG stream 'noise': training passes only 'dropout'"),
    (lambda x: nn.MultiHeadDotProductAttention(num_heads=1, dropout_rate=0.1, deterministic=True)(
        nas.Dense(features=(2, 4), name="d")(x)),
     r"MultiHeadDotProductAttention\(dropout_rate=0.1\) at MultiHeadDotProductAttention_0 takes deterministic in "
     r"its constructor: pass it in the call"),
    (lambda x: nas.MultiHeadAttention(num_heads=(0, 2), head_dim=2, name="a")(x), "num_heads 0 is not a whole number"),
    (lambda x: nas.Embed(0, features=(2, 4), name="e")(jnp.arange(3)), "num_embeddings 0 is not a whole number >= 1"),
    (lambda x: nas.LayerNorm(features=(4, 8), name="n")(x),
     r"nas.LayerNorm n: input of shape \(1, 4, 4, 2\) has 2 channels, its features give 8; pass the width"),
    (lambda x: {"logits": nas.Conv(features=(2, 4), name="c")(x)},
     "M returns a dict, but a searched module must return one array of outputs"),
])
def test_errors_are_one_line(body, message):
    with pytest.raises(ValueError, match=message) as err:
        _trace(body)
    assert "\n" not in str(err.value)


def test_a_missing_call_argument_names_how_to_pass_it():
    class Scaled(nn.Module):
        @nn.compact
        def __call__(self, x, scale):
            return scale * nas.Dense(features=(2, 4), name="d")(x)
    with pytest.raises(ValueError, match=r"Scaled needs call arguments besides the input .*'scale'.*nas.space\(module, "
                                         r"x\[:2\], name=value\)"):
        nas.space(Scaled(), jnp.zeros((1, 4)))
    assert nas.space(Scaled(), jnp.zeros((1, 4)), scale=2.0).decision_names == ("d.features",)


def test_a_module_class_instead_of_an_instance_is_refused():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nas.Dense(features=(2, 4), name="d")(x)
    with pytest.raises(ValueError, match=r"nas.space takes a module instance, Net\(\), not the class"):
        nas.space(Net, jnp.zeros((1, 4)))


def test_concatenated_inputs_may_differ_in_the_last_axis():
    space = _trace(lambda x: nas.InputChoice(n_chosen=2, reduction="concat", name="cat")(
        [x, nn.Conv(3, (1, 1))(x), x]))
    assert space.options == (("0+1", "0+2", "1+2"),)


def test_choice_labels_name_the_options():
    space = _trace(lambda x: nas.Choice([nn.relu, nn.tanh], labels=("rectify", "squash"), name="act")(x))
    assert space.options == (("rectify", "squash"),) and space.from_string("act=squash").tolist() == [1]


def test_a_single_option_is_fixed_not_a_decision():
    def body(x):
        x = nas.Conv(features=(4,), kernel_size=(3, 5), name="c")(x)
        x = nas.Choice([nn.relu], name="act")(x)
        x = nas.Repeat(lambda: nn.Conv(5, (1, 1)), depth=(2,), name="r")(x)   # fixed depth: may change shape
        return nas.InputChoice(n_chosen=2, name="both")([x, x])
    with pytest.warns(UserWarning, match="single option") as caught:
        space = _trace(body)
    assert len(caught) == 4 and all("\n" not in str(w.message) for w in caught)
    assert space.decision_names == ("c.kernel_size",)
    x, model = jnp.ones((1, 4, 4, 2)), space.supernet()
    variables = jax.eval_shape(lambda: model.init(jax.random.key(0), x, space.largest()))
    assert variables["params"]["net"]["c"]["kernel"].shape == (5, 5, 2, 4)
    assert jax.eval_shape(lambda v: model.apply(v, x, space.largest()), variables).shape == (1, 4, 4, 5)


def test_primitives_outside_a_space_or_a_space_inside_jit_are_refused():
    with pytest.raises(RuntimeError, match="outside a search space") as err:
        jax.jit(lambda x: nas.Dense(features=(2, 4), name="d").init(jax.random.key(0), x))(jnp.zeros((1, 3)))
    assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="nas.space was called inside a jitted function"):
        jax.jit(lambda x: nas.space(Net(), x) and x)(jnp.zeros((2, 8, 8, 1)))


def test_primitive_outside_a_space_and_bad_architectures(setup):
    with pytest.raises(RuntimeError, match="outside a search space"):
        nas.Conv(features=(2, 4), name="c").init(jax.random.key(0), jnp.zeros((1, 4, 4, 2)))
    space, model, variables, x = setup
    for method in (space.standalone, space.params, space.flops):
        with pytest.raises(ValueError, match="an architecture has 10 decisions .* got an array of shape \\(3,\\)"):
            method(np.zeros(3, np.int32))
        with pytest.raises(ValueError, match="decision 0 \\('op'\\) has choice 5, valid range is 0..2") as err:
            method(np.full(space.num_decisions, 5))
        assert "\n" not in str(err.value)
    with pytest.raises(ValueError, match="must be int32\\[10\\]"):
        model.apply(variables, x, np.zeros(3, np.int32))


class _Block1d(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nas.Conv(features=(4, 8), kernel_size=(3, 5), name="conv")(x)
        h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
        return x + nas.Conv(features=x.shape[-1], kernel_size=3, name="proj")(h)


class _Net1d(nn.Module):
    """A 1-D model on (N, L, C): searched widths, kernels (at strides 1 and 2) and depth."""

    @nn.compact
    def __call__(self, x, train=False):
        x = nas.Conv(features=6, kernel_size=(1, 3), strides=2, name="stem")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
        x = nas.Repeat(_Block1d, depth=(1, 2), name="stage")(x, train)
        x = nas.Conv(features=(4, 8), kernel_size=(3, 5), strides=(2,), name="head")(x)
        x = nn.relu(nn.BatchNorm(use_running_average=not train)(x))
        return nn.Dense(3)(nas.Dense(features=(5, 7), name="fc")(x.mean(1)))


def test_one_dimensional_conv_extracts_exactly_and_counts():
    """nas.check on a 1-D model: the extracted network equals the calibrated supernet to 1e-4,
    params are exact, FLOPs within 10% of XLA (ReLUs, adds and the mean weigh more when tiny).
    After the first distinct architectures, counts come from per-layer formulas (no trace)."""
    x = jax.random.normal(jax.random.key(0), (8, 12, 2))
    space = nas.space(_Net1d(), x[:2])
    shapes = jax.eval_shape(lambda: space.supernet().init(jax.random.key(1), x, space.largest()))
    assert shapes["params"]["net"]["head"]["kernel"].shape == (5, 6, 8)
    report = nas.check(space, x, n_random=1, flops_rtol=0.1)
    assert len(report.rows) == 3 and all(row["max_abs_diff"] <= 1e-4 for row in report.rows)
    formula = space.counts.fit()
    assert formula, "the 1-D model's terms are products of one factor per decision"
    for arch in np.random.default_rng(4).integers(0, space.num_choices, (4, space.num_decisions)):
        choices = space._choices(arch)
        assert space.counts.evaluate(formula, choices) == space.counts.totals(space.counts.probe(choices), choices)


class _PlainBlock(nn.Module):   # own_cnn's Block with its decisions written in, plain Flax only
    features: int
    kernel: int

    @nn.compact
    def __call__(self, x, train=False):
        h = nn.Conv(self.features, (self.kernel, self.kernel), name="conv")(x)
        h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
        return x + nn.Conv(x.shape[-1], (3, 3), name="proj")(h)


class _PlainStage(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = _PlainBlock(8, 5, name="block1")(x, train)
        return _PlainBlock(16, 3, name="block2")(x, train)


class _PlainNet(nn.Module):     # the architecture below, as a user would write it by hand
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Conv(16, (3, 3), name="Conv_0")(x)
        x = nn.Conv(16, (1, 1), name="Conv_2")(x)   # op's second candidate keeps its auto-name
        x = _PlainStage(name="stage")(x, train)      # skip=1: the stage's output flows on
        return nn.Dense(10, name="Dense_0")(nn.relu(nn.Dense(32, name="fc")(x.mean((1, 2)))))


def test_extracted_variables_load_into_a_hand_written_plain_flax_network(setup):
    """The guide's promise: the extracted variables, as they are, serve the chosen network written
    with plain layers of the same names, with no supernet.nas module in it."""
    space, model, variables, x = setup
    arch = space.from_string("op=Conv(16 1x1),stage.depth=2,stage.block1.conv.features=8,"
                             "stage.block1.conv.kernel_size=5,stage.block2.conv.features=16,"
                             "stage.block2.conv.kernel_size=3,stage.block3.conv.features=8,"
                             "stage.block3.conv.kernel_size=3,skip=1,fc.features=32")
    calibrated = calibrate_variables(model, variables, jnp.asarray(arch), x)
    extracted = space.extract_variables(calibrated, arch)
    network = space.standalone(arch)
    np.testing.assert_allclose(_PlainNet().apply(extracted, x, train=False),
                               network.apply(extracted, x, train=False), atol=1e-5)


def _modules_called(network, variables, x) -> set:
    """The classes (module.Class) of the modules `network.apply` calls."""
    called = set()

    def spy(next_fun, args, kwargs, context):
        called.add(f"{type(context.module).__module__}.{type(context.module).__name__}")
        return next_fun(*args, **kwargs)

    with nn.intercept_methods(spy):
        network.apply(variables, x, train=False)
    return called


def test_the_extracted_network_is_your_module_with_plain_flax_layers(setup):
    """Every nas primitive becomes the plain Flax layer it stands for, bound where the supernet
    holds its weights: the network is an instance of your class, the modules called are Flax's
    and yours, and a fresh init has the extracted variables' tree, your module's own."""
    space, model, variables, x = setup
    for arch in np.asarray(space.sample(jax.random.key(5), 6)):
        network = space.standalone(arch)
        extracted = space.extract_variables(calibrate_variables(model, variables, jnp.asarray(arch), x), arch)
        called = _modules_called(network, extracted, x)
        assert isinstance(network, Net) and type(network).__name__ == "Net" and network == space.standalone(arch)
        assert not {c for c in called if c.startswith("supernet.")}, called
        assert "flax.linen.linear.Conv" in called and "experiments.own_cnn.Net" in called
        fresh = network.init(jax.random.key(0), x)
        assert jax.tree.map(jnp.shape, fresh) == jax.tree.map(jnp.shape, extracted)
        assert "stage" in fresh["params"] and "net" not in fresh["params"]   # your module's own layout


class _SetupBlock(nn.Module):
    def setup(self):
        self.conv = nas.Conv(features=4, kernel_size=(1, 3))

    def __call__(self, x):
        return x + self.conv(x)


class _SetupStyle(nn.Module):   # primitives assigned in setup(): Flax names them when assigned
    def setup(self):
        self.conv = nas.Conv(features=(4, 8), kernel_size=(3, 5))
        self.fit = nas.Conv(features=4, kernel_size=1)
        self.op = nas.Choice([nn.Conv(4, (3, 3)), nn.Conv(4, (1, 1)), nn.relu])
        self.stage = nas.Repeat(_SetupBlock, depth=(1, 2))
        self.skip = nas.InputChoice(n_chosen=1)
        self.fc = nas.Dense(features=(6, 12))
        self.head = nn.Dense(3)

    def __call__(self, x, train=False):
        h = self.op(self.fit(self.conv(x)))
        h = self.skip([h, self.stage(h)])
        return self.head(self.fc(h.mean((1, 2))))


def test_primitives_built_in_setup_are_extracted_exactly_as_plain_layers():
    """Flax names a setup() attribute only when it is assigned; then the extracted network's
    attribute becomes the plain layer, and its outputs equal the supernet's."""
    x = jax.random.normal(jax.random.key(0), (4, 8, 8, 2))
    space = nas.space(_SetupStyle(), x[:2])
    assert space.decision_names == ("conv.features", "conv.kernel_size", "op", "stage.depth", "stage.block1.conv.kernel_size",
                                    "stage.block2.conv.kernel_size", "skip", "fc.features")
    model = space.supernet()
    variables = model.init(jax.random.key(1), x, space.largest())
    for arch in np.asarray(space.sample(jax.random.key(2), 6)):
        calibrated = calibrate_variables(model, variables, jnp.asarray(arch), x)
        extracted, network = space.extract_variables(calibrated, arch), space.standalone(arch)
        np.testing.assert_allclose(network.apply(extracted, x), model.apply(calibrated, x, arch), atol=1e-5)
        assert not {c for c in _modules_called(network, extracted, x) if c.startswith("supernet.")}


def test_layers_and_drawing_follow_the_module_structure(setup, tmp_path):
    """result.draw() of a module of yours draws its layers as extracted: the chosen candidate under
    its Choice, only the chosen blocks, each conv with its chosen kernel and width."""
    from supernet import plots
    space = setup[0]
    arch = space.from_string("op=Conv(16 1x1),stage.depth=2,stage.block1.conv.features=8,"
                             "stage.block1.conv.kernel_size=5,stage.block2.conv.features=16,"
                             "stage.block2.conv.kernel_size=3,stage.block3.conv.features=8,"
                             "stage.block3.conv.kernel_size=3,skip=1,fc.features=32")
    layers = space.layers(arch)
    top = [(name, text) for depth, name, text in layers if depth == 1]
    assert top == [("Conv_0", "Conv 3x3 -> 16"), ("op", "Choice Conv(16 1x1) -> 16"), ("stage", "Repeat depth 2 -> 16"),
                   ("skip", "InputChoice inputs 1 -> 16"), ("fc", "Dense -> 32"), ("Dense_0", "Dense -> 10")]
    assert (2, "Conv_2", "Conv 1x1 -> 16") in layers                     # op's chosen candidate
    assert [name for depth, name, _ in layers if depth == 2][1:] == ["block1", "block2"]   # not block3
    assert (3, "conv", "Conv 5x5 -> 8") in layers
    assert plots.architecture(space, arch, str(tmp_path / "a.png")) and (tmp_path / "a.png").stat().st_size > 0


class _Attending(nn.Module):   # a searched number of heads between fixed-width layers
    @nn.compact
    def __call__(self, x, train=False):
        x = nn.Dense(16)(x)
        h = nas.Choice([nn.MultiHeadDotProductAttention(num_heads=2, name="h2"),
                        nn.MultiHeadDotProductAttention(num_heads=4, name="h4")], name="heads")(x)
        h = nas.Dense(features=(8, 24), name="mlp")(h)
        return nn.Dense(3)(h.mean(1))


def test_attention_scores_are_counted_within_one_percent_of_xla():
    x = jnp.zeros((2, 12, 8))
    space = nas.space(_Attending(), x)
    for arch in (space.largest(), space.smallest(), np.asarray([1, 0])):
        network = space.standalone(arch)
        cost = xla_flops(network, jax.eval_shape(lambda: network.init(jax.random.key(0), x[:1])), x[:1])
        assert abs(space.flops(arch) - cost) <= 0.01 * cost, (space.to_string(arch), space.flops(arch), cost)


class _Wide(nn.Module):        # a candidate with a decision of its own
    @nn.compact
    def __call__(self, x, train=False):
        return nas.Dense(features=(8, 16), name="inner")(x)[..., :8]


class _Nested(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        x = nas.Choice([_Wide(name="wide"), nn.Dense(8, name="plain")], name="block")(x)
        return nn.Dense(3)(x)


def test_a_decision_inside_an_unchosen_candidate_is_canonical():
    x = jnp.ones((2, 5))
    space = nas.space(_Nested(), x)
    assert space.decision_names == ("block", "wide.inner.features")
    assert np.asarray(space.canonical(np.asarray([[1, 1], [0, 1], [1, 0]]))).tolist() == [[1, 0], [0, 1], [1, 0]]
    everything = np.asarray([[b, f] for b in range(2) for f in range(2)])
    assert len(np.unique(np.asarray(space.canonical(everything)), axis=0)) == 3   # plain, wide 8, wide 16
    assert space.params(np.asarray([1, 0])) == space.params(np.asarray([1, 1]))
    assert space.inactive_decisions(np.asarray([1, 1])) == ["wide.inner.features"]   # plain chosen
    assert space.inactive_decisions(np.asarray([0, 1])) == []
    nas.check(space)   # raises if a count or the extraction is wrong


class _InvertedResidual(nn.Module):   # a MobileNet block: searched expansion width and depthwise kernel
    @nn.compact
    def __call__(self, x, train=False):
        h = nas.Conv(features=(8, 16), kernel_size=1, name="expand")(x)
        h = nn.relu6(nn.BatchNorm(use_running_average=not train)(h))
        h = nas.DepthwiseConv(kernel_size=(3, 5, 7), strides=2, name="depthwise")(h)
        h = nn.relu6(nn.BatchNorm(use_running_average=not train)(h))
        return nn.Dense(10)(nas.Conv(features=8, kernel_size=1, name="project")(h).mean((1, 2)))


def test_depthwise_kernel_is_searched_extracted_exactly_and_counted():
    x = jax.random.normal(jax.random.key(0), (16, 9, 9, 3))
    space = nas.space(_InvertedResidual(), x[:2])
    assert space.decision_names == ("expand.features", "depthwise.kernel_size")
    report = nas.check(space, x[:8], n_random=4)   # extraction, params, FLOPs vs XLA
    assert len(report.rows) == 4 and max(r["max_abs_diff"] for r in report.rows) < 1e-4   # 4 distinct of the 6 drawn
    supernet_vars = jax.jit(space.supernet().init, static_argnames="train")(jax.random.key(1), x, space.largest(),
                                                                            train=False)
    xla = {}
    for k in (3, 7):   # only the depthwise layer differs: its count must match XLA's exactly
        arch = space.from_string(f"expand.features=16,depthwise.kernel_size={k}")
        grouped = grouped_network(space.standalone(arch))   # padding taps left out, as `flops` does
        xla[k] = xla_flops(grouped, space.extract_variables(supernet_vars, arch), x[:1])
        xla[k] -= space.flops(arch)
    assert xla[3] == xla[7]
    arch = space.from_string("expand.features=8,depthwise.kernel_size=5")
    params = space.extract_variables(supernet_vars, arch)["params"]
    assert params["depthwise"]["kernel"].shape == (5, 5, 1, 8)   # the chosen kernel on the chosen width


def test_depthwise_policy_is_taken_when_the_space_is_built():
    from supernet import backend
    x = jax.random.normal(jax.random.key(0), (4, 9, 9, 3))
    shifted = nas.space(_InvertedResidual(), x[:2])
    backend.configure(depthwise="grouped")
    try:
        grouped = nas.space(_InvertedResidual(), x[:2])
    finally:
        backend.configure()
    assert not shifted.supernet().grouped and grouped.supernet().grouped
    assert type(grouped.standalone(grouped.largest())).nas_fixed.grouped
    arch = grouped.largest()
    variables = jax.jit(shifted.standalone(arch).init, static_argnames="train")(jax.random.key(1), x, train=False)
    np.testing.assert_allclose(grouped.standalone(arch).apply(variables, x), shifted.standalone(arch).apply(variables, x),
                               atol=1e-5)
    # extracted, a grouped policy gives Flax's grouped nn.Conv; the CPU's slices the same variables
    # summed over shifted inputs: no nas module either way
    for network in (grouped.standalone(arch), shifted.standalone(arch)):
        assert not {c for c in _modules_called(network, variables, x) if c.startswith("supernet.")}


class _SharedWidth(nn.Module):
    """One width multiplier for every layer; each block's hidden width follows it and its own ratio;
    a stage whose first block changes the channels and stride."""

    @nn.compact
    def __call__(self, x, train=False):
        width = nas.Value("width", (0.5, 1.0))
        x = nas.Conv(features=width.map(lambda m: int(8 * m)), kernel_size=3, name="stem")(x)

        def block(i):
            ratio = nas.Value(f"ratio{i + 1}", (1, 2))
            hidden = nas.derive(lambda m, r: int(16 * m) * r, width, ratio)
            return _RatioBlock(hidden, width, stride=2 if i == 0 else 1)

        x = nas.Repeat(block, depth=nas.Value("depth", (1, 2)), name="stage")(x, train)
        return nn.Dense(3)(x.mean((1, 2)))


class _RatioBlock(nn.Module):
    hidden: object
    width: object
    stride: int = 1

    @nn.compact
    def __call__(self, x, train=False):
        h = nas.Conv(features=self.hidden, kernel_size=1, name="expand")(x)
        h = nn.relu(nn.BatchNorm(use_running_average=not train)(h))
        h = nas.Conv(features=self.width.map(lambda m: int(16 * m)), kernel_size=3, strides=self.stride, name="out")(h)
        return h if self.stride > 1 else x + h


def test_values_share_one_decision_and_derived_widths_follow_two():
    x = jax.random.normal(jax.random.key(0), (8, 8, 8, 2))
    space = nas.space(_SharedWidth(), x[:2])
    assert space.decision_names == ("width", "depth", "ratio1", "ratio2")   # width tied across every layer
    assert space.options[0] == ("0.5", "1") and space.options[1] == ("1", "2")
    assert np.asarray(space.canonical(np.asarray([1, 0, 1, 1]))).tolist() == [1, 0, 1, 0]   # block 2 skipped
    report = nas.check(space, x, n_random=6)   # exact extraction and params, FLOPs vs XLA
    assert max(r["max_abs_diff"] for r in report.rows) < 1e-4
    variables = jax.eval_shape(lambda: space.standalone(space.from_string("width=0.5,depth=2,ratio1=2,ratio2=1"))
                               .init(jax.random.key(0), x[:1]))["params"]
    assert variables["stem"]["kernel"].shape == (3, 3, 2, 4)
    assert variables["stage"]["block1"]["expand"]["kernel"].shape == (1, 1, 4, 16)   # 16 * 0.5 * 2
    assert variables["stage"]["block2"]["expand"]["kernel"].shape == (1, 1, 8, 8)    # 16 * 0.5 * 1


def test_a_value_tied_outside_a_skipped_block_stays_active():
    def body(x):   # first used inside a block that depth 0 skips, then outside it (inputs: 2 channels)
        width = nas.Value("w", (1, 2))
        x = nas.Repeat(lambda: nas.Conv(features=width, kernel_size=1, name="c"), depth=(0, 1), name="r")(x)
        return nas.Conv(features=width, kernel_size=1, name="last")(x)
    space = _trace(body)
    assert space.decision_names == ("r.depth", "w")
    assert np.asarray(space.canonical(np.asarray([0, 1]))).tolist() == [0, 1]
    only_inside = _trace(lambda x: nas.Repeat(lambda: nas.Conv(features=nas.Value("w", (1, 2)), kernel_size=1,
                                                                name="c"), depth=(0, 1), name="r")(x))
    assert np.asarray(only_inside.canonical(np.asarray([0, 1]))).tolist() == [0, 0]


@pytest.mark.parametrize("body, message", [
    (lambda x: nas.Conv(features=nas.Value("a,b", (2, 4)), name="c")(x), "nas.Value name 'a,b'"),
    (lambda x: nas.Conv(features=nas.Value("w", (2, 4), labels=("x", "x")), name="c")(x), "one distinct label"),
    (lambda x: nas.Conv(features=nas.derive(lambda a: a, 3), name="c")(x), "nas.derive takes a function and"),
    (lambda x: nas.Repeat(lambda: nn.relu, depth=nas.Value("d", (1, 2)).map(lambda d: d), name="r")(x),
     "depth must be an int, a tuple or a nas.Value"),
    (lambda x: nas.Dense(features=nas.Value("w", (2, 4)), name="b")(nas.Conv(features=nas.Value("w", (2, 3)),
                                                                              name="a")(x)),
     "duplicate decision name 'w' with different options"),
])
def test_value_errors_are_one_line(body, message):
    with pytest.raises(ValueError, match=message) as err:
        _trace(body)
    assert "\n" not in str(err.value)


class _WithDropout(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
        h = nn.relu(nas.Dense(features=(8, 16), name="fc")(x.reshape(len(x), 4, -1)))
        h = nn.MultiHeadDotProductAttention(num_heads=2, dropout_rate=0.5)(h, deterministic=not train)
        return nn.Dense(10)(nn.Dropout(0.5, deterministic=not train)(h.mean(1)))


def test_dropout_draws_its_masks_from_the_step_key_and_is_off_in_evaluation():
    import optax
    from supernet import data, retrain, training
    from supernet.runtime import Runtime
    from supernet.sharding import make_mesh
    x = jax.random.normal(jax.random.key(0), (8, 4, 4, 1))
    y = jnp.arange(8) % 10
    space = nas.space(_WithDropout(), x[:2])
    model, arch = space.supernet(), jnp.asarray(space.largest())
    params = training.init_params(space, model, jax.random.key(1), x.shape[1:])
    weights = training.one_hot(space, arch)
    train_out = lambda rng: training.apply_train(model, {"params": params}, x, weights, dropout_rng=rng)
    evaluated = model.apply({"params": params}, x, weights, train=False)
    np.testing.assert_array_equal(train_out(jax.random.key(2)), train_out(jax.random.key(2)))
    assert not np.allclose(train_out(jax.random.key(2)), train_out(jax.random.key(3)))
    np.testing.assert_allclose(train_out(None), evaluated, atol=1e-6)   # no key: dropout off

    step = training.make_train_step(space, model, optax.sgd(0.0))   # the weights stay: losses compare
    state = lambda: training.create_state(space, model, optax.sgd(0.0), jax.random.key(1), x.shape[1:])  # donated
    loss = lambda key: float(step(state(), x, y, arch[None], key)[1]["loss"])
    assert loss(jax.random.key(2)) == loss(jax.random.key(2)) != loss(None)   # masks from the run's key

    runtime, split = Runtime(make_mesh(), progress=False), data.Split(np.asarray(x), np.asarray(y))
    trained = [training.train_supernet(space, model, split, steps=2, batch_size=4, optimizer=optax.sgd(0.1),
                                       key=jax.random.key(k), runtime=runtime).params for k in (0, 0)]
    jax.tree.map(np.testing.assert_array_equal, *trained)   # the masks come from the run's key

    network = space.standalone(np.asarray(arch))
    extracted = space.extract_variables(calibrate_variables(model, {"params": params}, arch, x), np.asarray(arch))
    np.testing.assert_allclose(network.apply(extracted, x, train=False), evaluated, atol=1e-5)
    step = retrain.make_standalone_step(network, optax.sgd(0.1))
    carry = lambda: (jax.tree.map(jnp.array, extracted["params"]), {}, optax.sgd(0.1).init(extracted["params"]))
    losses = [float(step(carry(), x, y, rng)[1]) for rng in (jax.random.key(2), jax.random.key(2), None)]
    assert losses[0] == losses[1] != losses[2]


def test_sparse_path_runs_the_chosen_branches_and_equals_the_masked_one(setup):
    """A path (one-hot rows) under the CPU's `nas_path="sparse"` runs only the chosen candidates,
    blocks and kernel sizes (`lax.switch`, `lax.cond`; convolutions in them take forward-layout
    gradients): the same outputs and gradients as the masked supernet up to rounding, one compile;
    the mixed (DARTS) supernet takes the masked path, and so does the "masked" policy."""
    from supernet import backend
    space, model, variables, x = setup
    assert model.sparse   # the CPU default, taken when the space was built
    masked = model.clone(sparse=False)
    traces = []

    @jax.jit
    def both(weights):
        traces.append(1)
        loss = lambda m, p: m.apply({"params": p}, x, weights, train=True).sum()
        return [(m.apply(variables, x, weights, train=True), jax.grad(lambda p: loss(m, p))(variables["params"]))
                for m in (model, masked)]

    for arch in np.asarray(space.sample(jax.random.key(4), 8)):   # one-hot rows, as the training step passes
        (sparse_out, sparse_grad), (masked_out, masked_grad) = both(jax.nn.one_hot(arch, max(space.num_choices)))
        np.testing.assert_allclose(sparse_out, masked_out, atol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(sparse_grad), jax.tree_util.tree_leaves(masked_grad)):
            np.testing.assert_allclose(a, b, atol=1e-4)
    assert len(traces) == 1
    jaxpr = str(jax.make_jaxpr(lambda a: model.apply(variables, x, a, train=True))(jnp.asarray(space.largest())))
    assert jaxpr.count("cond[") >= 5 and "custom_vjp_call" in jaxpr   # op, two blocks, three kernel sizes
    assert "cond[" not in str(jax.make_jaxpr(lambda a: masked.apply(variables, x, a, train=True))(
        jnp.asarray(space.largest())))
    assert not space.supernet(mixed=True).sparse
    backend.configure(nas_path="masked")
    try:
        assert not nas.space(Net(), x[:2]).supernet().sparse
    finally:
        backend.configure()


def test_sparse_path_with_shared_and_derived_widths_equals_the_masked_one():
    """Widths tied by a Value and derived from two (16 * 0.5 * 2 and 16 * 1 * 1 are one width): the
    sparse convs switch over the distinct (kernel, width) pairs and match the masked supernet."""
    x = jax.random.normal(jax.random.key(0), (8, 8, 8, 2))
    space = nas.space(_SharedWidth(), x[:2])
    model = space.supernet()
    masked = model.clone(sparse=False)
    params = jax.jit(lambda k: model.init(k, x, space.largest(), train=False))(jax.random.key(1))["params"]
    for arch in np.asarray(space.sample(jax.random.key(2), 6)):
        weights = jax.nn.one_hot(arch, max(space.num_choices))
        outs = [jax.value_and_grad(lambda p: m.apply({"params": p}, x, weights, train=True).sum())(params)
                for m in (model, masked)]
        np.testing.assert_allclose(outs[0][0], outs[1][0], rtol=1e-5)
        for a, b in zip(jax.tree_util.tree_leaves(outs[0][1]), jax.tree_util.tree_leaves(outs[1][1])):
            np.testing.assert_allclose(a, b, atol=1e-4)


@pytest.mark.parametrize("convs, intercepted", [
    ((nn.Conv(4, (3, 3)), nn.Conv(4, (1, 1), padding=[(0, 0), (0, 0)])), True),
    ((nn.Conv(4, (3, 3), strides=2), nn.Conv(4, (1, 1), strides=2)), False),
])
def test_your_convs_inside_a_sparse_choice_take_forward_layout_gradients_where_they_can(convs, intercepted):
    """`nn.Conv` of stride 1 with SAME padding runs as `layers.conv_in_branch` inside the sparse
    path's conditionals (a custom_vjp); others run as written. Both equal the masked supernet."""
    def body(x):
        return nas.Choice([c.clone() for c in convs], name="op")(x)
    x = jax.random.normal(jax.random.key(0), (2, 6, 6, 3))
    space = _trace(body, x[:1])
    model = space.supernet()
    variables = model.init(jax.random.key(1), x, space.largest())
    weights = jax.nn.one_hot(np.asarray([0]), 2)
    jaxpr = str(jax.make_jaxpr(lambda w: model.apply(variables, x, w, train=True))(weights))
    assert ("custom_vjp_call" in jaxpr) == intercepted and "cond[" in jaxpr
    grads = [jax.grad(lambda v: m.apply(v, x, weights, train=True).sum())(variables)
             for m in (model, model.clone(sparse=False))]
    for a, b in zip(jax.tree_util.tree_leaves(grads[0]), jax.tree_util.tree_leaves(grads[1])):
        np.testing.assert_allclose(a, b, atol=1e-4)


class _Encoder(nn.Module):   # two attention blocks, each with its own searched head count, causal
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(8, name="embed")(x)
        mask = nn.make_causal_mask(x[..., 0])
        for i in range(2):
            attention = nas.MultiHeadAttention(num_heads=(1, 2, 4), head_dim=4, name=f"attn{i}")
            x = x + attention(nn.LayerNorm(name=f"ln{i}")(x), mask=mask)
        return nn.Dense(3, name="head")(x.mean(1))


class _PlainEncoder(nn.Module):   # _Encoder at attn0.num_heads=2, attn1.num_heads=1, written by hand
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(8, name="embed")(x)
        mask = nn.make_causal_mask(x[..., 0])
        for i, heads in enumerate((2, 1)):
            attention = nn.MultiHeadDotProductAttention(num_heads=heads, qkv_features=4 * heads, name=f"attn{i}")
            x = x + attention(nn.LayerNorm(name=f"ln{i}")(x), mask=mask)
        return nn.Dense(3, name="head")(x.mean(1))


class _WideEncoder(nn.Module):   # a searched embedding width (and positions) through layer norms, attention, MLP
    @nn.compact
    def __call__(self, x):
        width = nas.Value("width", (8, 12))
        x = nas.Dense(width, name="embed")(x) + nas.Embed(6, width, name="pos")(jnp.arange(x.shape[1]))
        attention = nas.MultiHeadAttention(num_heads=(1, 2), head_dim=4, out_features=width, name="attn")
        x = x + attention(nas.LayerNorm(width, name="ln0")(x))
        x = x + nas.Dense(width, name="mlp")(nn.gelu(nas.LayerNorm(width, name="ln1")(x)))
        return nn.Dense(3, name="head")(nas.LayerNorm(width, name="ln2")(x).mean(1))


class _PlainWideEncoder(nn.Module):   # _WideEncoder at width=8, attn.num_heads=2, written by hand
    @nn.compact
    def __call__(self, x):
        x = nn.Dense(8, name="embed")(x) + nn.Embed(6, 8, name="pos")(jnp.arange(x.shape[1]))
        attention = nn.MultiHeadDotProductAttention(num_heads=2, qkv_features=8, out_features=8, name="attn")
        x = x + attention(nn.LayerNorm(name="ln0")(x))
        x = x + nn.Dense(8, name="mlp")(nn.gelu(nn.LayerNorm(name="ln1")(x)))
        return nn.Dense(3, name="head")(nn.LayerNorm(name="ln2")(x).mean(1))


def test_a_searched_embedding_width_runs_through_layer_norms_and_attention():
    """nas.LayerNorm normalises over the chosen width only, and an attention and a positional
    nas.Embed write a searched width to the residual stream: extraction is exact and the winner
    loads into plain Flax."""
    x = jax.random.normal(jax.random.key(0), (8, 6, 5))
    space = nas.space(_WideEncoder(), x[:2])
    assert space.decision_names == ("width", "attn.num_heads")
    report = nas.check(space, x, n_random=2)   # extraction, params exact, FLOPs vs XLA
    assert max(r["max_abs_diff"] for r in report.rows) < 1e-4
    model = space.supernet()
    variables = model.init(jax.random.key(1), x, space.largest())
    variables = jax.tree_util.tree_map(lambda v: v + 0.1 * jax.random.normal(jax.random.key(2), v.shape), variables)
    arch = space.from_string("width=8,attn.num_heads=2")
    extracted = space.extract_variables(variables, arch)
    assert extracted["params"]["ln0"]["scale"].shape == (8,) and extracted["params"]["attn"]["out"]["kernel"].shape == (2, 4, 8)
    assert extracted["params"]["pos"]["embedding"].shape == (6, 8)
    np.testing.assert_allclose(_PlainWideEncoder().apply(extracted, x), model.apply(variables, x, arch), atol=1e-5)
    assert space.params(arch) == sum(v.size for v in jax.tree_util.tree_leaves(extracted))
    assert "ln0: LayerNorm -> 8" in space.layer_lines(arch)


def test_a_plain_layer_norm_of_a_searched_width_is_refused_naming_the_primitive():
    class Net(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.LayerNorm(name="ln")(nas.Dense(features=(4, 8), name="d")(x))
    x = jnp.ones((2, 3))
    with pytest.raises(ValueError, match=r"nn.LayerNorm at ln normalises a searched width.*use nas.LayerNorm"):
        nas.space(Net(), x).supernet().init(jax.random.key(0), x, jnp.zeros(1, jnp.int32))


class _Stem(nn.Conv):   # a conv whose class name does not say so
    pass


def test_layer_lists_show_a_window_for_convs_by_what_they_are_not_their_names():
    space = _trace(lambda x: nn.Dense(3, name="fc")(_Stem(4, (3, 3), name="stem")(nas.Conv((2, 4), 3, name="c")(x))))
    lines = space.layer_lines(space.largest())
    assert "stem: _Stem 3x3 -> 4" in lines and "fc: Dense -> 3" in lines


def test_largest_and_smallest_take_head_counts_and_output_widths_by_size_not_position():
    space = _trace(lambda x: nas.MultiHeadAttention(num_heads=(4, 1, 2), head_dim=2, out_features=(6, 2, 4),
                                                    name="a")(x[:, 0]))
    assert space.labels(space.largest()) == ["4", "6"] and space.labels(space.smallest()) == ["1", "2"]


def test_attention_heads_share_weights_extract_to_flax_attention_and_count():
    x = jax.random.normal(jax.random.key(0), (8, 6, 5))
    space = nas.space(_Encoder(), x[:2])
    assert space.decision_names == ("attn0.num_heads", "attn1.num_heads") and space.num_choices == (3, 3)
    report = nas.check(space, x, n_random=2)   # extraction to 1e-4, params exact, FLOPs vs XLA
    assert len(report.rows) == 4 and max(r["max_abs_diff"] for r in report.rows) < 1e-4
    assert space.counts.fit(), "each term is a product of one factor per decision"
    model = space.supernet()
    variables = model.init(jax.random.key(1), x, space.largest())
    assert variables["params"]["net"]["attn0"]["query"]["kernel"].shape == (8, 4, 4)   # the largest count's heads
    arch = space.from_string("attn0.num_heads=2,attn1.num_heads=1")
    extracted = space.extract_variables(variables, arch)
    assert extracted["params"]["attn0"]["query"]["kernel"].shape == (8, 2, 4)   # the first two heads
    by_hand = _PlainEncoder().apply(extracted, x)   # the winner's variables load into plain Flax attention
    np.testing.assert_allclose(by_hand, model.apply(variables, x, arch), atol=1e-5)
    assert space.params(arch) == sum(v.size for v in jax.tree_util.tree_leaves(extracted))
    assert "attn0: MultiHeadAttention heads 2 -> 8" in space.layer_lines(arch)
    assert "  query: DenseGeneral -> 4" in space.layer_lines(arch)   # a projection's [8, 2, 4] kernel has no window
    # Soft weights (DARTS' mixed supernet) on the last attention mix its head counts' outputs (what
    # follows it is linear: the residual, the mean, the head).
    weights = jnp.asarray([[0.0, 1.0, 0.0], [0.5, 0.2, 0.3]])
    mixed = sum(weights[1, j] * model.apply(variables, x, jnp.asarray([1, j])) for j in range(3))
    np.testing.assert_allclose(space.supernet(mixed=True).apply(variables, x, weights), mixed, atol=1e-5)
