"""Helpers shared by the Flax wrapper tests.

The parity task: is the number of ones in a variable-length bit string odd? A model must carry
one bit through the whole valid prefix and ignore the padding.
"""

import jax
import jax.numpy as jnp
import numpy as np

T, BATCH = 10, 64
STEPS = 200
TARGET_LOSS = 0.05  # cross-entropy; chance level is ln 2 ≈ 0.693


def parity_batch(key: jax.Array, batch: int = BATCH, seq_len: int = T):
    """``(tokens (B, T) int32, lengths (B,), labels (B,))``; padding holds random bits too."""
    k_tokens, k_lengths = jax.random.split(key)
    tokens = jax.random.bernoulli(k_tokens, 0.5, (batch, seq_len)).astype(jnp.int32)
    lengths = jax.random.randint(k_lengths, (batch,), 1, seq_len + 1)
    valid = jnp.arange(seq_len) < lengths[:, None]
    labels = jnp.sum(tokens * valid, axis=1) % 2
    return tokens, lengths, labels


def randomize(tree, key: jax.Array):
    """Replace every leaf (biases included) by random normals, so that all of them matter."""
    leaves, treedef = jax.tree.flatten(tree)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [0.5 * jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves, strict=True)],
    )


def assert_trees_close(a, b, tol: float = 1e-9):
    """Same tree structure, and every leaf of ``a`` close to ``b``'s (rtol = atol = ``tol``)."""
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb
    for x, y in zip(la, lb, strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=tol, atol=tol)


def _dtype(a):
    return a.dtype if hasattr(a, "dtype") else np.result_type(a)


def _stack(*arrays):
    """The arrays along a new first axis: NumPy's (no compile), but JAX's for typed PRNG keys."""
    if jax.dtypes.issubdtype(_dtype(arrays[0]), jax.dtypes.prng_key):
        return jnp.stack(arrays)
    return np.stack(arrays)


def _to_host(a):
    return a if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key) else np.asarray(a)


def run_together(calls):
    """``{name: fn(*args)}`` for ``calls = {name: (fn, args)}``, computed by one jitted program.

    XLA compiles one program of many small calls several times faster than as many programs
    (a test's cases of tiny shapes cost their compiles, not their running), so the tests
    collect the calls of their parametrisations here, once per module (see ``Together``).
    Flags and other static choices go in ``fn`` (a closure, the same object for the same
    choices), arrays in ``args``. Calls of the same ``fn`` on arguments of the same shapes and
    dtypes are compiled once: they run as the steps of one ``lax.map`` over their stacked
    arguments (each step is the plain call; nothing is vmapped).
    """
    groups: dict = {}
    for name, (fn, args) in calls.items():
        leaves, treedef = jax.tree.flatten(args)
        signature = (fn, treedef, tuple((np.shape(a), _dtype(a)) for a in leaves))
        groups.setdefault(signature, []).append((name, args))
    groups = list(groups.items())

    def run_all(stacked):
        out = []
        for ((fn, _, _), members), args in zip(groups, stacked, strict=True):
            if len(members) == 1:
                out.append(fn(*args))
            else:
                out.append(jax.lax.map(lambda a, fn=fn: fn(*a), args))
        return out

    stacked = []
    for _, members in groups:
        if len(members) == 1:
            stacked.append(members[0][1])
        else:
            stacked.append(jax.tree.map(_stack, *(args for _, args in members)))
    results = {}
    for (_, members), out in zip(groups, jax.jit(run_all)(stacked), strict=True):
        if len(members) == 1:
            results[members[0][0]] = out
        else:
            out = jax.tree.map(_to_host, out)  # sliced by NumPy: no compile per slice
            for k, (name, _) in enumerate(members):
                results[name] = jax.tree.map(lambda a, k=k: a[k], out)
    return results


class Together:
    """The calls of many parametrised cases, computed together on first use (per kind).

    ``@together.cases(kind, grid)`` registers ``builder(*case) -> {name: (fn, args)}`` for each
    ``case`` of ``grid``; ``together(kind, *case)`` returns that case's ``{name: output}``,
    computing every case of ``kind`` in one program the first time a test asks.
    """

    def __init__(self):
        self._builders: dict = {}
        self._results: dict = {}

    def cases(self, kind, grid):
        def register(builder):
            for case in grid:
                case = case if isinstance(case, tuple) else (case,)
                self._builders.setdefault(kind, {})[case] = builder
            return builder

        return register

    def __call__(self, kind, *case):
        if kind not in self._results:
            calls = {}
            for key, builder in self._builders[kind].items():
                for name, call in builder(*key).items():
                    calls[(key, name)] = call
            self._results[kind] = run_together(calls)
        results = self._results[kind]
        return {name: out for (key, name), out in results.items() if key == case}
