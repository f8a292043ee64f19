"""Reads about people and organisations."""

from accounts.models import RelatedParty


def related_parties(uscc_a: str, uscc_b: str) -> bool:
    """Whether the administrators list the two codes as related parties."""
    low, high = sorted((uscc_a, uscc_b))
    return RelatedParty.objects.filter(uscc_low=low, uscc_high=high).exists()
