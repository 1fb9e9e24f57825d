import numpy as np
import pytest
import torch

from inference import detector
from inference.detector import Detections
from inference.pipeline import clean_detections, image_uncertainty, predict_stream
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


def test_uncertainty_peaks_at_the_threshold():
    assert image_uncertainty(np.array([], np.float32)) == 0.0
    assert image_uncertainty(np.array([0.99, 0.98])) < 0.05
    assert image_uncertainty(np.array([0.99, 0.5])) == pytest.approx(1.0)
    assert image_uncertainty(np.array([0.3])) == pytest.approx(0.6)
