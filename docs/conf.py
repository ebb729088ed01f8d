"""Sphinx configuration of the gru_jax docs site (`make docs` builds it into docs/_build/html).

Sphinx with MyST Markdown, autodoc + napoleon (the docstrings are Google style) and the book
theme: the stack of jax, flax and optax, so the site reads like the ones JAX users know.
"""

import dataclasses
import inspect
import re

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

# attrs_block: `{.shapes}` on the line above a table gives it a class (see _static/gru_jax.css).
myst_enable_extensions = ["attrs_block", "colon_fence", "deflist", "dollarmath"]
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
html_static_path = ["_static"]
# Fitting a 1280 px window: code wraps instead of hiding its ends, tables are compact and keep
# shapes on one line, figures fill the column.
html_css_files = ["gru_jax.css"]
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


def _class_params_are_attributes(app, what, name, obj, options, lines):
    """A dataclass (GRUParams, the configs, every Flax module) describes its fields under
    ``Attributes:``, each an entry with its text and its type, and its base classes describe the
    fields it inherits (Flax's ``parent`` and ``name`` among them); autodoc would list all of them
    again, bare, as the constructor's "Parameters". Those are left out; a parameter that the
    docstring describes (``Args:``) or that nothing else describes keeps its entry."""
    if what != "class":
        return
    annotations = app.env.current_document.autodoc_annotations.get(name)
    if not annotations:
        return
    described = set()  # as parameters: `:param x:` or `:param type x:`
    attributes = set()  # `.. attribute:: x` or `.. attribute:: x, y` (one text for several)
    for line in lines:
        if m := re.match(r"\s*:param (?:.+ )?(\w+):", line):
            described.add(m.group(1))
        elif m := re.match(r"\s*\.\. attribute:: (.+)", line):
            attributes.update(part.strip() for part in m.group(1).split(","))
    inherited = set()
    if dataclasses.is_dataclass(obj):
        own = inspect.get_annotations(obj)
        inherited = {f.name for f in dataclasses.fields(obj) if f.name not in own}
    for param in list(annotations):
        # (A class's "return" is never shown: autodoc suppresses it.)
        if param == "return" or (
            param not in described and (param in attributes or param in inherited)
        ):
            del annotations[param]


def _data_docstring_where_defined(app, what, name, obj, options, lines):
    """A constant or type alias that a public module re-exports (``gru_jax.GRUStackParams``,
    ``gru_jax.default_kernel_init``) is described by the docstring under its definition, in a
    private module; autodoc looks only in the module that re-exports it, and falls back to the
    value's own ``__doc__`` (``tuple``'s, ``jax.nn.initializers.zeros``'s) or to nothing. Its
    value's call signature is no part of its entry either."""
    if what != "data":
        return
    import importlib
    import pkgutil

    from sphinx.pycode import ModuleAnalyzer

    app.env.current_document.autodoc_annotations.pop(name, None)
    module_name, _, attr = name.rpartition(".")
    modules = [info.name for info in pkgutil.walk_packages(gru_jax.__path__, "gru_jax.")]
    for candidate in [module_name, *modules]:
        docs = ModuleAnalyzer.for_module(candidate).find_attr_docs().get(("", attr))
        if docs and getattr(importlib.import_module(candidate), attr, None) is obj:
            lines[:] = [*docs]
            return


# How napoleon spells the annotation of an attribute (its "Type" line), and how the site shows it:
# the public names, not the modules that define them.
_PUBLIC_TYPES = [
    # jax.Array's __qualname__ is the path of its implementation, jaxlib._jax.Array.
    (re.compile(r"\b(?:jax\.)?jaxlib\._jax\.Array\b"), "jax.Array"),
    # jax.typing.DTypeLike, expanded.
    (
        re.compile(r"str \| type\[Any\] \| numpy\.dtype \| jax\._src\.typing\.SupportsDType"),
        "jax.typing.DTypeLike",
    ),
    (re.compile(r"\bflax\.linen\.module\.Module\b"), "flax.linen.Module"),
    (re.compile(r"(?<![\w.])(?:collections\.abc|typing)\."), ""),
    # gru_jax.tasks._base.Splits -> Splits, linked to its public entry by _public_target.
    (re.compile(r"(?<![\w.~])(gru_jax(?:\.\w+)*\._\w+(?:\.\w+)*\.\w+)"), r"~\1"),
]


def _public_types(app, what, name, obj, options, lines):
    """Rewrite the type of each attribute (``:type:`` and ``:vartype:`` lines, which napoleon
    writes from the annotations) with public names."""
    for i, line in enumerate(lines):
        if re.match(r"\s*:(type|vartype \w+):", line):
            for pattern, public in _PUBLIC_TYPES:
                line = pattern.sub(public, line)
            lines[i] = line


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
    # After napoleon (priority 500), which would read "X: text", the way these docstrings
    # begin, as an attribute of type X.
    app.connect("autodoc-process-docstring", _data_docstring_where_defined, priority=600)
    # After napoleon (priority 500), which turns the Google sections into fields.
    app.connect("autodoc-process-docstring", _class_params_are_attributes, priority=600)
    app.connect("autodoc-process-docstring", _public_types, priority=600)
    app.connect("autodoc-skip-member", _skip_dataclass_fields)
    app.connect("missing-reference", _public_target)
