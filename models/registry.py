"""The backbone registry: every supported feature extractor and what the app knows of it.

Each keras.applications family has its own input scaling, default size, size limits and
ImageNet weights file; ``BackboneSpec`` records them so that the rest of the app never
special-cases a family. Facts were read from keras/src/applications/*.py (Keras 3.15.1)
and measured by building each backbone. This module imports no Keras: the config, the
weights code and the GUI's catalog all read it cheaply.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BackboneSpec:
    """What the app needs to know about one backbone.

    Attributes:
        name: the ``model.backbone`` value (the keras.applications function name).
        family: for grouping in the GUI, e.g. "EfficientNetV2".
        default_size: the input size its ImageNet weights were trained at.
        preprocess: the input scaling its input needs (``models.preprocess``): "tf", "caffe", "torch" or
            "none" (the backbone scales raw 0-255 input itself).
        params_millions: parameters of the backbone without its classification top
            (``include_top=False``), counted on Keras 3.15.1 builds.
        imagenet_top1: ImageNet top-1 accuracy in percent of the full model at its
            default size, as documented by Keras; None where Keras documents none.
        min_size: the smallest input size Keras accepts.
        imagenet_sizes: input sizes that have their own ImageNet file (MobileNet V1/V2);
            other sizes load the 224 file. Empty: one file serves every size.
        imagenet_size_fixed: ImageNet weights need exactly ``default_size`` (NASNet).
        has_imagenet: whether ImageNet weights exist (False for SmallCNN).
    """
    name: str
    family: str
    default_size: int
    preprocess: str
    params_millions: float | None
    imagenet_top1: float | None
    min_size: int = 32
    imagenet_sizes: tuple[int, ...] = ()
    imagenet_size_fixed: bool = False
    has_imagenet: bool = True

    def imagenet_file_size(self, image_size: int) -> int:
        """The input size of the ImageNet file ``keras.applications`` loads at ``image_size``."""
        return image_size if image_size in self.imagenet_sizes else 224


def _spec(name, family, size, preprocess, params, top1, **extra) -> BackboneSpec:
    return BackboneSpec(name, family, size, preprocess, params, top1, **extra)


_SPECS = (
    _spec("SmallCNN", "SmallCNN", 64, "tf", 0.13, None, has_imagenet=False),
    _spec("MobileNet", "MobileNet", 224, "tf", 3.23, 70.4, imagenet_sizes=(128, 160, 192, 224)),
    _spec("MobileNetV2", "MobileNetV2", 224, "tf", 2.26, 71.3,
          imagenet_sizes=(96, 128, 160, 192, 224)),
    _spec("MobileNetV3Small", "MobileNetV3", 224, "tf", 0.94, 68.1),
    _spec("MobileNetV3Large", "MobileNetV3", 224, "tf", 3.00, 75.6),
    _spec("EfficientNetB0", "EfficientNet", 224, "none", 4.05, 77.1),
    _spec("EfficientNetB1", "EfficientNet", 240, "none", 6.58, 79.1),
    _spec("EfficientNetB2", "EfficientNet", 260, "none", 7.77, 80.1),
    _spec("EfficientNetB3", "EfficientNet", 300, "none", 10.78, 81.6),
    _spec("EfficientNetB4", "EfficientNet", 380, "none", 17.67, 82.9),
    _spec("EfficientNetB5", "EfficientNet", 456, "none", 28.51, 83.6),
    _spec("EfficientNetB6", "EfficientNet", 528, "none", 40.96, 84.0),
    _spec("EfficientNetB7", "EfficientNet", 600, "none", 64.10, 84.3),
    _spec("EfficientNetV2B0", "EfficientNetV2", 224, "torch", 5.92, 78.7),
    _spec("EfficientNetV2B1", "EfficientNetV2", 240, "torch", 6.93, 79.8),
    _spec("EfficientNetV2B2", "EfficientNetV2", 260, "torch", 8.77, 80.5),
    _spec("EfficientNetV2B3", "EfficientNetV2", 300, "torch", 12.93, 82.0),
    # S/M/L scale to x/128 - 1, which no preprocessing mode matches: they keep their own layer.
    _spec("EfficientNetV2S", "EfficientNetV2", 384, "none", 20.33, 83.9),
    _spec("EfficientNetV2M", "EfficientNetV2", 480, "none", 53.15, 85.3),
    _spec("EfficientNetV2L", "EfficientNetV2", 480, "none", 117.75, 85.7),
    _spec("ResNet50", "ResNet", 224, "caffe", 23.59, 74.9),
    _spec("ResNet101", "ResNet", 224, "caffe", 42.66, 76.4),
    _spec("ResNet152", "ResNet", 224, "caffe", 58.37, 76.6),
    _spec("ResNet50V2", "ResNetV2", 224, "tf", 23.56, 76.0),
    _spec("ResNet101V2", "ResNetV2", 224, "tf", 42.63, 77.2),
    _spec("ResNet152V2", "ResNetV2", 224, "tf", 58.33, 78.0),
    _spec("DenseNet121", "DenseNet", 224, "torch", 7.04, 75.0),
    _spec("DenseNet169", "DenseNet", 224, "torch", 12.64, 76.2),
    _spec("DenseNet201", "DenseNet", 224, "torch", 18.32, 77.3),
    _spec("InceptionV3", "Inception", 299, "tf", 21.80, 77.9, min_size=75),
    _spec("InceptionResNetV2", "Inception", 299, "tf", 54.34, 80.3, min_size=75),
    _spec("Xception", "Xception", 299, "tf", 20.86, 79.0, min_size=71),
    _spec("VGG16", "VGG", 224, "caffe", 14.71, 71.3),
    _spec("VGG19", "VGG", 224, "caffe", 20.02, 71.3),
    _spec("ConvNeXtTiny", "ConvNeXt", 224, "torch", 27.82, None),
    _spec("ConvNeXtSmall", "ConvNeXt", 224, "torch", 49.45, None),
    _spec("ConvNeXtBase", "ConvNeXt", 224, "torch", 87.57, None),
    _spec("ConvNeXtLarge", "ConvNeXt", 224, "torch", 196.23, None),
    _spec("ConvNeXtXLarge", "ConvNeXt", 224, "torch", 348.15, None),
    _spec("NASNetMobile", "NASNet", 224, "tf", 4.27, 74.4, imagenet_size_fixed=True),
    _spec("NASNetLarge", "NASNet", 331, "tf", 84.89, 82.5, imagenet_size_fixed=True),
)
_BY_NAME = {spec.name: spec for spec in _SPECS}


def backbone_specs() -> list[BackboneSpec]:
    return list(_SPECS)


def get_spec(name: str) -> BackboneSpec:
    """The spec of backbone ``name``.

    Raises:
        ValueError: unknown name; the message lists the allowed ones.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise ValueError(
            f"`model.backbone` must be one of {', '.join(_BY_NAME)}. Received: model.backbone={name!r}"
        ) from None


def check_image_size(name: str, image_size: int, weights: str) -> None:
    """Checks that backbone ``name`` can take ``image_size`` inputs with ``weights``.

    Raises:
        ValueError: naming `data.image_size`, the value received and what is allowed.
    """
    spec = get_spec(name)
    if isinstance(image_size, bool) or not isinstance(image_size, int):
        raise ValueError(f"`data.image_size` must be an integer. Received: data.image_size={image_size!r}")
    if image_size < spec.min_size:
        raise ValueError(
            f"`data.image_size` must be >= {spec.min_size} for `model.backbone` {name!r}. "
            f"Received: data.image_size={image_size}"
        )
    if weights == "imagenet":
        if not spec.has_imagenet:
            raise ValueError(
                f"`model.weights` must be \"none\" or a weights file for `model.backbone` "
                f"{name!r}: it has no ImageNet weights. Received: model.weights=\"imagenet\""
            )
        if spec.imagenet_size_fixed and image_size != spec.default_size:
            raise ValueError(
                f"`data.image_size` must be {spec.default_size} for `model.backbone` {name!r} "
                f"with `model.weights` \"imagenet\" (Keras's NASNet ImageNet weights are only "
                f"for that size). Received: data.image_size={image_size}. Use "
                f"{spec.default_size}, another backbone, or `model.weights` \"none\"."
            )
