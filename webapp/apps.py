from django.apps import AppConfig


class WebappConfig(AppConfig):
    name = "webapp"
    verbose_name = "减负 线索平台"

    def ready(self) -> None:
        from webapp import signals  # noqa: F401  (audit of logins and user changes; roles)
