"""Where Keras keeps each backbone's ImageNet weights: file names, URLs and hashes.

Copied from the ``include_top=False`` branches of ``keras/src/applications/*.py``
(Keras 3.15) and checked against them by ``tests/test_weights.py``. Keras stores a file
under the last part of its URL, except NASNet (``cache_name``). MobileNet V1/V2 have
one file per input size (``{rows}``); every other family one file for all sizes.
"""

from __future__ import annotations

from typing import NamedTuple

_TF = "https://storage.googleapis.com/tensorflow/keras-applications/"
_V1 = "https://storage.googleapis.com/keras-applications/"


class ImagenetFile(NamedTuple):
    url: str
    file_hash: str | None  # md5 (32 hex digits) or sha256 (64); None: Keras checks none
    cache_name: str | None = None


IMAGENET_FILES: dict[str, ImagenetFile] = {
    "MobileNet": ImagenetFile(_TF + "mobilenet/mobilenet_1_0_{rows}_tf_no_top.h5",
        None),
    "MobileNetV2": ImagenetFile(_TF + "mobilenet_v2/mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_{rows}_no_top.h5",
        None),
    "MobileNetV3Small": ImagenetFile(_TF + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
        "d3e8ec802a04aa4fc771ee12a9a9b836"),
    "MobileNetV3Large": ImagenetFile(_TF + "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
        "07fb09a5933dd0c8eaafa16978110389"),
    "EfficientNetB0": ImagenetFile(_V1 + "efficientnetb0_notop.h5",
        "50bc09e76180e00e4465e1a485ddc09d"),
    "EfficientNetB1": ImagenetFile(_V1 + "efficientnetb1_notop.h5",
        "74c4e6b3e1f6a1eea24c589628592432"),
    "EfficientNetB2": ImagenetFile(_V1 + "efficientnetb2_notop.h5",
        "111f8e2ac8aa800a7a99e3239f7bfb39"),
    "EfficientNetB3": ImagenetFile(_V1 + "efficientnetb3_notop.h5",
        "af6d107764bb5b1abb91932881670226"),
    "EfficientNetB4": ImagenetFile(_V1 + "efficientnetb4_notop.h5",
        "ebc24e6d6c33eaebbd558eafbeedf1ba"),
    "EfficientNetB5": ImagenetFile(_V1 + "efficientnetb5_notop.h5",
        "38879255a25d3c92d5e44e04ae6cec6f"),
    "EfficientNetB6": ImagenetFile(_V1 + "efficientnetb6_notop.h5",
        "9ecce42647a20130c1f39a5d4cb75743"),
    "EfficientNetB7": ImagenetFile(_V1 + "efficientnetb7_notop.h5",
        "cbcfe4450ddf6f3ad90b1b398090fe4a"),
    "EfficientNetV2B0": ImagenetFile(_TF + "efficientnet_v2/efficientnetv2-b0_notop.h5",
        "893217f2bb855e2983157299931e43ff"),
    "EfficientNetV2B1": ImagenetFile(_TF + "efficientnet_v2/efficientnetv2-b1_notop.h5",
        "0e80663031ca32d657f9caa404b6ec37"),
    "EfficientNetV2B2": ImagenetFile(_TF + "efficientnet_v2/efficientnetv2-b2_notop.h5",
        "1dfe2e7a5d45b6632553a8961ea609eb"),
    "EfficientNetV2B3": ImagenetFile(_TF + "efficientnet_v2/efficientnetv2-b3_notop.h5",
        "f6abf7b5849ac99a89b50dd3fd532856"),
    "EfficientNetV2S": ImagenetFile(_TF + "efficientnet_v2/efficientnetv2-s_notop.h5",
        "af0682fb74e8c54910f2d4393339c070"),
    "EfficientNetV2M": ImagenetFile(_TF + "efficientnet_v2/efficientnetv2-m_notop.h5",
        "1b8dc055df72dde80d614482840fe342"),
    "EfficientNetV2L": ImagenetFile(_TF + "efficientnet_v2/efficientnetv2-l_notop.h5",
        "b0b66b5c863aef5b46e8608fe1711615"),
    "ResNet50": ImagenetFile(_TF + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "4d473c1dd8becc155b73f8504c6f6626"),
    "ResNet101": ImagenetFile(_TF + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "88cf7a10940856eca736dc7b7e228a21"),
    "ResNet152": ImagenetFile(_TF + "resnet/resnet152_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "ee4c566cf9a93f14d82f913c2dc6dd0c"),
    "ResNet50V2": ImagenetFile(_TF + "resnet/resnet50v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "fac2f116257151a9d068a22e544a4917"),
    "ResNet101V2": ImagenetFile(_TF + "resnet/resnet101v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "c0ed64b8031c3730f411d2eb4eea35b5"),
    "ResNet152V2": ImagenetFile(_TF + "resnet/resnet152v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "ed17cf2e0169df9d443503ef94b23b33"),
    "DenseNet121": ImagenetFile(_TF + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "30ee3e1110167f948a6b9946edeeb738"),
    "DenseNet169": ImagenetFile(_TF + "densenet/densenet169_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "b8c4d4c20dd625c148057b9ff1c1176b"),
    "DenseNet201": ImagenetFile(_TF + "densenet/densenet201_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "c13680b51ded0fb44dff2d8f86ac8bb1"),
    "InceptionV3": ImagenetFile(_TF + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "bcbd6486424b2319ff4ef7d526e38f63"),
    "InceptionResNetV2": ImagenetFile(_TF + "inception_resnet_v2/inception_resnet_v2_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "d19885ff4a710c122648d3b5c3b684e4"),
    "Xception": ImagenetFile(_TF + "xception/xception_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "b0042744bf5b25fce3cb969f33bebb97"),
    "VGG16": ImagenetFile(_TF + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "6d6bbae143d832006294945121d1f1fc"),
    "VGG19": ImagenetFile(_TF + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5",
        "253f8cb515780f3b799900260a226db6"),
    "ConvNeXtTiny": ImagenetFile(_TF + "convnext/convnext_tiny_notop.h5",
        "d547c096cabd03329d7be5562c5e14798aa39ed24b474157cef5e85ab9e49ef1"),
    "ConvNeXtSmall": ImagenetFile(_TF + "convnext/convnext_small_notop.h5",
        "6fc8009faa2f00c1c1dfce59feea9b0745eb260a7dd11bee65c8e20843da6eab"),
    "ConvNeXtBase": ImagenetFile(_TF + "convnext/convnext_base_notop.h5",
        "40a20c5548a5e9202f69735ecc06c990e6b7c9d2de39f0361e27baeb24cb7c45"),
    "ConvNeXtLarge": ImagenetFile(_TF + "convnext/convnext_large_notop.h5",
        "96f02b6f0753d4f543261bc9d09bed650f24dd6bc02ddde3066135b63d23a1cd"),
    "ConvNeXtXLarge": ImagenetFile(_TF + "convnext/convnext_xlarge_notop.h5",
        "de3f8a54174130e0cecdc71583354753d557fcf1f4487331558e2a16ba0cfe05"),
    "NASNetMobile": ImagenetFile(_TF + "nasnet/NASNet-mobile-no-top.h5",
        "1ed92395b5b598bdda52abe5c0dbfd63", cache_name="nasnet_mobile_no_top.h5"),
    "NASNetLarge": ImagenetFile(_TF + "nasnet/NASNet-large-no-top.h5",
        "d81d89dc07e6e56530c4e77faddd61b5", cache_name="nasnet_large_no_top.h5"),
}
