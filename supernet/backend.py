"""The one place where CPU, GPU and TPU runs make different choices.

`current()` is the policy in force: each field is the backend's default unless a job overrode it
(`configure(cell="folded", ...)`, from the config's `backend` section through `from_config`).
Library code asks `current()` at trace or build time; nothing else looks at the backend.

| choice | CPU | GPU / TPU | why |
| --- | --- | --- | --- |
| `cell`: NAS-Bench-201 single path | `sparse` | `folded` | XLA:CPU runs only the chosen ops of a `lax.switch` fast (1.18x standalone); accelerator conditionals were never measured faster than the folded edge |
| `nas_path`: a path through a `supernet.nas` supernet | `sparse` | `masked` | XLA:CPU runs only the chosen candidates, blocks, kernel sizes and widths (`lax.switch` / `lax.cond`, conv gradients in the forward layout) at 1.24-1.26x a random architecture's own step against 2.39-2.50x masked (the example CNN); never measured on an accelerator |
| `vmap_archs`: architectures vmapped per `evaluate_population` call | 1 (a `lax.map` loop) | all | vmapping makes grouped convolutions, slow on XLA:CPU; on an H200 vmapping was 3-6x a loop |
| `depthwise`: depthwise convolution | `slices` (sum of shifted products) | `grouped` (`feature_group_count`) | XLA:CPU's grouped conv was ~50x slower forward; accelerators have kernels for it |
| `init`: parameter initialisation | `host` (numpy) | `host` | compiling Flax's initialisers took ~20 s on the CPU; host draws are identical on every process and backend, so results do not depend on where they ran |
| `compute_dtype` | `float32` | `float32` | `bfloat16` is opt-in: float32 parameters and optimiser state, bf16 forward and backward |

`describe()` is what results.json records under `backend`.
"""

from __future__ import annotations

import dataclasses
import jax
import jax.numpy as jnp

from supernet import initializers

CHOICES = {"cell": ("sparse", "folded"), "nas_path": ("sparse", "masked"), "depthwise": ("slices", "grouped"),
           "init": ("host", "device"), "compute_dtype": ("float32", "bfloat16")}


@dataclasses.dataclass(frozen=True)
class Policy:
    """The backend's choices: the NAS-Bench-201 cell ("sparse" or "folded"), a path through a `nas`
    supernet ("sparse" or "masked"), how many architectures a vmapped evaluation takes at once, the
    depthwise convolution ("slices" or "grouped"), where weights are initialised, and the compute
    dtype."""
    platform: str
    cell: str
    nas_path: str
    vmap_archs: int | None  # None: every architecture vmapped together
    depthwise: str
    init: str
    compute_dtype: str

    @property
    def sparse_cell(self) -> bool:
        """Whether the NAS-Bench-201 cell runs only the chosen operations (`lax.switch`)."""
        return self.cell == "sparse"

    @property
    def dtype(self):
        """The compute dtype as a `jnp.dtype`."""
        return jnp.dtype(self.compute_dtype)


def defaults(platform: str | None = None) -> Policy:
    """The backend's own choices (the table in the module docstring)."""
    platform = platform or jax.default_backend()
    cpu = platform == "cpu"
    return Policy(platform=platform, cell="sparse" if cpu else "folded", nas_path="sparse" if cpu else "masked",
                  vmap_archs=1 if cpu else None,
                  depthwise="slices" if cpu else "grouped", init="host", compute_dtype="float32")


_overrides: dict = {}


def configure(**overrides) -> Policy:
    """Overrides some choices for this process (None or "auto" keeps the backend's default) and
    returns the policy now in force. Set it before building models or compiling steps: jitted
    functions read it when they are traced."""
    unknown = sorted(set(overrides) - {f.name for f in dataclasses.fields(Policy)} - {"platform"})
    if unknown:
        raise ValueError(f"unknown backend choice(s) {unknown}; valid: cell, nas_path, vmap_archs, depthwise, "
                         f"init, compute_dtype.")
    cleaned = {k: _parse(k, v) for k, v in overrides.items() if v is not None and v != "auto"}
    _overrides.clear()
    _overrides.update(cleaned)
    return current()


def current() -> Policy:
    """The policy in force: the backend's defaults with this process's `configure` overrides."""
    return dataclasses.replace(defaults(), **_overrides)


def from_config(section) -> Policy:
    """`configure` from a config's `backend` section (a dict or ConfigDict; "auto" fields keep the default)."""
    return configure(**(section.to_dict() if hasattr(section, "to_dict") else dict(section or {})))


def describe() -> dict:
    """The choices in force, for results.json; `overridden` names those the config set."""
    return {**dataclasses.asdict(current()), "overridden": sorted(_overrides)}


def _parse(name: str, value):
    if name == "vmap_archs":
        if value in ("all", None):
            return None
        if str(value).isdigit() and int(value) >= 1:
            return int(value)
        raise ValueError(f"backend.vmap_archs must be 'auto', 'all' or a positive integer, got {value!r}.")
    valid = CHOICES[name]
    if value not in valid:
        raise ValueError(f"backend.{name} must be 'auto' or one of {', '.join(valid)}, got {value!r}.")
    return value


# -- the choices' implementations -------------------------------------------------------------------

def init_variables(init_fn, key: jax.Array):
    """`init_fn(key) -> variables` (a Flax `module.init`), or the same tree drawn on the host
    (`initializers.host_init`) when the policy says `init="host"`."""
    if current().init == "device":
        return jax.jit(init_fn)(key)
    return initializers.host_init(jax.eval_shape(init_fn, key), key)


def compute_cast(tree, dtype):
    """Floating-point leaves of `tree` in `dtype`, the compute dtype a step was built with
    (`Policy.dtype`; float32 params stay float32 outside the step; gradients flow back through the
    cast in float32)."""
    if dtype == jnp.float32:
        return tree
    return jax.tree.map(lambda a: a.astype(dtype) if jnp.issubdtype(a.dtype, jnp.floating) else a, tree)

