"""PySAL's esda as the independent reference for Gi*, shared by the tests that compare with it."""
from __future__ import annotations

import pytest
import scipy.sparse as sp


def esda_gi_z(values, w):
    """esda's Gi* z (binary weights, the cell in its own neighbourhood) for a sparse neighbour matrix
    ``w`` that includes the diagonal, as ``grid.neighbours`` builds it; skips when esda is missing."""
    esda = pytest.importorskip("esda")
    libpysal = pytest.importorskip("libpysal")
    n = w.shape[0]
    W = libpysal.weights.WSP(sp.csr_matrix(w - sp.eye(n))).to_W(silence_warnings=True)
    return esda.G_Local(values, W, transform="B", star=True, permutations=0).Zs
