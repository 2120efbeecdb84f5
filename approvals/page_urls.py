from __future__ import annotations

from django.urls import path

from approvals import pages

urlpatterns = [
    path("approvals/", pages.inbox, name="approvals-inbox"),
    path("approvals/pending-count/", pages.pending_count, name="approvals-pending-count"),
]
