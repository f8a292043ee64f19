"""REST endpoints of the coupon program, one module per resource (STYLE.md rule 1: the api
module outgrew one screen). Each view is thin: a strict serializer, one service, an answer in the
shape DESIGN.md §6 gives. Querysets come from `coupons.api.scopes`, scoped before any lookup."""
