"""synthguard: synthetic tables with a fidelity, utility and privacy audit before release.

The library lives in the ``synth``, ``attacks``, ``audit`` and ``reports`` packages; this package
holds the command-line composition root.
"""

__version__ = "0.1.0"
