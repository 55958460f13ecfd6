"""Reinforcement learning over architectures: by default an agent that edits the current
architecture (`policy="edit"`); optionally the NASNet / ENAS controller that samples whole
architectures (`policy="sequence"`).

The edit agent (the default)
----------------------------
"The agent takes actions based on the state (e.g. the current architecture), such as adding or
removing a layer, and adjusts its policy from the feedback (e.g. the performance improvement)."

* State: the current architecture, one-hot decision by decision.
* Action: an edit, "set decision d to option k" for one (d, k) with k not the current choice. In a
  space with a depth decision, an edit of that decision adds or removes layers.
* Policy: `EditPolicy`, a one-hidden-layer MLP from the state to one logit per (decision, option)
  slot, with terms shared by the decisions that offer the same option label (what adding or
  removing an operation is worth anywhere); the current choices are masked out. Its output heads
  start at zero: a uniform policy.
* Reward: the improvement the edit brings, fitness(child) - fitness(current); a failed (NaN)
  evaluation scores as the worst result seen.
* Episodes: the first `num_initial` results of an episode are uniform samples (`ask`'s fill, or
  the zero-cost prior's order); the best of them is the current architecture. The agent then
  edits it; an edit that improves becomes the current architecture. The episode ends, and a fresh
  one begins, once every edit of the current architecture was tried
  (`hill_climb.local_search_over`): it sits at a local optimum.
* Learning: after every `tell`, `updates_per_tell` Adam steps of REINFORCE with a baseline on that
  batch's edits,
      loss = -mean(advantage * log pi(edit | current)) - entropy_weight * mean(entropy of pi(. | current)),
      advantage = clip((reward - baseline) / reward_scale, -advantage_clip, advantage_clip),
  `baseline` a moving average of the rewards (decay `baseline_decay`) and `reward_scale` one of
  |reward - baseline|, so the step does not depend on the fitness's units.
* Acting: `ask` draws edits from the policy without replacement (Gumbel top-k over the edits of
  the current architecture), and its novelty filter skips edits that lead to an evaluated
  architecture: a draw from the policy conditioned on not repeating a query.

What the policy contributes: the order in which an episode tries the edits. It learns which edits
pay in which state (on NAS-Bench-201: which operation to put on which edge, given the others), so
improving edits come early and an episode climbs in fewer queries. With `learning_rate=0` the
policy stays uniform: the same episodes with edits in random order, the ablation in
`experiments/measured/sampler_ablations_rl_ae/`. There the learning buys nothing measurable:
an episode tries most edits of its current architecture anyway, so their order matters little. Chosen on the NAS-Bench-201 table
(mean best `cifar10-val` at 100 queries, tuning seeds 100-119): learning rate 0 84.68, 0.02 84.59,
0.05 84.76, 0.1 84.77, 0.2 84.74; over seeds 120-139, 0.1 84.83; 3 or 5 initial samples per
episode did no better than 10.

The sequence controller (`policy="sequence"`)
---------------------------------------------
The policy is an LSTM that emits the decisions one after another: at step d it reads the embedding
of the choice made at step d-1 (a start token at d = 0) and a per-decision head gives the logits of
decision d's options. Option counts may differ per decision; the heads have exactly as many outputs.

Each `tell` takes `updates_per_tell` Adam steps (optax) on
    loss = -mean(advantage * log pi(arch)) - entropy_weight(t) * mean(entropy of pi along arch)
           - elite_weight * mean(log pi(elite)),
    advantage = clip((fitness - baseline) / reward_scale, -advantage_clip, advantage_clip),
where `baseline` is an exponential moving average of fitness (decay `baseline_decay`) and
`reward_scale` a moving average of |fitness - baseline|, so the step size does not depend on the
objective's units, and the clip keeps one disastrous architecture (NAS-Bench-201 has cells at 10%
accuracy) from dominating an update. Failed (NaN) evaluations get the worst fitness seen.

Two additions use the budget better:
* Priority-queue training (Abolafia et al., "Neural Program Synthesis with Priority Queue
  Training", 2018): `elite` is the `elite_size` best distinct architectures evaluated so far, and the
  policy also maximises their likelihood. REINFORCE alone learns only from the current batch and
  forgets a good architecture found early; the elite term keeps pulling the policy towards the
  best region found, like the cross-entropy method.
* An entropy schedule: the entropy bonus starts at `entropy_weight` and decays linearly to zero
  over the first `entropy_decay_queries` results (explore first, then concentrate; 0 keeps it
  constant).

Chosen on the NAS-Bench-201 table by validation accuracy, on seeds other than the ones reported:
an elite of 10 at weight 1 (mean best validation accuracy 84.13 -> 84.43 at 100 queries, 84.54 ->
84.82 at 300); an elite of 5 or 20, weight 3, learning rate 0.02, or 3 updates per tell with a
decaying entropy bonus (0.01 over 200 queries) did worse, so the schedule is off by default.

The default learning rate is small on purpose: Adam moves every weight by about the learning rate
per step and a logit sums dozens of such moves, so at 0.05 and above the policy collapsed onto a
mediocre architecture within ~20 queries (on NAS-Bench-201, 0.01 did best at 100 and 300 queries).

Local search (`local_search=True`, this policy's default; White et al. 2020): after the first
`num_initial` results, and after each restart, the one-decision neighbours of the best result
since the restart come before the policy's samples (`hill_climb.local_search_pool`); when they are
exhausted (`hill_climb.local_search_over`) the search restarts. `climb_order` orders the neighbours:
"linear" (the default) by `surrogate.fit_linear_surrogate`, a ridge regression of the results on how
often each operation occurs; "policy" the likeliest under the policy first (after RENAS, Chen et
al. CVPR 2019, where a learned controller proposes the mutations of an evolution); "random".
`climb_starts` says where climbs start: "uniform" (its default) from `num_initial` uniform
samples, "policy" from the policy's samples. The neighbours are not the policy's samples, so the
policy-gradient update is off-policy for them: it still raises the likelihood of what beat the
baseline, as the elite term does.

Measured on the NAS-Bench-201 table (mean test accuracy of the returned cell at 100 queries,
tuning seeds 100-299, never the reported ones): climbs ordered and started by the policy 88.80;
linear order with policy starts 88.79; policy order with uniform restarts 88.85; linear order
with uniform restarts 88.88, and with a uniform initial design as well (this policy's defaults)
88.94. The policy concentrates on the best region found, so its samples restart the climb in the
basin it just left. With these defaults the controller therefore proposes nothing while a climb
has a fresh neighbour, and the search makes the same queries as the `local` strategy: the
learning that pays is the linear surrogate's, not the controller's. That is why the edit agent
is the default. `local_search=False` gives the plain controller (88.49 at 100 queries on 40
tuning seeds).

`ask` samples `samples_per_arch` architectures per requested one from the policy and keeps, in
sampling order, those that are feasible and fresh: a draw from the policy conditioned on the
constraints and on not repeating an evaluated architecture.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from strategies import archs as archs_lib
from strategies import buffer, hill_climb, interface, nets

DEFAULT_CAPACITY = 1000


class Controller(nn.Module):
    """An LSTM policy over a sequence of categorical decisions."""
    num_choices: Sequence[int]
    hidden: int = 32

    def setup(self):
        """The LSTM cell and the token embedding of the sequence controller."""
        self.cell = nn.OptimizedLSTMCell(self.hidden)
        # One token per (decision, option), plus the start token.
        self.embed = nn.Embed(int(sum(self.num_choices)) + 1, self.hidden)
        self.heads = [nn.Dense(k, name=f"head{d}") for d, k in enumerate(self.num_choices)]

    def _offsets(self):
        return np.concatenate([[0], np.cumsum(self.num_choices)[:-1]]).astype(np.int32)

    def _unroll(self, n, choose):
        """Runs the decisions in order; choose(d, logits_d) -> int32[n] picks decision d."""
        carry = (jnp.zeros((n, self.hidden)), jnp.zeros((n, self.hidden)))
        tokens = jnp.full((n,), int(sum(self.num_choices)), jnp.int32)
        choices, logits_all = [], []
        for d, offset in enumerate(self._offsets()):
            carry, h = self.cell(carry, self.embed(tokens))
            logits = self.heads[d](h)
            choice = choose(d, logits)
            choices.append(choice)
            logits_all.append(logits)
            tokens = offset + choice
        return jnp.stack(choices, axis=1).astype(jnp.int32), logits_all

    def sample(self, key, n: int):
        """int32[n, D] drawn from the policy (Gumbel-max: one uniform draw for all decisions)."""
        u = jax.random.uniform(key, (len(self.num_choices), n, max(self.num_choices)), minval=1e-7, maxval=1.0)
        gumbel = -jnp.log(-jnp.log(u))
        archs, _ = self._unroll(n, lambda d, logits: jnp.argmax(logits + gumbel[d, :, :logits.shape[-1]], axis=-1))
        return archs

    def __call__(self, archs):
        """Teacher-forced: (log pi(archs) float[n], summed per-decision entropy float[n])."""
        _, logits_all = self._unroll(archs.shape[0], lambda d, logits: archs[:, d])
        log_prob, entropy = 0.0, 0.0
        for d, logits in enumerate(logits_all):
            log_p = jax.nn.log_softmax(logits)
            log_prob = log_prob + jnp.take_along_axis(log_p, archs[:, d:d + 1], axis=1)[:, 0]
            entropy = entropy - jnp.sum(jnp.exp(log_p) * log_p, axis=1)
        return log_prob, entropy


class EditPolicy(nn.Module):
    """The edit agent's policy: the current architecture (one-hot) -> one logit per (decision,
    option) slot, the edit "set that decision to that option".

    A hidden layer reads the state; three zero-initialised heads give each edit's logit as
        slot[d, k] + gain[label(k)] - loss[label(current option of d)]:
    a per-slot term and two terms shared by every decision that offers the same option label (on
    NAS-Bench-201 the operations: what putting a 3x3 convolution on an edge, or taking a pool
    off, is worth). An edit's reward is its improvement, and the shared terms let one edit teach
    the policy about the same change on every other decision, as the linear surrogate's shared
    weights do.
    """
    num_choices: Sequence[int]
    labels: Sequence[int]  # each slot's option label, int in 0..L-1
    hidden: int = 64

    @nn.compact
    def __call__(self, archs):
        x = archs_lib.one_hot(archs, self.num_choices)
        h = nn.relu(nn.Dense(self.hidden, name="hidden")(x))
        labels = jnp.asarray(self.labels, jnp.int32)
        num_labels = int(max(self.labels)) + 1
        slot = nn.Dense(int(sum(self.num_choices)), name="out_slot")(h)
        gain = nn.Dense(num_labels, name="out_gain")(h)[:, labels]
        loss = nn.Dense(num_labels, name="out_loss")(h)[:, labels]
        decision_of_slot = jnp.asarray(np.repeat(np.arange(len(self.num_choices)), self.num_choices))
        group = jax.nn.one_hot(decision_of_slot, len(self.num_choices))  # [slots, D]
        removed = ((x * loss) @ group) @ group.T  # each decision's current option's term, on its slots
        logits = slot + gain - removed
        # An edit must change the architecture: the current choices are not actions (a large
        # finite value, not -inf, keeps the gradient of p * log p free of NaN).
        return jnp.where(x > 0, -1e9, logits)


def slot_labels(space) -> tuple[int, ...]:
    """Each (decision, option) slot's option label as an index into the space's sorted labels."""
    labels = sorted({label for options in space.options for label in options})
    return tuple(labels.index(label) for options in space.options for label in options)


class ReinforceState(NamedTuple):
    """The strategy state: the results told so far, the policy's parameters, its optimiser state,
    the reward baseline and the current episode."""
    history: buffer.History
    params: dict              # the `EditPolicy`'s (policy="edit") or the `Controller`'s ("sequence")
    opt_state: optax.OptState
    baseline: jax.Array       # moving average of the reward
    reward_scale: jax.Array   # moving average of |reward - baseline|
    updates: jax.Array        # how many tells have trained the policy
    restart_at: jax.Array     # int32: the number of results told when the current episode (climb) began


def controller_for(space, state: ReinforceState) -> Controller:
    """The Controller module matching a state's parameters (for inspecting the policy)."""
    hidden = state.params["params"]["embed"]["embedding"].shape[1]
    return Controller(tuple(space.num_choices), hidden)


def log_prob(space, state: ReinforceState, archs) -> jax.Array:
    """log pi(archs) under the state's policy, float32[n]."""
    archs = jnp.asarray(archs, jnp.int32)
    return controller_for(space, state).apply(state.params, archs)[0]


def edit_policy_for(space, state: ReinforceState) -> EditPolicy:
    """The EditPolicy module matching a state's parameters (policy="edit")."""
    return EditPolicy(tuple(space.num_choices), slot_labels(space), state.params["params"]["hidden"]["kernel"].shape[1])


def edit_probabilities(space, state: ReinforceState, archs) -> jax.Array:
    """pi(edit | arch) for each architecture: float32[n, sum(num_choices)], one probability per
    (decision, option) slot, 0 on the current choices (policy="edit")."""
    logits = edit_policy_for(space, state).apply(state.params, jnp.asarray(archs, jnp.int32))
    return jax.nn.softmax(logits, axis=-1)


def _edit_slots(children, parent, num_choices):
    """The (decision, option) slot each child changed relative to `parent`, int32[n], and whether
    the child is one edit of it (exactly one decision differs), bool[n]."""
    diff = archs_lib.one_hot(children, num_choices) - archs_lib.one_hot(parent[None], num_choices)
    return jnp.argmax(diff, axis=-1).astype(jnp.int32), jnp.sum(jnp.abs(diff), axis=-1) == 2


def _best_before(history: buffer.History, start, end):
    """The best result among results number start..end-1: (int32[D], fitness), failed ones worst."""
    index = buffer.result_index(history)
    counted = buffer.valid_mask(history) & (index >= start) & (index < end)
    fitness = buffer.filled_fitness(history)
    slot = jnp.argmax(jnp.where(counted, fitness, -jnp.inf))
    return history.archs[slot], fitness[slot]


def entropy_weight_at(count, entropy_weight: float, entropy_decay_queries: int):
    """The entropy bonus after `count` results: linear decay to 0 over `entropy_decay_queries`."""
    if entropy_decay_queries <= 0:
        return jnp.asarray(entropy_weight, jnp.float32)
    return entropy_weight * jnp.clip(1.0 - count / entropy_decay_queries, 0.0, 1.0)


# Per-policy defaults of the options that both policies have (None in `make_core`).
DEFAULTS = {"edit": {"hidden": 64, "learning_rate": 0.1, "entropy_weight": 1e-3, "updates_per_tell": 1},
            "sequence": {"hidden": 32, "learning_rate": 0.01, "entropy_weight": 1e-3, "updates_per_tell": 1}}


def make_core(space, capacity: int, policy: str = "edit", hidden: int | None = None,
              learning_rate: float | None = None, entropy_weight: float | None = None,
              baseline_decay: float = 0.9, updates_per_tell: int | None = None, advantage_clip: float = 2.0,
              num_initial: int = 10, entropy_decay_queries: int = 0, samples_per_arch: int = 16,
              elite_size: int = 10, elite_weight: float = 1.0, local_search: bool = True,
              climb_order: str = "linear", climb_starts: str = "uniform") -> interface.Core:
    """The reinforce core for `interface.build`.

    Args:
      space, capacity: the search space; the history's capacity.
      policy: "edit" (the default), the agent that edits the current architecture, or "sequence",
        the controller that samples whole architectures (module docstring).
      hidden, learning_rate, entropy_weight, updates_per_tell: the policy network's width, Adam's
        step, the entropy bonus and Adam steps per `tell`; None takes the policy's `DEFAULTS`.
        `learning_rate=0` keeps the initial policy (uniform, for "edit"): no learning.
      baseline_decay, advantage_clip: the reward baseline's moving-average decay; the advantage clip
        (0: none).
      num_initial: uniform samples that start the search and each episode (climb).
      entropy_decay_queries, samples_per_arch, elite_size, elite_weight, local_search, climb_order,
        climb_starts: options of policy="sequence" only (module docstring).
    Returns:
      an `interface.Core`.
    """
    if policy not in DEFAULTS:
        raise ValueError(f"reinforce: policy must be 'edit' or 'sequence', got {policy!r}.")
    chosen = {"hidden": hidden, "learning_rate": learning_rate, "entropy_weight": entropy_weight,
              "updates_per_tell": updates_per_tell}
    chosen = {k: DEFAULTS[policy][k] if v is None else v for k, v in chosen.items()}
    if not 0.0 <= baseline_decay < 1.0:
        raise ValueError(f"reinforce: baseline_decay must be in [0, 1), got {baseline_decay}.")
    if num_initial < 1:
        raise ValueError(f"reinforce: num_initial must be at least 1, got {num_initial}.")
    if chosen["learning_rate"] < 0 or chosen["updates_per_tell"] < 1:
        raise ValueError(f"reinforce: need learning_rate >= 0 and updates_per_tell >= 1, got "
                         f"{chosen['learning_rate']} and {chosen['updates_per_tell']}.")
    if policy == "edit":
        return _edit_core(space, capacity, baseline_decay=baseline_decay, advantage_clip=advantage_clip,
                          num_initial=num_initial, **chosen)
    return _sequence_core(space, capacity, baseline_decay=baseline_decay, advantage_clip=advantage_clip,
                          num_initial=num_initial, entropy_decay_queries=entropy_decay_queries,
                          samples_per_arch=samples_per_arch, elite_size=elite_size, elite_weight=elite_weight,
                          local_search=local_search, climb_order=climb_order, climb_starts=climb_starts, **chosen)


def _edit_core(space, capacity, hidden, learning_rate, entropy_weight, baseline_decay, updates_per_tell,
               advantage_clip, num_initial) -> interface.Core:
    """The edit agent (module docstring)."""
    policy = EditPolicy(tuple(space.num_choices), slot_labels(space), hidden)
    optimizer = optax.adam(learning_rate)

    def init(key):
        params = nets.init_params(policy, key, jnp.zeros((1, space.num_decisions), jnp.int32))
        # A zero output layer: the first episode's edits come in uniformly random order.
        params = jax.tree_util.tree_map_with_path(
            lambda path, p: jnp.zeros_like(p) if "out" in jax.tree_util.keystr(path) else p, params)
        return ReinforceState(history=buffer.empty_history(space.num_decisions, capacity), params=params,
                              opt_state=optimizer.init(params), baseline=jnp.zeros(()),
                              reward_scale=jnp.ones(()), updates=jnp.zeros((), jnp.int32),
                              restart_at=jnp.zeros((), jnp.int32))

    def propose(key, state, n):
        del n  # every edit of the current architecture; `ask` keeps the first n fresh ones
        k_climb, k_gumbel = jax.random.split(key)
        current = buffer.best_since(state.history, state.restart_at)
        logits = policy.apply(state.params, current[None])[0]

        def order(children):  # Gumbel top-k: sampling edits from the policy without replacement
            slots, _ = _edit_slots(children, current, space.num_choices)
            u = jax.random.uniform(k_gumbel, slots.shape, minval=1e-7, maxval=1.0)
            return logits[slots] - jnp.log(-jnp.log(u))

        return hill_climb.local_search_pool(k_climb, state.history, state.restart_at, space.num_choices,
                                            num_initial, order)

    def loss_fn(params, current, slots, advantage, is_edit):
        log_p = jax.nn.log_softmax(policy.apply(params, current[None])[0])
        taken = jnp.sum(jnp.where(is_edit, advantage * log_p[slots], 0.0)) / jnp.maximum(jnp.sum(is_edit), 1)
        entropy = -jnp.sum(jnp.exp(log_p) * log_p)
        return -taken - entropy_weight * entropy

    def learn(state, archs, fitness):
        history, n = state.history, archs.shape[0]
        before = history.count - n
        # The architecture these were edits of: the episode's best before this batch.
        current, current_fitness = _best_before(history, state.restart_at, before)
        slots, one_edit = _edit_slots(archs, current, space.num_choices)
        is_edit = one_edit & (before - state.restart_at >= num_initial)
        worst = jnp.min(jnp.where(buffer.valid_mask(history), buffer.filled_fitness(history), jnp.inf))
        reward = jnp.where(jnp.isfinite(fitness), fitness, worst) - current_fitness
        count = jnp.maximum(jnp.sum(is_edit), 1)
        batch_mean = jnp.sum(jnp.where(is_edit, reward, 0.0)) / count
        first = state.updates == 0
        # The first edits set the baseline and scale, so the policy does not chase the raw units.
        baseline = jnp.where(first, batch_mean, state.baseline)
        spread = jnp.sum(jnp.where(is_edit, jnp.abs(reward - baseline), 0.0)) / count
        scale = jnp.where(first, jnp.where(spread > 0, spread, 1.0), state.reward_scale)
        advantage = (reward - baseline) / jnp.maximum(scale, 1e-8)
        if advantage_clip > 0:
            advantage = jnp.clip(advantage, -advantage_clip, advantage_clip)

        def step(carry, _):
            params, opt_state = carry
            grads = jax.grad(loss_fn)(params, current, slots, advantage, is_edit)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(step, (state.params, state.opt_state), None, length=updates_per_tell)
        any_edit = jnp.any(is_edit)
        keep = lambda new, old: jax.tree.map(lambda a, b: jnp.where(any_edit, a, b), new, old)
        new_baseline = baseline_decay * baseline + (1 - baseline_decay) * batch_mean
        new_scale = baseline_decay * scale + (1 - baseline_decay) * jnp.maximum(spread, 1e-8)
        return state._replace(params=keep(params, state.params), opt_state=keep(opt_state, state.opt_state),
                              baseline=jnp.where(any_edit, new_baseline, state.baseline),
                              reward_scale=jnp.where(any_edit, new_scale, state.reward_scale),
                              updates=state.updates + any_edit.astype(jnp.int32),
                              restart_at=hill_climb.restart_when_over(history, state.restart_at, space))

    return interface.Core(init, propose, learn)


def _sequence_core(space, capacity, hidden, learning_rate, entropy_weight, entropy_decay_queries, baseline_decay,
                   updates_per_tell, samples_per_arch, advantage_clip, elite_size, elite_weight, local_search,
                   num_initial, climb_order, climb_starts) -> interface.Core:
    """The sequence controller (module docstring)."""
    if not 0 <= elite_size <= capacity:
        raise ValueError(f"reinforce: elite_size must be in 0..capacity ({capacity}), got {elite_size}.")
    hill_climb.check_climb_order("reinforce", climb_order, "policy")
    if climb_starts not in ("uniform", "policy"):
        raise ValueError(f"reinforce: climb_starts must be 'uniform' or 'policy', got {climb_starts!r}.")
    controller = Controller(tuple(space.num_choices), hidden)
    optimizer = optax.adam(learning_rate)

    def init(key):
        # nets.init_params, not controller.init: besides compiling faster, it avoids Flax's
        # orthogonal recurrent init, whose QR, batched under vmap (one controller per seed),
        # deadlocked jaxlib 0.10's CPU LAPACK on a 2-thread pool.
        params = nets.init_params(controller, key, jnp.zeros((1, space.num_decisions), jnp.int32))
        return ReinforceState(history=buffer.empty_history(space.num_decisions, capacity), params=params,
                              opt_state=optimizer.init(params), baseline=jnp.zeros(()),
                              reward_scale=jnp.ones(()), updates=jnp.zeros((), jnp.int32),
                              restart_at=jnp.zeros((), jnp.int32))

    def propose(key, state, n):
        m = n * samples_per_arch
        priority = jnp.zeros((m,), jnp.float32)
        if not local_search:  # the plain policy, with the same draws as before the local search
            return controller.apply(state.params, key, m, method=Controller.sample), priority
        k_sample, k_climb = jax.random.split(key)
        samples = controller.apply(state.params, k_sample, m, method=Controller.sample)
        by_policy = lambda children: controller.apply(state.params, children)[0]  # log pi
        order = hill_climb.climb_order_function(climb_order, state.history, space, by_policy)
        children, climb = hill_climb.local_search_pool(k_climb, state.history, state.restart_at, space.num_choices,
                                                 num_initial, order)
        if climb_starts == "uniform":  # the initial design (and each restart's) comes from ask's uniform fill
            priority = jnp.where(state.history.count - state.restart_at < num_initial, -jnp.inf, priority)
        return jnp.concatenate([children, samples]), jnp.concatenate([climb, priority])

    def loss_fn(params, archs, advantage, entropy_bonus, elite, elite_present):
        log_prob, entropy = controller.apply(params, jnp.concatenate([archs, elite]))
        n = archs.shape[0]
        elite_log_prob = jnp.sum(jnp.where(elite_present, log_prob[n:], 0.0)) / jnp.maximum(jnp.sum(elite_present), 1)
        return (-jnp.mean(advantage * log_prob[:n]) - entropy_bonus * jnp.mean(entropy[:n])
                - elite_weight * elite_log_prob)

    def learn(state, archs, fitness):
        # Failed evaluations score as the worst result seen (the history already holds this batch).
        worst = jnp.min(jnp.where(buffer.valid_mask(state.history), buffer.filled_fitness(state.history), jnp.inf))
        reward = jnp.where(jnp.isfinite(fitness), fitness, worst)
        first = state.updates == 0
        # The first batch sets the baseline and scale, so the policy does not chase the raw units.
        baseline = jnp.where(first, jnp.mean(reward), state.baseline)
        spread = jnp.mean(jnp.abs(reward - baseline))
        scale = jnp.where(first, jnp.where(spread > 0, spread, 1.0), state.reward_scale)
        advantage = (reward - baseline) / jnp.maximum(scale, 1e-8)
        if advantage_clip > 0:
            advantage = jnp.clip(advantage, -advantage_clip, advantage_clip)

        entropy_bonus = entropy_weight_at(state.history.count, entropy_weight, entropy_decay_queries)
        # Distinct, as in a priority queue: copies of one architecture would outweigh the rest.
        elite, elite_fitness = buffer.distinct_top_k(state, max(elite_size, 1), space.num_choices)
        elite_present = (elite_fitness > -jnp.inf) & (elite_size > 0)

        def step(carry, _):
            params, opt_state = carry
            grads = jax.grad(loss_fn)(params, archs, advantage, entropy_bonus, elite, elite_present)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return (optax.apply_updates(params, updates), opt_state), None

        (params, opt_state), _ = jax.lax.scan(step, (state.params, state.opt_state), None, length=updates_per_tell)
        decay = baseline_decay
        new_baseline = decay * baseline + (1 - decay) * jnp.mean(reward)
        new_scale = decay * scale + (1 - decay) * jnp.maximum(jnp.mean(jnp.abs(reward - baseline)), 1e-8)
        restart_at = (hill_climb.restart_when_over(state.history, state.restart_at, space)
                      if local_search else state.restart_at)
        return state._replace(params=params, opt_state=opt_state, baseline=new_baseline,
                              reward_scale=new_scale, updates=state.updates + 1, restart_at=restart_at)

    return interface.Core(init, propose, learn)
