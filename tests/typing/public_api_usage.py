"""gru_jax's public API as a user's type checker sees it (checked by ``make typecheck``).

Not a test module (no ``test_`` prefix, so pytest only imports it, which runs nothing): mypy
reads it through ``[tool.mypy] files`` in pyproject.toml. Each ``assert_type`` states a return
type that users rely on; each misuse in :func:`misuses` carries ``# type: ignore[<code>]``, and
``warn_unused_ignores`` fails the check if mypy ever stops rejecting it. Run as a script
(``python tests/typing/public_api_usage.py``) it also executes the cheap parts on tiny shapes;
training, and the misuses, are type-checked but never called.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any, assert_type

import flax.linen as linen
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

import gru_jax
import gru_jax.interop
import gru_jax.linen
import gru_jax.nnx
import gru_jax.tasks
import gru_jax.train
from gru_jax import GRUParams, GRUStackParams, MinGRUParams

CONFIG = Path(__file__).resolve().parents[2] / "configs" / "adding.yaml"


def core() -> None:
    """The pure functions: parameters in, ``jax.Array``\\ s out."""
    key = jax.random.key(0)
    xs = jnp.ones((2, 5, 3))  # (B, T, I)

    params = gru_jax.init_gru(key, 3, 4, reset_after=True, dtype=jnp.float32)
    assert_type(params, GRUParams)
    assert_type(params.w_x, jax.Array)
    assert_type(params.hidden_size, int)
    assert_type(params.replace(b_h=jnp.zeros(12)), GRUParams)
    assert_type(gru_jax.init_gru(key, 3, 4, chrono=100), GRUParams)  # chrono init of b_z
    assert_type(gru_jax.init_mingru(key, 3, 4, chrono=100), MinGRUParams)

    ys, h = gru_jax.gru(params, xs)
    assert_type(ys, jax.Array)
    assert_type(h, jax.Array)
    # NumPy inputs, an initial state, lengths and the keyword options are all accepted.
    ys, h = gru_jax.gru(
        params, np.ones((5, 3), np.float32), h0=np.zeros(4, np.float32), reverse=True, unroll=2
    )
    ys, h = gru_jax.gru(params, xs, seq_lengths=jnp.array([5, 2]), remat=True)
    assert_type(gru_jax.gru_cell(params, jnp.zeros((2, 4)), xs[:, 0]), jax.Array)

    stack = gru_jax.init_gru_stack(key, 3, 4, num_layers=2, bidirectional=True)
    assert_type(stack, GRUStackParams)
    assert_type(stack[1][0], GRUParams)
    ys, h_n = gru_jax.gru_stack(stack, xs, dropout_rate=0.5, deterministic=False, key=key)
    assert_type(ys, jax.Array)
    assert_type(h_n, jax.Array)

    mparams = gru_jax.init_mingru(key, 3, 4, candidate="g")
    assert_type(mparams, MinGRUParams)
    assert_type(mparams.replace(b_x=jnp.zeros(8)), MinGRUParams)
    ys, h = gru_jax.mingru(mparams, xs, mode="parallel")
    assert_type(ys, jax.Array)
    assert_type(h, jax.Array)
    assert_type(gru_jax.mingru_cell(mparams, h, xs[:, 0]), jax.Array)

    # The pure functions compose with JAX's transformations.
    def loss(p: GRUParams, xs: jax.Array) -> jax.Array:
        ys, _ = gru_jax.gru(p, xs)
        return jnp.mean(ys**2)

    grads = jax.grad(loss)(params, xs)
    assert isinstance(grads, GRUParams)


class Classifier(linen.Module):
    """A user's linen model with a :class:`gru_jax.linen.GRU` inside."""

    features: int = 4

    @linen.compact
    def __call__(self, xs: jax.Array) -> jax.Array:
        out = gru_jax.linen.GRU(features=self.features, num_layers=2, unroll=1)(xs)
        # return_carry=False here, but the type covers both forms of the output.
        assert_type(out, jax.Array | tuple[jax.Array, jax.Array])
        assert isinstance(out, jax.Array)
        return linen.Dense(1)(out[..., -1, :])


def flax_wrappers() -> None:
    """The Flax linen and NNX layers."""
    xs = jnp.ones((2, 5, 3))
    model = Classifier()
    variables = model.init(jax.random.key(0), xs)
    logits = model.apply(variables, xs)
    assert isinstance(logits, jax.Array) and logits.shape == (2, 1)
    cell = gru_jax.linen.GRUCell(features=4)
    assert_type(cell.initialize_carry(jax.random.key(1), (2, 3)), jax.Array)

    layer = gru_jax.nnx.GRU(3, 4, bidirectional=True, return_carry=True, rngs=nnx.Rngs(0))
    out = layer(xs, seq_lengths=jnp.array([5, 2]))
    assert_type(out, jax.Array | tuple[jax.Array, jax.Array])
    assert_type(layer.gru_params, GRUStackParams)
    layer.load_gru_params(gru_jax.init_gru_stack(jax.random.key(2), 3, 4, bidirectional=True))

    nnx_cell = gru_jax.nnx.GRUCell(3, 4, rngs=nnx.Rngs(0))
    carry = nnx_cell.initialize_carry((2, 3))
    assert_type(carry, jax.Array)
    carry, y = nnx_cell(carry, xs[:, 0])
    assert_type(y, jax.Array)
    assert_type(nnx_cell.gru_params, GRUParams)


def interop() -> None:
    """torch state dicts and weight files."""
    stack = gru_jax.init_gru_stack(jax.random.key(0), 3, 4, num_layers=2, reset_after=True)
    state_dict = gru_jax.interop.to_torch(stack, prefix="rnn.")
    assert_type(state_dict, dict[str, Any])
    back = gru_jax.interop.from_torch(state_dict, prefix="rnn.")
    assert_type(back, GRUStackParams)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "params.npz"
        gru_jax.interop.save_params(path, back)
        gru_jax.interop.save_params(str(path), back[0][0])
        loaded = gru_jax.interop.load_params(path)
        assert_type(loaded, GRUParams | GRUStackParams)
        # A user narrows the union with isinstance, as the docs show.
        cell = loaded if isinstance(loaded, GRUParams) else loaded[0][0]
        assert_type(cell, GRUParams)
    nnx_cell = gru_jax.interop.to_flax_nnx(stack[0][0].replace(b_h=jnp.zeros(12)))
    assert_type(nnx_cell, nnx.GRUCell)
    assert_type(gru_jax.interop.from_flax_nnx(nnx_cell), GRUParams)


def tasks_and_config() -> gru_jax.train.Config:
    """A config and a task's data, without training."""
    config = gru_jax.train.load_config(CONFIG, ["train.steps=1", "model.hidden_size=4"])
    assert_type(config, gru_jax.train.Config)
    assert_type(config.train.steps, int)
    task = gru_jax.tasks.get_task(config.task)
    assert_type(task, gru_jax.tasks.Task)
    source = task.make_source(config.data, config.seed)
    assert_type(source, gru_jax.tasks.Source)
    batch = source.batch(jax.random.key(0), 2)
    assert_type(batch, Mapping[str, jax.Array])
    return config


def train(config: gru_jax.train.Config, workdir: Path) -> float:
    """Type-checked, never called here (training is too slow for this file)."""
    summary = gru_jax.train.train_and_evaluate(config, workdir, resume=True, stop_after=1)
    assert_type(summary, dict[str, Any] | None)
    return 0.0 if summary is None else float(summary["value"])


def misuses() -> None:  # pragma: no cover - type-checked, never called
    """Mistakes mypy must reject: each ignore is unused, an error, if mypy accepts the line."""
    key = jax.random.key(0)
    xs = jnp.ones((2, 5, 3))
    params = gru_jax.init_gru(key, 3, 4)
    stack = gru_jax.init_gru_stack(key, 3, 4)
    mparams = gru_jax.init_mingru(key, 3, 4)

    gru_jax.init_gru(key, 3, "4")  # type: ignore[arg-type]
    gru_jax.init_gru(key, 3, 4, True)  # type: ignore[call-arg]
    gru_jax.init_gru_stack(key, 3, 4, num_layers=2.0)  # type: ignore[arg-type]
    gru_jax.init_gru(key, 3, 4, chrono=100.0)  # type: ignore[arg-type]
    gru_jax.gru(stack, xs)  # type: ignore[arg-type]
    gru_jax.gru(params)  # type: ignore[call-arg]
    gru_jax.gru(params, xs, reverse="yes")  # type: ignore[arg-type]
    gru_jax.gru(params, xs, unroll="2")  # type: ignore[arg-type]
    gru_jax.gru_stack(params, xs)  # type: ignore[arg-type]
    gru_jax.mingru(params, xs)  # type: ignore[arg-type]
    gru_jax.gru_cell(mparams, xs, xs)  # type: ignore[arg-type]
    ys, h, extra = gru_jax.gru(params, xs)  # type: ignore[misc]
    steps: int = gru_jax.gru_cell(params, xs, xs)  # type: ignore[assignment]
    params.w_x = xs  # type: ignore[misc]
    gru_jax.linen.GRU(features="8")  # type: ignore[arg-type]
    gru_jax.nnx.GRU(3, 8)  # type: ignore[call-arg]
    gru_jax.interop.save_params(42, params)  # type: ignore[arg-type]
    gru_jax.interop.from_torch(stack)  # type: ignore[arg-type]
    ours = gru_jax.nnx.GRUCell(3, 4, reset_after=True, rngs=nnx.Rngs(0))  # not a flax.nnx.GRUCell
    gru_jax.interop.to_flax_nnx(params, cell=ours)  # type: ignore[arg-type]
    gru_jax.train.load_config(["configs/adding.yaml"])  # type: ignore[arg-type]
    gru_jax.tasks.get_task(1)  # type: ignore[arg-type]
    del steps, ys, h, extra


def main() -> None:
    core()
    flax_wrappers()
    interop()
    tasks_and_config()
    print("public_api_usage: ok")


if __name__ == "__main__":
    main()
