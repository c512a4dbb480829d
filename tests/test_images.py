"""Still photos: orientation, transparency and luminance of ``colorize_image``."""

from __future__ import annotations

import numpy as np
from PIL import Image

from deoldify_video.images import colorize_image, read_image

from .conftest import DATA

PHOTO = DATA / "photos-bw" / "camera.jpg"


def luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def test_exif_orientation_is_applied(tmp_path, tiny_colorizer):
    """A camera JPEG stored sideways with EXIF orientation 6 comes out upright."""
    upright = Image.open(PHOTO).convert("L").crop((0, 0, 384, 288))  # landscape
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the camera wrote: portrait
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    source = tmp_path / "sideways.jpg"
    stored.save(source, exif=exif, quality=95)
    rgb, alpha = read_image(source)
    assert rgb.shape == (288, 384, 3) and alpha is None
    out = tmp_path / "out.png"
    colorize_image(source, out, tiny_colorizer)
    result = np.asarray(Image.open(out).convert("RGB"))
    assert result.shape == (288, 384, 3)
    # the random test model's strong colours clip, so compare the picture, not exact levels
    expected = np.asarray(upright, dtype=np.float64)
    assert np.corrcoef(luma(result).ravel(), expected.ravel())[0, 1] > 0.9
    assert np.corrcoef(luma(result)[::-1, ::-1].ravel(), expected.ravel())[0, 1] < 0.5


def test_transparency_is_kept_where_the_format_holds_it(tmp_path, tiny_colorizer):
    grey = np.asarray(Image.open(PHOTO).convert("L"))
    alpha = np.zeros_like(grey)
    alpha[80:300, 40:230] = 255
    alpha[150:190] = 128
    source = tmp_path / "cutout.png"
    Image.fromarray(np.dstack([grey, alpha]), "LA").save(source)
    png = colorize_image(source, tmp_path / "out.png", tiny_colorizer)
    with Image.open(png) as img:
        assert img.mode == "RGBA"
        assert np.array_equal(np.asarray(img)[..., 3], alpha)
    jpeg = colorize_image(source, tmp_path / "out.jpg", tiny_colorizer)
    with Image.open(jpeg) as img:
        assert img.mode == "RGB" and img.size == (grey.shape[1], grey.shape[0])
