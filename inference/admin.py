from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.http import HttpResponseRedirect
from django.urls import reverse

from inference.models import (
    BoxOutcome, InferenceChunk, InferenceRun, ModelExport, ModelVersion, ModelVersionDeletion, Prediction, RerankRun,
    SuspectedError,
)
from inference.model_exports import model_export_cancel, model_export_start
from inference.services import inference_run_cancel, model_version_activate, rerank_run_cancel
from inference.version_deletion import model_version_deletion_cancel, model_version_deletion_start
from project.admin_actions import cancel_runs
from project.admin_base import JobRunAdmin, ViewOnlyAdmin


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["__str__", "project", "source", "is_active", "map", "parent", "created_at"]
    list_filter = ["is_active", "source", "architecture"]
    list_select_related = ["project", "parent"]
    search_fields = ["project__name", "note"]
    # Versions come from training runs and from uploads (the models page, the API), which check the weights
    # against the architecture and classes; here only the note changes. No widget for the weights file:
    # media has no public URL. Activation goes through the action.
    fields = ["project", "number", "architecture", "weights_file", "class_names", "source", "parent", "is_active",
              "metrics", "note", "created_by", "created_at"]
    readonly_fields = [name for name in fields if name != "note"]
    actions = ["promote", "export_onnx"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Weights")
    def weights_file(self, version: ModelVersion) -> str:
        return version.weights.name or "(none: imported predictions only)"

    def get_deleted_objects(self, versions, request):
        # A worker deletes them (inference/version_deletion.py): a count, not Django's list of every prediction.
        predictions = Prediction.objects.filter(model_version__in=versions).count()
        deleted = [f"{version} of {version.project}, with its predictions, error review and weights (a worker "
                   "deletes them)" for version in versions]
        return deleted, {"model versions": len(versions), "predictions": predictions}, set(), []

    def delete_model(self, request, version):
        try:
            deletion = model_version_deletion_start(version=version, user=request.user)
            self.message_user(request, f"{deletion} queued: follow it under Model version deletions.")
        except ValidationError as exc:
            self.message_user(request, f"{version}: {' '.join(exc.messages)}", messages.ERROR)

    def delete_queryset(self, request, versions):
        for version in versions:
            self.delete_model(request, version)

    def response_delete(self, request, obj_display, obj_id):
        # Django would say "deleted successfully"; delete_model said what happened instead.
        return HttpResponseRedirect(reverse("admin:inference_modelversion_changelist"))

    @admin.action(description="Make the selected version its project's active model")
    def promote(self, request, versions):
        if len(versions) != 1:
            self.message_user(request, "Choose exactly one version to promote.", messages.ERROR)
            return
        try:
            model_version_activate(version=versions[0])
            self.message_user(request, f"{versions[0]} is now the active model of {versions[0].project}.")
        except ValidationError as exc:
            self.message_user(request, " ".join(exc.messages), messages.ERROR)

    @admin.action(description="Export the selected versions as ONNX (a worker writes and checks each file)")
    def export_onnx(self, request, versions):
        for version in versions:
            try:
                export, created = model_export_start(version=version, user=request.user)
                self.message_user(request, f"{export} {'queued' if created else 'is there already'}: follow it under "
                                  "Model exports.")
            except ValidationError as exc:
                self.message_user(request, f"{version}: {' '.join(exc.messages)}", messages.ERROR)


@admin.register(Prediction)
class PredictionAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Predictions are what a model said: never edited by hand."""

    list_display = ["id", "image", "model_version", "label_class", "score", "x", "y", "w", "h"]
    list_select_related = ["image", "model_version", "label_class"]
    raw_id_fields = ["image", "model_version", "label_class"]
    show_full_result_count = False


class InferenceChunkInline(admin.TabularInline):
    model = InferenceChunk
    fields = ["number", "attempts", "finished"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(InferenceChunk)
class InferenceChunkAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """A run's slices, made with it and finished by its workers; they go with their run."""

    list_display = ["id", "run", "number", "attempts", "finished"]
    list_filter = ["finished"]
    list_select_related = ["run"]
    deleted_with_parent = True

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(InferenceRun)
class InferenceRunAdmin(JobRunAdmin):
    """Started from the queue, the API, an upload or the images' admin action."""

    list_display = ["id", "project", "model_version", "scope", "status", "percent", "images_per_second", "attempts",
                    "created_at"]
    list_filter = ["status", "scope"]
    list_select_related = ["project", "model_version"]
    exclude = ["image_ids"]  # up to 100,000 ids; the chunks below say which are left
    inlines = [InferenceChunkInline]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected runs")
    def cancel(self, request, runs):
        cancel_runs(self, request, runs, inference_run_cancel)


@admin.register(RerankRun)
class RerankRunAdmin(JobRunAdmin):
    """Started by a change of a project's review threshold (here, on its settings page or through the API)."""

    list_display = ["id", "project", "score_threshold", "status", "percent", "images_ranked", "images_judged",
                    "attempts", "created_at"]
    list_select_related = ["project"]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected reranks")
    def cancel(self, request, runs):
        cancel_runs(self, request, runs, rerank_run_cancel)


@admin.register(BoxOutcome)
class BoxOutcomeAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Derived rows (inference/outcomes.py): read only, recomputed from predictions and reviews."""

    list_display = ["id", "image", "model_version", "kind", "label_class", "score", "iou"]
    list_filter = ["kind"]
    list_select_related = ["image", "model_version", "label_class"]
    raw_id_fields = ["image", "model_version", "prediction", "annotation", "label_class"]


@admin.register(SuspectedError)
class SuspectedErrorAdmin(ViewOnlyAdmin, admin.ModelAdmin):
    """Found by error review after each fine-tune; confirmed or dismissed in its second-look queue, which counts
    how often each kind was right."""

    list_display = ["id", "image", "kind", "status", "model_version", "label_class", "score", "resolved_by"]
    list_filter = ["kind", "status"]
    list_select_related = ["image", "model_version", "label_class", "resolved_by"]


@admin.register(ModelVersionDeletion)
class ModelVersionDeletionAdmin(JobRunAdmin):
    """Started by deleting a model version (here, on the models page or through the API); the row outlives it."""

    list_display = ["id", "project", "version_number", "status", "percent", "attempts", "requested_by", "created_at"]
    list_select_related = ["project", "requested_by"]
    actions = ["cancel"]

    @admin.action(description="Cancel the selected deletions (their versions stay with what is left)")
    def cancel(self, request, deletions):
        cancel_runs(self, request, deletions, lambda run: model_version_deletion_cancel(deletion=run))


@admin.register(ModelExport)
class ModelExportAdmin(JobRunAdmin):
    """Started from the models page, the API or the versions' action here; the file is downloaded through the API."""

    list_display = ["id", "project", "version_number", "format", "status", "percent", "size_bytes", "requested_by",
                    "created_at"]
    list_select_related = ["project", "requested_by"]
    exclude = ["file"]  # no widget: media has no public URL; download it through the API
    actions = ["cancel"]

    @admin.action(description="Cancel the selected exports")
    def cancel(self, request, exports):
        cancel_runs(self, request, exports, lambda run: model_export_cancel(export=run))
