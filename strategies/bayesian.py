"""Bayesian optimisation with a Gaussian process over categorical architecture choices.

Surrogate: an exact GP with a categorical (overlap) kernel
    k(a, b) = s * exp(-hamming(a, b) / (D * lengthscale)),
a product over decisions of "1 if equal, exp(-1/(D*lengthscale)) if not" factors, hence positive
definite for any option counts, read on each architecture's canonical form (`space.canonical`), so
cells that compute one function are one point and a decision the network does not use does not
count as a difference. Its prior mean (`linear_mean=True`, the default) is
`surrogate.fit_linear_surrogate`, a ridge regression on how often each option label occurs (weights
shared by the decisions that offer it, e.g. NAS-Bench-201's operations on all six edges), and the
GP models the standardised residuals: a GP with explicit basis functions (Rasmussen & Williams,
2006, section 2.7), so what one result says about an operation informs every edge. After every
`tell` the lengthscale and the noise ratio are chosen on a small grid by marginal likelihood (the
signal variance `s` has a closed-form maximiser), scored on the best `likelihood_size` results
to keep the grid cheap.

Fixed shapes: the GP is fitted on at most `gp_size` results - all of them while there are fewer,
then the best `gp_size` (the region a late search cares about); every `tell` costs one
`gp_size`-sized Cholesky whatever the count. Empty slots get an identity kernel row and a zero
target, which leaves the posterior and the likelihood comparison unchanged.

Acquisition (`acquisition="ei"`, expected improvement over the best observed fitness, or `"ucb"`,
mean + `ucb_beta` * std) is maximised over a candidate pool with two parts, scored together:
- local, a trust region around the best result since the last restart, as in CASMOPOLITAN (Wan et
  al., ICML 2021) and TuRBO (Eriksson et al., NeurIPS 2019): the centre's whole one-decision
  neighbourhood plus `trust_region_samples` cells at a uniform Hamming distance of 1..radius. The
  radius starts at `init_radius`, grows by one decision after `success_tolerance` results in a row
  that improved on the centre and shrinks by one after `failure_tolerance` results without; when
  it collapses below 1 the search restarts (a new uniform design of `restart_initial` cells, the
  radius reset);
- global: one- and two-decision mutations of the `num_incumbents` best results so far (mutation-
  based acquisition optimisation, as in BANANAS, White et al. AAAI 2021), plus `num_random` uniform
  cells.
The first `num_initial` proposals, and the first `restart_initial` after a restart, are uniform
random. The GP keeps every result across restarts (what was learned elsewhere still ranks the new
region's candidates), and the search returns its best overall.

What the model contributes: the GP's acquisition chooses, among a few hundred candidates near and
far, the one query to make; `acquisition="random"` keeps the pool and the trust region but takes
the candidates in random order, and `trust_region=False` gives the earlier pool, the one-decision
neighbourhoods of the best results since a restart (restarts when that local search is over).
The record experiments/measured/evolution_bayesian/ has both figures beside the default's.

The defaults were chosen on the NAS-Bench-201 table, on seeds from 100 on (`tune.py` in that
record; the restarts' `failure_tolerance=5` and `restart_initial=5`, short runs begun by a small
design, in experiments/measured/strategies_nb201/). `restart_patience`, an integer, restarts
after that many results in a row without improvement instead of on the trust region's collapse
(0 never restarts).

Batches (`ask` with n > 1) use the kriging believer (Ginsbourger et al. 2010): the batch is chosen
greedily, and after each pick the GP is conditioned on its own posterior mean there. The mean is
unchanged, the variance of correlated candidates shrinks and the incumbent rises, so the next
pick goes where the model is still uncertain instead of next to the previous one. Computed
exactly on the pool's joint posterior covariance with rank-one updates.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from strategies import archs as archs_lib
from strategies import buffer, hill_climb, interface, surrogate

DEFAULT_CAPACITY = 1000
# On NAS-Bench-201 the marginal likelihood picks long lengthscales (a nearly additive model over
# the decisions) and small noise.
LENGTHSCALES = (0.1, 0.2, 0.4, 0.8, 1.6)
NOISE_RATIOS = (1e-3, 1e-2, 1e-1)
JITTER = 1e-5


class GaussianProcess(NamedTuple):
    """A fitted GP posterior in standardised units (y = (fitness - y_mean) / y_std)."""
    archs: jax.Array       # int32[G, D] training inputs
    mask: jax.Array        # bool[G] which are real
    chol: jax.Array        # float32[G, G] Cholesky factor of s * (C + noise I), identity on pads
    alpha: jax.Array       # float32[G] K^-1 y
    signal: jax.Array      # s
    lengthscale: jax.Array
    noise: jax.Array       # noise ratio (noise variance / s)
    y_mean: jax.Array
    y_std: jax.Array
    best: jax.Array        # best training fitness, in fitness units
    # The prior mean, linear in the one-hot code (`surrogate.fit_linear_surrogate`; zero without
    # `linear_mean`): the GP models the residuals around it.
    mean_weights: jax.Array  # float32[sum(num_choices)]
    mean_offset: jax.Array


class BayesianState(NamedTuple):
    """The strategy state: the results told so far, the fitted GP and the trust region."""
    history: buffer.History
    gp: GaussianProcess
    restart_at: jax.Array  # int32: the number of results told when the current search began
    radius: jax.Array      # int32: the trust region's Hamming radius
    successes: jax.Array   # int32: results in a row that improved on the best since the restart
    failures: jax.Array    # int32: results in a row that did not


def _differing(a, b, num_choices):
    """Fraction of decisions on which a[i] and b[j] differ: float32[len(a), len(b)]."""
    return 1.0 - archs_lib.agreement(a, b, num_choices) / a.shape[-1]


def _correlation(a, b, lengthscale, num_choices):
    return jnp.exp(-_differing(a, b, num_choices) / lengthscale)


def _masked_matrix(correlation, mask, noise):
    # Pads: no correlation with anything and unit variance, so they change neither the posterior
    # nor (with a zero target) the likelihood.
    both = (mask[:, None] & mask[None, :]).astype(jnp.float32)
    return correlation * both + jnp.diag(jnp.where(mask, noise + JITTER, 1.0))


def _profile_fit(correlation, y, mask, noise):
    """Factorises C + noise I; returns (log marginal likelihood at the best s, chol, alpha, s)."""
    chol = jnp.linalg.cholesky(_masked_matrix(correlation, mask, noise))
    alpha0 = jax.scipy.linalg.cho_solve((chol, True), y)
    count = jnp.maximum(jnp.sum(mask), 1)
    signal = jnp.maximum(jnp.dot(y, alpha0) / count, 1e-6)
    log_likelihood = -0.5 * count * jnp.log(signal) - jnp.sum(jnp.log(jnp.diag(chol)))
    log_likelihood = jnp.where(jnp.all(jnp.isfinite(chol)), log_likelihood, -jnp.inf)
    return log_likelihood, chol, alpha0, signal


def _training_set(history, gp_size):
    """The slots the GP learns from: every result while there are at most gp_size, then the best."""
    fitness = buffer.filled_fitness(history)
    valid = buffer.valid_mask(history)
    _, slots = jax.lax.top_k(jnp.where(valid, fitness, -jnp.inf), gp_size)
    return slots, valid[slots], fitness[slots]


def _standardise(values, mask):
    count = jnp.maximum(jnp.sum(mask), 1)
    mean = jnp.sum(jnp.where(mask, values, 0.0)) / count
    std = jnp.sqrt(jnp.sum(jnp.where(mask, (values - mean) ** 2, 0.0)) / count)
    std = jnp.where(std > 0, std, 1.0)
    return jnp.where(mask, (values - mean) / std, 0.0), mean, std


def _choose_hyperparameters(differing, y, mask):
    """(lengthscale, noise ratio) of the grid point with the highest marginal likelihood."""
    grid = jnp.asarray([(ls, nr) for ls in LENGTHSCALES for nr in NOISE_RATIOS], jnp.float32)
    log_likelihood = jax.vmap(lambda p: _profile_fit(jnp.exp(-differing / p[0]), y, mask, p[1])[0])(grid)
    return grid[jnp.argmax(log_likelihood)]


def fit(history: buffer.History, space, gp_size: int, likelihood_size: int = 128,
        mean=None) -> GaussianProcess:
    """Fits the GP to (at most) the best `gp_size` results. The hyperparameter grid is scored on the
    best `likelihood_size` of them only: one Cholesky per grid point of a small matrix, then a
    single one of the full size. `mean`: (slot weights, offset) of a linear prior mean
    (`surrogate.fit_linear_surrogate`), whose residuals the GP models; None: a constant mean."""
    num_choices = space.num_choices
    mean_weights, mean_offset = ((jnp.zeros((int(sum(num_choices)),), jnp.float32), jnp.zeros(()))
                                 if mean is None else mean)
    slots, mask, fitness = _training_set(history, gp_size)  # best first
    archs = space.canonical(history.archs[slots])
    residual = fitness - surrogate.linear_prediction(archs, mean_weights, mean_offset, space)
    y, y_mean, y_std = _standardise(residual, mask)
    differing = _differing(archs, archs, num_choices)
    m = min(likelihood_size, gp_size)
    subset_y, _, _ = _standardise(residual[:m], mask[:m])
    lengthscale, noise = _choose_hyperparameters(differing[:m, :m], subset_y, mask[:m])
    _, chol, alpha0, signal = _profile_fit(jnp.exp(-differing / lengthscale), y, mask, noise)
    return GaussianProcess(archs=archs, mask=mask, chol=chol * jnp.sqrt(signal), alpha=alpha0 / signal,
                           signal=signal, lengthscale=lengthscale, noise=noise, y_mean=y_mean, y_std=y_std,
                           best=jnp.max(jnp.where(mask, fitness, -jnp.inf)), mean_weights=mean_weights,
                           mean_offset=mean_offset)


def predict(gp: GaussianProcess, archs, space):
    """Posterior mean and standard deviation of the latent fitness, in fitness units."""
    archs = space.canonical(archs)
    k = gp.signal * _correlation(archs, gp.archs, gp.lengthscale, space.num_choices) * gp.mask[None, :]
    mean = k @ gp.alpha
    v = jax.scipy.linalg.solve_triangular(gp.chol, k.T, lower=True)
    variance = jnp.maximum(gp.signal - jnp.sum(v * v, axis=0), 1e-12)
    prior = surrogate.linear_prediction(archs, gp.mean_weights, gp.mean_offset, space)
    return prior + gp.y_mean + gp.y_std * mean, gp.y_std * jnp.sqrt(variance)


def joint_covariance(gp: GaussianProcess, archs, space):
    """Posterior covariance of the latent fitness at `archs`, in fitness units: float32[n, n]."""
    archs = space.canonical(archs)
    k = gp.signal * _correlation(archs, gp.archs, gp.lengthscale, space.num_choices) * gp.mask[None, :]
    v = jax.scipy.linalg.solve_triangular(gp.chol, k.T, lower=True)
    prior = gp.signal * _correlation(archs, archs, gp.lengthscale, space.num_choices)
    return gp.y_std ** 2 * (prior - v.T @ v)


def kriging_believer(score, mean, covariance, best, n: int, excluded):
    """Indices int32[n] of a batch picked greedily by `score(mean, std, best)`, each pick followed
    by conditioning on the posterior mean there (kriging believer). `excluded` (bool) candidates
    are never picked while others remain."""
    def pick(carry, _):
        covariance, best, taken = carry
        std = jnp.sqrt(jnp.maximum(jnp.diag(covariance), 1e-12))
        i = jnp.argmax(jnp.where(taken | excluded, -jnp.inf, score(mean, std, best)))
        column = covariance[:, i]
        covariance = covariance - jnp.outer(column, column) / jnp.maximum(column[i], 1e-12)
        return (covariance, jnp.maximum(best, mean[i]), taken.at[i].set(True)), i

    taken = jnp.zeros(mean.shape, bool)
    _, picks = jax.lax.scan(pick, (covariance, best, taken), None, length=n)
    return picks


def expected_improvement(mean, std, best):
    """Expected improvement over `best` of a Gaussian with `mean` and `std` (arrays of one shape)."""
    z = (mean - best) / std
    return (mean - best) * jax.scipy.stats.norm.cdf(z) + std * jax.scipy.stats.norm.pdf(z)


def hamming_ball_samples(key, centres, radius, num_choices):
    """For each row of `centres` (int32[n, D]), an architecture at a uniform Hamming distance in
    1..`radius` (a traced int, at least 1): that many decisions, chosen uniformly, each moved to a
    different option. Decisions with one option never change (a radius beyond the others gives
    fewer changes). Jittable: int32[n, D]."""
    n, d = centres.shape
    u = jax.random.uniform(key, (n, 2 * d + 1))
    sizes = jnp.asarray(num_choices, jnp.int32)
    # A random rank per decision, the ones that cannot change last.
    order = jnp.argsort(jnp.argsort(u[:, :d] + (sizes <= 1), axis=1), axis=1)
    distance = 1 + jnp.floor(u[:, -1] * jnp.clip(radius, 1, d)).astype(jnp.int32)
    # A shift in 1..size-1 modulo size always lands on a different option.
    shift = 1 + jnp.floor(u[:, d:2 * d] * jnp.maximum(sizes - 1, 1)).astype(jnp.int32)
    moved = (order < distance[:, None]) & (sizes > 1)
    return jnp.where(moved, (centres + shift) % sizes, centres).astype(jnp.int32)


def trust_region_update(radius, successes, failures, improved, *, max_radius, init_radius,
                        success_tolerance, failure_tolerance):
    """One step of the trust region's radius (CASMOPOLITAN, TuRBO): `success_tolerance`
    improvements in a row widen it by one decision, `failure_tolerance` results in a row without
    one narrow it by one. Returns (radius, successes, failures, collapsed): a radius below 1 has
    collapsed, and comes back as `init_radius` for the restart that follows."""
    successes = jnp.where(improved, successes + 1, 0)
    failures = jnp.where(improved, 0, failures + 1)
    grow, shrink = successes >= success_tolerance, failures >= failure_tolerance
    radius = jnp.clip(radius + grow.astype(jnp.int32) - shrink.astype(jnp.int32), 0, max_radius)
    successes, failures = jnp.where(grow, 0, successes), jnp.where(shrink, 0, failures)
    collapsed = radius < 1
    return jnp.where(collapsed, init_radius, radius), successes, failures, collapsed


def make_core(space, capacity: int, acquisition: str = "ei", ucb_beta: float = 2.0, num_initial: int = 10,
              trust_region: bool = True, trust_region_samples: int = 64, init_radius: int = 2,
              success_tolerance: int = 2, failure_tolerance: int = 5, num_incumbents: int = 5,
              mutations_per_incumbent: int = 8, num_random: int = 64, gp_size: int = 300,
              restart_patience: int | None = None, linear_mean: bool = True,
              restart_initial: int = 5) -> interface.Core:
    """The Bayesian optimisation core for `interface.build`.

    Args:
      space, capacity: the search space and the history's capacity.
      acquisition: "ei" (expected improvement), "ucb" (mean + ucb_beta * std), or "random" (the
        pool in random order: the surrogate switched off, for ablations).
      num_initial: uniform samples before the first model-guided proposal, and after each restart.
      trust_region: the local part of the pool is a trust region around the best result since the
        last restart, its Hamming radius adapting (start `init_radius`, wider after
        `success_tolerance` improvements in a row, narrower after `failure_tolerance` results
        without one; restart when it collapses). False: the one-decision neighbourhoods of the
        `num_incumbents` best (the radius fixed at 1, restarts when a local search is over).
      trust_region_samples: candidates drawn inside the trust region, besides the centre's whole
        one-decision neighbourhood.
      num_incumbents, mutations_per_incumbent, num_random: the global part of the pool, mutations
        (one or two decisions) of the best `num_incumbents` results overall and uniform samples.
      gp_size: the GP learns from at most this many results (the best ones).
      restart_patience: None (restart as `trust_region` says), or restart after that many results
        in a row without improvement (0: never).
      linear_mean: the GP's prior mean is the linear surrogate (else a constant).
      restart_initial: uniform samples that begin each run after a restart (the first run begins
        with `num_initial`).
    Returns:
      an `interface.Core`.
    """
    if acquisition not in ("ei", "ucb", "random"):
        raise ValueError(f"bayesian: acquisition must be 'ei', 'ucb' or 'random', got {acquisition!r}.")
    if not 1 <= gp_size <= capacity:
        raise ValueError(f"bayesian: gp_size must be in 1..capacity ({capacity}), got {gp_size}.")
    if not 1 <= num_incumbents <= capacity:
        raise ValueError(f"bayesian: num_incumbents must be in 1..capacity ({capacity}), got {num_incumbents}.")
    num_choices, num_decisions = space.num_choices, space.num_decisions
    if not 1 <= init_radius <= num_decisions:
        raise ValueError(f"bayesian: init_radius must be in 1..{num_decisions} (the decisions), got {init_radius}.")
    if min(success_tolerance, failure_tolerance) < 1:
        raise ValueError(f"bayesian: success_tolerance and failure_tolerance must be at least 1, got "
                         f"{success_tolerance} and {failure_tolerance}.")
    if min(trust_region_samples, mutations_per_incumbent, num_random) < 0 or min(num_initial, restart_initial) < 1:
        raise ValueError("bayesian: trust_region_samples, mutations_per_incumbent and num_random must be >= 0, "
                         f"num_initial and restart_initial >= 1; got {trust_region_samples}, "
                         f"{mutations_per_incumbent}, {num_random}, {num_initial}, {restart_initial}.")

    def fit_to(history):
        mean = surrogate.fit_linear_surrogate(history, space) if linear_mean else None
        return fit(history, space, gp_size, mean=mean)

    def in_design(results, restart_at):
        """Whether, with `results` told, the run begun at result `restart_at` is still in its uniform
        design (`num_initial` cells for the first run, `restart_initial` after a restart)."""
        return results - restart_at < jnp.where(restart_at == 0, num_initial, restart_initial)

    def init(key):
        del key
        history = buffer.empty_history(num_decisions, capacity)
        zero = jnp.zeros((), jnp.int32)
        return BayesianState(history, fit_to(history), zero, jnp.asarray(init_radius, jnp.int32), zero, zero)

    def score(mean, std, best):
        if acquisition == "ucb":
            return mean + ucb_beta * std
        return expected_improvement(mean, std, best)

    def candidates(key, state):
        k_one, k_two, k_ball, k_random = jax.random.split(key, 4)
        current = buffer.since(state.history, state.restart_at)
        if trust_region:  # the centre's whole neighbourhood, then samples out to the radius
            centre = buffer.best_since(state.history, state.restart_at)[None]
            ball = hamming_ball_samples(k_ball, jnp.repeat(centre, trust_region_samples, axis=0), state.radius,
                                        num_choices)
            local = jnp.concatenate([archs_lib.neighbours(centre, num_choices), ball])
            good = buffer.top_k(state, num_incumbents)[0]  # the global part: the best overall
        else:  # the neighbourhoods of the best since the last restart
            good = buffer.top_k(state._replace(history=current), num_incumbents)[0]
            local = archs_lib.neighbours(good, num_choices)
        parents = jnp.repeat(good, mutations_per_incumbent, axis=0)
        one_step = archs_lib.mutate(k_one, parents, num_choices)
        # Half the mutations change one decision, half two.
        two_steps = archs_lib.mutate(k_two, one_step, num_choices)
        half = jnp.arange(parents.shape[0]) % 2 == 0
        mutations = jnp.where(half[:, None], one_step, two_steps)
        return jnp.concatenate([local, mutations, archs_lib.uniform(k_random, num_random, num_choices)])

    def propose(key, state, n):
        gp = state.gp
        k_pool, k_rank = jax.random.split(key)
        pool = candidates(k_pool, state)
        if acquisition == "random":
            priority = jax.random.uniform(k_rank, (pool.shape[0],))
        else:
            mean, std = predict(gp, pool, space)
            best = gp.best
            priority = score(mean, std, best)
            if n > 1:
                seen = buffer.evaluated(pool, state.history, space)
                picks = kriging_believer(score, mean, joint_covariance(gp, pool, space), best, n, seen)
                # The believer's picks first, in order; the rest behind them (in (-1, 0], same order
                # as the plain acquisition) for when `ask` must drop a pick as infeasible.
                rest = -1.0 / (1.0 + priority - jnp.min(priority))
                priority = rest.at[picks].set(n - jnp.arange(n, dtype=jnp.float32))
        # During an initial design nothing is wanted: ask's uniform fill supplies the proposals.
        initial = in_design(state.history.count, state.restart_at)
        return pool, jnp.where(initial, -jnp.inf, priority)

    def learn(state, archs, fitness):
        del archs
        history = state.history
        told = history.count - fitness.shape[0]  # results before this batch
        before = buffer.since(history, state.restart_at)
        before_best = jnp.max(jnp.where(buffer.result_index(history) < told, before.fitness, -jnp.inf))
        improved = jnp.max(fitness) > before_best
        designing = in_design(told, state.restart_at)  # the radius adapts only once guided
        radius, successes, failures, collapsed = trust_region_update(
            state.radius, state.successes, state.failures, improved, max_radius=num_decisions,
            init_radius=init_radius, success_tolerance=success_tolerance, failure_tolerance=failure_tolerance)
        radius, successes, failures = (jnp.where(designing, old, new) for old, new in
                                       ((state.radius, radius), (state.successes, successes),
                                        (state.failures, failures)))
        collapsed = collapsed & ~designing
        if restart_patience is not None:
            stagnated = buffer.queries_since_best(history, state.restart_at) >= max(restart_patience, 1)
            restart = (restart_patience > 0) & stagnated
        elif trust_region:
            restart = collapsed
        else:
            restart = hill_climb.local_search_over(history, state.restart_at, space)
        restart_at = jnp.where(restart, history.count, state.restart_at).astype(jnp.int32)
        radius = jnp.where(restart, init_radius, radius).astype(jnp.int32)
        successes, failures = (jnp.where(restart, 0, c).astype(jnp.int32) for c in (successes, failures))
        return BayesianState(history, fit_to(history), restart_at, radius, successes, failures)

    return interface.Core(init, propose, learn)
