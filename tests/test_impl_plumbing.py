"""``impl`` around the core: the linen and NNX ``GRU`` modules pass their ``impl`` to
:func:`gru_jax.gru_stack` (and give the same outputs with the Pallas kernel as with the scan);
the config key ``model.impl`` (default ``"auto"``, one line for a wrong value, no effect for the
minGRU, free to change on ``--resume``) reaches the task models; and ``gru-jax export`` builds
its function with ``impl="xla"`` whatever the config says, so no Triton call is serialized."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import gru_jax.linen
import gru_jax.nnx
import gru_jax.train._export
from gru_jax import serving
from gru_jax.cli import main as cli_main
from gru_jax.tasks import get_task, make_rnn
from gru_jax.train import ModelConfig, config_differences, config_to_dict, load_config

ROOT = Path(__file__).resolve().parent.parent
ADDING = str(ROOT / "configs" / "adding.yaml")
B, T, I, H = 2, 5, 3, 4
IMPLS = ("auto", "xla", "pallas")


def _xs() -> jax.Array:
    return jax.random.normal(jax.random.key(1), (B, T, I), jnp.float32)


def _spy(monkeypatch: pytest.MonkeyPatch, module: Any) -> list[Any]:
    """Record the ``impl`` of every call of ``module.gru_stack`` (the real one still runs)."""
    seen: list[Any] = []
    real = module.gru_stack

    def spy(*args: Any, **kwargs: Any) -> Any:
        seen.append(kwargs.get("impl", "<not passed>"))
        return real(*args, **kwargs)

    monkeypatch.setattr(module, "gru_stack", spy)
    return seen


def _linen_ys(impl: str | None, **options: Any) -> jax.Array:
    kwargs = {} if impl is None else {"impl": impl}
    layer = gru_jax.linen.GRU(features=H, **options, **kwargs)
    xs = _xs()
    variables = layer.init(jax.random.key(0), xs)  # the same parameters for every impl
    return jax.jit(layer.apply)(variables, xs, seq_lengths=jnp.array([5, 2]))


def _nnx_ys(impl: str | None, **options: Any) -> jax.Array:
    kwargs = {} if impl is None else {"impl": impl}
    layer = gru_jax.nnx.GRU(I, H, **options, **kwargs, rngs=nnx.Rngs(0))
    assert layer.impl == ("auto" if impl is None else impl)
    return nnx.jit(lambda m, x: m(x, seq_lengths=jnp.array([5, 2])))(layer, _xs())


# ------------------------------------------------------------------------------ the modules


@pytest.mark.parametrize("impl", IMPLS)
def test_linen_gru_passes_impl(impl: str, monkeypatch: pytest.MonkeyPatch):
    seen = _spy(monkeypatch, gru_jax.linen)
    _linen_ys(impl)
    assert seen and set(seen) == {impl}
    seen.clear()
    _linen_ys(None)
    assert seen and set(seen) == {"auto"}  # the default


@pytest.mark.parametrize("impl", IMPLS)
def test_nnx_gru_passes_impl(impl: str, monkeypatch: pytest.MonkeyPatch):
    seen = _spy(monkeypatch, gru_jax.nnx)
    _nnx_ys(impl)
    assert seen == [impl]
    seen.clear()
    _nnx_ys(None)
    assert seen == ["auto"]


@pytest.mark.parametrize("ys", [_linen_ys, _nnx_ys], ids=["linen", "nnx"])
@pytest.mark.parametrize("options", [{}, {"num_layers": 2, "bidirectional": True}])
def test_the_kernel_gives_the_scans_outputs(ys: Any, options: dict[str, Any]):
    want = ys("xla", **options)
    for impl in (None, "pallas"):  # None: the default, "auto"
        np.testing.assert_allclose(ys(impl, **options), want, rtol=0, atol=2e-4)


def test_a_wrong_impl_names_it():
    with pytest.raises(ValueError, match="impl"):
        _linen_ys("cuda")
    with pytest.raises(ValueError, match="impl"):
        _nnx_ys("cuda")


# ------------------------------------------------------------------------------ the config


def test_model_impl_defaults_to_auto_and_reaches_the_models():
    assert load_config(ADDING).model.impl == "auto" and ModelConfig().impl == "auto"
    config = load_config(ADDING, ["model.impl=pallas"])
    assert config.model.impl == "pallas"
    assert get_task("adding").make_model(config.model, config.data).impl == "pallas"
    layer = make_rnn(config.model)
    assert isinstance(layer, gru_jax.linen.GRU) and layer.impl == "pallas"
    # accepted with the minGRU, without effect (MinGRUStack has no impl)
    mingru = load_config(ADDING, ["model.cell=mingru", "model.impl=pallas"])
    assert isinstance(make_rnn(mingru.model), gru_jax.linen.MinGRUStack)


def test_model_impl_may_change_on_resume():
    saved = config_to_dict(load_config(ADDING))
    for impl in IMPLS:
        assert config_differences(saved, load_config(ADDING, [f"model.impl={impl}"])) == []
    del saved["model"]["impl"]  # a run saved before the key existed
    assert config_differences(saved, load_config(ADDING, ["model.impl=xla"])) == []


def test_a_wrong_model_impl_is_one_line(capsys: pytest.CaptureFixture[str]):
    capsys.readouterr()
    assert cli_main(["train", ADDING, "--set", "model.impl=cuda"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and err == (
        "gru-jax: error: config key 'model.impl' must be one of ['auto', 'xla', 'pallas']; "
        "got 'cuda'\n"
    )


# ------------------------------------------------------------------------------ export

TINY = [
    "model.impl=pallas",
    "data.seq_len=4",
    "model.hidden_size=4",
    "train.batch_size=4",
    "train.steps=2",
    "train.eval_every=2",
    "train.eval_batches=1",
    "train.checkpoint_every=2",
]


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


def test_export_of_a_pallas_run_uses_the_scan(tmp_path: Path, monkeypatch):
    workdir = tmp_path / "run"
    assert cli_main(["train", ADDING, "--workdir", str(workdir), *_sets(TINY)]) == 0
    seen = _spy(monkeypatch, gru_jax.linen)
    traced: list[Any] = []  # the impls of the exported function (not of restoring the run)

    def export_signature(*args: Any, **kwargs: Any) -> Any:
        seen.clear()
        result = real_export_signature(*args, **kwargs)
        traced.extend(seen)
        return result

    real_export_signature = gru_jax.train._export.export_signature
    monkeypatch.setattr(gru_jax.train._export, "export_signature", export_signature)
    for streaming in (False, True):
        out = tmp_path / f"model-{streaming}.jax"
        argv = ["export", ADDING, "--workdir", str(workdir), "--out", str(out), *_sets(TINY)]
        assert cli_main(argv + (["--streaming"] if streaming else [])) == 0
        assert traced and set(traced) == {"xla"}
        traced.clear()
        exported = jax.export.deserialize(bytearray(out.read_bytes()))
        assert "triton" not in exported.mlir_module().lower()
        predict, _ = serving.load(out)
        xs = jnp.ones((3, 6, 2), jnp.float32)
        if streaming:
            carry, ys = predict(jnp.zeros((1, 3, 4), jnp.float32), xs, jnp.zeros((3, 6), bool))
            assert carry.shape == (1, 3, 4) and ys.shape == (3,)
        else:
            assert predict(xs)[0].shape == (3,)
