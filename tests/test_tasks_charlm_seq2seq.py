"""The charlm and seq2seq tasks: generators, baselines, decoding, and a smoke run of each config."""

import collections
import contextlib
import functools
import io
import json
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax.cli import main as cli_main
from gru_jax.tasks import TASK_NAMES, Splits, charlm, get_task, seq2seq
from gru_jax.tasks.charlm import VOCAB, CharLM, CharLMData
from gru_jax.tasks.seq2seq import BOS, EOS, PAD, Seq2Seq, Seq2SeqData

ROOT = Path(__file__).resolve().parents[1]
SMALL_TEXT = CharLMData(corpus_chars=20_000, seq_len=16)


def test_registered():
    assert {"charlm", "seq2seq"} <= set(TASK_NAMES)
    assert get_task("charlm") is charlm.TASK and get_task("seq2seq") is seq2seq.TASK
    assert not charlm.TASK.higher_is_better and seq2seq.TASK.higher_is_better


# --- charlm ----------------------------------------------------------------------------------


def test_text_is_deterministic_and_uses_the_grammar():
    text = charlm.generate_text(20_000, seed=3)
    assert len(text) == 20_000
    assert text == charlm.generate_text(20_000, seed=3)
    assert text != charlm.generate_text(20_000, seed=4)
    assert set(text) <= set(VOCAB)
    assert VOCAB == "".join(sorted(set(VOCAB)))  # fixed by the lexicon, the same for every seed
    words = re.findall(r"[a-z]+", text)[1:-1]  # the last word may be cut off
    assert words and set(words) <= charlm.LEXICON
    assert re.search(r"\b(an) [aeiou]", text) and not re.search(r"\ba [aeiou]", text)
    assert 0.5 < charlm.derivation_bits_per_char(20_000, 0) < 1.2


def test_windows_shapes_dtypes_and_determinism():
    source = charlm.TASK.make_source(SMALL_TEXT, 0)
    batch = jax.jit(lambda k: source.batch(k, 8))(jax.random.key(0))
    assert batch["inputs"].shape == batch["targets"].shape == (8, 16)
    assert batch["inputs"].dtype == batch["targets"].dtype == jnp.int32
    np.testing.assert_array_equal(batch["inputs"][:, 1:], batch["targets"][:, :-1])
    text = charlm.generate_text(SMALL_TEXT.corpus_chars, 0)
    for row_in, row_out in zip(batch["inputs"], batch["targets"], strict=True):
        assert charlm.decode(row_in) + charlm.decode(row_out)[-1] in text
    again = source.batch(jax.random.key(0), 8)
    np.testing.assert_array_equal(batch["inputs"], again["inputs"])
    assert not np.array_equal(batch["inputs"], source.batch(jax.random.key(1), 8)["inputs"])
    other = charlm.TASK.make_source(SMALL_TEXT, 1).batch(jax.random.key(0), 8)
    assert not np.array_equal(batch["inputs"], other["inputs"])


def test_unigram_baseline_against_character_counts():
    splits = Splits(
        SMALL_TEXT, charlm.TASK.make_source(SMALL_TEXT, 3), charlm.TASK.make_source(SMALL_TEXT, 7)
    )
    train_text = charlm.generate_text(SMALL_TEXT.corpus_chars, 3)
    eval_text = charlm.generate_text(SMALL_TEXT.corpus_chars, 7)
    counts = collections.Counter(train_text)
    total = len(train_text) + len(VOCAB)  # add-one smoothing over the vocabulary
    expected = -sum(math.log2((counts[c] + 1) / total) for c in eval_text) / len(eval_text)
    assert charlm.TASK.baseline(splits) == pytest.approx(expected, rel=1e-9)
    assert 3.5 < expected < math.log2(len(VOCAB))


@functools.cache
def _tiny_charlm():
    model = CharLM(vocab_size=len(VOCAB), embed_dim=4, hidden_size=8, num_layers=2)
    batch = charlm.TASK.make_source(SMALL_TEXT, 0).batch(jax.random.key(0), 2)
    return model, jax.jit(model.init)(jax.random.key(1), batch), batch


def test_charlm_loss_and_metric_in_bits():
    model, params, batch = _tiny_charlm()
    uniform = jnp.zeros((2, 16, len(VOCAB)))
    assert float(charlm.TASK.loss(uniform, batch)) == pytest.approx(math.log2(len(VOCAB)))
    total, count = jax.jit(charlm.TASK.metric_sums, static_argnums=0)(model, params, batch)
    assert float(count) == 2 * 16
    loss = charlm.TASK.loss(jax.jit(model.apply)(params, batch), batch)
    assert float(total / count) == pytest.approx(float(loss), rel=1e-5)


def test_greedy_sampling_steps_the_carry_like_the_full_forward_pass():
    model, params, _ = _tiny_charlm()
    (text,) = charlm.sample(model, params, "the ", 12, jax.random.key(0), temperature=0.0)
    assert text.startswith("the ") and len(text) == 16
    # The model is causal: one pass over the whole text gives every step's logits.
    logits = model.apply(params, {"inputs": jnp.asarray(charlm.encode(text))[None]})
    assert charlm.decode(jnp.argmax(logits[0, 3:-1], axis=-1)) == text[4:]
    texts = charlm.sample(model, params, "a ", 30, jax.random.key(0), num_samples=2)
    assert [len(t) for t in texts] == [32, 32] and all(set(t) <= set(VOCAB) for t in texts)
    assert texts == charlm.sample(model, params, "a ", 30, jax.random.key(0), num_samples=2)


# --- seq2seq ---------------------------------------------------------------------------------


def test_seq2seq_batch_shapes_dtypes_and_content():
    data = Seq2SeqData(num_symbols=5, min_len=2, max_len=6)
    source = seq2seq.TASK.make_source(data, 0)
    batch = jax.jit(lambda k: source.batch(k, 64))(jax.random.key(0))
    assert {k: v.shape for k, v in batch.items()} == {
        "source": (64, 6),
        "source_lengths": (64,),
        "targets": (64, 7),
        "decoder_inputs": (64, 7),
    }
    assert all(v.dtype == jnp.int32 for v in batch.values())
    batch = jax.tree.map(np.asarray, batch)
    assert set(batch["source_lengths"]) == set(range(2, 7))
    keys = ("source", "source_lengths", "targets", "decoder_inputs")
    for src, n, tgt, dec in zip(*(batch[k] for k in keys), strict=True):
        letters = src[:n] - 3
        assert (letters >= 0).all() and (letters < 5).all() and (src[n:] == PAD).all()
        expected = np.concatenate([(letters[::-1] + 5 // 2) % 5 + 3, [EOS], [PAD] * (6 - n)])
        np.testing.assert_array_equal(tgt, expected)
        np.testing.assert_array_equal(dec, np.concatenate([[BOS], tgt[:-1]]))
    again = source.batch(jax.random.key(0), 64)
    np.testing.assert_array_equal(batch["targets"], again["targets"])
    assert not np.array_equal(batch["source"], source.batch(jax.random.key(1), 64)["source"])


def test_render():
    assert seq2seq.render([3, 4, 5, EOS, 9, PAD]) == "abc"
    assert seq2seq.render([3, 4, PAD], upto_eos=False) == "ab"
    assert seq2seq.render([3, 4]) == "ab <no EOS>"


def test_sequence_correct_stops_at_the_first_eos():
    a, b, c = 3, 4, 5
    targets = jnp.array([[a, b, EOS, PAD, PAD]] * 6)
    decoded = jnp.array(
        [
            [a, b, EOS, PAD, PAD],  # exact
            [a, b, EOS, c, a],  # anything after the first EOS is ignored
            [a, EOS, EOS, PAD, PAD],  # stops too early
            [a, b, c, EOS, PAD],  # stops too late
            [a, b, c, c, c],  # never stops
            [b, b, EOS, PAD, PAD],  # a wrong token
        ]
    )
    assert seq2seq.sequence_correct(decoded, targets).tolist() == [1, 1, 0, 0, 0, 0]


def test_monotone_baseline():
    assert seq2seq.monotone_baseline(3, 2, 2) == pytest.approx(1 / 3)  # 3 of the 9 words
    assert seq2seq.monotone_baseline(4, 1, 3) == pytest.approx((1 + 1 / 4 + 1 / 4) / 3)
    data = Seq2SeqData(num_symbols=3, min_len=1, max_len=5)
    source = seq2seq.TASK.make_source(data, 0)

    @jax.jit
    def monotone_accuracy(key):
        batch = source.batch(key, 20_000)
        translated = seq2seq.monotone_translation(batch, 3)
        return jnp.mean(seq2seq.sequence_correct(translated, batch["targets"]))

    accuracy = float(monotone_accuracy(jax.random.key(0)))
    expected = seq2seq.TASK.baseline(Splits(data, None, None))
    assert expected == pytest.approx((1 + 1 / 3 + 1 / 3 + 1 / 9 + 1 / 9) / 5)
    assert accuracy == pytest.approx(expected, abs=4 * math.sqrt(expected / 20_000))


def test_greedy_decoding_matches_the_teacher_forced_decoder():
    data = Seq2SeqData(num_symbols=4, min_len=1, max_len=4)
    model = Seq2Seq(vocab_size=7, embed_dim=4, hidden_size=8, num_layers=2)
    batch = seq2seq.TASK.make_source(data, 0).batch(jax.random.key(0), 6)

    @jax.jit  # the whole test, compiled as one program
    def decode_and_force(batch):
        params = model.init(jax.random.key(1), batch)
        decoded = seq2seq.greedy_decode(model, params, batch["source"], batch["source_lengths"], 5)
        # The decoder is causal: teacher-forcing BOS + the greedy tokens gives every step's
        # logits, whose argmax must be the token greedy decoding chose there.
        bos = jnp.full((6, 1), BOS, jnp.int32)
        forced = dict(batch, decoder_inputs=jnp.concatenate([bos, decoded[:, :-1]], axis=1))
        return decoded, model.apply(params, forced)

    decoded, logits = decode_and_force(batch)
    assert decoded.shape == (6, 5) and decoded.dtype == jnp.int32
    np.testing.assert_array_equal(jnp.argmax(logits, axis=-1), decoded)


def test_seq2seq_loss_is_masked():
    source = seq2seq.TASK.make_source(Seq2SeqData(max_len=5), 0)

    @jax.jit
    def losses(key):
        batch = source.batch(key, 4)
        logits = jax.nn.one_hot(batch["targets"], 19) * 50.0  # right everywhere: loss ≈ 0
        garbage = jnp.where((batch["targets"] == PAD)[..., None], -logits, logits)
        return [seq2seq.TASK.loss(x, batch) for x in (logits, garbage, jnp.zeros_like(logits))]

    right, garbage, uniform = losses(jax.random.key(0))
    assert float(right) < 1e-6
    assert float(garbage) < 1e-6  # PAD positions do not count
    assert float(uniform) == pytest.approx(math.log(19))


# --- the configs through the real CLI --------------------------------------------------------

SMOKE = ["train.steps=3", "train.batch_size=4", "train.log_every=1", "train.eval_batches=1"]
SMOKE += ["model.hidden_size=8", "model.embed_dim=4"]
RUNS = {
    "charlm": ["data.corpus_chars=3000", "data.seq_len=16", "data.sample_chars=20"],
    "seq2seq": ["data.max_len=5", "data.num_examples=3"],
}


@pytest.fixture(scope="module")
def smoke_runs(tmp_path_factory):
    """Both configs trained for 3 steps through the CLI's ``main`` (the function the installed
    ``gru-jax`` command calls; a real process is tested in test_train.py)."""
    workdirs = {}
    for name, extra in RUNS.items():
        workdir = tmp_path_factory.mktemp(name)
        sets = [arg for item in SMOKE + extra for arg in ("--set", item)]
        with contextlib.redirect_stdout(io.StringIO()):
            config = str(ROOT / "configs" / f"{name}.yaml")
            code = cli_main(["train", config, "--workdir", str(workdir), *sets])
        assert code == 0, name
        workdirs[name] = workdir
    return workdirs


def _summary(workdir: Path) -> dict:
    summary = json.loads((workdir / "summary.json").read_text())
    assert summary["steps"] == 3 and summary["reached"] is False
    assert (workdir / "plots" / "loss.png").exists()
    return summary


def test_charlm_config_smoke_run(smoke_runs):
    workdir = smoke_runs["charlm"]
    summary = _summary(workdir)
    assert summary["metric"] == "bits_per_char" and summary["target"] == 1.1
    assert summary["baseline"] == summary["unigram_bits_per_char"] > 3.5
    assert summary["sample"].startswith("the ") and len(summary["sample"]) == 24
    assert 0.0 <= summary["sample_known_word_fraction"] <= 1.0
    assert (workdir / "samples.txt").read_text().count("## sample") == 3
    assert (workdir / "plots" / "bits_by_position.png").exists()


def test_seq2seq_config_smoke_run(smoke_runs):
    workdir = smoke_runs["seq2seq"]
    summary = _summary(workdir)
    assert summary["metric"] == "sequence_accuracy" and summary["target"] == 0.9
    assert summary["baseline"] == pytest.approx(seq2seq.monotone_baseline(16, 2, 5))
    assert 0.0 <= summary["value"] <= 1.0
    assert set(summary["accuracy_by_length"]) == {"2", "3", "4", "5"}
    assert len(summary["examples"]) >= 3
    assert set(summary["examples"][0]) == {"source", "target", "decoded", "correct"}
    assert "decoded" in (workdir / "examples.txt").read_text()
    assert (workdir / "plots" / "accuracy_by_length.png").exists()
