"""`import noise_exp` stays light: the library is imported on first use of `nx.select` & co."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import ROOT


def test_importing_the_package_pulls_no_torch():
    code = ("import sys, noise_exp, noise_exp.errors, noise_exp.params\n"
            "assert 'torch' not in sys.modules and 'noise_exp.api' not in sys.modules, sorted(sys.modules)\n"
            "print('ok')\n")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "ok", proc.stderr[-2000:]


def test_the_functions_are_the_librarys_even_after_the_equations_are_imported():
    import noise_exp as nx
    import noise_exp.similarity  # eq. 3's module: named apart from nx.stability so that importing it shadows nothing
    from noise_exp import api

    assert (nx.select, nx.optimize, nx.best_of_n, nx.reward_opt, nx.stability) == (
        api.select, api.optimize, api.best_of_n, api.reward_opt, api.stability)
    assert noise_exp.similarity.stability.__doc__.startswith("Eq. (3)")


def test_the_package_re_exports_exactly_the_librarys_names():
    """noise_exp/__init__ lists the names it forwards (to stay torch-free); the list can't drift from api.__all__."""
    import noise_exp as nx
    from noise_exp import api

    assert sorted(nx._API) == sorted(api.__all__)
