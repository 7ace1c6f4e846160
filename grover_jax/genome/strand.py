"""The other strand: reverse complements, IUPAC ambiguity codes included (R = A/G pairs with
Y = C/T, and so on; N, S and W are their own complements). Case is kept, so a soft-masked
(lowercase) stretch stays lowercase on the other strand."""

_IUPAC = "ACGTRYSWKMBDHVN"
_PAIRED = "TGCAYRSWMKVHDBN"
_COMPLEMENT = str.maketrans(_IUPAC + _IUPAC.lower(), _PAIRED + _PAIRED.lower())


def reverse_complement(sequence: str) -> str:
    """The sequence of the opposite strand, read 5' to 3'."""
    return sequence.translate(_COMPLEMENT)[::-1]
