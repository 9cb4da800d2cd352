"""GoogLeNet's Inception module, "v1" (Szegedy et al., "Going Deeper with Convolutions", CVPR
2015, Fig. 2); later Inceptions (v2-v4) factorize its branches differently."""
import keras

from .norm import conv_norm_act


def inception_v1_module(x, filters, name, naive=False, norm=None, use_bias=True,
                        five_kernel=5, epsilon=1e-3):
    """Four parallel branches concatenated on channels.

    ``filters`` is a row of the paper's Table 1: ``(#1×1, #3×3 reduce, #3×3, #5×5 reduce,
    #5×5, pool proj)``. With ``naive=True`` it is Fig. 2(a): 1×1, 3×3 and 5×5 convolutions
    straight on the input plus a 3×3 max pool, no 1×1 reductions or projection (the two
    ``reduce`` entries and ``pool proj`` are ignored): the lecture's 854 M-op example.
    ``five_kernel=3`` reproduces torchvision's GoogLeNet, whose "5×5" branch is a 3×3 conv.
    Layers are named ``{name}_1x1``, ``{name}_3x3_reduce``, ``{name}_3x3``, ``{name}_5x5_reduce``,
    ``{name}_5x5``, ``{name}_pool``, ``{name}_pool_proj``, ``{name}_output`` (Caffe's names).
    """
    if len(filters) != 6:
        raise ValueError(
            f"inception_v1_module {name}: filters must be the 6 numbers (1x1, 3x3 reduce, 3x3, "
            f"5x5 reduce, 5x5, pool proj), got {filters!r}"
        )
    n1, n3r, n3, n5r, n5, npool = filters

    def conv(t, f, k, suffix):
        return conv_norm_act(t, f, k, name=f"{name}_{suffix}", norm=norm, use_bias=use_bias,
                             epsilon=epsilon)

    b1 = conv(x, n1, 1, "1x1")
    b3 = x if naive else conv(x, n3r, 1, "3x3_reduce")
    b3 = conv(b3, n3, 3, "3x3")
    b5 = x if naive else conv(x, n5r, 1, "5x5_reduce")
    b5 = conv(b5, n5, five_kernel, "5x5")
    bp = keras.layers.MaxPooling2D(3, strides=1, padding="same", name=f"{name}_pool")(x)
    if not naive:
        bp = conv(bp, npool, 1, "pool_proj")
    return keras.layers.Concatenate(axis=-1, name=f"{name}_output")([b1, b3, b5, bp])
