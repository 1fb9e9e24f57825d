"""manage.py run_inference PROJECT: queue an inference run for the workers and follow its progress."""
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from inference.models import InferenceScope, ModelVersion
from inference.services import inference_run_create
from project.cli import follow_run, project_from_arg


class Command(BaseCommand):
    help = "Run a model version (default: the active one) over a project's images on the Celery workers."

    def add_arguments(self, parser):
        parser.add_argument("project", help="Project id or exact name.")
        parser.add_argument("--model-version", type=int, help="Version number (v3 is 3); default: the active model.")
        # Plain strings: argparse prints the choices' repr(), which for the enum was "InferenceScope.ALL".
        parser.add_argument("--scope", default=InferenceScope.UNREVIEWED.value,
                            choices=[InferenceScope.ALL.value, InferenceScope.UNREVIEWED.value])
        parser.add_argument("--no-wait", action="store_true", help="Queue the run and return at once.")

    def handle(self, *args, project, model_version, scope, no_wait, **options):
        project = project_from_arg(project)
        version = None
        if model_version is not None:
            version = ModelVersion.objects.filter(project=project, number=model_version).first()
            if version is None:
                raise CommandError(f"{project.name!r} has no model version v{model_version}.")
        try:
            run = inference_run_create(project=project, user=None, scope=scope, model_version=version)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from None
        self.stdout.write(f"Inference run #{run.pk}: {run.model_version} on {run.progress_total} images, "
                          f"{run.chunks_total} chunks queued.")
        if no_wait:
            return
        run = follow_run(run, self.stdout, f"Inference #{run.pk}")
        if run.status == "failed":
            raise CommandError(f"Inference failed: {run.error}")
        if run.is_finished:
            self.stdout.write(self.style.SUCCESS(
                f"Inference {run.status}: {run.predictions_written} predictions, {run.images_failed} images "
                f"unreadable, {run.images_per_second or 0:.1f} images/s on {run.device or 'the workers'}."))
