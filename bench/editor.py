"""The box editor with many boxes (a parking lot, a crowd): what a mouse move of a drag and a Tab cost
in Debian's chromium, with 50, 500 and 2,000 boxes on one 1920x1080 image.

    .venv/bin/python -m pytest -p tests.conftest bench/editor.py -s

A pytest file (the browser tests' live server, database and chromium), not part of the suite. Each
figure is the mean over 40 mouse moves or 10 Tabs, the browser's layout included (forced after each).
The last lines compare 2,000 boxes with 50, measured in the same run: `drag_2000_vs_50: X.XX` and
`tab_2000_vs_50: X.XX` (1.00: the cost does not grow with the boxes).
"""
import pytest

from review.models import Role
from review.services import BoxIn, image_boxes_save, image_create
from tests.browser.conftest import browser, log_in, page  # noqa: F401 (fixtures)
from tests.factories import add_member, make_project
from tests.review.test_thumbnails import camera_frame

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MEASURE = """() => {
    const body = document.querySelector("g.item rect.body"), r = body.getBoundingClientRect();
    body.dispatchEvent(new MouseEvent("mousedown", {bubbles: true, clientX: r.x + 3, clientY: r.y + 3, button: 0}));
    let started = performance.now();
    for (let i = 1; i <= 40; i++) {
      window.dispatchEvent(new MouseEvent("mousemove", {clientX: r.x + 3 + i, clientY: r.y + 3 + i}));
      document.body.getBoundingClientRect();
    }
    const drag = (performance.now() - started) / 40;
    window.dispatchEvent(new MouseEvent("mouseup", {clientX: r.x + 43, clientY: r.y + 43}));
    started = performance.now();
    for (let i = 0; i < 10; i++) {
      document.body.dispatchEvent(new KeyboardEvent("keydown", {key: "Tab", bubbles: true}));
      document.body.getBoundingClientRect();
    }
    return [drag, (performance.now() - started) / 10];
}"""


def test_editor_cost_with_many_boxes(page):  # noqa: F811
    project = make_project()
    user = add_member(project, Role.ANNOTATOR)
    circle = project.label_classes.first()
    log_in(page, user)
    costs = {}
    for count in (50, 500, 2000):
        image = image_create(project=project, data=camera_frame(1920, 1080, seed=count), filename=f"lot-{count}.jpg")
        image_boxes_save(image=image, user=user, version=1, boxes=[
            BoxIn(circle.pk, 10 + (n % 60) * 31, 10 + (n // 60) * 30, 25, 25) for n in range(count)])
        page.goto(f"{page.base_url}/images/{image.pk}/edit")
        page.wait_for_function("window.reviewEditor !== undefined")
        page.evaluate(MEASURE)  # warm up
        costs[count] = page.evaluate(MEASURE)
        print(f"\n{count} boxes: {costs[count][0]:.1f} ms a mouse move of a drag, {costs[count][1]:.1f} ms a Tab")
    print(f"drag_2000_vs_50: {costs[2000][0] / costs[50][0]:.2f}")
    print(f"tab_2000_vs_50: {costs[2000][1] / costs[50][1]:.2f}")
