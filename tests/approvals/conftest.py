from tests.coupons.conftest import cast, year  # noqa: F401  The coupon program's cast and open year.
