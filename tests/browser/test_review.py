"""The review loop in a real browser: queue, keyboard and mouse editing, save, conflicts, live progress."""
import pytest

from inference.models import InferenceChunk, InferenceRun, Prediction
from inference.services import inference_run_create
from review.models import Annotation, Comment, Image, Mention, Project, ReviewEvent, ReviewStatus, Role
from review.services import BoxIn, image_boxes_save
from tests.browser.conftest import log_in, screenshot
from tests.factories import add_images, add_member, add_model_version, make_project
from tests.integration.conftest import wait_for

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def scene():
    """A project with an active model, images in a known queue order, and predictions on the first."""
    project = make_project()
    version = add_model_version(project)
    images = add_images(project, 3, size=128)
    for priority, image in zip([0.9, 0.5, 0.1], images):
        Image.objects.filter(pk=image.pk).update(priority=priority)
    circle, square, triangle = project.label_classes.order_by("index")
    first = images[0]
    predictions = [
        Prediction.objects.create(image=first, model_version=version, label_class=circle, x=10, y=10, w=30, h=30,
                                  score=0.9),
        Prediction.objects.create(image=first, model_version=version, label_class=square, x=70, y=60, w=40, h=40,
                                  score=0.6),
        Prediction.objects.create(image=first, model_version=version, label_class=square, x=5, y=100, w=10, h=10,
                                  score=0.1),  # under the default threshold: hidden
    ]
    return {"project": project, "version": version, "images": images, "predictions": predictions,
            "classes": (circle, square, triangle), "user": add_member(project, Role.ANNOTATOR)}


def to_screen(page, x: float, y: float) -> tuple[float, float]:
    """Where image pixel (x, y) is on the screen, whatever the zoom and the display size."""
    return tuple(page.evaluate("""([x, y]) => {
        const svg = document.getElementById("stage");
        const p = svg.createSVGPoint(); p.x = x; p.y = y;
        const s = p.matrixTransform(svg.getScreenCTM());
        return [s.x, s.y];
    }""", [x, y]))


def drag(page, start: tuple[float, float], end: tuple[float, float]) -> None:
    page.mouse.move(*to_screen(page, *start))
    page.mouse.down()
    page.mouse.move(*to_screen(page, *end), steps=5)
    page.mouse.up()


def editor_items(page) -> list[dict]:
    return page.evaluate("window.reviewEditor.items()")


def test_review_an_image_by_keyboard_and_mouse(page, scene):
    circle, square, triangle = scene["classes"]
    first, second = scene["images"][:2]
    log_in(page, scene["user"])
    page.goto(f"{page.base_url}/projects/{scene['project'].pk}/queue/")
    assert page.locator("#queue .thumb").count() == 3
    page.click("text=Review the most urgent")
    page.wait_for_url(f"**/images/{first.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    assert "0 boxes, 2 predictions to decide" in page.text_content("#status-line")

    page.keyboard.press("Tab")        # select the 0.9 circle
    page.keyboard.press("a")          # accept it; the selection moves on to the 0.6 square
    page.keyboard.press("3")          # relabel that square as a triangle
    drag(page, (50, 90), (80, 120))   # draw a new box (class: the last chosen, triangle)
    page.keyboard.press("2")          # relabel the new box as a square
    drag(page, (60, 100), (70, 103))  # move it by (10, 3)
    items = editor_items(page)
    drawn = next(i for i in items if i["predictionId"] is None)
    assert drawn["cls"] == square.pk
    assert (round(drawn["x"]), round(drawn["y"]), round(drawn["w"]), round(drawn["h"])) == (60, 93, 30, 30)
    page.keyboard.press("Control+z")   # undo the move ...
    page.keyboard.press("Control+Shift+Z")  # ... and redo it
    assert next(i for i in editor_items(page) if i["predictionId"] is None)["x"] == pytest.approx(drawn["x"])
    screenshot(page, "editor.png")
    page.keyboard.press("?")
    assert page.is_visible("#help")
    page.keyboard.press("Escape")

    page.keyboard.press("Enter")       # save and go to the next image in queue order
    page.wait_for_url(f"**/images/{second.pk}/edit")

    boxes = {(a.label_class_id, a.source, round(a.x), round(a.y)) for a in Annotation.objects.filter(image=first)}
    assert boxes == {(circle.pk, "accepted_prediction", 10, 10), (triangle.pk, "edited_prediction", 70, 60),
                     (square.pk, "drawn", 60, 93)}
    event = ReviewEvent.objects.get(image=first)
    assert (event.accepted, event.relabeled, event.added, event.deleted, event.moved) == (1, 1, 1, 0, 0)
    assert event.seconds_spent > 0 and event.model_version_id == scene["version"].pk
    assert Image.objects.get(pk=first.pk).status == ReviewStatus.REVIEWED

    page.goto(f"{page.base_url}/images/{first.pk}/edit")  # reload: the saved state comes back
    page.wait_for_function("window.reviewEditor !== undefined")
    assert "3 boxes, 0 predictions to decide" in page.text_content("#status-line")


def test_the_score_slider_starts_at_the_projects_review_threshold(page, scene):
    project, first = scene["project"], scene["images"][0]
    Project.objects.filter(pk=project.pk).update(score_threshold=0.7)
    log_in(page, scene["user"])

    def open_editor() -> str:
        page.goto(f"{page.base_url}/images/{first.pk}/edit")
        page.wait_for_function("window.reviewEditor !== undefined")
        return page.input_value("#threshold")
    assert open_editor() == "0.7"
    # The 0.9 circle; the 0.6 square and the 0.1 one are said to be under the threshold.
    assert ("1 prediction to decide (2 more under 0.70: lower the score slider to see them)"
            in page.text_content("#status-line"))
    page.fill("#threshold", "0.5")
    assert "2 predictions to decide (1 more under 0.50" in page.text_content("#status-line")
    assert open_editor() == "0.5"  # the reviewer's own value, kept in this project
    Project.objects.filter(pk=project.pk).update(score_threshold=0.1137)  # a manager reviews at another threshold
    open_editor()
    assert page.text_content("#threshold-value") == "0.1137"  # between the slider's steps: said exactly
    assert "0 boxes, 2 predictions to decide (1 more under 0.1137: lower the score slider to see it)" in (
        page.text_content("#status-line"))


def test_a_dark_frame_is_brightened_for_the_next_images_too_and_h_peeks_under_the_boxes(page, scene):
    first, second = scene["images"][:2]
    log_in(page, scene["user"])

    def open_editor(image):
        page.goto(f"{page.base_url}/images/{image.pk}/edit")
        page.wait_for_function("window.reviewEditor !== undefined")

    def shown() -> dict:
        return page.evaluate("""() => ({filter: document.querySelector('#stage image').style.filter,
            boxes: getComputedStyle(document.getElementById('items')).display,
            brightness: document.getElementById('brightness').value})""")

    open_editor(first)
    assert shown()["filter"] == "brightness(1) contrast(1)"
    for key in ("b", "b", "b", "c", "Shift+B"):
        page.keyboard.press(key)
    assert shown() == {"filter": "brightness(1.5) contrast(1.25)", "boxes": "inline", "brightness": "1.5"}
    open_editor(second)  # the next image of the project opens as bright
    assert shown()["filter"] == "brightness(1.5) contrast(1.25)"
    page.keyboard.down("h")
    assert shown()["boxes"] == "none"
    page.keyboard.up("h")
    assert shown()["boxes"] == "inline"
    page.fill("#brightness", "4")  # the slider, and past its end by key: held at its limit
    page.keyboard.press("b")
    assert shown()["filter"] == "brightness(4) contrast(1.25)"
    page.keyboard.press("l")
    assert shown()["filter"] == "brightness(1) contrast(1)"
    assert not Annotation.objects.filter(image__in=[first, second]).exists()  # a view, never a change


def test_boxes_copied_on_one_image_are_pasted_into_the_next(page, scene):
    """A fixed camera's parked cars: Ctrl+C on one frame, Ctrl+V on the next, clipped to its size."""
    first = scene["images"][0]
    [second] = add_images(scene["project"], 1, size=96, first_seed=50)  # a smaller frame: boxes are clipped
    circle = scene["classes"][0]
    image_boxes_save(image=first, user=scene["user"], version=1,
                     boxes=[BoxIn(circle.pk, 5, 5, 20, 20), BoxIn(circle.pk, 80, 80, 40, 40)])
    log_in(page, scene["user"])
    page.goto(f"{page.base_url}/images/{first.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    page.keyboard.press("Control+c")  # nothing selected: every box
    assert "Copied 2 boxes" in page.text_content("#status-line")
    page.goto(f"{page.base_url}/images/{second.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    before = len(editor_items(page))
    page.keyboard.press("Control+v")
    pasted = [(i["x"], i["y"], i["w"], i["h"]) for i in editor_items(page)[before:]]
    assert pasted == [(5, 5, 20, 20), (80, 80, 16, 16)]
    page.keyboard.press("Control+z")
    assert len(editor_items(page)) == before
    page.keyboard.press("Control+v")
    page.keyboard.press("Control+s")
    page.wait_for_function("document.getElementById('status-line').textContent.includes('saved')")
    assert Annotation.objects.filter(image=second, x=5, y=5, w=20, h=20, label_class=circle).exists()


def test_a_class_past_the_ninth_is_chosen_by_typing_its_name(page):
    """Twelve classes, nine number keys: "/" and part of a name relabel a box, arrows walk the matches."""
    names = ["car", "van", "truck", "bus", "person", "bicycle", "motorcycle", "traffic light", "stop sign",
             "tram", "trailer", "fire truck"]
    project = make_project(class_names=names)
    [image] = add_images(project, 1)
    user = add_member(project, Role.ANNOTATOR)
    by_name = {c.name: c for c in project.label_classes.all()}
    log_in(page, user)
    page.goto(f"{page.base_url}/images/{image.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    assert page.locator(".toolbar [data-class]").count() == 9  # one button per number key
    drag(page, (10, 10), (50, 50))
    page.keyboard.press("/")
    page.keyboard.type("tr")  # starts with "tr" first (truck, tram, trailer, traffic light), then fire truck
    assert page.locator("#class-matches li").all_text_contents() == [
        "truck", "traffic light", "tram", "trailer", "fire truck"]
    page.keyboard.press("ArrowUp")  # from the first round to the last
    page.keyboard.press("Enter")
    [box] = editor_items(page)
    assert box["cls"] == by_name["fire truck"].pk
    assert page.get_attribute("#class-search", "placeholder") == "fire truck"  # the class of new boxes, named
    page.keyboard.press("d")  # the keys are the editor's again
    assert editor_items(page) == []
    drag(page, (60, 60), (100, 100))  # a new box takes the chosen class
    page.keyboard.press("/")
    page.keyboard.type("zebra")
    assert page.locator("#class-matches li").all_text_contents() == ['No class holds "zebra"']
    page.keyboard.press("Enter")  # nothing to pick: nothing changes
    page.keyboard.press("/")
    page.keyboard.type("RAIL")
    page.keyboard.press("Escape")  # changes nothing either
    assert page.locator("#class-matches").is_hidden()
    assert [i["cls"] for i in editor_items(page)] == [by_name["fire truck"].pk]
    page.keyboard.press("d")
    assert "(1-9 or / choose its class)" in page.text_content("#item-list")  # the empty list says how
    page.keyboard.press("Control+z")
    page.keyboard.press("/")
    page.keyboard.type("RAIL")
    page.keyboard.press("Enter")
    page.keyboard.press("Control+s")
    page.wait_for_function("document.getElementById('status-line').textContent.includes('saved')")
    assert Annotation.objects.get(image=image).label_class == by_name["trailer"]


def test_with_many_boxes_a_drag_redraws_only_the_box_it_moves(page, scene):
    """A parking lot's hundreds of boxes: each mouse move of a drag redraws one box and no list row (a full
    redraw took 246 ms a move at 2,000 boxes, bench/editor.py); what the list says still follows."""
    image = scene["images"][1]
    circle = scene["classes"][0]
    image_boxes_save(image=image, user=scene["user"], version=1,
                     boxes=[BoxIn(circle.pk, (n % 12) * 10, (n // 12) * 10, 8, 8) for n in range(144)])
    log_in(page, scene["user"])
    page.goto(f"{page.base_url}/images/{image.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    page.evaluate("""() => {
        window.added = {items: 0, list: 0};
        for (const [id, key] of [["items", "items"], ["item-list", "list"]]) {
          new MutationObserver((records) => records.forEach((r) => { window.added[key] += r.addedNodes.length; }))
            .observe(document.getElementById(id), {childList: true});
        }
    }""")
    last = editor_items(page)[-1]  # the bottom right box: nothing drawn over it
    page.mouse.move(*to_screen(page, last["x"] + 4, last["y"] + 4))
    page.mouse.down()  # selects it: its box and row redrawn once
    page.wait_for_function("window.added.items > 0")
    before = page.evaluate("({...window.added})")
    for step in range(1, 6):
        page.mouse.move(*to_screen(page, last["x"] + 4 - step, last["y"] + 4 - step))
    during = page.evaluate("({...window.added})")
    assert during["items"] - before["items"] == 5 and during["list"] == before["list"]
    page.mouse.up()
    moved = editor_items(page)[-1]
    assert (round(moved["x"]), round(moved["y"])) == (last["x"] - 5, last["y"] - 5)  # screen to image pixels
    assert page.text_content(f"#item-list li[data-key='{moved['key']}']").endswith(f"({last['x'] - 5}, {last['y'] - 5}, 8×8)")
    before_tab = page.evaluate("window.added.items")
    page.keyboard.press("Tab")  # the selection moves on: two boxes redrawn, not 144
    assert page.evaluate("window.added.items") - before_tab == 2
    page.keyboard.press("Control+z")
    assert page.text_content(f"#item-list li[data-key='{moved['key']}']").endswith(f"({last['x']}, {last['y']}, 8×8)")
    assert page.locator("#items g.item").count() == 144 and page.locator("#item-list li").count() == 144


def test_a_box_started_in_the_margin_around_the_image_starts_at_its_edge(page, scene):
    third = scene["images"][2]
    log_in(page, scene["user"])
    page.goto(f"{page.base_url}/images/{third.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    # The dark margin left of the image (the stage is wider than the square image) is still the stage.
    assert page.evaluate("([x, y]) => document.elementFromPoint(x, y).id", list(to_screen(page, -20, 50))) == "stage"
    assert page.text_content("#item-list").startswith("No boxes: drag on the image to draw one")  # said, not blank
    drag(page, (-20, 50), (30, 80))
    assert "No boxes" not in page.text_content("#item-list")
    [box] = editor_items(page)
    assert (round(box["x"]), round(box["y"]), round(box["w"]), round(box["h"])) == (0, 50, 30, 30)
    page.keyboard.press("Control+s")
    page.wait_for_function("document.getElementById('status-line').textContent.includes('saved')")
    [(x, w)] = Annotation.objects.filter(image=third).values_list("x", "w")
    assert (x, round(w)) == (0, 30)


def test_a_stale_save_shows_the_other_reviewers_boxes_and_loses_nothing(page, scene):
    first = scene["images"][0]
    circle = scene["classes"][0]
    log_in(page, scene["user"])
    page.goto(f"{page.base_url}/images/{first.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    # Another reviewer saves first.
    other = add_member(scene["project"], Role.REVIEWER)
    image_boxes_save(image=Image.objects.get(pk=first.pk), user=other, boxes=[BoxIn(circle.pk, 1, 1, 20, 20)],
                     version=1)

    page.keyboard.press("Shift+A")     # accept both visible predictions
    page.keyboard.press("Control+s")   # save and stay
    page.wait_for_selector("#conflict:not([hidden])")
    assert "saved by someone else" in page.text_content("#conflict")
    assert page.locator("#theirs rect").count() == 1
    assert len([i for i in editor_items(page) if i["kind"] == "box"]) == 2  # ours are still here
    assert Annotation.objects.filter(image=first).count() == 1

    page.click("#conflict .keep-mine")
    page.wait_for_selector("#conflict", state="hidden")
    wait_for(lambda: Image.objects.get(pk=first.pk).version == 3, timeout=10, message="our save")
    assert sorted(a.source for a in Annotation.objects.filter(image=first)) == ["accepted_prediction"] * 2

    # Their box is not lost: it is an earlier version of the image's boxes, and comes back.
    page.click("#history summary")
    page.wait_for_selector("#history-list button")
    assert f"1 box saved by {other.username}" in page.text_content("#history-list")
    page.click("#history-list button")
    assert [(i["kind"], i["x"], i["w"]) for i in editor_items(page) if i["kind"] == "box"] == [("box", 1, 20)]
    page.keyboard.press("Control+s")
    wait_for(lambda: Image.objects.get(pk=first.pk).version == 4, timeout=10, message="the save of their box")
    assert list(Annotation.objects.filter(image=first).values_list("x", "y", "w", "h")) == [(1, 1, 20, 20)]
    page.wait_for_function("document.querySelectorAll('#history-list button').length === 2")  # ours, theirs


@pytest.mark.integration
@pytest.mark.parametrize("broker", ["filesystem"], indirect=True)  # the brokers have their own tests
def test_progress_bar_advances_while_a_worker_runs_inference(page, start_worker):
    """The page's bar stops where the run is: the last chunk is held by another worker (a second machine's),
    so the run waits at 7 of 8 chunks, however fast this worker is; that worker's message then ends it.
    (Watching a free-running run for a value in between failed once the CPU workers ran onnxruntime.)"""
    from celery import current_app

    project = make_project()
    add_model_version(project)
    add_images(project, 48, size=96)
    user = project.memberships.get().user
    run = inference_run_create(project=project, user=user, scope="unreviewed", chunk_size=6)
    last = run.chunks.order_by("-number").first()
    InferenceChunk.objects.filter(pk=last.pk).update(held_by_task="the-other-worker")
    log_in(page, user)
    page.goto(f"{page.base_url}/projects/{project.pk}/")
    row = page.locator(f"tr[data-run-id='{run.pk}']")
    assert row.get_attribute("data-status") == "queued"
    assert page.text_content(f"tr[data-run-id='{run.pk}'] .percent") == "0.0%"
    start_worker()
    wait_for(lambda: page.text_content(f"tr[data-run-id='{run.pk}'] .percent") == "87.5%", timeout=120,
             interval=0.2, message="the page to show 7 of 8 chunks done")
    assert row.get_attribute("data-status") == "running"
    assert page.text_content(f"tr[data-run-id='{run.pk}'] .done") == "42/48"
    assert page.get_attribute(f"tr[data-run-id='{run.pk}'] .bar > span", "style") == "width: 87.5%;"

    current_app.send_task("inference.tasks.inference_chunk_execute", args=[last.pk], task_id="the-other-worker")
    wait_for(lambda: row.get_attribute("data-status") == "succeeded", timeout=120, interval=0.2,
             message="the run to succeed on the page")
    assert page.text_content(f"tr[data-run-id='{run.pk}'] .percent") == "100.0%"
    assert InferenceRun.objects.get(pk=run.pk).status == "succeeded"


def test_a_reviewer_approves_by_keyboard_and_sends_an_image_back(page, scene):
    first, second, third = scene["images"]
    circle = scene["classes"][0]
    for image in (second, third):  # an annotator reviewed these, the second first
        image_boxes_save(image=image, user=scene["user"], boxes=[BoxIn(circle.pk, 1, 1, 20, 20)], version=1)
    log_in(page, reviewer := add_member(scene["project"], Role.REVIEWER))
    page.goto(f"{page.base_url}/projects/{scene['project'].pk}/")
    page.click("text=Approve reviewed (2)")  # the approval pass: the longest-waiting reviewed image first
    page.wait_for_url(f"**/images/{second.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    page.keyboard.press("Shift+Enter")
    page.wait_for_url(f"**/images/{third.pk}/edit")
    assert Image.objects.get(pk=second.pk).status == ReviewStatus.APPROVED

    page.wait_for_function("window.reviewEditor !== undefined")
    drag(page, (50, 50), (90, 90))  # a box the annotator missed: saved, then approved
    page.click("#approve-next")
    page.wait_for_url(f"**/projects/{scene['project'].pk}/queue/")
    assert "Nothing waits for approval" in page.text_content(".messages")
    assert Image.objects.get(pk=third.pk).status == ReviewStatus.APPROVED
    assert Annotation.objects.filter(image=third).count() == 2

    page.goto(f"{page.base_url}/images/{second.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    page.once("dialog", lambda dialog: dialog.accept("The <i>circle</i> is a square."))  # why it goes back
    page.click("#send-back")
    page.wait_for_function("document.getElementById('status-line').textContent.includes('sent back')")
    assert Image.objects.get(pk=second.pk).status == ReviewStatus.UNREVIEWED
    assert page.is_hidden("#send-back")
    assert Annotation.objects.filter(image=second).count() == 1  # its boxes stay
    assert Comment.objects.get(image=second).text == "The <i>circle</i> is a square."
    page.wait_for_selector("#comments li .comment-delete")  # the reviewer may take the reason back without a reload

    page.context.clear_cookies()
    log_in(page, scene["user"])  # the annotator finds the reason beside the boxes and answers it
    page.goto(f"{page.base_url}/images/{second.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    assert "The <i>circle</i> is a square." in page.text_content("#comments")  # as text, not markup
    page.locator("#comment-text").press_sequentially("Fixed: it was a square.")  # "s" typed here is text, not Skip
    page.click("#comment-form button")
    page.wait_for_function("document.querySelectorAll('#comments li').length === 2")
    assert list(Comment.objects.filter(image=second).values_list("text", flat=True)) == [
        "The <i>circle</i> is a square.", "Fixed: it was a square."]

    # The annotator may change their own comment in place (Ctrl+Enter saves), and delete it; not the reviewer's.
    assert page.locator("#comments li").nth(0).locator(".comment-edit").count() == 0
    page.locator("#comments li").nth(1).locator(".comment-edit").click()
    page.locator(".comment-editing textarea").fill(f"Fixed: a square, not a circle. @{reviewer.username}?")
    page.locator(".comment-editing textarea").press("Control+Enter")
    page.wait_for_function("!document.querySelector('.comment-editing')")
    assert "(edited)" in page.locator("#comments li").nth(1).text_content()
    assert Comment.objects.filter(image=second).last().text == f"Fixed: a square, not a circle. @{reviewer.username}?"
    # The reviewer is told: their name is marked, and the image is theirs to look at again.
    assert page.locator("#comments li").nth(1).locator("strong.mention").text_content() == f"@{reviewer.username}"
    assert Mention.objects.filter(image=second, user=reviewer, read_at=None).exists()

    assert page.locator("#comments li").nth(0).locator(".comment-delete").count() == 0
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#comments li").nth(1).locator(".comment-delete").click()
    page.wait_for_function("document.querySelectorAll('#comments li').length === 1")
    assert list(Comment.objects.filter(image=second).values_list("text", flat=True)) == [
        "The <i>circle</i> is a square."]
    assert Image.objects.get(pk=second.pk).comment_count == 1


def test_skip_leaves_images_for_later_and_asks_before_dropping_changes(page, scene):
    first, second, third = scene["images"]
    log_in(page, scene["user"])
    page.goto(f"{page.base_url}/projects/{scene['project'].pk}/queue/next")
    page.wait_for_url(f"**/images/{first.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    drag(page, (50, 50), (90, 90))  # a change, then a skip: the editor asks first
    asked = []
    page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
    page.keyboard.press("s")
    page.wait_for_url(f"**/images/{second.pk}/edit")
    assert asked == ["Skip without saving your changes?"]
    page.wait_for_function("window.reviewEditor !== undefined")
    page.click("#skip")
    page.wait_for_url(f"**/images/{third.pk}/edit")
    page.wait_for_function("window.reviewEditor !== undefined")
    page.keyboard.press("s")
    page.wait_for_url(f"**/projects/{scene['project'].pk}/queue/")
    assert "3 you skipped" in page.text_content(".messages")
    assert not Annotation.objects.filter(image__project=scene["project"]).exists()
    assert not Image.objects.filter(held_by__isnull=False).exists()  # skipping let every image go


def test_a_reviewer_approves_ticked_images_and_sends_back_every_match(page, scene):
    first, second, third = scene["images"]
    circle = scene["classes"][0]
    for image in (second, third):
        image_boxes_save(image=image, user=scene["user"], boxes=[BoxIn(circle.pk, 1, 1, 20, 20)], version=1)
    log_in(page, add_member(scene["project"], Role.REVIEWER))
    queue = f"{page.base_url}/projects/{scene['project'].pk}/queue/"
    queue_url = queue + "?status="  # any status: the bare queue is the unreviewed ones
    page.goto(queue_url)
    assert page.is_disabled("#bulk button[value=approve]")  # nothing ticked yet
    page.check("#select-page")
    assert page.text_content("#selected-count") == "3 selected"
    assert page.locator(".thumb.selected").count() == 3
    screenshot(page, "queue-page.png")
    page.click("#bulk button[value=approve]")
    page.wait_for_url(queue_url)
    assert "Approved: 2 images; 1 image left as they were" in page.text_content(".messages")
    assert [Image.objects.get(pk=image.pk).status for image in (first, second, third)] == [
        "unreviewed", "approved", "approved"]

    annotator = scene["user"].username  # the unreviewed one goes to the annotator
    page.check(f"#queue li[data-image-id='{first.pk}'] input.select")
    assert page.text_content("#selected-count") == "1 selected"
    page.select_option("#bulk select[name=assignee]", str(scene["user"].pk))
    page.click("#bulk button[value=assign]")
    page.wait_for_url(queue_url)
    assert f"Assigned to {annotator}: 1 image." in page.text_content(".messages")
    assert f"assigned to {annotator}" in page.text_content(f"#queue li[data-image-id='{first.pk}']")
    assert Image.objects.get(pk=first.pk).assigned_to == scene["user"]

    page.goto(queue + "?status=approved")
    page.select_option("#bulk-scope", "matching")
    assert page.is_enabled("#bulk button[value=send_back]") and page.text_content("#selected-count") == ""
    page.fill("#bulk input[name=comment]", "Recheck the circles.")
    page.click("#bulk button[value=send_back]")
    assert "Send back 2 images?" in page.text_content("h2")  # asked again: the selection was not on screen whole
    assert Image.objects.get(pk=second.pk).status == "approved"
    page.click("button:has-text('Send back 2 images')")
    page.wait_for_url(queue + "?status=approved")
    assert "Sent back: 2 images." in page.text_content(".messages")
    assert "No images match." in page.text_content("#queue")
    assert list(Comment.objects.filter(image__in=[second, third]).values_list("text", flat=True)) == [
        "Recheck the circles."] * 2


def test_the_project_page_counts_each_classs_boxes_and_finds_more_to_review(page, scene):
    """The Classes table fills from the API: what a fine-tune learns from and is judged on, and a link to the
    unreviewed images that show a class the project lacks boxes of."""
    project, (circle, square, triangle) = scene["project"], scene["classes"]
    first, second, third = scene["images"]
    for image, split, extra in [(second, "train", [BoxIn(triangle.pk, 70, 70, 20, 20)]), (third, "holdout", [])]:
        Image.objects.filter(pk=image.pk).update(split=split)
        image.refresh_from_db()
        image_boxes_save(image=image, user=None, boxes=[BoxIn(circle.pk, 5, 5, 20, 20), BoxIn(circle.pk, 40, 40, 20, 20),
                                                        *extra], version=image.version)
    log_in(page, scene["user"])
    page.goto(f"{page.base_url}/projects/{project.pk}/")
    rows = page.locator("#class-counts tbody tr")
    rows.first.wait_for()
    assert rows.count() == 3
    circle_row, square_row = page.locator(f"tr[data-class-id='{circle.pk}']"), page.locator(f"tr[data-class-id='{square.pk}']")
    assert circle_row.locator(".training").inner_text() == "2 (1)"
    assert circle_row.locator(".holdout").inner_text() == "2 (1)"
    assert circle_row.locator(".note").inner_text() == ""
    assert square_row.locator(".note").inner_text() == "nothing to learn it from yet; not judged: no held-out box"
    # a class trained on but not judged: the held-out images showing it are the ones to review
    triangle_row = page.locator(f"tr[data-class-id='{triangle.pk}']")
    assert (triangle_row.locator(".training").inner_text(), triangle_row.locator(".note").inner_text()) == (
        "1 (1)", "not judged: no held-out box")
    assert "split=holdout" in triangle_row.get_by_text("find held-out images of it to review").get_attribute("href")
    square_row.get_by_text("find more to review").click()
    page.wait_for_url("**/queue/**")
    # the one the active model shows a square on, still unreviewed
    assert page.locator("#queue li[data-image-id]").evaluate_all("items => items.map(i => i.dataset.imageId)") == [
        str(first.pk)]
