import io

import numpy as np
import pytest
import torch
from PIL import Image as PILImage

from inference import detector
from inference.detector import Detections
from inference.pipeline import (
    EXIF_ORIENTATION, _finish_decoding, _read, clean_detections, decode_to_tensor, gpu_decodable_jpeg, predict_stream,
)
from review.demo_images import generate_scene


@pytest.fixture(scope="module")
def tiny_detector():
    torch.manual_seed(0)
    return detector.Detector(detector.build_model("ssdlite320_mobilenet_v3_large", 3), score_threshold=0.0)


def test_stream_keeps_order_and_reports_unreadable_images(tiny_detector):
    items = [(i, (lambda i=i: generate_scene(i, width=96, height=64).png_bytes())) for i in range(7)]
    items.insert(3, (99, lambda: b"not an image"))
    batches = list(predict_stream(items, tiny_detector, batch_size=3))
    assert [len(b) for b in batches] == [3, 3, 2]
    results = [r for batch in batches for r in batch]
    assert [r.key for r in results] == [0, 1, 2, 99, 3, 4, 5, 6]
    bad = results[3]
    assert bad.detections is None and "Could not read the image" in bad.error
    good = [r for r in results if r.key != 99]
    assert all((r.width, r.height) == (96, 64) and r.detections is not None for r in good)


def test_stopping_the_stream_early_is_clean(tiny_detector):
    items = [(i, (lambda i=i: generate_scene(i, width=64, height=64).png_bytes())) for i in range(50)]
    stream = predict_stream(items, tiny_detector, batch_size=4)
    assert len(next(stream)) == 4
    stream.close()  # what a cancelled run does


def test_clean_detections_clips_and_drops_degenerate_boxes():
    d = Detections(
        boxes_xyxy=np.array([[-5, -5, 20, 20], [50, 10, 50, 30], [10, 10, 30, np.nan], [90, 90, 120, 120]], np.float32),
        labels=np.array([1, 2, 3, 1]), scores=np.array([0.9, 0.8, 0.7, 0.6], np.float32))
    cleaned = clean_detections(d, width=100, height=100)
    assert cleaned.boxes_xyxy.tolist() == [[0, 0, 20, 20], [90, 90, 100, 100]]
    assert cleaned.labels.tolist() == [1, 1]


def _jpeg(image, *, orientation: int | None = None, mode: str = "RGB", **save) -> bytes:
    out = io.BytesIO()
    exif = PILImage.Exif()
    if orientation is not None:
        exif[EXIF_ORIENTATION] = orientation
    image.convert(mode).save(out, format="JPEG", quality=90, exif=exif.tobytes() if orientation else b"", **save)
    return out.getvalue()


def test_only_plain_upright_jpegs_go_to_the_gpu():
    scene = generate_scene(1, width=80, height=60).image
    assert gpu_decodable_jpeg(_jpeg(scene))
    assert gpu_decodable_jpeg(_jpeg(scene, mode="L"))
    assert gpu_decodable_jpeg(_jpeg(scene, orientation=1))
    assert not gpu_decodable_jpeg(_jpeg(scene, orientation=6))  # nvjpeg would not rotate it
    assert not gpu_decodable_jpeg(_jpeg(scene, mode="CMYK"))  # \xff\xd8 but four channels
    assert not gpu_decodable_jpeg(generate_scene(1, width=80, height=60).png_bytes())
    assert not gpu_decodable_jpeg(b"not an image")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="nvjpeg decoding needs a CUDA GPU")
def test_gpu_decoding_gives_what_pillow_gives():
    torch.manual_seed(0)
    gpu_detector = detector.Detector(detector.build_model("ssdlite320_mobilenet_v3_large", 3), score_threshold=0.0)
    scene = generate_scene(2, width=96, height=64).image
    files = {
        1: _jpeg(scene), 2: _jpeg(scene, mode="L"), 3: _jpeg(scene, orientation=6), 4: _jpeg(scene, mode="CMYK"),
        5: _jpeg(scene, progressive=True), 6: _jpeg(scene)[:400], 7: generate_scene(3, width=96, height=64).png_bytes(),
    }
    items = [(key, (lambda data=data: data)) for key, data in files.items()]
    on_gpu = {r.key: r for batch in predict_stream(items, gpu_detector, batch_size=4) for r in batch}
    on_cpu = {r.key: r for batch in predict_stream(items, gpu_detector, batch_size=4, gpu_decode=False) for r in batch}
    for key in files:
        assert (on_gpu[key].width, on_gpu[key].height) == (on_cpu[key].width, on_cpu[key].height), key
        assert (on_gpu[key].detections is None) == (on_cpu[key].detections is None), key
    assert (on_gpu[3].width, on_gpu[3].height) == (64, 96)  # rotated by its EXIF orientation
    assert on_gpu[6].detections is None and "Could not read the image" in on_gpu[6].error

    read = [_read(1, lambda: files[1], True, True)]
    assert read[0].jpeg is not None
    decoded = _finish_decoding(read, gpu_detector.device, torch.cuda.Stream())[0].tensor
    assert decoded.is_cuda
    reference = decode_to_tensor(files[1], pin=False)
    assert (decoded.cpu().float() - reference.float()).abs().mean() < 2.0  # IDCTs differ by a level or two
