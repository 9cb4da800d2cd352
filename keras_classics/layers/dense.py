"""Dense block and transition (Huang et al., "Densely Connected Convolutional Networks", CVPR 2017).

Layer names follow keras.applications' DenseNet (``conv2_block1_0_bn``, ``pool2_conv``, ...),
so Keras' published DenseNet weights load into models built from these blocks.
"""
import keras

from .norm import normalize


def dense_layer(x, growth_rate, name, bottleneck=True, bn_size=4, dropout=0.0, norm="batch",
                epsilon=1.001e-5):
    """One composite layer H_l: norm-ReLU-[1×1 conv to ``bn_size·k``, norm-ReLU]-3×3 conv to k,
    concatenated to its input. ``bottleneck`` is DenseNet-B. Dropout (the paper's 0.2 on
    CIFAR without augmentation) follows each conv."""
    y = normalize(x, norm, f"{name}_0", epsilon=epsilon)
    y = keras.layers.Activation("relu", name=f"{name}_0_relu")(y)
    if bottleneck:
        y = keras.layers.Conv2D(bn_size * growth_rate, 1, use_bias=norm is None,
                                name=f"{name}_1_conv")(y)
        if dropout:
            y = keras.layers.Dropout(dropout, name=f"{name}_1_dropout")(y)
        y = normalize(y, norm, f"{name}_1", epsilon=epsilon)
        y = keras.layers.Activation("relu", name=f"{name}_1_relu")(y)
    y = keras.layers.Conv2D(growth_rate, 3, padding="same", use_bias=norm is None,
                            name=f"{name}_2_conv")(y)
    if dropout:
        y = keras.layers.Dropout(dropout, name=f"{name}_2_dropout")(y)
    return keras.layers.Concatenate(axis=-1, name=f"{name}_concat")([x, y])


def dense_block(x, num_layers, growth_rate, name, **kwargs):
    """``num_layers`` dense layers named ``{name}_block{i}`` (i from 1); kwargs go to
    :func:`dense_layer`."""
    for i in range(num_layers):
        x = dense_layer(x, growth_rate, name=f"{name}_block{i + 1}", **kwargs)
    return x


def transition_block(x, name, compression=0.5, norm="batch", epsilon=1.001e-5, dropout=0.0):
    """norm-ReLU-1×1 conv to ``floor(θ·C)`` channels-2×2 average pool. θ<1 is DenseNet-C."""
    if not 0 < compression <= 1:
        raise ValueError(f"transition_block: compression must be in (0, 1], got {compression}")
    x = normalize(x, norm, name, epsilon=epsilon)
    x = keras.layers.Activation("relu", name=f"{name}_relu")(x)
    x = keras.layers.Conv2D(int(x.shape[-1] * compression), 1, use_bias=norm is None,
                            name=f"{name}_conv")(x)
    if dropout:
        x = keras.layers.Dropout(dropout, name=f"{name}_dropout")(x)
    return keras.layers.AveragePooling2D(2, strides=2, name=f"{name}_pool")(x)
