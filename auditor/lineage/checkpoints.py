"""Checkpoint files: safetensors written with their sha256, read back only after the hash matches.

Nothing here unpickles: safetensors is plain tensors, and torch state dicts are read with
``weights_only=True`` (refused when they carry anything but tensors and plain containers).

Optimizer state is flattened by parameter *name* so that it can be restored into a freshly built
optimizer: ``"{name}.momentum_buffer"`` (SGD), ``"{name}.exp_avg"``, ``"{name}.exp_avg_sq"``,
``"{name}.step"`` (Adam/AdamW).
"""

from __future__ import annotations

import math
import os
import pickle
import stat
import warnings
from contextlib import contextmanager
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from auditor.errors import CheckpointError
from auditor.hashing import sha256_file
from auditor.lineage.models import CheckpointRef
from auditor.lineage.rows import SafetensorsRows

Tensors = dict[str, torch.Tensor]


def resolve(ref: CheckpointRef, root: str | Path) -> Path:
    path = Path(ref.uri)
    return path if path.is_absolute() else Path(root) / path


def save_tensors(tensors: Tensors, folder: str | Path, root: str | Path,
                 prefix: str = "ckpt") -> CheckpointRef:
    """Write ``tensors`` as safetensors under ``folder``, named by content hash (deduplicated)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    tmp = folder / f".{prefix}.{os.getpid()}.tmp"
    save_file(plain, str(tmp))
    digest = sha256_file(tmp)
    final = folder / f"{prefix}-{digest[:16]}.safetensors"
    os.replace(tmp, final)
    return CheckpointRef(uri=_relative(final, Path(root)), sha256=digest, format="safetensors")


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path.resolve())


_SPECIAL_ROOTS = ("/proc", "/sys", "/dev")


def require_plain_file(path: Path) -> None:
    """A checkpoint must be (or link to) a regular file outside /proc, /sys and /dev: a FIFO
    would block, a device read forever, and /proc/self/mem is process memory, not a file."""
    try:
        target = path.resolve(strict=True)
        mode = os.stat(target).st_mode
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} is missing") from None
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop
        raise CheckpointError(f"checkpoint {path} cannot be read: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
    if any(str(target) == r or str(target).startswith(r + "/") for r in _SPECIAL_ROOTS):
        raise CheckpointError(f"checkpoint {path} is (or links to) {target}, a special file, "
                              "not a checkpoint")
    if not stat.S_ISREG(mode):
        raise CheckpointError(f"checkpoint {path} is not a regular file (a folder, FIFO, "
                              "device or socket)")


def file_sha256(path: Path) -> str:
    """sha256 of a checkpoint file, after ``require_plain_file``."""
    require_plain_file(path)
    try:
        return sha256_file(path)
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path} cannot be read: {exc.strerror or exc}") \
            from None


def verify(ref: CheckpointRef, root: str | Path) -> Path:
    """The checkpoint's path, after checking it exists and matches its recorded sha256."""
    path = resolve(ref, root)
    actual = file_sha256(path)
    if actual != ref.sha256:
        raise CheckpointError(
            f"checkpoint {path} does not match its recorded hash "
            f"(expected sha256 {ref.sha256[:16]}…, file has {actual[:16]}…): "
            "it was changed or replaced after recording")
    return path


def load_tensors(ref: CheckpointRef, root: str | Path, *, check_finite: bool = True) -> Tensors:
    """Load a checkpoint after verifying its hash; never unpickles arbitrary objects."""
    path = verify(ref, root)
    tensors = _read(path, ref.format)
    if check_finite:
        _require_finite(tensors, path)
    return tensors


def read_unverified(path: str | Path, fmt: str) -> Tensors:
    """Read a checkpoint that has no recorded hash yet (import); same safety rules."""
    path = Path(path)
    require_plain_file(path)
    tensors = _read(path, fmt)
    _require_finite(tensors, path)
    return tensors


def _read(path: Path, fmt: str) -> Tensors:
    if fmt == "safetensors":
        try:
            return load_file(str(path))
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {path} is not a readable safetensors file: {exc}") \
                from exc
    return _read_torch(path)


def _read_torch(path: Path) -> Tensors:
    try:
        with warnings.catch_warnings():  # torch's notes on pickle protocols are noise here
            warnings.simplefilter("ignore")
            state = torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"checkpoint {path} was refused: it holds objects other than tensors "
            "(auditor never unpickles untrusted files; convert it to safetensors)") from exc
    except Exception as exc:  # torch raises many types (struct.error, EOFError, ...) on junk
        raise CheckpointError(f"checkpoint {path} is not a readable torch state dict: {exc}") \
            from exc
    from auditor.lineage.trainer_files import flatten_native_optimizer, is_native_optimizer_state

    if is_native_optimizer_state(state):  # torch.save(optimizer.state_dict())
        return flatten_native_optimizer(state, path)
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"checkpoint {path} is not a flat state dict of tensors")
    return dict(state)


def first_nonfinite(tensors: Tensors) -> str | None:
    """The name of the first floating tensor holding NaN or Inf, if any."""
    for name, tensor in tensors.items():
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            return name
    return None


def _require_finite(tensors: Tensors, path: Path) -> None:
    name = first_nonfinite(tensors)
    if name is not None:
        raise CheckpointError(f"checkpoint {path} holds NaN or Inf values in {name!r}")


# -- model and optimizer state ------------------------------------------------------------------

def model_state(model: torch.nn.Module) -> Tensors:
    return {k: v for k, v in model.state_dict(keep_vars=False).items()}


def load_model_state(model: torch.nn.Module, tensors: Tensors, source: str = "checkpoint") -> None:
    """Load weights strictly: missing, unexpected or mis-shaped tensors are a CheckpointError."""
    from auditor.lineage.trainer_files import fill_tied

    expected = model.state_dict()
    tensors = fill_tied(expected, tensors)  # tied weights a save_pretrained dropped
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{source} does not fit the model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    for name, tensor in tensors.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise CheckpointError(
                f"{source}: tensor {name!r} has shape {tuple(tensor.shape)}, "
                f"the model expects {tuple(expected[name].shape)}")
    model.load_state_dict(tensors, strict=True)


def param_names(model: torch.nn.Module) -> dict[int, str]:
    return {id(p): name for name, p in model.named_parameters()}


def optimizer_state(optimizer: torch.optim.Optimizer, model: torch.nn.Module) -> Tensors:
    """Flatten the optimizer's per-parameter state by parameter name."""
    names = param_names(model)
    flat: Tensors = {}
    for param, state in optimizer.state.items():
        name = names[id(param)]
        for key, value in state.items():
            if value is None:
                continue
            flat[f"{name}.{key}"] = value if isinstance(value, torch.Tensor) else torch.tensor(value)
    return flat


def restore_optimizer_state(optimizer: torch.optim.Optimizer, model: torch.nn.Module,
                            flat: Tensors) -> None:
    """Put flattened state back into ``optimizer`` (built over ``model``'s parameters)."""
    by_name = dict(model.named_parameters())
    optimizer.state.clear()
    for key, value in flat.items():
        name, _, field = key.rpartition(".")
        if name not in by_name:
            raise CheckpointError(f"optimizer state names unknown parameter {name!r}")
        param = by_name[name]
        if field != "step":
            value = value.to(device=param.device, dtype=param.dtype)
        optimizer.state[param][field] = value.clone()


# -- lazy reading, one tensor at a time ---------------------------------------------------------

class LazyCheckpoint:
    """A checkpoint whose sha256 is checked once, then read one tensor at a time.

    safetensors files are checked by ``safe_open`` once, then read by positioned reads of one
    tensor, or a range of its rows, at a time (``rows.py``): a read costs its own bytes, never
    the file's. A torch state dict (``weights_only=True``) is read whole. Each tensor read
    is checked for NaN/Inf like ``load_tensors`` checks a whole file.
    """

    def __init__(self, ref: CheckpointRef, root: str | Path):
        self.path = verify(ref, root)
        self._tensors: Tensors | None = None
        if ref.format == "safetensors":
            try:
                with safe_open(str(self.path), framework="pt") as handle:
                    self._shapes = {key: tuple(handle.get_slice(key).get_shape())
                                    for key in handle.keys()}
            except (SafetensorError, OSError, ValueError) as exc:
                raise CheckpointError(f"checkpoint {self.path} is not a readable safetensors "
                                      f"file: {exc}") from exc
            try:  # checked by safetensors above; then read by positioned reads (rows.py)
                self._rows: SafetensorsRows | None = SafetensorsRows(self.path)
            except (OSError, ValueError, KeyError, TypeError):
                self._rows = None
        else:
            self._tensors = _read_torch(self.path)
            self._shapes = {key: tuple(t.shape) for key, t in self._tensors.items()}
        self._keys = frozenset(self._shapes)

    def keys(self) -> frozenset[str]:
        return self._keys

    def shape(self, name: str) -> tuple[int, ...] | None:
        """The stored shape of tensor ``name`` (None when absent), read from the header."""
        return self._shapes.get(name)

    def get(self, name: str, rows: slice | None = None) -> torch.Tensor | None:
        """The tensor ``name`` (None when the checkpoint has none of that name); ``rows``: only
        those rows of its first dimension (a chunk: only its bytes are read)."""
        if name not in self._keys:
            return None
        if self._tensors is not None:
            tensor = self._tensors[name] if rows is None else self._tensors[name][rows]
        else:
            with self._reading(name):
                tensor = (self._rows.read(name, rows) if self._rows is not None
                          else _safetensors_read(self.path, name, rows))
        if tensor.is_floating_point() and not _finite(tensor):
            raise CheckpointError(f"checkpoint {self.path} holds NaN or Inf values in {name!r}")
        return tensor

    @contextmanager
    def _reading(self, name: str):
        try:
            yield
        except (SafetensorError, OSError, ValueError) as exc:
            raise CheckpointError(f"checkpoint {self.path}: tensor {name!r} is unreadable: "
                                  f"{exc}") from exc


def _safetensors_read(path: Path, name: str, rows: slice | None) -> torch.Tensor:
    with safe_open(str(path), framework="pt") as handle:  # no mapping outlives the read
        return handle.get_tensor(name) if rows is None else handle.get_slice(name)[rows]


def _finite(tensor: torch.Tensor) -> bool:
    """No NaN or Inf in ``tensor``: its sum is finite (a NaN or Inf makes it NaN or Inf), else
    value by value (a sum can also overflow): one vectorised reduction in the common case."""
    if tensor.numel() == 0 or math.isfinite(float(tensor.sum())):
        return True
    return bool(torch.isfinite(tensor).all())


class LazyCheckpoints:
    """``LazyCheckpoint`` per reference, each file hashed once (shared by equal sha256)."""

    def __init__(self, root: str | Path):
        self.root = root
        self._open: dict[str, LazyCheckpoint] = {}

    def __call__(self, ref: CheckpointRef | None) -> LazyCheckpoint | None:
        if ref is None:
            return None
        if ref.sha256 not in self._open:
            self._open[ref.sha256] = LazyCheckpoint(ref, self.root)
        return self._open[ref.sha256]
