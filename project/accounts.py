"""Password change and reset pages: Django's own views, in the app's look, reset links built from SITE_URL."""
from __future__ import annotations

from urllib.parse import urlsplit

from django.conf import settings
from axes.helpers import get_client_ip_address
from django.contrib.auth import views as auth_views
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse_lazy

from review.password_resets import ResetVerdict, password_reset_request

FORM = "registration/account_form.html"
MESSAGE = "registration/account_message.html"


class PasswordResetView(auth_views.PasswordResetView):
    """E-mails a one-time link to the account with that address (and says the same whether there is one or not).

    The link is built from SITE_URL, never from the request's Host header, so a forged header cannot
    send someone a link to another site; without e-mail the page says to ask an administrator.
    Requests are throttled per client and per address (review/password_resets.py)."""

    template_name = FORM
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")
    extra_context = {"title": "Forgot your password?", "submit": "E-mail me a link",
                     "intro": "Give the e-mail address of your account: a link to choose a new password goes there."}

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "unavailable": not settings.EMAIL_NOTIFICATIONS}

    def form_valid(self, form):
        if not settings.EMAIL_NOTIFICATIONS:
            form.add_error(None, "This installation sends no e-mail: ask an administrator to set a new password.")
            return self.form_invalid(form)
        verdict = password_reset_request(email=form.cleaned_data["email"],
                                         client=get_client_ip_address(self.request))
        if verdict == ResetVerdict.REFUSED:
            return render(self.request, MESSAGE, {"title": "Too many requests", "message": (
                "Too many password reset links were asked for from your address. Try again in "
                f"{settings.PASSWORD_RESET_WINDOW_MINUTES} minutes, or ask an administrator.")}, status=429)
        if verdict == ResetVerdict.QUIET:  # the same answer as a sent e-mail: nothing tells whether one went
            return HttpResponseRedirect(self.get_success_url())
        site = urlsplit(settings.SITE_URL)
        # As Django's view does, but the link's host and scheme are the operator's, not the request's.
        form.save(domain_override=site.netloc, use_https=site.scheme == "https", request=self.request,
                  token_generator=self.token_generator, from_email=self.from_email,
                  email_template_name=self.email_template_name, subject_template_name=self.subject_template_name,
                  html_email_template_name=self.html_email_template_name, extra_email_context=self.extra_email_context)
        return HttpResponseRedirect(self.get_success_url())


urlpatterns = [
    path("accounts/password/change/", auth_views.PasswordChangeView.as_view(
        template_name=FORM, success_url=reverse_lazy("password_change_done"),
        extra_context={"title": "Change your password", "submit": "Change it"}), name="password_change"),
    path("accounts/password/change/done/", auth_views.PasswordChangeDoneView.as_view(
        template_name=MESSAGE, extra_context={"title": "Password changed",
                                              "message": "Your password is changed; you stay logged in here."}),
         name="password_change_done"),
    path("accounts/password/reset/", PasswordResetView.as_view(), name="password_reset"),
    path("accounts/password/reset/sent/", auth_views.PasswordResetDoneView.as_view(
        template_name=MESSAGE, extra_context={"title": "Check your e-mail", "message": (
            "If an account has that address, a link to choose a new password is on its way. It works once, "
            f"for {settings.PASSWORD_RESET_TIMEOUT // 3600} hours.")}), name="password_reset_done"),
    path("accounts/password/reset/<uidb64>/<token>/", auth_views.PasswordResetConfirmView.as_view(
        template_name=FORM, success_url=reverse_lazy("password_reset_complete"),
        extra_context={"title": "Choose a new password", "submit": "Set it"}), name="password_reset_confirm"),
    path("accounts/password/reset/done/", auth_views.PasswordResetCompleteView.as_view(
        template_name=MESSAGE, extra_context={"title": "Password set", "message": "Log in with your new password.",
                                              "link": reverse_lazy("login"), "link_text": "Log in"}),
         name="password_reset_complete"),
]
