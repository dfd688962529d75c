"""Int8 copies of the PP-OCR det/rec models that ship in the rapidocr wheel, built on this machine.

The default rapidocr engine runs these when they exist (issue 18: −40 % per banner and per poster
against the fp32 models, same text on the OCR bench). They are made from the installed fp32 models by
onnxruntime's static quantisation — nothing is downloaded and no model file is kept in git:

    python -m detectors.ocr.int8          # `make install` runs this; a no-op when they exist

Recipe (:data:`RECIPE`): the model's opset raised to 13 (per-channel QDQ needs it); onnxruntime's
own graph fusions applied first and saved (each GELU becomes one ``Gelu`` node, and so on), so that
quantisation cannot split them: quantised first (recipe v1), the QDQ nodes on a convolution's output
broke the GELU pattern and it ran as five element-wise ops, ~20 % of the models' time; then every
``Conv`` and ``MatMul`` quantised to QDQ int8 — weights per channel (signed), activations per tensor
(unsigned, min/max calibration). The fusions that would hide a ``Conv`` or ``MatMul`` from the
quantiser (:data:`KEEP_QUANTISABLE`) are left out of the first step. Against v1 (Conv only, nothing
fused first): detector −25 to −35 %, recogniser −20 %, same text on the OCR bench (issue 18).
v3: a ``MatMul``'s result stays float (it was quantised to 8 bits and back, the recogniser's 18,710
class scores included), each quantised ``MatMul`` and its bias become one op, and the recogniser
ends before its Softmax (:func:`_finish`; the engine decodes the scores): recogniser −7 % per text
line against v2, detector unchanged (byte-identical), same text on the OCR bench.
Calibration inputs are the exact detector and recogniser inputs of the fp32 engine reading 40 generated ads
(:func:`demo_site.adgen.bench_set` with a seed of its own, not the benchmark's) and the tiles of one
long image, so the same installed models, fonts and packages give the same int8 files — builds
here were byte-identical. (The recogniser's inputs are crops OpenCV makes: in a fresh checkout
`make test` builds the models before it installs the paddle extra, and the recogniser built then
differed from one built after it in a few activation scales' last digits.)

Files go to ``$JIANFU_MODEL_CACHE`` or ``~/.cache/jianfu/int8-models``, named after the source
model, the first 12 hex digits of its sha256 and the recipe: a new rapidocr model or a new recipe
is a new file, never a stale one. Written to a temporary name and renamed, so a reader never sees
half a file.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from pathlib import Path

RECIPE = "fused-conv-matmul-qdq-v3"
# onnxruntime graph transformers left out of the fusion step: they would turn the ops the quantiser
# looks for (Conv, MatMul) into contrib ops it does not know (FusedConv, FusedMatMul)
KEEP_QUANTISABLE = ["ConvActivationFusion", "MatMulScaleFusion", "MatmulTransposeFusion"]
QUANTISED_OPS = ["Conv", "MatMul"]
CALIBRATION_SEED = 18  # not the benchmark's 2021
CALIBRATION_ADS = (24, 16)  # banners, posters
TASKS = ("det", "rec")


def cache_dir() -> Path:
    return Path(os.environ.get("JIANFU_MODEL_CACHE") or Path.home() / ".cache" / "jianfu" / "int8-models")


def _sha12(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:12]


def int8_path(source: str | Path, directory: Path | None = None) -> Path:
    """Where the int8 copy of the fp32 model ``source`` is (or would be) kept."""
    source = Path(source)
    return (directory or cache_dir()) / f"{source.stem}.int8-{_sha12(source)}-{RECIPE}.onnx"


def fp32_models() -> dict[str, str]:
    """The wheel's det/rec model files, as the default engine resolves them."""
    from detectors.ocr.rapid import RapidOcrEngine

    return {task: path for task, path in RapidOcrEngine.default_models().items() if task in TASKS}


def _calibration_inputs() -> dict[str, list]:
    """The fp32 engine's detector and recogniser inputs on the calibration images."""
    import random

    from demo_site import adgen
    from detectors.images import read_image
    from detectors.ocr.rapid import RapidOcrEngine

    engine = RapidOcrEngine(int8=False)
    seen: dict[str, list] = {"det": [], "rec": []}

    class Recorder:
        def __init__(self, session, task: str) -> None:
            self.session, self.task = session, task

        def __call__(self, x):
            seen[self.task].append(x.copy())
            return self.session(x)

        def __getattr__(self, name: str):
            return getattr(self.session, name)

    engine._ocr.text_det.session = Recorder(engine._ocr.text_det.session, "det")
    engine._ocr.text_rec.session = Recorder(engine._ocr.text_rec.session, "rec")
    ads = [ad for _, ad in adgen.bench_set(*CALIBRATION_ADS, seed=CALIBRATION_SEED)]
    rng = random.Random(CALIBRATION_SEED)
    ads.append(adgen.long_image(rng.choice(list(adgen.VIOLATIONS)), height=4000))  # tiles: det at 960 px
    for ad in ads:
        read_image(ad.data, engine)
    return seen


def _quantise(source: Path, inputs: list, target: Path) -> None:
    import onnx
    from onnx import version_converter
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )
    from onnxruntime.quantization.shape_inference import quant_pre_process

    model = onnx.load(str(source))
    input_name = model.graph.input[0].name

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.it = iter(inputs)

        def get_next(self):
            x = next(self.it, None)
            return None if x is None else {input_name: x}

    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        opset13, fused, pre, out = (Path(tmp) / name for name in ("opset13.onnx", "fused.onnx", "pre.onnx", "int8.onnx"))
        onnx.save(version_converter.convert_version(model, 13), str(opset13))
        _fuse_first(opset13, fused)
        quant_pre_process(str(fused), str(pre), skip_symbolic_shape=True, skip_optimization=True)
        quantize_static(
            str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=QUANTISED_OPS,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=True,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"OpTypesToExcludeOutputQuantization": ["MatMul"]},
        )
        _finish(out)
        os.replace(out, target)


def _finish(path: Path) -> None:
    """Two rewrites of the quantised model that onnxruntime does not do itself, both exact:

    - each quantised ``MatMul`` whose float result only goes to an ``Add`` of a constant bias
      becomes one ``MatMulIntegerToFloat`` with that bias (onnxruntime turns the QDQ ``MatMul`` into
      that op anyway, but leaves the ``Add`` as a pass of its own over, for the recogniser's
      head, 18,710 scores per time step): the same output, bit for bit;
    - if the model's output is a Softmax (the recogniser's), it is dropped: the output becomes the
      scores before it and the model's metadata says so (``REC_OUTPUT_KEY``); the engine decodes
      them (``detectors.ocr.rapid``) — the best class is the same.
    """
    import onnx

    from detectors.ocr.rapid import REC_OUTPUT_KEY

    model = onnx.load(str(path))
    graph = model.graph
    producer = {name: node for node in graph.node for name in node.output}
    consumers: dict[str, list] = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    constants = {init.name: init for init in graph.initializer}

    fused = 0
    for matmul in [n for n in graph.node if n.op_type == "MatMul"]:
        dq_a, dq_b = (producer.get(name) for name in matmul.input)
        users = consumers.get(matmul.output[0], [])
        if not (dq_a and dq_b and dq_a.op_type == dq_b.op_type == "DequantizeLinear"
                and len(users) == 1 and users[0].op_type == "Add" and dq_b.input[0] in constants):
            continue
        add = users[0]
        bias = next(name for name in add.input if name != matmul.output[0])
        columns = list(constants[dq_b.input[0]].dims)[-1:]
        if bias not in constants or list(constants[bias].dims) != columns or len(dq_a.input) < 3:
            continue
        node = onnx.helper.make_node(
            "MatMulIntegerToFloat",
            [dq_a.input[0], dq_b.input[0], dq_a.input[1], dq_b.input[1], dq_a.input[2], dq_b.input[2], bias],
            [add.output[0]], domain="com.microsoft", name=f"{matmul.name}_with_bias")
        graph.node.insert(list(graph.node).index(add), node)
        graph.node.remove(add)
        graph.node.remove(matmul)
        for dq in (dq_a, dq_b):  # a DequantizeLinear another node still reads stays
            if len(consumers[dq.output[0]]) == 1:
                graph.node.remove(dq)
        fused += 1
    if fused and not any(op.domain == "com.microsoft" for op in model.opset_import):
        model.opset_import.append(onnx.helper.make_opsetid("com.microsoft", 1))

    output = graph.output[0].name
    softmax = next((n for n in graph.node if n.op_type == "Softmax" and list(n.output) == [output]), None)
    if softmax is not None:
        scores = softmax.input[0]
        for node in graph.node:
            node.output[:] = [output if name == scores else name for name in node.output]
        graph.node.remove(softmax)
        onnx.helper.set_model_props(model, {**{p.key: p.value for p in model.metadata_props},
                                            REC_OUTPUT_KEY: "logits"})
    onnx.save(model, str(path))


def _fuse_first(source: Path, target: Path) -> None:
    """``source`` with onnxruntime's extended graph fusions applied (but not
    :data:`KEEP_QUANTISABLE`), written to ``target``."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    options.optimized_model_filepath = str(target)
    ort.InferenceSession(str(source), options, providers=["CPUExecutionProvider"],
                         disabled_optimizers=KEEP_QUANTISABLE)


def build(directory: Path | None = None, force: bool = False) -> dict[str, Path]:
    """Make the int8 det/rec models unless they exist; return their paths."""
    directory = directory or cache_dir()
    sources = {task: Path(path) for task, path in fp32_models().items()}
    targets = {task: int8_path(src, directory) for task, src in sources.items()}
    todo = [task for task, target in targets.items() if force or not target.is_file()]
    if todo:
        directory.mkdir(parents=True, exist_ok=True)
        inputs = _calibration_inputs()
        for task in todo:
            _quantise(sources[task], inputs[task], targets[task])
    return targets


def installed(directory: Path | None = None) -> dict[str, str]:
    """The int8 models that exist for the wheel's det/rec models (empty when none were built)."""
    out = {}
    for task, src in fp32_models().items():
        path = int8_path(src, directory)
        if path.is_file():
            out[task] = str(path)
    return out


def main(argv: list[str] | None = None) -> int:
    import logging

    logging.basicConfig(level=logging.ERROR)  # onnxruntime.quantization's advice goes to the root logger
    argv = sys.argv[1:] if argv is None else argv
    force = "--force" in argv
    try:
        paths = build(force=force)
    except ImportError as e:
        print(f"int8 OCR models not built: {e} (pip install 'onnx>=1.17,<2')", file=sys.stderr)
        return 1
    except Exception as e:  # no CJK font for the calibration images, unwritable cache folder ...
        print(f"int8 OCR models not built: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    for task, path in paths.items():
        print(f"{task}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
