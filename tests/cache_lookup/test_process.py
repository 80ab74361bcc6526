"""What the service process sets up before it serves: numpy's BLAS threads."""

from __future__ import annotations

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits  # type: ignore[import-untyped]

from semnexus_cache_lookup.__main__ import limit_blas_threads
from semnexus_cache_lookup.config import CacheSettings


def _blas_threads() -> list[int]:
    return [int(pool["num_threads"]) for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_service_caps_numpys_blas_pool_at_its_setting() -> None:
    """An OpenBLAS worker spinning beside the event loop cost half a core at saturation."""
    assert np.ones((2, 2)) @ np.ones((2, 2)) is not None  # numpy's BLAS is loaded
    assert _blas_threads(), "numpy's BLAS is not visible to threadpoolctl"
    # Two threads to start from, whatever this machine's default; restored after the test.
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == [2] * len(_blas_threads())
        limit_blas_threads(CacheSettings(blas_threads=1))
        assert _blas_threads() == [1] * len(_blas_threads())


def test_no_setting_leaves_the_librarys_default() -> None:
    with threadpool_limits(limits=2, user_api="blas"):
        limit_blas_threads(CacheSettings(blas_threads=None))
        assert _blas_threads() == [2] * len(_blas_threads())
