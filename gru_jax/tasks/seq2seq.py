"""Sequence to sequence: an encoder–decoder GRU learns to reverse and encipher words.

A source is a word of ``min_len`` to ``max_len`` letters from an alphabet of ``num_symbols``
letters (``a``, ``b``, ...), uniform length and letters. Its "translation" is the word reversed,
each letter shifted by half the alphabet (ROT-``num_symbols/2``; ROT13 for 26 letters): with 16
letters ``cab`` becomes ``jik``. The model (Cho et al., 2014; Sutskever et al., 2014) reads the
source with a bidirectional GRU, turns the final states into the decoder's initial state, and the
decoder GRU writes the target one token at a time, ending with ``EOS``: teacher-forced in
training, greedy (each step's argmax fed back with the carry) in evaluation.

Tokens: ``PAD = 0``, ``BOS = 1``, ``EOS = 2``, letter ``k`` is ``3 + k``, in source and target.

Metric: sequence accuracy of greedy decoding (higher is better): a sequence is correct iff its
decoded tokens up to and including the first ``EOS`` equal the target and its ``EOS`` exactly.
Baseline: a word-by-word translation that enciphers but does not reorder; it is right exactly on
palindromes, so its expected accuracy is the mean over lengths ``L`` of ``num_symbols^-⌊L/2⌋``
(≈ 0.015 for the default 16 letters and lengths 2–10).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gru_jax.tasks._base import Batch, RecurrentModel, Source, Splits, Task
from gru_jax.tasks._plots import series_plot
from gru_jax.tasks._schema import ConfigError, check_ranges, setting
from gru_jax.tasks._serving import Signature

PAD, BOS, EOS = 0, 1, 2
"""The special tokens (padding, beginning and end of sequence); the letters follow them."""

NUM_SPECIAL = 3
"""How many special tokens come before the letters (letter ``i`` is token ``NUM_SPECIAL + i``)."""


@dataclasses.dataclass(frozen=True)
class Seq2SeqData:
    """The ``data:`` section of a seq2seq config.

    Attributes:
      num_symbols: letters in the alphabet (``a`` to ``z``: at most 26).
      min_len: the shortest word (at most ``max_len``).
      max_len: the longest word.
      num_examples: decoded examples written to ``examples.txt`` at the end of training
        (report only: it may change when a run is resumed).
    """

    num_symbols: int = setting(16, ge=1, le=26)  # letters in the alphabet
    min_len: int = setting(2, ge=1)
    max_len: int = setting(10, ge=1)
    num_examples: int = setting(8, ge=0, may_change=True)  # examples written to examples.txt

    def validate(self) -> None:
        """The constraint between keys, checked when the config is parsed."""
        if self.min_len > self.max_len:
            raise ConfigError(
                f"config keys 'data.min_len' ({self.min_len}) and 'data.max_len' "
                f"({self.max_len}) must satisfy min_len <= max_len"
            )


def translate(symbols: Any, num_symbols: int) -> Any:
    """The letter-by-letter cipher on symbol indices ``0..num_symbols-1``: shift by half.

    Args:
      symbols: symbol indices (not tokens), an int or an integer array of any shape.
      num_symbols: letters in the alphabet; the shift is ``num_symbols // 2``, modulo
        ``num_symbols``.
    """
    return (symbols + num_symbols // 2) % num_symbols


def seq2seq_batch(
    key: jax.Array, batch_size: int, num_symbols: int, min_len: int, max_len: int
) -> dict[str, jax.Array]:
    """One batch, deterministic in ``key``; every array is int32 with a leading batch axis.

    ``source (B, max_len)``: letters, then ``PAD``; ``source_lengths (B,)``; ``targets
    (B, max_len + 1)``: the reversed, enciphered letters, ``EOS``, then ``PAD``;
    ``decoder_inputs (B, max_len + 1)``: ``BOS`` followed by ``targets[:, :-1]`` (teacher forcing).

    Args:
      key: the PRNG key that draws the lengths and the letters.
      batch_size: ``B``, the words in the batch.
      num_symbols, min_len, max_len: as the keys of :class:`Seq2SeqData`; a word's length is
        uniform in ``[min_len, max_len]``.

    Example:
      >>> import jax
      >>> from gru_jax.tasks.seq2seq import seq2seq_batch
      >>> b = seq2seq_batch(jax.random.key(0), 2, num_symbols=16, min_len=3, max_len=5)
      >>> {k: v.shape for k, v in b.items()}
      {'source': (2, 5), 'source_lengths': (2,), 'targets': (2, 6), 'decoder_inputs': (2, 6)}
    """
    k_lengths, k_symbols = jax.random.split(key)
    lengths = jax.random.randint(k_lengths, (batch_size,), min_len, max_len + 1, dtype=jnp.int32)
    symbols = jax.random.randint(k_symbols, (batch_size, max_len), 0, num_symbols, dtype=jnp.int32)
    positions = jnp.arange(max_len, dtype=jnp.int32)
    source = jnp.where(positions < lengths[:, None], symbols + NUM_SPECIAL, PAD)
    reversed_index = jnp.clip(lengths[:, None] - 1 - positions, 0, max_len - 1)
    reversed_symbols = jnp.take_along_axis(symbols, reversed_index, axis=1)
    body = jnp.pad(translate(reversed_symbols, num_symbols) + NUM_SPECIAL, ((0, 0), (0, 1)))
    out_positions = jnp.arange(max_len + 1, dtype=jnp.int32)
    targets = jnp.where(
        out_positions < lengths[:, None],
        body,
        jnp.where(out_positions == lengths[:, None], EOS, PAD),
    ).astype(jnp.int32)
    bos = jnp.full((batch_size, 1), BOS, jnp.int32)
    return {
        "source": source.astype(jnp.int32),
        "source_lengths": lengths,
        "targets": targets,
        "decoder_inputs": jnp.concatenate([bos, targets[:, :-1]], axis=1),
    }


class Seq2Seq(RecurrentModel):
    """Encoder: Embed → bidirectional :class:`~gru_jax.linen.GRU` (with ``seq_lengths``) → each
    layer's final forward and backward states → Dense + tanh → the decoder's initial carry.
    Decoder: Embed → GRU from that carry → Dense: logits ``(B, T_out, V)``.

    Attributes:
      vocab_size: ``V``, the tokens of source and target: :data:`NUM_SPECIAL` + the letters.
      embed_dim: the size of the token embeddings (one for the source, one for the target).
      hidden_size: the state size of the encoder's and the decoder's recurrent layers
        (``model.hidden_size``); their other options are
        :class:`~gru_jax.tasks.RecurrentModel`'s keyword-only fields.
    """

    vocab_size: int
    embed_dim: int
    hidden_size: int

    def setup(self) -> None:
        self.source_embed = nn.Embed(self.vocab_size, self.embed_dim)
        self.encoder = self.recurrent_layer(bidirectional=True, return_carry=True)
        self.bridge = nn.Dense(self.hidden_size)
        self.target_embed = nn.Embed(self.vocab_size, self.embed_dim)
        self.decoder = self.recurrent_layer(return_carry=True)
        self.head = nn.Dense(self.vocab_size)

    def encode(
        self, source: jax.Array, lengths: jax.Array, *, deterministic: bool = True
    ) -> jax.Array:
        """``source (B, S)``, ``lengths (B,)`` -> the decoder's initial carry ``(L, B, H)``."""
        _, h_n = self.encoder(
            self.source_embed(source), seq_lengths=lengths, deterministic=deterministic
        )
        h_n = h_n.reshape(self.num_layers, 2, *h_n.shape[1:])  # (L, D, B, H), forward first
        return jnp.tanh(self.bridge(jnp.concatenate([h_n[:, 0], h_n[:, 1]], axis=-1)))

    def decode(
        self, tokens: jax.Array, carry: jax.Array, *, deterministic: bool = True
    ) -> tuple[jax.Array, jax.Array]:
        """``tokens (B, T)`` from ``carry (L, B, H)`` -> logits ``(B, T, V)``, the new carry."""
        ys, h_n = self.decoder(
            self.target_embed(tokens), initial_carry=carry, deterministic=deterministic
        )
        return self.head(ys), h_n

    def next_logits(self, token: jax.Array, carry: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One decoder step: ``token (B,)`` and ``carry (L, B, H)`` -> logits ``(B, V)``, the new
        carry (:meth:`gru_jax.linen.GRU.step`, no length-1 sequence)."""
        carry = self.decoder.step(carry, self.target_embed(token))
        return self.head(carry[-1]), carry

    def __call__(self, batch: Batch, *, train: bool = False) -> jax.Array:
        carry = self.encode(batch["source"], batch["source_lengths"], deterministic=not train)
        return self.decode(batch["decoder_inputs"], carry, deterministic=not train)[0]


def greedy_decode(
    model: Seq2Seq, params: Any, source: jax.Array, lengths: jax.Array, steps: int
) -> jax.Array:
    """``steps`` greedily decoded tokens ``(B, steps)`` int32 (jittable; ``steps`` static).

    A ``lax.scan`` feeds each step's argmax back into the decoder with its carry
    (:meth:`Seq2Seq.next_logits`, one step of the stack), starting from
    ``BOS``. It runs all ``steps``; what follows the first ``EOS`` is to be ignored.

    Args:
      model: the :class:`Seq2Seq` module.
      params: its parameters.
      source: ``(B, S)`` int32 source tokens, as ``seq2seq_batch``'s ``source``.
      lengths: ``(B,)`` int32: each source's length, as ``source_lengths``.
      steps: how many tokens to decode (static).
    """
    carry = model.apply(params, source, lengths, method=Seq2Seq.encode)

    def step(state: tuple[jax.Array, Any], _: None) -> tuple[tuple[jax.Array, Any], jax.Array]:
        token, carry = state
        logits, carry = model.apply(params, token, carry, method=Seq2Seq.next_logits)
        token = jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return (token, carry), token

    bos = jnp.full(source.shape[:1], BOS, jnp.int32)
    _, tokens = jax.lax.scan(step, (bos, carry), None, length=steps)
    return tokens.T


def sequence_correct(decoded: jax.Array, targets: jax.Array) -> jax.Array:
    """``(B,)`` bool: the decoded tokens up to and including the first ``EOS`` equal the target's.

    ``targets`` hold no ``EOS`` before their own and only ``PAD`` after it, so this is a match at
    every non-``PAD`` target position: then the decoded ``EOS`` is the first, at the same place.
    """
    return jnp.all((decoded == targets) | (targets == PAD), axis=-1)


def monotone_baseline(num_symbols: int, min_len: int, max_len: int) -> float:
    """Expected sequence accuracy of enciphering without reversing: right iff a palindrome.

    Args:
      num_symbols, min_len, max_len: as the keys of :class:`Seq2SeqData`; the lengths are
        uniform in ``[min_len, max_len]``.
    """
    lengths = range(min_len, max_len + 1)
    return sum(float(num_symbols) ** -(n // 2) for n in lengths) / len(lengths)


def monotone_translation(batch: Batch, num_symbols: int) -> jax.Array:
    """The baseline's output for a batch, laid out like ``targets``: each source letter
    enciphered in place, then ``EOS``.

    Args:
      batch: a batch of :func:`seq2seq_batch`; only its ``source`` and ``source_lengths`` are
        read.
      num_symbols: letters in the alphabet, as the key of :class:`Seq2SeqData`.
    """
    source, lengths = batch["source"], batch["source_lengths"]
    body = jnp.where(
        source >= NUM_SPECIAL, translate(source - NUM_SPECIAL, num_symbols) + NUM_SPECIAL, PAD
    )
    body = jnp.pad(body, ((0, 0), (0, 1)))
    positions = jnp.arange(body.shape[1])
    return jnp.where(positions == lengths[:, None], EOS, body).astype(jnp.int32)


def render(tokens: Any, *, upto_eos: bool = True) -> str:
    """Token ids as a word: letters ``a``, ``b``, ...; stops at ``EOS`` (``<no EOS>`` if none).

    Args:
      tokens: a 1-D sequence of token ids (a list or an array); ``PAD`` is skipped and ``BOS``
        written ``<bos>``.
      upto_eos: stop at the first ``EOS``, and append ``<no EOS>`` (after a space) if there is
        none; with ``False``, go through every token, writing ``EOS`` as ``<eos>``.
    """
    letters: list[str] = []
    for t in np.asarray(tokens).tolist():
        if t == EOS and upto_eos:
            return "".join(letters)
        if t >= NUM_SPECIAL:
            letters.append(chr(ord("a") + t - NUM_SPECIAL))
        elif t != PAD:
            letters.append({BOS: "<bos>", EOS: "<eos>"}[t])
    return "".join(letters) + (" <no EOS>" if upto_eos else "")


def _make_source(data: Seq2SeqData, seed: int) -> Source:
    del seed  # every batch is a function of its key alone
    check_ranges(data, "data.")  # a config built in Python is checked as a parsed one

    def batch(key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        return seq2seq_batch(key, batch_size, data.num_symbols, data.min_len, data.max_len)

    return Source(batch=batch)


def _make_model(model: Any, data: Seq2SeqData) -> nn.Module:
    vocab_size = NUM_SPECIAL + data.num_symbols
    return Seq2Seq.from_config(model, vocab_size=vocab_size, embed_dim=model.embed_dim)


def _loss(outputs: jax.Array, batch: Batch) -> jax.Array:
    """Cross-entropy averaged over the target positions that are not ``PAD`` (``EOS`` counts)."""
    targets = batch["targets"]
    logits = outputs.astype(jnp.float32)
    nll = (
        jax.nn.logsumexp(logits, axis=-1)
        - jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    )
    mask = (targets != PAD).astype(jnp.float32)
    return jnp.sum(nll * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def _metric_sums(model: nn.Module, params: Any, batch: Batch) -> tuple[jax.Array, jax.Array]:
    targets = batch["targets"]
    decoded = greedy_decode(
        cast(Seq2Seq, model), params, batch["source"], batch["source_lengths"], targets.shape[1]
    )
    correct = sequence_correct(decoded, targets)
    return jnp.sum(correct.astype(jnp.float32)), jnp.asarray(correct.size, jnp.float32)


def _baseline(splits: Splits) -> float:
    data: Seq2SeqData = splits.config
    return monotone_baseline(data.num_symbols, data.min_len, data.max_len)


def _report(
    model: nn.Module, params: Any, splits: Splits, key: jax.Array, workdir: Path
) -> dict[str, Any]:
    data: Seq2SeqData = splits.config
    batch = splits.eval.batch(key, 512)
    targets = batch["targets"]
    steps = targets.shape[1]
    decode = jax.jit(lambda p, s, n: greedy_decode(cast(Seq2Seq, model), p, s, n, steps))
    decoded = decode(params, batch["source"], batch["source_lengths"])
    correct = np.asarray(sequence_correct(decoded, targets))
    lengths = np.asarray(batch["source_lengths"])
    by_length = {
        int(n): float(correct[lengths == n].mean())
        for n in range(data.min_len, data.max_len + 1)
        if (lengths == n).any()
    }
    series_plot(
        workdir / "plots" / "accuracy_by_length.png",
        {"greedy decoding": (np.array(list(by_length)), np.array(list(by_length.values())))},
        title=f"Sequence accuracy by source length ({len(correct)} fresh words)",
        xlabel="source length",
        ylabel="sequence accuracy",
    )
    wrong = np.flatnonzero(~correct)[:3].tolist()
    shown = sorted(set(range(min(data.num_examples, len(correct)))) | set(wrong))
    examples = [
        {
            "source": render(batch["source"][i], upto_eos=False),
            "target": render(targets[i]),
            "decoded": render(decoded[i]),
            "correct": bool(correct[i]),
        }
        for i in shown
    ]
    width = data.max_len + 10
    lines = [
        f"# greedy decoding of {len(correct)} fresh words: sequence accuracy {correct.mean():.4f}",
        "# accuracy by length: " + ", ".join(f"{n}: {a:.3f}" for n, a in by_length.items()),
        "",
        f"{'source':<{width}} {'target':<{width}} {'decoded':<{width}} correct",
    ]
    lines += [
        f"{e['source']:<{width}} {e['target']:<{width}} {e['decoded']:<{width}} {e['correct']}"
        for e in examples
    ]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "examples.txt").write_text("\n".join(lines) + "\n")
    return {"examples": examples, "accuracy_by_length": by_length}


def _vocab(num_symbols: int) -> tuple[str, ...]:
    """The token names, by id, shared by ``source`` and the decoded ``tokens``: ``<pad>``,
    ``<bos>``, ``<eos>`` (:data:`PAD`, :data:`BOS`, :data:`EOS`), then the letters ``a``, ``b``,
    ... (letter ``k`` is id ``NUM_SPECIAL + k``), the names :func:`render` writes."""
    special = {PAD: "<pad>", BOS: "<bos>", EOS: "<eos>"}
    letters = (chr(ord("a") + k) for k in range(num_symbols))
    return (*(special[i] for i in range(NUM_SPECIAL)), *letters)


def _serve(model: nn.Module, params: Any, data: Seq2SeqData) -> Signature:
    def translate(source: jax.Array, lengths: jax.Array) -> tuple[jax.Array]:
        # greedy decoding of max_len + 1 tokens: the longest translation and its EOS
        return (greedy_decode(cast(Seq2Seq, model), params, source, lengths, data.max_len + 1),)

    inputs = (("source", ("b", "s"), "int32"), ("source_lengths", ("b",), "int32"))
    return Signature(translate, inputs, ("tokens",), _vocab(data.num_symbols))


__all__ = [
    "BOS",
    "EOS",
    "NUM_SPECIAL",
    "PAD",
    "TASK",
    "Seq2Seq",
    "Seq2SeqData",
    "greedy_decode",
    "monotone_baseline",
    "monotone_translation",
    "render",
    "seq2seq_batch",
    "sequence_correct",
    "translate",
]

TASK = Task(
    name="seq2seq",
    data_config=Seq2SeqData,
    metric="sequence_accuracy",
    higher_is_better=True,
    make_source=_make_source,
    make_model=_make_model,
    loss=_loss,
    metric_sums=_metric_sums,
    baseline=_baseline,
    report=_report,
    serve=_serve,
)
"""Reverse-and-encipher as a :class:`~gru_jax.tasks.Task`:
metric ``sequence_accuracy``, baseline the monotone translation."""
