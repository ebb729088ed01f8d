"""Sphinx configuration of the gru_jax docs site (`make docs` builds it into docs/_build/html).

Sphinx with MyST Markdown, autodoc + napoleon (the docstrings are Google style) and the book
theme: the stack of jax, flax and optax, so the site reads like the ones JAX users know.
"""

import gru_jax

project = "gru_jax"
author = "gru_jax developers"
copyright = "2026, gru_jax developers"
version = release = gru_jax.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
]

source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "figures"]

# Every cross-reference must resolve: with -W a dangling one fails the build.
nitpicky = True
nitpick_ignore_regex = [
    # Types of third-party libraries and typing internals that no inventory describes offline.
    (r"py:.*", r"(jax|jaxlib|flax|optax|numpy|np|jnp|orbax|ocp|nn|nnx|typing|collections)\b.*"),
    (r"py:.*", r"dataclasses\b.*"),
    # Type variables of generic functions (``load_settings(cls: type[T]) -> T``).
    (r"py:class", r".*\._T"),
    (r"py:.*", r"(Array|ArrayLike|PRNGKey|DTypeLike|Shape|Initializer|Any|Callable|Mapping)"),
    (r"py:.*", r"(Path|pathlib\.Path|os\.PathLike|Sequence|Iterable|Iterator|Literal)"),
    (r"py:class", r"(dtype|optional|default .*|Params|State|Batch|Module|Rngs|Mesh|type)"),
]

# `make linkcheck`: these machines reach no web server, so linkcheck checks the links to local
# files; every internal page link and anchor is checked on the built HTML by tests/test_docs.py.
linkcheck_ignore = [r"https?://"]

myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_default_options = {"members": True, "special-members": "__call__"}
autodoc_preserve_defaults = True  # show `jnp.float32`, not `<class 'jax.numpy.float32'>`
autodoc_inherit_docstrings = False  # Flax's own methods (setup, ...) are Flax's to document
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


def _skip_dataclass_fields(app, what, name, obj, skip, options):
    """Fields of dataclasses (GRUParams, configs, linen modules) are documented by the class's
    ``Attributes:`` section; autodoc would otherwise list them again from their default values."""
    import dataclasses

    owner = getattr(app, "_gru_jax_owner", None)
    if what == "class" and owner is not None and dataclasses.is_dataclass(owner):
        if name in {f.name for f in dataclasses.fields(owner)}:
            return True
    return None


def _remember_class(app, what, name, obj, options, lines):
    if what == "class":
        app._gru_jax_owner = obj


def _public_target(app, env, node, contnode):
    """Resolve ``GRUParams`` or ``gru_jax._gru.cell.GRUParams`` (how annotations and docstrings name
    things inside the package) to the public entry ``gru_jax.GRUParams``, when there is one."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"]
    name = target.rsplit(".", 1)[-1]
    module = node.get("py:module") or ""
    candidates = [
        f"{module}.{name}",
        f"gru_jax.{name}",
        f"gru_jax.train.{name}",
        f"gru_jax.tasks.{name}",
    ]
    domain = env.get_domain("py")
    for candidate in candidates:
        if candidate != target and candidate in domain.objects:
            return domain.resolve_xref(
                env, node["refdoc"], app.builder, node["reftype"], candidate, node, contnode
            )
    return None


def setup(app):
    app.connect("autodoc-process-docstring", _remember_class)
    app.connect("autodoc-skip-member", _skip_dataclass_fields)
    app.connect("missing-reference", _public_target)
