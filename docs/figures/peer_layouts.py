"""Where each library keeps gru_jax's gate blocks: draws docs/images/peer_layouts.png.

Run from the repository root:

    python docs/figures/peer_layouts.py

The picture is read off the converters of :mod:`gru_jax.interop`, not drawn by hand: the script
builds a :class:`gru_jax.GRUParams` whose every gate block holds its own tag value (the kernels'
``z, r, n`` blocks hold 1, 2, 3 in ``w_x`` and 4, 5, 6 in ``w_h``; the biases hold 10, 20, 30 in
``b_x`` and 100, 200, 300 in ``b_h``), exports it to each peer's layout, and decodes every block
of every exported array: which gru_jax block it came from, whether it was negated, and which
biases were summed into it. Sizes I = 5 and H = 3 make every axis recognisable, so the shapes
are read off too. The torch, Keras and Haiku converters give plain arrays, so those libraries
need not be installed; Flax (a core dependency) and Equinox (in the ``test`` and ``bench``
extras) must be, because their converters build real modules.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import Rectangle

import gru_jax
from gru_jax import interop

OUT = Path(__file__).resolve().parents[1] / "images" / "peer_layouts.png"
IN, H = 5, 3
GATES = "zrn"
COLOURS = {"z": "#4c72b0", "r": "#dd8452", "n": "#55a868"}


def tagged_params(reset_after: bool, b_hn: bool = True) -> gru_jax.GRUParams:
    """Every gate block filled with its tag value (see the module docstring)."""

    def blocks(values, rows=None):
        row = np.concatenate([np.full(H, v, np.float32) for v in values])
        return jnp.asarray(row if rows is None else np.tile(row, (rows, 1)))

    return gru_jax.GRUParams(
        w_x=blocks([1, 2, 3], IN),
        w_h=blocks([4, 5, 6], H),
        b_x=blocks([10, 20, 30]),
        b_h=blocks([100, 200, 300 if b_hn else 0]),
        reset_after=reset_after,
    )


def decode(value: float) -> tuple[str, str]:
    """A block's tag value -> (its label, the gate that colours it)."""
    sign = "−" if value < 0 else ""
    a = round(abs(value))
    if a < 10:  # a kernel block
        gate = GATES[(a - 1) % 3]
        return f"{sign}{gate}", gate
    parts = []
    if a % 100:
        parts.append(f"b_x{GATES[(a % 100) // 10 - 1]}")
    if a // 100:
        parts.append(f"b_h{GATES[a // 100 - 1]}")
    gate = parts[0][-1]
    label = "+".join(parts)
    if sign:
        label = f"−({label})" if len(parts) > 1 else f"−{label}"
    return label, gate


def shape_text(shape: tuple[int, ...]) -> str:
    names = {3 * H: "3H", IN: "I", H: "H", 2: "2"}
    return "(" + ", ".join(names[d] for d in shape) + ("," if len(shape) == 1 else "") + ")"


def blocks_of(a) -> list[tuple[str, str]]:
    """The gate blocks of one exported array, in storage order."""
    a = np.asarray(a, np.float32)
    axes = [i for i, d in enumerate(a.shape) if d == 3 * H]
    if not axes:  # one gate's array (linen's per-gate Dense, Equinox's bias_n)
        assert np.all(a == a.flat[0])
        return [decode(float(a.flat[0]))]
    moved = np.moveaxis(a, axes[0], 0)
    out = []
    for k in range(3):
        block = moved[k * H : (k + 1) * H]
        assert np.all(block == block.flat[0]), "a block must hold a single tag"
        out.append(decode(float(block.flat[0])))
    return out


def group(name: str, a) -> tuple[str, list[tuple[str, str]]]:
    return f"{name} {shape_text(np.shape(a))}", blocks_of(a)


def layouts() -> list[tuple[str, list]]:
    after, before = tagged_params(True), tagged_params(False)
    rows = [
        ("gru_jax\nGRUParams", [group(f, getattr(after, f)) for f in ("w_x", "w_h", "b_x", "b_h")]),
    ]
    sd = interop.to_torch(after)
    rows.append(("torch.nn.GRU", [group(k[: -len("_l0")], sd[k]) for k in sd]))
    lin = interop.to_flax_linen(after)

    def linen(names: tuple[str, ...], leaf: str) -> list[tuple[str, str]]:
        return [blocks_of(lin[k][leaf])[0] for k in names]

    rows.append(
        (
            "Flax linen\nnn.GRUCell",
            [
                ("ir, iz, in kernels (I, H)", linen(("ir", "iz", "in"), "kernel")),
                ("hr, hz, hn kernels (H, H)", linen(("hr", "hz", "hn"), "kernel")),
                ("ir, iz, in biases (H,)", linen(("ir", "iz", "in"), "bias")),
                ("hn bias (H,)", linen(("hn",), "bias")),
            ],
        )
    )
    cell = interop.to_flax_nnx(tagged_params(True, b_hn=False))
    rows.append(
        (
            "Flax NNX\nnnx.GRUCell",
            [
                group("dense_i.kernel", cell.dense_i.kernel[...]),
                group("dense_h.kernel", cell.dense_h.kernel[...]),
                group("dense_i.bias", cell.dense_i.bias[...]),
                ("no recurrent bias: b_hn must be 0", [("none", "")]),
            ],
        )
    )
    names = ("kernel", "recurrent_kernel")
    k_after = interop.to_keras(after)
    rows.append(
        (
            "Keras GRU\nreset_after=True",
            [group(n, a) for n, a in zip(names, k_after[:2], strict=True)]
            + [group("bias[0]", k_after[2][0]), group("bias[1]", k_after[2][1])],
        )
    )
    k_before = interop.to_keras(before)
    rows.append(
        (
            "Keras GRU\nreset_after=False",
            [group(n, a) for n, a in zip(names, k_before[:2], strict=True)]
            + [group("bias", k_before[2])],
        )
    )
    hk = interop.to_haiku(before)
    rows.append(("Haiku hk.GRU\n(reset before)", [group(k, hk[k]) for k in ("w_i", "w_h", "b")]))
    eqx_cell = interop.to_equinox(after)
    rows.append(
        (
            "Equinox\neqx.nn.GRUCell",
            [group(k, getattr(eqx_cell, k)) for k in ("weight_ih", "weight_hh", "bias", "bias_n")],
        )
    )
    return rows


def main() -> None:
    rows = layouts()
    kernel_w, bias_w, gap = 0.75, 1.55, 0.45
    fig, ax = plt.subplots(figsize=(11.5, 0.95 * len(rows) + 1.2))
    right = 0.0
    for i, (library, groups) in enumerate(rows):
        y = -1.35 * i
        ax.text(-0.3, y + 0.3, library, ha="right", va="center", fontsize=9.5, fontweight="bold")
        x = 0.0
        for title, blocks in groups:
            is_bias = any(label.startswith(("b_", "−b", "−(")) for label, _ in blocks)
            width = bias_w if is_bias or blocks == [("none", "")] else kernel_w
            ax.text(x, y + 0.72, title, ha="left", va="bottom", fontsize=7.5, color="0.25")
            for label, gate in blocks:
                if gate == "":
                    ax.add_patch(
                        Rectangle((x, y), width, 0.6, fill=False, ls="--", edgecolor="0.5")
                    )
                    ax.text(x + width / 2, y + 0.3, "—", ha="center", va="center", color="0.5")
                else:
                    negated = label.startswith("−")
                    ax.add_patch(
                        Rectangle(
                            (x, y),
                            width,
                            0.6,
                            facecolor=COLOURS[gate],
                            alpha=0.45 if is_bias else 0.9,
                            edgecolor="black",
                            hatch="xx" if negated else None,
                            lw=1.0,
                        )
                    )
                    ax.text(
                        x + width / 2,
                        y + 0.3,
                        label,
                        ha="center",
                        va="center",
                        fontsize=7.5 if is_bias else 10,
                        fontweight="bold",
                        color="black" if is_bias or negated else "white",
                        bbox={"facecolor": "white", "alpha": 0.7, "lw": 0, "pad": 0.5}
                        if negated
                        else None,
                    )
                x += width
            right = max(right, x)
            x += gap
    ax.set_xlim(-2.6, right + 0.2)
    ax.set_ylim(-1.35 * (len(rows) - 1) - 0.3, 1.25)
    ax.axis("off")
    ax.set_title(
        "Where each library stores gru_jax's gate blocks, in storage order along the gate axis\n"
        "hatched, −: negated (there z weights the old state);  b_x·+b_h·: two biases summed into "
        "one slot",
        fontsize=10,
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
