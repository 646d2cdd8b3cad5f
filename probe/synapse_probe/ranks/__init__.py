"""Several ranks under torch.distributed: one server per rank (``distributed``), or one
stream for the whole job (``job``: the collectives; ``relay_frames``: the rank relayed in full).
"""
