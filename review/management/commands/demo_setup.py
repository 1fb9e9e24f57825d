"""Create the admin user and a demo project of generated images (idempotent: safe to run again)."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from review.demo_images import CLASS_NAMES, SOURCE, generate_scene
from review.models import AnnotationSource, Image, LabelClass, Project, project_being_deleted
from review.services import BoxIn, image_boxes_save, image_create, project_create
from review.tags import image_tags_add
# A command is a top-floor caller like a view: it may wire review to training (never the reverse).
from training.services import training_run_start

DEMO_PROJECT = "Demo: day and night"


# The base model's schedule: from scratch, long enough for ssdlite at a 224-pixel input to learn
# the daylight shapes on a 2-core CPU in about 3 minutes (bench/loop.py measures the same
# schedule; docs/benchmarks.md). Later fine-tunes keep the architecture and the 224 input. The
# same small model on a GPU machine too, so the demo is quick everywhere.
BASE_TRAINING = {"architecture": "ssdlite320_mobilenet_v3_large", "epochs": 24, "learning_rate": 0.002,
                 "image_size": 224}


class Command(BaseCommand):
    help = ("Create an admin user and a demo project: labelled daylight images to train a base model on, "
            "and unlabelled images from a night camera and a new lens that the model has never seen.")

    def add_arguments(self, parser):
        parser.add_argument("--labelled", type=int, default=120, help="Daylight images with their true boxes.")
        parser.add_argument("--daylight", type=int, default=20, help="Unlabelled daylight images.")
        parser.add_argument("--night", type=int, default=60, help="Unlabelled night images (the shifted domain).")
        parser.add_argument("--camera", type=int, default=20, help="Unlabelled images from a new, blurrier lens.")
        parser.add_argument("--no-train", action="store_true",
                            help="Do not queue the base model's training (it runs when the worker starts).")

    def handle(self, *args, no_train: bool, **counts):
        admin, password = self._admin()
        project = Project.objects.filter(name=DEMO_PROJECT).exclude(project_being_deleted()).first()
        if project is None:
            project = project_create(name=DEMO_PROJECT, owner=admin, class_names=CLASS_NAMES)
            project.description = (
                "A detector trained on daylight shapes meets a night camera and a new lens. The daylight images "
                "are labelled; the night, new-lens and further daylight images wait for review. Correct some "
                "night images, press Fine-tune, and compare the versions.")
            project.save(update_fields=["description"])
            self._add_images(project, {k: counts[k] for k in ("labelled", "daylight", "night", "camera")})
            if not no_train:
                self._first_training(project, admin)
        self.stdout.write(self.style.SUCCESS(
            f"Demo project {project.name!r}: {project.images.count()} images.\n"
            f"Log in at http://127.0.0.1:8000/ as  user: admin  password: {password}"
        ))

    def _first_training(self, project: Project, admin) -> None:
        try:
            run = training_run_start(project=project, user=admin, params=dict(BASE_TRAINING))
        except ValidationError as exc:
            self.stdout.write(f"No base model training: {' '.join(exc.messages)}")
            return
        self.stdout.write(
            f"Queued training run #{run.pk}: a base model ({run.architecture}) learns the daylight images from "
            f"scratch, {BASE_TRAINING['epochs']} epochs, about 3 minutes on 2 CPU cores. Then it predicts the "
            "unlabelled images, and the review queue opens with the ones it most needs help on.")

    def _admin(self):
        User = get_user_model()
        password_file = settings.VAR_DIR / "demo_admin_password"
        if not password_file.exists():
            password_file.write_text(secrets.token_urlsafe(12))
            password_file.chmod(0o600)
        password = password_file.read_text().strip()
        admin, created = User.objects.get_or_create(username="admin", defaults={"is_staff": True, "is_superuser": True})
        if created or not admin.check_password(password):
            admin.set_password(password)
            admin.is_staff = admin.is_superuser = True
            admin.save()
        return admin, password

    def _add_images(self, project: Project, counts: dict[str, int]) -> None:
        """Labelled daylight first, then the unlabelled sets; seeds are apart, so no scene repeats."""
        classes = {c.name: c.pk for c in LabelClass.objects.filter(project=project)}
        plan = [("labelled", "day", SOURCE, 0), ("daylight", "day-new", SOURCE, 5000),
                ("night", "night", "night", 10_000), ("camera", "newlens", "camera", 20_000)]
        # Tagged by where they come from, as a deployment tags its cameras: the queue filters by tag and the
        # comparison of two versions is broken down by it (the night improved, daylight kept).
        tags = {"labelled": "daylight", "daylight": "daylight", "night": "night camera", "camera": "new lens"}
        total, done = sum(counts.values()), 0
        for key, prefix, domain, first_seed in plan:
            added = []
            for seed in range(first_seed, first_seed + counts[key]):
                scene = generate_scene(seed, domain=domain)
                image = image_create(project=project, data=scene.png_bytes(), filename=f"{prefix}-{seed:05d}.png")
                added.append(image.pk)
                if key == "labelled":
                    boxes = [BoxIn(classes[b.class_name], b.x, b.y, b.w, b.h) for b in scene.boxes]
                    # Ground truth brought in, not anyone's review: no member's save (the team page counts
                    # people's work, and an import through Import & export records none either).
                    image_boxes_save(image=image, user=None, boxes=boxes, version=image.version,
                                     source=AnnotationSource.IMPORTED)
                done += 1
                self.stdout.write(f"\rGenerating images: {done}/{total}", ending="")
            image_tags_add(project=project, images=Image.objects.filter(pk__in=added), names=[tags[key]])
        self.stdout.write("")
