"""The demo's data: generated scenes in a source domain and shifted ones, and the demo project built from them."""
import numpy as np
import pytest
from django.core.management import call_command

from review.demo_images import DOMAINS, SHIFTED_DOMAINS, generate_scene
from review.models import Image, Project, ReviewEvent, ReviewStatus


@pytest.mark.parametrize("domain", DOMAINS)
def test_scenes_are_deterministic_with_boxes_inside_the_image(domain):
    first, again = generate_scene(7, domain=domain), generate_scene(7, domain=domain)
    assert first.png_bytes() == again.png_bytes() and first.boxes == again.boxes
    assert first.boxes and all(0 <= b.x and b.x + b.w <= 256 and 0 <= b.y and b.y + b.h <= 256 for b in first.boxes)


@pytest.mark.parametrize("domain", SHIFTED_DOMAINS)
def test_a_shifted_domain_looks_different_and_has_its_own_layouts(domain):
    source = [np.asarray(generate_scene(s).image, np.float32) for s in range(8)]
    shifted = [np.asarray(generate_scene(s, domain=domain).image, np.float32) for s in range(8)]
    # Less contrast (night: also darker); a new lens: colours washed out.
    assert np.mean([i.std() for i in shifted]) < 0.6 * np.mean([i.std() for i in source])
    if domain == "night":
        assert np.mean(shifted) < 0.5 * np.mean(source)
    assert [generate_scene(s, domain=domain).boxes for s in range(8)] != [generate_scene(s).boxes for s in range(8)]


def test_unknown_domain_refused():
    with pytest.raises(ValueError, match="Unknown domain"):
        generate_scene(1, domain="fog")


@pytest.mark.django_db
def test_demo_setup_builds_the_day_and_night_project_once(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    counts = {"labelled": 6, "daylight": 1, "night": 3, "camera": 2}
    call_command("demo_setup", no_train=True, **counts)
    call_command("demo_setup", no_train=True, **counts)  # idempotent: run again, nothing added
    project = Project.objects.get()
    names = list(Image.objects.filter(project=project).values_list("original_name", "status"))
    assert len(names) == 12
    assert {status for name, status in names if name.startswith("day-0")} == {ReviewStatus.REVIEWED}
    unlabelled = [name for name, status in names if status == ReviewStatus.UNREVIEWED]
    assert sorted(n.split("-")[0] for n in unlabelled) == ["day", "newlens", "newlens", "night", "night", "night"]
    assert project.images.filter(annotations__isnull=False).distinct().count() == 6
    # The labels came with the data: nobody's review, so the team page starts empty rather than crediting
    # the admin with six saves of 0 seconds each.
    assert not ReviewEvent.objects.filter(user__isnull=False).exists()
    # Tagged by source, so the queue and the comparison of two versions split them by camera.
    tagged = {name: sorted(project.tags.get(name=name).images.values_list("original_name", flat=True))
              for name in ("daylight", "night camera", "new lens")}
    assert [len(tagged[name]) for name in tagged] == [7, 3, 2]
    assert all(name.startswith("night-") for name in tagged["night camera"])
