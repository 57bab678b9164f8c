"""Differentially private synthetic data: accounting, noise, public domains and the mechanisms.

- :mod:`synth.dp.accounting`: budgets, zCDP conversions, mechanism costs, the ledger.
- :mod:`synth.dp.noise`: the exact discrete Gaussian, its thresholds, the exponential mechanism.
- :mod:`synth.dp.private`: :class:`PrivateData`, the one door to the private table.
- :mod:`synth.dp.domain`: the public domain (refused when private, estimated when opted in).
- :mod:`synth.dp.bins`: fine public cells, grouped by the mechanism's own noisy counts.
- :mod:`synth.dp.estimation`: graphical models fitted to noisy marginals (numpy trees, mbi).
- :mod:`synth.dp.base`: the DP generator base (domain, count, one-way marginals, ledger).
- :mod:`synth.dp.mst`, :mod:`synth.dp.aim`, :mod:`synth.dp.privbayes`: one mechanism each;
  :mod:`synth.dp.leaky`: the deliberately leaky reference generator for audits.
- :mod:`synth.dp.sgd`: DP-TVAE and DP-CTGAN, trained with DP-SGD (Opacus), and their leaky
  reference (imported by the registry: it loads torch only when fitting).
"""

from synth.dp.accounting import (
    Accountant,
    Budget,
    BudgetError,
    Step,
    delta_for,
    epsilon_for,
    exponential_rho,
    gaussian_rho,
    gaussian_sigma,
    rho_for,
    split_sigmas,
)
from synth.dp.aim import AIM
from synth.dp.base import DPGenerator, DPState
from synth.dp.bins import Cells, Grouping, column_cells, compress_rare, group_by_mass
from synth.dp.domain import estimate_domain, needs_domain, public_part, require_public_domain
from synth.dp.estimation import Measurement, estimate_tree, noisy_total
from synth.dp.leaky import LeakyMST
from synth.dp.mst import MST
from synth.dp.noise import (
    Noise,
    discrete_gaussian_tail,
    discrete_scale,
    exponential_mechanism,
    threshold_offset,
)
from synth.dp.private import Clique, PrivateData
from synth.dp.privbayes import PrivBayes, count_information_sensitivity

__all__ = [
    "AIM",
    "MST",
    "Accountant",
    "Budget",
    "BudgetError",
    "Cells",
    "Clique",
    "DPGenerator",
    "DPState",
    "Grouping",
    "LeakyMST",
    "Measurement",
    "Noise",
    "PrivBayes",
    "PrivateData",
    "Step",
    "column_cells",
    "compress_rare",
    "count_information_sensitivity",
    "delta_for",
    "discrete_gaussian_tail",
    "discrete_scale",
    "epsilon_for",
    "estimate_domain",
    "estimate_tree",
    "exponential_mechanism",
    "exponential_rho",
    "gaussian_rho",
    "gaussian_sigma",
    "group_by_mass",
    "needs_domain",
    "noisy_total",
    "public_part",
    "require_public_domain",
    "rho_for",
    "split_sigmas",
    "threshold_offset",
]
