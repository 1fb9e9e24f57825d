"""Create the admin user and a demo project of generated images (idempotent: safe to run again)."""
from __future__ import annotations

import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from review.demo_images import CLASS_NAMES, generate_scene
from review.models import AnnotationSource, LabelClass, Project
from review.services import BoxIn, image_boxes_save, image_create, project_create

DEMO_PROJECT = "Demo: shapes"


class Command(BaseCommand):
    help = "Create an admin user and a demo project with generated images, some already reviewed."

    def add_arguments(self, parser):
        parser.add_argument("--images", type=int, default=60, help="How many images to generate.")
        parser.add_argument("--reviewed", type=float, default=0.5, help="Share of images given their true boxes.")

    def handle(self, *args, images: int, reviewed: float, **options):
        admin, password = self._admin()
        project = Project.objects.filter(name=DEMO_PROJECT).first()
        if project is None:
            project = project_create(name=DEMO_PROJECT, owner=admin, class_names=CLASS_NAMES)
            project.description = ("Generated shapes with known boxes. Half are reviewed (their true boxes), "
                                   "half wait for review.")
            project.save(update_fields=["description"])
            self._add_images(project, admin, images, reviewed)
        self.stdout.write(self.style.SUCCESS(
            f"Demo project {project.name!r}: {project.images.count()} images.\n"
            f"Log in at http://127.0.0.1:8000/ as  user: admin  password: {password}"
        ))

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
