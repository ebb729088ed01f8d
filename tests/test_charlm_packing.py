"""charlm's sentence layouts: padded and packed rows of the grammar's sentences, their masked loss,
and the unchanged stream layout."""

from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax.cli import main as cli_main
from gru_jax.tasks import charlm
from gru_jax.tasks.charlm import START, VOCAB, CharLM, CharLMData
from gru_jax.train import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
PACKED = CharLMData(corpus_chars=3000, seq_len=48, layout="packed")
PADDED = CharLMData(corpus_chars=3000, seq_len=48, layout="padded")


def _kept(data: CharLMData, seed: int = 0) -> list[str]:
    return [t for t in charlm.sentences(data.corpus_chars, seed) if len(t) <= data.seq_len]


def _all_rows(data: CharLMData) -> dict[str, np.ndarray]:
    """Every row of the source, as a batch would hold them."""
    rows = charlm.TASK.make_source(data, 0).info["rows"]
    batch = {
        "inputs": rows.inputs.astype(np.int32),
        "targets": rows.targets.astype(np.int32),
        "mask": rows.mask,
        "seq_lengths": rows.lengths,
    }
    if data.layout == "packed":
        batch["resets"] = rows.resets
    return batch


def _segments(batch: dict[str, Any]) -> list[tuple[int, int, int]]:
    """``(row, start, end)`` of every sentence of a batch, cut at its resets and lengths."""
    out = []
    resets = np.asarray(batch.get("resets", np.zeros_like(batch["mask"])))
    for row, n in enumerate(np.asarray(batch["seq_lengths"]).tolist()):
        cuts = [0, *(t for t in range(1, n) if resets[row, t]), n]
        out += [(row, a, b) for a, b in itertools.pairwise(cuts)]
    return out


def _decode_segments(batch: dict[str, Any]) -> list[str]:
    return [charlm.decode(batch["targets"][r, a:b]) for r, a, b in _segments(batch)]


# --- the layouts -----------------------------------------------------------------------------


def test_unknown_layout_is_one_config_error(capsys: pytest.CaptureFixture[str]) -> None:
    message = (
        r"config key 'data.layout' must be one of \['stream', 'padded', 'packed'\]; got 'pakced'"
    )
    with pytest.raises(ConfigError, match=message):
        load_config(ROOT / "configs/charlm_packed.yaml", ["data.layout=pakced"])
    with pytest.raises(ConfigError, match=r"config key 'data\.layout' must be a str; got int 3"):
        load_config(ROOT / "configs/charlm_packed.yaml", ["data.layout=3"])
    code = cli_main(["train", "configs/charlm_packed.yaml", "--set", "data.layout=pakced"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'pakced'" in err
    config = load_config(ROOT / "configs/charlm_packed.yaml")
    assert config.data.layout == "packed" and CharLMData().layout == "stream"
    with pytest.raises(ConfigError, match="shorter than every sentence"):
        charlm.TASK.make_source(CharLMData(corpus_chars=3000, seq_len=5, layout="packed"), 0)


def test_pack_sentences_places_every_sentence_once_within_a_row() -> None:
    lengths = [len(t) for t in _kept(PACKED)]
    rows = charlm.pack_sentences(lengths, 48)
    assert sorted(i for row in rows for i in row) == list(range(len(lengths)))
    assert all(sum(lengths[i] for i in row) <= 48 for row in rows)
    # Greedy: a row was opened only for a sentence that fitted in no earlier row, so no two
    # rows could be merged.
    sums = [sum(lengths[i] for i in row) for row in rows]
    assert all(a + b > 48 for a, b in itertools.combinations(sums, 2))
    with pytest.raises(ValueError, match="length 49"):
        charlm.pack_sentences([3, 49], 48)


def test_packed_resets_mark_exactly_the_sentence_starts() -> None:
    source = charlm.TASK.make_source(PACKED, 0)
    rows = source.info["rows"]
    ids = rows.segment_ids
    starts = (ids >= 0) & np.concatenate(
        [np.ones_like(ids[:, :1], bool), ids[:, 1:] != ids[:, :-1]], 1
    )
    np.testing.assert_array_equal(rows.resets, starts)
    assert rows.resets[:, 0].all()
    # In a drawn batch: cut at the resets, every piece is one whole sentence.
    batch = jax.tree.map(np.asarray, jax.jit(lambda k: source.batch(k, 16))(jax.random.key(0)))
    assert set(batch) == {"inputs", "targets", "mask", "seq_lengths", "resets"}
    assert batch["resets"].dtype == np.bool_ and batch["inputs"].dtype == np.int32
    kept = set(_kept(PACKED))
    pieces = _decode_segments(batch)
    assert len(pieces) == int(batch["resets"].sum()) and set(pieces) <= kept
    assert all(p[-1] in ".?" for p in pieces)
    t = np.arange(48)
    assert not (batch["resets"] & (t >= batch["seq_lengths"][:, None])).any()


@pytest.mark.parametrize("data", [PACKED, PADDED], ids=lambda d: d.layout)
def test_no_target_crosses_a_sentence_boundary(data: CharLMData) -> None:
    batch = _all_rows(data)
    mask = batch["mask"]
    t = np.arange(data.seq_len)
    np.testing.assert_array_equal(mask, t < batch["seq_lengths"][:, None])  # pads carry no loss
    start_id = VOCAB.index(START)
    for r, a, b in _segments(batch):
        sentence = charlm.decode(batch["targets"][r, a:b])
        assert sentence in _kept(data)
        # The sentence alone: the start token, then its own characters predict its next ones.
        assert batch["inputs"][r, a] == start_id
        assert charlm.decode(batch["inputs"][r, a + 1 : b]) == sentence[:-1]
        if b < batch["seq_lengths"][r]:  # the next sentence's first target, from a fresh state
            assert batch["resets"][r, b] and batch["inputs"][r, b] == start_id
    # Whatever the model says at a masked-out step, the loss does not move.
    logits = jax.random.normal(jax.random.key(0), (*mask.shape, len(VOCAB)))
    garbage = jnp.where(jnp.asarray(mask)[..., None], logits, 1e3 * logits)
    assert float(charlm.TASK.loss(garbage, batch)) == pytest.approx(
        float(charlm.TASK.loss(logits, batch)), rel=1e-6
    )


def test_padded_and_packed_hold_the_same_sentences() -> None:
    padded, packed = _all_rows(PADDED), _all_rows(PACKED)
    assert padded["seq_lengths"].size == len(_kept(PADDED))
    assert "resets" not in padded
    kept = _kept(PACKED)
    assert sorted(_decode_segments(padded)) == sorted(_decode_segments(packed)) == sorted(kept)
    assert padded["mask"].sum() == packed["mask"].sum() == sum(map(len, kept))
    dropped = [t for t in charlm.sentences(3000, 0) if len(t) > 48]
    assert dropped and len(kept) + len(dropped) == len(charlm.sentences(3000, 0))
    assert " ".join(charlm.sentences(3000, 0)).startswith(charlm.generate_text(3000, 0))
    for data in (PADDED, PACKED):  # the unigram baseline counts the same characters
        ids = charlm.TASK.make_source(data, 0).info["ids"]
        assert charlm.decode(ids) == "".join(kept)


# --- the model and its loss ------------------------------------------------------------------


@functools.cache
def _tiny() -> tuple[CharLM, Any]:
    model = CharLM(vocab_size=len(VOCAB), embed_dim=4, hidden_size=8, num_layers=2)
    params = model.init(jax.random.key(1), {"inputs": jnp.zeros((1, 1), jnp.int32)})
    return model, params


@functools.cache
def _apply() -> Any:
    return jax.jit(_tiny()[0].apply)


def _bits(model: CharLM, params: Any, batch: dict[str, Any]) -> np.ndarray:
    logits = _apply()(params, batch)
    return np.asarray(charlm._cross_entropy(logits, jnp.asarray(batch["targets"]))) / math.log(2)


def test_packed_loss_is_the_mean_over_the_sentences_run_alone() -> None:
    model, params = _tiny()
    packed = jax.tree.map(lambda a: a[:6], _all_rows(PACKED))  # 6 rows, several sentences each
    # Each sentence alone, from the zero state, with no lengths or resets: one row each (rows of
    # a batch never meet), filled up with spaces after it (the model is causal: what comes after
    # a step changes nothing at that step), so that one compiled call runs them all.
    texts = [charlm.decode(packed["targets"][r, a:b]) for r, a, b in _segments(packed)]
    alone = {
        "inputs": np.zeros((len(texts), 48), np.int32),
        "targets": np.zeros((len(texts), 48), np.int32),
    }
    for k, text in enumerate(texts):
        alone["inputs"][k, : len(text)] = charlm.encode(START + text[:-1])
        alone["targets"][k, : len(text)] = charlm.encode(text)
    alone_masked = dict(alone, mask=np.arange(48) < np.array([len(t) for t in texts])[:, None])
    padded = _all_rows(PADDED)

    def bits(params: Any, batch: dict[str, Any]) -> jax.Array:
        logits = model.apply(params, batch)
        return charlm._cross_entropy(logits, jnp.asarray(batch["targets"])) / math.log(2)

    def train_loss(params: Any, batch: dict[str, Any]) -> jax.Array:
        return charlm.TASK.loss(model.apply(params, batch, train=True), batch)

    @jax.jit  # every computation of this test, compiled once
    def computed(params, packed, alone, alone_masked, padded):
        return {
            "bits": bits(params, packed),
            "alone_bits": bits(params, alone),
            "padded_bits": bits(params, padded),
            "loss": charlm.TASK.loss(model.apply(params, packed), packed),
            "sums": charlm.TASK.metric_sums(model, params, packed),
            "grads": [jax.grad(train_loss)(params, b) for b in (packed, alone_masked)],
        }

    out = jax.tree.map(np.asarray, computed(params, packed, alone, alone_masked, padded))
    bits_, alone_bits = out["bits"], out["alone_bits"]
    per_sentence = [alone_bits[k, : len(text)] for k, text in enumerate(texts)]
    for (r, a, b), expected in zip(_segments(packed), per_sentence, strict=True):
        np.testing.assert_allclose(bits_[r, a:b], expected, rtol=1e-5, atol=1e-5)
    assert len(per_sentence) > 6
    total = sum(float(s.sum()) for s in per_sentence)
    count = sum(s.size for s in per_sentence)
    assert float(out["loss"]) == pytest.approx(total / count, rel=1e-5)
    sums = out["sums"]
    assert float(sums[1]) == count and float(sums[0]) == pytest.approx(total, rel=1e-5)

    # And so is the training loss's gradient: training on packed rows is training on the
    # sentences alone (the same characters, so the same mean).
    for got, want in zip(*map(jax.tree.leaves, out["grads"]), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
    # Padded rows of the same sentences give each the same bits.
    padded_bits = out["padded_bits"]
    by_text = {
        charlm.decode(padded["targets"][r, a:b]): padded_bits[r, a:b]
        for r, a, b in _segments(padded)
    }
    for (r, a, b), expected in zip(_segments(packed), per_sentence, strict=True):
        np.testing.assert_allclose(
            by_text[charlm.decode(packed["targets"][r, a:b])], expected, rtol=1e-5, atol=1e-5
        )


def test_stream_layout_is_unchanged() -> None:
    """Batches of the default layout, against what the code before the layouts drew."""
    source = charlm.TASK.make_source(CharLMData(corpus_chars=3000, seq_len=16), 0)
    batch = jax.jit(lambda k: source.batch(k, 4))(jax.random.key(0))
    assert set(batch) == {"inputs", "targets"}
    assert [charlm.decode(r) for r in batch["inputs"]] == [
        " sleep, and ever",
        " a dog drops a b",
        "lf sings. a man ",
        "x often, and the",
    ]
    assert [charlm.decode(r) for r in batch["targets"]] == [
        "sleep, and every",
        "a dog drops a bo",
        "f sings. a man b",
        " often, and the ",
    ]
    big = charlm.TASK.make_source(CharLMData(), 0).batch(jax.random.key(7), 64)
    digest = hashlib.sha256(
        np.asarray(big["inputs"]).tobytes() + np.asarray(big["targets"]).tobytes()
    )
    assert digest.hexdigest() == "0d5376e8187ebf2fe96fdffee3b63934d4ac8f45c0812cf5d6afecbeb27277c1"
    text = charlm.generate_text(200_000, 0)
    assert hashlib.sha256(text.encode()).hexdigest() == (
        "68c84eedf137f89b059700bfe37b010bb57c089fd39b4629289b9fdba9dd9d87"
    )
    # The loss is the plain mean over every position, and the model takes no lengths or resets.
    model, params = _tiny()
    logits = _apply()(params, batch)
    expected = jnp.mean(charlm._cross_entropy(logits, batch["targets"])) / math.log(2.0)
    assert float(charlm.TASK.loss(logits, batch)) == float(expected)
    direct = model.apply(params, batch["inputs"], method=CharLM.logits_and_carry)[0]
    np.testing.assert_allclose(logits, direct, rtol=1e-6, atol=1e-6)


def test_sentence_sampling_starts_each_sentence_afresh() -> None:
    model, params = _tiny()
    # A head that always says "." : after each sentence end comes the start token, a space.
    head = params["params"]["head"]
    bias = head["bias"].at[VOCAB.index(".")].set(1e4)
    forced = {"params": params["params"] | {"head": head | {"bias": bias}}}
    (text,) = charlm.sample(
        model, forced, "the", 8, jax.random.key(0), temperature=0.0, sentences=True
    )
    assert text == "the. . . . "
    (text,) = charlm.sample(model, forced, "the", 4, jax.random.key(0), temperature=0.0)
    assert text == "the...."


def test_positions_in_segment() -> None:
    resets = np.array([[True, False, False, True, False, True], [False] * 6])
    assert charlm.positions_in_segment(resets).tolist() == [[0, 1, 2, 0, 1, 0], list(range(6))]


# --- the config through the CLI --------------------------------------------------------------


def test_packed_config_smoke_run(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layout = "packed"
    sets = ["train.steps=3", "train.batch_size=4", "train.log_every=1", "train.eval_batches=1"]
    sets += ["model.hidden_size=8", "model.embed_dim=4", "data.corpus_chars=3000"]
    sets += ["data.seq_len=48", "data.sample_chars=20", f"data.layout={layout}"]
    args = ["train", "configs/charlm_packed.yaml", "--workdir", str(tmp_path)]
    assert cli_main([*args, *(a for s in sets for a in ("--set", s))]) == 0
    capsys.readouterr()
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["layout"] == layout
    assert summary["metric"] == "bits_per_char" and math.isfinite(summary["value"])
    assert summary["baseline"] == summary["unigram_bits_per_char"] > 3.5
    assert summary["sample"].startswith("the ") and len(summary["sample"]) == 24
    stats = summary["sentence_stats"]
    assert stats["chars_min"] <= stats["kept_chars_mean"] <= stats["kept_chars_max"] <= 48
    assert stats["dropped_longer_than_seq_len"] > 0
    rows = charlm.TASK.make_source(CharLMData(corpus_chars=3000, seq_len=48, layout=layout), 0)
    assert summary["padding_fraction"] == pytest.approx(rows.info["rows"].padding_fraction)
    useful = summary["useful_tokens_per_row"]
    assert useful == pytest.approx(48 * (1 - summary["padding_fraction"]))
    assert (tmp_path / "plots" / "bits_by_position.png").exists()
    assert (tmp_path / "samples.txt").read_text().count("## sample") == 3
