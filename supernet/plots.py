"""Every picture the project draws, in one place (matplotlib, imported lazily, Agg backend).

Library and job modules call these; no other module imports matplotlib.
"""

from __future__ import annotations

import numpy as np

from supernet import distributed


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _save(plt, fig, file: str, **options) -> None:
    """Saves and closes a figure; only process 0 writes (every process draws the same picture)."""
    if distributed.is_writer():
        fig.savefig(file, **options)
    plt.close(fig)


def arch_weights(space, history: dict, file: str, title: str = "") -> str:
    """One panel per decision with each option's softmax weight over the steps, plus the
    parameter-free share of the derived architecture when the space reports it."""
    plt = _pyplot()

    steps = np.asarray(history["step"])
    weights = np.asarray(history["weights"])  # [T, D, K]
    shares = history["param_free_share"]
    panels = space.num_decisions + (shares and shares[0] is not None)
    cols = min(panels, 4)
    rows = -(-panels // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for d in range(space.num_decisions):
        ax = axes.flat[d]
        for k, label in enumerate(space.options[d]):
            ax.plot(steps, weights[:, d, k], label=label)
        ax.set_title(space.decision_names[d], fontsize=8)
        ax.set_ylim(0, None)
        ax.tick_params(labelsize=7)
    axes.flat[0].legend(fontsize=6)
    if panels > space.num_decisions:
        ax = axes.flat[space.num_decisions]
        ax.plot(steps, shares, color="black")
        ax.set_title("parameter-free share of derived arch", fontsize=8)
        ax.set_ylim(-0.05, 1.05)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[panels:]:
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.supxlabel("step", fontsize=8)
    fig.tight_layout()
    _save(plt, fig, file, dpi=110)
    return file




def best_so_far_curves(curves, reference, report_column, path):
    """Draws each strategy's mean best `report_column` value against the number of queries, with the
    reference line, to `path`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, curve in curves.items():
        queries = np.arange(1, curve.shape[1] + 1)
        mean, std = curve.mean(0), curve.std(0)
        ax.plot(queries, mean, label=name)
        ax.fill_between(queries, mean - std, mean + std, alpha=0.15)
    ax.axhline(reference["report"], color="k", ls="--", lw=1, label="best by fitness in table")
    ax.set_xlabel("queries")
    ax.set_ylabel(f"{report_column} of best-so-far (mean ± std over seeds)")
    lo = min(np.percentile(c.mean(0), 5) for c in curves.values())
    ax.set_ylim(lo - 0.5, reference["best_report_in_table"] + 0.3)
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, path, dpi=120)


def pareto_fronts(fronts, limit, path):
    """Draws each strategy's (fitness, latency) Pareto front under `limit` to `path`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, front in fronts.items():
        cost = [p["cost"] for p in front["points"]]
        fit = [p["fitness"] for p in front["points"]]
        ax.step(cost, fit, where="post", marker="o", ms=3, label=name)
    ax.axvline(limit.limit, color="k", ls="--", lw=1, label="limit")
    ax.set_xlabel(limit.name)
    ax.set_ylabel("fitness")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, path, dpi=120)


# -- a picture of one architecture ------------------------------------------------------------------

def architecture(space, arch, file: str, title: str | None = None) -> str:
    """Draws `arch` of `space` to `file` (PNG): the NAS-Bench-201 cell as a graph with the
    operations on its edges, a MobileNet as its stages of blocks, a module of yours (`nas`) as
    its layers in call order, any other space (e.g. a chain) as its sequence of decisions.
    Returns `file`."""
    arch = space.validate(arch)
    plt = _pyplot()
    draw = _DRAWERS.get(space.name, _draw_chain)
    fig = draw(plt, space, arch)
    name = space.to_string(arch)
    fig.suptitle(title or (name if len(name) <= 110 else f"{space.name} architecture"), fontsize=7)
    _save(plt, fig, file, dpi=120, bbox_inches="tight")
    return file


def _draw_cell(plt, space, arch):
    """Nodes on a line, in -> 1 -> 2 -> out; the longer edges arc above or below, operation on each."""
    from supernet.networks import NB201_EDGES, NB201_OPS
    fig, ax = plt.subplots(figsize=(7, 3.4))
    colours = {"none": "#bbbbbb", "skip_connect": "#4c72b0", "nor_conv_1x1": "#dd8452",
               "nor_conv_3x3": "#c44e52", "avg_pool_3x3": "#55a868"}
    bends = {1: 0.0, 2: -0.45, 3: -0.5}  # by edge length: straight, arc above; 1->3 arcs below
    for (i, j), op in zip(NB201_EDGES, (NB201_OPS[a] for a in arch)):
        rad = -bends[j - i] if (i, j) == (1, 3) else bends[j - i]
        ax.annotate("", (j, 0), (i, 0), arrowprops=dict(arrowstyle="-|>", color=colours[op], lw=2,
                                                        ls="dotted" if op == "none" else "solid",
                                                        shrinkA=12, shrinkB=12, connectionstyle=f"arc3,rad={rad}"))
        # The arc's midpoint sits half the control point's offset from the chord.
        ax.text((i + j) / 2, -rad * (j - i) / 2 + (0.06 if rad <= 0 else -0.12), op, fontsize=8, ha="center",
                color=colours[op])
    for n in range(4):
        ax.add_patch(plt.Circle((n, 0), 0.12, color="white", ec="black", zorder=3))
        ax.text(n, 0, "in" if n == 0 else "out" if n == 3 else str(n), ha="center", va="center", fontsize=8, zorder=4)
    ax.set_xlim(-0.3, 3.3)
    ax.set_ylim(-0.55, 0.95)
    ax.set_aspect("equal")
    ax.axis("off")
    return fig


def _boxes(plt, rows, width=7.0, box_width=1.1):
    """Rows of labelled boxes, left to right with arrows: [(row label, [box labels])]; a row is
    as tall as its box of most lines."""
    heights = [0.6 + 0.22 * max([text.count("\n") for text in boxes] or [0]) for _, boxes in rows]
    fig, ax = plt.subplots(figsize=(width, 0.6 * sum(h + 0.3 for h in heights) + 0.3))
    step, y = box_width + 0.2, 0.0
    for (label, boxes), h in zip(rows, heights):
        y -= h / 2
        ax.text(-0.2, y, label, ha="right", va="center", fontsize=8)
        for b, text in enumerate(boxes):
            ax.add_patch(plt.Rectangle((b * step, y - h / 2 + 0.05), box_width, h - 0.1, fc="#eef3fb", ec="#4c72b0"))
            ax.text(b * step + box_width / 2, y, text, ha="center", va="center", fontsize=7)
            if b:
                ax.annotate("", (b * step, y), (b * step - 0.2, y), arrowprops=dict(arrowstyle="-|>", lw=1))
        y -= h / 2 + 0.3
    longest = max(len(b) for _, b in rows)
    ax.set_xlim(-2.6, max(longest, 1) * step)
    ax.set_ylim(y, 0.2)
    ax.axis("off")
    return fig


def _draw_mobilenet(plt, space, arch):
    choices = dict(zip(space.decision_names, (o[a] for o, a in zip(space.options, arch))))
    rows = []
    for s in range(1, len(space.stages) + 1):
        depth = int(choices[f"stage{s}_depth"])
        blocks = [f"k{choices[f'stage{s}_block{b}_kernel']} e{choices[f'stage{s}_block{b}_expand']}"
                  for b in range(1, depth + 1)]
        rows.append((f"stage {s} (depth {depth})", blocks))
    if "width" in choices:
        rows.append((f"width x{choices['width']}", []))
    return _boxes(plt, rows)


def _draw_chain(plt, space, arch):
    return _boxes(plt, [("", [f"{n}\n{o[a]}" for n, o, a in zip(space.decision_names, space.options, arch)])])


def _draw_module(plt, space, arch):
    """A module of yours (`supernet.nas`): one row per child of your module in call order, its
    own children as boxes, and their layers listed inside each box (`NasSpace.layers`)."""
    rows = []  # [name, its text, [boxes]]; a child without children of its own is its own box
    for depth, name, text in space.layers(arch):
        if depth == 1:
            rows.append([name, text, []])
        elif depth == 2:
            rows[-1][2].append(f"{name}: {text}")
        else:
            rows[-1][2][-1] += f"\n{name}: {text}"
    return _boxes(plt, [(f"{name}\n{text}", boxes) if boxes else (name, [text]) for name, text, boxes in rows],
                  box_width=2.4)


_DRAWERS = {"nas_bench_201": _draw_cell, "mobilenet": _draw_mobilenet, "nas": _draw_module}


def ranking_scatter(predicted, truth, file: str, xlabel: str, ylabel: str, title: str = "") -> str:
    """One point per architecture: a ranker's score against the ground truth. Returns `file`."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.scatter(np.asarray(predicted), np.asarray(truth), s=12, alpha=0.7)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, file, dpi=110)
    return file


# -- what a search history says about each decision (strategies.explain) -----------------------------

def _by_importance(report) -> list[int]:
    return list(np.argsort(-np.asarray(report.importance), kind="stable"))


def effects(report, file: str, title: str = "", max_decisions: int = 24) -> str:
    """One panel per decision, most important first: each option's estimated effect as a point
    with its 95% interval as an error bar, against the decision's average (0). Panels share the
    effect axis so their sizes compare. `report`: a `strategies.explanation.Explanation`; at most
    `max_decisions` panels (the most important). Returns `file`."""
    plt = _pyplot()
    order = _by_importance(report)[:max_decisions]
    cols = min(len(order), 3)
    rows = -(-len(order) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 0.4 + 0.3 * max(map(len, report.options)) * rows + 0.5 * rows),
                             squeeze=False, sharex=True)
    for ax, d in zip(axes.flat, order):
        k = len(report.options[d])
        centre, low, high = report.effects[d, :k], report.effects_low[d, :k], report.effects_high[d, :k]
        y = np.arange(k)[::-1]
        bars = np.maximum(0.0, [centre - low, high - centre])  # an interval that misses its estimate: none drawn
        ax.errorbar(centre, y, xerr=bars, fmt="o", ms=4, capsize=2, color="#4c72b0")
        ax.axvline(0, color="k", lw=0.6)
        untried = np.zeros(k, bool) if report.counts is None else report.counts[d, :k] == 0
        ax.set_yticks(y, [f"{o} (not tried)" if u else str(o) for o, u in zip(report.options[d], untried)], fontsize=7)
        ax.set_ylim(-0.6, k - 0.4)
        ax.set_title(f"{report.decision_names[d]}  ({100 * report.importance[d]:.1f}% of variance)", fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", alpha=0.3)
    for ax in list(axes.flat)[len(order):]:
        ax.axis("off")
    fig.suptitle(title or f"effect of each option (95% interval), from {report.num_results} results", fontsize=9)
    fig.supxlabel("effect on the fitness, against the decision's average", fontsize=8)
    fig.tight_layout()
    _save(plt, fig, file, dpi=110)
    return file


def importance(report, file: str, title: str = "") -> str:
    """A bar per decision, most important on top: the share of the fitness variance its effects
    explain. `report`: a `strategies.explanation.Explanation`. Returns `file`."""
    plt = _pyplot()
    order = _by_importance(report)[::-1]
    fig, ax = plt.subplots(figsize=(5.5, 0.8 + 0.28 * len(order)))
    ax.barh(np.arange(len(order)), [100 * report.importance[d] for d in order], color="#4c72b0")
    ax.set_yticks(np.arange(len(order)), [report.decision_names[d] for d in order], fontsize=7)
    ax.set_xlabel("share of the fitness variance (%)", fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.set_title(title or f"decision importance, from {report.num_results} results", fontsize=9)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    _save(plt, fig, file, dpi=110)
    return file
