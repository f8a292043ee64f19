"""REST endpoints of the coupon program, one module per resource (the api module outgrew one
screen: see "House style" in docs/architecture.md). Each view is thin: a strict serializer, one
service, an answer in the shape docs/api.md gives. Querysets come from `coupons.selectors.scopes`,
scoped before any lookup."""
