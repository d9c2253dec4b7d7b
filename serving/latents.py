"""Latent vectors keyed by (seed, index): the determinism contract of dermsynth.v1.Generator.

The latent of image ``(seed, index)`` is::

    numpy.random.Generator(numpy.random.PCG64(numpy.random.SeedSequence([seed, index])))
        .standard_normal(latent_dim, dtype=numpy.float32)

``SeedSequence`` hashes the pair (O'Neill's seed_seq-style entropy mixing, as NumPy implements
it) into the PCG64 state, so every image has its own independent stream that depends on the pair
alone: not on which request, batch, thread or process draws it. The same formula is documented in
``protos/dermsynth/v1/generator.proto``; changing it changes every served image, so it must not
change within ``dermsynth.v1``.
"""

from __future__ import annotations

import numpy as np

UINT64_MAX = (1 << 64) - 1


def latent(seed: int, index: int, latent_dim: int) -> np.ndarray:
    """The float32 latent vector [latent_dim] of image ``(seed, index)``."""
    if not (0 <= seed <= UINT64_MAX and 0 <= index <= UINT64_MAX):
        raise ValueError(f"seed and index must be in 0 .. 2**64-1, got {seed}, {index}")
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, index])))
    return rng.standard_normal(latent_dim, dtype=np.float32)


def latents(
    seed: int, start_index: int, count: int, latent_dim: int, out: np.ndarray | None = None
) -> np.ndarray:
    """Latents of images ``start_index .. start_index + count - 1``, float32 [count, latent_dim].

    When ``out`` is given (float32, at least ``count`` rows) the rows are written into it and it
    is returned, so a caller can reuse one padded inference buffer.
    """
    if out is None:
        out = np.empty((count, latent_dim), dtype=np.float32)
    for row in range(count):
        out[row] = latent(seed, start_index + row, latent_dim)
    return out
