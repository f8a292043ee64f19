from django.apps import AppConfig


class CouponsConfig(AppConfig):
    name = "coupons"
    verbose_name = "Computing-power coupons"

    def ready(self) -> None:
        # The program's sensitive actions go through maker-checker (approvals).
        from coupons import approval_actions

        approval_actions.register()
        # Staff may be limited to programs (`accounts.models.User.programs`): accounts asks us which
        # slugs name no program.
        from accounts.programs import program_slugs_register
        from coupons.selectors.scopes import citations_within_reach, program_slugs_unknown

        program_slugs_register(program_slugs_unknown)
        # ... and the documents they read are those cited by objects of their programs.
        from evidence.selectors import citations_within_reach_register

        citations_within_reach_register(citations_within_reach)
