from django.contrib import admin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin

from .forms import AdminUserAddForm, AdminUserChangeForm
from .models import User

# The admin's own sign-in page authenticates with the request, so the sign-in throttle
# (django-axes, accounts/throttle.py) guards it as it guards the site's.
admin.site.site_header = "Lifecycle Review Board administration"
admin.site.site_title = "Lifecycle Review Board admin"


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    form = AdminUserChangeForm
    add_form = AdminUserAddForm
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Profile", {"fields": ("display_name", "affiliation", "expertise")}),
        (
            "Permissions",
            {"fields": ("is_active", "is_staff", "is_superuser", "groups", "user_permissions")},
        ),
        ("Important dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )
    list_display = ("email", "display_name", "affiliation", "is_staff", "is_active", "last_login")
    list_filter = ("is_staff", "is_superuser", "is_active", "groups")
    search_fields = ("email", "display_name", "affiliation")
    ordering = ("email",)
    readonly_fields = ("last_login", "date_joined")
