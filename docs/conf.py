"""Sphinx configuration of the gru_jax docs site (`make docs` builds it into docs/_build/html).

Sphinx with MyST Markdown, autodoc + napoleon (the docstrings are Google style) and the book
theme: the stack of jax, flax and optax, so the site reads like the ones JAX users know.
"""

import gru_jax

project = "gru_jax"
author = "gru_jax developers"
copyright = "2026, gru_jax developers"  # noqa: A001 (Sphinx's name)
version = release = gru_jax.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.viewcode",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "figures"]

# Every cross-reference must resolve: with -W a dangling one fails the build.
nitpicky = True
nitpick_ignore_regex = [
    # Types of third-party libraries and typing internals that no inventory describes offline.
    (r"py:.*", r"(jax|jaxlib|flax|optax|numpy|np|jnp|orbax|ocp|nn|nnx|typing|collections)\b.*"),
    (r"py:.*", r"(Array|ArrayLike|PRNGKey|DTypeLike|Shape|Initializer|Any|Callable|Mapping)"),
    (r"py:.*", r"(Path|pathlib\.Path|os\.PathLike|Sequence|Iterable|Iterator|Literal)"),
    (r"py:class", r"(dtype|optional|default .*|Params|State|Batch|Module|Rngs|Mesh|type)"),
]

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "show-inheritance": False}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

html_theme = "sphinx_book_theme"
html_title = "gru_jax"
html_static_path: list[str] = []
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
}
