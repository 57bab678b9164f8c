"""Adapters for SDV 2.x synthesizers: GaussianCopula, CTGAN, TVAE and CopulaGAN.

SDV, ctgan, rdt and copulas are under the Business Source License 1.1; they are imported only
inside this module's functions, so the rest of synthguard imports nothing under BUSL.

SDV 2.x takes and returns dicts of tables (``fit({"table": df})``, ``sample(n) -> {"table": df}``).
Seeding: SDV seeds each sample from a fixed constant unless told otherwise, and fits draw from
numpy's and torch's global generators; ``BaseGenerator.fit`` wraps fits in ``runtime.seeded`` and
``_sample`` sets the model's own random state from the caller's seed.

Privacy of saved models: ctgan's data sampler keeps, per category, the indices of the training
rows holding it (used only to draw training batches). They are dropped after fitting, so a saved
or logged model holds per-column summaries (category lists, bounds, mixture parameters), never rows.

Papers: CTGAN and TVAE, Xu et al., "Modeling Tabular Data using Conditional GAN" (NeurIPS 2019);
the Gaussian copula synthesizer, Patki et al., "The Synthetic Data Vault" (DSAA 2016).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, ClassVar

import pandas as pd

from synth.errors import ParamError
from synth.generators import BaseGenerator, Progress

_TABLE = "table"
_DISTRIBUTIONS = ("norm", "beta", "truncnorm", "uniform", "gamma", "gaussian_kde")


def _metadata(kinds: dict[str, str]) -> Any:
    from sdv.metadata import Metadata

    columns = {
        name: ({"sdtype": "numerical"} if kind == "numerical" else {"sdtype": "categorical"})
        for name, kind in kinds.items()
    }
    return Metadata.load_from_dict({"tables": {_TABLE: {"columns": columns}}})


@dataclass(frozen=True, kw_only=True)
class _SDVGenerator(BaseGenerator):
    """Common fit/sample for SDV single-table synthesizers."""

    requires: ClassVar[tuple[str, ...]] = ("sdv", "ctgan", "rdt", "copulas", "torch")

    def _synthesizer(self, metadata: Any) -> Any:
        raise NotImplementedError

    def _load_libraries(self) -> None:
        import sdv.single_table  # noqa: F401 - loads torch, so seeded() seeds it

    def _fit(self, encoded, codec, *, seed, progress):
        import logging

        logging.getLogger("sdv").setLevel(logging.WARNING)
        synthesizer = self._synthesizer(_metadata(codec.modelled))
        with _EpochWatcher(synthesizer, getattr(self, "epochs", 0), progress):
            synthesizer.fit({_TABLE: encoded})
        _strip_training_rows(synthesizer)
        return synthesizer

    def _sample(self, state, n, *, seed):
        state.reset_sampling()
        state._set_random_state(seed)
        return state.sample(n)[_TABLE]

    def __post_init__(self) -> None:
        problems = self._problems()
        if problems:
            raise ParamError(f"{self.name}: " + "; ".join(problems))

    def _problems(self) -> list[str]:
        found = []
        for key in ("epochs", "batch_size", "embedding_dim", "pac", "discriminator_steps"):
            value = getattr(self, key, None)
            if value is not None and value < 1:
                found.append(f"{key} ({value}) must be >= 1")
        for key in ("generator_lr", "discriminator_lr", "loss_factor"):
            value = getattr(self, key, None)
            if value is not None and not (0 < value < float("inf")):
                found.append(f"{key} ({value}) must be a positive number")
        l2scale = getattr(self, "l2scale", None)
        if l2scale is not None and not (0 <= l2scale < float("inf")):
            found.append(f"l2scale ({l2scale}) must be a number >= 0")
        for key in ("generator_dim", "discriminator_dim", "compress_dims", "decompress_dims"):
            value = getattr(self, key, None)
            if value is not None and (not value or min(value) < 1):
                found.append(f"{key} {value} must list layer widths >= 1")
        batch, pac = getattr(self, "batch_size", None), getattr(self, "pac", None)
        if batch is not None and pac is not None and batch % pac:
            found.append(f"batch_size ({batch}) must be a multiple of pac ({pac})")
        if batch is not None and batch % 2:
            found.append(f"batch_size ({batch}) must be even")
        distribution = getattr(self, "default_distribution", None)
        if distribution is not None and distribution not in _DISTRIBUTIONS:
            found.append(
                f"default_distribution {distribution!r} is not one of {', '.join(_DISTRIBUTIONS)}"
            )
        return found


def _strip_training_rows(synthesizer: Any) -> None:
    """Drop what fitting needed and sampling does not: ctgan's per-category training-row indices."""
    model = getattr(synthesizer, "_model", None)
    sampler = getattr(model, "_data_sampler", None)
    if sampler is not None and hasattr(sampler, "_rid_by_cat_cols"):
        sampler._rid_by_cat_cols = []


class _EpochWatcher:
    """Reports epochs done by polling the ctgan model's loss log from a background thread.

    ctgan offers no callback; its loss table grows by one epoch at a time, and reading it never
    changes the fit.
    """

    def __init__(self, synthesizer: Any, epochs: int, progress: Progress | None):
        self._synthesizer, self._epochs, self._progress = synthesizer, epochs, progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> _EpochWatcher:
        if self._progress is not None and self._epochs:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive():
            self._stop.set()
            self._thread.join()
        if self._progress is not None and self._epochs and exc[0] is None:
            self._progress(self._epochs, self._epochs)

    def _done(self) -> int:
        losses = getattr(getattr(self._synthesizer, "_model", None), "loss_values", None)
        if not isinstance(losses, pd.DataFrame) or losses.empty:
            return 0
        return int(losses["Epoch"].max()) + 1

    def _watch(self) -> None:
        progress = self._progress
        while progress is not None and not self._stop.wait(0.5):
            progress(min(self._done(), self._epochs), self._epochs)


@dataclass(frozen=True, kw_only=True)
class GaussianCopula(_SDVGenerator):
    """SDV's Gaussian copula: per-column marginals joined by a Gaussian correlation matrix."""

    name: ClassVar[str] = "gaussian_copula"
    description: ClassVar[str] = "SDV Gaussian copula: fast, captures marginals and correlations"
    default_distribution: str = "beta"

    def _synthesizer(self, metadata):
        from sdv.single_table import GaussianCopulaSynthesizer

        return GaussianCopulaSynthesizer(
            metadata, default_distribution=self.default_distribution, enforce_min_max_values=True
        )


@dataclass(frozen=True, kw_only=True)
class CTGAN(_SDVGenerator):
    """Conditional GAN for tables (Xu et al. 2019), through SDV."""

    name: ClassVar[str] = "ctgan"
    description: ClassVar[str] = "SDV CTGAN: conditional GAN (Xu et al. 2019)"
    epochs: int = 300
    batch_size: int = 500
    embedding_dim: int = 128
    generator_dim: tuple[int, ...] = (256, 256)
    discriminator_dim: tuple[int, ...] = (256, 256)
    generator_lr: float = 2e-4
    discriminator_lr: float = 2e-4
    discriminator_steps: int = 1
    pac: int = 10
    log_frequency: bool = True

    def _synthesizer(self, metadata):
        from sdv.single_table import CTGANSynthesizer

        return CTGANSynthesizer(metadata, enable_gpu=False, **self.params())


@dataclass(frozen=True, kw_only=True)
class TVAE(_SDVGenerator):
    """Variational autoencoder for tables (Xu et al. 2019), through SDV."""

    name: ClassVar[str] = "tvae"
    description: ClassVar[str] = "SDV TVAE: variational autoencoder (Xu et al. 2019)"
    epochs: int = 300
    batch_size: int = 500
    embedding_dim: int = 128
    compress_dims: tuple[int, ...] = (128, 128)
    decompress_dims: tuple[int, ...] = (128, 128)
    l2scale: float = 1e-5
    loss_factor: float = 2.0

    def _synthesizer(self, metadata):
        from sdv.single_table import TVAESynthesizer

        return TVAESynthesizer(metadata, enable_gpu=False, **self.params())


@dataclass(frozen=True, kw_only=True)
class CopulaGAN(CTGAN):
    """CTGAN on Gaussian-copula transformed numericals, through SDV."""

    name: ClassVar[str] = "copulagan"
    description: ClassVar[str] = "SDV CopulaGAN: CTGAN on Gaussian-copula transformed columns"
    default_distribution: str = "beta"

    def _synthesizer(self, metadata):
        from sdv.single_table import CopulaGANSynthesizer

        return CopulaGANSynthesizer(metadata, enable_gpu=False, **self.params())
