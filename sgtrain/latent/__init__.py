"""sgtrain.latent: what people do with a trained generator.

Sampling with the truncation trick, style mixing, interpolation videos, projection of images into W / W+,
blending latents layer by layer, and closed-form latent directions (SeFa). Every function takes a generator with
NVlabs' interface (``G.mapping``, ``G.synthesis``, ``z_dim``, ``c_dim``, ``w_dim``, ``num_ws``, ``img_resolution``),
e.g. ``sgtrain.latent.load_generator(path)``; the ``sgtrain-*`` console scripts are thin wrappers around them.
z-only generators (ProGAN, DCGAN: ``G(z, c)``) get seed images and z interpolation; the W tools refuse them with a
message naming the family (:func:`sgtrain.latent.studio.require_w`).
"""

from sgtrain.latent.blend import blend_ws, load_sources, mean_ws, parse_layer_spec
from sgtrain.latent.common import (
    load_generator,
    load_ws,
    make_grid,
    make_labels,
    parse_grid,
    parse_range,
    resolve_device,
    save_image,
    save_ws,
    seeds_to_ws,
    seeds_to_z,
    synthesize,
    to_uint8,
)
from sgtrain.latent.directions import Direction, direction_sweep, load_directions, save_directions, sefa
from sgtrain.latent.generate import generate_images, render_ws
from sgtrain.latent.interpolate import (
    VideoWriter,
    interpolate_keyframes,
    interpolation_video,
    latent_path,
    lerp,
    slerp,
    z_path,
)
from sgtrain.latent.mixing import mix_ws, style_layers, style_mixing_grid
from sgtrain.latent.project import VGG16Features, load_target, load_vgg16, project, psnr

__all__ = [
    "blend_ws", "load_sources", "mean_ws", "parse_layer_spec",
    "load_generator", "load_ws", "make_grid", "make_labels", "parse_grid", "parse_range", "resolve_device",
    "save_image", "save_ws", "seeds_to_ws", "seeds_to_z", "synthesize", "to_uint8",
    "Direction", "direction_sweep", "load_directions", "save_directions", "sefa",
    "generate_images", "render_ws",
    "VideoWriter", "interpolate_keyframes", "interpolation_video", "latent_path", "lerp", "slerp", "z_path",
    "mix_ws", "style_layers", "style_mixing_grid",
    "VGG16Features", "load_target", "load_vgg16", "project", "psnr",
]
