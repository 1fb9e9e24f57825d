import json

import numpy as np
import pytest
from django.core.exceptions import ValidationError

from inference import architectures
from inference.matching import ImageTruth
from inference.models import InferenceRun, ModelVersion
from project.jobs import JobStatus
from review.demo_images import generate_scene
from review.models import AnnotationSource, Image, Split
from review.services import BoxIn, image_boxes_save, label_class_create, label_class_update, project_update
from tests.factories import add_images, add_model_version, make_project
from training.evaluation import EvalResult, classes_without_truth
from training.execution import _register, training_run_execute
from training.models import DatasetSnapshot, TrainingRun
from training.services import snapshot_freeze, training_after_review, training_run_cancel, training_run_start

pytestmark = pytest.mark.django_db(transaction=True)
TINY = {"epochs": 1, "batch_size": 4}


def started(project, params=TINY):
    """A run as its worker has it once it froze the labels: what _register needs."""
    run = training_run_start(project=project, user=None, params=params)
    TrainingRun.objects.filter(pk=run.pk).update(snapshot=snapshot_freeze(project=project, user=None))
    run.refresh_from_db()
    return run


def review_with_truth(images):
    """Give images their generated ground truth, as a reviewer would."""
    for image in images:
        seed = int(image.original_name.split("-")[1].split(".")[0])
        classes = dict(image.project.label_classes.values_list("name", "pk"))
        boxes = [BoxIn(classes[b.class_name], b.x, b.y, b.w, b.h)
                 for b in generate_scene(seed, width=image.width, height=image.height).boxes]
        image_boxes_save(image=image, user=None, boxes=boxes, version=image.version, source=AnnotationSource.IMPORTED)


@pytest.fixture
def project():
    project = make_project(holdout_fraction=0.3)
    review_with_truth(add_images(project, 12, size=96))
    assert Image.objects.filter(project=project, split=Split.HOLDOUT).exists()
    return project


def test_snapshot_is_coco_and_its_hash_is_stable(project):
    first = snapshot_freeze(project=project, user=None)
    again = snapshot_freeze(project=project, user=None)
    assert again.pk == first.pk and DatasetSnapshot.objects.count() == 1
    coco = json.loads(first.file.read())
    assert {c["name"] for c in coco["categories"]} == {"circle", "square", "triangle"}
    assert len(coco["images"]) == 12 and len(coco["annotations"]) == first.annotation_count > 0
    assert set(first.train_image_ids) | set(first.holdout_image_ids) == {i["id"] for i in coco["images"]}
    image = project.images.first()
    image_boxes_save(image=image, user=None, boxes=[], version=image.version)  # a label changes
    assert snapshot_freeze(project=project, user=None).content_hash != first.content_hash


def test_too_few_reviewed_images_refused_clearly():
    project = make_project()
    add_images(project, 3)
    with pytest.raises(ValidationError, match="Too few reviewed images"):
        training_run_start(project=project, user=None)
    empty = make_project(class_names=[])
    with pytest.raises(ValidationError, match="no label classes"):
        training_run_start(project=empty, user=None)
    assert not TrainingRun.objects.exists()


def test_bad_parameters_refused(project):
    with pytest.raises(ValidationError, match="epochs"):
        training_run_start(project=project, user=None, params={"epochs": 0})
    with pytest.raises(ValidationError, match="Unknown architecture"):
        training_run_start(project=project, user=None, params={"architecture": "nope"})
    for size in (5, 5000):  # what `manage.py finetune --image-size` passes straight in
        with pytest.raises(ValidationError, match="image_size must be between 32 and 4096"):
            training_run_start(project=project, user=None, params={"image_size": size})
    assert not TrainingRun.objects.exists()


def test_a_first_model_takes_the_configured_architecture_or_the_machine_s(project, settings, monkeypatch, tmp_path,
                                                                        django_capture_on_commit_callbacks):
    settings.DEFAULT_ARCHITECTURE = "nope"
    with pytest.raises(ValidationError, match="Unknown architecture 'nope'"):
        training_run_start(project=project, user=None, params=TINY)
    settings.DEFAULT_ARCHITECTURE = "fasterrcnn_mobilenet_v3_large_320_fpn"
    with django_capture_on_commit_callbacks(execute=False):
        configured = training_run_start(project=project, user=None, params=TINY)
    assert configured.architecture == "fasterrcnn_mobilenet_v3_large_320_fpn"
    assert configured.params["image_size"] == 320 and configured.params["learning_rate"] == 2e-4
    training_run_cancel(run=configured)
    settings.DEFAULT_ARCHITECTURE = ""
    driver = tmp_path / "nvidia-version"
    monkeypatch.setattr(architectures, "NVIDIA_DRIVER_FILE", driver)
    with django_capture_on_commit_callbacks(execute=False):
        on_cpu = training_run_start(project=project, user=None, params=TINY)
    training_run_cancel(run=on_cpu)
    driver.write_text("NVRM version: 580")  # a machine with NVIDIA's driver loaded
    with django_capture_on_commit_callbacks(execute=False):
        on_gpu = training_run_start(project=project, user=None, params=TINY)
    assert (on_cpu.architecture, on_gpu.architecture) == ("ssdlite320_mobilenet_v3_large",
                                                          "fasterrcnn_mobilenet_v3_large_fpn")


def test_a_second_concurrent_run_is_refused(project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(project=project, user=None, params=TINY)
        with pytest.raises(ValidationError, match="already has a training run"):
            training_run_start(project=project, user=None, params=TINY)
    training_run_cancel(run=run)
    assert TrainingRun.objects.get().status == JobStatus.CANCELLED


def test_run_trains_evaluates_registers_and_promotes(project, django_capture_on_commit_callbacks):
    from review.models import Image
    from review.tags import image_tags_add

    base = add_model_version(project)
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(project=project, user=None, params={"epochs": 2, "batch_size": 4})
    assert run.snapshot is None  # the worker freezes the labels
    holdout = sorted(Image.objects.filter(project=project, split=Split.HOLDOUT).values_list("pk", flat=True))
    image_tags_add(project=project, images=Image.objects.filter(pk__in=holdout), names=["gate"])
    image_tags_add(project=project, images=Image.objects.filter(pk__in=holdout[:1]), names=["night"])
    assert run.base_version == base and run.progress_total > 0
    with django_capture_on_commit_callbacks(execute=False):
        training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    assert run.percent == 100.0 and run.epoch == 2 and len(run.eval_history) == 2
    assert len(run.loss_history) == run.progress_total
    version = run.result_version
    assert sorted(run.snapshot.holdout_image_ids) == holdout and run.snapshot.created_by is None
    assert version.parent == base and version.training_run.snapshot == run.snapshot  # lineage
    assert version.metrics["snapshot"] == run.snapshot.content_hash
    point = version.metrics["operating_point"]  # None only when the tiny model found nothing at any threshold
    assert point is None or (0.01 <= point["threshold"] <= 1 and 0 < point["f1"] <= 1
                             and set(point["per_class"]) <= {"circle", "square", "triangle"})
    assert version.webhook_data()["metrics"]["operating_point"] == point
    comparison = run.comparison
    assert comparison["active"]["version"] == base.number
    assert comparison["promoted"] == (comparison["new"]["map"] > comparison["active"]["map"])
    low, high = comparison["gain_interval"]  # how sure the gain is, over resamples of the holdout images
    gate, night = comparison["by_tag"]  # each version's holdout mAP per tag, most images first
    assert (gate["tag"], gate["images"], night["tag"], night["images"]) == ("gate", len(holdout), "night", 1)
    assert gate["new"] == pytest.approx(comparison["new"]["map"], abs=1e-4)  # every held-out image is tagged gate
    assert gate["active"] == pytest.approx(comparison["active"]["map"], abs=1e-4)
    # how sure each change is, for tags with enough held-out images (gate has them all, night one)
    assert (gate["change_interval"] is not None, night["change_interval"], night["clear_loss"]) == (
        len(holdout) >= 10, None, False)
    if len(holdout) >= 10:
        low_tag, high_tag = gate["change_interval"]
        assert low_tag <= gate["new"] - gate["active"] + 1e-4 and isinstance(gate["clear_loss"], bool)
    assert low <= high and "resamples of the" in comparison["reason"]
    base.refresh_from_db()
    assert ModelVersion.objects.get(is_active=True) == (version if comparison["promoted"] else base)


def test_the_classes_no_held_out_image_has_are_named():
    truths = [ImageTruth(1, 10, 10, np.zeros((2, 4), np.float32), np.array([1, 3])),
              ImageTruth(2, 10, 10, np.zeros((0, 4), np.float32), np.zeros(0, np.int64))]
    assert classes_without_truth(truths, ["circle", "square", "triangle"]) == ["square"]
    assert classes_without_truth([], ["circle"]) == []  # no holdout at all: nothing is judged, said elsewhere


def test_gate_promotes_only_when_better(project, django_capture_on_commit_callbacks):
    base = add_model_version(project)
    with django_capture_on_commit_callbacks(execute=False):
        run = started(project)
    from inference.detector import build_model

    model = build_model(run.architecture, 3)
    with django_capture_on_commit_callbacks(execute=False):
        _register(run, model, ["circle", "square", "triangle"], EvalResult(0.2, 0.4), EvalResult(0.3, 0.5))
    base.refresh_from_db()
    run.refresh_from_db()
    assert base.is_active and not run.result_version.is_active
    assert run.comparison["promoted"] is False and "<=" in run.comparison["reason"]

    base_2 = run.result_version
    with django_capture_on_commit_callbacks(execute=False):
        second = started(project)
        _register(second, model, ["circle", "square", "triangle"], EvalResult(0.5, 0.7), EvalResult(0.3, 0.5),
                  by_tag=[{"tag": "day", "images": 9, "new": 0.6, "active": 0.3},
                          {"tag": "night", "images": 3, "new": 0.1, "active": 0.3}], unjudged=["triangle"])
    second.refresh_from_db()
    assert second.result_version.is_active and second.comparison["promoted"] is True
    # better overall, worse on one tag; and blind on a class no held-out image has
    assert second.comparison["reason"].endswith("; not judged on triangle (no held-out box); lower on night (0.300 to 0.100)")
    assert second.comparison["unjudged"] == ["triangle"]

    # a class the active version does not know and no held-out box judges: said once, as not judged
    with django_capture_on_commit_callbacks(execute=False):
        third = started(project)
        _register(third, build_model(third.architecture, 4), ["circle", "square", "triangle", "star"], EvalResult(0.6, 0.8), EvalResult(0.5, 0.7),
                  unjudged=["star"])
    third.refresh_from_db()
    assert "not judged on star (no held-out box)" in third.comparison["reason"]
    assert "does not know" not in third.comparison["reason"]
    assert [row["tag"] for row in second.comparison["by_tag"]] == ["day", "night"]
    assert not ModelVersion.objects.filter(pk__in=[base.pk, base_2.pk], is_active=True).exists()
    # unreviewed images are predicted again by the new version
    again = InferenceRun.objects.filter(scope="unreviewed")
    assert not again.exists() or again.get().model_version == second.result_version
    # and each new version predicts the holdout images, so comparisons and error review can judge it
    holdout = set(second.snapshot.holdout_image_ids)
    assert {frozenset(r.image_ids) for r in InferenceRun.objects.filter(model_version=second.result_version,
                                                                         scope="ids")} == {frozenset(holdout)}


def test_a_run_whose_labels_fell_below_the_minimum_before_it_started_fails_saying_so(
        project, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(project=project, user=None, params=TINY)
    # sent back to the queue while the run waited for a worker: fewer than 4 training images left
    Image.objects.filter(project=project, split=Split.TRAIN).update(status="unreviewed")
    training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.FAILED and run.snapshot is None
    assert run.error.startswith("Too few reviewed images to fine-tune: 0 for training (need 4)")
    assert not DatasetSnapshot.objects.filter(training_runs__isnull=False).exists()


def test_failed_training_leaves_the_active_model(project, django_capture_on_commit_callbacks):
    base = add_model_version(project)
    with django_capture_on_commit_callbacks(execute=False):
        run = started(project)
    run.snapshot.file.delete(save=False)  # the worker cannot read its data
    training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    base.refresh_from_db()
    assert run.status == JobStatus.FAILED and "Training failed" in run.error
    assert base.is_active and ModelVersion.objects.count() == 1


def test_auto_retrain_fires_once_at_n(project, django_capture_on_commit_callbacks):
    project.retrain_after_reviews = 3
    project.save()
    TrainingRun.objects.all().delete()
    fresh = add_images(project, 3, first_seed=100, size=96)
    with django_capture_on_commit_callbacks(execute=False):
        assert training_after_review(project=project) is not None  # 15 reviewed, none trained on yet
        assert training_after_review(project=project) is None  # one is already running
    TrainingRun.objects.update(status=JobStatus.SUCCEEDED)
    with django_capture_on_commit_callbacks(execute=False):
        review_with_truth(fresh[:2])
        assert training_after_review(project=project) is None  # 2 newly reviewed < 3
        review_with_truth(fresh[2:])
        assert training_after_review(project=project) is not None  # the third fires it
    assert TrainingRun.objects.count() == 2


def test_auto_retrain_is_off_by_default(project):
    assert project.retrain_after_reviews == 0
    assert training_after_review(project=project) is None


def test_a_fine_tune_keeps_the_input_size_its_base_was_trained_at(project, django_capture_on_commit_callbacks):
    """A base trained at a small SSD input (faster on a CPU) is fine-tuned at that size unless asked otherwise."""
    with django_capture_on_commit_callbacks(execute=False):
        first = training_run_start(project=project, user=None, params={**TINY, "image_size": 160})
    with django_capture_on_commit_callbacks(execute=False):
        training_run_execute(run_id=first.pk)
    first.refresh_from_db()
    assert first.status == JobStatus.SUCCEEDED, first.error
    with django_capture_on_commit_callbacks(execute=False):
        follow_up = training_run_start(project=project, user=None, params=dict(TINY))
    assert follow_up.base_version == first.result_version and follow_up.params["image_size"] == 160


def test_a_run_whose_project_is_deleted_stops_and_leaves_no_checkpoint(project, monkeypatch,
                                                                        django_capture_on_commit_callbacks):
    """Deleted after its first epoch (whose checkpoint lands after the project's files went): the next step stops it."""
    from django.core.files.storage import default_storage

    from review.services import project_delete
    from training import execution

    with django_capture_on_commit_callbacks(execute=False):
        run = training_run_start(project=project, user=None, params={"epochs": 3, "batch_size": 4})
    evaluations = []

    def evaluate_then_delete_the_project(*args, **kwargs):
        evaluations.append(1)
        with django_capture_on_commit_callbacks(execute=True):
            project_delete(project=project)
        return original(*args, **kwargs)
    original = execution.evaluate_model
    monkeypatch.setattr(execution, "evaluate_model", evaluate_then_delete_the_project)
    training_run_execute(run_id=run.pk)
    assert evaluations == [1]  # the run stopped in its second epoch: no second evaluation, no final one
    assert not TrainingRun.objects.exists() and not ModelVersion.objects.exists()
    assert not default_storage.exists(execution.checkpoint_name(run))


def fine_tune_here(project, capture_on_commit) -> TrainingRun:
    """Start a tiny fine-tune and run it in this process to the end; it must succeed."""
    with capture_on_commit(execute=False):
        run = training_run_start(project=project, user=None, params=TINY)
    with capture_on_commit(execute=False):
        training_run_execute(run_id=run.pk)
    run.refresh_from_db()
    assert run.status == JobStatus.SUCCEEDED, run.error
    return run


def test_a_fine_tune_after_a_class_was_added_is_still_judged_against_the_active_model(
        project, django_capture_on_commit_callbacks):
    """The active model is scored on the classes it knows by name; before, a changed class list meant
    "no comparable active model" and the new version was promoted untested."""
    base = add_model_version(project)
    star = label_class_create(project=project, name="star")
    held_out = Image.objects.filter(project=project, split=Split.HOLDOUT).first()
    boxes = [BoxIn(a.label_class_id, a.x, a.y, a.w, a.h) for a in held_out.annotations.all()]
    image_boxes_save(image=held_out, user=None, boxes=[*boxes, BoxIn(star.pk, 1, 1, 8, 8)], version=held_out.version)
    run = fine_tune_here(project, django_capture_on_commit_callbacks)
    assert run.result_version.class_names == ["circle", "square", "triangle", "star"]
    assert run.comparison["active"]["version"] == base.number
    assert f"v{base.number} does not know star: it finds none there" in run.comparison["reason"]
    assert "not judged" not in run.comparison["reason"]  # a held-out image has a star: both are judged on it


def test_a_class_renamed_while_a_run_trains_reaches_the_new_version_by_its_new_name(
        project, monkeypatch, django_capture_on_commit_callbacks):
    """Models know their classes by name: the new version must call the class what the project calls it."""
    from training import execution

    add_model_version(project)
    circle = project.label_classes.get(name="circle")
    real_train = execution.train

    def train_while_someone_renames(**kwargs):
        label_class_update(label_class=circle, name="disc")  # in the settings page, as the worker trains
        return real_train(**kwargs)

    monkeypatch.setattr(execution, "train", train_while_someone_renames)
    run = fine_tune_here(project, django_capture_on_commit_callbacks)
    assert run.snapshot.class_names[0] == "circle"  # frozen as it was
    assert run.result_version.class_names == ["disc", "square", "triangle"]
    assert all("circle" not in names for names in ModelVersion.objects.values_list("class_names", flat=True))


def test_a_project_that_promotes_only_clear_gains_keeps_a_gain_that_may_be_chance(
        project, django_capture_on_commit_callbacks):
    """Better on one held-out image only: higher mAP, but resamples without that image show no gain."""
    from inference.detector import build_model
    from inference.matching import ImagePredictions
    from tests.training.test_evaluation import noisy_world
    from training.evaluation import coco_evaluate

    truths, preds = noisy_world(0, images=20)
    first = next(n for n, p in enumerate(preds) if len(p.scores))
    p = preds[first]
    worse = list(preds)
    worse[first] = ImagePredictions(p.image_id, p.boxes_xyxy[1:], p.labels[1:], p.scores[1:])  # one box less
    new, old = (coco_evaluate(truths, each, ["circle", "square", "triangle"]) for each in (preds, worse))
    clear_new, clear_old = (coco_evaluate(truths, noisy_world(0, images=20, jitter=j)[1], ["circle", "square", "triangle"])
                            for j in (1.0, 8.0))
    assert new.map > old.map and clear_new.map > clear_old.map
    base = add_model_version(project)
    model = build_model(base.architecture, 3)
    project.promote_only_clear_gains = True
    project.save()

    def registered(better: EvalResult, active: EvalResult) -> TrainingRun:
        with django_capture_on_commit_callbacks(execute=False):
            run = started(project)
            _register(run, model, ["circle", "square", "triangle"], better, active)
        run.refresh_from_db()
        return run

    doubtful = registered(new, old)
    assert not doubtful.comparison["promoted"] and doubtful.comparison["gain_interval"][0] <= 0
    assert "(it may be chance); the project promotes only clear gains" in doubtful.comparison["reason"]
    base.refresh_from_db()
    assert base.is_active
    clear = registered(clear_new, clear_old)
    assert clear.comparison["promoted"] and clear.comparison["gain_interval"][0] > 0
    assert clear.result_version.is_active
    project.promote_only_clear_gains = False
    project.save()
    assert registered(new, old).comparison["promoted"]  # by default, higher is enough


def test_a_project_with_a_limit_on_tag_losses_keeps_a_gain_that_clearly_breaks_a_tag(
        project, django_capture_on_commit_callbacks):
    from inference.detector import build_model

    base = add_model_version(project)
    model = build_model(base.architecture, 3)
    by_tag = [{"tag": "day", "images": 30, "new": 0.8, "active": 0.5, "change_interval": [0.2, 0.4],
               "change_bound": 0.38, "clear_loss": False},
              {"tag": "yard", "images": 12, "new": 0.2, "active": 0.6, "change_interval": [-0.5, -0.3],
               "change_bound": -0.31, "clear_loss": True},
              {"tag": "gate", "images": 15, "new": 0.55, "active": 0.6, "change_interval": [-0.08, -0.02],
               "change_bound": -0.025, "clear_loss": True},
              {"tag": "dusk", "images": 4, "new": 0.3, "active": 0.4}]

    def registered(rows: list[dict]) -> TrainingRun:
        with django_capture_on_commit_callbacks(execute=False):
            run = started(project)
            _register(run, model, ["circle", "square", "triangle"], EvalResult(0.6, 0.8), EvalResult(0.5, 0.7),
                      by_tag=rows)
        run.refresh_from_db()
        return run

    assert registered(by_tag).comparison["promoted"]  # by default a tag's loss is told, not acted on
    project_update(project=project, tag_loss_limit=0.05)
    kept = registered(by_tag)
    assert not kept.comparison["promoted"] and not kept.result_version.is_active
    assert kept.comparison["reason"].endswith(
        "; lower on yard (0.600 to 0.200, clearly), gate (0.600 to 0.550, clearly), dusk (0.400 to 0.300); "
        "the project refuses a clear loss of more than 0.05 on a tag (yard)")  # gate's loss is within the limit
    without_yard = [row for row in by_tag if row["tag"] != "yard"]
    assert registered(without_yard).comparison["promoted"]
    project_update(project=project, tag_loss_limit=0)  # any clear loss
    assert "of more than 0 on a tag (gate)" in registered(without_yard).comparison["reason"]
    with pytest.raises(ValidationError, match="between 0 and 1"):
        project_update(project=project, tag_loss_limit=1.5)
    project.refresh_from_db()
    assert project.tag_loss_limit == 0
