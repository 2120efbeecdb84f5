"""Server-rendered pages of the orchestrator app: the dashboard, new orchestration, the editor.

Pages read through the same services and querysets as the API and write through the API from
the browser (session auth + CSRF), so there is one set of rules for both.
"""
