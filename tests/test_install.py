"""`pip install` of the checkout into a fresh virtual environment, used from another directory:
the one-call example runs and prints the best architecture and its retrained accuracy."""

import os
import pathlib
import site
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parent.parent

EXAMPLE = """
import supernet
from supernet import AutoModel
assert "site-packages" in supernet.__file__, supernet.__file__
model = AutoModel({"block1": ["conv", "maxpool"], "block2": ["residual"], "block3": ["linear"]}, data="digits",
                  supernet={"steps": 10}, search={"budget": 2, "population": 2}, retrain={"steps": 5}, progress=False)
best_architecture, best_accuracy = model.search()
print("best", best_architecture, best_accuracy)
"""


def running_interpreters_site_dirs() -> list[str]:
    """The site-packages folders the interpreter running the tests imports from: a system Python's
    (and its user site, when enabled) or a virtual environment's."""
    candidates = site.getsitepackages() + ([site.getusersitepackages()] if site.ENABLE_USER_SITE else [])
    return [d for d in dict.fromkeys(candidates) if d in sys.path and os.path.isdir(d)]


def see_the_running_interpreters_packages(python: str) -> None:
    """Makes the environment of `python` import exactly what the running interpreter imports, by a
    .pth file listing its site folders (`--system-site-packages` would see only the base
    interpreter's folders, without what an outer virtual environment installed)."""
    site_dir = subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                              capture_output=True, text=True, check=True, timeout=60).stdout.strip()
    site_dirs = running_interpreters_site_dirs()
    assert site_dirs, f"no site-packages folder of the running interpreter is on sys.path: {sys.path}"
    pathlib.Path(site_dir, "running_interpreter.pth").write_text("\n".join(site_dirs) + "\n")


def test_install_into_a_fresh_environment_and_search_from_elsewhere(tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    see_the_running_interpreters_packages(python)
    # --no-deps and --no-build-isolation: nothing is downloaded, the check is that the package itself installs.
    install = subprocess.run([python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(REPO)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stderr[-3000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    run = subprocess.run([python, "-c", EXAMPLE], cwd=elsewhere, capture_output=True, text=True, timeout=600,
                         env={**env, "JAX_PLATFORMS": "cpu"})
    assert run.returncode == 0, run.stderr[-3000:]
    line = [l for l in run.stdout.splitlines() if l.startswith("best ")][-1]
    _, arch, accuracy = line.split()
    assert arch.startswith("block1=") and 0.0 <= float(accuracy) <= 1.0
