"""Preemption: SIGTERM and SIGINT turned into "checkpoint after this step, then stop".

With ``handle_signals=True``, :func:`~gru_jax.train.train_and_evaluate` polls
:class:`StopRequests` once per step; every process of a run stops after the same step, which is
checkpointed, and the call raises :class:`Preempted`.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P


class Preempted(Exception):
    """The run stopped on SIGTERM or SIGINT, after checkpointing its last step.

    Raised by :func:`train_and_evaluate` with ``handle_signals=True``; ``--resume`` continues
    the run exactly. The ``gru-jax`` command exits with ``128 + signum`` (143 or 130).

    Attributes:
      signum: the signal's number.
      step: the step the checkpoint holds.
    """

    def __init__(self, signum: int, step: int):
        super().__init__(
            f"stopped by {signal.Signals(signum).name} after step {step} (checkpointed)"
        )
        self.signum = signum
        self.step = step


class StopRequests:
    """SIGTERM and SIGINT, turned into "stop after this step" (a context manager).

    The first signal is recorded and later ones are ignored until the run has checkpointed, so
    that a scheduler's repeated signals or a second Ctrl-C cannot interrupt the checkpoint.
    :meth:`poll` is called once per step and says after which step to stop: in one process, as
    soon as a signal arrived; over several processes, each step's flags are combined by a
    collective maximum whose result is read one step later, so every process stops after the
    same step without waiting on the collective.
    """

    def __init__(self, enabled: bool, mesh: Mesh):
        self.enabled = enabled
        self.signum = 0
        self.several = jax.process_count() > 1
        self._previous: dict[int, Any] = {}
        self._pending: jax.Array | None = None
        if self.several:
            self._local = len(mesh.local_devices)
            self._sharding = NamedSharding(mesh, P("data"))
            self._max = jax.jit(jnp.max, out_shardings=NamedSharding(mesh, P()))

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        del frame
        if not self.signum:
            self.signum = signum

    def __enter__(self) -> StopRequests:
        if self.enabled and threading.current_thread() is threading.main_thread():
            for s in (signal.SIGINT, signal.SIGTERM):
                self._previous[s] = signal.signal(s, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for s, handler in self._previous.items():
            signal.signal(s, handler)

    def poll(self) -> int:
        """The signal to stop on after the step just dispatched (0: go on)."""
        if not self.enabled:
            return 0
        if not self.several:
            return self.signum
        local = np.full((self._local,), self.signum, np.int32)
        flags = jax.make_array_from_process_local_data(self._sharding, local)
        previous, self._pending = self._pending, self._max(flags)
        return 0 if previous is None else int(previous)
