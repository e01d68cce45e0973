"""How a stage's displacement travels through the later steps: the logged optimizers' step maps
(``dynamics``), the factual trajectory (``trajectory``), the H = 0 propagation of ``aa`` (``h0``),
the unrolled forward and reverse propagation with curvature (``unrolled``) and Adam beyond the
fixed preconditioner (``adam``)."""
