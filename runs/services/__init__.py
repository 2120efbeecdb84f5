"""The only code that changes run state. Views, tasks and admin actions call these."""
