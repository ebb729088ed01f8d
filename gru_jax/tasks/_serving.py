"""What ``gru-jax export`` writes for a task: the :class:`Signature` of a prediction function,
and the two functions that most tasks' ``serve`` and ``stream`` are."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypedDict, cast

import flax.linen as nn
import jax

Params = Any


@dataclasses.dataclass(frozen=True)
class Signature:
    """What ``gru-jax export`` writes for a trained model: a function of named arrays.

    Attributes:
      fn: positional arrays, in the order of ``inputs`` -> a tuple of arrays, in the order of
        ``outputs``; the parameters are closed over (constants of the export).
      inputs: ``(name, shape, dtype)`` per argument; a shape's entries are ints or the names of
        symbolic dimensions (``"b"`` the batch, ``"t"`` a length), shared by all inputs.
      outputs: the names of the outputs.
      vocab: for a model whose inputs are token ids, what each id stands for: ``vocab[i]`` is
        the character or the token name of id ``i`` (``len(vocab)`` ids, the size of the
        embedding); ``gru-jax export`` writes it as the ``"vocab"`` list of ``FILE.json``.
        ``None`` (no ``"vocab"``) for float inputs.
    """

    fn: Callable[..., tuple[Any, ...]]
    inputs: tuple[tuple[str, tuple[int | str, ...], str], ...]
    outputs: tuple[str, ...]
    vocab: tuple[str, ...] | None = None


def predict_inputs(
    model: nn.Module,
    params: Params,
    inputs: tuple[tuple[int | str, ...], str],
    output: str,
    *,
    vocab: tuple[str, ...] | None = None,
) -> Signature:
    """The serving :class:`Signature` of a model that predicts from a batch's ``inputs`` alone:
    ``inputs -> (model.apply(params, {"inputs": inputs}),)``, named ``output``.

    Args:
      model: the task's model.
      params: its trained parameters (closed over: constants of the export).
      inputs: the ``(shape, dtype)`` of ``inputs``, with ``"b"`` and ``"t"`` for the symbolic
        batch and length, e.g. ``(("b", "t", 2), "float32")``.
      output: the name of the output.
      vocab: what each token id of ``inputs`` stands for (:attr:`Signature.vocab`); ``None``
        for float inputs.
    """

    def predict(x: jax.Array) -> tuple[jax.Array]:
        return (cast(jax.Array, model.apply(params, {"inputs": x})),)

    shape, dtype = inputs
    return Signature(predict, (("inputs", shape, dtype),), (output,), vocab)


def carry_stream(
    model: nn.Module,
    params: Params,
    inputs: tuple[tuple[int | str, ...], str],
    output: str,
    apply: Callable[[jax.Array, jax.Array, jax.Array], tuple[jax.Array, jax.Array]] | None = None,
    *,
    vocab: tuple[str, ...] | None = None,
) -> Signature:
    """The streaming :class:`Signature` of a model with a unidirectional recurrent stack:
    ``(carry (L, b, H), inputs chunk, resets chunk (b, t) bool) -> (new carry, output)``.

    ``inputs`` is the chunk's ``(shape, dtype)`` with ``"b"`` and ``"t"``; ``apply(carry, x,
    resets) -> (output, new carry)`` defaults to ``model.apply(params, {"inputs": x, "resets":
    resets}, carry=carry)``. Feeding a sequence chunk by chunk, each chunk's carry the last
    one's new carry (zeros at first), gives the per-step outputs of the whole sequence; a
    ``resets`` flag starts a new segment (an episode) at its step, as in :func:`gru_jax.gru`.
    ``vocab``: what each token id of ``inputs`` stands for (:attr:`Signature.vocab`); ``None``
    for float inputs.
    """
    layers, hidden = model.num_layers, model.hidden_size

    def default(carry: jax.Array, x: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        out, new = model.apply(params, {"inputs": x, "resets": resets}, carry=carry)
        return cast(jax.Array, out), cast(jax.Array, new)

    run = apply or default

    def step(carry: jax.Array, x: jax.Array, resets: jax.Array) -> tuple[jax.Array, jax.Array]:
        out, new = run(carry, x, resets)
        return new, out

    shape, dtype = inputs
    return Signature(
        step,
        (
            ("carry", (layers, "b", hidden), "float32"),
            ("inputs", shape, dtype),
            ("resets", ("b", "t"), "bool"),
        ),
        ("carry", output),
        vocab,
    )


class Serving(TypedDict):
    """A task's ``serve`` and ``stream`` (see :class:`Task`), as :func:`sequence_serving` makes
    them."""

    serve: Callable[[nn.Module, Params, Any], Signature]
    stream: Callable[[nn.Module, Params, Any], Signature]


def sequence_serving(
    inputs: tuple[tuple[int | str, ...], str],
    output: str,
    *,
    vocab_of: Callable[[Any], tuple[str, ...]] | None = None,
) -> Serving:
    """``serve`` and ``stream`` for a task whose model maps a batch's ``inputs`` to ``output``
    (:func:`predict_inputs` and :func:`carry_stream`), to pass as ``Task(..., **serving)``.

    Args:
      inputs: the ``(shape, dtype)`` of ``inputs``, with ``"b"`` and ``"t"`` for the symbolic
        batch and length, e.g. ``(("b", "t", 2), "float32")``.
      output: the name of the model's output, e.g. ``"sum"``.
      vocab_of: for token-id inputs, ``data_config -> vocab`` (:attr:`Signature.vocab`, which
        may depend on the data section: copy's on ``num_symbols``); ``None`` for float inputs.
    """

    def vocab(data: Any) -> tuple[str, ...] | None:
        return None if vocab_of is None else vocab_of(data)

    return {
        "serve": lambda model, params, data: predict_inputs(
            model, params, inputs, output, vocab=vocab(data)
        ),
        "stream": lambda model, params, data: carry_stream(
            model, params, inputs, output, vocab=vocab(data)
        ),
    }
