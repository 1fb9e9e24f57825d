from django.contrib import admin

from review.models import Annotation, Image, LabelClass, Membership, Project, ReviewEvent


class MembershipInline(admin.TabularInline):
    model = Membership
    raw_id_fields = ["user"]
    extra = 0


class LabelClassInline(admin.TabularInline):
    model = LabelClass
    extra = 0


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "holdout_fraction", "retrain_after_reviews", "infer_on_upload", "created_at"]
    search_fields = ["name"]
    inlines = [MembershipInline, LabelClassInline]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "project", "role", "created_at"]
    list_filter = ["role"]
    list_select_related = ["user", "project"]
    search_fields = ["user__username", "project__name"]
    raw_id_fields = ["user", "project"]


@admin.register(LabelClass)
class LabelClassAdmin(admin.ModelAdmin):
    list_display = ["name", "project", "index", "colour"]
    list_select_related = ["project"]
    search_fields = ["name", "project__name"]
    raw_id_fields = ["project"]


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ["id", "original_name", "project", "status", "split", "width", "height", "priority", "uncertainty",
                    "created_at"]
    list_filter = ["status", "split"]
    list_select_related = ["project"]
    search_fields = ["original_name", "content_hash"]
    raw_id_fields = ["project", "reviewed_by"]
    readonly_fields = ["content_hash", "width", "height", "split", "version"]
    show_full_result_count = False  # COUNT(*) over 100k rows on every page load is not worth it


@admin.register(Annotation)
class AnnotationAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "label_class", "x", "y", "w", "h", "source", "author", "updated_at"]
    list_filter = ["source"]
    list_select_related = ["image", "label_class", "author"]
    raw_id_fields = ["image", "label_class", "author"]
    show_full_result_count = False


@admin.register(ReviewEvent)
class ReviewEventAdmin(admin.ModelAdmin):
    list_display = ["id", "image", "user", "model_version_id", "accepted", "moved", "relabeled", "deleted", "added",
                    "seconds_spent", "created_at"]
    list_select_related = ["image", "user"]
    raw_id_fields = ["image", "user"]
    show_full_result_count = False
