import os
import sys

# Tests import the repo's packages without installing them.
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # tests/space_helpers.py

import atexit
import shutil
import tempfile

import pytest

# One persistent XLA compilation cache for the whole test session, shared by the subprocesses the
# tests launch (environment) and this process (set before jax is imported). Why: many tests run
# launch.py on the same tiny configs, and the kill-anywhere test relaunches one config many
# times; each would otherwise compile the same steps again (a rerun costs ~40% of the CPU time).
# The process that makes the cache (the pytest controller; xdist workers inherit the variable)
# deletes it at exit, so test runs do not pile up caches in the temporary directory; a cache the
# user named in JAX_COMPILATION_CACHE_DIR is theirs and kept.
if "JAX_COMPILATION_CACHE_DIR" not in os.environ:
    os.environ["JAX_COMPILATION_CACHE_DIR"] = tempfile.mkdtemp(prefix="supernet-test-xla-cache-")
    atexit.register(shutil.rmtree, os.environ["JAX_COMPILATION_CACHE_DIR"], ignore_errors=True)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# The tests' networks are tiny, so XLA's optimisation passes cost more than they save: without
# them the suite takes about half the CPU time (record: docs/contributing.md). Users' runs keep them.
os.environ.setdefault("JAX_DISABLE_MOST_OPTIMIZATIONS", "1")


@pytest.fixture
def grouped_depthwise():
    """Spaces built in the test trace depthwise convs as XLA grouped convolutions (the same
    result, see test_depthwise_conv_matches_grouped_conv), so FLOP counting over the jaxpr sees them."""
    from supernet import backend
    backend.configure(depthwise="grouped")
    yield
    backend.configure()


@pytest.fixture(scope="session")
def nb201():
    """The NAS-Bench-201 space at the benchmark's size (nothing is built until used)."""
    from supernet import spaces
    return spaces.get("nas_bench_201")


@pytest.fixture(scope="session")
def nb201_table(nb201):
    """The shipped NAS-Bench-201 accuracy table."""
    from strategies.benchmarks import tabular
    return tabular.nas_bench_201(nb201)
