"""Reading one tensor, or a range of its rows, from a safetensors file with positioned reads.

``LazyCheckpoint`` checks a file with safetensors itself (``safe_open``) once, then reads each
tensor (or chunk of rows) here: the byte range of a C-ordered tensor's rows is contiguous, so a
chunk is one ``pread`` into a fresh tensor. No mapping of the file is kept (none of its pages
count as the process's memory), and a read costs its own bytes, with none of ``safe_open``'s
per-call setup (several times the read itself for chunks of a few hundred KiB).
"""

from __future__ import annotations

import json
import math
import os
import struct
import sys
from pathlib import Path

import torch

DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
          "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
          "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}


class SafetensorsRows:
    """The layout of a safetensors file (its header), and reads of its tensors' rows."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        with open(self.path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            size = os.fstat(handle.fileno()).st_size
            if length > size - 8:
                raise ValueError("header longer than the file")
            header = json.loads(handle.read(length))
        self.base = 8 + length
        self.entries: dict[str, tuple[torch.dtype, tuple[int, ...], int]] = {}
        for name, entry in header.items():
            if name == "__metadata__":
                continue
            dtype = DTYPES.get(entry["dtype"])
            if dtype is None or sys.byteorder != "little":
                raise ValueError(f"tensor {name!r}: dtype {entry['dtype']} is not read here")
            begin, end = entry["data_offsets"]
            shape = tuple(int(n) for n in entry["shape"])
            if end - begin != math.prod(shape) * dtype.itemsize or self.base + end > size:
                raise ValueError(f"tensor {name!r}: data offsets do not match its shape")
            self.entries[name] = (dtype, shape, self.base + begin)

    def read(self, name: str, rows: slice | None = None) -> torch.Tensor:
        dtype, shape, offset = self.entries[name]
        if rows is not None and shape:
            start, stop, step = rows.indices(shape[0])
            if step != 1:
                raise ValueError("rows must be a contiguous range")
            row = math.prod(shape[1:]) * dtype.itemsize
            offset, shape = offset + start * row, (max(0, stop - start), *shape[1:])
        tensor = torch.empty(shape, dtype=dtype)
        view = memoryview(tensor.reshape(-1).view(torch.uint8).numpy()) if tensor.numel() \
            else memoryview(b"")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            done = 0
            while done < len(view):
                got = os.preadv(fd, [view[done:]], offset + done)
                if got <= 0:
                    raise OSError(f"{self.path}: short read of tensor {name!r}")
                done += got
        finally:
            os.close(fd)
        return tensor
