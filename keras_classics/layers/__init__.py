"""Shared building blocks of the keras_classics zoo."""
from .dense import dense_block, dense_layer, transition_block
from .inception_v1 import inception_v1_module
from .lrn import LocalResponseNormalization
from .pooling import CeilMaxPooling2D
from .norm import NORMS, BatchNormalization, check_norm, conv_norm_act, normalize, padded_conv
from .residual import basic_block, bottleneck_block
from .se import SqueezeExcite

__all__ = [
    "BatchNormalization", "LocalResponseNormalization", "SqueezeExcite", "CeilMaxPooling2D",
    "NORMS", "check_norm", "normalize", "padded_conv",
    "conv_norm_act", "dense_layer", "dense_block", "transition_block", "inception_v1_module",
    "basic_block", "bottleneck_block",
]
