"""Differentially private deep generators: DP-TVAE and DP-CTGAN, trained with DP-SGD (Opacus).

The networks are small torch versions of TVAE and CTGAN (Xu et al., "Modeling Tabular Data
using Conditional GAN", NeurIPS 2019), written here, trained with DP-SGD (Abadi et al., "Deep
Learning with Differential Privacy", CCS 2016): per-example gradient clipping to
``max_grad_norm`` and Gaussian noise of scale ``noise_multiplier * max_grad_norm`` on every
step, through Opacus's ``GradSampleModule`` (per-example gradients) and ``DPOptimizer``
(clipping and noise). Batches are Poisson samples (every record in each step independently with
probability q), which is what the accountant of the subsampled Gaussian assumes (Mironov,
Talwar & Zhang, "Renyi Differential Privacy of the Sampled Gaussian Mechanism", 2019).

Only what touches private data is private, and it all goes through one ledger
(:class:`synth.dp.accounting.Accountant`):

- the encoding: no per-column Gaussian mixture fitted on the data (CTGAN's mode-specific
  normalisation reads it). Every column gets the DP generators' public fine cells and its noisy
  one-way marginal over them (:class:`synth.dp.base.DPGenerator`: ``count_share`` (1%) on a
  noisy record count, ``marginal_share`` (30%) on the one-way marginals); the cells are grouped
  into about ``bins`` cells of equal noisy mass (DP quantiles), each row is coded as one-hot
  vectors over those cells, and sampled codes are decoded by the same DP cell weights;
- DP-CTGAN's conditional vector: its category frequencies are the same noisy one-way counts. No
  training-by-sampling (drawing real rows per category reads the data without noise): real rows
  come by Poisson sampling, each with the condition of one of its own cells;
- the networks: DP-TVAE's encoder and decoder both see real rows, so the whole VAE is trained
  with DP-SGD; DP-CTGAN's discriminator sees real rows and is trained with DP-SGD, the generator
  only through the discriminator (post-processing);
- the sample rate q = ``batch_size`` / (noisy record count) and the number of steps
  (``epochs`` / q) come from the DP count, not from the data.

Accounting: the zCDP steps (count, marginals) and the DP-SGD run's RDP curve (Opacus's
``compute_rdp``) are added over :data:`synth.dp.accounting.ORDERS` and converted to
(epsilon, delta) at the best order (Mironov 2017; Balle et al. 2020). The noise multiplier is
the smallest whose total meets the claimed epsilon (bisection, :func:`calibrate_noise`); a
``noise_multiplier`` given by hand that would overspend is refused. The saved model holds the
sampling network's weights (numpy arrays, sampled without torch) and the public or DP-estimated
cells; never a row.

The one-run audit (:mod:`attacks.one_run`) refits with ``audit_canaries`` gradient canaries:
Dirac vectors of norm ``max_grad_norm`` on a block of parameters the loss never touches, each
included with probability 1/2 and then Poisson-sampled like a record; each canary's score is the
sum of the noisy gradients on its coordinate, a post-processing of what DP-SGD releases.
"""

from __future__ import annotations

import functools
import math
import secrets
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from synth.dp.accounting import ORDERS, BudgetError, rdp_epsilon
from synth.dp.base import DPGenerator, silent
from synth.dp.estimation import Measurement, noisy_total
from synth.dp.private import PrivateData
from synth.errors import ParamError
from synth.generators import Progress

# ---- accounting ------------------------------------------------------------------------------


def sgd_curve(sample_rate: float, noise_multiplier: float, steps: int) -> np.ndarray:
    """RDP curve over :data:`ORDERS` of ``steps`` Poisson-subsampled Gaussian steps (Opacus's
    analysis of Mironov, Talwar & Zhang 2019)."""
    from opacus.accountants.analysis.rdp import compute_rdp

    curve = compute_rdp(
        q=sample_rate, noise_multiplier=noise_multiplier, steps=steps, orders=list(ORDERS)
    )
    curve = np.asarray(curve, dtype=float)
    return np.where(np.isnan(curve), np.inf, curve)  # overflow at large orders: no bound there


def calibrate_noise(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    *,
    base: np.ndarray | None = None,
    tolerance: float = 1e-4,
) -> float:
    """The smallest noise multiplier (to relative ``tolerance`` of epsilon) for which ``steps``
    DP-SGD steps at ``sample_rate``, composed with the RDP curve ``base`` of what was spent
    before, convert to at most ``epsilon`` at ``delta``. Illinois (regula falsi) on log sigma."""
    prior = np.zeros(len(ORDERS)) if base is None else np.asarray(base, dtype=float)
    return _calibrated(epsilon, delta, sample_rate, steps, tuple(prior.tolist()), tolerance)


@functools.lru_cache(maxsize=64)  # a refit with the same noisy count asks the same again
def _calibrated(
    epsilon: float,
    delta: float,
    sample_rate: float,
    steps: int,
    base: tuple[float, ...],
    tolerance: float,
) -> float:
    prior = np.asarray(base)
    if rdp_epsilon(prior, delta) >= epsilon:
        raise BudgetError(
            f"the steps before DP-SGD already spend epsilon {rdp_epsilon(prior, delta):.4g} of "
            f"{epsilon:.4g}: lower marginal_share"
        )

    def gap(log_sigma: float) -> float:
        curve = prior + sgd_curve(sample_rate, math.exp(log_sigma), steps)
        return rdp_epsilon(curve, delta) - epsilon

    low, high = 0.0, 0.0
    g_high = gap(high)
    if g_high > 0:
        while g_high > 0:
            low, high = high, high + math.log(2)
            if high > math.log(1e6):
                raise BudgetError(f"epsilon {epsilon} cannot be met with noise up to 1e6")
            g_high = gap(high)
        g_low = gap(low)
    else:
        g_low = g_high
        while g_low <= 0:
            high, g_high = low, g_low
            low -= math.log(2)
            if low < math.log(1e-3):
                return math.exp(high)
            g_low = gap(low)
    side = 0
    for _ in range(100):  # g_low > 0 >= g_high
        if -g_high <= tolerance * epsilon or high - low < 1e-12:
            break
        middle = (low * g_high - high * g_low) / (g_high - g_low)
        g_middle = gap(middle)
        if g_middle > 0:
            low, g_low = middle, g_middle
            if side == -1:
                g_high /= 2
            side = -1
        else:
            high, g_high = middle, g_middle
            if side == 1:
                g_low /= 2
            side = 1
    return math.exp(high)


# ---- the fitted model: numpy networks ------------------------------------------------------


@dataclass
class NeuralSampler:
    """What a fitted DP deep generator samples codes with: the sampling network's weights (a
    VAE's decoder, a GAN's generator) as numpy arrays, the coarse cell count of every column,
    for a GAN the noisy category shares its conditions are drawn from, and the noisy record
    count. Nothing in it is a row."""

    layers: list[tuple[np.ndarray, np.ndarray]]
    sizes: tuple[int, ...]
    latent: int
    total_estimate: float
    condition: list[np.ndarray] | None = None
    canaries: dict[str, np.ndarray] | None = field(default=None, repr=False)
    """Only in a one-run audit's fit (never released): the canaries' coins and scores."""

    @property
    def total(self) -> float:
        return self.total_estimate

    def sample(self, n: int, rng: np.random.Generator) -> np.ndarray:
        z = rng.standard_normal((n, self.latent)).astype(np.float32)
        if self.condition is not None:
            z = np.hstack([z, _draw_conditions(self.condition, self.sizes, n, rng)])
        h = z
        for i, (weight, bias) in enumerate(self.layers):
            h = h @ weight.T + bias
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        codes = np.empty((n, len(self.sizes)), dtype=np.int64)
        for j, (start, stop) in enumerate(_spans(self.sizes)):
            logits = h[:, start:stop].astype(np.float64)
            gumbel = -np.log(-np.log(rng.random(logits.shape) + 1e-20) + 1e-20)
            codes[:, j] = np.argmax(logits + gumbel, axis=1)  # a draw from softmax(logits)
        return codes


def _spans(sizes: tuple[int, ...]) -> list[tuple[int, int]]:
    ends = np.cumsum(sizes)
    return [(int(e - s), int(e)) for s, e in zip(sizes, ends, strict=True)]


def _draw_conditions(
    shares: list[np.ndarray], sizes: tuple[int, ...], n: int, rng: np.random.Generator
) -> np.ndarray:
    """CTGAN's conditional vectors, without real rows: a column at random, and one of its cells
    drawn by the noisy shares."""
    out = np.zeros((n, sum(sizes)), dtype=np.float32)
    columns = rng.integers(0, len(sizes), n)
    starts = np.r_[0, np.cumsum(sizes)[:-1]]
    for j in np.unique(columns):
        rows = np.flatnonzero(columns == j)
        cells = rng.choice(sizes[j], size=len(rows), p=shares[j])
        out[rows, starts[j] + cells] = 1.0
    return out


# ---- the generators --------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class DPSGDGenerator(DPGenerator):
    """Shared plumbing of the DP deep generators: budget split, calibration, DP-SGD loop."""

    requires: ClassVar[tuple[str, ...]] = ()  # sampling is numpy: no torch needed to load
    dp_sgd: ClassVar[bool] = True
    """Trained with DP-SGD: the audit adds the one-run gradient-canary bound."""
    conditional: ClassVar[bool] = False
    """The sampling network takes CTGAN's conditional vector (drawn from the noisy shares)."""
    epochs: int = 30
    batch_size: int = 256
    """Expected rows per step: the Poisson sample rate is batch_size / (noisy record count)."""
    max_grad_norm: float = 1.0
    learning_rate: float = 1e-3
    marginal_share: float = 0.3
    """Share of rho (after the 1% record count) on the one-way marginals, which make the
    encoding (DP quantile cells) and the GAN's condition shares; DP-SGD gets the rest."""
    noise_multiplier: float = 0.0
    """0: calibrated from the budget; else used as given, and refused if it would overspend."""
    embedding_dim: int = 32
    audit_canaries: int = 0
    """Set by the one-run audit (``attacks.one_run``), never for a release: gradient canaries
    inserted into this fit."""

    def __post_init__(self) -> None:
        super().__post_init__()
        problems = [
            f"{key} ({getattr(self, key)}) must be >= 1"
            for key in ("epochs", "batch_size", "embedding_dim")
            if getattr(self, key) < 1
        ]
        for key in ("max_grad_norm", "learning_rate"):
            if not 0 < getattr(self, key) < math.inf:
                problems.append(f"{key} ({getattr(self, key)}) must be > 0")
        if not 0 < self.marginal_share < 1:
            problems.append(f"marginal_share ({self.marginal_share}) must be > 0 and < 1")
        if not 0 <= self.noise_multiplier < math.inf:
            problems.append(f"noise_multiplier ({self.noise_multiplier}) must be >= 0")
        if self.audit_canaries < 0:
            problems.append(f"audit_canaries ({self.audit_canaries}) must be >= 0")
        for key in ("hidden",):
            value = getattr(self, key, None)
            if value is not None and (not value or min(value) < 1):
                problems.append(f"{key} {value} must list layer widths >= 1")
        if problems:
            raise ParamError(f"{self.name}: " + "; ".join(problems))

    def _load_libraries(self) -> None:
        import opacus  # noqa: F401 - loads torch, so seeded() seeds it

    def _one_way_share(self, columns: int) -> float:
        return self.marginal_share

    def _fit_private(
        self,
        data: PrivateData,
        ones: list[Measurement],
        rho: float,
        rng: np.random.Generator,
        costs: dict[str, float],
        progress: Progress | None,
        *,
        count: tuple[float, float],
    ) -> NeuralSampler:
        total = noisy_total([*ones, Measurement((), np.array([count[0]]), count[1])])
        sample_rate = min(1.0, self.batch_size / total)
        steps = max(1, round(self.epochs / sample_rate))
        accountant = data.accountant
        delta = accountant.budget.delta - accountant.delta_reserved
        started = time.perf_counter()
        base = accountant.curve()
        sigma = self.noise_multiplier or calibrate_noise(
            self.epsilon, delta, sample_rate, steps, base=base
        )
        trained_sigma = sigma
        if self._noise_epsilon() != self.epsilon:  # the leaky reference: other noise than paid
            trained_sigma = calibrate_noise(
                self._noise_epsilon(), delta, sample_rate, steps, base=base
            )
        costs["calibrate_seconds"] = time.perf_counter() - started
        seed = int(rng.integers(2**62))
        noise_seed = seed if data.noise.seeded else secrets.randbits(62)
        shares = [_shares(m.y) for m in ones]
        setting = _Setting(
            sizes=data.sizes, sample_rate=sample_rate, steps=steps, sigma=trained_sigma,
            clip=self.max_grad_norm, batch=self.batch_size, seed=seed, noise_seed=noise_seed,
            canaries=self.audit_canaries, progress=progress or silent,
        )  # fmt: skip
        started = time.perf_counter()
        with warnings.catch_warnings():  # inputs of the first layer need no gradient: expected
            warnings.filterwarnings("ignore", message="Full backward hook is firing")
            layers, canaries = data.train(
                sgd_curve(sample_rate, sigma, steps),
                lambda codes: self._train(codes, setting, shares),
                mechanism="DP-SGD (Poisson-subsampled Gaussian)", what=f"{self.name} networks",
                noise_multiplier=sigma, sample_rate=sample_rate, steps=steps,
                max_grad_norm=self.max_grad_norm, epochs=self.epochs, batch_size=self.batch_size,
            )  # fmt: skip
        costs["train_seconds"] = time.perf_counter() - started
        return NeuralSampler(
            layers, data.sizes, self.embedding_dim, total,
            shares if self.conditional else None, canaries,
        )  # fmt: skip

    def _noise_epsilon(self) -> float:
        """The epsilon the noise is calibrated for: the claim (a leaky reference lies)."""
        return self.epsilon

    def _train(
        self, codes: np.ndarray, setting: _Setting, shares: list[np.ndarray]
    ) -> tuple[list[tuple[np.ndarray, np.ndarray]], dict[str, Any] | None]:
        raise NotImplementedError


def _shares(noisy: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(noisy, dtype=float), 0, None)
    if clipped.sum() <= 0:
        return np.full(len(clipped), 1 / len(clipped))
    return clipped / clipped.sum()


@dataclass(frozen=True)
class _Setting:
    sizes: tuple[int, ...]
    sample_rate: float
    steps: int
    sigma: float
    clip: float
    batch: int
    seed: int
    noise_seed: int
    canaries: int
    progress: Progress = field(default=silent)


@dataclass(frozen=True, kw_only=True)
class DPTVAE(DPSGDGenerator):
    """DP-TVAE: TVAE (Xu et al. 2019) on DP quantile cells, the whole VAE (encoder and decoder
    both read real rows) trained with DP-SGD (Abadi et al. 2016) through Opacus."""

    name: ClassVar[str] = "dp_tvae"
    description: ClassVar[str] = "DP: variational autoencoder trained with DP-SGD (Opacus)"
    hidden: tuple[int, ...] = (128, 128)
    loss_factor: float = 2.0

    def _train(self, codes, setting, shares):
        import torch
        from torch import nn

        torch.manual_seed(setting.seed % 2**63)
        width = sum(setting.sizes)
        latent = self.embedding_dim

        hidden = self.hidden

        class VAE(nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.encoder = _mlp(width, hidden, nn.ReLU)
                self.mu, self.logvar = nn.Linear(hidden[-1], latent), nn.Linear(hidden[-1], latent)
                self.decoder = _mlp(latent, hidden[::-1], nn.ReLU, out=width)

            def forward(self, x, eps):
                h = self.encoder(x)
                mu, logvar = self.mu(h), self.logvar(h).clamp(-10, 10)
                return self.decoder(mu + eps * torch.exp(0.5 * logvar)), mu, logvar

        model = VAE()
        _start_at_marginals(model.decoder[-1], shares)
        spans = _spans(setting.sizes)
        targets = torch.as_tensor(codes, dtype=torch.long)
        noise = torch.Generator().manual_seed(setting.seed % 2**63)

        def loss_of(batch: np.ndarray):
            if not len(batch):  # an empty Poisson batch: nothing to differentiate, noise only
                return None
            x = _one_hot(targets[batch], setting.sizes)
            eps = torch.randn(len(batch), latent, generator=noise)
            logits, mu, logvar = private(x, eps)
            recon = sum(
                nn.functional.cross_entropy(logits[:, a:b], targets[batch, j], reduction="none")
                for j, (a, b) in enumerate(spans)
            )
            kl = -0.5 * (1 + logvar - mu**2 - logvar.exp()).sum(dim=1)
            return (self.loss_factor * recon + kl).mean()

        private, optimizer, canary = _private(model, self.learning_rate, setting)
        result = _dp_sgd(len(codes), setting, private, optimizer, canary, loss_of)
        decoder = [m for m in model.decoder if isinstance(m, nn.Linear)]
        return _weights(decoder), result


@dataclass(frozen=True, kw_only=True)
class DPCTGAN(DPSGDGenerator):
    """DP-CTGAN: CTGAN's conditional generator (Xu et al. 2019) on DP quantile cells; the
    discriminator, the only network that sees real rows, is trained with DP-SGD (Abadi et al.
    2016, through Opacus), the generator through it. Conditions are drawn from the noisy one-way
    shares, real rows by Poisson sampling (no training-by-sampling), one row per discriminator
    example (no PacGAN packing: a packed example would hold several records)."""

    name: ClassVar[str] = "dp_ctgan"
    description: ClassVar[str] = "DP: conditional GAN, discriminator trained with DP-SGD (Opacus)"
    conditional: ClassVar[bool] = True
    hidden: tuple[int, ...] = (128, 128)
    learning_rate: float = 2e-4
    generator_lr: float = 2e-4

    def _train(self, codes, setting, shares):
        import torch
        from torch import nn

        torch.manual_seed(setting.seed % 2**63)
        width = sum(setting.sizes)
        latent = self.embedding_dim
        generator = _mlp(latent + width, self.hidden, nn.ReLU, out=width)
        _start_at_marginals(generator[-1], shares)
        discriminator = _mlp(2 * width, self.hidden[::-1], lambda: nn.LeakyReLU(0.2), out=1)
        spans = _spans(setting.sizes)
        starts = torch.as_tensor([a for a, _ in spans])
        targets = torch.as_tensor(codes, dtype=torch.long)
        rng = np.random.default_rng(setting.seed)
        g_optimizer = torch.optim.Adam(generator.parameters(), lr=self.generator_lr,
                                       betas=(0.5, 0.9))  # fmt: skip
        bce = nn.functional.binary_cross_entropy_with_logits

        def fake(n: int):
            condition = torch.as_tensor(_draw_conditions(shares, setting.sizes, n, rng))
            z = torch.randn(n, latent)
            logits = generator(torch.cat([z, condition], dim=1))
            parts = [nn.functional.gumbel_softmax(logits[:, a:b], tau=0.2) for a, b in spans]
            return torch.cat(parts, dim=1), logits, condition

        def loss_of(batch: np.ndarray):
            real = _one_hot(targets[batch], setting.sizes)
            column = torch.as_tensor(rng.integers(0, len(spans), len(batch)))
            condition = torch.zeros_like(real)
            if len(batch):
                picked = starts[column] + targets[batch][torch.arange(len(batch)), column]
                condition[torch.arange(len(batch)), picked] = 1.0
            rows, _, fake_condition = fake(setting.batch)
            x = torch.cat([torch.cat([real, condition], 1),
                           torch.cat([rows.detach(), fake_condition], 1)])  # fmt: skip
            truth = torch.cat([torch.ones(len(batch)), torch.zeros(setting.batch)])
            return bce(private(x).squeeze(1), truth, reduction="none").mean()

        def generator_step() -> None:
            rows, logits, condition = fake(setting.batch)
            private.disable_hooks()  # no per-example gradients: no real row in this pass
            judged = private(torch.cat([rows, condition], 1)).squeeze(1)
            loss = bce(judged, torch.ones(setting.batch))
            asked = condition.argmax(1)  # the condition's cell, and its column
            column = torch.searchsorted(starts, asked, right=True) - 1
            for j, (a, b) in enumerate(spans):
                rows_j = column == j
                if rows_j.any():
                    loss = (
                        loss
                        + nn.functional.cross_entropy(logits[rows_j, a:b], asked[rows_j] - a)
                        * rows_j.float().mean()
                    )
            g_optimizer.zero_grad()
            loss.backward()
            private.enable_hooks()
            g_optimizer.step()
            optimizer.zero_grad()  # the discriminator's gradients from this pass go nowhere

        private, optimizer, canary = _private(discriminator, self.learning_rate, setting,
                                              extra_rows=setting.batch)  # fmt: skip
        result = _dp_sgd(len(codes), setting, private, optimizer, canary, loss_of,
                         after=generator_step)  # fmt: skip
        layers = [m for m in generator if isinstance(m, nn.Linear)]
        return _weights(layers), result


# ---- the DP-SGD loop -------------------------------------------------------------------------


def _mlp(width: int, hidden: tuple[int, ...], activation: Callable[[], Any], *, out: int = 0):
    from torch import nn

    layers: list[Any] = []
    for size in hidden:
        layers += [nn.Linear(width, size), activation()]
        width = size
    if out:
        layers.append(nn.Linear(width, out))
    return nn.Sequential(*layers)


def _start_at_marginals(layer: Any, shares: list[np.ndarray]) -> None:
    """Start the output layer at the noisy one-way shares (post-processing of paid
    measurements): its bias at their logarithms, its weights small, so an untrained network
    samples each column's DP marginal and DP-SGD has only the dependence to learn."""
    import torch

    logs = np.concatenate([np.log(np.clip(share, 1e-4, None)) for share in shares])
    with torch.no_grad():
        layer.bias.copy_(torch.as_tensor(logs, dtype=layer.bias.dtype))
        layer.weight.mul_(0.1)


def _one_hot(codes: Any, sizes: tuple[int, ...]) -> Any:
    import torch

    parts = [torch.nn.functional.one_hot(codes[:, j], size).float() for j, size in enumerate(sizes)]
    return torch.cat(parts, dim=1) if parts else torch.zeros((len(codes), 0))


def _weights(layers: list[Any]) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (layer.weight.detach().numpy().copy(), layer.bias.detach().numpy().copy())
        for layer in layers
    ]


def _private(model: Any, lr: float, setting: _Setting, *, extra_rows: int = 0):
    """Opacus's per-example gradients for ``model`` and its DP optimizer (Adam, clipping and
    noise from a generator seeded with the noise seed); with canaries, their parameter block."""
    import torch
    from opacus import GradSampleModule
    from opacus.optimizers import DPOptimizer

    private = GradSampleModule(model, loss_reduction="mean")
    canary = None
    parameters = list(private.parameters())
    if setting.canaries:
        canary = torch.nn.Parameter(torch.zeros(setting.canaries))
        parameters.append(canary)
    optimizer = DPOptimizer(
        torch.optim.Adam(parameters, lr=lr, betas=(0.5, 0.9)),
        noise_multiplier=setting.sigma, max_grad_norm=setting.clip,
        expected_batch_size=setting.batch + extra_rows, loss_reduction="mean",
        generator=torch.Generator().manual_seed(setting.noise_seed),
    )  # fmt: skip
    return private, optimizer, canary


def _dp_sgd(
    n: int,
    setting: _Setting,
    private: Any,
    optimizer: Any,
    canary: Any,
    loss_of: Callable[[np.ndarray], Any],
    *,
    after: Callable[[], None] | None = None,
) -> dict[str, Any] | None:
    """``setting.steps`` DP-SGD steps on Poisson batches of the ``n`` records (each in with
    probability ``setting.sample_rate``, drawn from the noise seed: the subsampling is part of
    the mechanism). With canaries: each included by a fair coin (drawn from the fit's seed),
    then Poisson-sampled like a record; its per-example gradient is ``clip`` on its own
    coordinate of the canary block. Returns the canaries' coins and scores."""
    import torch

    sampling = np.random.default_rng(setting.noise_seed)
    included = scores = None
    if canary is not None:
        included = np.random.default_rng(setting.seed + 1).random(setting.canaries) < 0.5
        scores = np.zeros(setting.canaries)
    steps_per_epoch = max(1, round(1 / setting.sample_rate))
    epochs = math.ceil(setting.steps / steps_per_epoch)
    params = [p for p in optimizer.params if p is not canary]
    for step in range(setting.steps):
        batch = np.flatnonzero(sampling.random(n) < setting.sample_rate)
        optimizer.zero_grad()
        loss = loss_of(batch)
        if loss is not None:
            loss.backward()
        for p in params:  # an empty real batch still gets its noise
            if getattr(p, "grad_sample", None) is None:
                p.grad_sample = torch.zeros((0, *p.shape))
        if canary is not None:
            assert included is not None
            sampled = np.flatnonzero(included & (sampling.random(setting.canaries)
                                                 < setting.sample_rate))  # fmt: skip
            rows = len(optimizer._get_flat_grad_sample(params[0]))
            for p in params:
                gs = optimizer._get_flat_grad_sample(p)
                p.grad_sample = torch.cat([gs, torch.zeros((len(sampled), *p.shape))])
            block = torch.zeros((rows + len(sampled), setting.canaries))
            block[rows + np.arange(len(sampled)), torch.as_tensor(sampled)] = setting.clip
            canary.grad_sample = block
        optimizer.step()
        if canary is not None and scores is not None:
            scores += canary.grad.detach().numpy() * optimizer.expected_batch_size / setting.clip
        if after is not None:
            after()
        if (step + 1) % steps_per_epoch == 0 or step + 1 == setting.steps:
            setting.progress(min(epochs, (step + 1) // steps_per_epoch), epochs)
    if included is None or scores is None:
        return None
    return {"included": included, "scores": scores}


# ---- the leaky reference ---------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class LeakyDPTVAE(DPTVAE):
    """A reference generator for audits, never for release: DP-TVAE that claims ``epsilon``
    but trains with the (far smaller) noise of ``noise_epsilon``, and writes the claim's curve
    in its ledger. The positive control of the one-run audit: its bound must exceed the claim,
    while honest DP-TVAE at the same claim stays below it."""

    name: ClassVar[str] = "leaky_dp_tvae"
    description: ClassVar[str] = (
        "reference: DP-TVAE claiming epsilon with the noise of noise_epsilon (audits catch it)"
    )
    reference: ClassVar[bool] = True
    noise_epsilon: float = 1000.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.noise_epsilon > 0:
            raise ParamError(f"noise_epsilon ({self.noise_epsilon}) must be > 0")

    def _noise_epsilon(self) -> float:
        return self.noise_epsilon
