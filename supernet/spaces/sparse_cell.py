"""The NAS-Bench-201 cell computing only the operations an architecture picks (`sparse=True`).

Each edge is a `jax.lax.switch` on its traced operation index, so one compiled step serves every
cell and costs what the sampled cell costs. Three things make that fast on XLA:CPU (measured on 2
cores, README "Design notes"):

* The backward pass is written by hand (`jax.custom_vjp` over the whole cell). Differentiating
  `lax.switch` directly makes every branch emit zero-filled copies of the other branches'
  intermediates, ~7 ms per edge at CIFAR size.
* Every switch *accumulates*: it takes the running sum of its target node (forward) or of its
  source node's gradient (backward) and returns it updated. A `none` edge then returns its
  accumulator untouched, which XLA aliases for free, instead of writing a tensor of zeros.
* Convolution gradients are forward-layout convolutions (`layers.conv_grads`): XLA:CPU runs the
  transposed layouts of JAX's own conv gradient 15-30x slower inside a conditional.
* The pool is a sum of shifted slices (`layers.sum_pool3`), ~5x faster than `reduce_window` in
  a branch, and its transpose is the same sum (the window is symmetric).

The residuals kept for the backward pass are the cell's nodes and each edge's pre-BN conv output
(zeros for edges without a conv).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from supernet.layers import batch_moments, conv, conv_grads, normalize, pool3_counts, sum_pool3
from supernet.networks import NB201_EDGES, NB201_OPS

NONE, SKIP, CONV1, CONV3, POOL = range(5)
TAGS = {CONV1: "1x1", CONV3: "3x3"}


def _by_op(branches: dict) -> list:
    """Branches in operation-index order, for `lax.switch`."""
    return [branches[k] for k in range(len(NB201_OPS))]


def _affine_norm(y, mean, var, params, tag):
    return normalize(y, mean, var) * params[f"scale_{tag}"] + params[f"bias_{tag}"]


def _forward_branches(stats):
    """Branches (acc, h, scale, params) -> (acc + scale * op(h), pre-BN conv output, BN mean, var).
    `stats` = (mean, var) normalises with stored statistics, None with the batch's own."""

    def parameter_free(op):
        def branch(acc, h, scale, params):
            zeros = jnp.zeros(params["scale_3x3"].shape, h.dtype)
            out = acc if op is None else acc + scale * op(h)
            return out, jnp.zeros_like(h), zeros, zeros
        return branch

    def conv_bn(tag):
        def branch(acc, h, scale, params):
            y = conv(jax.nn.relu(h), params[f"w_{tag}"])
            mean, var = batch_moments(y) if stats is None else stats
            return acc + scale * _affine_norm(y, mean, var, params, tag), y, mean, var
        return branch

    return _by_op({NONE: parameter_free(None), SKIP: parameter_free(lambda h: h),
                   CONV1: conv_bn("1x1"), CONV3: conv_bn("3x3"), POOL: parameter_free(_avg_pool)})


def _backward_branches():
    """Branches (grad_acc, grad_target, h, y, scale, params) ->
    (grad_acc + d loss / d h through this edge, d loss / d scale, d loss / d params)."""

    def parameter_free(op):
        def branch(grad_acc, grad_target, h, y, scale, params):
            no_params = jax.tree.map(jnp.zeros_like, params)
            if op is None:
                return grad_acc, jnp.zeros((), scale.dtype), no_params
            out, transpose = op(h)  # `out` only feeds d loss / d scale, which XLA drops when unused
            return grad_acc + transpose(scale * grad_target), jnp.vdot(grad_target, out), no_params
        return branch

    def conv_bn(tag):
        def branch(grad_acc, grad_target, h, y, scale, params):
            out, norm_vjp = jax.vjp(lambda y_, p: _affine_norm(y_, *batch_moments(y_), p, tag), y, params)
            grad_y, grad_params = norm_vjp(scale * grad_target)
            activated = jax.nn.relu(h)
            grad_activated, grad_params[f"w_{tag}"] = conv_grads(activated, params[f"w_{tag}"], grad_y)
            grad_h = jnp.where(h > 0, grad_activated, 0.0)
            return grad_acc + grad_h, jnp.vdot(grad_target, out), grad_params
        return branch

    return _by_op({NONE: parameter_free(None), SKIP: parameter_free(lambda h: (h, lambda g: g)),
                   CONV1: conv_bn("1x1"), CONV3: conv_bn("3x3"), POOL: parameter_free(_pool_and_transpose)})


def _avg_pool(h):
    return sum_pool3(h) / pool3_counts(h)


def _pool_and_transpose(h):
    """(average pool of h, its transpose): the pool is a symmetric window sum over fixed counts."""
    return _avg_pool(h), lambda g: sum_pool3(g / pool3_counts(g))


def prune_dead_edges(ops: jax.Array) -> jax.Array:
    """`ops` with every edge into a node that cannot reach the output set to `none`: such edges
    never change the cell's output or any gradient, and XLA removes them from a standalone
    network, so the supernet should not pay for them either. Their BN statistics read zero."""
    node2_live = ops[5] != NONE
    node1_live = (ops[4] != NONE) | ((ops[2] != NONE) & node2_live)
    target_live = {1: node1_live, 2: node2_live, 3: True}
    return jnp.stack([jnp.where(target_live[j], ops[e], NONE) for e, (_, j) in enumerate(NB201_EDGES)])


def forward(x, ops, scales, params, stats=None):
    """The cell on input `x`: edge e applies operation `ops[e]` (int32[6]) scaled by `scales[e]`
    with `params[e]`. Returns (nodes [x, n1, n2, n3], pre-BN conv outputs, BN means, BN vars), the
    last three per edge. `stats` (per edge (mean, var)) evaluates with stored BN statistics."""
    nodes, ys, means, variances = [x], [None] * 6, [None] * 6, [None] * 6
    for target in range(1, 4):
        acc = jnp.zeros_like(x)
        for e, (source, to) in enumerate(NB201_EDGES):
            if to == target:
                branches = _forward_branches(None if stats is None else stats[e])
                acc, ys[e], means[e], variances[e] = jax.lax.switch(
                    ops[e], branches, acc, nodes[source], scales[e], params[e])
        nodes.append(acc)
    return nodes, ys, means, variances


def train_cell(x, ops, scales, params):
    """`_train_cell` with a clear error for forward-mode autodiff, which a custom_vjp cannot do."""
    try:
        return _train_cell(x, ops, scales, params)
    except TypeError as err:
        if "forward-mode" not in str(err):
            raise
        raise TypeError("the sparse NAS-Bench-201 cell (the CPU default) has a hand-written reverse-mode "
                        "gradient only, so jax.jvp / jacfwd / hessian cannot run through it; build the "
                        "supernet with space.supernet(sparse=False) for forward-mode autodiff.") from None


@jax.custom_vjp
def _train_cell(x, ops, scales, params):
    """Training-mode cell (BN on batch statistics) with the hand-written backward pass.
    Returns (output, BN means, BN vars); the moments are for storing only, no gradient flows
    through them."""
    nodes, _, means, variances = forward(x, ops, scales, params)
    return nodes[-1], means, variances


def _train_cell_fwd(x, ops, scales, params):
    nodes, ys, means, variances = forward(x, ops, scales, params)
    return (nodes[-1], means, variances), (nodes[:-1], ys, ops, scales, params)


def _train_cell_bwd(residuals, cotangents):
    nodes, ys, ops, scales, params = residuals
    grads = {3: cotangents[0]}
    grad_scales, grad_params = [None] * 6, [None] * 6
    branches = _backward_branches()
    for source in (2, 1, 0):  # every node's gradient is complete before its edges are visited
        acc = jnp.zeros_like(nodes[source])
        for e, (i, target) in enumerate(NB201_EDGES):
            if i == source:
                acc, grad_scales[e], grad_params[e] = jax.lax.switch(
                    ops[e], branches, acc, grads[target], nodes[source], ys[e], scales[e], params[e])
        grads[source] = acc
    return grads[0], None, jnp.stack(grad_scales), grad_params


_train_cell.defvjp(_train_cell_fwd, _train_cell_bwd)
