"""The models page in a real browser: mAP per version plotted, a running fine-tune's loss curve kept live."""
import json

import pytest

from inference.models import ModelVersion, Prediction
from review.models import Annotation, Image, Split
from tests.browser.conftest import log_in, screenshot
from tests.factories import add_images, add_model_version, make_project, review_with_truth
from tests.integration.conftest import wait_for
from training.models import DatasetSnapshot, TrainingRun

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_models_page_plots_versions_and_a_live_loss_curve(page):
    project = make_project()
    for seed, image in enumerate(add_images(project, 2)):
        review_with_truth(image, seed=seed)
    first = add_model_version(project)
    second = add_model_version(project)
    ModelVersion.objects.filter(pk=first.pk).update(metrics={"map": 0.31, "ap50": 0.62})
    ModelVersion.objects.filter(pk=second.pk).update(parent=first, metrics={"map": 0.47, "ap50": 0.81})
    snapshot = DatasetSnapshot.objects.create(project=project, content_hash="a" * 64, image_count=2)
    run = TrainingRun.objects.create(
        project=project, snapshot=snapshot, base_version=second, architecture=second.architecture, status="running",
        params={"epochs": 4}, epoch=1, progress_done=5, progress_total=20,
        loss_history=[{"step": s, "epoch": 0, "loss": 3.0 - 0.2 * s} for s in range(1, 6)],
        eval_history=[{"epoch": 1, "map": 0.2, "ap50": 0.4}])
    log_in(page, project.memberships.get().user)
    page.goto(f"{page.base_url}/projects/{project.pk}/models/")
    page.wait_for_function("window.reviewCharts && window.reviewCharts['map-chart']")
    assert page.evaluate("window.reviewCharts['map-chart'].data.datasets[0].data") == [0.31, 0.47]
    assert page.evaluate(f"window.reviewCharts['loss-{run.pk}'].data.labels.length") == 5

    TrainingRun.objects.filter(pk=run.pk).update(
        progress_done=10, epoch=2, loss_history=[{"step": s, "epoch": 0, "loss": 3.0 - 0.2 * s} for s in range(1, 11)],
        eval_history=[{"epoch": 1, "map": 0.2, "ap50": 0.4}, {"epoch": 2, "map": 0.35, "ap50": 0.6}])
    wait_for(lambda: page.evaluate(f"window.reviewCharts['loss-{run.pk}'].data.labels.length") == 10, timeout=15,
             message="the loss curve to grow without a reload")
    assert page.text_content(f"[data-training-run-id='{run.pk}'] .percent") == "50.0%"
    assert "2: 0.350" in page.text_content(f"#epochs-{run.pk}")
    screenshot(page, "models-page.png")


def test_thresholds_page_plots_each_class_s_curve(page):
    project = make_project(holdout_fraction=0.9)
    images = add_images(project, 4)
    for seed, image in enumerate(images):
        review_with_truth(image, seed=seed)
    Image.objects.filter(project=project).update(split=Split.HOLDOUT)
    version = add_model_version(project)
    rows = []
    for image in images:  # every box found at 0.9, and a false circle at 0.4 on each image
        rows += [Prediction(image=image, model_version=version, label_class_id=a.label_class_id, x=a.x, y=a.y, w=a.w,
                            h=a.h, score=0.9) for a in Annotation.objects.filter(image=image)]
        rows.append(Prediction(image=image, model_version=version, label_class=project.label_classes.get(name="circle"),
                               x=0, y=0, w=2, h=2, score=0.4))
    Prediction.objects.bulk_create(rows)
    log_in(page, project.memberships.get().user)
    page.goto(f"{page.base_url}/model-versions/{version.pk}/thresholds/")
    page.wait_for_function("window.reviewCharts && window.reviewCharts['threshold-chart']")
    pooled = page.evaluate("window.reviewCharts['threshold-chart'].data.datasets.map(d => d.data)")
    assert [point["x"] for point in pooled[0]] == [0.8999, 0.4]
    assert pooled[0][0]["y"] == 1.0 and pooled[0][1]["y"] < 1.0 and pooled[1][1]["y"] == 1.0  # precision, recall
    last = page.evaluate("JSON.parse(document.getElementById('threshold-data').textContent).slice(-1)[0]")
    page.select_option("#curve-select", label=last["name"])  # one class alone
    wanted = [p["threshold"] for p in last["points"]]
    page.wait_for_function(f"JSON.stringify(window.reviewCharts['threshold-chart'].data.datasets[0].data.map(p => p.x))"
                           f" === {json.dumps(wanted)!r}")
    assert page.evaluate("window.reviewCharts['threshold-chart'].options.scales.x.type") == "linear"
    screenshot(page, "thresholds-page.png")
