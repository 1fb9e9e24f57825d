"""manage.py import_dataset PROJECT PATH: the API's import, run here with progress on the terminal.

PATH may be s3://bucket/prefix/ (a prefix IMPORT_BUCKETS allows): a cron job that runs it every night
brings each night's new frames in, and only those."""
from pathlib import Path

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.files import File
from django.core.management.base import BaseCommand, CommandError

from datasets.execution import dataset_import_execute
from datasets.models import ImportFormat
from datasets.services import dataset_import_start
from project.cli import ProgressPrinter, project_from_arg


class Command(BaseCommand):
    help = ("Import a zip of images (optionally with COCO, YOLO or VOC labels), a COCO .json or a video's frames "
            "into a project.")

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project id or exact name.")
        parser.add_argument("path", help="A .zip archive, a COCO .json file, a video (.mp4, .mov, .mkv, ...), or "
                                         "s3://bucket/prefix/ (IMPORT_BUCKETS).")
        parser.add_argument("--format", default="auto", choices=ImportFormat.values)
        parser.add_argument("--partial", action="store_true", help="Keep the valid images when some are refused.")
        parser.add_argument("--model-name", default="", help="Name of the external model for detections with scores.")
        parser.add_argument("--user", help="Username recorded as the importer.")
        parser.add_argument("--frame-every", type=float, default=1.0,
                            help="For a video: seconds between the frames taken from it (default 1).")
        parser.add_argument("--tags", default="", help="Tags the images it adds get, separated by commas "
                                                       "(a camera's name, night).")
        parser.add_argument("--tag-folders", action="store_true",
                            help="Tag each image it adds with its top folder's name (gate for gate/0800.jpg).")
        parser.add_argument("--skip-look-alikes", action="store_true",
                            help="Leave out unlabelled images that look like one kept just before (a fixed camera's "
                                 "unchanged view).")

    def handle(self, *args, project, path, format, partial, model_name, user, frame_every, tags, tag_folders,
               skip_look_alikes, **options):
        project = project_from_arg(project)
        importer = get_user_model().objects.filter(username=user).first() if user else None
        if user and importer is None:
            raise CommandError(f"No user {user!r}.")
        common = {"project": project, "user": importer, "format": format, "partial": partial,
                  "model_name": model_name, "frame_every": frame_every, "tags": tags,
                  "tag_folders": tag_folders, "skip_look_alikes": skip_look_alikes, "queue": False}
        file = Path(path)
        try:
            if path.startswith("s3://"):
                job = dataset_import_start(source_url=path, **common)
            elif not file.is_file():
                raise CommandError(f"{path}: " + ("a folder; give the .zip, COCO .json or video file." if file.is_dir()
                                                  else "no such file."))
            else:
                with file.open("rb") as handle:
                    job = dataset_import_start(file=File(handle), name=file.name, **common)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        printer = ProgressPrinter(self.stdout, f"Import #{job.pk}")
        job = dataset_import_execute(job_id=job.pk, listener=printer)
        printer(job.progress_done, job.progress_total, force=True)
        printer.end()
        self._print_report(job.report)
        if job.status != "succeeded":
            raise CommandError(f"Import {job.status}: {job.error}")
        self.stdout.write(self.style.SUCCESS(f"Imported into {project.name!r} (import #{job.pk})."))

    def _print_report(self, report: dict) -> None:
        if not report:
            return
        self.stdout.write(
            f"Format {report['format']}: {report['images_added']} images added, {report['boxes_added']} boxes, "
            f"{report['predictions_added']} predictions, {len(report['duplicates'])} duplicates skipped, "
            f"{len(report['rejected'])} refused, {len(report['skipped'])} other files skipped"
            + (f", {report['objects_unchanged']} objects read by an earlier import and unchanged."
               if report.get("objects_unchanged") else "."))
        if report["classes_created"]:
            self.stdout.write(f"New classes: {', '.join(report['classes_created'])}")
        for rejected in report["rejected"][:50]:
            self.stdout.write(self.style.ERROR(f"  refused {rejected['file']}: {rejected['error']}"))
        if len(report["rejected"]) > 50:
            self.stdout.write(f"  ... and {len(report['rejected']) - 50} more (see the import in the API)")
