"""What ``reverse=True`` does with padding: draws docs/images/reverse_padding.png.

Run from the repository root:

    python docs/figures/reverse_padding.py

A batch of two sequences, lengths 6 and 4, padded to T = 6 (the padding holds NaN). For every
output ``ys[b, t]`` the script computes, with ``jax.jacrev`` of :func:`gru_jax.gru`, which inputs
``xs[b, s]`` it depends on. The number of inputs an output depends on is the order in which its
step ran (1 = first), since each step sees its own input and everything processed before it.
Nothing in the picture is drawn by hand: orders, dependencies and zeros come from gru_jax.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.patches import FancyArrowPatch, Rectangle

import gru_jax

OUT = Path(__file__).resolve().parents[1] / "images" / "reverse_padding.png"
T, FEATURES, H = 6, 2, 4
LENGTHS = (6, 4)


def dependencies(reverse: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``dep[b, t, s]``: whether ``ys[b, t]`` depends on ``xs[b, s]``; ``ys``; ``h_last``."""
    params = gru_jax.init_gru(jax.random.key(0), FEATURES, H)
    xs = jax.random.normal(jax.random.key(1), (len(LENGTHS), T, FEATURES))
    lengths = jnp.array(LENGTHS)
    valid = jnp.arange(T)[None, :, None] < lengths[:, None, None]
    xs = jnp.where(valid, xs, jnp.nan)  # NaN in the padding: it must reach nothing

    def run(xs):
        return gru_jax.gru(params, xs, seq_lengths=lengths, reverse=reverse)[0]

    ys, h_last = gru_jax.gru(params, xs, seq_lengths=lengths, reverse=reverse)
    jac = jax.jacrev(run)(xs)  # (B, T, H, B, T, I)
    batch = np.arange(len(LENGTHS))
    per_example = np.asarray(jac)[batch, :, :, batch]  # (B, T, H, T, I)
    dep = np.abs(per_example).sum(axis=(2, 4)) > 0  # (B, T, T)
    return dep, np.asarray(ys), np.asarray(h_last)


def draw_strip(
    ax, y: float, order: np.ndarray, length: int, reverse: bool, label: str, last: int
) -> None:
    """One sequence as a row of T boxes: the processing order in valid boxes, padding grey."""
    cmap = plt.get_cmap("viridis")
    for t in range(T):
        if t < length:
            colour = cmap(0.15 + 0.7 * (order[t] - 1) / max(length - 1, 1))
            ax.add_patch(Rectangle((t, y), 0.9, 0.8, facecolor=colour, edgecolor="black"))
            ax.text(
                t + 0.45,
                y + 0.4,
                f"{order[t]}",
                ha="center",
                va="center",
                color="white",
                fontsize=13,
                fontweight="bold",
            )
        else:
            ax.add_patch(Rectangle((t, y), 0.9, 0.8, facecolor="0.85", edgecolor="0.6", hatch="//"))
            ax.text(
                t + 0.45, y + 0.4, "pad\ny=0", ha="center", va="center", color="0.35", fontsize=8
            )
    start, end = (length - 0.55, 0.35) if reverse else (0.35, length - 0.55)
    if length > 1:
        ax.add_patch(
            FancyArrowPatch(
                (start, y + 1.0),
                (end, y + 1.0),
                arrowstyle="-|>",
                mutation_scale=14,
                color="black",
                lw=1.3,
            )
        )
    ax.text(-0.25, y + 0.4, label, ha="right", va="center", fontsize=10)
    ax.text(T + 0.1, y + 0.4, f"h_last =\nys[{last}]", ha="left", va="center", fontsize=9)


def main() -> None:
    fig = plt.figure(figsize=(11, 7.2))
    grid = fig.add_gridspec(2, 2, height_ratios=[1.0, 1.25], hspace=0.45, wspace=0.25)
    results = {rev: dependencies(rev) for rev in (False, True)}

    for col, reverse in enumerate((False, True)):
        dep, ys, h_last = results[reverse]
        # The order in which each output's step ran: the number of inputs it depends on.
        order = dep.sum(axis=2)
        # h_last is the state after the step that ran last.
        last = order.argmax(axis=1)
        for b, length in enumerate(LENGTHS):
            assert (order[b, length:] == 0).all() and (ys[b, length:] == 0).all()
            assert np.array_equal(h_last[b], ys[b, last[b]])
        assert not np.isnan(ys).any()

        ax = fig.add_subplot(grid[0, col])
        for b, length in enumerate(LENGTHS):
            draw_strip(ax, 2.0 * (1 - b), order[b], length, reverse, f"length {length}", last[b])
        ax.set_xlim(-1.9, T + 1.2)
        ax.set_ylim(-0.3, 4.2)
        ax.set_xticks(np.arange(T) + 0.45, [str(t) for t in range(T)])
        ax.set_xlabel("time position t (outputs stay at their own position)")
        ax.set_yticks([])
        for side in ("left", "right", "top"):
            ax.spines[side].set_visible(False)
        ax.set_title(f"reverse={reverse}: order in which the steps run", fontsize=11)

        ax = fig.add_subplot(grid[1, col])
        b, length = 1, LENGTHS[1]
        image = np.where(dep[b], 1.0, 0.0)
        pad = np.zeros((T, T), bool)
        pad[length:, :] = True
        pad[:, length:] = True
        rgb = np.ones((T, T, 3))
        rgb[dep[b]] = matplotlib.colors.to_rgb("tab:blue")
        rgb[pad] = (0.85, 0.85, 0.85)
        ax.imshow(rgb, origin="upper")
        for t in range(T):
            for s in range(T):
                if pad[t, s]:
                    ax.text(s, t, "pad", ha="center", va="center", fontsize=7, color="0.45")
                elif image[t, s]:
                    ax.text(s, t, "✓", ha="center", va="center", fontsize=10, color="white")
        ax.set_xticks(range(T))
        ax.set_yticks(range(T))
        ax.set_xlabel("input xs[t'] (length-4 sequence)")
        ax.set_ylabel("output ys[t]")
        ax.set_title(f"reverse={reverse}: ys[t] depends on xs[t'] (✓)", fontsize=11)

    fig.suptitle(
        "gru(params, xs, seq_lengths=[6, 4], reverse=...): each valid prefix runs in its own "
        "direction; padding (NaN here) is skipped",
        fontsize=11,
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110, bbox_inches="tight")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
