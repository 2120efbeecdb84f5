from __future__ import annotations

from django.contrib.auth import views as auth_views
from django.urls import path

from orchestrator.pages import account, mcp, views

urlpatterns = [
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("settings/", account.settings_page, name="settings"),
    path("settings/tokens/<uuid:pk>/revoke/", account.revoke_token, name="revoke-token"),
    path("mcp-servers/", mcp.mcp_server_list, name="mcp-servers"),
    path("orchestrations/new/", views.new_orchestration, name="new-orchestration"),
    path("orchestrations/<uuid:pk>/", views.editor, name="editor"),
    path("orchestrations/<slug:slug>/", views.editor_by_slug, name="editor-by-slug"),
]
