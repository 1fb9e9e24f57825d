"""The Import & export page in Chromium, with a real worker: upload a labelled zip, export it, download it."""
import io
import json
import zipfile

import pytest

from review.models import Annotation
from tests.browser.conftest import log_in, screenshot
from tests.datasets.helpers import coco_doc, scene_png, zip_of
from tests.factories import make_project

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.mark.parametrize("broker", ["filesystem"], indirect=True)
def test_import_a_coco_zip_then_download_a_yolo_export(page, start_worker):
    project = make_project(name="Street cameras")
    user = project.memberships.get().user
    start_worker()
    doc = coco_doc([(f"cam-{n}.png", 128, 128) for n in range(6)], [(n, "square", [10, 10, 40, 30]) for n in range(6)])
    archive = zip_of({f"images/cam-{n}.png": scene_png(n, size=128) for n in range(6)}
                     | {"annotations.json": json.dumps(doc).encode()}).getvalue()
    log_in(page, user)
    page.goto(f"{page.base_url}/projects/{project.pk}/")
    page.click("text=Import & export")
    page.set_input_files("#import-form input[type=file]",
                         {"name": "cameras.zip", "mimeType": "application/zip", "buffer": archive})
    page.click("#import-form button[type=submit]")
    # The row polls the API and the page reloads with the report once the worker has finished.
    page.wait_for_selector("#imports tr[data-status=succeeded]", timeout=60_000)
    assert "coco: 6 images, 6 boxes" in page.text_content("#imports tbody tr")
    assert Annotation.objects.filter(image__project=project).count() == 6

    page.select_option("#export-form select[name=format]", "yolo")
    page.click("#export-form button[type=submit]")
    page.wait_for_selector("#exports a.download", timeout=60_000)
    screenshot(page, "data-page.png")
    with page.expect_download() as download:
        page.click("#exports a.download")
    exported = zipfile.ZipFile(io.BytesIO(open(download.value.path(), "rb").read()))
    assert "data.yaml" in exported.namelist()
    assert len([n for n in exported.namelist() if n.startswith("labels/")]) == 6
