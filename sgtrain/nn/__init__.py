"""Building blocks shared by the models: equalized-lr layers, modulated convolution, minibatch stddev."""

from sgtrain.nn.layers import Conv2dLayer, FullyConnectedLayer, normalize_2nd_moment
from sgtrain.nn.mbstd import MinibatchStdLayer
from sgtrain.nn.misc import assert_shape
from sgtrain.nn.modconv import modulated_conv2d

__all__ = [
    "Conv2dLayer",
    "FullyConnectedLayer",
    "MinibatchStdLayer",
    "assert_shape",
    "modulated_conv2d",
    "normalize_2nd_moment",
]
