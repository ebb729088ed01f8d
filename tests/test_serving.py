"""``gru-jax export`` and :mod:`gru_jax.serving`: a trained run becomes one ``jax.export``
artifact for any batch size and length, loadable with jax alone (checked in a fresh process
that imports neither flax nor gru_jax), equal to the run's model; every task's signature
exports; the mistakes are one line and exit code 2."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gru_jax import serving
from gru_jax.cli import main as cli_main
from gru_jax.tasks import charlm, get_task
from gru_jax.tasks.copy import copy_batch
from gru_jax.tasks.seq2seq import PAD, render
from gru_jax.train import export_run, load_checkpoint, load_config

ROOT = Path(__file__).resolve().parent.parent
SETS = ["model.hidden_size=8", "train.batch_size=8", "train.eval_batches=1"]
SIZES = [(1, 1), (3, 17)]  # (B, T): 1, and primes on both sides of the 16- and 32-step chunks


def _sets(items: list[str]) -> list[str]:
    return [arg for item in items for arg in ("--set", item)]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 4-step adding run and its export."""
    root = tmp_path_factory.mktemp("serving")
    workdir, out = root / "run", root / "model.jax"
    argv = ["train", "configs/adding.yaml", "--workdir", str(workdir), *_sets(SETS)]
    assert cli_main([*argv, "--set", "train.steps=4"]) == 0
    argv = ["export", "configs/adding.yaml", "--workdir", str(workdir), "--out", str(out)]
    assert cli_main([*argv, *_sets(SETS)]) == 0
    return workdir, out


def test_the_artifact_runs_without_flax_or_gru_jax_and_equals_the_model(exported, tmp_path):
    workdir, out = exported
    rng = np.random.default_rng(0)
    inputs = {f"x{b}_{t}": rng.random((b, t, 2)).astype(np.float32) for b, t in SIZES}
    np.savez(tmp_path / "inputs.npz", **inputs)
    script = f"""
import sys
import numpy as np
from jax import export
predict = export.deserialize(open({str(out)!r}, "rb").read()).call
inputs = np.load({str(tmp_path / "inputs.npz")!r})
np.savez({str(tmp_path / "outputs.npz")!r}, **{{k: np.asarray(predict(inputs[k])[0]) for k in inputs}})
assert "flax" not in sys.modules and "gru_jax" not in sys.modules, "imported the training code"
"""
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    outputs = np.load(tmp_path / "outputs.npz")
    model, params, step = load_checkpoint(load_config("configs/adding.yaml", SETS), workdir)
    assert step == 4
    for name, x in inputs.items():
        want = jax.jit(model.apply)(params, {"inputs": jnp.asarray(x)})
        np.testing.assert_allclose(outputs[name], want, rtol=1e-6, atol=1e-6)


def test_the_description_and_serving_load(exported):
    _, out = exported
    predict, description = serving.load(out)
    assert description["task"] == "adding" and description["step"] == 4
    assert description["inputs"] == [{"name": "inputs", "shape": ["b", "t", 2], "dtype": "float32"}]
    assert description["outputs"] == [{"name": "sum", "shape": ["b"], "dtype": "float32"}]
    assert description["platforms"] == [jax.default_backend()]
    assert "vocab" not in description  # float inputs: no token ids to name
    assert json.loads(out.with_name("model.jax.json").read_text()) == description
    (sums,) = predict(jnp.ones((5, 9, 2), jnp.float32))
    assert sums.shape == (5,)


def _export_fresh(monkeypatch, name: str, sets: list[str], out: Path, streaming: bool = False):
    """``export_run`` of ``name``'s model (``sets`` applied) on freshly initialised parameters,
    as the command calls it, the checkpoint replaced by them: ``(config, params, signature,
    a batch, the description)``."""
    config = load_config(f"configs/{name}.yaml", sets)
    task = get_task(name)
    make_signature = task.stream if streaming else task.serve
    assert make_signature is not None
    model = task.make_model(config.model, config.data)
    batch = task.make_source(config.data, 0).batch(jax.random.key(1), 3)
    params = jax.jit(model.init)(jax.random.key(0), batch)
    monkeypatch.setattr("gru_jax.train._export.load_checkpoint", lambda *a: (model, params, 0))
    described = export_run(config, out.parent, out, streaming=streaming)
    return config, params, make_signature(model, params, config.data), batch, described


def _check_vocab(name: str, described: dict, config, params) -> None:
    """A token task's ``vocab``: one name per row of every embedding table of the model, each
    id named as the task's own decoder (or data generator) names it."""
    vocab = tuple(described["vocab"])
    tables = [
        leaf.shape[0]
        for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]
        if getattr(path[-1], "key", None) == "embedding"
    ]
    assert tables and all(rows == len(vocab) for rows in tables)
    if name == "charlm":
        assert vocab == tuple(charlm.VOCAB)
        assert charlm.decode(np.arange(len(vocab))) == "".join(vocab)
    elif name == "copy":  # the symbols are named by their ids, as examples.txt writes them
        data = config.data
        tokens = copy_batch(jax.random.key(0), 1, **dataclasses.asdict(data))["inputs"][0]
        symbols = [str(i) for i in tokens[: data.copy_len].tolist()]
        blanks = ["<blank>"] * (data.delay - 1)
        want = [*symbols, *blanks, "<delimiter>", *["<blank>"] * data.copy_len]
        assert [vocab[i] for i in tokens.tolist()] == want
        assert vocab == ("<blank>", *map(str, range(1, data.num_symbols + 1)), "<delimiter>")
    else:  # seq2seq: the source and the decoded tokens share the ids; render skips PAD
        assert name == "seq2seq" and vocab[PAD] == "<pad>"
        assert vocab[3:] == tuple("abcdefghijklmnop"[: config.data.num_symbols])
        for i in set(range(len(vocab))) - {PAD}:
            assert render([i], upto_eos=False) == vocab[i]


@pytest.mark.parametrize("name", ["charlm", "seq2seq"])
def test_every_task_signature_exports(name: str, tmp_path, monkeypatch):
    """Each built-in task's prediction function (on freshly initialised parameters) exports
    with its symbolic dimensions and gives the function's own outputs at a concrete size
    (adding's through the CLI above, copy's through its streaming test below; forecast's is
    adding's with another read-out); a token task's description names its ids (``vocab``)."""
    config, params, signature, batch, described = _export_fresh(
        monkeypatch,
        name,
        ["model.hidden_size=4", "model.embed_dim=4"]
        + (["data.corpus_chars=2000"] if name == "charlm" else [])
        # seq2seq with the minGRU: a bidirectional MinGRUStack encoder, one-step decoding
        + (["data.max_len=4", "model.cell=mingru"] if name == "seq2seq" else []),
        tmp_path / "m.jax",
    )
    predict, loaded = serving.load(tmp_path / "m.jax")
    assert loaded == described
    # (the tests run with x64 enabled: the sources' floats are float64 here, float32 in a run)
    args = [batch[input_name].astype(dtype) for input_name, _, dtype in signature.inputs]
    # the artifact and the function, at a concrete size, compiled as one program
    results = jax.jit(lambda *a: (predict(*a), signature.fn(*a)))(*args)
    for got, want in zip(*results, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert "b" in described["symbols"]
    _check_vocab(name, described, config, params)


@pytest.mark.parametrize("name", ["adding", "forecast", "copy", "charlm", "seq2seq"])
def test_serve_and_stream_name_the_same_vocab(name: str):
    """The plain and the streaming export describe the same ids; float inputs have none."""
    config = load_config(f"configs/{name}.yaml")
    task = get_task(name)
    model = task.make_model(config.model, config.data)
    assert task.serve is not None
    vocab = task.serve(model, None, config.data).vocab  # the parameters are only closed over
    assert (vocab is None) == (name in ("adding", "forecast"))
    if task.stream is not None:
        assert task.stream(model, None, config.data).vocab == vocab


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workdir", "{empty}"], "holds no checkpoints"),
        (["--platforms", "gpu"], "--platforms must be a comma-separated list of"),
        (["--out", "{missing}/model.jax"], "does not exist"),
    ],
    ids=["no checkpoints", "platform", "out folder"],
)
def test_mistakes_are_one_line(exported, tmp_path, capsys, extra, message):
    workdir, _ = exported
    argv = ["export", "configs/adding.yaml", "--workdir", str(workdir)]
    argv += ["--out", str(tmp_path / "m.jax"), *_sets(SETS)]
    (tmp_path / "empty").mkdir()
    for flag, value in zip(extra[::2], extra[1::2], strict=True):
        value = value.format(empty=tmp_path / "empty", missing=tmp_path / "missing")
        if flag in argv:
            argv[argv.index(flag) + 1] = value
        else:
            argv += [flag, value]
    capsys.readouterr()
    assert cli_main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and err.startswith("gru-jax: error: ") and message in err


# ------------------------------------------------------------------------------ streaming


def test_streaming_chunks_equal_the_whole_sequence(exported, tmp_path):
    """The adding run's step function fed in chunks of 1, 13 and 23 steps gives the whole
    sequence's prediction; a reset restarts the state (the segment after it alone)."""
    workdir, _ = exported
    out = tmp_path / "stream.jax"
    argv = ["export", "configs/adding.yaml", "--workdir", str(workdir), "--out", str(out)]
    assert cli_main([*argv, "--streaming", *_sets(SETS)]) == 0
    step, description = serving.load(out)
    assert description["streaming"] is True
    assert [i["name"] for i in description["inputs"]] == ["carry", "inputs", "resets"]
    assert description["inputs"][0]["shape"] == [1, "b", 8]
    assert "vocab" not in description
    model, params, _ = load_checkpoint(load_config("configs/adding.yaml", SETS), workdir)
    xs = jnp.asarray(np.random.default_rng(1).random((3, 37, 2)), jnp.float32)
    carry, resets = jnp.zeros((1, 3, 8), jnp.float32), jnp.zeros((3, 37), bool)
    for start, stop in [(0, 1), (1, 14), (14, 37)]:
        carry, sums = step(carry, xs[:, start:stop], resets[:, start:stop])
    whole = jax.jit(model.apply)(params, {"inputs": xs})
    np.testing.assert_allclose(sums, whole, rtol=1e-5, atol=1e-6)
    # a reset at step 20 of the last chunk: the prediction of steps 20-36 alone
    resets = resets.at[:, 20].set(True)
    carry = jnp.zeros((1, 3, 8), jnp.float32)
    for start, stop in [(0, 14), (14, 37)]:
        carry, sums = step(carry, xs[:, start:stop], resets[:, start:stop])
    np.testing.assert_allclose(
        sums, jax.jit(model.apply)(params, {"inputs": xs[:, 20:]}), atol=1e-6
    )


def test_streaming_per_step_outputs_equal_the_whole_sequence(tmp_path, monkeypatch):
    """copy's step function emits the logits of each step of the chunk: chunked = whole; its
    description names the ids (``vocab``)."""
    sets = ["model.hidden_size=4", "model.num_layers=2", "data.delay=4"]
    config, params, _, batch, described = _export_fresh(
        monkeypatch, "copy", sets, tmp_path / "stream.jax", streaming=True
    )
    step, loaded = serving.load(tmp_path / "stream.jax")
    assert loaded == described and described["streaming"] is True
    tokens = batch["inputs"][:2].astype(jnp.int32)
    carry, resets = jnp.zeros((2, 2, 4), jnp.float32), jnp.zeros(tokens.shape, bool)
    pieces = []
    for start, stop in [(0, 5), (5, 6), (6, tokens.shape[1])]:
        carry, logits = step(carry, tokens[:, start:stop], resets[:, start:stop])
        pieces.append(logits)
    model = get_task("copy").make_model(config.model, config.data)
    whole = jax.jit(model.apply)(params, {"inputs": tokens})
    np.testing.assert_allclose(jnp.concatenate(pieces, axis=1), whole, rtol=1e-5, atol=1e-6)
    _check_vocab("copy", described, config, params)


def test_streaming_a_bidirectional_model_is_one_line(tmp_path, capsys):
    """Refused before any checkpoint is read: the model's form decides, not the run."""
    argv = ["export", "configs/seq2seq.yaml", "--workdir", str(tmp_path)]
    argv += ["--out", str(tmp_path / "m.jax"), "--streaming"]
    capsys.readouterr()
    assert cli_main(argv) == 2
    assert capsys.readouterr().err == (
        "gru-jax: error: task 'seq2seq' has no streaming form (its model reads whole "
        "sequences: a bidirectional encoder); export it without --streaming\n"
    )
