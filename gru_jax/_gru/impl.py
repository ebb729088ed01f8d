"""Which implementation runs the recurrence: ``impl`` of :func:`gru_jax.gru` and
:func:`gru_jax.gru_stack`, resolved in Python before tracing.

``"xla"`` is the ``lax.scan`` path (:mod:`gru_jax._gru.jvp`), ``"pallas"`` the fused kernels
(:mod:`gru_jax._gru.fused`), and ``"auto"`` picks one per platform and shape from
:data:`gru_jax._gru.auto_table.MEASURED`, which ``benchmarks/auto_table.py`` generates from the
measurements committed in ``benchmarks/results/``: at the measured shape nearest to the call's
(in log scale), the faster of the two. A platform with no measurements gets ``"xla"``, so
``"auto"`` changes no program there.
"""

from __future__ import annotations

import math
from typing import Any, Literal, cast

import jax

from gru_jax._gru.auto_table import MEASURED

Impl = Literal["auto", "xla", "pallas"]
IMPLS = ("auto", "xla", "pallas")
KERNEL_PLATFORMS = ("cpu", "cuda")
"""Where ``"pallas"`` runs: compiled with Triton on NVIDIA GPUs, interpreted on CPU."""


def platform() -> str:
    """The default backend's platform: ``"cpu"``, ``"cuda"``, ``"rocm"`` or ``"tpu"``."""
    backend = jax.default_backend()
    if backend == "gpu":
        version = str(getattr(jax.devices()[0].client, "platform_version", "")).lower()
        return "rocm" if "rocm" in version else "cuda"
    return backend


def auto_choice(
    where: str, batch: int, steps: int, input_size: int, hidden: int, dtype: str
) -> Literal["xla", "pallas"]:
    """The faster implementation at the measured shape of ``where`` (a platform) nearest to
    ``(batch, steps, input_size, hidden)`` in ``dtype``; ``"xla"`` if none was measured."""
    rows = [r for r in MEASURED.get(where, ()) if r[4] == dtype]
    if not rows:
        return "xla"
    shape = (batch, steps, input_size, hidden)

    def distance(row: tuple[Any, ...]) -> float:
        pairs = zip(shape, row[:4], strict=True)
        return sum(abs(math.log(max(a, 1)) - math.log(max(b, 1))) for a, b in pairs)

    return cast(Literal["xla", "pallas"], min(rows, key=distance)[5])


def check_impl(fn: str, impl: object) -> None:
    if not isinstance(impl, str) or impl not in IMPLS:
        raise ValueError(f"{fn}: impl must be one of 'auto', 'xla', 'pallas'; got {impl!r}")


def resolve_impl(
    fn: str,
    impl: object,
    *,
    batch: int,
    steps: int,
    input_size: int,
    hidden: int,
    dtype: str,
) -> Literal["xla", "pallas"]:
    """``impl`` checked and resolved to ``"xla"`` or ``"pallas"``, before tracing."""
    check_impl(fn, impl)
    where = platform()
    if impl == "auto":
        if where not in KERNEL_PLATFORMS:
            return "xla"
        return auto_choice(where, batch, steps, input_size, hidden, dtype)
    if impl == "pallas" and where not in KERNEL_PLATFORMS:
        raise ValueError(
            f"{fn}: impl='pallas' runs on NVIDIA GPUs (Triton) and on CPU (interpreted), not on "
            f"{where}; use impl='xla'"
        )
    return impl  # type: ignore[return-value]
