"""Search in a learned latent space, after NAO (Luo et al., NeurIPS 2018) and arch2vec (Yan et al.,
NeurIPS 2020).

Model (Flax): an encoder maps an architecture's choice sequence (one-hot, decision by decision) to
a latent vector z; a decoder maps z back to one categorical distribution per decision, with exactly
as many outputs as that decision has options, so the decoded argmax is always a valid architecture;
a predictor head maps z to (standardised) fitness.

Training, after every `tell`: `train_steps` Adam steps, warm-started from the previous ones, each
on `batch_size` evaluated architectures drawn from the history and `num_unlabeled` fresh uniform
samples (fixed shapes: the cost per `tell` does not grow with the history), of
    reconstruction cross-entropy on both (arch2vec's point: the latent space should cover the
    whole space, not only the few evaluated points)
  + `predictor_weight` * squared error of the predicted (standardised) fitness on the evaluated ones
  + `latent_weight` * |z|^2 (keeps the latent space compact, so step sizes mean something).

Proposals (NAO's move, decoded within a trust region): the `num_incumbents` best architectures
of the current episode are encoded, and each code is moved by `ascent_steps` normalised gradient
steps of size `step_size` on the predicted fitness. The decoder, read at the end of each path,
says which options the moved code prefers: with `proposal_order="edits"` (the default) the
candidates are each incumbent's one-decision edits, ranked by log p(new option) - log p(current
option) under that decoding, the best incumbent's first. A trust region of one decision, as in
the bayesian strategy: a free decode of a moved code tends to jump several decisions at once and
land on a worse cell. `ask`'s filter drops evaluated candidates, so everything proposed is fresh.
Other orders: "path", every point along the paths (and along `noisy_starts` jittered copies of
each start) decoded by argmax, the best incumbent's nearest first; "predicted", those decodes
ranked by the predictor (the plain NAO pool).

Episodes (`restarts=True`, the default): the first `num_initial` proposals, and those after each
restart, are uniform samples; an episode ends once every one-decision edit of its best result was
evaluated (`hill_climb.local_search_over`): the latent model has nothing fresh left to suggest
there.

What the model contributes: the order of the proposals, from the predictor's gradient read
through the decoder; its predictor and encoder see how often each option label occurs
(`reinforce.slot_labels`; on NAS-Bench-201, each operation), and the whole network reads and
writes canonical forms (`space.canonical`), so architectures that compute one function share one
code and a decision the network does not use does not move it. `moves="random"` moves each code in a
random direction instead: the ablation in `experiments/measured/sampler_ablations_rl_ae/`, where
it did as well, so on NAS-Bench-201 the predictor's guidance buys nothing measurable over the
episodes of one-decision edits themselves.

Measured on the NAS-Bench-201 table (mean best `cifar10-val` / test accuracy of the returned cell
at 100 queries, tuning seeds 100-119): "edits" with episodes 84.67 / 88.83 (89.01 at 300);
"edits" without 84.59 / 88.68; "path" 84.43 / 88.46 with or without episodes; the predictor's
order without episodes 88.47 (40 seeds).

Local search (`local_search=True`, off by default): the one-decision neighbours of the episode's
best come before the latent-space proposals (`hill_climb.local_search_pool`), ordered by
`climb_order`: "linear" by `surrogate.fit_linear_surrogate`, "predictor" by this model's
predicted fitness, or "random". With `proposal_order="predicted"` this is the earlier default:
the latent proposals are then taken only when a climb has no fresh neighbour left, which on
NAS-Bench-201 is almost never, and the search makes the same queries as the `local` strategy.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from strategies import archs as archs_lib
from strategies import buffer, hill_climb, interface, nets
from strategies.reinforce import slot_labels

DEFAULT_CAPACITY = 1000


class ArchAutoencoder(nn.Module):
    """Encoder (architecture one-hot, and option-label counts, -> latent float[L]), decoder (latent
    -> per-decision logits) and predictor (latent -> fitness)."""
    num_choices: Sequence[int]
    latent: int = 16
    hidden: int = 64
    labels: Sequence[int] = ()  # each slot's option label; the encoder also reads the label counts

    def setup(self):
        """The encoder, decoder and predictor layers."""
        self.encoder = [nn.Dense(self.hidden), nn.Dense(self.hidden), nn.Dense(self.latent)]
        self.decoder = [nn.Dense(self.hidden), nn.Dense(self.hidden)]
        self.heads = [nn.Dense(k, name=f"head{d}") for d, k in enumerate(self.num_choices)]
        self.predictor = [nn.Dense(self.hidden), nn.Dense(1)]

    def encode(self, archs):
        """int32[n, D] architectures -> float[n, latent] codes."""
        x = archs_lib.one_hot(archs, self.num_choices)
        if self.labels:  # how often each option label occurs (on NAS-Bench-201: each operation)
            x = jnp.concatenate([x, x @ jax.nn.one_hot(jnp.asarray(self.labels), max(self.labels) + 1)], axis=-1)
        for layer in self.encoder[:-1]:
            x = nn.relu(layer(x))
        return self.encoder[-1](x)

    def decode_logits(self, z):
        """A list with one float[n, num_choices[d]] logits array per decision."""
        x = z
        for layer in self.decoder:
            x = nn.relu(layer(x))
        return [head(x) for head in self.heads]

    def decode(self, z):
        """float[n, latent] codes -> int32[n, D], each decision's most likely option."""
        return jnp.stack([jnp.argmax(l, axis=-1) for l in self.decode_logits(z)], axis=1).astype(jnp.int32)

    def predict(self, z):
        """float[n, latent] codes -> float[n] predicted fitness."""
        x = nn.relu(self.predictor[0](z))
        return self.predictor[1](x)[:, 0]

    def __call__(self, archs):
        z = self.encode(archs)
        return z, self.decode_logits(z), self.predict(z)


class AutoencoderState(NamedTuple):
    """The strategy state: the results told so far, the model's parameters and optimiser state,
    its random key, the predictor targets' standardisation and where the current episode began."""
    history: buffer.History
    params: dict
    opt_state: optax.OptState
    rng: jax.Array        # raw key data; training draws its unlabeled samples from it
    y_mean: jax.Array     # standardisation of the predictor's targets
    y_std: jax.Array
    restart_at: jax.Array  # int32: the number of results told when the current local search began


def model_for(space, state: AutoencoderState) -> ArchAutoencoder:
    """The module matching a state's parameters (for inspecting the model)."""
    params = state.params["params"]
    return ArchAutoencoder(tuple(space.num_choices), latent=params["encoder_2"]["kernel"].shape[1],
                           hidden=params["encoder_0"]["kernel"].shape[1], labels=slot_labels(space))


def reconstruct(space, state: AutoencoderState, archs) -> jax.Array:
    """decode(encode(archs)): int32[n, D]."""
    model = model_for(space, state)
    z = model.apply(state.params, jnp.asarray(archs, jnp.int32), method=ArchAutoencoder.encode)
    return model.apply(state.params, z, method=ArchAutoencoder.decode)


def predicted_fitness(space, state: AutoencoderState, archs) -> jax.Array:
    """The predictor head's fitness for each architecture, in fitness units."""
    model = model_for(space, state)
    z = model.apply(state.params, jnp.asarray(archs, jnp.int32), method=ArchAutoencoder.encode)
    return state.y_mean + state.y_std * model.apply(state.params, z, method=ArchAutoencoder.predict)


def _raw_key(key):
    """uint32 key data (serialisable) from a typed key or a raw `PRNGKey`."""
    return jax.random.key_data(key) if jnp.issubdtype(key.dtype, jax.dtypes.prng_key) else key


def _reconstruction_loss(logits_list, archs):
    loss = 0.0
    for d, logits in enumerate(logits_list):
        loss = loss + optax.softmax_cross_entropy_with_integer_labels(logits, archs[:, d])
    return loss


def make_core(space, capacity: int, latent: int = 16, hidden: int = 64, learning_rate: float = 3e-3,
              train_steps: int = 20, batch_size: int = 64, num_unlabeled: int = 64,
              predictor_weight: float = 1.0, latent_weight: float = 1e-3, num_initial: int = 10,
              num_incumbents: int = 10, ascent_steps: int = 10, step_size: float = 0.5,
              noisy_starts: int = 3, noise_scale: float = 0.5, proposal_order: str = "edits",
              moves: str = "gradient", restarts: bool = True, local_search: bool = False,
              climb_order: str = "linear") -> interface.Core:
    """The autoencoder core for `interface.build` (module docstring).

    Args:
      space, capacity: the search space; the history's capacity.
      latent, hidden, learning_rate, train_steps, batch_size, num_unlabeled, predictor_weight,
        latent_weight: the model's sizes and its training after each `tell`.
      num_initial: uniform samples before the latent space proposes.
      num_incumbents, ascent_steps, step_size, noisy_starts, noise_scale: the latent moves: from
        the codes of the best `num_incumbents` and `noisy_starts` jittered copies of each,
        `ascent_steps` steps of length `step_size`.
      proposal_order: "edits" (the default): each incumbent's one-decision edits ranked by how
        much the decoding of its moved code prefers the new option, the best incumbent's first;
        "path": the argmax decodes along the paths, the best incumbent's nearest first;
        "predicted": those decodes ranked by the predicted fitness.
      moves: "gradient" (the default): along the predictor's gradient (NAO); "random": in a random
        direction per path (the ablation: the latent space without the predictor's guidance).
      restarts: episodes: the incumbents are the best since the last restart, and once the best
        one's one-decision edits were all evaluated, a new episode starts from `num_initial`
        uniform samples.
      local_search, climb_order: put the restarted local search (`hill_climb`) in front of the
        latent proposals, its neighbours ordered by `climb_order` (off by default).
    Returns:
      an `interface.Core`.
    """
    if proposal_order not in ("path", "edits", "predicted"):
        raise ValueError(f"autoencoder: proposal_order must be 'path', 'edits' or 'predicted', got {proposal_order!r}.")
    if moves not in ("gradient", "random"):
        raise ValueError(f"autoencoder: moves must be 'gradient' or 'random', got {moves!r}.")
    if batch_size < 1 or num_unlabeled < 0 or train_steps < 0:
        raise ValueError(f"autoencoder: need batch_size >= 1, num_unlabeled >= 0, train_steps >= 0; got "
                         f"{batch_size}, {num_unlabeled}, {train_steps}.")
    if not 1 <= num_incumbents <= capacity:
        raise ValueError(f"autoencoder: num_incumbents must be in 1..capacity ({capacity}), got {num_incumbents}.")
    hill_climb.check_climb_order("autoencoder", climb_order, "predictor")
    model = ArchAutoencoder(tuple(space.num_choices), latent, hidden, slot_labels(space))
    optimizer = optax.adam(learning_rate)

    def init(key):
        k_params, k_rng = jax.random.split(key)
        params = nets.init_params(model, k_params, jnp.zeros((1, space.num_decisions), jnp.int32))
        return AutoencoderState(history=buffer.empty_history(space.num_decisions, capacity), params=params,
                                opt_state=optimizer.init(params), rng=_raw_key(k_rng),
                                y_mean=jnp.zeros(()), y_std=jnp.ones(()), restart_at=jnp.zeros((), jnp.int32))

    # The model reads and writes canonical forms (`space.canonical`): one code per function.
    def encode(params, archs):
        return model.apply(params, space.canonical(archs), method=ArchAutoencoder.encode)

    def decode(params, z):
        return model.apply(params, z, method=ArchAutoencoder.decode)

    def predict(params, z):
        return model.apply(params, z, method=ArchAutoencoder.predict)

    def ascend(params, z, key):
        """NAO's move: `ascent_steps` normalised gradient steps on the predicted fitness (or, with
        moves="random", steps along one random direction per path). float[steps, n, latent]."""
        grad = jax.vmap(jax.grad(lambda one: predict(params, one[None])[0]))
        direction = jax.random.normal(key, z.shape)

        def step(z, _):
            g = grad(z) if moves == "gradient" else direction
            z = z + step_size * g / (jnp.linalg.norm(g, axis=-1, keepdims=True) + 1e-8)
            return z, z

        _, path = jax.lax.scan(step, z, None, length=ascent_steps)
        return path

    def decoded_edits(params, incumbents, path):
        """The one-decision edits of each incumbent, ranked by how much the decoder, at the end of
        the incumbent's latent path, prefers the new option over the current one; the best
        incumbent's edits first. path: float[incumbents * steps, latent], incumbent-major."""
        ends = path.reshape(num_incumbents, ascent_steps, -1)[:, -1]
        log_p = jnp.concatenate([jax.nn.log_softmax(l) for l in model.apply(
            params, ends, method=ArchAutoencoder.decode_logits)], axis=-1)  # [incumbents, slots]
        children = archs_lib.neighbours(incumbents, space.num_choices).reshape(num_incumbents, -1, space.num_decisions)
        new = archs_lib.one_hot(space.canonical(children), space.num_choices)
        old = archs_lib.one_hot(space.canonical(incumbents), space.num_choices)[:, None]
        preference = jnp.sum((new - old) * log_p[:, None], axis=-1)  # log p(new option) - log p(current)
        rank = jnp.arange(num_incumbents, dtype=jnp.float32)[:, None]
        priority = (num_incumbents - rank + jax.nn.sigmoid(preference)) / (num_incumbents + 1.0)
        return children.reshape(-1, space.num_decisions), priority.reshape(-1)

    def propose(key, state, n):
        del n  # the pool is large enough for any batch; `ask` keeps its top n
        episodic = restarts or local_search
        current = state._replace(history=buffer.since(state.history, state.restart_at)) if episodic else state
        incumbents, incumbent_fitness = buffer.distinct_top_k(current, num_incumbents, space.num_choices)
        z0 = encode(state.params, incumbents)
        k_jitter, k_climb, k_moves = jax.random.split(key, 3)
        jitter = noise_scale * jax.random.normal(k_jitter, (noisy_starts,) + z0.shape)
        # Starts [incumbent, copy]: copy 0 is the incumbent's own code, the others jittered.
        starts = jnp.concatenate([z0[:, None], z0[:, None] + jnp.moveaxis(jitter, 0, 1)], axis=1)
        path = ascend(state.params, starts.reshape(-1, z0.shape[-1]), k_moves)  # [step, incumbent * copy, latent]
        path = path.reshape(ascent_steps, num_incumbents, noisy_starts + 1, -1)
        # Candidates in the "path" order: incumbent (best first), step (nearest first), copy.
        path = jnp.moveaxis(path, 0, 1).reshape(-1, z0.shape[-1])
        if proposal_order == "edits":
            candidates, priority = decoded_edits(state.params, incumbents, path[::noisy_starts + 1])
        else:
            candidates = decode(state.params, path)
            if proposal_order == "path":
                priority = 1.0 / (2.0 + jnp.arange(candidates.shape[0], dtype=jnp.float32))
            else:
                priority = jax.nn.sigmoid(predict(state.params, encode(state.params, candidates)))
        # During the initial design nothing is wanted: ask's uniform fill supplies the proposals;
        # nor are moves from an empty incumbent slot (fewer results than incumbents).
        initial = state.history.count - (state.restart_at if episodic else 0) < num_initial
        present = jnp.repeat(incumbent_fitness > -jnp.inf, candidates.shape[0] // num_incumbents)
        priority = jnp.where(initial | ~present, -jnp.inf, priority)  # in (0, 1): below the climb's (1, 2)
        if not local_search:
            return candidates, priority
        by_model = lambda children: predict(state.params, encode(state.params, children))
        order = hill_climb.climb_order_function(climb_order, state.history, space, by_model)
        children, climb = hill_climb.local_search_pool(k_climb, state.history, state.restart_at, space.num_choices,
                                                 num_initial, order)
        return jnp.concatenate([children, candidates]), jnp.concatenate([climb, priority])

    def loss_fn(params, labeled, y, unlabeled):
        archs = space.canonical(jnp.concatenate([labeled, unlabeled]))
        z, logits, prediction = model.apply(params, archs)
        reconstruction = jnp.mean(_reconstruction_loss(logits, archs))
        prediction_error = jnp.mean((prediction[:labeled.shape[0]] - y) ** 2)
        return reconstruction + predictor_weight * prediction_error + latent_weight * jnp.mean(z ** 2)

    def learn(state, archs, fitness):
        del archs, fitness
        history = state.history
        filled, valid = buffer.filled_fitness(history), buffer.valid_mask(history)
        count = jnp.maximum(jnp.sum(valid), 1)
        y_mean = jnp.sum(jnp.where(valid, filled, 0.0)) / count
        y_std = jnp.sqrt(jnp.sum(jnp.where(valid, (filled - y_mean) ** 2, 0.0)) / count)
        y_std = jnp.where(y_std > 0, y_std, 1.0)
        y = (filled - y_mean) / y_std
        key = jax.random.fold_in(jax.random.wrap_key_data(state.rng), history.count)

        def step(carry, step_key):
            params, opt_state = carry
            # One uniform draw for both: rows of the history (its valid slots are the prefix
            # 0..count-1) and the decisions of the unlabeled samples.
            u = jax.random.uniform(step_key, (batch_size + num_unlabeled * space.num_decisions,))
            rows = jnp.minimum(jnp.floor(u[:batch_size] * count), count - 1).astype(jnp.int32)
            unlabeled = archs_lib.from_uniform(u[batch_size:].reshape(num_unlabeled, -1), space.num_choices)
            grads = jax.grad(loss_fn)(params, history.archs[rows], y[rows], unlabeled)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(step, (state.params, state.opt_state),
                                              jax.random.split(key, train_steps))
        restart_at = (hill_climb.restart_when_over(history, state.restart_at, space)
                      if restarts or local_search else state.restart_at)
        return state._replace(params=params, opt_state=opt_state, y_mean=y_mean, y_std=y_std, restart_at=restart_at)

    return interface.Core(init, propose, learn)
