from django.apps import AppConfig


class CouponsConfig(AppConfig):
    name = "coupons"
    verbose_name = "Computing-power coupons"

    def ready(self) -> None:
        # The program's sensitive actions go through maker-checker (approvals).
        from coupons import approval_actions

        approval_actions.register()
