"""Image IO: conversions to RGB, clear errors naming the file, atomic PNG writes, folder listing."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from suite.data.io import list_images, read_image, write_png


def _rgb(h: int = 6, w: int = 5, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def test_png_round_trip_and_same_bytes(tmp_path):
    img = _rgb()
    a, b = write_png(tmp_path / "a.png", img), write_png(tmp_path / "sub" / "b.png", img)
    np.testing.assert_array_equal(read_image(a), img)
    assert a.read_bytes() == b.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.png", "sub"]  # no temp file left behind


def test_write_png_overwrites_atomically_and_refuses_bad_arrays(tmp_path):
    target = tmp_path / "x.png"
    write_png(target, _rgb(seed=1))
    write_png(target, _rgb(seed=2))
    np.testing.assert_array_equal(read_image(target), _rgb(seed=2))
    with pytest.raises(ValueError, match="x.png.*uint8"):
        write_png(target, _rgb().astype(np.float32))
    np.testing.assert_array_equal(read_image(target), _rgb(seed=2))  # the old file is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_rgba_and_grey_become_rgb(tmp_path):
    rgb = _rgb()
    rgba = np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 7, np.uint8)], axis=2)
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgba.png"), rgb)

    grey = rgb[:, :, 0]
    Image.fromarray(grey, mode="L").save(tmp_path / "grey.png")
    out = read_image(tmp_path / "grey.png")
    assert out.shape == (6, 5, 3)
    np.testing.assert_array_equal(out, np.repeat(grey[:, :, None], 3, axis=2))

    Image.fromarray(rgb).convert("P").save(tmp_path / "palette.png")
    assert read_image(tmp_path / "palette.png").shape == (6, 5, 3)

    wide = grey.astype(np.uint16) * 257
    Image.fromarray(wide).save(tmp_path / "grey16.png")
    np.testing.assert_array_equal(read_image(tmp_path / "grey16.png")[:, :, 1], grey)


def test_truncated_png_error_names_the_file(tmp_path):
    good = write_png(tmp_path / "good.png", _rgb(64, 64))
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(ValueError, match=r"cannot read image .*broken\.png"):
        read_image(broken)


def test_non_image_and_missing_files(tmp_path):
    fake = tmp_path / "notes.png"
    fake.write_text("this is not a picture")
    with pytest.raises(ValueError, match=r"notes\.png"):
        read_image(fake)
    with pytest.raises(FileNotFoundError, match=r"absent\.png"):
        read_image(tmp_path / "absent.png")


def test_list_images_skips_other_files_and_names_empty_folders(tmp_path):
    write_png(tmp_path / "b.png", _rgb())
    write_png(tmp_path / "a.png", _rgb())
    (tmp_path / "README.txt").write_text("not an image")
    (tmp_path / ".a.png.123.tmp").write_text("a temp file of an interrupted write")
    (tmp_path / "sub").mkdir()
    assert [p.name for p in list_images(tmp_path)] == ["a.png", "b.png"]

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="no image files.*empty"):
        list_images(empty)
    with pytest.raises(FileNotFoundError, match="not found.*missing"):
        list_images(tmp_path / "missing")


def test_a_path_that_is_there_but_not_what_was_expected_is_named_with_what_it_is(tmp_path):
    import re

    write_png(tmp_path / "a.png", np.zeros((4, 4, 3), np.uint8))
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "dangling").symlink_to(tmp_path / "gone")
    with pytest.raises(
        FileNotFoundError, match=rf"^image folder {re.escape(str(tmp_path / 'a.png'))} is a file, not a"
    ):
        list_images(tmp_path / "a.png")
    with pytest.raises(FileNotFoundError, match=r"^image file .*folder\.png is a folder, not a file$"):
        read_image(tmp_path / "folder.png")
    with pytest.raises(
        FileNotFoundError, match=rf"dangling is a symlink to {re.escape(str(tmp_path / 'gone'))}, which does not exist"
    ):
        list_images(tmp_path / "dangling")


def _write_16bit_png(path, wide: np.ndarray) -> None:
    import cv2  # Pillow cannot write 16-bit colour PNGs

    assert cv2.imwrite(str(path), wide[:, :, ::-1] if wide.ndim == 3 else wide)


def test_16bit_rgb_and_16bit_grey_are_rounded_the_same_way(tmp_path):
    # values whose low byte matters: truncation (v >> 8) and rounding (round(v / 257)) disagree
    wide = np.array([[129, 383, 65535, 0, 32896, 32767]], dtype=np.uint16).repeat(3, axis=0)
    expected = np.floor(wide / 257.0 + 0.5).astype(np.uint8)
    assert not np.array_equal(expected, (wide >> 8).astype(np.uint8))
    _write_16bit_png(tmp_path / "grey16.png", wide)
    _write_16bit_png(tmp_path / "rgb16.png", np.stack([wide, wide[:, ::-1], wide], axis=2))
    grey = read_image(tmp_path / "grey16.png")
    rgb = read_image(tmp_path / "rgb16.png")
    np.testing.assert_array_equal(grey, np.repeat(expected[:, :, None], 3, axis=2))
    np.testing.assert_array_equal(rgb, np.stack([expected, expected[:, ::-1], expected], axis=2))
    # 16-bit RGBA: alpha dropped, colour rounded the same way
    rgba = np.stack([wide, wide, wide, np.full_like(wide, 1000)], axis=2)
    import cv2

    cv2.imwrite(str(tmp_path / "rgba16.png"), rgba[:, :, [2, 1, 0, 3]])
    np.testing.assert_array_equal(read_image(tmp_path / "rgba16.png"), np.repeat(expected[:, :, None], 3, axis=2))


def test_decompression_bomb_is_an_error_naming_the_file(tmp_path, monkeypatch):
    write_png(tmp_path / "huge.png", _rgb(64, 64))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 64*64 > 2 * 100: Pillow's bomb error
    with pytest.raises(ValueError, match=r"cannot read image .*huge\.png"):
        read_image(tmp_path / "huge.png")
    from suite.data.datasets import image_size

    with pytest.raises(ValueError, match=r"cannot read image .*huge\.png"):
        image_size(tmp_path / "huge.png")


def test_image_to_tensor_and_back():
    import torch

    from suite.data.tensors import image_to_tensor, tensor_to_image

    img = _rgb(4, 7)
    x = image_to_tensor(img)
    assert x.shape == (3, 4, 7) and x.dtype == torch.float32
    assert float(x[1, 2, 3]) == np.float32(img[2, 3, 1]) / np.float32(255)
    assert image_to_tensor(img, torch.float64)[0, 0, 0].item() == img[0, 0, 0] / 255.0
    np.testing.assert_array_equal(tensor_to_image(x), img)
    # Out-of-range values clamp; values between pixel levels round to the nearest.
    between = torch.tensor([-0.5, 0.201, 0.203, 1.5]).view(1, 1, 4).expand(3, 1, 4)
    assert tensor_to_image(between)[0, :, 0].tolist() == [0, 51, 52, 255]
    for bad in (img.astype(np.float32), img[..., :2], img[0]):
        with pytest.raises(ValueError, match=r"uint8 \(H, W, 3\)"):
            image_to_tensor(bad)
