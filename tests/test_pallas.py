"""``impl="pallas"``: the fused kernels equal the ``lax.scan`` path in values and gradients, are
real kernels (in the jaxpr, and as Triton calls when lowered for CUDA), and ``impl`` is checked.

On CPU the kernels run interpreted, so the shapes are tiny and the compiled functions shared.
"""

from __future__ import annotations

import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.extend.core import jaxprs_in_params

import gru_jax
from gru_jax._gru import impl as impl_module

B, T, I, H = 3, 5, 2, 3


def _inputs(batch, steps, inputs, hidden, reset_after, dtype=jnp.float32, seed=0):
    k = jax.random.split(jax.random.key(seed), 5)
    params = gru_jax.init_gru(k[0], inputs, hidden, reset_after=reset_after, dtype=dtype)
    xs = jax.random.normal(k[1], (batch, steps, inputs), dtype)
    h0 = jax.random.normal(k[2], (batch, hidden), dtype)
    lengths = jax.random.randint(k[3], (batch,), 0, steps + 1).at[0].set(steps)
    resets = jax.random.bernoulli(k[4], 0.3, (batch, steps))
    return params, xs, h0, lengths, resets


def _loss(params, xs, h0, lengths, resets, *, impl, reverse):
    ys, h_last = gru_jax.gru(
        params, xs, h0, seq_lengths=lengths, resets=resets, reverse=reverse, impl=impl
    )
    w = jnp.arange(1, ys.shape[-1] + 1, dtype=jnp.float32)
    return jnp.sum(ys.astype(jnp.float32) * w) + jnp.sum(h_last.astype(jnp.float32) ** 2)


@functools.cache
def _value_and_grad(impl: str, reverse: bool, masks: str):
    def f(params, xs, h0, lengths, resets):
        lengths = lengths if "lengths" in masks else None
        resets = resets if "resets" in masks else None
        loss = functools.partial(_loss, impl=impl, reverse=reverse)
        outs = gru_jax.gru(params, xs, h0, seq_lengths=lengths, resets=resets, reverse=reverse,
                           impl=impl)  # fmt: skip
        grads = jax.grad(loss, argnums=(0, 1, 2))(params, xs, h0, lengths, resets)
        return outs, grads

    return jax.jit(f)


def _assert_close(got, want, rel):
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        g, w = np.asarray(g, np.float32), np.asarray(w, np.float32)
        scale = max(float(np.abs(w).max()), 1e-6)
        np.testing.assert_allclose(g, w, atol=rel * scale, rtol=0)


@pytest.mark.parametrize("reset_after", [True, False])
@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("masks", ["", "lengths", "resets", "lengths+resets"])
def test_pallas_equals_xla_values_and_gradients(reset_after, reverse, masks):
    args = _inputs(B, T, I, H, reset_after)
    want = _value_and_grad("xla", reverse, masks)(*args)
    got = _value_and_grad("pallas", reverse, masks)(*args)
    _assert_close(got, want, 2e-4)


@pytest.mark.parametrize(
    "shape", [(1, 1, 1, 1), (1, 4, 2, 1), (2, 1, 3, 5), (5, 7, 3, 17)], ids=str
)
def test_pallas_at_sizes_that_are_no_multiple_of_a_block(shape):
    args = _inputs(*shape, reset_after=True, seed=1)
    want = _value_and_grad("xla", False, "lengths+resets")(*args)
    got = _value_and_grad("pallas", False, "lengths+resets")(*args)
    _assert_close(got, want, 2e-4)


@pytest.mark.parametrize("reset_after", [True, False])
def test_pallas_in_bfloat16(reset_after):
    args = _inputs(B, T, I, H, reset_after, dtype=jnp.bfloat16)
    want = _value_and_grad("xla", True, "lengths+resets")(*args)
    got = _value_and_grad("pallas", True, "lengths+resets")(*args)
    (ys, h_last), _ = got
    assert ys.dtype == h_last.dtype == jnp.bfloat16
    _assert_close(got, want, 3e-2)


def test_pallas_bidirectional_two_layer_stack():
    key = jax.random.key(2)
    params = gru_jax.init_gru_stack(key, I, H, num_layers=2, bidirectional=True)
    xs = jax.random.normal(key, (B, T, I))
    lengths = jnp.array([5, 2, 4])

    @functools.partial(jax.jit, static_argnums=2)
    def run(params, xs, impl):
        def loss(params, xs):
            ys, h_n = gru_jax.gru_stack(params, xs, seq_lengths=lengths, impl=impl)
            return jnp.sum(ys**2) + jnp.sum(h_n)

        return gru_jax.gru_stack(params, xs, seq_lengths=lengths, impl=impl), jax.grad(
            loss, argnums=(0, 1)
        )(params, xs)

    _assert_close(run(params, xs, "pallas"), run(params, xs, "xla"), 2e-4)


def test_pallas_under_jvp_vmap_grad_and_grad_vmap():
    params, xs, h0, lengths, resets = _inputs(B, T, I, H, True)
    xb = jnp.stack([xs, 0.5 * xs])

    @functools.partial(jax.jit, static_argnums=0)
    def transforms(impl):
        loss = functools.partial(_loss, impl=impl, reverse=False)
        tangent = jax.tree.map(jnp.ones_like, params)
        jvp = jax.jvp(lambda p: loss(p, xs, h0, lengths, resets), (params,), (tangent,))[1]
        vmap_grad = jax.vmap(jax.grad(loss, argnums=(0, 1)), (None, 0, None, None, None))(
            params, xb, h0, lengths, resets
        )
        grad_vmap = jax.grad(
            lambda p: jnp.sum(jax.vmap(lambda x: loss(p, x, h0, lengths, resets))(xb))
        )(params)
        remat = jax.grad(lambda p: jnp.sum(gru_jax.gru(p, xs, remat=True, impl=impl)[0] ** 2))(
            params
        )
        return jvp, vmap_grad, grad_vmap, remat

    _assert_close(transforms("pallas"), transforms("xla"), 2e-4)


def _top_level_primitives(jaxpr) -> set[str]:
    """The primitives of ``jaxpr`` and of its sub-jaxprs, except inside a ``pallas_call``."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        if eqn.primitive.name == "pallas_call":
            continue
        for sub in jaxprs_in_params(eqn.params):
            names |= _top_level_primitives(sub)
    return names


def _count(jaxpr, name: str) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        count += eqn.primitive.name == name
        if eqn.primitive.name != "pallas_call":
            count += sum(_count(sub, name) for sub in jaxprs_in_params(eqn.params))
    return count


def test_the_kernels_are_real():
    params, xs, h0, lengths, resets = _inputs(B, T, I, H, True)

    def forward(params, xs):
        return gru_jax.gru(params, xs, h0, seq_lengths=lengths, resets=resets, impl="pallas")

    jaxpr = jax.make_jaxpr(forward)(params, xs).jaxpr
    names = _top_level_primitives(jaxpr)
    assert "pallas_call" in names
    assert not {"scan", "while"} & names, names
    grad = jax.grad(lambda p, x: jnp.sum(forward(p, x)[0]), argnums=(0, 1))
    grad_jaxpr = jax.make_jaxpr(grad)(params, xs).jaxpr
    # The forward and the reverse-time kernel, each once per platform branch (interpreted on
    # CPU, Triton on CUDA).
    assert _count(grad_jaxpr, "pallas_call") == 4
    assert not {"scan", "while"} & _top_level_primitives(grad_jaxpr)


@pytest.mark.parametrize("shape", [(5, 23, 7, 33), (2, 3, 4, 1)], ids=str)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.bfloat16], ids=["float32", "bfloat16"])
def test_forward_and_gradient_lower_for_cuda_with_triton_kernels(shape, dtype):
    batch, steps, inputs, hidden = shape
    params = jax.eval_shape(
        lambda: gru_jax.init_gru(jax.random.key(0), inputs, hidden, reset_after=True, dtype=dtype)
    )
    xs = jax.ShapeDtypeStruct((batch, steps, inputs), dtype)
    lengths = jax.ShapeDtypeStruct((batch,), jnp.int32)
    resets = jax.ShapeDtypeStruct((batch, steps), jnp.bool_)

    def forward(params, xs, lengths, resets):
        return gru_jax.gru(params, xs, seq_lengths=lengths, resets=resets, impl="pallas")

    def grad(params, xs, lengths, resets):
        def loss(params, xs):
            return jnp.sum(forward(params, xs, lengths, resets)[0].astype(jnp.float32))

        return jax.grad(loss, argnums=(0, 1))(params, xs)

    for fn, least in ((forward, 1), (grad, 2)):
        lowered = jax.jit(fn).trace(params, xs, lengths, resets).lower(lowering_platforms=("cuda",))
        text = lowered.as_text()
        assert len(re.findall(r"__gpu\$xla\.gpu\.triton", text)) >= least


def test_auto_is_xla_on_cpu_and_compiles_the_same_program():
    params, xs, h0, lengths, resets = _inputs(B, T, I, H, False)

    def text(impl):
        fn = functools.partial(gru_jax.gru, seq_lengths=lengths, resets=resets, impl=impl)
        return jax.jit(fn).lower(params, xs, h0).as_text()

    assert text("auto") == text("xla")


def test_auto_chooses_the_nearest_measured_shape(monkeypatch):
    table = {
        "cuda": ((64, 128, 128, 256, "float32", "pallas"), (1, 512, 32, 128, "float32", "xla"))
    }
    monkeypatch.setattr(impl_module, "MEASURED", table)
    assert impl_module.auto_choice("cuda", 64, 100, 128, 256, "float32") == "pallas"
    assert impl_module.auto_choice("cuda", 1, 1000, 32, 64, "float32") == "xla"
    assert impl_module.auto_choice("cuda", 64, 100, 128, 256, "bfloat16") == "xla"
    assert impl_module.auto_choice("cpu", 64, 100, 128, 256, "float32") == "xla"


@pytest.mark.parametrize("bad", ["cuda", "Pallas", None, 1])
def test_invalid_impl_is_one_clear_error(bad):
    params, xs, *_ = _inputs(B, T, I, H, False)
    with pytest.raises(ValueError, match=r"gru: impl must be one of 'auto', 'xla', 'pallas'"):
        gru_jax.gru(params, xs, impl=bad)
    stack = gru_jax.init_gru_stack(jax.random.key(0), I, H)
    with pytest.raises(ValueError, match=r"gru_stack: impl must be one of"):
        gru_jax.gru_stack(stack, xs, impl=bad)


def test_pallas_on_a_platform_without_the_kernel_is_one_clear_error(monkeypatch):
    params, xs, *_ = _inputs(B, T, I, H, False)
    monkeypatch.setattr(impl_module, "platform", lambda: "tpu")
    with pytest.raises(ValueError, match=r"impl='pallas' runs on NVIDIA GPUs .* not on tpu"):
        gru_jax.gru(params, xs, impl="pallas")
    ys, _ = gru_jax.gru(params, xs, impl="auto")  # "auto" is "xla" there
    assert ys.shape == (B, T, H)


def test_second_derivatives_are_one_clear_error():
    params, xs, *_ = _inputs(B, T, I, H, True)

    def loss(params):
        return jnp.sum(gru_jax.gru(params, xs, impl="pallas")[0] ** 2)

    with pytest.raises(
        NotImplementedError, match=r"second and higher derivatives of impl='pallas'"
    ):
        jax.jvp(jax.grad(loss), (params,), (params,))


def test_the_auto_table_is_generated_from_the_committed_results():
    from benchmarks import auto_table

    assert auto_table.TABLE.read_text() == auto_table.render()
