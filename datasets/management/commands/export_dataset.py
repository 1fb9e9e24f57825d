"""manage.py export_dataset PROJECT OUT.zip: the API's export, written here with progress on the terminal."""
import shutil
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from datasets.execution import dataset_export_execute
from datasets.exports import ExportSpec
from datasets.models import ExportFormat, ExportSource
from datasets.services import dataset_export_start
from inference.models import ModelVersion
from project.cli import ProgressPrinter, project_from_arg
from training.models import DatasetSnapshot


class Command(BaseCommand):
    help = "Export reviewed labels, a model version's predictions or a snapshot as COCO, YOLO or Pascal VOC (zip)."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project id or exact name.")
        parser.add_argument("output", help="Where to write the .zip.")
        parser.add_argument("--format", default="coco", choices=ExportFormat.values)
        parser.add_argument("--source", default="reviewed", choices=ExportSource.values)
        parser.add_argument("--model-version", type=int, help="Version number (v3 is 3), for --source predictions.")
        parser.add_argument("--snapshot", type=int, help="Snapshot id, for --source snapshot.")
        parser.add_argument("--min-score", type=float, default=0.0, help="For predictions: leave out lower scores.")
        parser.add_argument("--no-images", action="store_true", help="Labels only.")

    def handle(self, *args, project, output, format, source, model_version, snapshot, min_score, no_images, **options):
        project = project_from_arg(project)
        out = Path(output)
        # Said before the export runs, not after it.
        if out.is_dir():
            raise CommandError(f"{out} is a folder: name the zip to write, for example {out / 'export.zip'}.")
        if not out.parent.is_dir():
            raise CommandError(f"{out.parent}: no such folder.")
        try:  # opened, not asked about: as root, os.access says yes even where nothing can be written
            existed = out.exists()
            with out.open("ab"):
                pass
            if not existed:
                out.unlink()
        except OSError as exc:
            raise CommandError(f"{out}: cannot write there ({exc.strerror}).") from None
        version = ModelVersion.objects.filter(project=project, number=model_version).first()
        if model_version is not None and version is None:
            raise CommandError(f"{project.name!r} has no model version v{model_version}.")
        found = DatasetSnapshot.objects.filter(project=project, pk=snapshot).first() if snapshot is not None else None
        if snapshot is not None and found is None:
            raise CommandError(f"{project.name!r} has no snapshot #{snapshot}.")
        spec = ExportSpec(format=format, source=source, include_images=not no_images, min_score=min_score,
                          model_version=version if model_version is not None else None, snapshot=found)
        try:
            job = dataset_export_start(project=project, user=None, spec=spec, queue=False)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        printer = ProgressPrinter(self.stdout, f"Export #{job.pk}")
        job = dataset_export_execute(job_id=job.pk, listener=printer)
        printer(job.progress_done, job.progress_total, force=True)
        printer.end()
        if job.status != "succeeded":
            raise CommandError(f"Export {job.status}: {job.error}")
        with job.file.open("rb") as stored, out.open("wb") as target:
            shutil.copyfileobj(stored, target)
        self.stdout.write(self.style.SUCCESS(
            f"Wrote {out} ({job.image_count} images, {job.box_count} boxes, {job.size_bytes / 1e6:.1f} MB)."))
