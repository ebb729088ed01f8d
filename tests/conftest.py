"""Test-session settings: float64 is enabled so that references and gradient checks are exact.

Every test builds its arrays with explicit dtypes, so enabling x64 changes no tested default.
"""

import jax

jax.config.update("jax_enable_x64", True)
