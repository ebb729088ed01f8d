"""Copy memory (Hochreiter & Schmidhuber, 1997; Arjovsky et al., 2016).

The input is ``copy_len`` symbols drawn from ``num_symbols`` (tokens ``1..num_symbols``), then
``delay - 1`` blanks (token 0), a delimiter (token ``num_symbols + 1``) and ``copy_len`` more
blanks: ``T = delay + 2·copy_len`` steps. The target is blank everywhere except the last
``copy_len`` steps, which must repeat the symbols. A memoryless model can only predict blanks and
then guess uniformly: its cross-entropy per step is ``copy_len·ln(num_symbols)/T``, the baseline
(``10·ln 8/(T + 20)`` for the classic 10 symbols from 8).
"""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gru_jax.tasks._base import Batch, RecurrentModel, Source, Splits, Task
from gru_jax.tasks._schema import check_ranges, setting
from gru_jax.tasks._serving import sequence_serving


@dataclasses.dataclass(frozen=True)
class CopyData:
    """The ``data:`` section of a copy-memory config; sequences are ``delay + 2·copy_len`` long.

    Attributes:
      delay: blank steps between the symbols and the recall, the delimiter included.
      copy_len: how many symbols to remember.
      num_symbols: the alphabet of the symbols to remember.
    """

    delay: int = setting(50, ge=1)  # blanks between the symbols and the delimiter, included
    copy_len: int = setting(10, ge=1)
    num_symbols: int = setting(8, ge=1)


def copy_batch(
    key: jax.Array, batch_size: int, *, delay: int, copy_len: int, num_symbols: int
) -> dict[str, jax.Array]:
    """``inputs (B, T)`` and ``targets (B, T)`` int32 tokens, ``T = delay + 2·copy_len``.

    Args:
      key: the PRNG key that draws the symbols.
      batch_size: ``B``, the sequences in the batch.
      delay, copy_len, num_symbols: as the keys of :class:`CopyData`.

    Example:
      >>> import jax
      >>> from gru_jax.tasks.copy import copy_batch
      >>> b = copy_batch(jax.random.key(0), 1, delay=3, copy_len=2, num_symbols=8)
      >>> b["inputs"].shape
      (1, 7)
      >>> bool((b["targets"][0, -2:] == b["inputs"][0, :2]).all()), int(b["inputs"][0, 4])
      (True, 9)
    """
    symbols = jax.random.randint(key, (batch_size, copy_len), 1, num_symbols + 1)
    blanks = jnp.zeros((batch_size, delay - 1), jnp.int32)
    go = jnp.full((batch_size, 1), num_symbols + 1, jnp.int32)
    tail = jnp.zeros((batch_size, copy_len), jnp.int32)
    inputs = jnp.concatenate([symbols, blanks, go, tail], axis=1)
    targets = jnp.concatenate(
        [jnp.zeros((batch_size, delay + copy_len), jnp.int32), symbols], axis=1
    )
    return {"inputs": inputs.astype(jnp.int32), "targets": targets.astype(jnp.int32)}


class CopyModel(RecurrentModel):
    """Embed → GRU → Dense over blank + the symbols, at every step.

    Attributes:
      num_symbols: the symbols to remember (tokens ``1..num_symbols``); the embedding also has
        the blank and the delimiter, the output the blank.
      embed_dim: the size of the token embedding.
      hidden_size: the recurrent layer's state size (``model.hidden_size``); its other
        options are :class:`~gru_jax.tasks.RecurrentModel`'s keyword-only fields.
    """

    num_symbols: int
    hidden_size: int
    embed_dim: int

    @nn.compact
    def __call__(self, batch: Batch, *, train: bool = False, carry: jax.Array | None = None) -> Any:
        """Logits ``(B, T, 1 + num_symbols)``; given a ``carry (L, B, H)`` (streaming, with
        ``batch["resets"]`` if any), ``(logits, new carry)``."""
        x = nn.Embed(self.num_symbols + 2, self.embed_dim)(batch["inputs"])
        ys, h_n = self.recurrent_layer(return_carry=True)(
            x, resets=batch.get("resets"), initial_carry=carry, deterministic=not train
        )
        logits = nn.Dense(self.num_symbols + 1)(ys)
        return logits if carry is None else (logits, h_n)


def _make_source(data: CopyData, seed: int) -> Source:
    del seed
    check_ranges(data, "data.")  # a config built in Python is checked as a parsed one
    return Source(
        batch=lambda key, batch_size: copy_batch(key, batch_size, **dataclasses.asdict(data))
    )


def _make_model(model: Any, data: CopyData) -> nn.Module:
    return CopyModel.from_config(model, num_symbols=data.num_symbols, embed_dim=model.embed_dim)


def _loss(logits: jax.Array, batch: Batch) -> jax.Array:
    ce: jax.Array = optax.softmax_cross_entropy_with_integer_labels(logits, batch["targets"])
    return ce.mean()


def _metric_sums(model: nn.Module, params: Any, batch: Batch) -> tuple[jax.Array, jax.Array]:
    ce = optax.softmax_cross_entropy_with_integer_labels(
        model.apply(params, batch), batch["targets"]
    )
    return jnp.sum(ce), jnp.asarray(ce.size, jnp.float32)


def baseline(data: CopyData) -> float:
    """The memoryless cross-entropy per step, ``copy_len·ln(num_symbols)/T``.

    Args:
      data: the task's ``data:`` section, a :class:`CopyData`.
    """
    return data.copy_len * math.log(data.num_symbols) / (data.delay + 2 * data.copy_len)


def _report(
    model: nn.Module, params: Any, data: Splits, key: jax.Array, workdir: Path
) -> dict[str, Any]:
    batch = data.eval.batch(key, 256)
    predicted = jnp.argmax(cast(jax.Array, model.apply(params, batch)), axis=-1)
    copy_len = int(jnp.sum(batch["targets"][0] != 0))
    correct = predicted[:, -copy_len:] == batch["targets"][:, -copy_len:]
    lines = [
        f"input   {' '.join(map(str, batch['inputs'][i].tolist()))}\n"
        f"target  {' '.join(map(str, batch['targets'][i, -copy_len:].tolist()))}\n"
        f"copied  {' '.join(map(str, predicted[i, -copy_len:].tolist()))}\n"
        for i in range(4)
    ]
    (workdir / "examples.txt").write_text("\n".join(lines))
    return {
        "symbol_accuracy": float(correct.mean()),
        "sequence_accuracy": float(correct.all(axis=1).mean()),
    }


_INPUTS = (("b", "t"), "int32")  # the inputs: token ids


def _vocab(data: CopyData) -> tuple[str, ...]:
    """The token names, by id: ``<blank>`` (0), the symbols ``1..num_symbols`` (named by their
    ids, as ``examples.txt`` writes them), ``<delimiter>`` (``num_symbols + 1``). The logits
    cover the first ``1 + num_symbols``: a model never outputs the delimiter."""
    return ("<blank>", *map(str, range(1, data.num_symbols + 1)), "<delimiter>")


__all__ = ["TASK", "CopyData", "CopyModel", "baseline", "copy_batch"]

TASK = Task(
    name="copy",
    data_config=CopyData,
    metric="cross_entropy",
    higher_is_better=False,
    make_source=_make_source,
    make_model=_make_model,
    loss=_loss,
    metric_sums=_metric_sums,
    baseline=lambda data: baseline(data.config),
    report=_report,
    **sequence_serving(_INPUTS, "logits", vocab_of=_vocab),
)
"""Copy memory as a :class:`~gru_jax.tasks.Task`:
metric ``cross_entropy`` per step, baseline the memoryless one."""
