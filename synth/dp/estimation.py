"""Marginal estimation: a graphical model fitted to noisy marginals, and sampling from it.

Every DP generator here measures marginals with noise (:class:`Measurement`) and then, as
post-processing, estimates one graphical model whose marginals best fit them (entropic mirror
descent on its potentials, minimising the squared error of the measurements weighted by their
noise; McKenna, Sheldon & Miklau, "Graphical-model based estimation and inference for
differential privacy", ICML 2019). Two estimators share that objective:

- :func:`estimate_tree`, in numpy, for MST. A model whose cliques form a tree is exactly
  represented by its locally consistent marginals, and belief propagation on the tree computes
  them exactly, so no junction tree compiler is needed: a fit costs milliseconds per iteration
  whatever tree the mechanism chose, where mbi compiles its estimator anew for every clique
  structure (about 4 s per MST fit on 19 columns), which dominated shadow-model audits that
  refit MST dozens of times. Sampling is ancestral from the root, with each node's values shared
  out by randomised rounding within every parent value (as mbi's "round" sampler does), so the
  synthetic counts follow the model's marginals without iid sampling noise.
- :func:`estimate_model`, with ``mbi`` (private-pgm 2.x, JAX), for AIM and PrivBayes, whose
  models need not be trees. Compile once, fit many: mbi compiles its estimator for each clique
  structure. Attributes are named by position (``c0``, ``c1``, ...) and measurements are kept in
  a canonical order, so fits of the same structure on other data (shadow models, repeated
  releases) reuse the compiled code; the cost of a fit's first estimation, compilation
  included, is reported apart as ``compile_seconds``.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Protocol

import numpy as np

from synth.runtime import seeded

Edge = tuple[int, int]
"""A tree edge as (parent, child)."""

MbiModel = Any
"""A fitted mbi ``MarkovRandomField``: mbi (private-pgm) ships no type information."""


class Sampler(Protocol):
    """What a fitted DP generator samples codes over its coarse cells with; ``total`` is its
    noisy estimate of the number of records."""

    @property
    def total(self) -> float: ...

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray: ...


# ---- measurements ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Measurement:
    """Noisy counts of the marginal on ``clique`` with discrete Gaussian noise of scale
    ``sigma`` per measured cell. ``merged`` says, per entry of ``y``, how many measured cells were
    summed into it (MST's compression); such an entry has noise of scale sigma * sqrt(merged)
    and is weighted down to match, as in the MST paper."""

    clique: tuple[int, ...]
    y: np.ndarray
    sigma: float
    merged: np.ndarray | None = None

    def for_tree(self) -> TreeMeasurement:
        """The same measurement for :func:`estimate_tree`: per-entry variance."""
        cells = np.ones(self.y.size) if self.merged is None else self.merged.astype(float)
        return TreeMeasurement(self.clique, np.asarray(self.y, float), self.sigma**2 * cells)

    def total(self) -> tuple[float, float]:
        """The noisy total this measurement implies, and its variance."""
        cells = self.y.size if self.merged is None else float(self.merged.sum())
        return float(self.y.sum()), self.sigma**2 * cells

    def linear(self) -> Any:
        """The same measurement for mbi: an ``mbi.LinearMeasurement`` (untyped)."""
        mbi = load_mbi()
        names = tuple(self.clique)
        y = np.asarray(self.y, dtype=np.float64)
        if self.merged is None:
            return mbi.LinearMeasurement(y, names, stddev=float(self.sigma))
        from mbi.marginal_loss import WeightedQuery

        weights = 1 / np.sqrt(self.merged.astype(np.float64))
        return mbi.LinearMeasurement(
            y * weights, names, stddev=float(self.sigma), query=WeightedQuery(weights)
        )


def noisy_total(measurements: list[Measurement]) -> float:
    """Minimum-variance combination of the totals the measurements imply (post-processing):
    the DP estimate of the number of records, never the true count."""
    totals = np.array([m.total() for m in measurements])
    weights = 1 / totals[:, 1]
    return float(max(1.0, np.average(totals[:, 0], weights=weights)))


# ---- mbi: estimation and sampling ------------------------------------------------------------


def load_mbi() -> ModuleType:
    """Import mbi with 64-bit JAX (float32 estimation can stall) and without its noisy warnings.

    ``SYNTHGUARD_JAX_CACHE=<folder>`` keeps compiled estimators on disk, so a new process fitting
    a structure seen before skips most compilation (measured here: 2.7 s -> 0.6 s cold fit).
    """
    import os
    import warnings

    import jax

    jax.config.update("jax_enable_x64", True)
    cache = os.environ.get("SYNTHGUARD_JAX_CACHE")
    if cache:
        jax.config.update("jax_compilation_cache_dir", cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import mbi
        from mbi import estimation  # noqa: F401
    return mbi


def mbi_domain(sizes: tuple[int, ...]) -> Any:
    """The ``mbi.Domain`` of columns named by position (0, 1, ...). Integers, not strings: mbi
    orders its junction tree through sets of names, and a string's hash (so a set's order)
    changes from one process to the next, which made PrivBayes draw a different table from the
    same seed in every process; an integer's hash never changes."""
    mbi = load_mbi()
    return mbi.Domain(tuple(range(len(sizes))), sizes)


def estimate_model(
    costs: dict[str, float],
    sizes: tuple[int, ...],
    measurements: list[Measurement],
    iterations: int,
    warm_start: MbiModel | None = None,
) -> MbiModel:
    """Fit a graphical model to the measurements with mirror descent; adds the seconds spent
    compiling (``compile_seconds``: mbi's precompile of the optimiser for this structure, near
    zero when the structure was seen before) and estimating (``estimate_seconds``) to ``costs``."""
    mbi = load_mbi()
    ordered = sorted(measurements, key=lambda m: (len(m.clique), m.clique))  # canonical: reuse
    linear = [m.linear() for m in ordered]
    domain, estimator = mbi_domain(sizes), mbi.estimation.MirrorDescent()
    started = time.perf_counter()
    estimator.precompile(domain, linear).result()
    compiled = time.perf_counter()
    model = estimator.estimate(
        domain, linear, known_total=noisy_total(ordered), iters=iterations, warm_start=warm_start
    )
    done = time.perf_counter()
    costs["compile_seconds"] = costs.get("compile_seconds", 0.0) + compiled - started
    costs["estimate_seconds"] = costs.get("estimate_seconds", 0.0) + done - compiled
    return model


@dataclass
class MarginalSampler:
    """Samples codes from an mbi model, then expands compressed columns."""

    model: MbiModel
    n_columns: int

    @property
    def total(self) -> float:
        """The model's number of records: estimated from the noisy measurements."""
        return float(self.model.total)

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        # mbi's sampler draws from numpy's global generator: seeded() confines that
        with seeded(int(rng.integers(2**31))):
            synthetic = self.model.synthetic_data(rows=n)
        columns = synthetic.to_dict()
        codes = np.column_stack([np.asarray(columns[i]) for i in range(self.n_columns)])
        return codes.astype(np.int64)[:n]


# ---- trees, in numpy (MST) -------------------------------------------------------------------


@dataclass(frozen=True)
class TreeMeasurement:
    """Noisy counts ``y`` of the marginal on ``clique`` (one or two columns, C order), each
    entry with noise variance ``variance`` (an array: merged cells have more)."""

    clique: tuple[int, ...]
    y: np.ndarray
    variance: np.ndarray


@dataclass
class TreeModel:
    """Node and edge marginals of a tree model (counts summing to ``total``)."""

    sizes: tuple[int, ...]
    edges: list[Edge]  # (parent, child) in breadth-first order from the root
    root: int
    nodes: list[np.ndarray]  # per column: its marginal
    pairs: dict[Edge, np.ndarray]  # (parent, child): the joint, rows = parent
    total: float

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        codes = np.zeros((n, len(self.sizes)), dtype=np.int64)
        codes[:, self.root] = _allocate(n, self.nodes[self.root], rng)
        for parent, child in self.edges:
            joint = self.pairs[(parent, child)]
            for value in np.unique(codes[:, parent]):
                rows = np.flatnonzero(codes[:, parent] == value)
                codes[rows, child] = _allocate(len(rows), joint[value], rng)
        return codes


def _allocate(n: int, weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``n`` codes in proportion to ``weights`` by randomised rounding, in random order."""
    weights = np.clip(weights, 0, None)
    if weights.sum() <= 0:
        weights = np.ones(len(weights))
    share = n * weights / weights.sum()
    counts = np.floor(share).astype(np.int64)
    left = n - int(counts.sum())
    if left:
        extra = share - counts
        counts[rng.choice(len(weights), size=left, replace=False, p=extra / extra.sum())] += 1
    return rng.permutation(np.repeat(np.arange(len(weights)), counts))


def _orient(d: int, tree: Sequence[Edge]) -> tuple[int, list[Edge]]:
    """Root the tree at column 0 and list its edges (parent, child) breadth first."""
    neighbours: dict[int, list[int]] = {i: [] for i in range(d)}
    for a, b in tree:
        neighbours[a].append(b)
        neighbours[b].append(a)
    order, seen, edges = [0], {0}, []
    for node in order:
        for other in sorted(neighbours[node]):
            if other not in seen:
                seen.add(other)
                order.append(other)
                edges.append((node, other))
    if len(seen) != d:
        raise ValueError("the measured pairs do not span every column")
    return 0, edges


NodeMeasurements = dict[int, list[TreeMeasurement]]
EdgeMeasurements = dict[Edge, list[tuple[TreeMeasurement, bool]]]
"""Per edge, its measurements and whether each is stored transposed (child, parent)."""
EdgeTargets = dict[Edge, list[tuple[np.ndarray, np.ndarray]]]
"""Per edge, each measurement's counts and variances as (parent, child) tables."""


def estimate_tree(
    sizes: Sequence[int],
    tree: Sequence[Edge],
    measurements: Sequence[TreeMeasurement],
    total: float,
    *,
    iterations: int = 1000,
) -> TreeModel:
    """The tree model whose marginals best fit the measurements (weighted squared error),
    by entropic mirror descent on its log-potentials with exact belief propagation."""
    shape = tuple(int(s) for s in sizes)
    root, edges = _orient(len(shape), tree)
    node_theta = [np.zeros(s) for s in shape]
    edge_theta = {e: np.zeros((shape[e[0]], shape[e[1]])) for e in edges}
    by_node, by_edge = _by_clique(len(shape), edges, measurements)
    step = _initial_step(len(shape), by_node, by_edge, total)
    targets: EdgeTargets = {
        edge: [(_oriented(m.y, flipped, shape, edge), _oriented(m.variance, flipped, shape, edge))
               for m, flipped in found]
        for edge, found in by_edge.items()
    }  # fmt: skip

    nodes, pairs = _marginals(shape, root, edges, node_theta, edge_theta, total)
    loss, node_grad, edge_grad = _loss_and_gradient(shape, by_node, targets, nodes, pairs)
    for _ in range(iterations):
        trial_nodes = [t - step * g for t, g in zip(node_theta, node_grad, strict=True)]
        trial_edges = {e: edge_theta[e] - step * edge_grad[e] for e in edges}
        new_nodes, new_pairs = _marginals(shape, root, edges, trial_nodes, trial_edges, total)
        new_loss, new_node_grad, new_edge_grad = _loss_and_gradient(
            shape, by_node, targets, new_nodes, new_pairs
        )
        decrease = sum(
            float(np.sum(g * (a - b))) for g, a, b in zip(node_grad, nodes, new_nodes, strict=True)
        )
        decrease += sum(float(np.sum(edge_grad[e] * (pairs[e] - new_pairs[e]))) for e in edges)
        if loss - new_loss >= 0.5 * step * decrease:  # fmt: skip
            node_theta, edge_theta = trial_nodes, trial_edges
            nodes, pairs, loss = new_nodes, new_pairs, new_loss
            node_grad, edge_grad = new_node_grad, new_edge_grad
            step *= 1.01
        else:
            step *= 0.5
    return TreeModel(shape, edges, root, nodes, pairs, total)


def _by_clique(
    d: int, edges: list[Edge], measurements: Sequence[TreeMeasurement]
) -> tuple[NodeMeasurements, EdgeMeasurements]:
    """The measurements of each node and of each tree edge (one stored the other way round,
    as (child, parent), is marked transposed)."""
    by_node: NodeMeasurements = {i: [] for i in range(d)}
    by_edge: EdgeMeasurements = {e: [] for e in edges}
    oriented = {frozenset(e): e for e in edges}
    for m in measurements:
        if len(m.clique) == 1:
            by_node[m.clique[0]].append(m)
        else:
            edge = oriented[frozenset(m.clique)]
            by_edge[edge].append((m, m.clique != edge))  # transposed when stored the other way
    return by_node, by_edge


def _initial_step(
    d: int, by_node: NodeMeasurements, by_edge: EdgeMeasurements, total: float
) -> float:
    """mbi's first mirror descent step: 2 / (L * total), L the Lipschitz constant of the
    gradient in the marginals (the largest total precision a cell receives). The Armijo line
    search then grows the step by 1% after a sufficient decrease and halves it otherwise."""
    precision = np.zeros(d)
    for i, at_node in by_node.items():
        precision[i] += sum(float(np.max(1 / m.variance)) for m in at_node)
    for (a, b), at_edge in by_edge.items():
        weight = sum(float(np.max(1 / m.variance)) for m, _ in at_edge)
        precision[a] += weight
        precision[b] += weight
    return 2.0 / (max(float(precision.max()), 1e-12) * total)


def _loss_and_gradient(
    sizes: tuple[int, ...],
    by_node: NodeMeasurements,
    targets: EdgeTargets,
    nodes: list[np.ndarray],
    pairs: dict[Edge, np.ndarray],
) -> tuple[float, list[np.ndarray], dict[Edge, np.ndarray]]:
    """Half the precision-weighted squared error of the model's marginals against the
    measurements, and its gradient in each node and edge marginal."""
    loss, node_grad = 0.0, [np.zeros(s) for s in sizes]
    edge_grad: dict[Edge, np.ndarray] = {}
    for i, at_node in by_node.items():
        for m in at_node:
            residual = (nodes[i] - m.y) / m.variance
            loss += 0.5 * float(np.sum((nodes[i] - m.y) * residual))
            node_grad[i] += residual
    for edge, at_edge in targets.items():
        edge_grad[edge] = np.zeros_like(pairs[edge])
        for y, variance in at_edge:
            residual = (pairs[edge] - y) / variance
            loss += 0.5 * float(np.sum((pairs[edge] - y) * residual))
            edge_grad[edge] += residual
    return loss, node_grad, edge_grad


def _oriented(values: np.ndarray, flipped: bool, sizes: tuple[int, ...], edge: Edge) -> np.ndarray:
    """A measurement's flat table as (parent, child), transposing one stored the other way."""
    a, b = edge
    return values.reshape(sizes[b], sizes[a]).T if flipped else values.reshape(sizes[a], sizes[b])


def _marginals(
    sizes: tuple[int, ...],
    root: int,
    edges: list[Edge],
    node_theta: list[np.ndarray],
    edge_theta: dict[Edge, np.ndarray],
    total: float,
) -> tuple[list[np.ndarray], dict[Edge, np.ndarray]]:
    """Exact node and edge marginals (as counts) of the tree model, by sum-product with
    normalised messages."""
    node_phi = [np.exp(t - t.max()) for t in node_theta]
    edge_psi = {e: np.exp(t - t.max()) for e, t in edge_theta.items()}
    children: dict[int, list[int]] = {i: [] for i in range(len(sizes))}
    for parent, child in edges:
        children[parent].append(child)
    up: dict[int, np.ndarray] = {}  # message child -> parent, over the parent's values
    inner: dict[int, np.ndarray] = {}  # a node's potential times its children's messages
    for parent, child in reversed(edges):
        inside = node_phi[child].copy()
        for grandchild in children[child]:
            inside *= up[grandchild]
        inner[child] = inside
        message = edge_psi[(parent, child)] @ inside
        up[child] = message / message.sum()
    down: dict[int, np.ndarray] = {root: np.ones(sizes[root])}  # message parent -> child
    outer: dict[Edge, np.ndarray] = {}
    for parent, child in edges:
        around = node_phi[parent] * down[parent]
        for sibling in children[parent]:
            if sibling != child:
                around = around * up[sibling]
        outer[(parent, child)] = around
        message = edge_psi[(parent, child)].T @ around
        down[child] = message / message.sum()
    nodes = []
    for i in range(len(sizes)):
        belief = node_phi[i] * down[i]
        for child in children[i]:
            belief = belief * up[child]
        nodes.append(total * belief / belief.sum())
    pairs = {}
    for parent, child in edges:
        inside = inner[child] if child in inner else node_phi[child]
        joint = outer[(parent, child)][:, None] * edge_psi[(parent, child)] * inside[None, :]
        pairs[(parent, child)] = total * joint / joint.sum()
    return nodes, pairs
