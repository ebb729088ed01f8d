"""How :mod:`gru_jax.tasks.charlm` lays text out in rows: random windows of the corpus stream,
or whole sentences, one per padded row or packed several to a row."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gru_jax.tasks.charlm._grammar import CHAR_TO_ID, START, encode


def window_batch(
    ids: jax.Array, key: jax.Array, batch_size: int, seq_len: int
) -> dict[str, jax.Array]:
    """``inputs`` and ``targets`` ``(B, T)`` int32: random windows of ``ids``, shifted by one.

    Args:
      ids: ``(N,)`` token ids of the corpus, ``N > seq_len``.
      key: the PRNG key that draws the windows' starts, uniform over ``[0, N - seq_len)``.
      batch_size: ``B``, the windows in the batch.
      seq_len: ``T``; each window holds ``T + 1`` ids, ``inputs`` its first ``T`` and
        ``targets`` its last ``T``.
    """
    starts = jax.random.randint(key, (batch_size,), 0, ids.shape[0] - seq_len, dtype=jnp.int32)
    windows = ids[starts[:, None] + jnp.arange(seq_len + 1, dtype=jnp.int32)].astype(jnp.int32)
    return {"inputs": windows[:, :-1], "targets": windows[:, 1:]}


def pack_sentences(lengths: Sequence[int], seq_len: int) -> list[list[int]]:
    """Greedy best-fit packing: rows of sentence indices whose lengths sum to at most ``seq_len``.

    The sentences are taken in order; each goes into the open row with the least room that still
    fits it (a new row if none does). Rows are returned in the order they were opened, their
    sentences in the order they were placed. A length above ``seq_len`` is an error.

    Example:
      >>> from gru_jax.tasks.charlm import pack_sentences
      >>> pack_sentences([5, 4, 3, 2, 1], seq_len=6)
      [[0, 4], [1, 3], [2]]
    """
    rows: list[list[int]] = []
    room: list[int] = []
    by_room: list[list[int]] = [[] for _ in range(seq_len + 1)]  # open rows by their room
    for i, n in enumerate(lengths):
        if not 0 < n <= seq_len:
            raise ValueError(f"pack_sentences: sentence {i} has length {n}, not in [1, {seq_len}]")
        r = next((r for r in range(n, seq_len + 1) if by_room[r]), None)
        if r is None:
            rows.append([])
            room.append(seq_len)
            row = len(rows) - 1
        else:
            row = by_room[r].pop(0)  # the earliest opened of the tightest rows
        rows[row].append(i)
        room[row] -= n
        by_room[room[row]].append(row)
        by_room[room[row]].sort()
    return rows


@dataclasses.dataclass(frozen=True)
class SentenceRows:
    """Sentences laid out in rows of ``T`` steps (:func:`sentence_rows`), NumPy arrays.

    Attributes:
      inputs: ``(R, T)`` uint8: at each sentence's first step the start token :data:`START`, then
        its characters but the last; 0 (a space) in the padding.
      targets: ``(R, T)`` uint8: each sentence's characters; 0 in the padding.
      mask: ``(R, T)`` bool: True at the targets that count (the sentences' characters).
      resets: ``(R, T)`` bool: True at each sentence's first step (step 0 included).
      lengths: ``(R,)`` int32: the steps in use, the rest is padding.
      segment_ids: ``(R, T)`` int32: the index of the sentence at each step, -1 in the padding.
    """

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    resets: np.ndarray
    lengths: np.ndarray
    segment_ids: np.ndarray

    @property
    def padding_fraction(self) -> float:
        """The fraction of the rows' steps that are padding."""
        return 1.0 - float(self.mask.mean())


def sentence_rows(texts: Sequence[str], seq_len: int, layout: str) -> SentenceRows:
    """``texts`` (each at most ``seq_len`` characters) as rows: one per row (``"padded"``) or
    packed by :func:`pack_sentences` (``"packed"``).

    Args:
      texts: the sentences, each of characters of :data:`VOCAB`.
      seq_len: ``T``, the steps of a row.
      layout: ``"padded"`` or ``"packed"``, as ``data.layout``.

    Example:
      >>> from gru_jax.tasks.charlm import decode, sentence_rows
      >>> rows = sentence_rows(["a cat runs.", "do dogs?"], 24, "packed")
      >>> decode(rows.inputs[0, :19]), decode(rows.targets[0, :19])
      (' a cat runs do dogs', 'a cat runs.do dogs?')
      >>> rows.resets[0, :19].nonzero()[0].tolist(), rows.lengths.tolist()
      ([0, 11], [19])
    """
    if layout not in ("padded", "packed"):
        raise ValueError(f"sentence_rows: layout must be 'padded' or 'packed'; got {layout!r}")
    lengths = [len(t) for t in texts]
    groups = (
        [[i] for i in range(len(texts))] if layout == "padded" else pack_sentences(lengths, seq_len)
    )
    shape = (len(groups), seq_len)
    inputs, targets = np.zeros(shape, np.uint8), np.zeros(shape, np.uint8)
    resets = np.zeros(shape, bool)
    segment_ids = np.full(shape, -1, np.int32)
    row_lengths = np.zeros(len(groups), np.int32)
    start_id = CHAR_TO_ID[START]
    for r, group in enumerate(groups):
        t = 0
        for i in group:
            ids, n = encode(texts[i]), lengths[i]
            if t + n > seq_len:
                raise ValueError(f"sentence_rows: sentence {i} ({n} characters) exceeds {seq_len}")
            targets[r, t : t + n] = ids
            inputs[r, t] = start_id
            inputs[r, t + 1 : t + n] = ids[:-1]
            resets[r, t] = True
            segment_ids[r, t : t + n] = i
            t += n
        row_lengths[r] = t
    return SentenceRows(
        inputs=inputs,
        targets=targets,
        mask=segment_ids >= 0,
        resets=resets,
        lengths=row_lengths,
        segment_ids=segment_ids,
    )


def positions_in_segment(resets: Any) -> np.ndarray:
    """``(B, T)`` int: how many steps each step is past the last reset at or before it (its
    0-based position in its sentence); ``t`` where no reset came before.

    Args:
      resets: ``(B, T)`` bool: True at each sentence's first step, as a batch's ``resets``.
    """
    resets = np.asarray(resets)
    t = np.broadcast_to(np.arange(resets.shape[-1]), resets.shape)
    return t - np.maximum.accumulate(np.where(resets, t, 0), axis=-1)


def sentence_stats(texts: Sequence[str], seq_len: int) -> dict[str, Any]:
    """The lengths of ``texts`` in characters (all of them, and the kept ones, those of at most
    ``seq_len``), and how many are dropped."""
    lengths = np.array([len(t) for t in texts])
    kept = lengths[lengths <= seq_len]
    return {
        "sentences": int(lengths.size),
        "chars_mean": float(lengths.mean()),
        "chars_min": int(lengths.min()),
        "chars_max": int(lengths.max()),
        "dropped_longer_than_seq_len": int(lengths.size - kept.size),
        "dropped_char_fraction": float(1.0 - kept.sum() / lengths.sum()),
        "kept_chars_mean": float(kept.mean()) if kept.size else 0.0,
        "kept_chars_max": int(kept.max()) if kept.size else 0,
    }
