"""Run-time choice between the Triton kernels and the PyTorch reference.

Mode, highest priority first:

1. ``set_fused(mode)`` -- a function that also works as a context manager
   (the previous mode comes back on exit); ``set_fused(None)`` clears it.
2. the environment variable ``GANREG_FUSED_OPS`` (read at every call).
3. ``"auto"``.

Modes:

* ``"auto"`` -- Triton when ``x`` is a CUDA tensor of a supported dtype
  (fp32/fp16/bf16, 4-D) on a GPU Triton compiles for (compute capability
  >= 7.0, or ROCm), the modulations are fp32/fp16/bf16 and ``[B, C]``-shaped (or broadcast to
  it: ``[1, C]``, ``[B, 1, 1, 1]``, ...; not ones that would broadcast ``x``)
  and triton imports; the reference otherwise. Also
  the reference while ``torch.compile`` traces: Inductor fuses the reference
  into its own kernels (and may fuse it with neighbouring ops), whereas the
  Triton path's Python launcher makes dynamo break the graph (measured on
  an H100: a compiled function around the fused op ran slower than the
  fused op eagerly). ``"on"`` still forces Triton under compile.
* ``"on"``   -- always the Triton path; raises if it cannot run (CPU tensors
  work only under ``TRITON_INTERPRET=1`` set before triton was imported:
  that is how the CPU tests exercise the kernels).
* ``"off"``  -- always the reference.

``triton`` is imported lazily, on the first call that wants it, so
``import ganreg.ops`` stays cheap and works where triton is absent.
"""

from __future__ import annotations

import os
import threading

import torch

from .dfblk_reference import cbn_apply_reference, dfblk_reference

__all__ = ["set_fused", "get_fused_mode", "fused_available", "will_use_fused", "dfblk", "cbn_apply"]

ENV_VAR = "GANREG_FUSED_OPS"
_MODES = ("auto", "on", "off")
_ALIASES = {"1": "on", "true": "on", "yes": "on", "0": "off", "false": "off", "no": "off", "": "auto"}

_lock = threading.Lock()
_override: str | None = None
_triton_mod = None
_triton_error: BaseException | None = None


def _normalise(mode) -> str:
    if isinstance(mode, bool):
        return "on" if mode else "off"
    m = str(mode).strip().lower()
    m = _ALIASES.get(m, m)
    if m not in _MODES:
        raise ValueError(f"fused-ops mode must be one of {_MODES}, got {mode!r}")
    return m


class set_fused:
    """Force the fused path on/off (or back to auto) -- immediately.

    ``set_fused("off")`` sets it for the process; ``with set_fused("on"): ...``
    sets it for the block and restores the previous setting afterwards.
    ``set_fused(None)`` removes the override so the env var applies again.
    """

    def __init__(self, mode):
        global _override
        new = None if mode is None else _normalise(mode)
        with _lock:
            self._prev = _override
            _override = new

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        global _override
        with _lock:
            _override = self._prev
        return False


def get_fused_mode() -> str:
    """The mode in force: the ``set_fused`` override, else the env var, else auto."""
    if _override is not None:
        return _override
    return _normalise(os.environ.get(ENV_VAR, "auto"))


def _triton():
    """The triton-backed module, or None if triton can't be imported."""
    global _triton_mod, _triton_error
    if _triton_mod is None and _triton_error is None:
        try:
            from . import dfblk_triton

            _triton_mod = dfblk_triton
        except Exception as e:  # ImportError, or a broken triton install
            _triton_error = e
    return _triton_mod


def fused_available() -> bool:
    """True if the triton kernels can be imported here."""
    return _triton() is not None


_FUSED_DTYPES = (torch.float32, torch.float16, torch.bfloat16)


_capability: dict = {}


def device_capability(device: torch.device) -> tuple[int, int]:
    """(major, minor) of a CUDA device; (99, 0) on ROCm (Triton's compute-capability floor is CUDA's)."""
    if torch.version.hip is not None:
        return (99, 0)
    idx = device.index if device.index is not None else torch.cuda.current_device()
    cap = _capability.get(idx)
    if cap is None:
        cap = _capability[idx] = tuple(torch.cuda.get_device_capability(idx))
    return cap


def will_use_fused(x: torch.Tensor) -> bool:
    """Whether ``dfblk``/``cbn_apply`` would take the Triton path for ``x`` now
    (given ``[B, C]``-shaped modulations; see ``params_fit``)."""
    mode = get_fused_mode()
    if mode == "off":
        return False
    if mode == "on":
        return True
    if _is_compiling():
        return False
    return bool(x.is_cuda and x.dim() == 4 and x.dtype in _FUSED_DTYPES and fused_available()
                and device_capability(x.device) >= (7, 0))


def params_fit(x: torch.Tensor, *params) -> bool:
    """Whether the kernels take these modulations for a 4-D ``x``: each ``[b, c]`` or ``[b, c, 1, 1]``
    with b in (1, B), c in (1, C) -- what the reference broadcasts without enlarging ``x`` -- and of
    a dtype the kernels compute at full precision (fp32 arithmetic: not float64)."""
    B, C = x.shape[0], x.shape[1]
    for p in params:
        if p.dtype not in _FUSED_DTYPES:
            return False
        sh = p.shape
        if not (len(sh) == 2 or (len(sh) == 4 and sh[2] == 1 and sh[3] == 1)):
            return False
        if sh[0] not in (1, B) or sh[1] not in (1, C):
            return False
    return True


def _use_fused(x, params) -> bool:
    if not will_use_fused(x):
        return False
    # auto: shapes the kernels can't take go to the reference; "on" lets the fused op raise about them
    return get_fused_mode() == "on" or params_fit(x, *params)


def _is_compiling() -> bool:
    fn = getattr(getattr(torch, "compiler", None), "is_compiling", None)
    return bool(fn()) if fn is not None else False


def _fused_module():
    mod = _triton()
    if mod is None:
        raise RuntimeError(f"{ENV_VAR}=on / set_fused('on') but triton is unavailable: {_triton_error!r}")
    return mod


def dfblk(x, g1, b1, g2, b2, slope: float = 0.2) -> torch.Tensor:
    """DF-GAN DFBLK (without its MLPs): ``lrelu(g2 * lrelu(g1 * x + b1) + b2)``.

    ``x``: ``[B, C, H, W]``; ``g1, b1, g2, b2``: ``[B, C]`` (or ``[B, C, 1, 1]``, or broadcast
    to it, e.g. ``[1, C]``). The output dtype is x's; wider modulations (float32 under bf16 autocast)
    are applied at their precision, not rounded to x's dtype first (see ``dfblk_reference``).
    """
    if _use_fused(x, (g1, b1, g2, b2)):
        return _fused_module().fused_dfblk(x, g1, b1, g2, b2, slope)
    return dfblk_reference(x, g1, b1, g2, b2, slope)


def cbn_apply(xhat, g, b) -> torch.Tensor:
    """Conditional-BatchNorm apply step: ``relu(g * xhat + b)``, per-sample per-channel g, b; xhat's dtype out."""
    if _use_fused(xhat, (g, b)):
        return _fused_module().fused_cbn_apply(xhat, g, b)
    return cbn_apply_reference(xhat, g, b)
