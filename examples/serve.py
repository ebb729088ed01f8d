"""Serve what ``gru-jax export`` wrote: load the artifact, feed it a batch, print the outputs.

    .venv/bin/gru-jax export configs/adding.yaml --workdir runs/adding --out runs/adding/model.jax
    .venv/bin/python examples/serve.py runs/adding/model.jax

The artifact is a ``jax.export`` program with symbolic dimensions (``b`` the batch, ``t`` a
length): one file serves every batch size and length, with ``jax`` alone (no Flax, no Optax, no
gru_jax needed to run it; :func:`gru_jax.serving.load` is a convenience). This script reads the
inputs' names, shapes and dtypes from ``FILE.json``, makes an input of each at two sizes (random
floats in ``[0, 1)``, token ids below the size of ``vocab``, lengths at their maximum, no
resets) and prints what the model returns. For real inputs, see docs/export.md.
"""

from __future__ import annotations

import sys

import numpy as np

from gru_jax import serving


def make_inputs(description: dict, sizes: dict[str, int], seed: int = 0) -> list[np.ndarray]:
    """One array per input of ``description``, its symbolic dimensions set from ``sizes``."""
    rng = np.random.default_rng(seed)
    vocab = len(description.get("vocab", ())) or 2
    arrays = []
    for spec in description["inputs"]:
        shape = tuple(sizes[d] if isinstance(d, str) else d for d in spec["shape"])
        if spec["dtype"] == "bool":
            arrays.append(np.zeros(shape, bool))
        elif spec["name"].endswith("lengths"):  # every sequence at its full length
            arrays.append(np.full(shape, max(sizes.values()), spec["dtype"]))
        elif spec["dtype"].startswith("int"):
            arrays.append(rng.integers(0, vocab, shape).astype(spec["dtype"]))
        else:
            arrays.append(rng.random(shape).astype(spec["dtype"]))
    return arrays


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python examples/serve.py FILE  (what gru-jax export --out FILE wrote)")
        return 2
    predict, description = serving.load(argv[0])
    symbols = sorted({d for i in description["inputs"] for d in i["shape"] if isinstance(d, str)})
    for batch, length in ((2, 12), (3, 40)):  # one artifact, any batch size and length
        sizes = {s: batch if s == "b" else length for s in symbols}
        inputs = make_inputs(description, sizes)
        outputs = predict(*inputs)
        shown = ", ".join(
            f"{i['name']} {a.shape} {a.dtype}"
            for i, a in zip(description["inputs"], inputs, strict=True)
        )
        print(f"predict({shown})")
        for spec, out in zip(description["outputs"], outputs, strict=True):
            out = np.asarray(out)
            values = np.array2string(out.ravel()[:4], precision=4)
            print(f"  -> {spec['name']} {out.shape} {out.dtype}: {values} ...")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
