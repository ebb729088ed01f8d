"""The charlm task: its ``data:`` section, its sources in the three layouts, the loss and metric
in bits per character, the unigram baseline, the report (samples and a plot) and the export
signatures, gathered in :data:`TASK`."""

from __future__ import annotations

import dataclasses
import math
import textwrap
from pathlib import Path
from typing import Any, cast

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gru_jax.tasks._base import Batch, Source, Splits, Task
from gru_jax.tasks._plots import series_plot
from gru_jax.tasks._schema import ConfigError, check_ranges, setting
from gru_jax.tasks._serving import Signature, carry_stream, predict_inputs
from gru_jax.tasks.charlm._grammar import VOCAB, corpus, encode, sentences, unigram_bits_per_char
from gru_jax.tasks.charlm._model import CharLM, known_word_fraction, sample
from gru_jax.tasks.charlm._packing import (
    SentenceRows,
    positions_in_segment,
    sentence_rows,
    sentence_stats,
    window_batch,
)

LAYOUTS = ("stream", "padded", "packed")
"""The values of ``data.layout``: windows of the corpus stream, one sentence per padded row, or
whole sentences packed into rows."""


@dataclasses.dataclass(frozen=True)
class CharLMData:
    """The ``data:`` section of a charlm config.

    Attributes:
      corpus_chars: characters of generated text per seed (training and evaluation corpora);
        at least ``seq_len + 2``, so that a window of ``seq_len + 1`` fits.
      seq_len: ``T``, characters per training window.
      prompt: the text every generated sample starts from: not empty, and only characters of
        :data:`VOCAB`.
      sample_chars: characters generated per sample at the end of training.
      num_samples: how many samples to generate.
      sample_temperature: the softmax temperature of sampling; 0 samples greedily.
      layout: how the corpus becomes rows (:data:`LAYOUTS`): ``"stream"``, windows of the
        corpus; ``"padded"``, one sentence per row; ``"packed"``, whole sentences packed into
        rows with ``resets``. A sentence longer than ``seq_len`` is dropped in the last two.

    ``prompt``, ``sample_chars``, ``num_samples`` and ``sample_temperature`` only shape the
    samples written at the end, so they may change when a run is resumed.
    """

    corpus_chars: int = setting(200_000, ge=3)  # characters of generated text per seed
    seq_len: int = setting(64, ge=1)  # T: characters per training window
    prompt: str = setting("the ", may_change=True)  # the samples' beginning
    sample_chars: int = setting(400, ge=1, may_change=True)  # characters generated per sample
    num_samples: int = setting(3, ge=1, may_change=True)
    # The softmax temperature of sampling; 0 samples greedily.
    sample_temperature: float = setting(0.8, ge=0, may_change=True)
    layout: str = setting("stream", one_of=LAYOUTS)

    def validate(self) -> None:
        """The constraints between keys (and on the prompt), checked when the config is parsed."""
        if self.corpus_chars < self.seq_len + 2:
            raise ConfigError(
                f"config keys 'data.corpus_chars' ({self.corpus_chars}) and 'data.seq_len' "
                f"({self.seq_len}) must satisfy corpus_chars >= seq_len + 2"
            )
        unknown = sorted(set(self.prompt) - set(VOCAB))
        if not self.prompt or unknown:
            raise ConfigError(
                f"config key 'data.prompt' must be a non-empty str of characters of the "
                f"vocabulary {VOCAB!r}; got {self.prompt!r}"
            )


def _make_source(data: CharLMData, seed: int) -> Source:
    check_ranges(data, "data.")  # a config built in Python is checked as a parsed one
    if data.layout != "stream":
        return _sentence_source(data, seed)
    ids_np = corpus(data.corpus_chars, seed)
    ids = jnp.asarray(ids_np)  # uint8, a constant of the jitted batch function

    def batch(key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        return window_batch(ids, key, batch_size, data.seq_len)

    return Source(batch=batch, info={"ids": ids_np})


def _sentence_source(data: CharLMData, seed: int) -> Source:
    """Random rows of :func:`sentence_rows` over the seed's sentences that fit in a row."""
    texts = sentences(data.corpus_chars, seed)
    kept = [t for t in texts if len(t) <= data.seq_len]
    if not kept:
        raise ConfigError(
            f"config key 'data.seq_len' ({data.seq_len}) is shorter than every sentence (the "
            f"shortest has {min(len(t) for t in texts)} characters); data.layout "
            f"{data.layout!r} drops the sentences longer than a row"
        )
    rows = sentence_rows(kept, data.seq_len, data.layout)
    arrays = {  # constants of the jitted batch function
        "inputs": jnp.asarray(rows.inputs),
        "targets": jnp.asarray(rows.targets),
        "mask": jnp.asarray(rows.mask),
        "seq_lengths": jnp.asarray(rows.lengths),
    }
    if data.layout == "packed":
        arrays["resets"] = jnp.asarray(rows.resets)
    num_rows = rows.lengths.shape[0]

    def batch(key: jax.Array, batch_size: int) -> dict[str, jax.Array]:
        picked = jax.random.randint(key, (batch_size,), 0, num_rows, dtype=jnp.int32)
        out = {name: a[picked] for name, a in arrays.items()}
        out["inputs"] = out["inputs"].astype(jnp.int32)
        out["targets"] = out["targets"].astype(jnp.int32)
        return out

    ids = np.concatenate([encode(t) for t in kept])  # every target, for the unigram baseline
    ids.setflags(write=False)
    info = {
        "ids": ids,
        "rows": rows,
        "sentences": kept,
        "stats": sentence_stats(texts, data.seq_len),
    }
    return Source(batch=batch, info=info)


def _make_model(model: Any, data: CharLMData) -> nn.Module:
    return CharLM.from_config(model, vocab_size=len(VOCAB), embed_dim=model.embed_dim)


def _cross_entropy(logits: jax.Array, targets: jax.Array) -> jax.Array:
    """Per-position cross-entropy in nats, computed in float32."""
    logits = logits.astype(jnp.float32)
    log_z = jax.nn.logsumexp(logits, axis=-1)
    return log_z - jnp.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]


def _loss(outputs: jax.Array, batch: Batch) -> jax.Array:
    """Mean cross-entropy in bits (nats / ln 2): the evaluation metric's unit, so the loss and
    metric curves share an axis; Adam is invariant to the constant factor. With a ``mask`` (the
    sentence layouts), the mean over the masked-in targets of the batch."""
    if "mask" not in batch:
        return jnp.mean(_cross_entropy(outputs, batch["targets"])) / math.log(2.0)
    nats = jnp.where(batch["mask"], _cross_entropy(outputs, batch["targets"]), 0.0)
    count = jnp.maximum(jnp.sum(batch["mask"], dtype=jnp.float32), 1.0)
    return jnp.sum(nats) / count / math.log(2.0)


def _metric_sums(model: nn.Module, params: Any, batch: Batch) -> tuple[jax.Array, jax.Array]:
    logits = cast(jax.Array, model.apply(params, batch))
    bits = _cross_entropy(logits, batch["targets"]) / math.log(2.0)
    if "mask" not in batch:
        return jnp.sum(bits), jnp.asarray(bits.size, jnp.float32)
    return jnp.sum(jnp.where(batch["mask"], bits, 0.0)), jnp.sum(batch["mask"], dtype=jnp.float32)


def _baseline(splits: Splits) -> float:
    return unigram_bits_per_char(splits.train.info["ids"], splits.eval.info["ids"])


def _report(
    model: nn.Module, params: Any, splits: Splits, key: jax.Array, workdir: Path
) -> dict[str, Any]:
    data: CharLMData = splits.config
    texts = sample(
        cast(CharLM, model),
        params,
        data.prompt,
        data.sample_chars,
        key,
        temperature=data.sample_temperature,
        num_samples=data.num_samples,
        sentences=data.layout != "stream",
    )
    known = known_word_fraction(" ".join(texts))
    unigram = _baseline(splits)

    batch = splits.eval.batch(jax.random.fold_in(key, 1), 1024)
    logits = cast(jax.Array, model.apply(params, batch))
    bits = _cross_entropy(logits, batch["targets"]) / math.log(2.0)
    positions = np.arange(1, data.seq_len + 1)
    by_position = np.asarray(jnp.mean(bits, axis=0))
    where = "position in the window"
    if "mask" in batch:  # by position in the sentence, over its characters only
        mask = np.asarray(batch["mask"])
        if "resets" in batch:
            in_sentence = positions_in_segment(batch["resets"])[mask]
        else:
            in_sentence = np.broadcast_to(positions - 1, mask.shape)[mask]
        count = np.bincount(in_sentence, minlength=data.seq_len)
        total = np.bincount(in_sentence, np.asarray(bits)[mask], minlength=data.seq_len)
        seen = count > 0
        positions, by_position = positions[seen], total[seen] / count[seen]
        where = "position in the sentence"
    series_plot(
        workdir / "plots" / "bits_by_position.png",
        {
            "GRU": (positions, by_position),
            "unigram": (positions, np.full(positions.shape, unigram)),
        },
        title="Bits per character by how many characters of context the GRU has read",
        xlabel=f"characters read ({where})",
        ylabel="bits per character",
    )
    blocks = [
        f"# {len(texts)} samples of {data.sample_chars} characters after the prompt "
        f"{data.prompt!r}, temperature {data.sample_temperature}; {known:.1%} of their words "
        "are in the grammar's lexicon"
    ]
    blocks += [f"## sample {i + 1}\n" + textwrap.fill(t, 100) for i, t in enumerate(texts)]
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "samples.txt").write_text("\n\n".join(blocks) + "\n")
    summary: dict[str, Any] = {
        "sample": texts[0],
        "sample_known_word_fraction": known,
        "unigram_bits_per_char": unigram,
        "layout": data.layout,
    }
    if data.layout != "stream":
        rows: SentenceRows = splits.train.info["rows"]
        summary |= {
            # Rows are drawn uniformly, so a step of batch_size rows trains on
            # batch_size * useful_tokens_per_row predicted characters on average.
            "useful_tokens_per_row": float(rows.mask.sum(axis=1).mean()),
            "padding_fraction": rows.padding_fraction,
            "rows": int(rows.lengths.shape[0]),
            "sentence_stats": splits.train.info["stats"],
        }
    return summary


def _stream(model: nn.Module, params: Any, data: CharLMData) -> Signature:
    def apply(carry: jax.Array, tokens: jax.Array, resets: jax.Array) -> Any:
        return model.apply(params, tokens, carry, resets=resets, method=CharLM.logits_and_carry)

    return carry_stream(model, params, _INPUTS, "logits", apply, vocab=_VOCAB)


_INPUTS = (("b", "t"), "int32")  # the inputs: character ids
_VOCAB = tuple(VOCAB)  # id i is the character VOCAB[i], in the inputs and the logits

TASK = Task(
    name="charlm",
    data_config=CharLMData,
    metric="bits_per_char",
    higher_is_better=False,
    make_source=_make_source,
    make_model=_make_model,
    loss=_loss,
    metric_sums=_metric_sums,
    baseline=_baseline,
    report=_report,
    serve=lambda model, params, data: predict_inputs(
        model, params, _INPUTS, "logits", vocab=_VOCAB
    ),
    stream=_stream,
)
"""Character language modelling as a :class:`~gru_jax.tasks.Task`:
metric ``bits_per_char``, baseline unigram."""
