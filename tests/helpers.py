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
