"""rows_insert: binary COPY on PostgreSQL (CI), executemany on SQLite; the same rows either way."""
import numpy as np
import pytest

from inference.models import Prediction
from project.bulk_insert import rows_insert
from review.models import LabelClass
from tests.factories import add_images, add_model_version, make_project

pytestmark = pytest.mark.django_db


@pytest.fixture
def target():
    project = make_project()
    images = add_images(project, 2, size=64)
    version = add_model_version(project)
    classes = list(LabelClass.objects.filter(project=project).order_by("pk").values_list("pk", flat=True))
    return images, version, classes


def columns(images, version, classes, count: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(count)
    return {
        "image": np.array([images[i % 2].pk for i in range(count)], dtype=np.int64),
        "model_version": np.full(count, version.pk, dtype=np.int64),
        "label_class": np.array([classes[i % len(classes)] for i in range(count)], dtype=np.int64),
        "x": rng.uniform(0, 64, count), "y": rng.uniform(0, 64, count),
        "w": rng.uniform(1, 10, count), "h": rng.uniform(1, 10, count),
        "score": rng.uniform(0, 1, count),
    }


def test_rows_come_back_exactly_as_given(target):
    given = columns(*target, count=300)
    assert rows_insert(Prediction, given) == 300
    stored = list(Prediction.objects.order_by("pk").values_list(
        "image_id", "model_version_id", "label_class_id", "x", "y", "w", "h", "score"))
    assert stored == list(zip(*(values.tolist() for values in given.values())))  # floats to the last bit


def test_nothing_to_insert_is_no_query(target, django_assert_num_queries):
    empty = {name: values[:0] for name, values in columns(*target, count=3).items()}
    with django_assert_num_queries(0):
        assert rows_insert(Prediction, empty) == 0


@pytest.mark.parametrize("damage", ["short column", "floats for ids"])
def test_bad_columns_are_refused_and_insert_nothing(target, damage):
    given = columns(*target, count=5)
    if damage == "short column":
        given["score"] = given["score"][:4]
    else:
        given["label_class"] = given["label_class"] + 0.5
    with pytest.raises(ValueError):
        rows_insert(Prediction, given)
    assert not Prediction.objects.exists()
