"""Auto-checks for the exercises (hand-written, not exported).

Each chapter has a module `gptlib.checks.chN` of `check_*` functions; a notebook's check cell calls
`chN.check_x(learners_function_or_class)`. A check runs the learner's code on fault-revealing inputs, compares
it with the reference in gptlib (or in torch) and raises `CheckFailed` naming the case and the likely mistake.
On success it prints one line, `✔ name: all N checks passed`.

Writing a check: the whole API
------------------------------
::

    from gptlib.checks import checker, forbid

    def check_gelu(fn) -> None:
        with checker("gelu", fn) as c:       # fn = the learner's object: a crash in it is reported as theirs
            x = torch.randn(2, 5, generator=c.gen())          # c.gen()/c.rng: random, seeded per run
            got = c.call("gelu(x (2, 5))", fn, x, inplace="x was modified in place")
            c.close(got, F.gelu(x), "gelu(x (2, 5))", "compare with 0.5·x·(1 + erf(x/√2))",
                    mistakes={"the 0.5 factor is missing": lambda: 2 * F.gelu(x)})

`checker(name, *learner_objects, device_from="x")` yields a `Checker` `c`:

* `c.call(case, fn, *args, inplace=None, **kwargs)` runs the learner's code for one case and returns its result.
  The case is remembered, so a crash inside it says which case was running; a device-mismatch error becomes the
  hint "build it on x.device" (`device_from` names the argument); `inplace=hint` also fails when an argument
  was modified in place.
* `c.expect(ok, case, hint)`: one condition.
* `c.equal(got, want, case, hint, mistakes=None)`: Python values (==); the message shows expected and got.
* `c.close(got, want, case, hint, mistakes=None, atol=1e-5, rtol=1e-4, dtype=..., device=..., near=None)`:
  tensors. In order: a tensor, the shape, the dtype and the device (those of `want` unless given; None skips),
  no NaN/inf where `want` is finite, then the values. `near=hint` names "almost right" (within 1000x the
  tolerance, e.g. a rounded constant).
* `c.grads(case, got, want, wrt_got, wrt_want, hint)`: gradients by value. `torch.autograd.grad` of
  the learner's and the reference's outputs (same random cotangent) w.r.t. the named tensors must
  agree.
* `c.device_run(case, fn, *args, **kwargs)`: `c.call` for a case on another device (`c.device`: CUDA
  when there is one; else the CPU, where a second device is simulated: inside the run a tensor made
  without `device=` counts as being on "the default device", so combining it with an input raises
  the error CUDA would raise, and a result made there fails `c.close`/`c.like` with "the result was
  made on the default device"; `c.stray(t)` asks). The inputs stay real CPU tensors, so
  data-dependent code (`.item()`, `.tolist()`) runs and is judged too. Compare its result with the
  reference's on the same inputs via `c.like(got, want, case, hint)` (type, shape, dtype, device).
  Move inputs with `c.to_device(t)`, modules with `module.to(c.device)`. A mask or arange built on
  the CPU fails with "build it on x.device". GPTLIB_CHECK_SIMULATED_DEVICE=1 simulates the second
  device even on a GPU machine.
* `diagnose(got, mistakes, default)`: THE "which known mistake matches" helper, used by `equal` and `close`.
  `mistakes` maps a hint to the output that mistake produces on the same input (a value, or a zero-argument
  callable computed only when the result is wrong; or the whole mapping as a zero-argument callable); the first
  equal one names the mistake, else `default`.
* `forbid(names, hint)`: a context manager in which the named torch functions (e.g. "layer_norm",
  "gelu", "scaled_dot_product_attention"; "*" = any torch function) raise, so a shortcut the
  exercise forbids fails with `hint`, however it was imported. It yields the set of torch function
  names called (to require one).
* `no_solution(c, learner, reference, hint, also=())`: a context manager that fails with `hint` when
  the learner's code calls `reference` (gptlib's own solution of the exercise: a function, or a
  class and its methods) or one of `also` ((module, qualified-name prefix) pairs, e.g. transformers'
  TopPLogitsWarper) while the block runs; when the learner's object is the reference itself (a test
  of the check), nothing is watched.
* `rel_error(got, want)`: "got G, expected W (relative error R)" with every digit (use it in
  messages).
* Randomness: `c.rng` (random.Random) and `c.gen()` (torch.Generator) are seeded from `c.seed`,
  fresh every run (set GPTLIB_CHECK_SEED to replay one); random cases print the seed. Keep the
  number of checks per run constant, so the success line does not change.

In Jupyter a `CheckFailed` shows as its message and the learner's own line (`_render_traceback_`),
not the chained traceback through the check. A crash in the learner's code fails as `CheckFailed`
naming the case; a crash that happens in the check itself (no frame of the learner's objects in the
traceback) raises `CheckError`, saying it is not the learner's bug. So validate what the learner
returns (type, attributes) with `c.expect` before using it in the check.

What every check should cover (the escape classes of issues 11 and 19): a run on `c.device` (masks,
aranges, angles built on the CPU), dtypes of outputs (and integer ids in int32/uint16 where the spec
says ids), gradients by value (`c.grads`), the edge cases the spec implies (random sizes beyond any
cached table, large magnitudes, empty inputs, fully masked rows, dropout > 0 in train() and eval()),
`forbid` for any shortcut the text forbids, and `mistakes` so that each known mistake gets its own
hint; and (issue 19) `no_solution` for gptlib's and any named library's solution, every edge case on
every seed (never left to a random draw), sizes at the limits, inputs whose numbers underflow or
overflow, inputs compared after the call and results that must not be the input itself,
non-contiguous and float inputs and unused vocabulary, and the state the library reads later.

Proving a check (tests/test_checks_chN.py, harness in tests/mutation.py): `check_tests(chN,
REFERENCES, MUTANTS)` (reference passes, stub fails, each `Mutant(check, what, impl, hint=...,
kind=...)` fails with its hint) and `robustness_tests(chN, REFERENCES)` (a crash names its case; the
success line is seed-independent). """
from __future__ import annotations

import contextlib
import copy
import inspect
import linecache
import os
import random
import re
import sys
from contextlib import contextmanager
from types import CodeType
from typing import Any, Callable, Iterable, Iterator, Mapping, Optional, Union

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

__all__ = ["CheckFailed", "CheckError", "Forbidden", "Checker", "Mistakes", "checker", "diagnose", "forbid", "close",
           "unchanged", "no_solution", "rel_error"]

# hint -> output of that mistake (a value, or a zero-argument callable computing it), or a callable returning that map
Mistakes = Union[Mapping[str, Any], Callable[[], Mapping[str, Any]], None]

_CHECKS_DIR = os.path.dirname(os.path.abspath(__file__))
_GPTLIB_DIR = os.path.dirname(_CHECKS_DIR) + os.sep
_LIB_DIRS = tuple(
    {
        os.path.dirname(os.path.abspath(torch.__file__)),
        os.path.dirname(os.path.abspath(os.__file__)),
    }
)


class CheckFailed(AssertionError):
    """An exercise check failed; the message says which case and what is likely wrong.

    In Jupyter (IPython) the failure is shown as the message alone, plus the line of the learner's
    own code where their error happened (when the failure is a crash in it), not the ~80-line
    chained traceback through the check: IPython calls `_render_traceback_` for exceptions that
    define it. `%tb` still shows it all."""

    def _render_traceback_(self) -> list[str]:
        lines = [f"CheckFailed: {self}"]
        where = _learner_line(self)
        if where:
            lines.append(f"  where: {where}")
        lines.append(
            "  (the check's own traceback is hidden: run %tb in a new cell to see all of it)"
        )
        return lines


class CheckError(RuntimeError):
    """The check itself crashed (a bug in gptlib.checks or in a reference, not in the learner's code)."""


def _learner_line(e: BaseException) -> str:
    """'file, line n: source' of the innermost frame outside gptlib.checks, torch and the standard
    library in the traceback of the error that `e` was raised from ('' when there is none)."""
    cause = e.__cause__ or e.__context__
    tb = cause.__traceback__ if cause is not None else None
    found = ""
    while tb is not None:
        code = tb.tb_frame.f_code
        path = os.path.abspath(code.co_filename)
        if not (
            path.startswith(_GPTLIB_DIR)
            or path.startswith(_LIB_DIRS)
            or code.co_filename.startswith("<frozen")
        ):
            src = linecache.getline(code.co_filename, tb.tb_lineno).strip()
            name = (
                code.co_filename
                if not code.co_filename.startswith("/")
                else os.path.basename(code.co_filename)
            )
            found = f"{name}, line {tb.tb_lineno}, in {code.co_name}" + (f": {src}" if src else "")
        tb = tb.tb_next
    return found


class Forbidden(CheckFailed):
    """Raised inside the learner's code when it calls a torch function the exercise forbids."""


# ------------------------------------------------------------------------------------------------ matching
def _same(got: Any, want: Any, atol: float, rtol: float) -> bool:
    if isinstance(want, torch.Tensor) or isinstance(got, torch.Tensor):
        if (
            not (isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor))
            or got.shape != want.shape
        ):
            return False
        if got.device.type == "meta" or want.device.type == "meta":
            return False
        if got.dtype == torch.bool or want.dtype == torch.bool:
            return (
                bool(torch.equal(got.cpu().bool(), want.cpu().bool())) and got.dtype == want.dtype
            )
        return bool(
            torch.allclose(
                got.detach().cpu().double(),
                want.detach().cpu().double(),
                atol=atol,
                rtol=rtol,
                equal_nan=True,
            )
        )
    try:
        return bool(got == want)
    except Exception:  # noqa: BLE001 - an exotic object that cannot be compared is simply not this mistake
        return False


def diagnose(
    got: Any, mistakes: Mistakes, default: str, *, atol: float = 1e-5, rtol: float = 1e-4
) -> str:
    """The hint of the first known mistake whose output equals `got` (tensors: allclose; else ==), else `default`.

    `mistakes` maps hint -> output of that mistake on the same input, or a zero-argument callable returning it
    (evaluated only here, i.e. only when the result is already known to be wrong). `mistakes` itself may be a
    zero-argument callable returning that mapping."""
    if callable(mistakes):
        mistakes = mistakes()
    for hint, out in (mistakes or {}).items():
        if callable(out) and not isinstance(out, torch.Tensor):
            try:
                out = out()
            except Exception:  # noqa: BLE001 - a mistake that cannot even be computed here does not match
                continue
        if _same(got, out, atol, rtol):
            return hint
    return default


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, rtol: float = 1e-4) -> bool:
    """Same shape and values within tolerance (compared in float64 on the CPU)."""
    return _same(a, b, atol, rtol)


def unchanged(fn: Callable, *args: Any, **kwargs: Any) -> tuple[Any, bool]:
    """Call fn(*args, **kwargs) and report whether it modified any argument in place."""
    before = copy.deepcopy((args, kwargs))
    out = fn(*args, **kwargs)

    def same(a: Any, b: Any) -> bool:
        if isinstance(a, torch.Tensor):
            return a.shape == b.shape and a.dtype == b.dtype and bool(torch.equal(a, b))
        if isinstance(a, np.ndarray):
            return (
                isinstance(b, np.ndarray)
                and a.shape == b.shape
                and a.dtype == b.dtype
                and bool(np.array_equal(a, b))
            )
        if isinstance(a, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        return a == b

    return out, same(before, (args, kwargs))


def rel_error(got: float, want: float) -> str:
    """'got G, expected W (relative error R)' with all the digits that tell G and W apart."""
    got, want = float(got), float(want)
    rel = abs(got - want) / abs(want) if want else abs(got - want)
    return (
        f"got {got!r}, expected {want!r} (relative error {rel:.2e})"
        if want
        else f"got {got!r}, expected {want!r} (absolute error {rel:.2e})"
    )


def _show(v: Any, limit: int = 160) -> str:
    s = repr(
        v.tolist()
        if isinstance(v, torch.Tensor) and v.device.type != "meta" and v.numel() <= 24
        else v
    )
    return s if len(s) <= limit else s[:limit] + "…"


# -------------------------------------------------------------------------------------------- forbidden calls
class _Calls(TorchFunctionMode):
    def __init__(self, forbidden: Mapping[str, str]):
        super().__init__()
        self.forbidden, self.seen = dict(forbidden), set[str]()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        self.seen.add(name)
        hint = self.forbidden.get(name, self.forbidden.get("*"))
        if hint is not None and name not in ("__get__", "__set__"):
            raise Forbidden(f"{hint} (your code called torch's `{name}`)")
        return func(*args, **(kwargs or {}))


@contextmanager
def forbid(names: Iterable[str] = (), hint: str = "") -> Iterator[set]:
    """Within the block, the named torch functions ("*" = every torch function) raise `Forbidden(hint)`.

    Works however the function was imported (`F.gelu`, `from torch.nn.functional import gelu`, `nn.GELU()`):
    it is a TorchFunctionMode. Yields the set of names of torch functions called in the block."""
    mode = _Calls({n: hint for n in names})
    with mode:
        yield mode.seen


@contextmanager
def no_solution(c: "Checker", learner: Any, reference: Callable, hint: str,
                also: Iterable[tuple[str, str]] = ()) -> Iterator[None]:
    """Within the block, fail with `hint` when the learner's code (not the check's) calls
    `reference`, gptlib's solution of the exercise: a function, or a class (then any of its
    methods); nothing is watched when `learner` is the reference itself. `also`: more solutions, as
    (module, qualified name prefix) pairs, e.g. ("transformers.generation.logits_process",
    "TopPLogitsWarper."), matched even when imported later."""
    if isinstance(reference, type):
        funcs = [f.fget if isinstance(f, property) else f for f in vars(reference).values()]
        codes = {
            inspect.unwrap(f).__code__
            for f in funcs
            if callable(f) and hasattr(inspect.unwrap(f), "__code__")
        }
    else:
        codes = {reference.__code__}
    if learner is reference or getattr(learner, "__code__", None) in codes:
        yield
        return
    also = tuple(also)
    hit: list[str] = []

    def solution(frame) -> bool:
        if frame.f_code in codes:
            return True
        mod = frame.f_globals.get("__name__", "")
        qual = getattr(frame.f_code, "co_qualname", frame.f_code.co_name)
        return any(mod == m and qual.startswith(q) for m, q in also)

    def profile(frame, event, arg):  # noqa: ARG001 - sys.setprofile's signature
        if event == "call" and c._codes and solution(frame):
            f = frame.f_back  # called from the learner's code (not the check)?
            while f is not None and f.f_code not in c._codes:
                f = f.f_back
            if f is not None:
                hit.append(getattr(frame.f_code, "co_qualname", frame.f_code.co_name))

    old = sys.getprofile()
    sys.setprofile(profile)
    try:
        yield
    finally:
        sys.setprofile(old)
    if hit:
        raise CheckFailed(f"{c.name}: {c.case} — {hint} (your code called {hit[0]})")


# ------------------------------------------------------------------- a second device, simulated
_FACTORIES = frozenset(
    {
        "arange",
        "zeros",
        "ones",
        "full",
        "empty",
        "eye",
        "linspace",
        "logspace",
        "tensor",
        "as_tensor",
        "asarray",
        "randn",
        "rand",
        "randint",
        "randperm",
        "tril_indices",
        "triu_indices",
        "empty_strided",
        "normal",
        "from_numpy",
        "scalar_tensor",
        "range",
    }
)
_MOVES = frozenset({"to", "cuda", "type_as"})
_ALLOWED_MIX = frozenset(
    {"copy_", "__get__", "__set__", "size", "dim", "numel", "is_floating_point"}
)
STRAY_ERR = (
    "Expected all tensors to be on the same device, but found at least two devices: the inputs' "
    "device and the default device (cpu), where a tensor made without device= is"
)


class _StrayDevice(TorchFunctionMode):
    """A CPU-only stand-in for running code on a GPU: the inputs stay on the CPU (so every value can
    be checked), but a tensor made without `device=` (torch.arange(T), torch.zeros(...),
    nn.Linear(...) inside the learner's code) counts as being on "the default device", a second
    device. Combining it with an input (whose device is "the inputs' device") raises the error CUDA
    would raise, and a result built on it is detected by `Checker.close` (`Checker.stray`). Tracked
    by storage: views and Parameters of a stray tensor are stray too. A 0-d tensor may mix (as a CPU
    scalar may with CUDA tensors); CPU indices may index an input (as they may a CUDA tensor);
    `.to(device)` / `.cuda()` moves a stray tensor to the inputs' device; `.cpu()` / `.numpy()` of
    an input do what they would on a GPU: a tensor on the default device / an error."""

    def __init__(self, stray: dict[int, torch.Tensor]):
        super().__init__()
        self.stray = stray

    def _is(self, t: torch.Tensor) -> bool:
        try:
            return t.numel() > 0 and t.untyped_storage().data_ptr() in self.stray
        except (RuntimeError, NotImplementedError):
            return False

    def _add(self, out: Any, inputs: list[torch.Tensor]) -> None:
        ptrs = {t.untyped_storage().data_ptr() for t in inputs if t.numel()}
        for t in torch.utils._pytree.tree_leaves(out):
            if isinstance(t, torch.Tensor) and t.numel() and t.device.type == "cpu":
                ptr = t.untyped_storage().data_ptr()
                if ptr not in ptrs or ptr in self.stray:  # new, or a view of a stray tensor
                    self.stray[ptr] = t  # kept alive: its address stays its own

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        tensors = [
            t
            for t in torch.utils._pytree.tree_leaves((args, kwargs))
            if isinstance(t, torch.Tensor)
        ]
        factory = name in _FACTORIES and getattr(torch, name, None) is func
        if (
            factory
            and kwargs.get("device") is None
            and not (name in ("as_tensor", "asarray") and tensors)
        ):
            out = func(*args, **kwargs)
            if isinstance(out, torch.Tensor) and out.dim() > 0:
                self._add(out, [])
            return out
        if name == "numpy" and tensors and not self._is(tensors[0]):
            raise TypeError(
                "can't convert a tensor on the inputs' device (a GPU) to numpy: on a GPU this "
                "fails; compute with torch operations on the inputs' device instead of going "
                "through numpy"
            )
        if name == "cpu" and tensors:
            out = func(*args, **kwargs).clone()
            self._add(out, [])
            return out
        stray = [t for t in tensors if self._is(t)]
        if name in _MOVES:
            out = func(*args, **kwargs)
            if stray and tensors[0] is stray[0] and isinstance(out, torch.Tensor):
                target = next(
                    (a for a in args[1:] if isinstance(a, torch.Tensor)), kwargs.get("other")
                )
                dev = [
                    a
                    for a in (*args[1:], kwargs.get("device"))
                    if isinstance(a, (str, torch.device))
                ]
                if (
                    name == "cuda"
                    or (isinstance(target, torch.Tensor) and not self._is(target))
                    or dev
                ):
                    return out.clone()  # moved to the inputs' device
            return out
        if stray and len(stray) < len(tensors):
            if name == "__getitem__":  # indices on the CPU may index a GPU tensor, not conversely
                bad = stray[0] is tensors[0] and any(
                    t.dim() > 0 for t in tensors[1:] if not self._is(t)
                )
            elif name in ("__setitem__", "index_put_", "index_put") and len(args) >= 3:
                value = args[2]
                tgt, val = self._is(tensors[0]), isinstance(value, torch.Tensor) and self._is(value)
                bad = isinstance(value, torch.Tensor) and (
                    (tgt and not val) or (val and not tgt and value.dim() > 0)
                )
            else:
                bad = name not in _ALLOWED_MIX and any(t.dim() > 0 for t in stray)
            if bad:
                raise RuntimeError(f"{STRAY_ERR} ({name})")
            return func(*args, **kwargs)
        out = func(*args, **kwargs)
        if stray:
            self._add(out, tensors)
        return out


# ------------------------------------------------------------------------------------------------ the checker
_DEVICE_ERR = re.compile(
    r"(same device|expected device|on device|device type|devices?,? but|cuda:\d and cpu|"
    r"cpu and cuda|indices should be either on)",
    re.I,
)
_META_ERR = re.compile(
    r"(meta tensor|cannot be called on meta|_local_scalar_dense|data-dependent|"
    r"Cannot copy out of meta)",
    re.I,
)


def _seed() -> int:
    env = os.environ.get("GPTLIB_CHECK_SEED")
    return int(env) if env else random.SystemRandom().randrange(2**31)


class Checker:
    def __init__(self, name: str, learner: tuple = (), device_from: str = "x"):
        self.name, self.passed = name, 0
        self.case: Optional[str] = None
        self.device_from = device_from
        simulate = os.environ.get("GPTLIB_CHECK_SIMULATED_DEVICE") == "1"   # even with a GPU
        self.device = "cuda" if torch.cuda.is_available() and not simulate else "cpu"
        self._stray: dict[
            int, torch.Tensor
        ] = {}  # storages made on "the default device" in a device run
        self.seed = _seed()
        self.rng = random.Random(self.seed)
        self._codes = _learner_codes(learner)

    # -- randomness
    def gen(self, offset: int = 0) -> torch.Generator:
        """A CPU torch.Generator seeded from this run's seed (+ offset)."""
        return torch.Generator().manual_seed(self.seed + offset)

    def _fail(self, case: Optional[str], hint: str) -> None:
        raise CheckFailed(f"{self.name}: {case} — {hint}" if case else f"{self.name}: {hint}")

    # -- assertions
    def expect(self, ok: bool, case: str, hint: str) -> None:
        """Count one check; raise CheckFailed(case + hint) when `ok` is false."""
        if not bool(ok):
            self._fail(case, hint)
        self.passed += 1

    def equal(self, got: Any, want: Any, case: str, hint: str, mistakes: Mistakes = None) -> None:
        """Python values: got == want, else the hint of the matching mistake (or `hint`), with both values."""
        if not _same(got, want, 0.0, 0.0):
            why = diagnose(got, mistakes, hint)
            self._fail(case, f"expected {_show(want)}, got {_show(got)}: {why}")
        self.passed += 1

    def close(
        self,
        got: Any,
        want: torch.Tensor,
        case: str,
        hint: str,
        atol: float = 1e-5,
        rtol: float = 1e-4,
        *,
        mistakes: Mistakes = None,
        dtype: Any = ...,
        device: Any = ...,
        near: Optional[str] = None,
        values: bool = True,
    ) -> None:
        """A tensor of want's shape, dtype and device, finite where want is, with values within tolerance."""
        if not isinstance(got, torch.Tensor):
            self._fail(case, f"expected a torch.Tensor, got {type(got).__name__}")
        if tuple(got.shape) != tuple(want.shape):
            self._fail(
                case,
                f"shape {tuple(got.shape)}, expected {tuple(want.shape)}. "
                f"{diagnose(got, mistakes, hint, atol=atol, rtol=rtol)}",
            )
        dtype = want.dtype if dtype is ... else dtype
        if dtype is not None and got.dtype != dtype:
            self._fail(
                case,
                f"dtype {got.dtype}, expected {dtype}: keep the dtype (no .double()/.float() on "
                "the result; compute in the input's dtype or convert back with .to(x.dtype))"
                if got.is_floating_point() and dtype.is_floating_point
                else f"dtype {got.dtype}, expected {dtype}. {hint}",
            )
        device = want.device if device is ... else device
        if device is not None and got.device.type != torch.device(device).type:
            self._fail(
                case,
                f"the result is on {got.device}, expected {device}: create new tensors on the "
                f"inputs' device (device={self.device_from}.device)",
            )
        if device is not None and self.stray(got):
            how = (
                "pass `device` on to the tensor constructor"
                if self.device_from == "device"
                else f"device={self.device_from}.device"
            )
            self._fail(
                case,
                "the result was made on the default device (the CPU), not on the inputs' device: "
                "on a "
                f"GPU it would be on the CPU; create new tensors on the inputs' device ({how})",
            )
        if got.device.type == "meta" or not values:
            self.passed += 1
            return
        g, w = got.detach().cpu().double(), want.detach().cpu().double()
        if g.numel() and not torch.isfinite(g[torch.isfinite(w)]).all():
            why = diagnose(got, mistakes, "", atol=atol, rtol=rtol)
            self._fail(case, why or f"NaN or inf where the expected result is finite. {hint}")
        if not torch.allclose(g, w, atol=atol, rtol=rtol, equal_nan=True):
            err = (g - w).abs().nan_to_num(float("inf")).max().item()
            why = diagnose(got, mistakes, "", atol=atol, rtol=rtol)
            if not why and near and torch.allclose(g, w, atol=1000 * atol, rtol=1000 * rtol):
                why = near
            scale = w.abs().nan_to_num(0.0, 0.0, 0.0).max().item()
            rel = (
                f" (relative to the largest |expected| {scale:.6g}: {err / scale:.2e})"
                if scale
                else ""
            )
            self._fail(case, f"max |error| {err:.6g}{rel}. {why or hint}")
        self.passed += 1

    def like(self, got: Any, want: torch.Tensor, case: str, hint: str) -> None:
        """A tensor like `want`: type, shape, dtype and device, not values (for device runs: the values were checked
        on the CPU, and CUDA kernels, TF32 included, round differently)."""
        self.close(got, want, case, hint, values=False)

    def grads(
        self,
        case: str,
        got: Any,
        want: torch.Tensor,
        wrt_got: Mapping[str, torch.Tensor],
        wrt_want: Mapping[str, torch.Tensor],
        hint: str,
        atol: float = 1e-5,
        rtol: float = 1e-4,
    ) -> None:
        """Gradients by value: d<out, r>/d(each named tensor), learner vs reference, same random cotangent r."""
        r = torch.randn(tuple(want.shape), generator=self.gen(7), dtype=torch.float64).to(
            want.dtype
        )
        ws = torch.autograd.grad(want, list(wrt_want.values()), r, allow_unused=True)
        if not (isinstance(got, torch.Tensor) and got.requires_grad):
            self._fail(
                case,
                "the result carries no gradient (computed under torch.no_grad(), or detached?): "
                "autograd must reach the inputs and parameters",
            )
        try:
            gs = torch.autograd.grad(
                got, list(wrt_got.values()), r.to(got.dtype), allow_unused=True
            )
        except (
            RuntimeError
        ) as e:  # the backward of the learner's graph (e.g. an in-place op on a saved tensor)
            self._fail(case, f"backward failed: {e}")
        for name, a, b in zip(wrt_got, gs, ws):
            b = torch.zeros_like(wrt_want[name]) if b is None else b
            self.expect(
                a is not None or not b.abs().any(),
                f"{case}, gradient w.r.t. {name}",
                f"no gradient reaches {name}. {hint}",
            )
            a = torch.zeros_like(wrt_got[name]) if a is None else a
            nan = (
                isinstance(a, torch.Tensor)
                and a.shape == b.shape
                and bool((torch.isnan(a.detach().cpu()) & torch.isfinite(b.detach().cpu())).any())
            )
            self.expect(
                not nan,
                f"{case}, gradient w.r.t. {name}",
                "NaN in the gradient where the reference's is finite: a NaN made in the forward "
                "pass and hidden afterwards still flows back. Typically the softmax of a row that "
                "is all -inf (a query that may see no key) is NaN, and zeroing it afterwards "
                "(masked_fill, nan_to_num, torch.where on the output) does not stop its NaN "
                "gradient: keep the NaN from ever being computed, e.g. give such rows finite "
                "scores before the softmax and zero their weights after it",
            )
            self.close(
                a,
                b,
                f"{case}, gradient w.r.t. {name}",
                f"the gradients differ from the reference's. {hint}",
                atol=atol,
                rtol=rtol,
            )

    # -- running the learner's code
    def call(
        self, case: str, fn: Callable, *args: Any, inplace: Optional[str] = None, **kwargs: Any
    ) -> Any:
        """Run fn(*args, **kwargs) as `case` (named if it crashes); with `inplace`, fail if an argument changed."""
        self.case = case
        try:
            if inplace is None:
                return fn(*args, **kwargs)
            out, same = unchanged(fn, *args, **kwargs)
        except RuntimeError as e:
            if _DEVICE_ERR.search(str(e)) and self._learners(e):
                self._fail(
                    case,
                    f"tensors on different devices ({str(e).splitlines()[0]}): something built "
                    "inside your function (a mask, an arange, angles, ...) is on the CPU while the "
                    f"inputs are not; build it on {self.device_from}.device "
                    f"(e.g. torch.arange(T, device={self.device_from}.device))",
                )
            raise
        self.expect(same, case, inplace)
        return out

    def to_device(self, t: torch.Tensor) -> torch.Tensor:
        """A copy of `t` on `c.device` (CUDA when there is one, else the CPU, where `device_run`
        simulates a second device)."""
        return t.detach().to(self.device).clone()

    def stray(self, t: Any) -> bool:
        """Was `t` made on the default device (without device=) during a simulated device run?"""
        return (
            isinstance(t, torch.Tensor)
            and t.device.type == "cpu"
            and t.numel() > 0
            and t.untyped_storage().data_ptr() in self._stray
        )

    def device_run(self, case: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
        """`c.call` for a case whose inputs are on `c.device` (compare the result with the reference run on the same
        inputs with `c.like`: shape, dtype and device). Returns None, counting nothing, when the
        learner's code is data-dependent (fine on CUDA, impossible on meta): inconclusive."""
        if self.device == "cpu":  # no GPU: simulate one (see _StrayDevice)
            with _StrayDevice(self._stray):
                return self.call(case, fn, *args, **kwargs)
        try:
            return self.call(case, fn, *args, **kwargs)
        except (RuntimeError, NotImplementedError) as e:
            if (
                self.device == "meta"
                and _META_ERR.search(str(e))
                and not _DEVICE_ERR.search(str(e))
            ):
                return None
            raise

    def _learners(self, e: BaseException) -> bool:
        """Does the traceback of `e` pass through the learner's code?"""
        frames = []
        tb = e.__traceback__
        while tb is not None:
            frames.append(tb.tb_frame)
            tb = tb.tb_next
        if self._codes is not None:
            return any(f.f_code in self._codes for f in frames)
        for f in reversed(
            frames
        ):  # no known learner objects: the innermost frame outside libraries decides
            path = os.path.abspath(f.f_code.co_filename)
            if path.startswith(_CHECKS_DIR):
                return False
            if not (path.startswith(_LIB_DIRS) or f.f_code.co_filename.startswith("<frozen")):
                return True
        return True


def _learner_codes(objs: tuple) -> Optional[set[CodeType]]:
    """The code objects of the learner's function(s) or class(es) (their own methods and their bases', outside
    torch); None when unknown."""
    if not objs:
        return None
    codes: set[CodeType] = set()

    def add(f: Any) -> None:
        for g in (
            f,
            getattr(f, "__func__", None),
            getattr(f, "fget", None),
            getattr(f, "func", None),
        ):
            code = getattr(g, "__code__", None)
            if isinstance(code, CodeType):
                codes.add(code)

    for o in objs:
        if isinstance(o, type):
            for k in o.__mro__:
                if k.__module__.split(".")[0] not in ("torch", "builtins", "typing"):
                    for v in vars(k).values():
                        add(v)
        else:
            add(o)
            if not hasattr(o, "__code__") and not isinstance(o, type):
                add(getattr(type(o), "__call__", None))
                for k in type(o).__mro__:
                    if k.__module__.split(".")[0] not in (
                        "torch",
                        "builtins",
                        "typing",
                        "functools",
                    ):
                        for v in vars(k).values():
                            add(v)
    return codes or None


@contextmanager
def checker(name: str, *learner: Any, device_from: str = "x",
            solution: Any = None) -> Iterator[Checker]:
    """`with checker("merge", merge) as c: ...`; prints a one-line summary when every check passed.

    `solution`: gptlib's own solution of the exercise (a function or class): the check fails when
    the learner's code calls it (see `no_solution`; nothing is watched when it is the learner).

    `learner`: the learner's function(s)/class(es) under test. An exception whose traceback passes through their
    code fails the check (CheckFailed, naming the case that was running, with the error chained so the
    traceback still points at their line); any other exception is a bug in the check (CheckError)."""
    c = Checker(name, learner, device_from)
    guard: Any = contextlib.nullcontext()
    if solution is not None and learner:
        what = f"{solution.__module__}.{solution.__qualname__}"
        hint = f"your code calls {what}, the solution of this exercise: write it yourself"
        guard = no_solution(c, learner[0], solution, hint)
    try:
        with guard:
            yield c
        sub = learner[0] if learner else None          # checked last: a mistake's own hint first
        if isinstance(solution, type) and isinstance(sub, type) and sub is not solution and \
                issubclass(sub, solution):
            raise CheckFailed(f"{name}: your class subclasses {solution.__module__}."
                              f"{solution.__qualname__}, the solution of this exercise: write it "
                              "yourself")
    except Forbidden as e:
        raise CheckFailed(f"{name}: {c.case} — {e}") from None
    except CheckFailed:
        raise
    except Exception as e:
        where = f" while running {c.case}" if c.case else ""
        if not c._learners(e):
            raise CheckError(
                f"{name}: the check itself crashed{where} — a bug in gptlib.checks (or its "
                "reference), "
                f"not in your code; please report it: {type(e).__name__}: {e}"
            ) from e
        if isinstance(e, NotImplementedError):
            raise CheckFailed(f"{name}: not implemented yet ({e})") from e
        raise CheckFailed(f"{name}: your code raised {type(e).__name__}{where}: {e}") from e
    print(f"✔ {name}: all {c.passed} checks passed")
