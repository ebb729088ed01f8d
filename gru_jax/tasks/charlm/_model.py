"""The model of :mod:`gru_jax.tasks.charlm`: :class:`CharLM`, and text sampled from it one
character at a time."""

from __future__ import annotations

import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gru_jax.tasks._base import Batch, RecurrentModel
from gru_jax.tasks.charlm._grammar import CHAR_TO_ID, LEXICON, START, decode, encode


class CharLM(RecurrentModel):
    """Embed → :class:`gru_jax.linen.GRU` → Dense: next-character logits ``(B, T, V)``.

    ``logits_and_carry`` runs from a given carry and returns the new one, so that text is
    generated one character at a time at O(1) cost per character. A batch's ``seq_lengths``
    and ``resets`` (the sentence layouts) go to the GRU.

    Attributes:
      vocab_size: ``V``, the token ids (``len(VOCAB)`` for the task).
      embed_dim: the size of the character embedding.
      hidden_size: the recurrent layer's state size (``model.hidden_size``); its other
        options are :class:`~gru_jax.tasks.RecurrentModel`'s keyword-only fields.
    """

    vocab_size: int
    embed_dim: int
    hidden_size: int

    def setup(self) -> None:
        self.embed = nn.Embed(self.vocab_size, self.embed_dim)
        self.gru = self.recurrent_layer(return_carry=True)
        self.head = nn.Dense(self.vocab_size)

    def logits_and_carry(
        self,
        tokens: jax.Array,
        carry: jax.Array | None = None,
        *,
        seq_lengths: jax.Array | None = None,
        resets: jax.Array | None = None,
        deterministic: bool = True,
    ) -> tuple[jax.Array, jax.Array]:
        """``tokens (B, T)`` and ``carry (L, B, H)`` (zeros if None) -> logits, new carry;
        ``seq_lengths (B,)`` and ``resets (B, T)`` as in :class:`gru_jax.linen.GRU`."""
        ys, h_n = self.gru(
            self.embed(tokens),
            seq_lengths=seq_lengths,  # None in the stream layout, as are the resets
            resets=resets,
            initial_carry=carry,
            deterministic=deterministic,
        )
        return self.head(ys), h_n

    def next_logits(self, token: jax.Array, carry: jax.Array) -> tuple[jax.Array, jax.Array]:
        """One step: ``token (B,)`` and ``carry (L, B, H)`` -> logits ``(B, V)``, the new carry
        (:meth:`gru_jax.linen.GRU.step`, no length-1 sequence)."""
        carry = self.gru.step(carry, self.embed(token))
        return self.head(carry[-1]), carry

    def __call__(self, batch: Batch, *, train: bool = False) -> jax.Array:
        return self.logits_and_carry(
            batch["inputs"],
            seq_lengths=batch.get("seq_lengths"),
            resets=batch.get("resets"),
            deterministic=not train,
        )[0]


def sample(
    model: CharLM,
    params: Any,
    prompt: str,
    num_chars: int,
    key: jax.Array,
    *,
    temperature: float = 0.8,
    num_samples: int = 1,
    sentences: bool = False,
) -> list[str]:
    """``num_samples`` continuations of ``prompt``, ``num_chars`` characters each.

    The prompt runs through the GRU once; then a jitted ``lax.scan`` feeds each sampled character
    back with the carry, one step of the stack at a time (:meth:`CharLM.next_logits`).
    ``temperature`` divides the logits (0: greedy, the argmax).

    ``sentences``: for a model trained on a sentence layout, which saw each sentence alone: the
    prompt is read after :data:`START` from the zero carry, and after a character that ends a
    sentence (``.`` or ``?``) the next one is a space, read as the start token of a new sentence
    from the zero carry.

    Args:
      model: the :class:`CharLM` module.
      params: its parameters.
      prompt: the text every sample starts from: not empty, characters of :data:`VOCAB` only.
      num_chars: characters generated after the prompt, per sample.
      key: the PRNG key of the sampling (unused with ``temperature=0``).
      temperature: the softmax temperature; 0 picks the most likely character.
      num_samples: how many samples, drawn together as a batch.
      sentences: whether the model was trained on a sentence layout (above).

    Returns:
      ``num_samples`` strings, each the prompt followed by its ``num_chars`` characters.
    """
    if not prompt:
        raise ValueError("sample: the prompt must not be empty")
    fed = START + prompt if sentences else prompt
    prompt_ids = jnp.broadcast_to(jnp.asarray(encode(fed), jnp.int32), (num_samples, len(fed)))
    ends = jnp.asarray(encode(".?"), jnp.int32)
    start_id = CHAR_TO_ID[START]

    def pick(logits: jax.Array, k: jax.Array) -> jax.Array:
        if temperature == 0:
            return jnp.argmax(logits, axis=-1).astype(jnp.int32)
        return jax.random.categorical(k, logits / temperature).astype(jnp.int32)

    @jax.jit
    def run(params: Any, key: jax.Array) -> jax.Array:
        logits, carry = model.apply(params, prompt_ids, method=CharLM.logits_and_carry)

        def step(
            state: tuple[jax.Array, Any], k: jax.Array
        ) -> tuple[tuple[jax.Array, Any], jax.Array]:
            logits, carry = state
            token = pick(logits, k)
            logits, carry = model.apply(params, token, carry, method=CharLM.next_logits)
            return (logits, carry), token

        if not sentences:
            _, tokens = jax.lax.scan(step, (logits[:, -1], carry), jax.random.split(key, num_chars))
            return tokens.T  # (num_samples, num_chars)

        def step_tracking(
            state: tuple[jax.Array, Any, jax.Array], k: jax.Array
        ) -> tuple[tuple[jax.Array, Any, jax.Array], jax.Array]:
            logits, carry, last = state
            token = pick(logits, k)
            ended = jnp.isin(last, ends)  # after a sentence: the start token, the zero carry
            token = jnp.where(ended, start_id, token)
            carry = jnp.where(ended[None, :, None], jnp.zeros_like(carry), carry)
            logits, carry = model.apply(params, token, carry, method=CharLM.next_logits)
            return (logits, carry, token), token

        _, tokens = jax.lax.scan(
            step_tracking,
            (logits[:, -1], carry, prompt_ids[:, -1]),
            jax.random.split(key, num_chars),
        )
        return tokens.T

    tokens = np.asarray(run(params, key))
    return [prompt + decode(row) for row in tokens]


def known_word_fraction(text: str) -> float:
    """The fraction of whole words of ``text`` that are in the grammar's lexicon (the last word,
    possibly cut off, is not counted)."""
    words = re.findall(r"[a-z]+", text)[:-1]
    return sum(w in LEXICON for w in words) / max(len(words), 1)
