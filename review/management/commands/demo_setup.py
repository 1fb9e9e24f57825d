"""Create the admin user and a demo project of generated images (idempotent: safe to run again)."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand

from review.demo_images import CLASS_NAMES, generate_scene
from review.models import AnnotationSource, LabelClass, Project
from review.services import BoxIn, image_boxes_save, image_create, project_create
# A command is a top-floor caller like a view: it may wire review to training (never the reverse).
from training.services import training_run_start

DEMO_PROJECT = "Demo: shapes"


class Command(BaseCommand):
    help = "Create an admin user and a demo project with generated images, some already reviewed."

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=60, help="How many images to generate.")
        parser.add_argument("--reviewed", type=float, default=0.5, help="Share of images given their true boxes.")
        parser.add_argument("--no-train", action="store_true",
                            help="Do not queue the first fine-tune (it runs when the worker starts).")

    def handle(self, *args, images: int, reviewed: float, no_train: bool, **options):
        admin, password = self._admin()
        project = Project.objects.filter(name=DEMO_PROJECT).first()
        if project is None:
            project = project_create(name=DEMO_PROJECT, owner=admin, class_names=CLASS_NAMES)
            project.description = ("Generated shapes with known boxes. Half are reviewed (their true boxes), "
                                   "half wait for review.")
            project.save(update_fields=["description"])
            self._add_images(project, admin, images, reviewed)
            if not no_train:
                self._first_training(project, admin)
        self.stdout.write(self.style.SUCCESS(
            f"Demo project {project.name!r}: {project.images.count()} images.\n"
            f"Log in at http://127.0.0.1:8000/ as  user: admin  password: {password}"
        ))

    def _first_training(self, project: Project, admin) -> None:
        try:
            run = training_run_start(project=project, user=admin, params={"epochs": 20})
        except ValidationError as exc:
            self.stdout.write(f"No first fine-tune: {' '.join(exc.messages)}")
            return
        self.stdout.write(f"Queued fine-tune #{run.pk} ({run.architecture}); watch it on the project page. "
                          "When it finishes, its model predicts the unreviewed images.")

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

    def _add_images(self, project: Project, admin, count: int, reviewed: float) -> None:
        classes = {c.name: c.pk for c in LabelClass.objects.filter(project=project)}
        for seed in range(count):
            scene = generate_scene(seed)
            image = image_create(project=project, data=scene.png_bytes(), filename=f"shapes-{seed:04d}.png")
            if seed < count * reviewed:
                boxes = [BoxIn(classes[b.class_name], b.x, b.y, b.w, b.h) for b in scene.boxes]
                image_boxes_save(image=image, user=admin, boxes=boxes, version=image.version,
                                 source=AnnotationSource.IMPORTED)
            self.stdout.write(f"\rGenerating images: {seed + 1}/{count}", ending="")
        self.stdout.write("")
