"""Error review in a real browser: the patches of a version's mistakes, each opening the editor at its box."""
import pytest

from inference.models import Prediction
from inference.outcomes import box_outcomes_refresh
from review.models import LabelClass
from tests.browser.conftest import log_in, screenshot
from tests.factories import add_images, add_model_version, make_project, review_with_truth

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_error_patches_open_the_editor_zoomed_on_the_box(page):
    project = make_project()
    images = add_images(project, 4, size=192)
    for seed, image in enumerate(images):
        review_with_truth(image, seed=seed, size=192)
    version = add_model_version(project)
    square = LabelClass.objects.get(project=project, name="square")
    # The model saw a square in every top-left corner (false positives) and nothing else (so every object is missed).
    Prediction.objects.bulk_create([Prediction(image=image, model_version=version, label_class=square, x=2, y=2,
                                               w=30, h=30, score=0.9 - 0.1 * n) for n, image in enumerate(images)])
    box_outcomes_refresh(image_ids=[image.pk for image in images])
    log_in(page, project.memberships.get().user)
    page.goto(f"{page.base_url}/projects/{project.pk}/models/")
    page.click(f"tr[data-version-id='{version.pk}'] a.errors-link")
    page.wait_for_selector("#patches .patch")
    assert page.locator("#patches .patch.fp").count() == 4
    assert page.locator("#patches .patch.missed").count() >= 4
    screenshot(page, "errors-page.png")
    page.click("#patches .patch.fp >> nth=0")
    page.wait_for_selector("#stage rect.focus")
    view_box = [float(v) for v in page.get_attribute("#stage", "viewBox").split()]
    assert view_box[2] < 192 and view_box[3] < 192  # zoomed in on the box, not the whole image
    assert page.get_attribute("#stage rect.focus", "width") == "30"
