"""Chen et al. 2019's training augmentation for RGB images, as pure JAX functions of a key.

Chen et al.'s code (``data/datamgr.py``, ``TransformLoader.get_composed_transform(aug=True)``)
composes ``RandomSizedCrop(image_size)``, ``ImageJitter(Brightness=0.4, Contrast=0.4,
Color=0.4)``, ``RandomHorizontalFlip()``, ``ToTensor()`` and ``Normalize(ImageNet mean/std)``.
Here, for one ``float32[H, W, 3]`` image in ``[0, 1]``:

* ``random_resized_crop``: torchvision's ``RandomResizedCrop.get_params`` (scale
  ``U(0.08, 1)`` of the area, log-uniform aspect ratio in ``[3/4, 4/3]``, integer sizes,
  10 tries, then the central crop fallback), resized back to ``H x W`` bilinearly
  (half-pixel centres; torchvision resizes PIL images with PIL's bilinear filter, which
  antialiases when it shrinks: crops are never larger than the image, so it only
  enlarges and the two agree up to rounding);
* ``image_jitter``: Chen et al.'s ``ImageJitter``: for each of Brightness, Contrast, Color
  in that order a factor ``r = 1 + 0.4 (2u - 1)``, applied as PIL's ``ImageEnhance``
  blends (``degenerate + r (img - degenerate)`` with black, the mean grey level, the
  per-pixel grey image; grey = ITU-R 601 luma as PIL's ``convert("L")``), clipped to
  ``[0, 1]`` after each; PIL rounds to uint8 after each step, this does not;
* ``horizontal_flip`` with probability 1/2.

``Normalize`` is left out: metabench images are ``[0, 1]`` for every learner, and the
Conv-4's first batch norm removes a per-channel affine change of its input up to the
convolution's zero padding. Every draw comes from the explicit key; the functions jit
and vmap.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from metabench.tasks import PRNGKey

#: Chen et al.'s ``jitter_param`` (Brightness, Contrast, Color), applied in this order.
JITTER = (0.4, 0.4, 0.4)
#: torchvision ``RandomResizedCrop`` defaults.
SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
_LUMA = np.array([0.299, 0.587, 0.114], np.float32)  # numpy: no device array at import


def crop_box(key: PRNGKey, h: int, w: int, tries: int = 10) -> jax.Array:
    """int32[4] ``(top, left, height, width)`` as torchvision's ``RandomResizedCrop.get_params``."""
    k_area, k_ratio, k_top, k_left = jax.random.split(key, 4)
    area = h * w * jax.random.uniform(k_area, (tries,), minval=SCALE[0], maxval=SCALE[1])
    ratio = jnp.exp(jax.random.uniform(k_ratio, (tries,), minval=math.log(RATIO[0]), maxval=math.log(RATIO[1])))
    cw = jnp.round(jnp.sqrt(area * ratio)).astype(jnp.int32)
    ch = jnp.round(jnp.sqrt(area / ratio)).astype(jnp.int32)
    ok = (cw > 0) & (cw <= w) & (ch > 0) & (ch <= h)
    first = jnp.argmax(ok)
    # the central fallback for a square or in-range aspect ratio is the whole image
    in_ratio = w / h
    if in_ratio < RATIO[0]:
        fw, fh = w, int(round(w / RATIO[0]))
    elif in_ratio > RATIO[1]:
        fw, fh = int(round(h * RATIO[1])), h
    else:
        fw, fh = w, h
    any_ok = jnp.any(ok)
    ch_ = jnp.where(any_ok, ch[first], fh)
    cw_ = jnp.where(any_ok, cw[first], fw)
    top = jnp.where(any_ok, jax.random.randint(k_top, (), 0, h - ch_ + 1), (h - fh) // 2)
    left = jnp.where(any_ok, jax.random.randint(k_left, (), 0, w - cw_ + 1), (w - fw) // 2)
    return jnp.stack([top, left, ch_, cw_]).astype(jnp.int32)


def resized_crop(img: jax.Array, box: jax.Array) -> jax.Array:
    """``img`` float32[H, W, C] cropped to ``box`` (top, left, height, width), resized to H x W bilinearly."""
    h, w = img.shape[0], img.shape[1]
    top, left, ch, cw = (box[i].astype(jnp.float32) for i in range(4))
    ys = top + (jnp.arange(h, dtype=jnp.float32) + 0.5) * ch / h - 0.5
    xs = left + (jnp.arange(w, dtype=jnp.float32) + 0.5) * cw / w - 0.5
    ys = jnp.clip(ys, top, top + ch - 1)
    xs = jnp.clip(xs, left, left + cw - 1)
    y0 = jnp.floor(ys).astype(jnp.int32)
    x0 = jnp.floor(xs).astype(jnp.int32)
    wy = (ys - y0)[:, None, None]
    wx = (xs - x0)[None, :, None]
    y1 = jnp.minimum(y0 + 1, h - 1)
    x1 = jnp.minimum(x0 + 1, w - 1)
    rows0, rows1 = img[y0], img[y1]  # [H, W, C]
    top_ = rows0[:, x0] * (1 - wx) + rows0[:, x1] * wx
    bot_ = rows1[:, x0] * (1 - wx) + rows1[:, x1] * wx
    return top_ * (1 - wy) + bot_ * wy


def random_resized_crop(key: PRNGKey, img: jax.Array) -> jax.Array:
    """torchvision ``RandomResizedCrop(H)`` of one float32[H, W, C] image (module docstring)."""
    return resized_crop(img, crop_box(key, img.shape[0], img.shape[1]))


def image_jitter(key: PRNGKey, img: jax.Array, alphas: tuple[float, float, float] = JITTER) -> jax.Array:
    """Chen et al.'s ``ImageJitter`` (Brightness, Contrast, Color) of one float32[H, W, 3] image."""
    r = 1.0 + jnp.asarray(alphas, jnp.float32) * (2.0 * jax.random.uniform(key, (3,)) - 1.0)
    out = jnp.clip(img * r[0], 0.0, 1.0)  # Brightness: blend with black
    mean = jnp.mean(out @ _LUMA)
    out = jnp.clip(mean + r[1] * (out - mean), 0.0, 1.0)  # Contrast: blend with the mean grey level
    grey = (out @ _LUMA)[..., None]
    return jnp.clip(grey + r[2] * (out - grey), 0.0, 1.0)  # Color: blend with the grey image


def horizontal_flip(key: PRNGKey, img: jax.Array) -> jax.Array:
    """``img`` mirrored left-right with probability 1/2."""
    return jnp.where(jax.random.bernoulli(key), img[:, ::-1], img)


def chen_augment(key: PRNGKey, img: jax.Array) -> jax.Array:
    """Crop, jitter, flip (Chen et al.'s order) of one float32[H, W, 3] image in [0, 1]."""
    k_crop, k_jit, k_flip = jax.random.split(key, 3)
    return horizontal_flip(k_flip, image_jitter(k_jit, random_resized_crop(k_crop, img)))


def augment_batch(key: PRNGKey, x: jax.Array) -> jax.Array:
    """``chen_augment`` of every image of float32[B, H, W, 3], one key each."""
    return jax.vmap(chen_augment)(jax.random.split(key, x.shape[0]), x)
