"""Type stubs of the C++ extension (csrc/python/bindings.cpp)."""

import numpy as np
from numpy.typing import NDArray

class Index:
    def __init__(
        self,
        codes: NDArray[np.generic],
        storage: str,
        dim: int = 0,
        scales: NDArray[np.float32] | None = None,
    ) -> None: ...
    def search(
        self,
        queries: NDArray[np.generic],
        k: int,
        threads: int = 0,
        projection: NDArray[np.float32] | None = None,
        projection_mean: NDArray[np.float32] | None = None,
        shortlist: int = 0,
        rerank: Index | None = None,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]: ...
    def search_int8(
        self,
        queries: NDArray[np.int8],
        query_scales: NDArray[np.float32],
        k: int,
        threads: int = 0,
    ) -> tuple[NDArray[np.int64], NDArray[np.float32]]: ...
    @property
    def count(self) -> int: ...
    @property
    def dim(self) -> int: ...
    @property
    def storage(self) -> str: ...
    @property
    def nbytes(self) -> int: ...

def encode(
    descriptors: NDArray[np.float32], storage: str
) -> tuple[NDArray[np.generic], NDArray[np.float32] | None]: ...
def simd_level() -> str: ...
def detected_simd_level() -> str: ...
def available_simd_levels() -> list[str]: ...
def force_simd_level(level: str | None) -> None: ...
def resolve_threads(threads: int) -> int: ...
