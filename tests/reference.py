"""Independent float64 NumPy reference for the ``gru_jax`` public API.

Written directly from the GRU equations (no JAX, plain Python loops over time):

    z  = sigmoid(x W_xz + b_xz + h W_hz + b_hz)          (update gate)
    r  = sigmoid(x W_xr + b_xr + h W_hr + b_hr)          (reset gate)
    reset_after=False:
        n = tanh(x W_xn + b_xn + (r * h) W_hn + b_hn)
    reset_after=True:
        n = tanh(x W_xn + b_xn + r * (h W_hn + b_hn))
    h' = (1 - z) * h + z * n

Gate blocks live on the last axis of ``w_x (I, 3H)``, ``w_h (H, 3H)``,
``b_x (3H,)``, ``b_h (3H,)`` in the order (z, r, n).

Sequence semantics (torch packed-sequence style): with a length ``L`` only the
first ``L`` time steps are processed; outputs at ``t >= L`` are zero and the final
state is the state after the last processed step.  ``reverse=True`` processes
``t = L-1, ..., 0`` and writes each output at its own time position.

Resets (segments inside a row): ``resets[b, t]`` marks step ``t`` as the start of a segment.
Forward, the state before a marked step is zeros.  In reverse, the state before step ``t`` is
zeros when ``t + 1 < L`` and step ``t + 1`` is marked (a segment's last step is processed
first).  Marks at ``t >= L`` are ignored.
"""

from __future__ import annotations

import numpy as np


def _f64(a):
    return np.asarray(a, dtype=np.float64)


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def np_gru_cell(w_x, w_h, b_x, b_h, h, x, reset_after):
    """One GRU step. ``h`` is ``(..., H)``, ``x`` is ``(..., I)``; returns ``(..., H)``."""
    w_x, w_h, b_x, b_h, h, x = map(_f64, (w_x, w_h, b_x, b_h, h, x))
    hidden = w_h.shape[0]
    assert w_x.shape[1] == 3 * hidden and w_h.shape[1] == 3 * hidden
    assert b_x.shape == (3 * hidden,) and b_h.shape == (3 * hidden,)

    def block(a, k):
        return a[..., k * hidden : (k + 1) * hidden]

    wxz, wxr, wxn = (block(w_x, k) for k in range(3))
    whz, whr, whn = (block(w_h, k) for k in range(3))
    bxz, bxr, bxn = (block(b_x, k) for k in range(3))
    bhz, bhr, bhn = (block(b_h, k) for k in range(3))

    z = _sigmoid(x @ wxz + bxz + h @ whz + bhz)
    r = _sigmoid(x @ wxr + bxr + h @ whr + bhr)
    if reset_after:
        n = np.tanh(x @ wxn + bxn + r * (h @ whn + bhn))
    else:
        n = np.tanh(x @ wxn + bxn + (r * h) @ whn + bhn)
    return (1.0 - z) * h + z * n


def np_gru(w_x, w_h, b_x, b_h, xs, h0, seq_lengths, reverse, reset_after, resets=None):
    """Run a GRU over batch-major ``xs`` of shape ``(B, T, I)``.

    ``h0``: ``(B, H)`` or ``None`` (zeros).  ``seq_lengths``: ``(B,)`` ints or
    ``None`` (all ``T``).  ``resets``: ``(B, T)`` bools or ``None``.
    Returns ``(ys (B, T, H), h_last (B, H))`` in float64.
    """
    xs = _f64(xs)
    batch, steps, _ = xs.shape
    hidden = np.shape(w_h)[0]
    if h0 is None:
        h0 = np.zeros((batch, hidden))
    h0 = _f64(h0)
    assert h0.shape == (batch, hidden)
    if seq_lengths is None:
        lengths = [steps] * batch
    else:
        lengths = [int(v) for v in np.asarray(seq_lengths).reshape(batch)]

    ys = np.zeros((batch, steps, hidden))
    h_last = np.zeros((batch, hidden))
    for b in range(batch):
        length = lengths[b]
        assert 0 <= length <= steps
        order = range(length - 1, -1, -1) if reverse else range(length)
        h = h0[b].copy()
        for t in order:
            if resets is not None:
                marked = t + 1 if reverse else t
                if marked < length and resets[b][marked]:
                    h = np.zeros(hidden)
            h = np_gru_cell(w_x, w_h, b_x, b_h, h, xs[b, t], reset_after)
            ys[b, t] = h
        h_last[b] = h
    return ys, h_last


def np_gru_stack(layers, xs, h0, seq_lengths, resets=None):
    """Multi-layer (optionally bidirectional) GRU.

    ``layers[l][d] = (w_x, w_h, b_x, b_h, reset_after)`` with ``d = 0`` forward and
    ``d = 1`` backward (if present).  ``xs`` is ``(B, T, I)``; ``h0`` is
    ``(L*D, B, H)`` or ``None``.  Returns ``(ys (B, T, D*H), h_n (L*D, B, H))``
    with ``h_n`` layer-major, forward before backward (torch order).
    """
    inp = _f64(xs)
    batch = inp.shape[0]
    num_dirs = len(layers[0])
    hidden = np.shape(layers[0][0][1])[0]
    if h0 is not None:
        h0 = _f64(h0)
        assert h0.shape == (len(layers) * num_dirs, batch, hidden)
    h_n = []
    for li, layer in enumerate(layers):
        assert len(layer) == num_dirs
        outs = []
        for d, (w_x, w_h, b_x, b_h, reset_after) in enumerate(layer):
            init = None if h0 is None else h0[li * num_dirs + d]
            ys, h_last = np_gru(
                w_x, w_h, b_x, b_h, inp, init, seq_lengths, d == 1, reset_after, resets
            )
            outs.append(ys)
            h_n.append(h_last)
        inp = np.concatenate(outs, axis=-1)
    return inp, np.stack(h_n, axis=0)


def np_mingru(w_x, b_x, candidate, xs, h0, lengths, resets=None, reverse=False):
    """Float64 loop of the equations, one example and one step at a time.

    z = σ(x W_z + b_z); v = x W_h + b_h; h̃ = v, or g(v) = v + 0.5 (v ≥ 0) / σ(v) (v < 0);
    h' = (1 − z) h + z h̃. Past its length an example's state is frozen and its output zero.
    Where ``resets[b, t]`` (and t < length) the state before step t is zeros. ``reverse`` runs
    the steps ``length − 1 … 0``; a segment starting at ``t + 1`` then ends before step ``t``.
    """
    w_x, b_x, xs = (np.asarray(a, np.float64) for a in (w_x, b_x, xs))
    batch, steps, _ = xs.shape
    hidden = w_x.shape[1] // 2
    h0 = np.zeros((batch, hidden)) if h0 is None else np.asarray(h0, np.float64)
    lengths = [steps] * batch if lengths is None else [int(n) for n in lengths]
    ys, h_last = np.zeros((batch, steps, hidden)), np.zeros((batch, hidden))
    for b in range(batch):
        h = h0[b].copy()
        order = range(lengths[b] - 1, -1, -1) if reverse else range(lengths[b])
        for t in order:
            if resets is not None and (
                (t + 1 < lengths[b] and resets[b, t + 1]) if reverse else resets[b, t]
            ):
                h = np.zeros(hidden)
            pre = xs[b, t] @ w_x + b_x
            z = 1.0 / (1.0 + np.exp(-pre[:hidden]))
            v = pre[hidden:]
            if candidate == "g":
                v = np.array([u + 0.5 if u >= 0 else 1.0 / (1.0 + np.exp(-u)) for u in v])
            h = (1.0 - z) * h + z * v
            ys[b, t] = h
        h_last[b] = h
    return ys, h_last


def np_mingru_stack(layers, candidate, xs, h0, seq_lengths, resets=None):
    """Multi-layer (optionally bidirectional) minGRU, laid out like :func:`np_gru_stack`:
    ``layers[l][d] = (w_x, b_x)``; ``h0 (L*D, B, H)`` or ``None``; returns
    ``(ys (B, T, D*H), h_n (L*D, B, H))``."""
    inp, num_dirs, h_n = _f64(xs), len(layers[0]), []
    for li, layer in enumerate(layers):
        outs = []
        for d, (w_x, b_x) in enumerate(layer):
            init = None if h0 is None else h0[li * num_dirs + d]
            ys, h_last = np_mingru(w_x, b_x, candidate, inp, init, seq_lengths, resets, d == 1)
            outs.append(ys)
            h_n.append(h_last)
        inp = np.concatenate(outs, axis=-1)
    return inp, np.stack(h_n, axis=0)
